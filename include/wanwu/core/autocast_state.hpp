// The thread-local autocast state that ops consult (DESIGN D12). amp/autocast.hpp has the public
// guard; the ops only need these helpers: cast floating inputs to the low dtype for the
// matmul-like ops, and 16-bit inputs up to f32 for the ops that must run in f32.
#pragma once

#include "tensor.hpp"

namespace wanwu::amp {

struct AutocastState {
  bool enabled = false;
  DType dtype = DType::bf16;
};

inline AutocastState& autocast_state() {
  thread_local AutocastState state;
  return state;
}

inline bool autocast_enabled() { return autocast_state().enabled; }

// Lower-precision policy (conv, linear, matmul, attention): f32 and f16/bf16 inputs run in the
// autocast dtype; f64 stays f64 (as PyTorch: autocast never touches double).
inline Tensor lower_precision(const Tensor& t) {
  const AutocastState& s = autocast_state();
  if (!s.enabled || !t.defined() || !t.is_floating_point() || t.dtype() == DType::f64 || t.dtype() == s.dtype) return t;
  return t.to(s.dtype);
}

// f32 policy (softmax, norms, losses, exp/log, sums): 16-bit inputs are widened to f32.
inline Tensor full_precision(const Tensor& t) {
  if (!autocast_state().enabled || !t.defined() || (t.dtype() != DType::f16 && t.dtype() != DType::bf16)) return t;
  return t.to(DType::f32);
}

}  // namespace wanwu::amp
