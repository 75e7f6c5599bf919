// Deterministic image operations: the pixel kernels under the random transforms, written to give
// what torchvision gives when it works on PIL images (the recipes being reproduced run their
// augmentation on PIL images before ToTensor):
//
//   resize / resized_crop   Pillow's antialiased bilinear resampler (the kernel is in
//                           resample.hpp), to the same bytes.
//   crop, center_crop       torchvision's rounding (Python's round-half-even) and zero padding.
//   adjust_brightness / contrast / saturation / hue
//                           ImageEnhance (a float32 blend with a degenerate image: black, the mean
//                           grey level, the greyscale image) and torchvision's hue rotation through
//                           Pillow's HSV conversion.
//   to_float / normalize    ToTensor's x / 255 and Normalize's (x - mean) / std in float32; fused
//                           into one table lookup per channel when both follow each other.
//
// Float steps are written so that the compiler cannot fuse a multiply-add into an FMA (products
// are formed exactly in double and rounded once, or pass a register barrier): Pillow's binaries
// do not use FMA, and one fused rounding is enough to move a truncated value by a level. The
// colour kernels have AVX2 bodies (sixteen RGB pixels split into channel vectors by byte
// shuffles) and scalar tails; both compute the same float32 operations. Every public function
// checks its arguments and calls a `detail::` kernel; the kernels work on raw rows, one image at a
// time, with no per-pixel indirect calls.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "image.hpp"
#include "random.hpp"
#include "resample.hpp"

