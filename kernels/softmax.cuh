// CUDA softmax / log_softmax over any axis, forward and backward. The input is viewed as
// [outer, D, inner]. With inner == 1 (the last axis: attention scores, logits) a warp owns rows
// of up to 1024 values (ViT's 197-long score rows would leave most of a block idle), one to four
// at once so that short rows still put ~2 KiB of loads in flight per warp, and a block owns a
// longer row, reducing with shuffles / shared memory (max, then sum of exp); otherwise one
// thread owns an (outer, inner) column and walks D, so neighbouring threads read neighbouring
// addresses. The warp kernels (forward and backward) hold their rows in registers (one read from
// memory); elsewhere re-reads of a row in the later passes hit L1/L2.
// Always shifted by the maximum; an all -inf row gives NaN, as on the CPU and in PyTorch. Math in
// f32 (f64 for f64).
#pragma once

#include <type_traits>

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

// Rows a warp owns at once when each of its lanes holds PER values of each row: enough for about
// 2 KiB of loads in flight per warp, at most 4. A single row of ViT's 197 scores is 394 bytes in
// bf16, and a warp that issues only that much before it must wait ran at 43% of the copy
// bandwidth (f32's 788 bytes: 78%), with every SM at full occupancy.
template <class T, int PER>
__host__ __device__ constexpr int softmax_warp_rows() {
  constexpr int bytes = 32 * PER * static_cast<int>(sizeof(T));
  return bytes >= 2048 ? 1 : bytes >= 1024 ? 2 : 4;
}

// Calls f(std::integral_constant<int, PER>) with the register width PER of a warp row: the
// smallest power of two with 32 * PER >= D, for D <= 32 * MaxPer (the caller's warp-row limit;
// only the widths up to MaxPer are instantiated).
template <int MaxPer = 32, class F>
void with_warp_row_width(int64_t D, F&& f) {
  if (MaxPer == 1 || D <= 32) f(std::integral_constant<int, 1>{});
  else if constexpr (MaxPer >= 2) {
    if (MaxPer == 2 || D <= 64) f(std::integral_constant<int, 2>{});
    else if constexpr (MaxPer >= 4) {
      if (MaxPer == 4 || D <= 128) f(std::integral_constant<int, 4>{});
      else if constexpr (MaxPer >= 8) {
        if (MaxPer == 8 || D <= 256) f(std::integral_constant<int, 8>{});
        else if constexpr (MaxPer >= 16) {
          if (MaxPer == 16 || D <= 512) f(std::integral_constant<int, 16>{});
          else if constexpr (MaxPer >= 32) f(std::integral_constant<int, 32>{});
        }
      }
    }
  }
}

// Blocks of kRowsPerBlock warps, each owning `per_warp` rows, that cover `rows` rows.
inline unsigned warp_row_blocks(int64_t rows, int per_warp) {
  const int64_t per_block = int64_t(kRowsPerBlock) * per_warp;
  return static_cast<unsigned>((rows + per_block - 1) / per_block);
}

// Warp-wide max / sum of RW values per lane at once, so the RW shuffle chains overlap.
template <int RW, class A>
__device__ __forceinline__ void warp_max_rows(A (&m)[RW]) {
  for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
    for (int r = 0; r < RW; ++r) {
      const A u = __shfl_xor_sync(0xffffffffu, m[r], o);
      m[r] = u > m[r] ? u : m[r];
    }
  }
}
template <int RW, class A>
__device__ __forceinline__ void warp_sum_rows(A (&s)[RW]) {
  for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
    for (int r = 0; r < RW; ++r) s[r] += __shfl_xor_sync(0xffffffffu, s[r], o);
  }
}

// The first of a warp's RW rows (the same for all its lanes: whole warps leave or stay together,
// so every shuffle sees a full warp).
template <int RW>
__device__ __forceinline__ int64_t warp_first_row() {
  return (blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / 32) * RW;
}

// Loads rows row0 .. row0 + live - 1 (live <= RW) of D <= 32 * PER values each into the warp's
// registers, value d of a row in lane d % 32 (-inf past the end of a row and for rows past
// `live`), all loads issued before the first use, and sets mx to each row's maximum: 0 for a row
// of -inf only, so that exp(x - max) gives 0 there rather than NaN.
template <int RW, class A, class T, int PER>
__device__ __forceinline__ void warp_load_rows_max(A (&v)[RW][PER], A (&mx)[RW], const T* x, int64_t row0, int live,
                                                   int lane, int D) {
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    const T* xr = x + (row0 + r) * D;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int d = lane + 32 * i;
      v[r][i] = r < live && d < D ? cv<A>(xr[d]) : neg_inf<A>();
    }
  }
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    mx[r] = v[r][0];
#pragma unroll
    for (int i = 1; i < PER; ++i) mx[r] = v[r][i] > mx[r] ? v[r][i] : mx[r];
  }
  warp_max_rows<RW>(mx);
#pragma unroll
  for (int r = 0; r < RW; ++r)
    if (mx[r] == neg_inf<A>()) mx[r] = A(0);
}

