// CUDA reductions over any set of axes (sum, mean, prod, amax, amin, any, all) and argmax /
// argmin along one axis, for any input strides.
//
// The input's dims split into a kept space (one entry per output) and a reduced space, each with
// its own strides, so permuted or sliced inputs need no copy. Two launch shapes:
//  - one thread per output, walking the reduced space: for many outputs whose reduced axis is
//    not the contiguous one (sum over the batch of [N, C]: neighbouring threads read neighbouring
//    channels, so loads coalesce);
//  - blocks of 256 threads per output, optionally split over several blocks whose partials (in
//    the accumulator type) a second pass combines: for long contiguous rows and full reductions.
// Sums of f32/f16/bf16 accumulate in f32 (f64 for f64, i64 for integers), as acc_t says; max/min
// propagate NaN; argmax/argmin return the first extreme, a NaN counting as the extreme.
#pragma once

#include <limits>

#include "runtime.cuh"

namespace wanwu::cuda {

template <class T>
struct SumR {
  using A = acc_t<T>;
  static __device__ A init() { return A(0); }
  static __device__ A step(A acc, A x) { return acc + x; }
};
template <class T>
struct ProdR {
  using A = acc_t<T>;
  static __device__ A init() { return A(1); }
  static __device__ A step(A acc, A x) { return acc * x; }
};
template <class T>
struct MaxR {
  using A = compute_t<T>;
  static __device__ A init() {
    if constexpr (std::numeric_limits<A>::has_infinity) return -std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::lowest();
  }
  static __device__ A step(A acc, A x) { return (acc != acc) ? acc : ((x != x) || x > acc ? x : acc); }
};
template <class T>
struct MinR {
  using A = compute_t<T>;
  static __device__ A init() {
    if constexpr (std::numeric_limits<A>::has_infinity) return std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::max();
  }
  static __device__ A step(A acc, A x) { return (acc != acc) ? acc : ((x != x) || x < acc ? x : acc); }
};
template <class T>
struct AnyR {
  using A = bool;
  static __device__ A init() { return false; }
  static __device__ A step(A acc, A x) { return acc || x; }
};
template <class T>
struct AllR {
  using A = bool;
  static __device__ A init() { return true; }
  static __device__ A step(A acc, A x) { return acc && x; }
};

// Tree reduction over a block of kThreads threads; every thread gets the result.
template <class A, class Op>
__device__ A block_reduce(A v, Op op) {
  __shared__ A sh[kThreads];
  const int t = threadIdx.x;
  sh[t] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] = op(sh[t], sh[t + s]);
    __syncthreads();
  }
  const A r = sh[0];
  __syncthreads();
  return r;
}

// Warp-wide max / sum by shuffles; every lane gets the result.
template <class A>
__device__ __forceinline__ A warp_max(A v) {
  for (int o = 16; o > 0; o >>= 1) {
    const A u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u > v ? u : v;
  }
  return v;
}
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

struct ReducePlan {
  int nk = 0, nr = 0;
  int64_t ksize[kMaxDims] = {}, kin[kMaxDims] = {}, kout[kMaxDims] = {};
  int64_t rsize[kMaxDims] = {}, rin[kMaxDims] = {};
  int64_t K = 1, R = 1;

  __device__ void kept(int64_t k, int64_t& in_off, int64_t& out_off) const {
    in_off = 0;
    out_off = 0;
    for (int d = 0; d < nk; ++d) {
      const int64_t q = k / ksize[d], r = k - q * ksize[d];
      k = q;
      in_off += r * kin[d];
      out_off += r * kout[d];
    }
  }
  __device__ int64_t reduced(int64_t r) const {
    if (nr == 1) return r * rin[0];
    int64_t off = 0;
    for (int d = 0; d < nr; ++d) {
      const int64_t q = r / rsize[d], rem = r - q * rsize[d];
      r = q;
      off += rem * rin[d];
    }
    return off;
  }
};

inline ReducePlan make_reduce_plan(const Tensor& out, const Tensor& in, const Dims& dims) {
  ReducePlan p;
  auto reduced_dim = [&](int d) {
    for (int64_t x : dims)
      if (x == d) return true;
    return false;
  };
  for (int d = in.dim() - 1; d >= 0; --d) {
    const int64_t sz = in.shape()[d];
    if (reduced_dim(d)) {
      p.R *= sz;
      if (sz == 1) continue;
      if (p.nr > 0 && in.strides()[d] == p.rin[p.nr - 1] * p.rsize[p.nr - 1]) {
        p.rsize[p.nr - 1] *= sz;
        continue;
      }
      p.rsize[p.nr] = sz;
      p.rin[p.nr] = in.strides()[d];
      ++p.nr;
    } else {
      p.K *= sz;
      if (sz == 1) continue;
      p.ksize[p.nk] = sz;
      p.kin[p.nk] = in.strides()[d];
      p.kout[p.nk] = out.strides()[d];
      ++p.nk;
    }
  }
  return p;
}