namespace wanwu::data {

namespace detail {

// ---- colour: Pillow's ImagingBlend, "L" conversion and HSV round trip ----

// One value of Image.blend(a_img, b_img, alpha): a + alpha * (b - a) in float32, truncated and
// clipped to [0, 255]. The product is exact in double and rounded once to float, as float32
// multiplication rounds; the sum likewise. An FMA would round only once in total.
inline uint8_t pil_blend(int a, int b, float alpha) {
  const float p = static_cast<float>(static_cast<double>(alpha) * static_cast<double>(b - a));
  const float v = static_cast<float>(static_cast<double>(a) + static_cast<double>(p));
  if (v <= 0.0f) return 0;
  if (v >= 255.0f) return 255;
  return static_cast<uint8_t>(v);
}

// Pillow's RGB -> "L": ITU-R 601-2 luma in 16-bit fixed point.
inline uint8_t pil_luma(int r, int g, int b) {
  return static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

inline void pil_rgb_to_hsv(int r, int g, int b, int& h, int& s, int& v) {
  const int maxc = std::max(r, std::max(g, b));
  const int minc = std::min(r, std::min(g, b));
  v = maxc;
  if (minc == maxc) {
    h = 0;
    s = 0;
    return;
  }
  const float cr = static_cast<float>(maxc - minc);
  const float sf = cr / static_cast<float>(maxc);
  const float rc = static_cast<float>(maxc - r) / cr;
  const float gc = static_cast<float>(maxc - g) / cr;
  const float bc = static_cast<float>(maxc - b) / cr;
  float hf;
  if (r == maxc) hf = bc - gc;
  else if (g == maxc) hf = static_cast<float>(2.0 + static_cast<double>(rc) - static_cast<double>(bc));
  else hf = static_cast<float>(4.0 + static_cast<double>(gc) - static_cast<double>(rc));
  // fmod(x, 1) for x in [0.83, 1.84): exact either way.
  double t = static_cast<double>(hf) / 6.0 + 1.0;
  if (t >= 1.0) t -= 1.0;
  hf = static_cast<float>(t);
  h = std::clamp(static_cast<int>(static_cast<double>(hf) * 255.0), 0, 255);
  s = std::clamp(static_cast<int>(static_cast<double>(sf) * 255.0), 0, 255);
}

inline void pil_hsv_to_rgb(int h, int s, int v, uint8_t* out) {
  if (s == 0) {
    out[0] = out[1] = out[2] = static_cast<uint8_t>(v);
    return;
  }
  const double h6 = static_cast<double>(static_cast<float>(h)) * 6.0 / 255.0;
  const int i = static_cast<int>(std::floor(h6));
  const float f = static_cast<float>(h6 - static_cast<double>(static_cast<float>(i)));
  const float fs = static_cast<float>(static_cast<double>(static_cast<float>(s)) / 255.0);
  const double vf = static_cast<double>(static_cast<float>(v));
  // C's round() (half away from zero) on values >= 0: floor, plus one when the (exact) fraction
  // is at least one half. Avoids a libm call per channel.
  const auto round_pos = [](double x) {
    x = rounded_here(x);  // x - floor(x) must see the rounded product, not a fused one
    const double fl = std::floor(x);
    return static_cast<int>(fl) + (x - fl >= 0.5 ? 1 : 0);
  };
  const int p = round_pos(vf * (1.0 - static_cast<double>(fs)));
  const int q = round_pos(vf * (1.0 - static_cast<double>(fs * f)));
  const double fs1f = rounded_here(static_cast<double>(fs) * (1.0 - static_cast<double>(f)));
  const int t = round_pos(vf * (1.0 - fs1f));
  const auto c8 = [](int x) { return static_cast<uint8_t>(x < 0 ? 0 : x > 255 ? 255 : x); };
  const uint8_t up = c8(p), uq = c8(q), ut = c8(t), uv = static_cast<uint8_t>(v);
  switch (i % 6) {
    case 0: out[0] = uv; out[1] = ut; out[2] = up; break;
    case 1: out[0] = uq; out[1] = uv; out[2] = up; break;
    case 2: out[0] = up; out[1] = uv; out[2] = ut; break;
    case 3: out[0] = up; out[1] = uq; out[2] = uv; break;
    case 4: out[0] = ut; out[1] = up; out[2] = uv; break;
    default: out[0] = uv; out[1] = up; out[2] = uq; break;
  }
}

inline std::array<uint8_t, 256> blend_lut(int degenerate, float alpha) {
  std::array<uint8_t, 256> lut;
  for (int x = 0; x < 256; ++x) lut[x] = pil_blend(degenerate, x, alpha);
  return lut;
}


#if defined(__AVX2__)
// Sixteen RGB pixels (48 bytes) <-> three vectors of sixteen R, G and B bytes, by byte shuffles.
struct RgbShuffles {
  alignas(16) int8_t split[3][3][16];  // [channel][source block][lane]
  alignas(16) int8_t join[3][3][16];   // [output block][channel][byte]
  RgbShuffles() {
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < 3; ++k)
        for (int p = 0; p < 16; ++p) {
          const int j = 3 * p + c;  // byte of channel c of pixel p
          split[c][k][p] = static_cast<int8_t>(j / 16 == k ? j % 16 : -1);
          const int o = 16 * k + p;  // output byte o holds channel o % 3 of pixel o / 3
          join[k][c][p] = static_cast<int8_t>(o % 3 == c ? o / 3 : -1);
        }
  }
};
inline const RgbShuffles& rgb_shuffles() {
  static const RgbShuffles s;
  return s;
}
inline void rgb_split16(const uint8_t* p, __m128i& r, __m128i& g, __m128i& b) {
  const RgbShuffles& t = rgb_shuffles();
  const __m128i in[3] = {_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)),
                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32))};
  __m128i out[3];
  for (int c = 0; c < 3; ++c) {
    out[c] = _mm_setzero_si128();
    for (int k = 0; k < 3; ++k)
      out[c] = _mm_or_si128(out[c],
                            _mm_shuffle_epi8(in[k], _mm_load_si128(reinterpret_cast<const __m128i*>(t.split[c][k]))));
  }
  r = out[0];
  g = out[1];
  b = out[2];
}
inline void rgb_join16(__m128i r, __m128i g, __m128i b, uint8_t* p) {
  const RgbShuffles& t = rgb_shuffles();
  const __m128i ch[3] = {r, g, b};
  for (int k = 0; k < 3; ++k) {
    __m128i o = _mm_setzero_si128();
    for (int c = 0; c < 3; ++c)
      o = _mm_or_si128(o, _mm_shuffle_epi8(ch[c], _mm_load_si128(reinterpret_cast<const __m128i*>(t.join[k][c]))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 16 * k), o);
  }
}
// Pillow's luma of eight pixels (the low or high half of sixteen), 32-bit lanes.
inline __m256i luma8(__m128i r, __m128i g, __m128i b) {
  const __m256i y =
      _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(_mm256_cvtepu8_epi32(r), _mm256_set1_epi32(19595)),
                                        _mm256_mullo_epi32(_mm256_cvtepu8_epi32(g), _mm256_set1_epi32(38470))),
                       _mm256_add_epi32(_mm256_mullo_epi32(_mm256_cvtepu8_epi32(b), _mm256_set1_epi32(7471)),
                                        _mm256_set1_epi32(0x8000)));
  return _mm256_srli_epi32(y, 16);
}
// Eight values of Image.blend: y + alpha * (x - y) in float32, clipped and truncated. The product
// goes through a register barrier so that it is rounded before the add, as in Pillow.
inline __m256i blend8(__m256i y, __m256i x, __m256 alpha) {
  __m256 prod = _mm256_mul_ps(alpha, _mm256_cvtepi32_ps(_mm256_sub_epi32(x, y)));
  __asm__("" : "+x"(prod));
  const __m256 v = _mm256_add_ps(_mm256_cvtepi32_ps(y), prod);
  return _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.0f)));
}
// Two vectors of eight 32-bit values in [0, 255] -> sixteen bytes.
inline __m128i pack16(__m256i lo, __m256i hi) {
  const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
  return _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}
#endif

