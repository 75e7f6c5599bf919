// CUDA elementwise kernels: the converting strided copy, fill, every unary and binary op of the
// X-macro tables in backend/functors.hpp, and where. The per-element math is the functors the
// CPU backend runs (DESIGN §6); this file adds only indexing and launch. One grid-stride kernel
// per (op, dtype) covers every layout: operands that are dense and in order take a linear-index
// path, everything else (broadcast stride 0, permuted, sliced, up to kMaxDims dims) computes its
// offsets from the coalesced shape. A new elementwise op is one functor and one table line; the
// switches below are generated from the tables.
#pragma once

#include "runtime.cuh"

namespace wanwu::cuda {

// Dense operands take an unrolled path: each thread first issues kUnroll independent loads (a
// block-wide coalesced row each), then computes and stores, so enough loads are in flight to
// saturate HBM; for f16/bf16 operands whose pointers are all aligned, each load is a 16-byte pack
// (runtime.cuh, kPackOf below), so a bf16 add moves 512 bytes per warp instruction instead of 64. The strided path computes offsets
// per element. WANWU_DENSE_LOOP stays defined for the other dense passes over [rows, C] (batch
// norm's, batch_norm.cuh).
inline constexpr int kUnroll = 4;
// Packs in flight per thread and operand for packs of V values: 16 values, at most kUnroll packs.
// Four 16-byte packs of each operand held a bf16 add at 97 registers (two blocks per SM); two
// hold as many bytes in flight per SM with twice the resident warps.
template <int V>
inline constexpr int kUnrollOf = V >= 16 ? 1 : V >= 8 ? 2 : kUnroll;

inline unsigned elementwise_blocks(int64_t n, bool contiguous, int unroll = kUnroll) {
  return blocks_for(contiguous ? (n + unroll - 1) / unroll : n);
}

// U loads per thread (LOADS with i = the element or pack index, k = 0..U-1), then U stores, over
// i < n, grid-stride.
#define WANWU_DENSE_LOOP_N(U, LOADS, STORES)                                                              \
  for (int64_t base = blockIdx.x * int64_t(blockDim.x) * (U); base < n;                                  \
       base += int64_t(gridDim.x) * blockDim.x * (U)) {                                                  \
    _Pragma("unroll") for (int k = 0; k < (U); ++k) {                                                    \
      const int64_t i = base + threadIdx.x + int64_t(k) * blockDim.x;                                    \
      if (i < n) { LOADS; }                                                                              \
    }                                                                                                    \
    _Pragma("unroll") for (int k = 0; k < (U); ++k) {                                                    \
      const int64_t i = base + threadIdx.x + int64_t(k) * blockDim.x;                                    \
      if (i < n) { STORES; }                                                                             \
    }                                                                                                    \
  }
#define WANWU_DENSE_LOOP(LOADS, STORES) WANWU_DENSE_LOOP_N(kUnroll, LOADS, STORES)

// The pack width of an elementwise kernel reading T and writing O: 16 bytes of the wider type when
// either is a 16-bit float (and the other floating, or a bool result), else 1. A scalar access of
// a 2-byte element moves 64 bytes per warp instruction and left HBM idle; 4- and 8-byte elements
// already reach the copy bandwidth with scalar accesses (add f32: 103% of torch's copy), so packed
// instantiations, which cost compile time for every op, are made only where they pay.
template <class T>
inline constexpr bool kHalfFloat = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;
template <class T>
inline constexpr bool kFloating = kHalfFloat<T> || std::is_floating_point_v<T>;
template <class O, class T>
inline constexpr int kPackOf = (kHalfFloat<T> && (kFloating<O> || std::is_same_v<O, bool>)) || (kFloating<T> && kHalfFloat<O>)
                                   ? 16 / int(sizeof(O) > sizeof(T) ? sizeof(O) : sizeof(T))
                                   : 1;

// Calls f(std::integral_constant<int, V>) with V = kPackOf<O, T> when the operands are dense and in
// order and each pointer is aligned to its pack, else with V = 1 (the scalar dense path and the
// strided one). The kernels take V as a template argument: V > 1 instantiates only the packed loop.
template <class O, class T, class F>
void with_elementwise_pack(bool contiguous, const O* out, std::initializer_list<const T*> in, F&& f) {
  constexpr int V = kPackOf<O, T>;
  bool ok = contiguous && V > 1 && aligned_to(alignof(Pack<O, V>), {out});
  for (const T* p : in) ok = ok && aligned_to(alignof(Pack<T, V>), {p});
  if constexpr (V > 1) {
    if (ok) return f(std::integral_constant<int, V>{});
  }
  f(std::integral_constant<int, 1>{});
}

// Dense operands in packs of V (n / V of them, kUnrollOf<V> per thread and trip) and the n % V elements
// after the last pack one per thread.
#define WANWU_PACKED_LOOP(V, N, LOADS, STORES, TAIL)                                                   \
  {                                                                                                  \
    const int64_t n = (N) / (V);                                                                     \
    WANWU_DENSE_LOOP_N(kUnrollOf<V>, LOADS, STORES)                                                  \
    for (int64_t i = n * (V) + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (N);              \
         i += int64_t(gridDim.x) * blockDim.x) {                                                     \
      TAIL;                                                                                          \
    }                                                                                                \
  }

template <class O, class T, class F, int V>
__global__ void unary_kernel(StridedIter<2> it, int64_t n_all, O* out, const T* in, F f) {
  using C = compute_t<T>;
  if (V > 1 || it.contiguous) {
    auto apply = [&](const Pack<T, V>& a) {
      Pack<O, V> r;
#pragma unroll
      for (int j = 0; j < V; ++j) r.v[j] = cv<O>(f(cv<C>(a.v[j])));
      return r;
    };
    Pack<T, V> v[kUnrollOf<V>];
    WANWU_PACKED_LOOP(V, n_all, (v[k] = load_pack<T, V>(in + i * V)), (store_pack<O, V>(out + i * V, apply(v[k]))),
                      out[i] = cv<O>(f(cv<C>(in[i]))))
    return;
  }
  if constexpr (V == 1) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_all; i += int64_t(gridDim.x) * blockDim.x) {
      int64_t off[2];
      it.offsets(i, off);
      out[off[0]] = cv<O>(f(cv<C>(in[off[1]])));
    }
  }
}

