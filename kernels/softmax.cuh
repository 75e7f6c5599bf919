// CUDA softmax / log_softmax over any axis, forward and backward. The input is viewed as
// [outer, D, inner]. With inner == 1 (the last axis: attention scores, logits) a warp owns a
// row of up to 1024 values (ViT's 197-long score rows would leave most of a block idle) and a
// block owns a longer one, reducing with shuffles / shared memory (max, then sum of exp);
// otherwise one thread owns an (outer, inner) column and walks D, so neighbouring threads read
// neighbouring addresses. The forward's warp holds its row in registers (one read from memory);
// elsewhere re-reads of a row in the later passes hit L1/L2.
// Always shifted by the maximum; an all -inf row gives NaN, as on the CPU and in PyTorch. Math in
// f32 (f64 for f64).
#pragma once

#include "reduce.cuh"

namespace wanwu::cuda {

struct SoftmaxGeom {
  int64_t outer = 1, D = 1, inner = 1;
  SoftmaxGeom(const Shape& s, int dim) {
    for (int i = 0; i < dim; ++i) outer *= s[i];
    D = s[dim];
    for (int i = dim + 1; i < s.size(); ++i) inner *= s[i];
  }
};

template <class A>
__device__ __forceinline__ A neg_inf() {
  return -std::numeric_limits<A>::infinity();
}

// The maximum of a row of D values read by a whole block: 0 for a row of -inf only, so that
// exp(x - max) gives 0 there rather than NaN.
template <class A, class T>
__device__ __forceinline__ A block_row_max(const T* xr, int64_t D) {
  A mx = neg_inf<A>();
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const A v = cv<A>(xr[d]);
    mx = v > mx ? v : mx;
  }
  mx = block_reduce(mx, [](A a, A b) { return a > b ? a : b; });
  return mx == neg_inf<A>() ? A(0) : mx;
}

template <class T>
__global__ void softmax_row_kernel(T* out, const T* x, int64_t D, bool log_kind) {
  using A = acc_t<T>;
  const T* xr = x + blockIdx.x * D;
  T* orow = out + blockIdx.x * D;
  const A mx = block_row_max<A>(xr, D);
  A s = 0;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += fm::exp(cv<A>(xr[d]) - mx);
  s = block_reduce(s, [](A a, A b) { return a + b; });
  if (log_kind) {
    const A lse = mx + fm::log(s);
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) orow[d] = cv<T>(cv<A>(xr[d]) - lse);
  } else {
    const A inv = A(1) / s;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) orow[d] = cv<T>(fm::exp(cv<A>(xr[d]) - mx) * inv);
  }
}

inline constexpr int64_t kWarpRowMax = 1024;
inline constexpr int kRowsPerBlock = kThreads / 32;

// Loads a row of D <= 32 * PER values into the warp's registers (lane + 32 i; -inf past the end),
// all loads issued before the first use, and returns the row's maximum: 0 for a row of -inf only,
// so that exp(x - max) gives 0 there rather than NaN.
template <class A, class T, int PER>
__device__ __forceinline__ A warp_load_row_max(A (&v)[PER], const T* xr, int lane, int D) {
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int d = lane + 32 * i;
    v[i] = d < D ? cv<A>(xr[d]) : neg_inf<A>();
  }
  A mx = v[0];
#pragma unroll
  for (int i = 1; i < PER; ++i) mx = v[i] > mx ? v[i] : mx;
  mx = warp_max(mx);
  return mx == neg_inf<A>() ? A(0) : mx;
}

