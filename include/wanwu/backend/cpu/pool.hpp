// CPU pooling over NHWC tensors: max (with indices), average, adaptive average. Channels are the
// contiguous innermost axis, so every loop runs over a window of pixels with a vectorized channel
// loop inside. The window arithmetic follows PyTorch's CPU kernels exactly (padding, dilation,
// count_include_pad, divisor_override, adaptive start/end indices), so outputs match bit for bit
// in f64. Backward passes parallelize over (image, block of channels): different threads never
// write the same input gradient element.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "parallel.hpp"

namespace wanwu::cpu {

struct PoolGeom {
  int64_t N, H, W, C, Ho, Wo;
  PoolGeom(const Shape& x, const Shape& out) : N(x[0]), H(x[1]), W(x[2]), C(x[3]), Ho(out[1]), Wo(out[2]) {}
};

inline constexpr int64_t kChannelBlock = 64;

// Calls f(n, c0, c1) over images and channel blocks, in parallel.
template <class F>
void for_image_channel_blocks(int64_t N, int64_t C, F&& f) {
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
  parallel_for(N * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / blocks, c0 = (t % blocks) * kChannelBlock;
      f(n, c0, std::min(C, c0 + kChannelBlock));
    }
  });
}

template <class T>
void max_pool_forward(T* out, int64_t* idx, const T* x, const PoolGeom& g, const Pool2dParams& p) {
  parallel_for(g.N * g.Ho, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / g.Ho, oh = t % g.Ho;
      int64_t h0 = oh * p.stride_h - p.pad_h;
      while (h0 < 0) h0 += p.dilation_h;
      const int64_t h1 = std::min(g.H, oh * p.stride_h - p.pad_h + (p.kernel_h - 1) * p.dilation_h + 1);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        int64_t w0 = ow * p.stride_w - p.pad_w;
        while (w0 < 0) w0 += p.dilation_w;
        const int64_t w1 = std::min(g.W, ow * p.stride_w - p.pad_w + (p.kernel_w - 1) * p.dilation_w + 1);
        T* o = out + ((n * g.Ho + oh) * g.Wo + ow) * g.C;
        int64_t* oi = idx + ((n * g.Ho + oh) * g.Wo + ow) * g.C;
        // A dilated window can step over a small input entirely (taps at -2 and 1 of a 1-pixel
        // side): -inf as PyTorch gives, and index -1, which the backward skips (PyTorch's index
        // there points past the input).
        const int64_t first = h0 < h1 && w0 < w1 ? h0 * g.W + w0 : -1;
        for (int64_t c = 0; c < g.C; ++c) {
          o[c] = -std::numeric_limits<T>::infinity();
          oi[c] = first;
        }
        for (int64_t ih = h0; ih < h1; ih += p.dilation_h)
          for (int64_t iw = w0; iw < w1; iw += p.dilation_w) {
            const T* xp = x + ((n * g.H + ih) * g.W + iw) * g.C;
            const int64_t pos = ih * g.W + iw;
#pragma omp simd
            for (int64_t c = 0; c < g.C; ++c) {
              const T v = xp[c];
              const bool take = v > o[c] || v != v;  // NaN wins, as in PyTorch
              o[c] = take ? v : o[c];
              oi[c] = take ? pos : oi[c];
            }
          }
      }
    }
  });
}

template <class T>
void max_pool_backward(T* gx, const T* gy, const int64_t* idx, const PoolGeom& g) {
  std::memset(gx, 0, sizeof(T) * static_cast<size_t>(g.N * g.H * g.W * g.C));
  for_image_channel_blocks(g.N, g.C, [&](int64_t n, int64_t c0, int64_t c1) {
    T* gxn = gx + n * g.H * g.W * g.C;
    for (int64_t q = 0; q < g.Ho * g.Wo; ++q) {
      const T* gp = gy + (n * g.Ho * g.Wo + q) * g.C;
      const int64_t* ip = idx + (n * g.Ho * g.Wo + q) * g.C;
      for (int64_t c = c0; c < c1; ++c)
        if (ip[c] >= 0) gxn[ip[c] * g.C + c] += gp[c];
    }
  });
}

// PyTorch's avg_pool2d window: the divisor counts padding when count_include_pad (but never the
// part of the window beyond the padding), else only the input pixels.
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  double divisor;
};
inline AvgWindow avg_window(int64_t oh, int64_t ow, const PoolGeom& g, const Pool2dParams& p) {
  int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
  int64_t h1 = std::min(h0 + p.kernel_h, g.H + p.pad_h), w1 = std::min(w0 + p.kernel_w, g.W + p.pad_w);
  const int64_t pool_size = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, g.H);
  w1 = std::min(w1, g.W);
  double div = p.divisor_override ? static_cast<double>(p.divisor_override)
               : p.count_include_pad ? static_cast<double>(pool_size)
                                     : static_cast<double>((h1 - h0) * (w1 - w0));
  return {h0, h1, w0, w1, div};
}