template <class O, class T, class F, int V>
__global__ void binary_kernel(StridedIter<3> it, int64_t n_all, O* out, const T* a, const T* b, F f) {
  using C = compute_t<T>;
  if (V > 1 || it.contiguous) {
    auto apply = [&](const Pack<T, V>& x, const Pack<T, V>& y) {
      Pack<O, V> r;
#pragma unroll
      for (int j = 0; j < V; ++j) r.v[j] = cv<O>(f(cv<C>(x.v[j]), cv<C>(y.v[j])));
      return r;
    };
    Pack<T, V> va[kUnrollOf<V>], vb[kUnrollOf<V>];
    WANWU_PACKED_LOOP(V, n_all, (va[k] = load_pack<T, V>(a + i * V), vb[k] = load_pack<T, V>(b + i * V)),
                      (store_pack<O, V>(out + i * V, apply(va[k], vb[k]))), out[i] = cv<O>(f(cv<C>(a[i]), cv<C>(b[i]))))
    return;
  }
  if constexpr (V == 1) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_all; i += int64_t(gridDim.x) * blockDim.x) {
      int64_t off[3];
      it.offsets(i, off);
      out[off[0]] = cv<O>(f(cv<C>(a[off[1]]), cv<C>(b[off[2]])));
    }
  }
}

template <class T>
__global__ void where_kernel(StridedIter<4> it, int64_t n, T* out, const bool* cond, const T* a, const T* b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[4];
    it.offsets(i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
}

template <class T>
__global__ void fill_kernel(StridedIter<1> it, int64_t n, T* out, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (it.contiguous) {
      out[i] = value;
    } else {
      int64_t off[1];
      it.offsets(i, off);
      out[off[0]] = value;
    }
  }
}

template <class D, class S, int V>
__global__ void copy_kernel(StridedIter<2> it, int64_t n_all, D* out, const S* in) {
  if (V > 1 || it.contiguous) {
    auto convert = [&](const Pack<S, V>& a) {
      Pack<D, V> r;
#pragma unroll
      for (int j = 0; j < V; ++j) r.v[j] = cv<D>(a.v[j]);
      return r;
    };
    Pack<S, V> v[kUnrollOf<V>];
    WANWU_PACKED_LOOP(V, n_all, (v[k] = load_pack<S, V>(in + i * V)), (store_pack<D, V>(out + i * V, convert(v[k]))),
                      out[i] = cv<D>(in[i]))
    return;
  }
  if constexpr (V == 1) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_all; i += int64_t(gridDim.x) * blockDim.x) {
      int64_t off[2];
      it.offsets(i, off);
      out[off[0]] = cv<D>(in[off[1]]);
    }
  }
}

template <OpDTypes D, class F>
decltype(auto) dispatch_op_dtypes(DType d, const char* op, F&& f) {
  if constexpr (D == OpDTypes::floating) {
    return dispatch_floating(d, op, std::forward<F>(f));
  } else {
    if constexpr (D == OpDTypes::numeric)
      WANWU_CHECK_DTYPE(d != DType::boolean, op, ": dtype bool is not supported");
    return dispatch_dtype(d, std::forward<F>(f));
  }
}

