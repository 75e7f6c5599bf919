// The CPU backend (DESIGN D11): a real backend, not a reference — OpenBLAS GEMM, OpenMP threads,
// vectorizable loops, a caching allocator. `CpuBackend` implements the Backend interface by
// forwarding to the kernel families in this folder; its methods are defined in methods/*.hpp,
// one file per family.
//
// Compile model: by default this header defines every method inline, so a program needs only
// `-I include`. Programs with many translation units define WANWU_CPU_BACKEND_EXTERN and compile
// the methods once: all in one TU (implementation.hpp) or one TU per methods/*.hpp file, which
// builds in parallel (CMake's wanwu::cpu_backend does that). In that mode `device_type()` is the
// key function, so the vtable lives in the TU that compiles methods/core.hpp.
#pragma once

#include "../backend.hpp"

#if defined(WANWU_CPU_BACKEND_EXTERN)
#define WANWU_CPU_METHOD
#else
#define WANWU_CPU_METHOD inline
#endif

namespace wanwu {

class CpuBackend final : public Backend {
 public:
  DeviceType device_type() const override;  // methods/core.hpp
  int device_count() const override;
  Allocator& allocator(int device_index) override;
  void copy_to_host(void* host_dst, const Tensor& src) override;
  void copy_from_host(const Tensor& dst, const void* host_src) override;
  void random(const Tensor& out, const RandomParams& p, bool wide) override;

  void copy(const Tensor& dst, const Tensor& src) override;  // methods/copy.hpp

  void unary(UnaryOp op, const OpParams& p, const Tensor& out, const Tensor& in) override;  // methods/unary.hpp

  void binary(BinaryOp op, const OpParams& p, const Tensor& out, const Tensor& a,
              const Tensor& b) override;  // methods/binary.hpp
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override;
  void fill(const Tensor& dst, Scalar value) override;

  void reduce(ReduceOp op, const Tensor& out, const Tensor& in, const Dims& dims) override;  // methods/reduce.hpp
  void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in, int dim) override;

  void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
            double beta) override;  // methods/linalg_index.hpp
  void gemm_bias_act(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias,
                     GemmEpilogue act) override;
  void index_select(const Tensor& out, const Tensor& in, int dim, const Tensor& index) override;
  void index_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) override;
  void gather(const Tensor& out, const Tensor& in, int dim, const Tensor& index) override;
  void scatter_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) override;

  void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Conv2dParams& p) override;  // methods/conv.hpp
  void conv2d_backward_input(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w,
                             const Conv2dParams& p) override;
  void conv2d_backward_weight(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x,
                              const Conv2dParams& p) override;

  void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x,
                          const Pool2dParams& p) override;  // methods/pool.hpp
  void max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& indices,
                           const Pool2dParams& p) override;
  void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p) override;
  void avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out, const Pool2dParams& p) override;
  void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x) override;
  void adaptive_avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out) override;
  void interpolate_bilinear_forward(const Tensor& out, const Tensor& x, AlignCorners align) override;
  void interpolate_bilinear_backward(const Tensor& grad_x, const Tensor& grad_out, AlignCorners align) override;

  void batch_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& invstd, const Tensor& x,
                          const Tensor& weight, const Tensor& bias, double eps, Activation act,
                          const Tensor& residual, const BatchNormRunning& running) override;  // methods/norm.hpp
  void batch_norm_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b, const Tensor& grad_y,
                           const Tensor& x, const Tensor& weight, const Tensor& save_mean, const Tensor& save_invstd,
                           const Tensor& relu_out, const Tensor& masked_grad = Tensor()) override;
  void batch_norm_act_grad(const Tensor& grad_h, const Tensor& grad_y, const Tensor& x, const Tensor& scale,
                           const Tensor& shift, BinaryOp bwd) override;
  void batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift, Activation act,
                        const Tensor& residual) override;
  void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                          const Tensor& weight, const Tensor& bias, double eps) override;
  void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b, const Tensor& grad_y,
                           const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd) override;
  void softmax_forward(const Tensor& out, const Tensor& x, int dim, SoftmaxKind kind) override;
  void softmax_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& out, int dim,
                        SoftmaxKind kind) override;
  void cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& logits, const Tensor& target,
                             const Tensor& weight, const CrossEntropyParams& p) override;
  void cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss, const Tensor& logits,
                              const Tensor& lse, const Tensor& target, const Tensor& weight,
                              const CrossEntropyParams& p) override;

  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& mask, const AttentionParams& p) override;  // methods/attention.hpp
  void attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v, const Tensor& grad_out,
                          const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const Tensor& mask, const AttentionParams& p) override;

  void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                const SgdStepParams& p) override;  // methods/optim.hpp
  void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const Tensor& max_exp_avg_sq, const AdamStepParams& p) override;
  void scale_multi(const std::vector<Tensor>& ts, double factor, const Tensor& found_nonfinite,
                   const Tensor& divisor) override;
  void norm_multi(const std::vector<Tensor>& ts, const NormParams& p, const Tensor& out) override;
  void amp_update_scale(const Tensor& scale, const Tensor& growth_tracker, const Tensor& found_inf,
                        const AmpScaleParams& p) override;
};

}  // namespace wanwu

#if !defined(WANWU_CPU_BACKEND_EXTERN)
#include "methods/binary.hpp"
#include "methods/copy.hpp"
#include "methods/core.hpp"
#include "methods/linalg_index.hpp"
#include "methods/reduce.hpp"
#include "methods/unary.hpp"
#include "methods/conv.hpp"
#include "methods/pool.hpp"
#include "methods/norm.hpp"
#include "methods/attention.hpp"
#include "methods/optim.hpp"
#endif
