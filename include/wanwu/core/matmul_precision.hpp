// The precision of f32 matrix products, PyTorch's torch.set_float32_matmul_precision: `highest`
// (the default) computes f32 GEMMs and convolutions in full f32; `tf32` lets CUDA GEMMs (matmul,
// mm, bmm, linear, attention's products) round their inputs to TF32 (10-bit mantissa) on tensor
// cores, several times faster on Ampere and Hopper at about 1e-3 relative error, and lets cuDNN
// pick TF32 kernels for f32 convolutions (PyTorch's torch.backends.cudnn.allow_tf32, which it
// turns on by default; here one setting covers both, off by default so that f32 results match the
// CPU's). The CPU ignores it, as it has no TF32 arithmetic. f16, bf16 and f64 are unaffected.
//
// Like the autocast state (DESIGN D12) the setting is per thread, read when an op runs: set it on
// the thread that runs forward and backward (MatmulPrecisionGuard scopes it), and a server's
// inference thread or another trainer in the same process keeps its own.
#pragma once

#include <cstdint>

#include "thread_setting.hpp"

namespace wanwu {

enum class MatmulPrecision : uint8_t { highest, tf32 };

inline MatmulPrecision& float32_matmul_precision_slot() {
  thread_local MatmulPrecision p = MatmulPrecision::highest;
  return p;
}

inline MatmulPrecision float32_matmul_precision() { return float32_matmul_precision_slot(); }
inline void set_float32_matmul_precision(MatmulPrecision p) { float32_matmul_precision_slot() = p; }

// Sets the precision for a scope and restores the previous one.
using MatmulPrecisionGuard = ThreadSettingGuard<MatmulPrecision, float32_matmul_precision_slot>;

}  // namespace wanwu
