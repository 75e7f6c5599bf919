// Max pooling's input gradient as a gather, the per-element math of the CUDA backward
// (kernels/pool.cuh) kept here so that the CPU tests run it (DESIGN §6).
//
// A scatter (each output's gradient added into the input its index names) needs atomics on a GPU,
// since windows overlap, and 16-bit atomics round the running sum at every addition where the CPU
// rounds once. The gather has each input element visit the few windows that can hold it, add the
// gradients of those whose saved index is this element, in output order and in f32 (f64 for f64),
// and write once: the CPU's sum bit for bit, no atomics, no zeroing pass (PyTorch's channels-last
// max_pool2d backward does the same).
#pragma once

#include <cstdint>

#include "../core/macros.hpp"
#include "backend.hpp"

namespace wanwu {

// The outputs along one axis whose window may hold input position i: [start, end). Output o's
// window spans o * stride - pad + [0, (kernel - 1) * dilation]; with dilation some of them step
// over i, which the caller's index comparison rejects.
WANWU_HD inline void pool_outputs_covering(int64_t i, int64_t pad, int64_t kernel, int64_t dilation, int64_t stride,
                                           int64_t pooled, int64_t& start, int64_t& end) {
  const int64_t lo = i + pad - (kernel - 1) * dilation;  // the first window starting at or after lo
  start = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  const int64_t hi = (i + pad) / stride + 1;  // windows starting after i + pad cannot hold i
  end = hi < pooled ? hi : pooled;
}

// The input gradient at (n, ih, iw, c) of an NHWC input of width W, from grad_out and the forward's
// indices ([N, Ho, Wo, C], index ih * W + iw, -1 for an empty window), summed in A.
template <class A, class T>
WANWU_HD inline A max_pool_grad_at(const T* grad_out, const int64_t* indices, int64_t n, int64_t ih, int64_t iw,
                                   int64_t c, int64_t W, int64_t Ho, int64_t Wo, int64_t C, const Pool2dParams& p) {
  int64_t h0, h1, w0, w1;
  pool_outputs_covering(ih, p.pad_h, p.kernel_h, p.dilation_h, p.stride_h, Ho, h0, h1);
  pool_outputs_covering(iw, p.pad_w, p.kernel_w, p.dilation_w, p.stride_w, Wo, w0, w1);
  const int64_t me = ih * W + iw;
  A s = A(0);
  for (int64_t oh = h0; oh < h1; ++oh) {
    // with dilation, most windows in the range step over the row: skip them before reading indices
    if (p.dilation_h > 1 && (ih + p.pad_h - oh * p.stride_h) % p.dilation_h != 0) continue;
    for (int64_t ow = w0; ow < w1; ++ow) {
      if (p.dilation_w > 1 && (iw + p.pad_w - ow * p.stride_w) % p.dilation_w != 0) continue;
      const int64_t o = ((n * Ho + oh) * Wo + ow) * C + c;
      if (indices[o] == me) s += static_cast<A>(grad_out[o]);
    }
  }
  return s;
}

}  // namespace wanwu
