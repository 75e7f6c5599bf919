// The forward pass of an ungrouped, undilated NHWC convolution as an implicit GEMM: the GEMM
// kernel of gemm_narrow.hpp reading its A operand straight from the (padded) input instead of
// from an im2col copy.
//
// Why: with NHWC and dilation 1, the K = KH * KW * C values an output pixel multiplies with the
// weight are KH runs of KW * C contiguous input values, one per kernel row, each Wp * C after the
// previous (Wp: the padded row width). The register block of gemm_narrow (kNarrowRows rows) therefore needs no
// column matrix: it keeps one pointer per output row and walks the KH runs. im2col wrote and read
// back KH * KW values per output channel-vector, the whole cost of the strided 3x3 convolutions
// and the 7x7 stem beyond their GEMM (ResNet-50 at batch 4: 137-170 GFLOP/s against the kernel's
// 210-220). Padding is a zero border copied around the input (skipped without padding), a chunk
// of images of at most kConvPadBytes at a time, so that no run is cut at an image edge; the copy
// is one pass over the input where im2col made KH * KW / (stride^2) passes.
//
// Rows go to the threads in blocks as they come free, every panel of the packed weight run over
// kNarrowRows rows before the next (the weight's panels come from L2/L3, the rows' input runs from L1);
// with fewer rows than kNarrowFewRows the threads take the column panels instead, as
// gemm_narrow_packed does. The bias is added as each register block is stored. Used for the forward pass; the gradients keep their GEMM paths.
#pragma once

#include <algorithm>
#include <cstring>

#include "conv_geom.hpp"
#include "gemm_narrow.hpp"
#include "parallel.hpp"
#include "scratch.hpp"

namespace wanwu::cpu {

// Whether the forward pass of g takes the implicit GEMM (the caller has ruled out 1x1 stride 1,
// depthwise and Winograd): one group, dilation 1, some input channels, and a packed weight within
// gemm_narrow's limit.
template <class T>
bool conv_implicit_applies(const ConvGeom& g) {
  return g.G == 1 && g.p.dilation_h == 1 && g.p.dilation_w == 1 && g.N * g.Ho * g.Wo > 0 && g.K > 0 &&
         gemm_narrow_fits<T>(g.O, g.K);
}

// C's rows i < R (pointers c + i * ldc) from the R input runs starting at a[i]: KH runs of `run`
// values each, `run_stride` apart, against one packed panel of B (K = KH * run rows).
template <class T, int R>
WANWU_ALWAYS_INLINE void conv_implicit_block(const T* const* a, int64_t KH, int64_t run, int64_t run_stride,
                                             const T* bp, T* c, int64_t ldc, int cols, const T* bias) {
  NarrowBlock<T, R> blk;
  for (int64_t kh = 0; kh < KH; ++kh) {
    const T* ai[R];
    for (int i = 0; i < R; ++i) ai[i] = a[i] + kh * run_stride;
    for (int64_t j = 0; j < run; ++j, bp += NarrowBlock<T, R>::W) blk.step(bp, [&](int i) { return ai[i][j]; });
  }
  blk.store(c, ldc, cols, bias);
}

template <class T>
WANWU_ALWAYS_INLINE void conv_implicit_panel(int rows, const T* const* a, int64_t KH, int64_t run,
                                             int64_t run_stride, const T* bp, T* c, int64_t ldc, int cols,
                                             const T* bias) {
  with_rows<kNarrowRows>(rows, [&](auto r) {
    conv_implicit_block<T, decltype(r)::value>(a, KH, run, run_stride, bp, c, ldc, cols, bias);
  });
}

// Images [n0, n1) of the input with a zero border of the convolution's padding: [n1 - n0, Hp, Wp, C].
template <class T>
void conv_pad_input(const T* x, const ConvGeom& g, int64_t n0, int64_t n1, int64_t Hp, int64_t Wp, T* xp) {
  const int64_t pt = g.p.pad_top, pl = g.p.pad_left, C = g.C;
  parallel_for((n1 - n0) * Hp, 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t n = n0 + r / Hp, h = r % Hp - pt;
      T* dst = xp + r * Wp * C;
      if (h < 0 || h >= g.H) {
        std::memset(dst, 0, sizeof(T) * Wp * C);
        continue;
      }
      std::memset(dst, 0, sizeof(T) * pl * C);
      std::memcpy(dst + pl * C, x + (n * g.H + h) * g.W * C, sizeof(T) * g.W * C);
      std::memset(dst + (pl + g.W) * C, 0, sizeof(T) * (Wp - pl - g.W) * C);
    }
  });
}

