// CUDA layer norm kernels (statistics per row), forward and backward, and what the batch norm
// kernels (batch_norm.cuh) share with them.
//
// Layer norm: a warp (or, for long rows, a block) per row computes the mean, then the mean squared
// deviation (two passes, so no E[x^2] - E[x]^2 cancellation), then writes y; the forward and the
// input gradient load a row that splits into 16-byte vectors once into registers, the loop kernels
// for other rows re-read a row that stays in L1/L2. The weight and bias gradients are column sums
// over rows: each block sums a chunk of rows per column and adds its partial with one atomic per
// column.
#pragma once

#include "elementwise.cuh"
#include "reduce.cuh"

namespace wanwu::cuda {

template <class T>
using stat_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// The weight and bias as the kernels read them: in the statistics' dtype, whatever dtype they come
// in. Under autocast a bf16/f16 activation meets the model's f32 parameters (PyTorch's norms take
// that mix too); read as the activation's dtype they would be garbage, and rounded to it they would
// lose the precision the CPU backend keeps.
template <class T>
inline Tensor norm_params(const Tensor& t) {
  return cast(t, dtype_of_v<stat_t<T>>);
}

// Calls f(TypeTag<P>, weight, bias) with the parameters in the dtype P the kernels read them in:
// the activations' own dtype when both come in it (a model converted whole to f16/bf16; no cast,
// which cost two launches per call), otherwise the statistics' dtype (f32 under autocast, as is;
// any other mix cast to it).
template <class T, class F>
void with_layer_norm_params(const Tensor& w, const Tensor& b, F&& f) {
  if constexpr (!std::is_same_v<T, stat_t<T>>) {
    const auto in_t = [](const Tensor& t) { return !t.defined() || t.dtype() == dtype_of_v<T>; };
    if ((w.defined() || b.defined()) && in_t(w) && in_t(b)) return f(TypeTag<T>{}, w, b);
  }
  f(TypeTag<stat_t<T>>{}, norm_params<T>(w), norm_params<T>(b));
}

// A row of a layer norm is owned by a warp (rows up to kWarpRows long: transformer widths) or by
// a block (longer rows). RowOwner gives the row, the lane and the stride for either.
inline constexpr int64_t kWarpRows = 1024;

template <bool Warp>
struct RowOwner {
  int64_t row;
  int lane, step;
  __device__ RowOwner() {
    if constexpr (Warp) {
      row = blockIdx.x * int64_t(kThreads / 32) + threadIdx.x / 32;
      lane = threadIdx.x % 32;
      step = 32;
    } else {
      row = blockIdx.x;
      lane = threadIdx.x;
      step = blockDim.x;
    }
  }
  template <class A>
  __device__ A sum(A v) const {
    if constexpr (Warp) return warp_sum(v);
    else return block_reduce(v, [](A a, A b) { return a + b; });
  }
};

template <class T, class P, bool Warp>
__global__ void layer_norm_forward_kernel(T* y, stat_t<T>* mean_out, stat_t<T>* rstd_out, const T* x, const P* w,
                                          const P* b, int64_t R, int64_t M, double eps) {
  using A = acc_t<T>;
  const RowOwner<Warp> o;
  if (Warp && o.row >= R) return;  // whole warps leave together
  const T* xr = x + o.row * M;
  A s = 0;
  for (int64_t m = o.lane; m < M; m += o.step) s += cv<A>(xr[m]);
  const A mean = o.sum(s) / A(M);
  A v = 0;
  for (int64_t m = o.lane; m < M; m += o.step) {
    const A d = cv<A>(xr[m]) - mean;
    v += d * d;
  }
  v = o.sum(v);
  const A rstd = A(1) / fm::sqrt(v / A(M) + A(eps));
  if (o.lane == 0) {
    mean_out[o.row] = mean;
    rstd_out[o.row] = rstd;
  }
  T* yr = y + o.row * M;
  for (int64_t m = o.lane; m < M; m += o.step) {
    A out = (cv<A>(xr[m]) - mean) * rstd;
    if (w) out *= cv<A>(w[m]);
    if (b) out += cv<A>(b[m]);
    yr[m] = cv<T>(out);
  }
}

// Launches a row kernel with a warp per row for short rows, a block per row otherwise.
template <class WarpKernel, class BlockKernel, class... Args>
void launch_rows(int64_t R, int64_t M, cudaStream_t s, WarpKernel wk, BlockKernel bk, Args... args) {
  if (M <= kWarpRows)
    wk<<<static_cast<unsigned>((R + kThreads / 32 - 1) / (kThreads / 32)), kThreads, 0, s>>>(args...);
  else
    bk<<<static_cast<unsigned>(R), kThreads, 0, s>>>(args...);
}

// The warp-per-row forward for rows that split into 16-byte vectors (M a multiple of 16 /
// sizeof(T), 16-byte aligned rows, weight and bias: every transformer width): each lane loads VPL vectors, all in
// flight at once, and keeps them in registers, so the row is read from memory once in 512-byte
// warp transactions. The loop kernel re-reads the row from L1 one element per lane and trip, which
// reached 74% of the copy bandwidth in f32 at ViT-B's width and 60% in bf16.
template <class T, class P, int VPL>
__global__ void layer_norm_forward_vec_kernel(T* y, stat_t<T>* mean_out, stat_t<T>* rstd_out, const T* x, const P* w,
                                              const P* b, int64_t R, int M, double eps) {
  using A = acc_t<T>;
  constexpr int V = 16 / sizeof(T);
  const int64_t row = blockIdx.x * int64_t(kThreads / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= R) return;  // whole warps leave together
  const int nvec = M / V;
  const uint4* xr = reinterpret_cast<const uint4*>(x + row * M);
  A v[VPL][V];
  A s = 0;
#pragma unroll
  for (int i = 0; i < VPL; ++i) {
    const int k = lane + 32 * i;
    uint4 raw = make_uint4(0, 0, 0, 0);
    if (k < nvec) raw = xr[k];
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      v[i][j] = k < nvec ? cv<A>(e[j]) : A(0);
      s += v[i][j];
    }
  }
  const A mean = warp_sum(s) / A(M);
  A q = 0;
#pragma unroll
  for (int i = 0; i < VPL; ++i)
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const A d = v[i][j] - mean;
      if (lane + 32 * i < nvec) q += d * d;
    }
  q = warp_sum(q);
  const A rstd = A(1) / fm::sqrt(q / A(M) + A(eps));
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
  uint4* yr = reinterpret_cast<uint4*>(y + row * M);
  // The weight and bias of a vector's V elements in 16-byte loads too (NP of them: V values of
  // P), so that a lane issues 2 NP loads per vector instead of 2 V scalar ones: at bf16 that was
  // 16 two-byte loads beside each 16-byte load of x, and the load units, not memory, set the pace.
  constexpr int NP = V * int(sizeof(P)) / 16;
  static_assert(NP >= 1 && V * sizeof(P) % 16 == 0, "layer_norm: parameter vectors are whole 16-byte loads");