// One thread per output.
template <class T, class O, class R>
__global__ void reduce_thread_kernel(ReducePlan p, O* out, const T* in, double scale) {
  using A = typename R::A;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < p.K; k += int64_t(gridDim.x) * blockDim.x) {
    int64_t ib, ob;
    p.kept(k, ib, ob);
    A acc = R::init();
    for (int64_t r = 0; r < p.R; ++r) acc = R::step(acc, cv<A>(in[ib + p.reduced(r)]));
    if constexpr (std::is_floating_point_v<A>) out[ob] = cv<O>(scale == 1.0 ? acc : A(acc * scale));
    else out[ob] = cv<O>(acc);
  }
}

// gridDim.y blocks per output (blockIdx.x = output); with one block per output the result goes to
// out, otherwise partials[k * splits + split] (accumulator type) for reduce_finalize_kernel.
template <class T, class O, class R>
__global__ void reduce_block_kernel(ReducePlan p, O* out, typename R::A* partials, const T* in, double scale) {
  using A = typename R::A;
  const int64_t k = blockIdx.x;
  const int64_t splits = gridDim.y, chunk = (p.R + splits - 1) / splits;
  const int64_t r0 = blockIdx.y * chunk, r1 = r0 + chunk < p.R ? r0 + chunk : p.R;
  int64_t ib, ob;
  p.kept(k, ib, ob);
  A acc = R::init();
  for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc = R::step(acc, cv<A>(in[ib + p.reduced(r)]));
  acc = block_reduce(acc, [](A x, A y) { return R::step(x, y); });
  if (threadIdx.x != 0) return;
  if (splits > 1) {
    partials[k * splits + blockIdx.y] = acc;
  } else if constexpr (std::is_floating_point_v<A>) {
    out[ob] = cv<O>(scale == 1.0 ? acc : A(acc * scale));
  } else {
    out[ob] = cv<O>(acc);
  }
}

template <class O, class R>
__global__ void reduce_finalize_kernel(ReducePlan p, O* out, const typename R::A* partials, int64_t splits,
                                       double scale) {
  using A = typename R::A;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < p.K; k += int64_t(gridDim.x) * blockDim.x) {
    int64_t ib, ob;
    p.kept(k, ib, ob);
    A acc = R::init();
    for (int64_t s = 0; s < splits; ++s) acc = R::step(acc, partials[k * splits + s]);
    if constexpr (std::is_floating_point_v<A>) out[ob] = cv<O>(scale == 1.0 ? acc : A(acc * scale));
    else out[ob] = cv<O>(acc);
  }
}

template <class T, class O, class R>
void reduce_typed(const Tensor& out, const Tensor& in, const Dims& dims, double scale) {
  using A = typename R::A;
  const ReducePlan p = make_reduce_plan(out, in, dims);
  if (p.K == 0) return;
  const int dev = out.device().index;
  const cudaStream_t s = stream(dev);
  const bool inner_contiguous = p.nr > 0 && p.rin[0] == 1;
  const bool per_thread = p.R == 0 || p.R < 16 || (!inner_contiguous && p.K >= 2048);
  if (per_thread) {
    reduce_thread_kernel<T, O, R><<<blocks_for(p.K), kThreads, 0, s>>>(p, ptr<O>(out), ptr<const T>(in), scale);
    WANWU_CUDA_LAUNCH_CHECK();
    return;
  }
  // Split long reductions so that the grid has a few blocks per SM.
  const int64_t sms = context(dev).props.multiProcessorCount;
  int64_t splits = 1;
  if (p.K < 4 * sms) {
    splits = (4 * sms + p.K - 1) / p.K;
    const int64_t max_splits = (p.R + 4 * kThreads - 1) / (4 * kThreads);  // >= 4 elements per thread
    if (splits > max_splits) splits = max_splits;
    if (splits > 1024) splits = 1024;
    if (splits < 1) splits = 1;
  }
  WANWU_CHECK_SHAPE(p.K < (int64_t(1) << 31), "reduce: too many outputs (", p.K, ") for the CUDA kernel");
  Tensor partial;
  if (splits > 1) partial = empty({p.K * splits * int64_t(sizeof(A))}, DType::u8, dev);
  const dim3 grid(static_cast<unsigned>(p.K), static_cast<unsigned>(splits));
  reduce_block_kernel<T, O, R><<<grid, kThreads, 0, s>>>(p, ptr<O>(out), splits > 1 ? ptr<A>(partial) : nullptr,
                                                        ptr<const T>(in), scale);
  WANWU_CUDA_LAUNCH_CHECK();
  if (splits > 1) {
    reduce_finalize_kernel<O, R><<<blocks_for(p.K), kThreads, 0, s>>>(p, ptr<O>(out), ptr<const A>(partial), splits,
                                                                      scale);
    WANWU_CUDA_LAUNCH_CHECK();
  }
}

