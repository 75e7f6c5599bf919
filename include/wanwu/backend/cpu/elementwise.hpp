// CPU elementwise kernels: unary, binary, where, fill and the converting copy. Each is a
// template over the input type T, the output type O and the functor F; the loops special-case
// contiguous operands and broadcast scalars, marked `omp simd` so that simple functors vectorize
// at -O2 too. Outputs never partially overlap inputs (the ops layer copies such operands), so
// the simd loops are safe; an exact alias (in-place op) is fine element by element.
#pragma once

#include <cstring>

#include "../functors.hpp"
#include "loops.hpp"

namespace wanwu::cpu {

template <class T, class O, class F>
void unary_kernel(const Tensor& out, const Tensor& in, const F& f) {
  using C = compute_t<T>;
  const Tensor* ops[2] = {&out, &in};
  StridedLoop<2>(ops).run([&](char** p, const int64_t* s, int64_t n) {
    if (s[0] == sizeof(O) && s[1] == sizeof(T)) {
      O* o = reinterpret_cast<O*>(p[0]);
      const T* a = reinterpret_cast<const T*>(p[1]);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = convert<O>(f(static_cast<C>(a[i])));
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<O*>(p[0] + i * s[0]) =
            convert<O>(f(static_cast<C>(*reinterpret_cast<const T*>(p[1] + i * s[1]))));
    }
  });
}

template <class T, class O, class F>
void binary_kernel(const Tensor& out, const Tensor& a, const Tensor& b, const F& f) {
  using C = compute_t<T>;
  const Tensor* ops[3] = {&out, &a, &b};
  StridedLoop<3>(ops).run([&](char** p, const int64_t* s, int64_t n) {
    O* o = reinterpret_cast<O*>(p[0]);
    const T* x = reinterpret_cast<const T*>(p[1]);
    const T* y = reinterpret_cast<const T*>(p[2]);
    if (s[0] == sizeof(O)) {
      if (s[1] == sizeof(T) && s[2] == sizeof(T)) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = convert<O>(f(static_cast<C>(x[i]), static_cast<C>(y[i])));
        return;
      }
      if (s[1] == sizeof(T) && s[2] == 0) {
        const C yv = static_cast<C>(y[0]);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = convert<O>(f(static_cast<C>(x[i]), yv));
        return;
      }
      if (s[1] == 0 && s[2] == sizeof(T)) {
        const C xv = static_cast<C>(x[0]);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = convert<O>(f(xv, static_cast<C>(y[i])));
        return;
      }
    }
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<O*>(p[0] + i * s[0]) =
          convert<O>(f(static_cast<C>(*reinterpret_cast<const T*>(p[1] + i * s[1])),
                       static_cast<C>(*reinterpret_cast<const T*>(p[2] + i * s[2]))));
  });
}

template <class T>
void where_kernel(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Tensor* ops[4] = {&out, &cond, &a, &b};
  StridedLoop<4>(ops).run([&](char** p, const int64_t* s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const bool c = *reinterpret_cast<const bool*>(p[1] + i * s[1]);
      *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(p[c ? 2 : 3] + i * s[c ? 2 : 3]);
    }
  });
}

template <class T>
void fill_kernel(const Tensor& dst, T value) {
  const Tensor* ops[1] = {&dst};
  StridedLoop<1>(ops).run([&](char** p, const int64_t* s, int64_t n) {
    if (s[0] == sizeof(T)) {
      T* o = reinterpret_cast<T*>(p[0]);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = value;
    } else {
      for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = value;
    }
  });
}

template <class D, class S>
void copy_kernel(const Tensor& dst, const Tensor& src) {
  const Tensor* ops[2] = {&dst, &src};
  StridedLoop<2>(ops).run([&](char** p, const int64_t* s, int64_t n) {
    if (s[0] == sizeof(D) && s[1] == sizeof(S)) {
      D* o = reinterpret_cast<D*>(p[0]);
      const S* a = reinterpret_cast<const S*>(p[1]);
      if constexpr (std::is_same_v<D, S>) {
        std::memcpy(o, a, static_cast<size_t>(n) * sizeof(D));
      } else {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = convert<D>(a[i]);
      }
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<D*>(p[0] + i * s[0]) = convert<D>(*reinterpret_cast<const S*>(p[1] + i * s[1]));
    }
  });
}

// Dispatch over the dtypes an op accepts (see OpDTypes).
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
  dispatch_op_dtypes<D>(in.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (D == OpDTypes::numeric && std::is_same_v<T, bool>) {
      return;  // rejected above; not instantiated
    } else if constexpr (Out == OpOut::boolean) {
      unary_kernel<T, bool>(out, in, f);
    } else {
      unary_kernel<T, T>(out, in, f);
    }
  });
}

template <class F, OpDTypes D, OpOut Out>
void run_binary(const OpParams& p, const Tensor& out, const Tensor& a, const Tensor& b, const char* name) {
  const F f(p);
  dispatch_op_dtypes<D>(a.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (D == OpDTypes::numeric && std::is_same_v<T, bool>) {
      return;
    } else if constexpr (Out == OpOut::boolean) {
      binary_kernel<T, bool>(out, a, b, f);
    } else {
      binary_kernel<T, T>(out, a, b, f);
    }
  });
}

inline void unary(UnaryOp op, const OpParams& p, const Tensor& out, const Tensor& in) {
#define WANWU_CPU_UNARY_CASE(name, F, dt, o) \
  case UnaryOp::name: return run_unary<F, OpDTypes::dt, OpOut::o>(p, out, in, #name);
  switch (op) { WANWU_UNARY_OPS(WANWU_CPU_UNARY_CASE) }
#undef WANWU_CPU_UNARY_CASE
}

inline void binary(BinaryOp op, const OpParams& p, const Tensor& out, const Tensor& a, const Tensor& b) {
#define WANWU_CPU_BINARY_CASE(name, F, dt, o) \
  case BinaryOp::name: return run_binary<F, OpDTypes::dt, OpOut::o>(p, out, a, b, #name);
  switch (op) { WANWU_BINARY_OPS(WANWU_CPU_BINARY_CASE) }
#undef WANWU_CPU_BINARY_CASE
}

inline void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  dispatch_dtype(out.dtype(), [&](auto tag) { where_kernel<typename decltype(tag)::type>(out, cond, a, b); });
}

inline void fill(const Tensor& dst, Scalar v) {
  dispatch_dtype(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_kernel<T>(dst, v.to<T>());
  });
}

inline void copy(const Tensor& dst, const Tensor& src) {
  dispatch_dtype(dst.dtype(), [&](auto dtag) {
    dispatch_dtype(src.dtype(), [&](auto stag) {
      copy_kernel<typename decltype(dtag)::type, typename decltype(stag)::type>(dst, src);
    });
  });
}

}  // namespace wanwu::cpu