#pragma unroll
  for (int i = 0; i < VPL; ++i) {
    const int k = lane + 32 * i;
    if (k >= nvec) continue;
    uint4 wraw[NP], braw[NP];
#pragma unroll
    for (int q = 0; q < NP; ++q) {
      if (w) wraw[q] = reinterpret_cast<const uint4*>(w)[k * NP + q];
      if (b) braw[q] = reinterpret_cast<const uint4*>(b)[k * NP + q];
    }
    const P* we = reinterpret_cast<const P*>(wraw);
    const P* be = reinterpret_cast<const P*>(braw);
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      A out = (v[i][j] - mean) * rstd;
      if (w) out *= cv<A>(we[j]);
      if (b) out += cv<A>(be[j]);
      e[j] = cv<T>(out);
    }
    yr[k] = raw;
  }
}

// Calls f(std::integral_constant<int, VPL>) with the vectors per lane a warp row of nvec 16-byte
// vectors needs (nvec <= 16 * 32), in steps that keep the register arrays small.
template <class F>
void with_vectors_per_lane(int nvec, F&& f) {
  if (nvec <= 32) f(std::integral_constant<int, 1>{});
  else if (nvec <= 64) f(std::integral_constant<int, 2>{});
  else if (nvec <= 96) f(std::integral_constant<int, 3>{});
  else if (nvec <= 128) f(std::integral_constant<int, 4>{});
  else if (nvec <= 192) f(std::integral_constant<int, 6>{});
  else if (nvec <= 256) f(std::integral_constant<int, 8>{});
  else f(std::integral_constant<int, 16>{});
}

