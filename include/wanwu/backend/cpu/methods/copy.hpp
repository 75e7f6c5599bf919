// CpuBackend::copy: strided copy with conversion between any two dtypes.
#pragma once

#include "../cpu_backend.hpp"
#include "../elementwise.hpp"

namespace wanwu {
WANWU_CPU_METHOD void CpuBackend::copy(const Tensor& dst, const Tensor& src) { cpu::copy(dst, src); }
}  // namespace wanwu
