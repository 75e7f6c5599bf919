// The Backend interface (DESIGN D5): every kernel a device must provide, as one virtual call per
// op family. Ops (include/wanwu/ops) check arguments, allocate outputs and record autograd, then
// call exactly one of these; the backend switches on dtype once and runs a template over the
// scalar type. Kernels receive tensors whose shapes are already validated and broadcast (inputs
// of elementwise kernels have the output's shape, with stride 0 where broadcast).
//
// `cpu_backend()` always exists. The CUDA translation unit registers its backend at static
// initialization (`register_backend`); a CUDA tensor in a program without it is a clear error,
// not a crash.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "../core/capture.hpp"
#include "../core/conv_algorithm.hpp"
#include "../core/matmul_precision.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "functors.hpp"

namespace wanwu {

// 2-D convolution over NHWC input [N,H,W,C] with weight [O,kH,kW,C/groups] (DESIGN D4). Padding
// may be asymmetric (PyTorch's padding="same" with an even kernel pads the end by one more).
// The running statistics a training batch norm updates in place (both may be undefined: no
// tracking): running = (1 - momentum) * running + momentum * batch statistic, the variance
// unbiased (times M / (M - 1) over M values per channel), as torch.nn.BatchNorm2d. Contiguous, in
// the statistics' dtype (f32, or f64 for f64 input). `batches`, when defined, is a one-element
// i64 count the call adds one to (BatchNorm's num_batches_tracked).
struct BatchNormRunning {
  Tensor mean, var;
  double momentum = 0.1;
  Tensor batches;
};

// What a backend's batch_norm_forward requires of the running statistics: each undefined, or a
// contiguous [C] tensor of the batch statistics' dtype and device (`stat`, the mean output); the
// count undefined or one i64 element on that device.
inline void check_batch_norm_running(const BatchNormRunning& r, const Tensor& stat) {
  for (const Tensor* t : {&r.mean, &r.var})
    WANWU_CHECK_DTYPE(!t->defined() || (t->dtype() == stat.dtype() && t->shape() == stat.shape() &&
                                        t->device() == stat.device() && t->is_contiguous()),
                      "batch_norm: a running statistic must be a contiguous ", stat.dtype(), " tensor of shape ",
                      stat.shape(), " on ", stat.device(), ", got ", t->shape(), " ", t->dtype(), " on ", t->device());
  const Tensor& b = r.batches;
  WANWU_CHECK_DTYPE(!b.defined() || (b.dtype() == DType::i64 && b.numel() == 1 && b.device() == stat.device()),
                    "batch_norm: the count of batches tracked must be one i64 element on ", stat.device(), ", got ",
                    b.shape(), " ", b.dtype(), " on ", b.device());
}

// What a backend's batch_norm_backward requires of relu_out and masked_grad: each undefined, or a
// contiguous tensor of x's dtype and size; masked_grad only with relu_out (it is that mask's output).
inline void check_batch_norm_masks(const Tensor& x, const Tensor& relu_out, const Tensor& masked_grad) {
  for (const auto& [name, t] : {std::pair{"ReLU output", &relu_out}, std::pair{"masked gradient", &masked_grad}})
    WANWU_CHECK_DTYPE(!t->defined() || (t->dtype() == x.dtype() && t->numel() == x.numel() && t->is_contiguous()),
                      "batch_norm backward: the ", name, " must be a contiguous ", x.dtype(), " tensor of ", x.numel(),
                      " values like the input ", x.shape(), ", got ", t->shape(), " ", t->dtype());
  WANWU_CHECK_VALUE(!masked_grad.defined() || relu_out.defined(),
                    "batch_norm backward: a masked gradient to write needs the ReLU output that masks it");
}

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

// Pooling windows over NHWC input; the output size (ceil_mode included) is decided by the op.
struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool count_include_pad = true;  // avg_pool2d
  int64_t divisor_override = 0;   // avg_pool2d; 0: none
};