// The zero-bordered copy is made for a chunk of images at a time, at most this large (one image
// at least), so that a training batch does not hold a padded copy of its whole input.
inline constexpr int64_t kConvPadBytes = int64_t(8) << 20;

// out[N*Ho*Wo, O] = conv(x, w) (+ bias) with w packed by gemm_narrow_pack as B = w^T [K, O] (bp).
template <class T>
void conv_implicit_forward(T* out, const T* x, const T* bp, const T* bias, const ConvGeom& g) {
  constexpr int R = kNarrowRows, W = 2 * Simd<T>::L;
  const bool padded = g.p.pad_top || g.p.pad_bottom || g.p.pad_left || g.p.pad_right;
  const int64_t Hp = g.H + g.p.pad_top + g.p.pad_bottom, Wp = g.W + g.p.pad_left + g.p.pad_right;
  const int64_t image = Hp * Wp * g.C;
  const int64_t chunk = padded ? std::clamp<int64_t>(kConvPadBytes / (image * int64_t(sizeof(T))), 1, g.N) : g.N;
  const Scratch<T> xpad(padded ? chunk * image : 0);
  const int64_t P = g.Ho * g.Wo, run = g.KW * g.C, run_stride = Wp * g.C;
  const int64_t panels = (g.O + W - 1) / W, K = g.KH * run;
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t n1 = std::min(g.N, n0 + chunk), m0 = n0 * P, m1 = n1 * P;
    if (padded) conv_pad_input(x, g, n0, n1, Hp, Wp, xpad.data());
    // The padded copy holds images [n0, n1); without padding the input is read as it is.
    const T* xs = padded ? xpad.data() : x;
    const int64_t first = padded ? n0 : 0;
    // The first input value output row r reads (its first kernel row's run).
    auto row_start = [&](int64_t r) {
      const int64_t n = r / P, p = r % P, oh = p / g.Wo, ow = p % g.Wo;
      return xs + (n - first) * image + ((oh * g.p.stride_h) * Wp + ow * g.p.stride_w) * g.C;
    };
    auto block = [&](int64_t r, int rows, int64_t p0, int64_t p1) {
      const T* a[R];
      for (int i = 0; i < rows; ++i) a[i] = row_start(r + i);
      for (int64_t p = p0; p < p1; ++p) {
        const int cols = static_cast<int>(std::min<int64_t>(W, g.O - p * W));
        conv_implicit_panel<T>(rows, a, g.KH, run, run_stride, bp + p * K * W, out + r * g.O + p * W, g.O, cols,
                               bias ? bias + p * W : nullptr);
      }
    };
    if (m1 - m0 < kNarrowFewRows) {  // each panel of B once, over all rows
      parallel_for_dynamic(panels, 1, [&](int64_t pb, int64_t pe) {
        for (int64_t p = pb; p < pe; ++p)
          for (int64_t r = m0; r < m1; r += R) block(r, static_cast<int>(std::min<int64_t>(R, m1 - r)), p, p + 1);
      });
      continue;
    }
    parallel_for_dynamic(m1 - m0, gemm_narrow_row_block(m1 - m0), [&](int64_t b, int64_t e) {
      const int64_t r1 = m0 + e;
      for (int64_t r = m0 + b; r < r1; r += R) block(r, static_cast<int>(std::min<int64_t>(R, r1 - r)), 0, panels);
    });
  }
}

}  // namespace wanwu::cpu