#if defined(__AVX2__)
// Pillow's RGB -> HSV, H + shift (mod 256), HSV -> RGB for eight pixels in 32-bit lanes: the
// operations of pil_rgb_to_hsv / pil_hsv_to_rgb one for one (float where Pillow uses float,
// double in two halves of four lanes where it uses double), with barriers before every rounding
// that a fused multiply-add could skip.
inline __m256 f32_barrier(__m256 x) {
  __asm__("" : "+x"(x));
  return x;
}
inline __m256d f64_barrier(__m256d x) {
  __asm__("" : "+x"(x));
  return x;
}
inline __m256d lo_pd(__m256 x) { return _mm256_cvtps_pd(_mm256_castps256_ps128(x)); }
inline __m256d hi_pd(__m256 x) { return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)); }
inline __m256 join_ps(__m256d lo, __m256d hi) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
}
inline __m256i join_epi32(__m128i lo, __m128i hi) { return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1); }
inline __m256i trunc_times_255(__m256 x) {  // (int)((double)x * 255.0)
  const __m256d k = _mm256_set1_pd(255.0);
  return join_epi32(_mm256_cvttpd_epi32(_mm256_mul_pd(lo_pd(x), k)), _mm256_cvttpd_epi32(_mm256_mul_pd(hi_pd(x), k)));
}
inline __m128i round_pos4(__m256d x) {  // C round() of x >= 0
  x = f64_barrier(x);
  const __m256d fl = _mm256_floor_pd(x);
  const __m256d up = _mm256_and_pd(_mm256_cmp_pd(_mm256_sub_pd(x, fl), _mm256_set1_pd(0.5), _CMP_GE_OQ),
                                   _mm256_set1_pd(1.0));
  return _mm256_cvttpd_epi32(_mm256_add_pd(fl, up));
}
inline __m256i clamp255(__m256i x) {
  return _mm256_min_epi32(_mm256_max_epi32(x, _mm256_setzero_si256()), _mm256_set1_epi32(255));
}