inline void reduce(ReduceOp op, const Tensor& out, const Tensor& in, const Dims& dims) {
  const char* name = op_name(op);
  int64_t count = 1;
  for (int64_t d : dims) count *= in.shape()[static_cast<int>(d)];
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::prod:
      return dispatch_dtype(in.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        using O = std::conditional_t<is_floating(dtype_of_v<T>), T, int64_t>;
        if (op == ReduceOp::sum) reduce_typed<T, O, SumR<T>>(out, in, dims, 1.0);
        else reduce_typed<T, O, ProdR<T>>(out, in, dims, 1.0);
      });
    case ReduceOp::mean:
      return dispatch_floating(in.dtype(), name, [&](auto tag) {
        using T = typename decltype(tag)::type;
        reduce_typed<T, T, SumR<T>>(out, in, dims, count > 0 ? 1.0 / static_cast<double>(count) : NAN);
      });
    case ReduceOp::max:
    case ReduceOp::min:
      return dispatch_dtype(in.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (op == ReduceOp::max) reduce_typed<T, T, MaxR<T>>(out, in, dims, 1.0);
        else reduce_typed<T, T, MinR<T>>(out, in, dims, 1.0);
      });
    case ReduceOp::any:
    case ReduceOp::all:
      return dispatch_dtype(in.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (op == ReduceOp::any) reduce_typed<T, bool, AnyR<T>>(out, in, dims, 1.0);
        else reduce_typed<T, bool, AllR<T>>(out, in, dims, 1.0);
      });
  }
}

// ---- argmax / argmin ----
template <class C>
struct ArgPair {
  C v;
  int64_t i;
};

// The better of two candidates: NaN first, then the extreme, then the smaller index. Associative
// and commutative, so any reduction order finds the first extreme, as the CPU's scan does.
template <class C, bool IsMax>
__device__ ArgPair<C> arg_better(ArgPair<C> a, ArgPair<C> b) {
  const bool an = a.v != a.v, bn = b.v != b.v;
  if (an || bn) {
    if (an && bn) return a.i < b.i ? a : b;
    return an ? a : b;
  }
  if (IsMax ? a.v > b.v : a.v < b.v) return a;
  if (IsMax ? b.v > a.v : b.v < a.v) return b;
  return a.i < b.i ? a : b;
}

template <class T, bool IsMax>
__global__ void arg_reduce_kernel(ReducePlan p, T* vals, int64_t* idxs, const T* in) {
  using C = compute_t<T>;
  int64_t ib, ob;
  p.kept(blockIdx.x, ib, ob);
  ArgPair<C> best{cv<C>(in[ib]), 0};
  for (int64_t r = threadIdx.x; r < p.R; r += blockDim.x)
    best = arg_better<C, IsMax>(best, ArgPair<C>{cv<C>(in[ib + p.reduced(r)]), r});
  best = block_reduce(best, [](ArgPair<C> a, ArgPair<C> b) { return arg_better<C, IsMax>(a, b); });
  if (threadIdx.x == 0) {
    vals[ob] = cv<T>(best.v);
    idxs[ob] = best.i;
  }
}

inline void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in, int dim) {
  WANWU_CHECK_SHAPE(values.strides() == indices.strides(), "arg_reduce: values and indices need equal strides");
  const ReducePlan p = make_reduce_plan(values, in, Dims{dim});
  if (p.K == 0) return;
  WANWU_CHECK_SHAPE(p.R > 0, "arg_reduce: cannot reduce an empty dimension");
  WANWU_CHECK_SHAPE(p.K < (int64_t(1) << 31), "arg_reduce: too many outputs (", p.K, ") for the CUDA kernel");
  const cudaStream_t s = stream(in.device().index);
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (op == ArgReduceOp::argmax)
      arg_reduce_kernel<T, true><<<static_cast<unsigned>(p.K), kThreads, 0, s>>>(p, ptr<T>(values),
                                                                                 ptr<int64_t>(indices), ptr<const T>(in));
    else
      arg_reduce_kernel<T, false><<<static_cast<unsigned>(p.K), kThreads, 0, s>>>(p, ptr<T>(values),
                                                                                  ptr<int64_t>(indices), ptr<const T>(in));
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

}  // namespace wanwu::cuda
