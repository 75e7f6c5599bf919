// CUDA pooling and bilinear resizing over NHWC tensors, forward and backward. One thread per
// output element (channels innermost, so a warp reads 32 neighbouring channels of one pixel).
// Window arithmetic is PyTorch's (and the CPU backend's, backend/cpu/pool.hpp, resize.hpp):
// padding, dilation, ceil mode via the output size, count_include_pad, divisor_override,
// adaptive [floor, ceil) windows, and upsample_bilinear2d's source index rule. Max pooling's
// backward is a gather (backend/pool_gather.hpp: one thread per input element, the CPU's sum bit
// for bit); the average and bilinear backwards scatter each output gradient into its window with
// atomics (their windows rarely overlap in a classifier, and a gather would need the inverse
// window arithmetic of every mode).
#pragma once

#include <wanwu/backend/pool_gather.hpp>

#include "index.cuh"

namespace wanwu::cuda {

// An output element's (n, oh, ow, c): with FastDivmods (backend/functors.hpp) while the output's
// element count fits 31 bits, 64-bit division beyond. Three 64-bit divisions and remainders per
// element are software routines on the GPU, dozens of instructions each, in kernels that otherwise
// read a few values per element (the stem's max pool: 51 M outputs at batch 256).
struct PoolGeom {
  int64_t N, H, W, C, Ho, Wo;
  FastDivmod fc, fwo, fho;
  bool fast;
  PoolGeom(const Shape& x, const Shape& out)
      : N(x[0]), H(x[1]), W(x[2]), C(x[3]), Ho(out[1]), Wo(out[2]),
        fast(out[0] * out[1] * out[2] * out[3] < (int64_t(1) << 31) && C > 0 && Wo > 0 && Ho > 0) {
    if (fast) {
      fc = FastDivmod(static_cast<uint32_t>(C));
      fwo = FastDivmod(static_cast<uint32_t>(Wo));
      fho = FastDivmod(static_cast<uint32_t>(Ho));
    }
  }
  __device__ void split(int64_t i, int64_t& n, int64_t& oh, int64_t& ow, int64_t& c) const {
    if (fast) {
      const uint32_t u = static_cast<uint32_t>(i), t1 = fc.div(u), t2 = fwo.div(t1), t3 = fho.div(t2);
      c = u - t1 * static_cast<uint32_t>(C);
      ow = t1 - t2 * static_cast<uint32_t>(Wo);
      oh = t2 - t3 * static_cast<uint32_t>(Ho);
      n = t3;
      return;
    }
    c = i % C;
    int64_t t = i / C;
    ow = t % Wo;
    t /= Wo;
    oh = t % Ho;
    n = t / Ho;
  }
};

template <class T>
__global__ void max_pool_forward_kernel(T* out, int64_t* idx, const T* x, PoolGeom g, Pool2dParams p, int64_t total) {
  using A = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, oh, ow, c;
    g.split(i, n, oh, ow, c);
    int64_t h0 = oh * p.stride_h - p.pad_h;
    while (h0 < 0) h0 += p.dilation_h;
    const int64_t h1e = oh * p.stride_h - p.pad_h + (p.kernel_h - 1) * p.dilation_h + 1;
    const int64_t h1 = h1e < g.H ? h1e : g.H;
    int64_t w0 = ow * p.stride_w - p.pad_w;
    while (w0 < 0) w0 += p.dilation_w;
    const int64_t w1e = ow * p.stride_w - p.pad_w + (p.kernel_w - 1) * p.dilation_w + 1;
    const int64_t w1 = w1e < g.W ? w1e : g.W;
    A best = -std::numeric_limits<A>::infinity();
    int64_t bi = h0 < h1 && w0 < w1 ? h0 * g.W + w0 : -1;  // -1: the window holds no input pixel
    for (int64_t ih = h0; ih < h1; ih += p.dilation_h)
      for (int64_t iw = w0; iw < w1; iw += p.dilation_w) {
        const A v = cv<A>(x[((n * g.H + ih) * g.W + iw) * g.C + c]);
        if (v > best || v != v) {
          best = v;
          bi = ih * g.W + iw;
        }
      }
    out[i] = cv<T>(best);
    idx[i] = bi;
  }
}

// One thread per input element: gi splits an input index (its "output" is the input), g holds the
// pooled sizes.
template <class T>
__global__ void max_pool_backward_kernel(T* gx, const T* gy, const int64_t* idx, PoolGeom gi, PoolGeom g,
                                         Pool2dParams p, int64_t total) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, ih, iw, c;
    gi.split(i, n, ih, iw, c);
    gx[i] = cv<T>(max_pool_grad_at<A>(gy, idx, n, ih, iw, c, g.W, g.Ho, g.Wo, g.C, p));
  }
}

