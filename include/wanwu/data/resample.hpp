// Pillow's resampler (libImaging/Resample.c) with the bilinear filter, for 8-bit images: the
// kernel under Resize, RandomResizedCrop and the evaluation preset. torchvision resizes PIL images
// with it, so reproducing it to the bit is what makes recipes transfer: the filter support grows
// with the scale factor when shrinking (antialiasing), weights are 22-bit fixed point, and the
// horizontal pass runs first and is rounded to u8 before the vertical pass.
//
// Pillow's own loops are scalar. Here the vertical pass accumulates sixteen values per register
// across all taps, and the horizontal pass transposes eight rows so that each tap is a
// contiguous multiply-add (AVX2 when the program is compiled for it, plain loops otherwise).
// Integer arithmetic throughout the passes, so every path gives Pillow's bytes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "image.hpp"

namespace wanwu::data {

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
  bool operator==(const CropBox&) const = default;
};

namespace detail {

// Returns x as computed so far: an optimisation barrier that keeps the compiler from fusing the
// product that produced x into a following add or subtract (an FMA rounds once, Pillow twice).
inline double rounded_here(double x) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(x));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(x));
#else
  volatile double v = x;
  x = v;
#endif
  return x;
}

// Python's round() on a double: half to even (std::nearbyint in the default rounding mode).
inline int64_t py_round(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

inline void check_u8(const Image& img, const char* op) {
  WANWU_CHECK_T(DTypeError, img.type() == PixelType::u8, op, ": expects a u8 image (as PIL works on), got ",
                img.describe(), "; apply it before ToTensor/Normalize");
}
inline void check_nonempty(const Image& img, const char* op) {
  WANWU_CHECK_VALUE(!img.empty(), op, ": empty image ", img.describe());
}

// ---- Pillow's resampler (libImaging/Resample.c), bilinear filter, 8 bits per channel ----

constexpr int kPrecisionBits = 32 - 8 - 2;

struct ResampleCoeffs {
  int ksize = 0;
  std::vector<int> bounds;  // (first input index, count) per output index
  std::vector<int32_t> kk;  // ksize fixed-point weights per output index
};

inline ResampleCoeffs precompute_coeffs(int64_t in_size, int64_t out_size) {
  // Pillow passes the box edges as float: (in1 - in0) is a float, here an integer that is exact.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;  // bilinear support 1
  ResampleCoeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(static_cast<size_t>(c.ksize));
  const double ss = 1.0 / filterscale;
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = static_cast<int>(in_size);
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double t = rounded_here((static_cast<double>(x + xmin) - center + 0.5) * ss);
      if (t < 0.0) t = -t;
      const double w = t < 1.0 ? 1.0 - t : 0.0;
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
      // Multiplying by a power of two is exact, so a fused multiply-add rounds the same way.
      const double v = k[x] * static_cast<double>(1 << kPrecisionBits);
      c.kk[xx * c.ksize + x] = v < 0 ? static_cast<int32_t>(-0.5 + v) : static_cast<int32_t>(0.5 + v);
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t ss) {
  const int32_t v = ss >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Horizontal pass over `rows` rows: in (stride in bytes) -> out (out_w * C bytes per row), one
// row at a time. Used for the rows left over by the blocked pass and for unusual channel counts.
template <int C>
void resample_horizontal_rows(const uint8_t* in, int64_t in_stride, int64_t rows, uint8_t* out, int64_t out_w,
                              const ResampleCoeffs& co, int64_t channels) {
  const int ch = C > 0 ? C : static_cast<int>(channels);
  const int ksize = co.ksize;
  const int* bounds = co.bounds.data();
  const int32_t* kk = co.kk.data();
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* row = in + y * in_stride;
    uint8_t* o = out + y * out_w * ch;
    for (int64_t xx = 0; xx < out_w; ++xx) {
      const int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
      const int32_t* k = kk + xx * ksize;
      const uint8_t* p = row + static_cast<int64_t>(xmin) * ch;
      for (int c = 0; c < ch; ++c) {
        int32_t s = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < xmax; ++x) s += p[x * ch + c] * k[x];
        o[xx * ch + c] = clip8(s);
      }
    }
  }
}

