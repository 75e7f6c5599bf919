// CpuBackend: gemm (OpenBLAS) and the indexing kernels.
#pragma once

#include "../blas.hpp"
#include "../cpu_backend.hpp"
#include "../index.hpp"

namespace wanwu {
WANWU_CPU_METHOD void CpuBackend::gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                                       double beta) {
  cpu::gemm(out, a, b, alpha, beta);
}
WANWU_CPU_METHOD void CpuBackend::index_select(const Tensor& out, const Tensor& in, int dim, const Tensor& index) {
  cpu::index_select(out, in, dim, index);
}
WANWU_CPU_METHOD void CpuBackend::index_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  cpu::index_add(out, dim, index, src);
}
WANWU_CPU_METHOD void CpuBackend::gather(const Tensor& out, const Tensor& in, int dim, const Tensor& index) {
  cpu::gather(out, in, dim, index);
}
WANWU_CPU_METHOD void CpuBackend::scatter_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  cpu::scatter_add(out, dim, index, src);
}
}  // namespace wanwu
