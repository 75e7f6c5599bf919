// CudaBackend: wanwu's Backend interface (backend/backend.hpp) on NVIDIA GPUs, forwarding each
// virtual call to the kernel family headers in this folder. Every call makes the tensor's device
// current for its duration (restoring the caller's afterwards) and enqueues its work on that
// device's one compute stream, so calls are ordered like the program's statements and only the
// host copies and synchronize() wait for the device. Those are also where a bad index or target
// that a kernel met is raised (device_check.cuh).
#pragma once

#include "allocator.cuh"
#include "attention.cuh"
#include "batch_norm.cuh"
#include "conv.cuh"
#include "device_check.cuh"
#include "elementwise.cuh"
#include "gemm.cuh"
#include "graph.cuh"
#include "index.cuh"
#include "loss.cuh"
#include "norm.cuh"
#include "optim.cuh"
#include "pinned.cuh"
#include "pool.cuh"
#include "random.cuh"
#include "reduce.cuh"
#include "softmax.cuh"

namespace wanwu::cuda {

class CudaBackend final : public Backend {
 public:
  DeviceType device_type() const override { return DeviceType::cuda; }
  int device_count() const override { return cuda::device_count(); }
  Allocator& allocator(int device_index) override { return cuda::allocator(device_index); }
  void synchronize(int device_index) override {
    refuse_in_capture(device_index, "synchronize");
    DeviceGuard g(device_index);
    const std::optional<std::string> error = take_device_error(device_index);  // waits for the uploads too
    async_uploads(device_index).reap();
    if (error) throw IndexError(*error);
  }
  void drain(int device_index) override {
    refuse_in_capture(device_index, "a wait for the device");
    DeviceGuard g(device_index);
    WANWU_CUDA_CHECK(cudaStreamSynchronize(stream(device_index)));  // waits for the uploads too
    async_uploads(device_index).reap();
  }
  // The compute stream waits for every upload queued before its later work (pinned.cuh), so its
  // state covers the copy stream's.
  bool is_idle(int device_index) override {
    refuse_in_capture(device_index, "a query of the device's progress");
    DeviceGuard g(device_index);
    const cudaError_t e = cudaStreamQuery(stream(device_index));
    if (e == cudaErrorNotReady) return false;
    WANWU_CUDA_CHECK(e);
    return true;
  }
  Allocator* pinned_host_allocator() override { return &pinned_allocator(); }
  void copy_from_host_async(const Tensor& dst, const Tensor& host_src) override {
    refuse_in_capture(dst.device().index, "an upload from pinned memory");
    async_uploads(dst.device().index).upload(dst, host_src);
  }