inline void hue_rotate8(__m256i r, __m256i g, __m256i b, int shift, __m256i& ro, __m256i& go, __m256i& bo) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256i maxc = _mm256_max_epi32(r, _mm256_max_epi32(g, b));
  const __m256i minc = _mm256_min_epi32(r, _mm256_min_epi32(g, b));
  const __m256i gray = _mm256_cmpeq_epi32(maxc, minc);
  // grey lanes divide by one instead of zero; their results are replaced below
  const __m256 cr = _mm256_blendv_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(maxc, minc)), one, _mm256_castsi256_ps(gray));
  const __m256 mx = _mm256_blendv_ps(_mm256_cvtepi32_ps(maxc), one, _mm256_castsi256_ps(gray));
  const __m256 sf = _mm256_div_ps(cr, mx);
  const __m256 rc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(maxc, r)), cr);
  const __m256 gc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(maxc, g)), cr);
  const __m256 bc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(maxc, b)), cr);
  const __m256 h_r = _mm256_sub_ps(bc, gc);
  const __m256d two = _mm256_set1_pd(2.0), four = _mm256_set1_pd(4.0);
  const __m256 h_g = join_ps(_mm256_sub_pd(_mm256_add_pd(two, lo_pd(rc)), lo_pd(bc)),
                             _mm256_sub_pd(_mm256_add_pd(two, hi_pd(rc)), hi_pd(bc)));
  const __m256 h_b = join_ps(_mm256_sub_pd(_mm256_add_pd(four, lo_pd(gc)), lo_pd(rc)),
                             _mm256_sub_pd(_mm256_add_pd(four, hi_pd(gc)), hi_pd(rc)));
  const __m256i is_r = _mm256_cmpeq_epi32(r, maxc), is_g = _mm256_cmpeq_epi32(g, maxc);
  __m256 hf = _mm256_blendv_ps(h_b, h_g, _mm256_castsi256_ps(is_g));
  hf = _mm256_blendv_ps(hf, h_r, _mm256_castsi256_ps(is_r));
  const auto wrap = [](__m256d x) {  // x / 6 + 1, then fmod(., 1) on [0.83, 1.84)
    const __m256d t = _mm256_add_pd(_mm256_div_pd(x, _mm256_set1_pd(6.0)), _mm256_set1_pd(1.0));
    return _mm256_sub_pd(t, _mm256_and_pd(_mm256_cmp_pd(t, _mm256_set1_pd(1.0), _CMP_GE_OQ), _mm256_set1_pd(1.0)));
  };
  hf = join_ps(wrap(lo_pd(hf)), wrap(hi_pd(hf)));
  const __m256i h = _mm256_andnot_si256(gray, clamp255(trunc_times_255(hf)));
  const __m256i s = _mm256_andnot_si256(gray, clamp255(trunc_times_255(sf)));
  const __m256i v = maxc;

  // HSV -> RGB with H shifted
  const __m256i hs = _mm256_and_si256(_mm256_add_epi32(h, _mm256_set1_epi32(shift)), _mm256_set1_epi32(255));
  const __m256d six = _mm256_set1_pd(6.0), d255 = _mm256_set1_pd(255.0), d1 = _mm256_set1_pd(1.0);
  __m128i idx[2], pp[2], qq[2], tt[2];
  __m256d f_d[2];
  const __m128i hs_half[2] = {_mm256_castsi256_si128(hs), _mm256_extracti128_si256(hs, 1)};
  const __m128i s_half[2] = {_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)};
  const __m128i v_half[2] = {_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)};
  __m256d fs_d[2];
  for (int k = 0; k < 2; ++k) {
    const __m256d h6 = _mm256_div_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(hs_half[k]), six), d255);
    const __m256d fl = _mm256_floor_pd(h6);
    idx[k] = _mm256_cvttpd_epi32(fl);
    f_d[k] = _mm256_sub_pd(h6, fl);
    fs_d[k] = _mm256_div_pd(_mm256_cvtepi32_pd(s_half[k]), d255);
  }
  const __m256 f = join_ps(f_d[0], f_d[1]);     // float f
  const __m256 fs = join_ps(fs_d[0], fs_d[1]);  // float fs
  const __m256 fsf = f32_barrier(_mm256_mul_ps(fs, f));  // float product fs * f
  for (int k = 0; k < 2; ++k) {
    const __m256d vf = _mm256_cvtepi32_pd(v_half[k]);
    const __m256d fsk = k ? hi_pd(fs) : lo_pd(fs), fk = k ? hi_pd(f) : lo_pd(f), fsfk = k ? hi_pd(fsf) : lo_pd(fsf);
    pp[k] = round_pos4(_mm256_mul_pd(vf, _mm256_sub_pd(d1, fsk)));
    qq[k] = round_pos4(_mm256_mul_pd(vf, _mm256_sub_pd(d1, fsfk)));
    const __m256d fs1f = f64_barrier(_mm256_mul_pd(fsk, _mm256_sub_pd(d1, fk)));
    tt[k] = round_pos4(_mm256_mul_pd(vf, _mm256_sub_pd(d1, fs1f)));
  }
  const __m256i p = clamp255(join_epi32(pp[0], pp[1])), q = clamp255(join_epi32(qq[0], qq[1]));
  const __m256i t = clamp255(join_epi32(tt[0], tt[1]));
  __m256i i6 = join_epi32(idx[0], idx[1]);
  i6 = _mm256_sub_epi32(i6, _mm256_and_si256(_mm256_cmpgt_epi32(i6, _mm256_set1_epi32(5)), _mm256_set1_epi32(6)));
  const auto is = [&](int c) { return _mm256_cmpeq_epi32(i6, _mm256_set1_epi32(c)); };
  const auto pick = [](__m256i m, __m256i a, __m256i b2) { return _mm256_blendv_epi8(b2, a, m); };
  // sector 0: (v, t, p) 1: (q, v, p) 2: (p, v, t) 3: (p, q, v) 4: (t, p, v) 5: (v, p, q)
  __m256i R = pick(is(1), q, pick(is(2), p, pick(is(3), p, pick(is(4), t, v))));
  __m256i G = pick(is(0), t, pick(is(3), q, pick(is(4), p, pick(is(5), p, v))));
  __m256i B = pick(is(2), t, pick(is(3), v, pick(is(4), v, pick(is(5), q, p))));
  const __m256i unsat = _mm256_cmpeq_epi32(s, _mm256_setzero_si256());
  ro = pick(unsat, v, R);
  go = pick(unsat, v, G);
  bo = pick(unsat, v, B);
}
#endif

// Image.blend(constant degenerate image, img, alpha) on every value.
inline void blend_with_constant(Image& img, int degenerate, float alpha) {
  uint8_t* p = img.u8();
  const int64_t n = img.numel();
  int64_t i = 0;
#if defined(__AVX2__)
  const __m256i y = _mm256_set1_epi32(degenerate);
  const __m256 a = _mm256_set1_ps(alpha);
  for (; i + 16 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m256i lo = blend8(y, _mm256_cvtepu8_epi32(x), a);
    const __m256i hi = blend8(y, _mm256_cvtepu8_epi32(_mm_srli_si128(x, 8)), a);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i), pack16(lo, hi));
  }
#endif
  if (i < n) {
    const auto lut = blend_lut(degenerate, alpha);
    for (; i < n; ++i) p[i] = lut[p[i]];
  }
}

}  // namespace detail

// ---- geometry ----

// Resize to exactly out_h x out_w: PIL's Image.resize(size, BILINEAR) (antialiased).
// The most pixels resize may produce (64 Mi, DecodeOptions::max_pixels' default). Resizing the
// shorter side to a size multiplies an elongated image: a 2000x1 PNG of a few hundred bytes,
// within any decode limit, would become 512000x256 (131 M pixels) at Resize(256), and a 4 M x 1
// one a terabyte. Past this limit resize throws ImageTooLargeError instead of allocating.
inline constexpr int64_t kMaxResizePixels = int64_t(64) << 20;