// One row at xr (the cross-entropy's warp kernel, one row of classes per warp): its values in v,
// its maximum returned.
template <class A, class T, int PER>
__device__ __forceinline__ A warp_load_row_max(A (&v)[PER], const T* xr, int lane, int D) {
  A rows[1][PER], mx[1];
  warp_load_rows_max<1>(rows, mx, xr, 0, 1, lane, D);
#pragma unroll
  for (int i = 0; i < PER; ++i) v[i] = rows[0][i];
  return mx[0];
}

// A warp per RW rows, the rows held in registers: PER values per lane and row (PER * 32 >= D),
// value d of a row in lane d % 32. All loads of all RW rows are issued before the first use, and
// each row is read from memory once (an earlier three-pass loop re-read it and ran at half of
// the copy bandwidth on ViT's 197-long rows). Past the end of a row or of the tensor a lane holds
// -inf; a row of -inf only has maximum 0, so that exp(x - max) gives 0 there rather than NaN.
template <class T, int PER>
__global__ void softmax_warp_kernel(T* out, const T* x, int64_t rows, int D, bool log_kind) {
  using A = acc_t<T>;
  constexpr int RW = softmax_warp_rows<T, PER>();
  const int64_t row0 = warp_first_row<RW>();
  const int lane = threadIdx.x % 32;
  if (row0 >= rows) return;
  const int live = rows - row0 < RW ? static_cast<int>(rows - row0) : RW;
  A v[RW][PER], mx[RW], s[RW];
  warp_load_rows_max<RW>(v, mx, x, row0, live, lane, D);
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    s[r] = 0;
#pragma unroll
    for (int i = 0; i < PER; ++i)
      if (lane + 32 * i < D) s[r] += fm::exp(v[r][i] - mx[r]);
  }
  warp_sum_rows<RW>(s);
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    if (r >= live) break;
    T* orow = out + (row0 + r) * D;
    const A lse = mx[r] + fm::log(s[r]), inv = A(1) / s[r];
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int d = lane + 32 * i;
      if (d < D) orow[d] = cv<T>(log_kind ? v[r][i] - lse : fm::exp(v[r][i] - mx[r]) * inv);
    }
  }
}

template <class T>
void launch_softmax_warp(T* out, const T* x, int64_t rows, int64_t D, bool log_kind, cudaStream_t s) {
  with_warp_row_width(D, [&](auto per) {
    constexpr int PER = decltype(per)::value;
    softmax_warp_kernel<T, PER><<<warp_row_blocks(rows, softmax_warp_rows<T, PER>()), kThreads, 0, s>>>(
        out, x, rows, static_cast<int>(D), log_kind);
  });
}

// softmax: gx = y * (gy - sum(gy * y)); log_softmax: gx = gy - exp(y) * sum(gy). As the forward:
// a warp per RW rows of gy and y held in registers (0 past the ends), read once, all loads
// issued before the first use.
template <class T, int PER>
__global__ void softmax_backward_warp_kernel(T* gx, const T* gy, const T* y, int64_t rows, int D, bool log_kind) {
  using A = acc_t<T>;
  constexpr int RW = softmax_warp_rows<T, 2 * PER>();  // two tensors' loads in flight
  const int64_t row0 = warp_first_row<RW>();
  const int lane = threadIdx.x % 32;
  if (row0 >= rows) return;
  const int live = rows - row0 < RW ? static_cast<int>(rows - row0) : RW;
  A g[RW][PER], yv[RW][PER];
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    const int64_t base = (row0 + r) * D;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int d = lane + 32 * i;
      const bool in = r < live && d < D;
      g[r][i] = in ? cv<A>(gy[base + d]) : A(0);
      yv[r][i] = in ? cv<A>(y[base + d]) : A(0);
    }
  }
  A s[RW];
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    s[r] = 0;
#pragma unroll
    for (int i = 0; i < PER; ++i) s[r] += log_kind ? g[r][i] : g[r][i] * yv[r][i];
  }
  warp_sum_rows<RW>(s);
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    if (r >= live) break;
    const int64_t base = (row0 + r) * D;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int d = lane + 32 * i;
      if (d < D) gx[base + d] = cv<T>(log_kind ? g[r][i] - fm::exp(yv[r][i]) * s[r] : yv[r][i] * (g[r][i] - s[r]));
    }
  }
}

template <class T>
void launch_softmax_backward_warp(T* gx, const T* gy, const T* y, int64_t rows, int64_t D, bool log_kind,
                                  cudaStream_t s) {
  with_warp_row_width(D, [&](auto per) {
    constexpr int PER = decltype(per)::value;
    softmax_backward_warp_kernel<T, PER><<<warp_row_blocks(rows, softmax_warp_rows<T, 2 * PER>()), kThreads, 0, s>>>(
        gx, gy, y, rows, static_cast<int>(D), log_kind);
  });
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
      launch_softmax_backward_warp<T>(ptr<T>(gx), ptr<const T>(gy), ptr<const T>(y), g.outer, g.D, log_kind, s);
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