  void copy(const Tensor& dst, const Tensor& src) override {
    DeviceGuard g(dst.device().index);
    cuda::copy(dst, src);
  }
  // Waits for the copy: the caller reads host_dst as soon as this returns.
  void copy_to_host(void* host_dst, const Tensor& src) override {
    const int dev = src.device().index;
    refuse_in_capture(dev, "a read from the device (item, tolist, to(cpu))");
    DeviceGuard g(dev);
    if (src.nbytes() == 0) return;
    WANWU_CUDA_CHECK(cudaMemcpyAsync(host_dst, src.data_ptr(), src.nbytes(), cudaMemcpyDeviceToHost, stream(dev)));
    if (const auto error = take_device_error(dev)) throw IndexError(*error);  // waits for the copy
  }
  // Waits too: the caller may free or reuse host_src as soon as this returns.
  void copy_from_host(const Tensor& dst, const void* host_src) override {
    const int dev = dst.device().index;
    refuse_in_capture(dev, "a copy from host memory (a tensor made from host values)");
    DeviceGuard g(dev);
    if (dst.nbytes() == 0) return;
    WANWU_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), host_src, dst.nbytes(), cudaMemcpyHostToDevice, stream(dev)));
    WANWU_CUDA_CHECK(cudaStreamSynchronize(stream(dev)));
  }
  void begin_capture(int device_index) override { cuda::begin_capture(device_index); }
  std::unique_ptr<DeviceGraph> end_capture(int device_index, const Tensor& live) override {
    return cuda::end_capture(device_index, live);
  }
  void abort_capture(int device_index) noexcept override { cuda::abort_capture(device_index); }

  void fill(const Tensor& dst, Scalar value) override {
    DeviceGuard g(dst.device().index);
    cuda::fill(dst, value);
  }

  void unary(UnaryOp op, const OpParams& p, const Tensor& out, const Tensor& in) override {
    DeviceGuard g(out.device().index);
    cuda::unary(op, p, out, in);
  }
  void binary(BinaryOp op, const OpParams& p, const Tensor& out, const Tensor& a, const Tensor& b) override {
    DeviceGuard g(out.device().index);
    cuda::binary(op, p, out, a, b);
  }
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override {
    DeviceGuard g(out.device().index);
    cuda::where(out, cond, a, b);
  }

  void reduce(ReduceOp op, const Tensor& out, const Tensor& in, const Dims& dims) override {
    DeviceGuard g(out.device().index);
    cuda::reduce(op, out, in, dims);
  }
  void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in, int dim) override {
    DeviceGuard g(in.device().index);
    cuda::arg_reduce(op, values, indices, in, dim);
  }

  void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) override {
    DeviceGuard g(out.device().index);
    cuda::gemm(out, a, b, alpha, beta);
  }
  void gemm_bias_act(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias,
                     GemmEpilogue act) override {
    DeviceGuard g(out.device().index);
    cuda::gemm_bias_act(out, a, b, bias, act);
  }

  void index_select(const Tensor& out, const Tensor& in, int dim, const Tensor& index) override {
    DeviceGuard g(out.device().index);
    cuda::index_select(out, in, dim, index);
  }
  void index_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) override {
    DeviceGuard g(out.device().index);
    cuda::index_add(out, dim, index, src);
  }
  void gather(const Tensor& out, const Tensor& in, int dim, const Tensor& index) override {
    DeviceGuard g(out.device().index);
    cuda::gather(out, in, dim, index);
  }
  void scatter_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) override {
    DeviceGuard g(out.device().index);
    cuda::scatter_add(out, dim, index, src);
  }

  void random(const Tensor& out, const RandomParams& p, bool wide) override {
    DeviceGuard g(out.device().index);
    cuda::random(out, p, wide);
  }

  void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Conv2dParams& p) override {
    DeviceGuard g(out.device().index);
    cuda::conv2d_forward(out, x, w, bias, p);
  }
  void conv2d_backward_input(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w,
                             const Conv2dParams& p) override {
    DeviceGuard g(grad_x.device().index);
    cuda::conv2d_backward_input(grad_x, grad_out, w, p);
  }
  void conv2d_backward_weight(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x,
                              const Conv2dParams& p) override {
    DeviceGuard g(grad_w.device().index);
    cuda::conv2d_backward_weight(grad_w, grad_out, x, p);
  }

  void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x, const Pool2dParams& p) override {
    DeviceGuard g(out.device().index);
    cuda::max_pool2d_forward(out, indices, x, p);
  }
  void max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& indices,
                           const Pool2dParams& p) override {
    DeviceGuard g(grad_x.device().index);
    cuda::max_pool2d_backward(grad_x, grad_out, indices, p);
  }
  void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p) override {
    DeviceGuard g(out.device().index);
    cuda::avg_pool_forward<false>(out, x, p, "avg_pool2d");
  }
  void avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out, const Pool2dParams& p) override {
    DeviceGuard g(grad_x.device().index);
    cuda::avg_pool_backward<false>(grad_x, grad_out, p, "avg_pool2d backward");
  }
  void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x) override {
    DeviceGuard g(out.device().index);
    cuda::avg_pool_forward<true>(out, x, Pool2dParams{}, "adaptive_avg_pool2d");
  }
  void adaptive_avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out) override {
    DeviceGuard g(grad_x.device().index);
    cuda::avg_pool_backward<true>(grad_x, grad_out, Pool2dParams{}, "adaptive_avg_pool2d backward");
  }
  void interpolate_bilinear_forward(const Tensor& out, const Tensor& x, AlignCorners align) override {
    DeviceGuard g(out.device().index);
    cuda::interpolate_bilinear_forward(out, x, align);
  }
  void interpolate_bilinear_backward(const Tensor& grad_x, const Tensor& grad_out, AlignCorners align) override {
    DeviceGuard g(grad_x.device().index);
    cuda::interpolate_bilinear_backward(grad_x, grad_out, align);
  }

  void batch_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& invstd, const Tensor& x,
                          const Tensor& weight, const Tensor& bias, double eps, Activation act, const Tensor& residual,
                          const BatchNormRunning& running) override {
    DeviceGuard g(x.device().index);
    cuda::batch_norm_forward(y, mean, invstd, x, weight, bias, eps, act, residual, running);
  }
  void batch_norm_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b, const Tensor& grad_y,
                           const Tensor& x, const Tensor& weight, const Tensor& save_mean, const Tensor& save_invstd,
                           const Tensor& relu_out, const Tensor& masked_grad = Tensor()) override {
    DeviceGuard g(x.device().index);
    cuda::batch_norm_backward(grad_x, grad_w, grad_b, grad_y, x, weight, save_mean, save_invstd, relu_out,
                              masked_grad);
  }
  void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x, const Tensor& weight,
                          const Tensor& bias, double eps) override {
    DeviceGuard g(x.device().index);
    cuda::layer_norm_forward(y, mean, rstd, x, weight, bias, eps);
  }
  void batch_norm_act_grad(const Tensor& grad_h, const Tensor& grad_y, const Tensor& x, const Tensor& scale,
                           const Tensor& shift, BinaryOp bwd) override {
    DeviceGuard g(x.device().index);
    cuda::batch_norm_act_grad(grad_h, grad_y, x, scale, shift, bwd);
  }
  void batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift, Activation act,
                        const Tensor& residual) override {
    DeviceGuard g(x.device().index);
    cuda::batch_norm_apply(y, x, scale, shift, act, residual);
  }
  void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b, const Tensor& grad_y,
                           const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd) override {
    DeviceGuard g(x.device().index);
    cuda::layer_norm_backward(grad_x, grad_w, grad_b, grad_y, x, weight, mean, rstd);
  }
  void softmax_forward(const Tensor& out, const Tensor& x, int dim, SoftmaxKind kind) override {
    DeviceGuard g(x.device().index);
    cuda::softmax_forward(out, x, dim, kind);
  }
  void softmax_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& out, int dim,
                        SoftmaxKind kind) override {
    DeviceGuard g(out.device().index);
    cuda::softmax_backward(grad_x, grad_out, out, dim, kind);
  }
  void cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& logits, const Tensor& target,
                             const Tensor& weight, const CrossEntropyParams& p) override {
    DeviceGuard g(logits.device().index);
    cuda::cross_entropy_forward(loss, lse, logits, target, weight, p);
  }
  void cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss, const Tensor& logits,
                              const Tensor& lse, const Tensor& target, const Tensor& weight,
                              const CrossEntropyParams& p) override {
    DeviceGuard g(logits.device().index);
    cuda::cross_entropy_backward(grad_logits, grad_loss, logits, lse, target, weight, p);
  }

  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& mask, const AttentionParams& p) override {
    DeviceGuard g(q.device().index);
    cuda::attention_forward(out, lse, q, k, v, mask, p);
  }
  void attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v, const Tensor& grad_out,
                          const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const Tensor& mask, const AttentionParams& p) override {
    DeviceGuard g(q.device().index);
    cuda::attention_backward(grad_q, grad_k, grad_v, grad_out, q, k, v, out, lse, mask, p);
  }

  void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                const SgdStepParams& p) override {
    DeviceGuard g(param.device().index);
    cuda::sgd_step(param, grad, momentum_buffer, p);
  }
  void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const Tensor& max_exp_avg_sq, const AdamStepParams& p) override {
    DeviceGuard g(param.device().index);
    cuda::adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, p);
  }
  void sgd_step_multi(const std::vector<SgdTensors>& ts, const SgdStepParams& p) override {
    if (ts.empty()) return;
    DeviceGuard g(ts[0].param.device().index);
    cuda::sgd_step_multi(ts, p);
  }
  void adam_step_multi(const std::vector<AdamTensors>& ts, const AdamStepParams& p) override {
    if (ts.empty()) return;
    DeviceGuard g(ts[0].param.device().index);
    cuda::adam_step_multi(ts, p);
  }
  void scale_multi(const std::vector<Tensor>& ts, double factor, const Tensor& found_nonfinite,
                   const Tensor& divisor) override {
    if (ts.empty()) return;
    DeviceGuard g(ts[0].device().index);
    cuda::scale_multi(ts, factor, found_nonfinite, divisor);
  }
  void norm_multi(const std::vector<Tensor>& ts, const NormParams& p, const Tensor& out) override {
    DeviceGuard g(out.device().index);
    cuda::norm_multi(ts, p, out);
  }
  void amp_update_scale(const Tensor& scale, const Tensor& growth_tracker, const Tensor& found_inf,
                        const AmpScaleParams& p) override {
    DeviceGuard g(scale.device().index);
    cuda::amp_update_scale(scale, growth_tracker, found_inf, p);
  }
};

inline Backend& cuda_backend() {
  static CudaBackend backend;
  return backend;
}

}  // namespace wanwu::cuda