inline Image resize(const Image& img, int64_t out_h, int64_t out_w) {
  detail::check_u8(img, "resize");
  detail::check_nonempty(img, "resize");
  WANWU_CHECK_VALUE(out_h > 0 && out_w > 0, "resize: output size must be positive, got ", out_h, "x", out_w);
  if (out_h * out_w > kMaxResizePixels)
    throw ImageTooLargeError(detail::str("resize: a ", img.width(), "x", img.height(), " image would become ", out_w,
                                         "x", out_h, " = ", out_w * out_h, " pixels, over the limit of ",
                                         kMaxResizePixels, " (kMaxResizePixels)"));
  Image out;
  detail::resized_crop_u8(img, {0, 0, img.height(), img.width()}, out_h, out_w, out);
  return out;
}

// The output size torchvision's Resize(size) gives an h x w image: the shorter side becomes
// `size`, the longer one int(size * long / short), then both scaled down if the longer exceeds
// max_size (0: no limit).
inline std::pair<int64_t, int64_t> resize_shorter_side_size(int64_t h, int64_t w, int64_t size, int64_t max_size = 0) {
  WANWU_CHECK_VALUE(size > 0, "resize: size must be positive, got ", size);
  WANWU_CHECK_VALUE(max_size == 0 || max_size > size, "resize: max_size = ", max_size,
                    " must be strictly greater than the requested size for the smaller edge, ", size);
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  int64_t new_short = size;
  int64_t new_long = static_cast<int64_t>(static_cast<double>(size) * static_cast<double>(longer) /
                                          static_cast<double>(shorter));
  if (max_size > 0 && new_long > max_size) {
    new_short = static_cast<int64_t>(static_cast<double>(max_size) * static_cast<double>(new_short) /
                                     static_cast<double>(new_long));
    new_long = max_size;
  }
  return w <= h ? std::pair{new_long, new_short} : std::pair{new_short, new_long};
}

// Crop the box (which must lie inside the image) and resize it, in one pass over the pixels:
// torchvision's F.resized_crop on a PIL image.
inline Image resized_crop(const Image& img, const CropBox& box, int64_t out_h, int64_t out_w) {
  detail::check_u8(img, "resized_crop");
  WANWU_CHECK_VALUE(box.height > 0 && box.width > 0 && box.top >= 0 && box.left >= 0 &&
                        box.top + box.height <= img.height() && box.left + box.width <= img.width(),
                    "resized_crop: box (top ", box.top, ", left ", box.left, ", ", box.height, "x", box.width,
                    ") is not inside the image ", img.describe());
  WANWU_CHECK_VALUE(out_h > 0 && out_w > 0, "resized_crop: output size must be positive, got ", out_h, "x", out_w);
  Image out;
  detail::resized_crop_u8(img, box, out_h, out_w, out);
  return out;
}

// Crop with PIL semantics: the parts of the box outside the image are zero.
inline Image crop(const Image& img, const CropBox& box) {
  WANWU_CHECK_VALUE(box.height > 0 && box.width > 0, "crop: box size must be positive, got ", box.height, "x",
                    box.width);
  const int64_t C = img.channels();
  const size_t es = pixel_type_size(img.type());
  Image out(box.height, box.width, C, img.type());
  std::memset(out.bytes(), 0, out.nbytes());
  const int64_t y0 = std::max<int64_t>(box.top, 0), y1 = std::min(box.top + box.height, img.height());
  const int64_t x0 = std::max<int64_t>(box.left, 0), x1 = std::min(box.left + box.width, img.width());
  if (y0 >= y1 || x0 >= x1) return out;
  const auto* src = static_cast<const std::byte*>(img.bytes());
  auto* dst = static_cast<std::byte*>(out.bytes());
  for (int64_t y = y0; y < y1; ++y)
    std::memcpy(dst + (((y - box.top) * box.width + (x0 - box.left)) * C) * es, src + ((y * img.width() + x0) * C) * es,
                static_cast<size_t>((x1 - x0) * C) * es);
  return out;
}

// torchvision's center_crop: pads with zeros when the image is smaller than the crop, rounds the
// offset with Python's round (half to even).
inline Image center_crop(const Image& img, int64_t out_h, int64_t out_w) {
  WANWU_CHECK_VALUE(out_h > 0 && out_w > 0, "center_crop: size must be positive, got ", out_h, "x", out_w);
  int64_t h = img.height(), w = img.width();
  int64_t pad_top = 0, pad_left = 0;
  if (out_w > w || out_h > h) {
    pad_left = out_w > w ? (out_w - w) / 2 : 0;
    pad_top = out_h > h ? (out_h - h) / 2 : 0;
    const int64_t pad_right = out_w > w ? (out_w - w + 1) / 2 : 0;
    const int64_t pad_bottom = out_h > h ? (out_h - h + 1) / 2 : 0;
    w += pad_left + pad_right;
    h += pad_top + pad_bottom;
  }
  const int64_t top = detail::py_round(static_cast<double>(h - out_h) / 2.0);
  const int64_t left = detail::py_round(static_cast<double>(w - out_w) / 2.0);
  return crop(img, {top - pad_top, left - pad_left, out_h, out_w});
}