// A warp per row, the row held in registers: PER values per lane (PER * 32 >= D). All of a lane's
// loads are issued before the first use, so a warp has PER loads in flight instead of one per
// trip of a loop, and the row is read from memory once (the earlier three-pass loop re-read it
// and ran at half of the copy bandwidth on ViT's 197-long rows).
template <class T, int PER>
__global__ void softmax_warp_kernel(T* out, const T* x, int64_t rows, int D, bool log_kind) {
  using A = acc_t<T>;
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // whole warps leave together: the shuffles below see full warps
  const T* xr = x + row * D;
  T* orow = out + row * D;
  A v[PER];
  const A mx = warp_load_row_max(v, xr, lane, D);
  A s = 0;
#pragma unroll
  for (int i = 0; i < PER; ++i)
    if (lane + 32 * i < D) s += fm::exp(v[i] - mx);
  s = warp_sum(s);
  const A lse = mx + fm::log(s), inv = A(1) / s;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int d = lane + 32 * i;
    if (d < D) orow[d] = cv<T>(log_kind ? v[i] - lse : fm::exp(v[i] - mx) * inv);
  }
}

template <class T>
void launch_softmax_warp(T* out, const T* x, int64_t rows, int64_t D, bool log_kind, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  const int d = static_cast<int>(D);
  if (D <= 32) softmax_warp_kernel<T, 1><<<blocks, kThreads, 0, s>>>(out, x, rows, d, log_kind);
  else if (D <= 64) softmax_warp_kernel<T, 2><<<blocks, kThreads, 0, s>>>(out, x, rows, d, log_kind);
  else if (D <= 128) softmax_warp_kernel<T, 4><<<blocks, kThreads, 0, s>>>(out, x, rows, d, log_kind);
  else if (D <= 256) softmax_warp_kernel<T, 8><<<blocks, kThreads, 0, s>>>(out, x, rows, d, log_kind);
  else if (D <= 512) softmax_warp_kernel<T, 16><<<blocks, kThreads, 0, s>>>(out, x, rows, d, log_kind);
  else softmax_warp_kernel<T, 32><<<blocks, kThreads, 0, s>>>(out, x, rows, d, log_kind);
}

template <class T>
__global__ void softmax_backward_warp_kernel(T* gx, const T* gy, const T* y, int64_t rows, int64_t D, bool log_kind) {
  using A = acc_t<T>;
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int64_t base = row * D;
  A s = 0;
  for (int64_t d = lane; d < D; d += 32)
    s += log_kind ? cv<A>(gy[base + d]) : cv<A>(gy[base + d]) * cv<A>(y[base + d]);
  s = warp_sum(s);
  for (int64_t d = lane; d < D; d += 32) {
    const A g = cv<A>(gy[base + d]), yv = cv<A>(y[base + d]);
    gx[base + d] = cv<T>(log_kind ? g - fm::exp(yv) * s : yv * (g - s));
  }
}

template <class T>
__global__ void softmax_column_kernel(T* out, const T* x, SoftmaxGeom g, bool log_kind) {
  using A = acc_t<T>;
  const int64_t cols = g.outer * g.inner;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = c / g.inner, i = c % g.inner;
    const T* xo = x + o * g.D * g.inner + i;
    T* oo = out + o * g.D * g.inner + i;
    A mx = neg_inf<A>();
    for (int64_t d = 0; d < g.D; ++d) {
      const A v = cv<A>(xo[d * g.inner]);
      mx = v > mx ? v : mx;
    }
    if (mx == neg_inf<A>()) mx = A(0);
    A s = 0;
    for (int64_t d = 0; d < g.D; ++d) s += fm::exp(cv<A>(xo[d * g.inner]) - mx);
    const A lse = mx + fm::log(s), inv = A(1) / s;
    for (int64_t d = 0; d < g.D; ++d) {
      const A v = cv<A>(xo[d * g.inner]);
      oo[d * g.inner] = cv<T>(log_kind ? v - lse : fm::exp(v - mx) * inv);
    }
  }
}