template <class F, OpDTypes D, OpOut Out>
void run_unary(const OpParams& p, const Tensor& out, const Tensor& in, const char* name) {
  const F f(p);
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto it = make_iter<2>(out.shape(), {&out.strides(), &in.strides()});
  const cudaStream_t s = stream(out.device().index);
  dispatch_op_dtypes<D>(in.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (D == OpDTypes::numeric && std::is_same_v<T, bool>) {
      return;  // rejected above; not instantiated
    } else {
      using O = std::conditional_t<Out == OpOut::boolean, bool, T>;
      O* op = ptr<O>(out);
      const T* ip = ptr<const T>(in);
      with_elementwise_pack<O, T>(it.contiguous, op, {ip}, [&](auto v) {
        constexpr int V = decltype(v)::value;
        unary_kernel<O, T, F, V><<<elementwise_blocks(n / V, it.contiguous, kUnrollOf<V>), kThreads, 0, s>>>(it, n, op, ip, f);
      });
    }
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

template <class F, OpDTypes D, OpOut Out>
void run_binary(const OpParams& p, const Tensor& out, const Tensor& a, const Tensor& b, const char* name) {
  const F f(p);
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto it = make_iter<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()});
  const cudaStream_t s = stream(out.device().index);
  dispatch_op_dtypes<D>(a.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (D == OpDTypes::numeric && std::is_same_v<T, bool>) {
      return;
    } else {
      using O = std::conditional_t<Out == OpOut::boolean, bool, T>;
      O* op = ptr<O>(out);
      const T *ap = ptr<const T>(a), *bp = ptr<const T>(b);
      with_elementwise_pack<O, T>(it.contiguous, op, {ap, bp}, [&](auto v) {
        constexpr int V = decltype(v)::value;
        binary_kernel<O, T, F, V><<<elementwise_blocks(n / V, it.contiguous, kUnrollOf<V>), kThreads, 0, s>>>(it, n, op, ap, bp, f);
      });
    }
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void unary(UnaryOp op, const OpParams& p, const Tensor& out, const Tensor& in) {
#define WANWU_CUDA_UNARY_CASE(name, F, dt, o) \
  case UnaryOp::name: return run_unary<F, OpDTypes::dt, OpOut::o>(p, out, in, #name);
  switch (op) { WANWU_UNARY_OPS(WANWU_CUDA_UNARY_CASE) }
#undef WANWU_CUDA_UNARY_CASE
}

inline void binary(BinaryOp op, const OpParams& p, const Tensor& out, const Tensor& a, const Tensor& b) {
#define WANWU_CUDA_BINARY_CASE(name, F, dt, o) \
  case BinaryOp::name: return run_binary<F, OpDTypes::dt, OpOut::o>(p, out, a, b, #name);
  switch (op) { WANWU_BINARY_OPS(WANWU_CUDA_BINARY_CASE) }
#undef WANWU_CUDA_BINARY_CASE
}

inline void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto it = make_iter<4>(out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()});
  const cudaStream_t s = stream(out.device().index);
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    where_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(it, n, ptr<T>(out), ptr<const bool>(cond), ptr<const T>(a),
                                                       ptr<const T>(b));
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void fill(const Tensor& dst, Scalar v) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const auto it = make_iter<1>(dst.shape(), {&dst.strides()});
  const cudaStream_t s = stream(dst.device().index);
  dispatch_dtype(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(it, n, ptr<T>(dst), v.to<T>());
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void copy(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const auto it = make_iter<2>(dst.shape(), {&dst.strides(), &src.strides()});
  const cudaStream_t s = stream(dst.device().index);
  if (it.contiguous && dst.dtype() == src.dtype()) {
    WANWU_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice, s));
    return;
  }
  dispatch_dtype(dst.dtype(), [&](auto dtag) {
    dispatch_dtype(src.dtype(), [&](auto stag) {
      using D = typename decltype(dtag)::type;
      using S = typename decltype(stag)::type;
      D* dp = ptr<D>(dst);
      const S* sp = ptr<const S>(src);
      with_elementwise_pack<D, S>(it.contiguous, dp, {sp}, [&](auto v) {
        constexpr int V = decltype(v)::value;
        copy_kernel<D, S, V><<<elementwise_blocks(n / V, it.contiguous, kUnrollOf<V>), kThreads, 0, s>>>(it, n, dp, sp);
      });
    });
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

// A contiguous copy of t on its device (t itself when already contiguous).
inline Tensor contiguous(const Tensor& t) {
  if (!t.defined() || t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), t.dtype(), t.device().index);
  copy(out, t);
  return out;
}
inline Tensor cast(const Tensor& t, DType dt) {
  if (!t.defined() || (t.dtype() == dt && t.is_contiguous())) return t;
  Tensor out = empty(t.shape(), dt, t.device().index);
  copy(out, t);
  return out;
}
inline void zero(const Tensor& t) {
  if (t.defined() && t.numel() > 0)
    WANWU_CUDA_CHECK(cudaMemsetAsync(t.data_ptr(), 0, t.nbytes(), stream(t.device().index)));
}

}  // namespace wanwu::cuda
