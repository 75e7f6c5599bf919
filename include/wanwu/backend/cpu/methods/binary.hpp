// CpuBackend::binary (every op of WANWU_BINARY_OPS), where and fill.
#pragma once

#include "../cpu_backend.hpp"
#include "../elementwise.hpp"

namespace wanwu {
WANWU_CPU_METHOD void CpuBackend::binary(BinaryOp op, const OpParams& p, const Tensor& out, const Tensor& a,
                                         const Tensor& b) {
  cpu::binary(op, p, out, a, b);
}
WANWU_CPU_METHOD void CpuBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  cpu::where(out, cond, a, b);
}
WANWU_CPU_METHOD void CpuBackend::fill(const Tensor& dst, Scalar value) { cpu::fill(dst, value); }
}  // namespace wanwu