enum class SoftmaxKind : uint8_t { softmax, log_softmax };
// The activation applied in a GEMM's epilogue (cuBLASLt fuses it into the kernel on CUDA);
// gelu_tanh is GELU's tanh form, the only GELU cuBLASLt's epilogues compute.
enum class GemmEpilogue : uint8_t { none, relu, gelu_tanh };
enum class AlignCorners : uint8_t { no, yes };

// Cross-entropy of [N, C] logits against class indices (ops/loss.hpp has the formula).
struct CrossEntropyParams {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};
// The error for a class target that is neither a class nor ignore_index, worded alike wherever it
// is found: nll_loss's check, the CPU loss kernel's, the GPU's deferred report.
inline std::string bad_class_target_message(const char* op, int64_t target, int64_t classes, int64_t ignore_index) {
  return detail::str(op, ": target ", target, " is out of bounds for ", classes, " classes (valid: 0..", classes - 1,
                     ", or ignore_index ", ignore_index, ")");
}

// The tensors of one parameter for the multi-tensor optimizer steps (see sgd_step / adam_step).
struct SgdTensors {
  Tensor param, grad, momentum_buffer;
};
struct AdamTensors {
  Tensor param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq;
};

// scaled_dot_product_attention on [B,H,L,D] queries and [B,H,S,D] keys/values.
struct AttentionParams {
  double scale = 1.0;
  double dropout_p = 0.0;
  bool causal = false;
  uint64_t seed = 0, offset = 0;  // Philox stream of the dropout mask
  const double* offset_shift = nullptr;  // as RandomParams::offset_shift
};