// The same pass, eight rows at a time: the block is transposed so that the eight rows' values of
// one input byte lie next to each other, and each tap becomes C contiguous 8-lane multiply-adds
// (Pillow's row-at-a-time loop does not vectorise: its taps start at a different column for every
// output pixel). Integer sums, so the result is Pillow's to the bit.
template <int C>
void resample_horizontal(const uint8_t* in, int64_t in_stride, int64_t in_w, int64_t rows, uint8_t* out,
                         int64_t out_w, const ResampleCoeffs& co, std::vector<uint8_t>& block) {
  constexpr int R = 8;
  const int64_t row_bytes = in_w * C;
  block.resize(static_cast<size_t>(row_bytes * R));
  uint8_t* t = block.data();
  const int ksize = co.ksize;
  int64_t y0 = 0;
  for (; y0 + R <= rows; y0 += R) {
    const uint8_t* r0 = in + y0 * in_stride;
    for (int64_t j = 0; j < row_bytes; ++j)
      for (int r = 0; r < R; ++r) t[j * R + r] = r0[r * in_stride + j];
    uint8_t* o = out + y0 * out_w * C;
    for (int64_t xx = 0; xx < out_w; ++xx) {
      const int xmin = co.bounds[xx * 2], xmax = co.bounds[xx * 2 + 1];
      const int32_t* k = co.kk.data() + xx * ksize;
      const uint8_t* src = t + static_cast<int64_t>(xmin) * C * R;
#if defined(__AVX2__)
      __m256i acc[C];
      for (int c = 0; c < C; ++c) acc[c] = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
      for (int x = 0; x < xmax; ++x, src += C * R) {
        const __m256i w = _mm256_set1_epi32(k[x]);
        for (int c = 0; c < C; ++c) {
          const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + c * R)));
          acc[c] = _mm256_add_epi32(acc[c], _mm256_mullo_epi32(v, w));
        }
      }
      for (int c = 0; c < C; ++c) {
        // >> 22, then clamp to [0, 255] by saturating packs (32 -> 16 -> 8 bits).
        const __m256i v = _mm256_srai_epi32(acc[c], kPrecisionBits);
        const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        alignas(16) uint8_t b[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(b), _mm_packus_epi16(w16, w16));
        for (int r = 0; r < R; ++r) o[r * out_w * C + xx * C + c] = b[r];
      }
#else
      int32_t acc[C * R];
      for (int i = 0; i < C * R; ++i) acc[i] = 1 << (kPrecisionBits - 1);
      for (int x = 0; x < xmax; ++x, src += C * R) {
        const int32_t w = k[x];
        for (int i = 0; i < C * R; ++i) acc[i] += static_cast<int32_t>(src[i]) * w;
      }
      for (int c = 0; c < C; ++c)
        for (int r = 0; r < R; ++r) o[r * out_w * C + xx * C + c] = clip8(acc[c * R + r]);
#endif
    }
  }
  if (y0 < rows)
    resample_horizontal_rows<C>(in + y0 * in_stride, in_stride, rows - y0, out + y0 * out_w * C, out_w, co, C);
}

// Vertical pass: each output row is a weighted sum of whole input rows, so the inner loop runs
// along the row and vectorises. `in` starts at the first row the bounds refer to.
inline void resample_vertical(const uint8_t* in, int64_t in_stride, int64_t row_len, uint8_t* out, int64_t out_h,
                              const ResampleCoeffs& co, std::vector<int32_t>& acc) {
  acc.resize(static_cast<size_t>(row_len));
  int32_t* a = acc.data();
  for (int64_t yy = 0; yy < out_h; ++yy) {
    const int ymin = co.bounds[yy * 2], ymax = co.bounds[yy * 2 + 1];
    const int32_t* k = co.kk.data() + yy * co.ksize;
    int64_t i0 = 0;
#if defined(__AVX2__)
    // 16 values at a time, accumulated in registers across all taps.
    const uint8_t* rows = in + static_cast<int64_t>(ymin) * in_stride;
    uint8_t* orow = out + yy * row_len;
    for (; i0 + 16 <= row_len; i0 += 16) {
      __m256i a0 = _mm256_set1_epi32(1 << (kPrecisionBits - 1)), a1 = a0;
      const uint8_t* r = rows + i0;
      for (int y = 0; y < ymax; ++y, r += in_stride) {
        const __m256i w = _mm256_set1_epi32(k[y]);
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r));
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(b), w));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), w));
      }
      a0 = _mm256_srai_epi32(a0, kPrecisionBits);
      a1 = _mm256_srai_epi32(a1, kPrecisionBits);
      // packs work within 128-bit lanes: (a0.lo, a1.lo, a0.hi, a1.hi) -> reorder the 64-bit quarters.
      const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8);
      const __m128i b8 = _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(orow + i0), b8);
    }