template <class T>
void avg_pool_forward(T* out, const T* x, const PoolGeom& g, const Pool2dParams& p) {
  parallel_for(g.N * g.Ho, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / g.Ho, oh = t % g.Ho;
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const AvgWindow wnd = avg_window(oh, ow, g, p);
        T* o = out + ((n * g.Ho + oh) * g.Wo + ow) * g.C;
        for (int64_t c = 0; c < g.C; ++c) o[c] = T(0);
        if (wnd.h0 >= wnd.h1 || wnd.w0 >= wnd.w1) continue;
        for (int64_t ih = wnd.h0; ih < wnd.h1; ++ih)
          for (int64_t iw = wnd.w0; iw < wnd.w1; ++iw) {
            const T* xp = x + ((n * g.H + ih) * g.W + iw) * g.C;
#pragma omp simd
            for (int64_t c = 0; c < g.C; ++c) o[c] += xp[c];
          }
        const T inv = static_cast<T>(1.0 / wnd.divisor);
        for (int64_t c = 0; c < g.C; ++c) o[c] *= inv;
      }
    }
  });
}

template <class T>
void avg_pool_backward(T* gx, const T* gy, const PoolGeom& g, const Pool2dParams& p) {
  std::memset(gx, 0, sizeof(T) * static_cast<size_t>(g.N * g.H * g.W * g.C));
  for_image_channel_blocks(g.N, g.C, [&](int64_t n, int64_t c0, int64_t c1) {
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const AvgWindow wnd = avg_window(oh, ow, g, p);
        if (wnd.h0 >= wnd.h1 || wnd.w0 >= wnd.w1) continue;
        const T* gp = gy + ((n * g.Ho + oh) * g.Wo + ow) * g.C;
        const T inv = static_cast<T>(1.0 / wnd.divisor);
        for (int64_t ih = wnd.h0; ih < wnd.h1; ++ih)
          for (int64_t iw = wnd.w0; iw < wnd.w1; ++iw) {
            T* xp = gx + ((n * g.H + ih) * g.W + iw) * g.C;
#pragma omp simd
            for (int64_t c = c0; c < c1; ++c) xp[c] += gp[c] * inv;
          }
      }
  });
}

// Adaptive windows: [floor(i * in / out), ceil((i + 1) * in / out)).
inline int64_t adaptive_start(int64_t i, int64_t out, int64_t in) { return (i * in) / out; }
inline int64_t adaptive_end(int64_t i, int64_t out, int64_t in) { return ((i + 1) * in + out - 1) / out; }

template <class T>
void adaptive_avg_forward(T* out, const T* x, const PoolGeom& g) {
  parallel_for(g.N * g.Ho, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / g.Ho, oh = t % g.Ho;
      const int64_t h0 = adaptive_start(oh, g.Ho, g.H), h1 = adaptive_end(oh, g.Ho, g.H);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const int64_t w0 = adaptive_start(ow, g.Wo, g.W), w1 = adaptive_end(ow, g.Wo, g.W);
        T* o = out + ((n * g.Ho + oh) * g.Wo + ow) * g.C;
        for (int64_t c = 0; c < g.C; ++c) o[c] = T(0);
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            const T* xp = x + ((n * g.H + ih) * g.W + iw) * g.C;
#pragma omp simd
            for (int64_t c = 0; c < g.C; ++c) o[c] += xp[c];
          }
        const T inv = static_cast<T>(1.0 / static_cast<double>((h1 - h0) * (w1 - w0)));
        for (int64_t c = 0; c < g.C; ++c) o[c] *= inv;
      }
    }
  });
}

template <class T>
void adaptive_avg_backward(T* gx, const T* gy, const PoolGeom& g) {
  std::memset(gx, 0, sizeof(T) * static_cast<size_t>(g.N * g.H * g.W * g.C));
  for_image_channel_blocks(g.N, g.C, [&](int64_t n, int64_t c0, int64_t c1) {
    for (int64_t oh = 0; oh < g.Ho; ++oh) {
      const int64_t h0 = adaptive_start(oh, g.Ho, g.H), h1 = adaptive_end(oh, g.Ho, g.H);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const int64_t w0 = adaptive_start(ow, g.Wo, g.W), w1 = adaptive_end(ow, g.Wo, g.W);
        const T* gp = gy + ((n * g.Ho + oh) * g.Wo + ow) * g.C;
        const T inv = static_cast<T>(1.0 / static_cast<double>((h1 - h0) * (w1 - w0)));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            T* xp = gx + ((n * g.H + ih) * g.W + iw) * g.C;
#pragma omp simd
            for (int64_t c = c0; c < c1; ++c) xp[c] += gp[c] * inv;
          }
      }
    }
  });
}

}  // namespace wanwu::cpu