inline void hflip_(Image& img) {
  const int64_t C = img.channels(), W = img.width();
  const size_t px = static_cast<size_t>(C) * pixel_type_size(img.type());
  auto* base = static_cast<std::byte*>(img.bytes());
  std::byte tmp[64];
  WANWU_CHECK_VALUE(px <= sizeof(tmp), "hflip: ", C, " channels are more than supported (16)");
  for (int64_t y = 0; y < img.height(); ++y) {
    std::byte* row = base + static_cast<size_t>(y * W) * px;
    for (int64_t a = 0, b = W - 1; a < b; ++a, --b) {
      std::memcpy(tmp, row + a * px, px);
      std::memcpy(row + a * px, row + b * px, px);
      std::memcpy(row + b * px, tmp, px);
    }
  }
}

// ---- colour (u8, 1 or 3 channels) ----

inline void check_color_image(const Image& img, const char* op) {
  detail::check_u8(img, op);
  WANWU_CHECK_VALUE(img.channels() == 1 || img.channels() == 3, op, ": expects 1 or 3 channels, got ",
                    img.describe());
}

// ImageEnhance.Brightness(img).enhance(factor): a blend with black.
inline void adjust_brightness_(Image& img, double factor) {
  check_color_image(img, "adjust_brightness");
  WANWU_CHECK_VALUE(factor >= 0.0, "adjust_brightness: factor must be non-negative, got ", factor);
  detail::blend_with_constant(img, 0, static_cast<float>(factor));
}

