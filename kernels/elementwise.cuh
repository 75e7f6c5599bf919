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
// saturate HBM; the strided path computes offsets per element. WANWU_DENSE_LOOP stays defined for
// the other dense passes over [rows, C] (batch norm's, norm.cuh).
inline constexpr int kUnroll = 4;

inline unsigned elementwise_blocks(int64_t n, bool contiguous) {
  return blocks_for(contiguous ? (n + kUnroll - 1) / kUnroll : n);
}

#define WANWU_DENSE_LOOP(LOADS, STORES)                                                                   \
  for (int64_t base = blockIdx.x * int64_t(blockDim.x) * kUnroll; base < n;                              \
       base += int64_t(gridDim.x) * blockDim.x * kUnroll) {                                              \
    _Pragma("unroll") for (int k = 0; k < kUnroll; ++k) {                                                \
      const int64_t i = base + threadIdx.x + int64_t(k) * blockDim.x;                                    \
      if (i < n) { LOADS; }                                                                              \
    }                                                                                                    \
    _Pragma("unroll") for (int k = 0; k < kUnroll; ++k) {                                                \
      const int64_t i = base + threadIdx.x + int64_t(k) * blockDim.x;                                    \
      if (i < n) { STORES; }                                                                             \
    }                                                                                                    \
  }

template <class O, class T, class F>
__global__ void unary_kernel(StridedIter<2> it, int64_t n, O* out, const T* in, F f) {
  using C = compute_t<T>;
  if (it.contiguous) {
    T v[kUnroll];
    WANWU_DENSE_LOOP(v[k] = in[i], out[i] = cv<O>(f(cv<C>(v[k]))))
    return;
  }
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    it.offsets(i, off);
    out[off[0]] = cv<O>(f(cv<C>(in[off[1]])));
  }
}

template <class O, class T, class F>
__global__ void binary_kernel(StridedIter<3> it, int64_t n, O* out, const T* a, const T* b, F f) {
  using C = compute_t<T>;
  if (it.contiguous) {
    T va[kUnroll], vb[kUnroll];
    WANWU_DENSE_LOOP((va[k] = a[i], vb[k] = b[i]), out[i] = cv<O>(f(cv<C>(va[k]), cv<C>(vb[k]))))
    return;
  }
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    it.offsets(i, off);
    out[off[0]] = cv<O>(f(cv<C>(a[off[1]]), cv<C>(b[off[2]])));
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

template <class D, class S>
__global__ void copy_kernel(StridedIter<2> it, int64_t n, D* out, const S* in) {
  if (it.contiguous) {
    S v[kUnroll];
    WANWU_DENSE_LOOP(v[k] = in[i], out[i] = cv<D>(v[k]))
    return;
  }
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    it.offsets(i, off);
    out[off[0]] = cv<D>(in[off[1]]);
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
      unary_kernel<O, T, F><<<elementwise_blocks(n, it.contiguous), kThreads, 0, s>>>(it, n, ptr<O>(out), ptr<const T>(in), f);
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
      binary_kernel<O, T, F>
          <<<elementwise_blocks(n, it.contiguous), kThreads, 0, s>>>(it, n, ptr<O>(out), ptr<const T>(a), ptr<const T>(b), f);
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
      copy_kernel<D, S><<<elementwise_blocks(n, it.contiguous), kThreads, 0, s>>>(it, n, ptr<D>(dst), ptr<const S>(src));
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