// A device's work recorded once and replayed as one launch (a CUDA graph; backend/step_graph.hpp).
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  // Writes `live` to the capture's live buffer (core/capture.hpp), then enqueues the recorded work.
  virtual void replay(const std::vector<double>& live) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType device_type() const = 0;
  virtual int device_count() const = 0;
  virtual Allocator& allocator(int device_index) = 0;
  // Waits for every op queued on the device; raises a bad index or target a kernel found since
  // the last read (a GPU finds them in the kernel, kernels/device_check.cuh).
  virtual void synchronize(int /*device_index*/) {}
  // Waits like synchronize() but leaves such an error pending for the next read: for waits that
  // must not throw it, like a profiler's timing inside a backward pass.
  virtual void drain(int /*device_index*/) {}
  // ---- graphs (DESIGN §5: CUDA graphs for fixed-shape steps) ----
  // Starts recording the calling thread's work on the device instead of running it: until
  // end_capture, work enqueued there is recorded, a read from the device or a wait for it throws,
  // and memory comes from a pool that belongs to the graph. A backend without graphs throws.
  virtual void begin_capture(int device_index) {
    throw DeviceError(detail::str("graph capture: ", Device(device_type(), device_index), " has no graphs"));
  }
  // `live` is the capture's f64 live buffer (core/capture.hpp), which each replay fills first.
  virtual std::unique_ptr<DeviceGraph> end_capture(int device_index, const Tensor& /*live*/) {
    throw DeviceError(detail::str("graph capture: ", Device(device_type(), device_index), " has no graphs"));
  }
  // Ends a capture that failed (the step threw): the recording is dropped and the device runs
  // work again as it comes.
  virtual void abort_capture(int /*device_index*/) noexcept {}

  // Whether every op queued on the device so far has finished (PyTorch's Stream.query()); never
  // waits. A CPU op has finished when it returns.
  virtual bool is_idle(int /*device_index*/) { return true; }

  // dst <- src, same device and shape; any dtypes (converted) and strides.
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
  // Between this backend's device and host memory; both contiguous, same dtype and numel.
  virtual void copy_to_host(void* host_dst, const Tensor& src) = 0;
  virtual void copy_from_host(const Tensor& dst, const void* host_src) = 0;
  // Page-locked host memory the device can read by DMA (the loader's pinned batches); nullptr
  // when the backend has none.
  virtual Allocator* pinned_host_allocator() { return nullptr; }
  // dst <- host_src (a contiguous CPU tensor, same dtype and numel) without waiting for the copy
  // when host_src is pinned: the backend keeps host_src's storage alive until the copy is done and
  // orders every later use of dst after it. The default is the waiting copy.
  virtual void copy_from_host_async(const Tensor& dst, const Tensor& host_src) {
    copy_from_host(dst, host_src.data_ptr());
  }
  virtual void fill(const Tensor& dst, Scalar value) = 0;

  // Elementwise: out and inputs have out's shape; inputs have the op's input dtype.
  virtual void unary(UnaryOp op, const OpParams& p, const Tensor& out, const Tensor& in) = 0;
  virtual void binary(BinaryOp op, const OpParams& p, const Tensor& out, const Tensor& a, const Tensor& b) = 0;
  // out = cond ? a : b; cond is bool; a, b have out's dtype.
  virtual void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) = 0;

  // out has in's shape with the reduced dims set to 1; `dims` sorted, non-empty.
  virtual void reduce(ReduceOp op, const Tensor& out, const Tensor& in, const Dims& dims) = 0;
  // values/indices (i64) have in's shape with dims[dim] == 1; the first extreme wins, NaN is max.
  virtual void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in, int dim) = 0;

  // out[b] = alpha * a[b] @ b[b] + beta * out[b]. a: [B,M,K], b: [B,K,N] with any strides
  // (batch stride 0 broadcasts); out: contiguous [B,M,N]; floating dtypes, all the same.
  virtual void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) = 0;
  // out[b] = act(a[b] @ b[b] + bias) with bias [N] (undefined: none) broadcast over the rows;
  // operands as in gemm, bias contiguous in out's dtype. linear's forward: on CUDA the bias and
  // the activation run in cuBLASLt's epilogue instead of separate passes over out.
  virtual void gemm_bias_act(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias,
                             GemmEpilogue act) = 0;

  // Indexing; all tensors contiguous, index i64, indices validated by the kernel (a GPU raises a
  // bad one at the next sync point, not in the call).
  virtual void index_select(const Tensor& out, const Tensor& in, int dim, const Tensor& index) = 0;
  // out.index_select(dim, index) += src (repeated indices accumulate)
  virtual void index_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) = 0;
  // out[i][j][k] = in[i][index[i][j][k]][k] (dim 1); out has index's shape
  virtual void gather(const Tensor& out, const Tensor& in, int dim, const Tensor& index) = 0;
  // out[i][index[i][j][k]][k] += src[i][j][k] (dim 1)
  virtual void scatter_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) = 0;

  // Fills out (contiguous) with element i = random_value(p, i, wide) (core/rng.hpp).
  virtual void random(const Tensor& out, const RandomParams& p, bool wide) = 0;

  // ---- vision and transformer kernels; all tensors contiguous unless noted ----
  // out [N,Ho,Wo,O] = conv(x [N,H,W,C], w [O,kH,kW,C/g]) (+ bias [O], may be undefined)
  virtual void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
                              const Conv2dParams& p) = 0;
  virtual void conv2d_backward_input(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w,
                                     const Conv2dParams& p) = 0;
  virtual void conv2d_backward_weight(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x,
                                      const Conv2dParams& p) = 0;
  // indices (i64, out's shape): ih * W + iw of each maximum, per channel (PyTorch's convention)
  virtual void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x,
                                  const Pool2dParams& p) = 0;
  // p: the forward's window (a GPU gathers each input's gradient from the windows that may hold it)
  virtual void max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& indices,
                                   const Pool2dParams& p) = 0;
  virtual void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p) = 0;
  virtual void avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out, const Pool2dParams& p) = 0;
  virtual void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x) = 0;
  virtual void adaptive_avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out) = 0;
  // Batch statistics over all dims but the last (channels): y = act(batch norm of x + residual),
  // the mean [C] and invstd = 1 / sqrt(biased variance + eps) [C] (f32, or f64 for f64 input), the
  // two the backward takes; the running statistics are updated in the same per-channel pass.
  // weight, bias and residual may be undefined (1, 0 and 0); a residual is contiguous, of x's
  // shape and dtype. The residual add and the activation run in the pass that writes y: separate
  // passes would read and write every element once more each (a ResNet block's last batch norm,
  // its shortcut and ReLU). The running update and invstd ride in the statistics' pass for the same
  // reason on a GPU: composed of ops they were 12 more launches per batch norm (ResNet-50's forward
  // had 1,076 kernels where about 430 do the work).
  virtual void batch_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& invstd, const Tensor& x,
                                  const Tensor& weight, const Tensor& bias, double eps, Activation act,
                                  const Tensor& residual, const BatchNormRunning& running) = 0;
  // Any of grad_x, grad_w, grad_b may be undefined (not wanted); invstd = 1 / sqrt(var + eps).
  // A weight-less norm passes an undefined weight. relu_out, when defined, is the output of a ReLU
  // that followed the batch norm (batch_norm_act's y): grad_y is then the gradient at that output,
  // and both passes mask it where relu_out <= 0 as they read it (unless masked_grad is given),
  // instead of a ReLU backward pass writing the masked gradient out and the batch norm reading it
  // back twice. masked_grad, when defined (relu_out must be), receives that masked gradient from
  // the first pass, which reads grad_y and relu_out anyway, and the second pass reads it back in
  // their place: a residual block's last batch norm, whose shortcut takes the masked gradient too.
  virtual void batch_norm_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b,
                                   const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                   const Tensor& save_mean, const Tensor& save_invstd, const Tensor& relu_out,
                                   const Tensor& masked_grad = Tensor()) = 0;
  // grad_h = bwd(grad_y, x * scale + shift) with scale and shift [C] per channel (the last dim; f32,
  // or f64 for f64 input): the gradient of the activation after a batch norm, at the batch norm's
  // output recomputed from its input, in one pass (batch_norm_act). bwd: silu_backward or
  // relu6_backward. grad_h, grad_y and x are contiguous and of x's shape.
  virtual void batch_norm_act_grad(const Tensor& grad_h, const Tensor& grad_y, const Tensor& x, const Tensor& scale,
                                   const Tensor& shift, BinaryOp bwd) = 0;
  // y = act(x * scale + shift + residual), scale and shift [C] per channel (f32, or f64 for f64
  // input), computed in their dtype and rounded to y's once: batch norm in eval mode, in one pass.
  // y, x and the residual (may be undefined) are contiguous and of x's shape and dtype; act is
  // none or relu when there is a residual.
  virtual void batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift,
                                Activation act, const Tensor& residual) = 0;
  // Normalizes rows of x viewed as [R, M]; mean and rstd are [R] (f32, or f64 for f64 input).
  // weight/bias [M] may be undefined; in the backward, undefined outputs are not computed.
  virtual void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                                  const Tensor& weight, const Tensor& bias, double eps) = 0;
  virtual void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b,
                                   const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                   const Tensor& rstd) = 0;
  virtual void softmax_forward(const Tensor& out, const Tensor& x, int dim, SoftmaxKind kind) = 0;
  // Fused cross-entropy, one pass over each row of contiguous logits [N, C] (floating) with
  // class indices target [N] (i64, contiguous; each should be in [0, C) or ignore_index, which the
  // backend checks: the CPU in the call, a GPU in its kernel, raising a bad one at the next sync
  // point, so that the loss needs no host sync) and
  // class weights [C] in the logits' dtype (undefined: all 1). With e = label_smoothing, w the
  // weights, lse_i = log sum_c exp(x_ic) and t = target[i]:
  //   loss[i] = (1 - e) w_t (lse_i - x_it) + (e / C) sum_c w_c (lse_i - x_ic), 0 where t is ignored.
  // loss [N] has the logits' dtype; lse [N] is f32 (f64 for f64 logits) and feeds the backward:
  //   grad_x_ic = grad_loss_i ((1 - e) w_t (p_ic - [c = t]) + (e / C)(p_ic sum_c' w_c' - w_c)),
  //   p = softmax(x), 0 on ignored rows.
  virtual void cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                     const Tensor& target, const Tensor& weight, const CrossEntropyParams& p) = 0;
  virtual void cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss, const Tensor& logits,
                                      const Tensor& lse, const Tensor& target, const Tensor& weight,
                                      const CrossEntropyParams& p) = 0;
  virtual void softmax_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& out, int dim,
                                SoftmaxKind kind) = 0;
  // q [B,H,L,D], k/v [B,H,S,D]: any strides with stride 1 along D. mask: undefined, bool (true =
  // attend) or floating (added), broadcast to [B,H,L,S] by strides. lse [B,H,L] f32/f64.
  virtual void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const Tensor& mask, const AttentionParams& p) = 0;
  virtual void attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                                  const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, const Tensor& mask,
                                  const AttentionParams& p) = 0;
  // Bilinear resize of NHWC x [N,H,W,C] to out [N,Ho,Wo,C] (PyTorch's upsample_bilinear2d).
  virtual void interpolate_bilinear_forward(const Tensor& out, const Tensor& x, AlignCorners align) = 0;
  virtual void interpolate_bilinear_backward(const Tensor& grad_x, const Tensor& grad_out, AlignCorners align) = 0;

  // ---- optimizer steps: one fused pass over a parameter and its state (all contiguous, one
  // floating dtype; `grad` may be another floating dtype) ----
  virtual void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                        const SgdStepParams& p) = 0;
  // max_exp_avg_sq is undefined unless amsgrad
  virtual void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                         const Tensor& max_exp_avg_sq, const AdamStepParams& p) = 0;
  // The same steps over many parameters of this device with one set of step parameters; the
  // tensors of one entry follow the single-tensor rules, entries may differ in size and dtype.
  // CUDA runs them as multi-tensor kernels (a few launches for a whole model, not one per
  // parameter); the default is a loop.
  virtual void sgd_step_multi(const std::vector<SgdTensors>& ts, const SgdStepParams& p) {
    for (const SgdTensors& t : ts) sgd_step(t.param, t.grad, t.momentum_buffer, p);
  }
  virtual void adam_step_multi(const std::vector<AdamTensors>& ts, const AdamStepParams& p) {
    for (const AdamTensors& t : ts) adam_step(t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.max_exp_avg_sq, p);
  }

  // ---- gradient utilities over many tensors of this device (GradScaler, clip_grad_norm_): each
  // tensor contiguous and floating, entries may differ in size and dtype. One pass over each
  // tensor, and nothing read back to the host: CUDA runs them as multi-tensor kernels. ----
  // Multiplies every tensor in place by `factor` in the compute type (f32 for f16/bf16, the
  // factor not rounded to the tensor's dtype first, as torch's foreach and unscale kernels). Where
  // `found_nonfinite` is defined (f32, one element, on this device), sets it to 1 if any element
  // was inf or NaN before the multiplication; it is never cleared here. Where `divisor` is defined
  // (f32, one element, on this device), the factor is float(1 / double(its value)) instead, read
  // on the device: GradScaler's unscale with the scale kept there (ScalerSync::device).
  virtual void scale_multi(const std::vector<Tensor>& ts, double factor, const Tensor& found_nonfinite,
                           const Tensor& divisor) = 0;
  // out (f64, one element, on this device) = the sum over every element of norm_term (|x|^p), or
  // the largest |x| for the max norm (functors.hpp); 0 for no elements. Partial sums in a fixed
  // order, so the result does not depend on the thread count or on timing.
  virtual void norm_multi(const std::vector<Tensor>& ts, const NormParams& p, const Tensor& out) = 0;
  // GradScaler's scale update on the device (amp_update_scale in functors.hpp, torch's
  // _amp_update_scale_): scale f32, growth_tracker i32, found_inf f32, one element each, all on
  // this device; scale and growth_tracker are updated in place.
  virtual void amp_update_scale(const Tensor& scale, const Tensor& growth_tracker, const Tensor& found_inf,
                                const AmpScaleParams& p) = 0;
};