// The mean grey level ImageEnhance.Contrast blends with: int(mean(L) + 0.5).
inline int pil_mean_gray(const Image& img) {
  const uint8_t* p = img.u8();
  const int64_t n = img.height() * img.width();
  int64_t sum = 0;
  if (img.channels() == 3) {
    int64_t i = 0;
#if defined(__AVX2__)
    // 32-bit lane sums, flushed before they could overflow (2 * 255 * 2^16 < 2^31).
    while (i + 16 <= n) {
      __m256i acc = _mm256_setzero_si256();
      for (int64_t k = 0; k < (int64_t(1) << 16) && i + 16 <= n; ++k, i += 16) {
        __m128i r, g, b;
        detail::rgb_split16(p + 3 * i, r, g, b);
        acc = _mm256_add_epi32(acc, detail::luma8(r, g, b));
        acc = _mm256_add_epi32(acc, detail::luma8(_mm_srli_si128(r, 8), _mm_srli_si128(g, 8), _mm_srli_si128(b, 8)));
      }
      alignas(32) int32_t lanes[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
      for (int32_t l : lanes) sum += l;
    }
#endif
    for (; i < n; ++i) sum += detail::pil_luma(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
  } else {
    for (int64_t i = 0; i < n; ++i) sum += p[i];
  }
  return n ? static_cast<int>(static_cast<double>(sum) / static_cast<double>(n) + 0.5) : 0;
}

// ImageEnhance.Contrast(img).enhance(factor): a blend with the mean grey level.
inline void adjust_contrast_(Image& img, double factor) {
  check_color_image(img, "adjust_contrast");
  WANWU_CHECK_VALUE(factor >= 0.0, "adjust_contrast: factor must be non-negative, got ", factor);
  detail::blend_with_constant(img, pil_mean_gray(img), static_cast<float>(factor));
}

// ImageEnhance.Color(img).enhance(factor): a blend with the image's own greyscale version.
// A greyscale image is its own degenerate image, so nothing changes (as in PIL).
inline void adjust_saturation_(Image& img, double factor) {
  check_color_image(img, "adjust_saturation");
  WANWU_CHECK_VALUE(factor >= 0.0, "adjust_saturation: factor must be non-negative, got ", factor);
  if (img.channels() == 1) return;
  // Pillow blends in float32: y + alpha * (x - y). The product is exact in double and rounded to
  // float by the cast (no FMA can span the conversion), the sum is a float add; clamping before
  // the truncating conversion equals Pillow's clip-then-truncate.
  const double alpha = static_cast<double>(static_cast<float>(factor));
  uint8_t* p = img.u8();
  const int64_t n = img.height() * img.width();
  int64_t i = 0;
#if defined(__AVX2__)
  const __m256 a = _mm256_set1_ps(static_cast<float>(factor));
  for (; i + 16 <= n; i += 16) {
    __m128i r, g, b;
    detail::rgb_split16(p + 3 * i, r, g, b);
    const __m128i rh = _mm_srli_si128(r, 8), gh = _mm_srli_si128(g, 8), bh = _mm_srli_si128(b, 8);
    const __m256i ylo = detail::luma8(r, g, b), yhi = detail::luma8(rh, gh, bh);
    const auto blend16 = [&](__m128i lo, __m128i hi) {
      return detail::pack16(detail::blend8(ylo, _mm256_cvtepu8_epi32(lo), a),
                            detail::blend8(yhi, _mm256_cvtepu8_epi32(hi), a));
    };
    detail::rgb_join16(blend16(r, rh), blend16(g, gh), blend16(b, bh), p + 3 * i);
  }
#endif
  for (; i < n; ++i) {
    const int r = p[3 * i], g = p[3 * i + 1], b = p[3 * i + 2];
    const int y = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    const float yf = static_cast<float>(y);
    float v0 = yf + static_cast<float>(alpha * static_cast<double>(r - y));
    float v1 = yf + static_cast<float>(alpha * static_cast<double>(g - y));
    float v2 = yf + static_cast<float>(alpha * static_cast<double>(b - y));
    v0 = std::min(std::max(v0, 0.0f), 255.0f);
    v1 = std::min(std::max(v1, 0.0f), 255.0f);
    v2 = std::min(std::max(v2, 0.0f), 255.0f);
    p[3 * i] = static_cast<uint8_t>(static_cast<int>(v0));
    p[3 * i + 1] = static_cast<uint8_t>(static_cast<int>(v1));
    p[3 * i + 2] = static_cast<uint8_t>(static_cast<int>(v2));
  }
}

// torchvision's F_pil.adjust_hue: RGB -> HSV (Pillow), H += uint8(factor * 255) with
// wrap-around, HSV -> RGB (Pillow). factor in [-0.5, 0.5]; greyscale images are returned as is.
inline void adjust_hue_(Image& img, double factor) {
  check_color_image(img, "adjust_hue");
  WANWU_CHECK_VALUE(factor >= -0.5 && factor <= 0.5, "adjust_hue: factor (", factor, ") is not in [-0.5, 0.5]");
  if (img.channels() == 1) return;
  // np.uint8(factor * 255): truncation toward zero, then modulo 256.
  const int shift = static_cast<int>(static_cast<uint8_t>(static_cast<int>(factor * 255.0)));
  // Even a zero shift goes through the HSV round trip, which is not the identity in Pillow.
  uint8_t* p = img.u8();
  const int64_t n = img.height() * img.width();
  int64_t i = 0;
#if defined(__AVX2__)
  for (; i + 16 <= n; i += 16) {
    __m128i r, g, b;
    detail::rgb_split16(p + 3 * i, r, g, b);
    __m256i ro[2], go[2], bo[2];
    detail::hue_rotate8(_mm256_cvtepu8_epi32(r), _mm256_cvtepu8_epi32(g), _mm256_cvtepu8_epi32(b), shift, ro[0],
                        go[0], bo[0]);
    detail::hue_rotate8(_mm256_cvtepu8_epi32(_mm_srli_si128(r, 8)), _mm256_cvtepu8_epi32(_mm_srli_si128(g, 8)),
                        _mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), shift, ro[1], go[1], bo[1]);
    detail::rgb_join16(detail::pack16(ro[0], ro[1]), detail::pack16(go[0], go[1]), detail::pack16(bo[0], bo[1]),
                       p + 3 * i);
  }
#endif
  for (; i < n; ++i) {
    int h, s, v;
    detail::pil_rgb_to_hsv(p[3 * i], p[3 * i + 1], p[3 * i + 2], h, s, v);
    detail::pil_hsv_to_rgb((h + shift) & 255, s, v, p + 3 * i);
  }
}

// Pillow's convert("L") (1 channel) or convert("L").convert("RGB") (3 equal channels).
inline Image to_grayscale(const Image& img, int64_t out_channels) {
  check_color_image(img, "to_grayscale");
  WANWU_CHECK_VALUE(out_channels == 1 || out_channels == 3, "to_grayscale: out_channels must be 1 or 3, got ",
                    out_channels);
  Image out(img.height(), img.width(), out_channels, PixelType::u8);
  const uint8_t* p = img.u8();
  uint8_t* o = out.u8();
  const int64_t n = img.height() * img.width();
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t g = img.channels() == 3 ? detail::pil_luma(p[3 * i], p[3 * i + 1], p[3 * i + 2]) : p[i];
    for (int64_t c = 0; c < out_channels; ++c) o[i * out_channels + c] = g;
  }
  return out;
}

// ---- to float, normalize, erase ----

namespace detail {
inline void check_mean_std(const std::vector<double>& mean, const std::vector<double>& std, int64_t channels,
                           const char* op) {
  WANWU_CHECK_VALUE(mean.size() == std.size(), op, ": mean has ", mean.size(), " values but std has ", std.size());
  WANWU_CHECK_VALUE(static_cast<int64_t>(mean.size()) == channels || mean.size() == 1, op, ": ", mean.size(),
                    " mean/std values for an image with ", channels, " channels");
  for (double s : std) WANWU_CHECK_VALUE(s != 0.0 && std::isfinite(s), op, ": std must be finite and nonzero, got ", s);
}
}  // namespace detail