#endif
    for (int64_t i = i0; i < row_len; ++i) a[i] = 1 << (kPrecisionBits - 1);
    for (int y = 0; y < ymax; ++y) {
      const uint8_t* r = in + static_cast<int64_t>(ymin + y) * in_stride;
      const int32_t w = k[y];
#pragma omp simd
      for (int64_t i = i0; i < row_len; ++i) a[i] += static_cast<int32_t>(r[i]) * w;
    }
    uint8_t* o = out + yy * row_len;
#pragma omp simd
    for (int64_t i = i0; i < row_len; ++i) {
      const int32_t v = a[i] >> kPrecisionBits;
      o[i] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }
}

// Scratch reused across calls on the same thread (the loader's workers resize every sample).
struct ResampleScratch {
  std::vector<uint8_t> temp, block;
  std::vector<int32_t> acc;
};
inline ResampleScratch& resample_scratch() {
  thread_local ResampleScratch s;
  return s;
}

// Resizes the box of `src` to out_h x out_w into `dst`, as PIL's crop(box).resize(size, BILINEAR).
inline void resized_crop_u8(const Image& src, const CropBox& box, int64_t out_h, int64_t out_w, Image& dst) {
  const int64_t C = src.channels();
  const int64_t stride = src.width() * C;
  const uint8_t* base = src.u8() + box.top * stride + box.left * C;
  dst.reset(out_h, out_w, C, PixelType::u8);
  const bool need_h = out_w != box.width, need_v = out_h != box.height;
  if (!need_h && !need_v) {
    for (int64_t y = 0; y < out_h; ++y) std::memcpy(dst.u8() + y * out_w * C, base + y * stride, out_w * C);
    return;
  }
  ResampleScratch& scratch = resample_scratch();
  const ResampleCoeffs cv = precompute_coeffs(box.height, out_h);
  if (!need_h) {
    resample_vertical(base, stride, out_w * C, dst.u8(), out_h, cv, scratch.acc);
    return;
  }
  const ResampleCoeffs ch = precompute_coeffs(box.width, out_w);
  // Only the rows the vertical pass reads go through the horizontal pass, as in Pillow.
  const int64_t first = cv.bounds[0];
  const int64_t last = cv.bounds[out_h * 2 - 2] + cv.bounds[out_h * 2 - 1];
  const int64_t rows = need_v ? last - first : out_h;
  uint8_t* hout = dst.u8();
  if (need_v) {
    scratch.temp.resize(static_cast<size_t>(rows * out_w * C));
    hout = scratch.temp.data();
  }
  const uint8_t* hin = base + (need_v ? first : 0) * stride;
  switch (C) {
    case 1: resample_horizontal<1>(hin, stride, box.width, rows, hout, out_w, ch, scratch.block); break;
    case 3: resample_horizontal<3>(hin, stride, box.width, rows, hout, out_w, ch, scratch.block); break;
    default: resample_horizontal_rows<0>(hin, stride, rows, hout, out_w, ch, C); break;
  }
  if (!need_v) return;
  ResampleCoeffs shifted = cv;
  for (int64_t i = 0; i < out_h; ++i) shifted.bounds[i * 2] -= static_cast<int>(first);
  resample_vertical(hout, out_w * C, out_w * C, dst.u8(), out_h, shifted, scratch.acc);
}

}  // namespace detail

}  // namespace wanwu::data
