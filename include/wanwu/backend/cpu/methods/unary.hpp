// CpuBackend::unary: every op of WANWU_UNARY_OPS.
#pragma once

#include "../cpu_backend.hpp"
#include "../elementwise.hpp"

namespace wanwu {
WANWU_CPU_METHOD void CpuBackend::unary(UnaryOp op, const OpParams& p, const Tensor& out, const Tensor& in) {
  cpu::unary(op, p, out, in);
}
}  // namespace wanwu