// ToTensor: u8 -> f32 in [0, 1] (x / 255 in float32). f32 input is returned unchanged.
inline Image to_float(Image img) {
  if (img.type() == PixelType::f32) return img;
  Image out(img.height(), img.width(), img.channels(), PixelType::f32);
  std::array<float, 256> lut;
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<float>(v) / 255.0f;
  const uint8_t* p = img.u8();
  float* o = out.f32();
  const int64_t n = img.numel();
  for (int64_t i = 0; i < n; ++i) o[i] = lut[p[i]];
  return out;
}

// Normalize: (x - mean[c]) / std[c] in float32 on an f32 image; on a u8 image this is
// ToTensor followed by Normalize, as one lookup per value (identical float results).
inline Image normalize(Image img, const std::vector<double>& mean, const std::vector<double>& std) {
  detail::check_mean_std(mean, std, img.channels(), "normalize");
  const int64_t C = img.channels();
  std::vector<float> m(C), s(C);
  for (int64_t c = 0; c < C; ++c) {
    m[c] = static_cast<float>(mean[mean.size() == 1 ? 0 : c]);
    s[c] = static_cast<float>(std[std.size() == 1 ? 0 : c]);
  }
  const int64_t n = img.height() * img.width();
  if (img.type() == PixelType::f32) {
    float* p = img.f32();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < C; ++c) p[i * C + c] = (p[i * C + c] - m[c]) / s[c];
    return img;
  }
  std::vector<float> lut(static_cast<size_t>(C) * 256);
  for (int64_t c = 0; c < C; ++c)
    for (int v = 0; v < 256; ++v) lut[c * 256 + v] = (static_cast<float>(v) / 255.0f - m[c]) / s[c];
  Image out(img.height(), img.width(), C, PixelType::f32);
  const uint8_t* p = img.u8();
  float* o = out.f32();
  if (C == 3) {
    const float *l0 = lut.data(), *l1 = l0 + 256, *l2 = l1 + 256;
    for (int64_t i = 0; i < n; ++i) {
      o[3 * i] = l0[p[3 * i]];
      o[3 * i + 1] = l1[p[3 * i + 1]];
      o[3 * i + 2] = l2[p[3 * i + 2]];
    }
  } else {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < C; ++c) o[i * C + c] = lut[c * 256 + p[i * C + c]];
  }
  return out;
}

// What RandomErasing writes into the box: per-channel constants, or standard normal noise per
// value (torchvision's value="random").
struct EraseValue {
  enum class Kind : uint8_t { constant, random_normal };
  Kind kind = Kind::constant;
  std::vector<double> values{0.0};  // one value, or one per channel
  static EraseValue constant(std::vector<double> v) { return {Kind::constant, std::move(v)}; }
  static EraseValue random_normal() { return {Kind::random_normal, {}}; }
};

// F.erase: overwrite the box (inside the image). Random noise needs an f32 image and a stream.
inline void erase_(Image& img, const CropBox& box, const EraseValue& value, SampleRng* rng = nullptr) {
  WANWU_CHECK_VALUE(box.height >= 0 && box.width >= 0 && box.top >= 0 && box.left >= 0 &&
                        box.top + box.height <= img.height() && box.left + box.width <= img.width(),
                    "erase: box (top ", box.top, ", left ", box.left, ", ", box.height, "x", box.width,
                    ") is not inside the image ", img.describe());
  const int64_t C = img.channels(), W = img.width();
  if (value.kind == EraseValue::Kind::random_normal) {
    WANWU_CHECK_T(DTypeError, img.type() == PixelType::f32, "erase: random values need an f32 image, got ",
                  img.describe());
    WANWU_CHECK_VALUE(rng != nullptr, "erase: random values need a random stream");
    float* p = img.f32();
    // torchvision draws a [C, h, w] block; the values land channel by channel.
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < box.height; ++y)
        for (int64_t x = 0; x < box.width; ++x)
          p[((box.top + y) * W + box.left + x) * C + c] = static_cast<float>(rng->normal());
    return;
  }
  WANWU_CHECK_VALUE(value.values.size() == 1 || static_cast<int64_t>(value.values.size()) == C, "erase: ",
                    value.values.size(), " values for an image with ", C, " channels");
  std::vector<double> v(C);
  for (int64_t c = 0; c < C; ++c) v[c] = value.values[value.values.size() == 1 ? 0 : c];
  if (img.type() == PixelType::f32) {
    float* p = img.f32();
    for (int64_t y = box.top; y < box.top + box.height; ++y)
      for (int64_t x = box.left; x < box.left + box.width; ++x)
        for (int64_t c = 0; c < C; ++c) p[(y * W + x) * C + c] = static_cast<float>(v[c]);
  } else {
    uint8_t* p = img.u8();
    for (int64_t y = box.top; y < box.top + box.height; ++y)
      for (int64_t x = box.left; x < box.left + box.width; ++x)
        for (int64_t c = 0; c < C; ++c) p[(y * W + x) * C + c] = static_cast<uint8_t>(std::clamp(v[c], 0.0, 255.0));
  }
}

}  // namespace wanwu::data