// softmax: gx = y * (gy - sum(gy * y)); log_softmax: gx = gy - exp(y) * sum(gy).
template <class T>
__global__ void softmax_backward_row_kernel(T* gx, const T* gy, const T* y, int64_t D, bool log_kind) {
  using A = acc_t<T>;
  const int64_t base = blockIdx.x * D;
  A s = 0;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
    s += log_kind ? cv<A>(gy[base + d]) : cv<A>(gy[base + d]) * cv<A>(y[base + d]);
  s = block_reduce(s, [](A a, A b) { return a + b; });
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const A g = cv<A>(gy[base + d]), yv = cv<A>(y[base + d]);
    gx[base + d] = cv<T>(log_kind ? g - fm::exp(yv) * s : yv * (g - s));
  }
}

template <class T>
__global__ void softmax_backward_column_kernel(T* gx, const T* gy, const T* y, SoftmaxGeom g, bool log_kind) {
  using A = acc_t<T>;
  const int64_t cols = g.outer * g.inner;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (c / g.inner) * g.D * g.inner + c % g.inner;
    A s = 0;
    for (int64_t d = 0; d < g.D; ++d) {
      const int64_t k = base + d * g.inner;
      s += log_kind ? cv<A>(gy[k]) : cv<A>(gy[k]) * cv<A>(y[k]);
    }
    for (int64_t d = 0; d < g.D; ++d) {
      const int64_t k = base + d * g.inner;
      const A gv = cv<A>(gy[k]), yv = cv<A>(y[k]);
      gx[k] = cv<T>(log_kind ? gv - fm::exp(yv) * s : yv * (gv - s));
    }
  }
}

inline void softmax_forward(const Tensor& out, const Tensor& x_, int dim, SoftmaxKind kind) {
  const Tensor x = contiguous(x_);
  const SoftmaxGeom g(x.shape(), dim);
  if (out.numel() == 0) return;
  const cudaStream_t s = stream(out.device().index);
  const bool log_kind = kind == SoftmaxKind::log_softmax;
  dispatch_floating(x.dtype(), "softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (g.inner == 1 && g.D <= kWarpRowMax)
      launch_softmax_warp<T>(ptr<T>(out), ptr<const T>(x), g.outer, g.D, log_kind, s);
    else if (g.inner == 1)
      softmax_row_kernel<T><<<static_cast<unsigned>(g.outer), kThreads, 0, s>>>(ptr<T>(out), ptr<const T>(x), g.D,
                                                                               log_kind);
    else
      softmax_column_kernel<T><<<blocks_for(g.outer * g.inner), kThreads, 0, s>>>(ptr<T>(out), ptr<const T>(x), g,
                                                                                  log_kind);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void softmax_backward(const Tensor& gx, const Tensor& gy_, const Tensor& y_, int dim, SoftmaxKind kind) {
  const Tensor gy = contiguous(gy_), y = contiguous(y_);
  const SoftmaxGeom g(y.shape(), dim);
  if (gx.numel() == 0) return;
  const cudaStream_t s = stream(gx.device().index);
  const bool log_kind = kind == SoftmaxKind::log_softmax;
  dispatch_floating(y.dtype(), "softmax backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (g.inner == 1 && g.D <= kWarpRowMax)
      softmax_backward_warp_kernel<T><<<static_cast<unsigned>((g.outer + kRowsPerBlock - 1) / kRowsPerBlock), kThreads,
                                        0, s>>>(ptr<T>(gx), ptr<const T>(gy), ptr<const T>(y), g.outer, g.D, log_kind);
    else if (g.inner == 1)
      softmax_backward_row_kernel<T><<<static_cast<unsigned>(g.outer), kThreads, 0, s>>>(
          ptr<T>(gx), ptr<const T>(gy), ptr<const T>(y), g.D, log_kind);
    else
      softmax_backward_column_kernel<T><<<blocks_for(g.outer * g.inner), kThreads, 0, s>>>(
          ptr<T>(gx), ptr<const T>(gy), ptr<const T>(y), g, log_kind);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

}  // namespace wanwu::cuda
