// Runs f16/bf16 tensors through the f32 kernels: CPU kernels for the heavy ops are written for
// f32 and f64; 16-bit inputs are widened, computed in f32 and rounded once on the way out
// (DESIGN D3: f16/bf16 are accepted through f32 math on the CPU).
#pragma once

#include "../backend.hpp"

namespace wanwu::cpu {

inline bool is_16bit_float(DType d) { return d == DType::f16 || d == DType::bf16; }

// A contiguous f32 copy (undefined stays undefined).
inline Tensor widen(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor out = empty_tensor(t.shape(), DType::f32, t.device());
  cpu_backend().copy(out, t);
  return out;
}
// An f32 buffer shaped like t (undefined stays undefined).
inline Tensor widened_buffer(const Tensor& t) {
  return t.defined() ? empty_tensor(t.shape(), DType::f32, t.device()) : t;
}
// dst <- src, rounding to dst's dtype (no-op for undefined).
inline void narrow_into(const Tensor& dst, const Tensor& src) {
  if (dst.defined()) cpu_backend().copy(dst, src);
}

// The data pointer of an optional tensor.
template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

// Calls f(TypeTag<float or double>) for f32/f64 tensors; 16-bit floats run `widened` instead
// (which converts and calls the same method again in f32).
template <class Widened, class F>
void dispatch_f32_f64(DType dt, const char* op, Widened&& widened, F&& f) {
  if (is_16bit_float(dt)) return widened();
  dispatch_floating(dt, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) f(tag);
  });
}

}  // namespace wanwu::cpu