struct AvgWindow {
  int64_t h0, h1, w0, w1;
  double divisor;
};
__device__ inline AvgWindow avg_window(int64_t oh, int64_t ow, const PoolGeom& g, const Pool2dParams& p) {
  int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
  int64_t h1 = h0 + p.kernel_h < g.H + p.pad_h ? h0 + p.kernel_h : g.H + p.pad_h;
  int64_t w1 = w0 + p.kernel_w < g.W + p.pad_w ? w0 + p.kernel_w : g.W + p.pad_w;
  const int64_t pool_size = (h1 - h0) * (w1 - w0);
  h0 = h0 > 0 ? h0 : 0;
  w0 = w0 > 0 ? w0 : 0;
  h1 = h1 < g.H ? h1 : g.H;
  w1 = w1 < g.W ? w1 : g.W;
  const double div = p.divisor_override ? static_cast<double>(p.divisor_override)
                     : p.count_include_pad ? static_cast<double>(pool_size)
                                           : static_cast<double>((h1 - h0) * (w1 - w0));
  return {h0, h1, w0, w1, div};
}

__device__ inline int64_t adaptive_start(int64_t i, int64_t out, int64_t in) { return (i * in) / out; }
__device__ inline int64_t adaptive_end(int64_t i, int64_t out, int64_t in) { return ((i + 1) * in + out - 1) / out; }

// Adaptive == true ignores p and uses the adaptive windows.
template <class T, bool Adaptive>
__global__ void avg_pool_forward_kernel(T* out, const T* x, PoolGeom g, Pool2dParams p, int64_t total) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, oh, ow, c;
    g.split(i, n, oh, ow, c);
    AvgWindow wnd;
    if constexpr (Adaptive) {
      wnd = {adaptive_start(oh, g.Ho, g.H), adaptive_end(oh, g.Ho, g.H), adaptive_start(ow, g.Wo, g.W),
             adaptive_end(ow, g.Wo, g.W), 0.0};
      wnd.divisor = static_cast<double>((wnd.h1 - wnd.h0) * (wnd.w1 - wnd.w0));
    } else {
      wnd = avg_window(oh, ow, g, p);
    }
    A s = 0;
    for (int64_t ih = wnd.h0; ih < wnd.h1; ++ih)
      for (int64_t iw = wnd.w0; iw < wnd.w1; ++iw) s += cv<A>(x[((n * g.H + ih) * g.W + iw) * g.C + c]);
    const bool empty_window = wnd.h0 >= wnd.h1 || wnd.w0 >= wnd.w1;
    out[i] = cv<T>(empty_window ? A(0) : A(s * A(1.0 / wnd.divisor)));
  }
}

template <class T, bool Adaptive>
__global__ void avg_pool_backward_kernel(T* gx, const T* gy, PoolGeom g, Pool2dParams p, int64_t total) {
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, oh, ow, c;
    g.split(i, n, oh, ow, c);
    AvgWindow wnd;
    if constexpr (Adaptive) {
      wnd = {adaptive_start(oh, g.Ho, g.H), adaptive_end(oh, g.Ho, g.H), adaptive_start(ow, g.Wo, g.W),
             adaptive_end(ow, g.Wo, g.W), 0.0};
      wnd.divisor = static_cast<double>((wnd.h1 - wnd.h0) * (wnd.w1 - wnd.w0));
    } else {
      wnd = avg_window(oh, ow, g, p);
    }
    if (wnd.h0 >= wnd.h1 || wnd.w0 >= wnd.w1) continue;
    const C v = cv<C>(gy[i]) * C(1.0 / wnd.divisor);
    for (int64_t ih = wnd.h0; ih < wnd.h1; ++ih)
      for (int64_t iw = wnd.w0; iw < wnd.w1; ++iw) atomic_add(gx + ((n * g.H + ih) * g.W + iw) * g.C + c, v);
  }
}

// ---- bilinear (upsample_bilinear2d) ----
struct Tap {
  int64_t i0, i1;
  double w0, w1;
};
__device__ inline Tap linear_tap(int64_t dst, int64_t in, int64_t out, AlignCorners align) {
  const double scale = align == AlignCorners::yes ? (out > 1 ? double(in - 1) / double(out - 1) : 0.0)
                                                  : double(in) / double(out);
  double src = align == AlignCorners::yes ? scale * double(dst) : scale * (double(dst) + 0.5) - 0.5;
  if (src < 0) src = 0;
  int64_t i0 = static_cast<int64_t>(src);
  if (i0 > in - 1) i0 = in - 1;
  const int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
  const double l1 = src - double(i0);
  return {i0, i1, 1.0 - l1, l1};
}