// Whether rows of M values of T at these pointers take the vector kernels: M splits into 16-byte
// vectors, at most max_per_lane per lane, and every pointer (null ones aside) is 16-byte aligned.
template <class T>
bool layer_norm_vec_rows(int64_t M, std::initializer_list<const void*> ptrs, int64_t max_per_lane = 16) {
  constexpr int64_t V = 16 / sizeof(T);
  bool ok = M % V == 0 && M <= max_per_lane * 32 * V;
  for (const void* p : ptrs) ok = ok && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  return ok;
}

template <class T, class P>
void launch_layer_norm_forward(T* y, stat_t<T>* mean, stat_t<T>* rstd, const T* x, const P* w, const P* b, int64_t R,
                               int64_t M, double eps, cudaStream_t s) {
  if (!layer_norm_vec_rows<T>(M, {x, y, w, b})) {
    launch_rows(R, M, s, layer_norm_forward_kernel<T, P, true>, layer_norm_forward_kernel<T, P, false>, y, mean, rstd, x, w,
                b, R, M, eps);
    return;
  }
  constexpr int64_t V = 16 / sizeof(T);
  const unsigned warp_blocks = static_cast<unsigned>((R + kThreads / 32 - 1) / (kThreads / 32));
  with_vectors_per_lane(static_cast<int>(M / V), [&](auto vpl) {
    layer_norm_forward_vec_kernel<T, P, decltype(vpl)::value>
        <<<warp_blocks, kThreads, 0, s>>>(y, mean, rstd, x, w, b, R, static_cast<int>(M), eps);
  });
}

template <class T, class P, bool Warp>
__global__ void layer_norm_backward_input_kernel(T* gx, const T* gy, const T* x, const P* w, const stat_t<T>* mean,
                                                 const stat_t<T>* rstd, int64_t R, int64_t M) {
  using A = acc_t<T>;
  const RowOwner<Warp> o;
  if (Warp && o.row >= R) return;
  const T *xr = x + o.row * M, *gr = gy + o.row * M;
  const A mu = mean[o.row], rs = rstd[o.row];
  A a = 0, bs = 0;  // sum(g), sum(g * xhat) with g = dy * w
  for (int64_t m = o.lane; m < M; m += o.step) {
    const A g = cv<A>(gr[m]) * (w ? cv<A>(w[m]) : A(1));
    a += g;
    bs += g * (cv<A>(xr[m]) - mu) * rs;
  }
  a = o.sum(a);
  bs = o.sum(bs);
  const A ka = a / A(M), kb = bs / A(M);
  T* dr = gx + o.row * M;
  for (int64_t m = o.lane; m < M; m += o.step) {
    const A g = cv<A>(gr[m]) * (w ? cv<A>(w[m]) : A(1));
    dr[m] = cv<T>(rs * (g - ka - (cv<A>(xr[m]) - mu) * rs * kb));
  }
}