// ---- registry ----
#if defined(WANWU_CPU_BACKEND_EXTERN)
// Defined once, in the translation unit that includes <wanwu/backend/cpu/implementation.hpp>;
// every other TU skips compiling the CPU kernels (faster builds of large programs).
Backend& cpu_backend();
#else
inline Backend& cpu_backend();  // defined in backend/cpu/cpu_backend.hpp (included by wanwu.hpp)
#endif

namespace detail {
inline std::array<Backend*, kNumDeviceTypes>& backend_slots() {
  static std::array<Backend*, kNumDeviceTypes> slots{};
  return slots;
}
}  // namespace detail

// Called by the CUDA translation unit at static initialization.
inline bool register_backend(DeviceType type, Backend* b) {
  detail::backend_slots()[static_cast<int>(type)] = b;
  return true;
}

inline bool has_backend(DeviceType type) {
  return type == DeviceType::cpu || detail::backend_slots()[static_cast<int>(type)] != nullptr;
}

inline Backend& backend_for(Device d) {
  if (d.is_cpu()) return cpu_backend();
  Backend* b = detail::backend_slots()[static_cast<int>(d.type)];
  WANWU_CHECK_T(DeviceError, b != nullptr, "device ", d,
                " requested but this program was built without the CUDA backend (docs/getting-started.md, "
                "section CUDA)");
  WANWU_CHECK_T(DeviceError, d.index >= 0 && d.index < b->device_count(), "device ", d, " is not available (",
                b->device_count(), " CUDA device(s) found)");
  return *b;
}

