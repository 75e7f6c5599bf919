// CPU bilinear resize of NHWC tensors, forward and backward, with PyTorch's
// upsample_bilinear2d source-index rule (align_corners true or false, no antialias): the same
// two source rows/columns and weights as PyTorch, so results match to rounding. The channel loop
// is contiguous and vectorized; the backward scatters into the input gradient one image (and
// channel block) per thread.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "parallel.hpp"

namespace wanwu::cpu {

struct LinearTap {
  int64_t i0, i1;     // source indices (i1 == i0 at the border)
  double w0, w1;      // weights
};

inline double bilinear_scale(int64_t in, int64_t out, AlignCorners align) {
  if (align == AlignCorners::yes) return out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
  return static_cast<double>(in) / static_cast<double>(out);
}

inline LinearTap linear_tap(int64_t dst, int64_t in, double scale, AlignCorners align) {
  double src = align == AlignCorners::yes ? scale * static_cast<double>(dst)
                                          : scale * (static_cast<double>(dst) + 0.5) - 0.5;
  if (src < 0) src = 0;
  const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
  const int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
  const double l1 = src - static_cast<double>(i0);
  return {i0, i1, 1.0 - l1, l1};
}

inline std::vector<LinearTap> linear_taps(int64_t in, int64_t out, AlignCorners align) {
  std::vector<LinearTap> t(static_cast<size_t>(out));
  const double s = bilinear_scale(in, out, align);
  for (int64_t o = 0; o < out; ++o) t[o] = linear_tap(o, in, s, align);
  return t;
}

template <class T>
void bilinear_forward_typed(T* out, const T* x, const Shape& xs, const Shape& os, AlignCorners align) {
  const int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3], Ho = os[1], Wo = os[2];
  const auto th = linear_taps(H, Ho, align), tw = linear_taps(W, Wo, align);
  parallel_for(N * Ho, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / Ho, oh = t % Ho;
      const LinearTap& a = th[oh];
      const T* r0 = x + (n * H + a.i0) * W * C;
      const T* r1 = x + (n * H + a.i1) * W * C;
      for (int64_t ow = 0; ow < Wo; ++ow) {
        const LinearTap& c = tw[ow];
        const T w00 = static_cast<T>(a.w0 * c.w0), w01 = static_cast<T>(a.w0 * c.w1);
        const T w10 = static_cast<T>(a.w1 * c.w0), w11 = static_cast<T>(a.w1 * c.w1);
        const T *p00 = r0 + c.i0 * C, *p01 = r0 + c.i1 * C, *p10 = r1 + c.i0 * C, *p11 = r1 + c.i1 * C;
        T* o = out + ((n * Ho + oh) * Wo + ow) * C;
#pragma omp simd
        for (int64_t ch = 0; ch < C; ++ch) o[ch] = w00 * p00[ch] + w01 * p01[ch] + w10 * p10[ch] + w11 * p11[ch];
      }
    }
  });
}

template <class T>
void bilinear_backward_typed(T* gx, const T* gy, const Shape& xs, const Shape& os, AlignCorners align) {
  const int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3], Ho = os[1], Wo = os[2];
  const auto th = linear_taps(H, Ho, align), tw = linear_taps(W, Wo, align);
  std::memset(gx, 0, sizeof(T) * static_cast<size_t>(N * H * W * C));
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (C + kBlock - 1) / kBlock;
  parallel_for(N * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / blocks, c0 = (t % blocks) * kBlock, c1 = std::min(C, c0 + kBlock);
      for (int64_t oh = 0; oh < Ho; ++oh) {
        const LinearTap& a = th[oh];
        T* r0 = gx + (n * H + a.i0) * W * C;
        T* r1 = gx + (n * H + a.i1) * W * C;
        for (int64_t ow = 0; ow < Wo; ++ow) {
          const LinearTap& c = tw[ow];
          const T w00 = static_cast<T>(a.w0 * c.w0), w01 = static_cast<T>(a.w0 * c.w1);
          const T w10 = static_cast<T>(a.w1 * c.w0), w11 = static_cast<T>(a.w1 * c.w1);
          const T* g = gy + ((n * Ho + oh) * Wo + ow) * C;
          for (int64_t ch = c0; ch < c1; ++ch) {
            r0[c.i0 * C + ch] += w00 * g[ch];
            r0[c.i1 * C + ch] += w01 * g[ch];
            r1[c.i0 * C + ch] += w10 * g[ch];
            r1[c.i1 * C + ch] += w11 * g[ch];
          }
        }
      }
    }
  });
}

}  // namespace wanwu::cpu