// The warp-per-row input gradient for the rows the vector forward takes (same conditions, with gx
// and gy aligned too): a lane loads VPL 16-byte vectors of x and of gy, all in flight at once, and
// keeps them in registers for the second pass; the weight comes in 16-byte loads. The loop kernel
// above reads each row twice, one element per lane and trip.
template <class T, class P, int VPL>
__global__ void layer_norm_backward_input_vec_kernel(T* gx, const T* gy, const T* x, const P* w,
                                                     const stat_t<T>* mean, const stat_t<T>* rstd, int64_t R, int M) {
  using A = acc_t<T>;
  constexpr int V = 16 / sizeof(T);
  constexpr int NP = V * int(sizeof(P)) / 16;
  static_assert(NP >= 1 && V * sizeof(P) % 16 == 0, "layer_norm: parameter vectors are whole 16-byte loads");
  const int64_t row = blockIdx.x * int64_t(kThreads / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= R) return;  // whole warps leave together
  const int nvec = M / V;
  const uint4* xr = reinterpret_cast<const uint4*>(x + row * M);
  const uint4* gr = reinterpret_cast<const uint4*>(gy + row * M);
  uint4 xv[VPL], gv[VPL];
#pragma unroll
  for (int i = 0; i < VPL; ++i) {
    const int k = lane + 32 * i;
    xv[i] = gv[i] = make_uint4(0, 0, 0, 0);
    if (k < nvec) {
      xv[i] = xr[k];
      gv[i] = gr[k];
    }
  }
  const A mu = mean[row], rs = rstd[row];
  // f(j, g, xhat) with g = dy * w for value j of vector i (the weight re-read in the second pass:
  // it stays in L1, and holding g and xhat for 16 vectors per lane would spill).
  auto values = [&](int i, auto&& f) {
    const int k = lane + 32 * i;
    uint4 wraw[NP];
#pragma unroll
    for (int q = 0; q < NP; ++q) wraw[q] = w ? reinterpret_cast<const uint4*>(w)[k * NP + q] : make_uint4(0, 0, 0, 0);
    const P* we = reinterpret_cast<const P*>(wraw);
    const T* xe = reinterpret_cast<const T*>(&xv[i]);
    const T* ge = reinterpret_cast<const T*>(&gv[i]);
#pragma unroll
    for (int j = 0; j < V; ++j) f(j, cv<A>(ge[j]) * (w ? cv<A>(we[j]) : A(1)), (cv<A>(xe[j]) - mu) * rs);
  };
  A a = 0, bs = 0;  // sum(g), sum(g * xhat)
#pragma unroll
  for (int i = 0; i < VPL; ++i) {
    if (lane + 32 * i >= nvec) continue;
    values(i, [&](int, A g, A xh) {
      a += g;
      bs += g * xh;
    });
  }
  a = warp_sum(a);
  bs = warp_sum(bs);
  const A ka = a / A(M), kb = bs / A(M);
  uint4* dr = reinterpret_cast<uint4*>(gx + row * M);
#pragma unroll
  for (int i = 0; i < VPL; ++i) {
    const int k = lane + 32 * i;
    if (k >= nvec) continue;
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
    values(i, [&](int j, A g, A xh) { e[j] = cv<T>(rs * (g - ka - xh * kb)); });
    dr[k] = raw;
  }
}

template <class T, class P>
void launch_layer_norm_backward_input(T* gx, const T* gy, const T* x, const P* w, const stat_t<T>* mean,
                                      const stat_t<T>* rstd, int64_t R, int64_t M, cudaStream_t s) {
  // Up to 8 vectors per lane: with 16, x and gy's registers and the bf16 conversions spilled.
  if (!layer_norm_vec_rows<T>(M, {gx, gy, x, w}, 8)) {
    launch_rows(R, M, s, layer_norm_backward_input_kernel<T, P, true>, layer_norm_backward_input_kernel<T, P, false>,
                gx, gy, x, w, mean, rstd, R, M);
    return;
  }
  constexpr int64_t V = 16 / sizeof(T);
  const unsigned warp_blocks = static_cast<unsigned>((R + kThreads / 32 - 1) / (kThreads / 32));
  with_vectors_per_lane(static_cast<int>(M / V), [&](auto vpl) {
    layer_norm_backward_input_vec_kernel<T, P, decltype(vpl)::value>
        <<<warp_blocks, kThreads, 0, s>>>(gx, gy, x, w, mean, rstd, R, static_cast<int>(M));
  });
}


// Column sums over a chunk of rows per block: gw[m] += sum dy * xhat, gb[m] += sum dy.
template <class T>
__global__ void layer_norm_backward_params_kernel(acc_t<T>* gw, acc_t<T>* gb, const T* gy, const T* x,
                                                  const stat_t<T>* mean, const stat_t<T>* rstd, int64_t R, int64_t M,
                                                  int64_t rows_per_block) {
  using A = acc_t<T>;
  const int64_t m = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (m >= M) return;
  const int64_t r0 = blockIdx.y * rows_per_block, r1 = r0 + rows_per_block < R ? r0 + rows_per_block : R;
  A sw = 0, sb = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const A g = cv<A>(gy[r * M + m]);
    sw += g * (cv<A>(x[r * M + m]) - A(mean[r])) * A(rstd[r]);
    sb += g;
  }
  if (gw) atomicAdd(gw + m, sw);
  if (gb) atomicAdd(gb + m, sb);
}

