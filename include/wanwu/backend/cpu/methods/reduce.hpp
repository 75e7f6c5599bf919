// CpuBackend::reduce and arg_reduce.
#pragma once

#include "../cpu_backend.hpp"
#include "../reduce.hpp"

namespace wanwu {
WANWU_CPU_METHOD void CpuBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& in, const Dims& dims) {
  cpu::reduce(op, out, in, dims);
}
WANWU_CPU_METHOD void CpuBackend::arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices,
                                             const Tensor& in, int dim) {
  cpu::arg_reduce(op, values, indices, in, dim);
}
}  // namespace wanwu