template <class T, bool Backward>
__global__ void bilinear_kernel(T* dst, const T* src, PoolGeom g, AlignCorners align, int64_t total) {
  using A = acc_t<T>;
  // forward: dst = out, src = x; backward: dst = grad_x, src = grad_out
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, oh, ow, c;
    g.split(i, n, oh, ow, c);
    const Tap a = linear_tap(oh, g.H, g.Ho, align), b = linear_tap(ow, g.W, g.Wo, align);
    const int64_t r0 = (n * g.H + a.i0) * g.W, r1 = (n * g.H + a.i1) * g.W;
    const A w00 = A(a.w0 * b.w0), w01 = A(a.w0 * b.w1), w10 = A(a.w1 * b.w0), w11 = A(a.w1 * b.w1);
    if constexpr (Backward) {
      const A gv = cv<A>(src[i]);
      atomic_add(dst + (r0 + b.i0) * g.C + c, compute_t<T>(w00 * gv));
      atomic_add(dst + (r0 + b.i1) * g.C + c, compute_t<T>(w01 * gv));
      atomic_add(dst + (r1 + b.i0) * g.C + c, compute_t<T>(w10 * gv));
      atomic_add(dst + (r1 + b.i1) * g.C + c, compute_t<T>(w11 * gv));
    } else {
      dst[i] = cv<T>(w00 * cv<A>(src[(r0 + b.i0) * g.C + c]) + w01 * cv<A>(src[(r0 + b.i1) * g.C + c]) +
                     w10 * cv<A>(src[(r1 + b.i0) * g.C + c]) + w11 * cv<A>(src[(r1 + b.i1) * g.C + c]));
    }
  }
}

inline void max_pool2d_forward(const Tensor& out, const Tensor& idx, const Tensor& x_, const Pool2dParams& p) {
  const Tensor x = contiguous(x_);
  const PoolGeom g(x.shape(), out.shape());
  const int64_t total = out.numel();
  if (total == 0) return;
  dispatch_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    max_pool_forward_kernel<T><<<blocks_for(total), kThreads, 0, stream(x.device().index)>>>(
        ptr<T>(out), ptr<int64_t>(idx), ptr<const T>(x), g, p, total);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void max_pool2d_backward(const Tensor& gx, const Tensor& gy_, const Tensor& idx_, const Pool2dParams& p) {
  const Tensor gy = contiguous(gy_), idx = contiguous(idx_);
  const PoolGeom gi(gx.shape(), gx.shape()), g(gx.shape(), gy.shape());
  const int64_t total = gx.numel();
  if (total == 0) return;
  dispatch_floating(gx.dtype(), "max_pool2d backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    max_pool_backward_kernel<T><<<blocks_for(total), kThreads, 0, stream(gx.device().index)>>>(
        ptr<T>(gx), ptr<const T>(gy), ptr<const int64_t>(idx), gi, g, p, total);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

template <bool Adaptive>
void avg_pool_forward(const Tensor& out, const Tensor& x_, const Pool2dParams& p, const char* name) {
  const Tensor x = contiguous(x_);
  const PoolGeom g(x.shape(), out.shape());
  const int64_t total = out.numel();
  if (total == 0) return;
  dispatch_floating(x.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    avg_pool_forward_kernel<T, Adaptive><<<blocks_for(total), kThreads, 0, stream(x.device().index)>>>(
        ptr<T>(out), ptr<const T>(x), g, p, total);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

template <bool Adaptive>
void avg_pool_backward(const Tensor& gx, const Tensor& gy_, const Pool2dParams& p, const char* name) {
  const Tensor gy = contiguous(gy_);
  const PoolGeom g(gx.shape(), gy.shape());
  zero(gx);
  const int64_t total = gy.numel();
  if (total == 0) return;
  dispatch_floating(gx.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    avg_pool_backward_kernel<T, Adaptive><<<blocks_for(total), kThreads, 0, stream(gx.device().index)>>>(
        ptr<T>(gx), ptr<const T>(gy), g, p, total);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void interpolate_bilinear_forward(const Tensor& out, const Tensor& x_, AlignCorners align) {
  const Tensor x = contiguous(x_);
  const PoolGeom g(x.shape(), out.shape());
  const int64_t total = out.numel();
  if (total == 0) return;
  dispatch_floating(x.dtype(), "interpolate", [&](auto tag) {
    using T = typename decltype(tag)::type;
    bilinear_kernel<T, false><<<blocks_for(total), kThreads, 0, stream(x.device().index)>>>(
        ptr<T>(out), ptr<const T>(x), g, align, total);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void interpolate_bilinear_backward(const Tensor& gx, const Tensor& gy_, AlignCorners align) {
  const Tensor gy = contiguous(gy_);
  const PoolGeom g(gx.shape(), gy.shape());
  zero(gx);
  const int64_t total = gy.numel();
  if (total == 0) return;
  dispatch_floating(gx.dtype(), "interpolate backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    bilinear_kernel<T, true><<<blocks_for(total), kThreads, 0, stream(gx.device().index)>>>(
        ptr<T>(gx), ptr<const T>(gy), g, align, total);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

}  // namespace wanwu::cuda