inline bool cuda_is_available() {
  Backend* b = detail::backend_slots()[static_cast<int>(DeviceType::cuda)];
  return b != nullptr && b->device_count() > 0;
}

// A new contiguous tensor with uninitialized memory; the primitive under every factory.
inline Tensor empty_tensor(const Shape& shape, DType dtype, Device device) {
  int64_t n = 1;
  for (int64_t s : shape) {
    WANWU_CHECK_SHAPE(s >= 0, "empty: negative dimension ", s, " in shape ", shape);
    n *= s;
  }
  Backend& be = backend_for(device);
  auto storage = std::make_shared<Storage>(static_cast<size_t>(n) * itemsize(dtype), device, &be.allocator(device.index));
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), 0, shape, contiguous_strides(shape), dtype));
}

// Pinned (page-locked) host memory: what a CUDA device uploads from asynchronously. Available when
// the program has the CUDA backend and a device.
inline bool pinned_memory_available() {
  return cuda_is_available() && detail::backend_slots()[static_cast<int>(DeviceType::cuda)]->pinned_host_allocator();
}

// A new contiguous CPU tensor in pinned memory; a DeviceError when there is none (no CUDA backend or
// device), naming what is missing.
inline Tensor empty_pinned(const Shape& shape, DType dtype) {
  WANWU_CHECK_T(DeviceError, pinned_memory_available(),
                "pinned host memory needs the CUDA backend and a CUDA device (",
                has_backend(DeviceType::cuda) ? "no CUDA device found" : "this program was built without the CUDA backend",
                ")");
  int64_t n = 1;
  for (int64_t s : shape) {
    WANWU_CHECK_SHAPE(s >= 0, "empty_pinned: negative dimension ", s, " in shape ", shape);
    n *= s;
  }
  Allocator* a = detail::backend_slots()[static_cast<int>(DeviceType::cuda)]->pinned_host_allocator();
  auto storage = std::make_shared<Storage>(static_cast<size_t>(n) * itemsize(dtype), Device::cpu(), a);
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), 0, shape, contiguous_strides(shape), dtype));
}

// Whether t's memory is pinned host memory.
inline bool is_pinned(const Tensor& t) {
  if (!t.defined() || !t.device().is_cpu() || !pinned_memory_available()) return false;
  return t.storage()->allocator() ==
         detail::backend_slots()[static_cast<int>(DeviceType::cuda)]->pinned_host_allocator();
}

inline MemoryStats memory_stats(Device d) { return backend_for(d).allocator(d.index).stats(); }
inline void reset_peak_memory_stats(Device d) { backend_for(d).allocator(d.index).reset_peak(); }

}  // namespace wanwu