// Rows per block for column sums whose blocks cover `block_cols` columns each: enough blocks to
// fill the device, at least `min_rows` rows each.
inline int64_t column_chunk(int dev, int64_t rows, int64_t cols, int64_t block_cols = kThreads, int64_t min_rows = 32) {
  const int64_t col_blocks = (cols + block_cols - 1) / block_cols;
  const int64_t want = 8 * context(dev).props.multiProcessorCount;
  int64_t chunks = (want + col_blocks - 1) / col_blocks;
  int64_t per = (rows + chunks - 1) / (chunks > 0 ? chunks : 1);
  if (per < min_rows) per = min_rows;
  return per;
}

inline void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x_,
                               const Tensor& w_, const Tensor& b_, double eps) {
  const Tensor x = contiguous(x_), w = contiguous(w_), b = contiguous(b_);
  const int64_t R = mean.numel();
  if (R == 0) return;
  const int64_t M = x.numel() / R;
  dispatch_floating(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_layer_norm_params<T>(w, b, [&](auto ptag, const Tensor& wp, const Tensor& bp) {
      using P = typename decltype(ptag)::type;
      launch_layer_norm_forward<T, P>(ptr<T>(y), ptr<stat_t<T>>(mean), ptr<stat_t<T>>(rstd), ptr<const T>(x),
                                      ptr_or_null<const P>(wp), ptr_or_null<const P>(bp), R, M, eps,
                                      stream(x.device().index));
    });
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void layer_norm_backward(const Tensor& gx, const Tensor& gw, const Tensor& gb, const Tensor& gy_,
                                const Tensor& x_, const Tensor& w_, const Tensor& mean, const Tensor& rstd) {
  const Tensor gy = contiguous(gy_), x = contiguous(x_), w = contiguous(w_);
  const int64_t R = mean.numel();
  const int64_t M = R > 0 ? x.numel() / R : (gw.defined() ? gw.numel() : gb.defined() ? gb.numel() : 0);
  const int dev = x.device().index;
  const cudaStream_t s = stream(dev);
  dispatch_floating(x.dtype(), "layer_norm backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    if (gx.defined() && R > 0) {
      with_layer_norm_params<T>(w, Tensor(), [&](auto ptag, const Tensor& wp, const Tensor&) {
        using P = typename decltype(ptag)::type;
        launch_layer_norm_backward_input<T, P>(ptr<T>(gx), ptr<const T>(gy), ptr<const T>(x), ptr_or_null<const P>(wp),
                                               ptr<const stat_t<T>>(mean), ptr<const stat_t<T>>(rstd), R, M, s);
      });
      WANWU_CUDA_LAUNCH_CHECK();
    }
    if ((gw.defined() || gb.defined()) && M > 0) {
      const DType adt = dtype_of_v<A>;
      Tensor aw = gw.defined() ? empty({M}, adt, dev) : Tensor(), ab = gb.defined() ? empty({M}, adt, dev) : Tensor();
      zero(aw);
      zero(ab);
      if (R > 0) {
        const int64_t per = column_chunk(dev, R, M);
        const dim3 grid(static_cast<unsigned>((M + kThreads - 1) / kThreads), static_cast<unsigned>((R + per - 1) / per));
        layer_norm_backward_params_kernel<T><<<grid, kThreads, 0, s>>>(ptr_or_null<A>(aw), ptr_or_null<A>(ab),
                                                                       ptr<const T>(gy), ptr<const T>(x),
                                                                       ptr<const stat_t<T>>(mean),
                                                                       ptr<const stat_t<T>>(rstd), R, M, per);
        WANWU_CUDA_LAUNCH_CHECK();
      }
      if (gw.defined()) copy(gw, aw);
      if (gb.defined()) copy(gb, ab);
    }
  });
}

}  // namespace wanwu::cuda
