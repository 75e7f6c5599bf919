// CpuBackend: gemm (OpenBLAS), gemm with a bias and activation epilogue, and the indexing kernels.
#pragma once

#include "../blas.hpp"
#include "../cpu_backend.hpp"
#include "../index.hpp"

namespace wanwu {
WANWU_CPU_METHOD void CpuBackend::gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                                       double beta) {
  cpu::gemm(out, a, b, alpha, beta);
}
// The bias goes into out first and the GEMM accumulates onto it (beta = 1), so only the activation
// costs a pass of its own; OpenBLAS has no epilogue to fuse it into.
WANWU_CPU_METHOD void CpuBackend::gemm_bias_act(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias,
                                                GemmEpilogue act) {
  if (bias.defined()) copy(out, bias.expand(out.shape()));
  cpu::gemm(out, a, b, 1.0, bias.defined() ? 1.0 : 0.0);
  if (act == GemmEpilogue::relu) unary(UnaryOp::relu, OpParams{}, out, out);
  if (act == GemmEpilogue::gelu_tanh) unary(UnaryOp::gelu_tanh, OpParams{}, out, out);
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
