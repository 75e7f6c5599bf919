// Normalization: batch_norm over the last (channel) axis — NHWC activations, or [N, C] features —
// with PyTorch's training semantics (batch statistics, biased variance to normalize, unbiased
// variance into the running estimate with `momentum`) and eval semantics (running statistics);
// layer_norm over trailing dims; group_norm over channel groups. Training batch norm and layer
// norm use fused kernels with hand-written backward, and batch_norm_act fuses the activation that
// follows a batch norm in a conv block. Eval batch norm is one pass (y = act(x * scale + shift),
// scale and shift per channel in f32, rounded once) with a backward composed from primitives;
// group norm is composed from primitives and gets its gradients from autograd.
#pragma once

#include <utility>

#include "activation.hpp"
#include "conv.hpp"
#include "elementwise.hpp"
#include "options.hpp"
#include "reduce.hpp"

namespace wanwu {

namespace detail {
inline DType stat_dtype(DType dt) { return dt == DType::f64 ? DType::f64 : DType::f32; }
}  // namespace detail

namespace detail {

// Batch norm as a per-channel affine map, y = x * scale + shift: scale = invstd * weight,
// shift = bias - mean * scale, in the statistics' dtype. Eval mode applies it; the backward of a
// fused activation recomputes the batch norm's output with it.
inline std::pair<Tensor, Tensor> batch_norm_scale_shift(const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                                                        const Tensor& bias) {
  const Tensor scale = weight.defined() ? invstd * weight.to(invstd.dtype()) : invstd;
  Tensor shift = -(mean * scale);
  if (bias.defined()) shift = shift + bias.to(shift.dtype());
  return {scale, shift};
}

// The gradient reaching the batch norm's output when a SiLU or ReLU6 follows it: gy * act'(h), h
// the batch norm's output recomputed from the saved input (h = x * scale + shift, scale = invstd *
// weight, shift = bias - mean * scale) in the backend's one-pass kernel. (A ReLU's mask is the
// block's output, which the batch norm backward reads itself.)
inline Tensor batch_norm_act_grad(Activation act, const Tensor& gy, const Tensor& x, const Tensor& weight,
                                  const Tensor& bias, const Tensor& mean, const Tensor& invstd) {
  NoGradGuard ng;
  const auto [scale, shift] = batch_norm_scale_shift(mean, invstd, weight, bias);
  Tensor gh = empty_like(x);
  backend_for(x.device()).batch_norm_act_grad(gh, gy, x, contiguous_no_grad(scale), contiguous_no_grad(shift),
                                              act == Activation::silu ? BinaryOp::silu_backward
                                                                      : BinaryOp::relu6_backward);
  return gh;
}

// y = act(x * scale + shift + residual) in one pass, scale and shift [C] in the statistics' dtype
// (batch norm in eval mode), computed in that dtype and rounded to x's once: composed of x's-dtype
// ops, a 16-bit eval batch norm rounded the coefficients, the product, the sum and the residual
// add, which made its output (and the ReLU's mask) differ from PyTorch's by several ulps. The
// backward is composed; scale and shift carry the gradient on to the weight and bias.
inline Tensor batch_norm_apply(const Tensor& x, const Tensor& scale, const Tensor& shift, Activation act,
                               const Tensor& residual) {
  const DType sdt = stat_dtype(x.dtype());
  WANWU_CHECK_DTYPE(scale.dtype() == sdt && shift.dtype() == sdt, "batch_norm (eval): scale and shift must be ", sdt,
                    " for input ", x.dtype(), ", got ", scale.dtype(), " and ", shift.dtype());
  const Tensor xc = contiguous_no_grad(x), sc = contiguous_no_grad(scale), sh = contiguous_no_grad(shift);
  Tensor y = empty_tensor(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).batch_norm_apply(y, xc, sc, sh, act, contiguous_no_grad(residual));
  if (autograd::any_requires_grad({x, scale, shift, residual})) {
    // x is kept only for what reads it: the scale's gradient, or SiLU's / ReLU6's derivative
    const bool recompute = act == Activation::silu || act == Activation::relu6;  // the activation's input
    const bool keep_x = recompute || scale.requires_grad();
    const SavedTensor sx(keep_x ? xc : Tensor()), ss(sc), sb(recompute ? sh : Tensor());
    const SavedTensor sy(act == Activation::relu ? y : Tensor());
    const bool res = residual.defined();
    const int64_t C = x.size(-1), M = x.numel() / std::max<int64_t>(C, 1);
    const DType xdt = x.dtype();
    std::vector<Tensor> inputs = {x, scale, shift};
    if (res) inputs.push_back(residual);
    autograd::record(act == Activation::none ? "batch_norm" : "batch_norm_act", inputs, {y},
                     [sx, ss, sb, sy, act, recompute, res, sdt, xdt, C, M](const Grads& g) {
      const Tensor scv = ss.get(), gy = contiguous_no_grad(g[0]);
      Tensor gh = gy;
      if (act == Activation::relu) gh = binary_raw(BinaryOp::relu_backward, gy, sy.get(), gy.dtype());
      if (recompute) {
        const Tensor xv = sx.get();
        gh = empty_like(xv);
        backend_for(xv.device()).batch_norm_act_grad(
            gh, gy, xv, scv, sb.get(), act == Activation::silu ? BinaryOp::silu_backward : BinaryOp::relu6_backward);
      }
      std::vector<Tensor> r(res ? 4 : 3);
      const bool params = g.needs_input_grad(1) || g.needs_input_grad(2);
      if (g.needs_input_grad(0) || params) {
        const Tensor ghs = gh.to(sdt);  // one widening for every gradient below
        if (g.needs_input_grad(0)) r[0] = (ghs * scv).to(xdt);
        const Tensor rows = raw_reshape(ghs, Shape{M, C});
        if (g.needs_input_grad(1)) r[1] = sum(rows * raw_reshape(sx.get().to(sdt), Shape{M, C}), {0});
        if (g.needs_input_grad(2)) r[2] = sum(rows, {0});
      }
      if (res) r[3] = gh;
      return r;
    });
  }
  return y;
}

}  // namespace detail

// act(batch_norm(x)). running_mean / running_var may be undefined (no tracking); weight / bias may
// be undefined. In Mode::train the running statistics (when given) are updated in place, as
// PyTorch, and the activation runs in the batch norm's output pass: the pair keeps only the batch
// norm's input (and ReLU's output, which is the block's output anyway) for the backward, which
// recomputes what the activation's derivative needs (one multiply-add per element), so it holds
// one activation-sized tensor where batch norm and a separate activation hold two; a ReLU's mask
// is applied inside the batch norm backward's passes. Eval mode applies the running statistics in
// one pass with the activation (detail::batch_norm_apply).
//
// With a residual (same shape and dtype as x; act none or relu): act(batch_norm(x) + residual), a
// ResNet block's last batch norm, its shortcut and ReLU, in training written by the batch norm's
// output pass: a separate add and ReLU read two block-sized tensors and write one more. The
// backward's first pass masks the gradient as it reads it and writes it out once: it is the
// shortcut's gradient too.
//
// num_batches_tracked (a one-element i64 tensor, or undefined): a Mode::train call adds one to it
// in its statistics pass (BatchNorm's count, which PyTorch's module adds to with a separate op).
inline Tensor batch_norm_act(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                             const Tensor& weight, const Tensor& bias, Mode mode, Activation act,
                             double momentum = 0.1, double eps = 1e-5, const Tensor& residual = Tensor(),
                             const Tensor& num_batches_tracked = Tensor()) {
  WANWU_CHECK_SHAPE(x.dim() >= 2, "batch_norm: expected an input with at least 2 dimensions (channels last), got ",
                    x.shape());
  WANWU_CHECK_DTYPE(x.is_floating_point(), "batch_norm: dtype ", x.dtype(), " is not supported (floating types only)");
  if (residual.defined()) {
    WANWU_CHECK_SHAPE(residual.shape() == x.shape() && residual.dtype() == x.dtype(),
                      "batch_norm_act: the residual must match the input ", x.shape(), " ", x.dtype(), ", got ",
                      residual.shape(), " ", residual.dtype());
    WANWU_CHECK_VALUE(act == Activation::none || act == Activation::relu,
                      "batch_norm_act: a residual is added before ReLU or no activation only");
  }
  const int64_t C = x.size(-1);
  for (const Tensor* t : {&running_mean, &running_var, &weight, &bias})
    if (t->defined())
      WANWU_CHECK_SHAPE(t->dim() == 1 && t->size(0) == C, "batch_norm: expected per-channel tensors of shape [", C,
                        "] for input ", x.shape(), ", got ", t->shape());
  detail::check_operand_devices("batch_norm", x, {{"running_mean", running_mean}, {"running_var", running_var},
                                                  {"weight", weight}, {"bias", bias}, {"residual", residual},
                                                  {"num_batches_tracked", num_batches_tracked}});
  WANWU_CHECK_DTYPE(!num_batches_tracked.defined() ||
                        (num_batches_tracked.dtype() == DType::i64 && num_batches_tracked.numel() == 1),
                    "batch_norm: num_batches_tracked must be one i64 element, got ", num_batches_tracked.shape(), " ",
                    num_batches_tracked.dtype());
  if (mode == Mode::eval) {
    WANWU_CHECK_VALUE(running_mean.defined() && running_var.defined(),
                      "batch_norm: eval mode needs running_mean and running_var");
    // y = act(x * scale + shift + residual) with per-channel scale/shift worked out in the
    // statistics' dtype (f32 for 16-bit input, whatever the running statistics' dtype) and applied
    // in one pass that rounds once
    const DType sdt = detail::stat_dtype(x.dtype());
    const auto [scale, shift] =
        detail::batch_norm_scale_shift(running_mean.to(sdt), rsqrt(running_var.to(sdt) + eps), weight, bias);
    return detail::batch_norm_apply(x, scale.to(sdt), shift.to(sdt), act, residual);
  }
  const int64_t M = x.numel() / std::max<int64_t>(C, 1);
  WANWU_CHECK_SHAPE(M > 1, "batch_norm: expected more than 1 value per channel when training, got input shape ",
                    x.shape());
  const DType sdt = detail::stat_dtype(x.dtype());
  const Tensor xc = detail::contiguous_no_grad(x);
  Tensor y = empty_tensor(x.shape(), x.dtype(), x.device());
  Tensor mean_t = empty_tensor(Shape{C}, sdt, x.device()), invstd = empty_tensor(Shape{C}, sdt, x.device());
  // The running statistics are buffers, updated in place by the statistics' pass: directly when
  // they are contiguous and in the statistics' dtype (f32 buffers, under autocast too), else
  // through a copy in it (a model converted to bf16 whole keeps bf16 buffers; PyTorch updates
  // them in f32 too).
  {
    NoGradGuard ng;
    auto staged = [&](const Tensor& r) {
      return !r.defined() || (r.dtype() == sdt && r.is_contiguous()) ? r : r.to(sdt).contiguous();
    };
    const BatchNormRunning run{staged(running_mean), staged(running_var), momentum, num_batches_tracked};
    backend_for(x.device()).batch_norm_forward(y, mean_t, invstd, xc, detail::contiguous_no_grad(weight),
                                               detail::contiguous_no_grad(bias), eps, act,
                                               detail::contiguous_no_grad(residual), run);
    for (const auto& [buffer, stage] : {std::pair{running_mean, run.mean}, std::pair{running_var, run.var}}) {
      if (!buffer.defined()) continue;
      if (stage.is_same(buffer)) buffer.bump_version();
      else Tensor(buffer).copy_(stage);
    }
    if (num_batches_tracked.defined()) num_batches_tracked.bump_version();
  }
  if (autograd::any_requires_grad({x, weight, bias, residual})) {
    const bool recompute = act == Activation::silu || act == Activation::relu6;  // the activation's input
    const SavedTensor sx(xc), sw(weight), sb(recompute ? bias : Tensor()), sm(mean_t), si(invstd);
    const SavedTensor sy(act == Activation::relu ? y : Tensor());
    const bool res = residual.defined();
    std::vector<Tensor> inputs = {x, weight, bias};
    if (res) inputs.push_back(residual);
    autograd::record(act == Activation::none ? "batch_norm" : "batch_norm_act", inputs, {y},
                     [sx, sw, sb, sm, si, sy, act, recompute, res](const Grads& g) {
      const Tensor xv = sx.get();
      std::vector<Tensor> r(res ? 4 : 3);
      if (g.needs_input_grad(0)) r[0] = empty_like(xv);
      const Tensor wv = sw.get();
      const TensorOptions po = wv.defined() ? options_of(wv) : options_of(xv);  // f32 weights under autocast
      if (g.needs_input_grad(1)) r[1] = empty(Shape{xv.size(-1)}, po);
      if (g.needs_input_grad(2)) r[2] = empty(Shape{xv.size(-1)}, po);
      const Tensor gy = detail::contiguous_no_grad(g[0]);
      // The shortcut's gradient is the gradient at the sum, masked by the ReLU after it: the batch
      // norm's first pass, which masks the gradient as it reads it, writes it out as well.
      Tensor masked;
      if (res && g.needs_input_grad(3)) r[3] = act == Activation::relu ? (masked = empty_like(gy)) : gy;
      const Tensor gh = recompute ? detail::batch_norm_act_grad(act, gy, xv, wv, sb.get(), sm.get(), si.get()) : gy;
      backend_for(xv.device()).batch_norm_backward(r[0], r[1], r[2], gh, xv, detail::contiguous_no_grad(wv), sm.get(),
                                                   si.get(), sy.get(), masked);
      return r;
    });
  }
  return y;
}

// running_mean / running_var may be undefined (no tracking); weight / bias may be undefined.
// In Mode::train the running statistics (when given) are updated in place, as PyTorch.
inline Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                         const Tensor& weight, const Tensor& bias, Mode mode, double momentum = 0.1,
                         double eps = 1e-5) {
  return batch_norm_act(x, running_mean, running_var, weight, bias, mode, Activation::none, momentum, eps);
}

// Normalizes over the trailing dims given by normalized_shape; weight/bias have that shape.
inline Tensor layer_norm(const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight_in = Tensor(),
                         const Tensor& bias_in = Tensor(), double eps = 1e-5) {
  const Tensor x = amp::full_precision(x_in), weight = amp::full_precision(weight_in);
  const Tensor bias = amp::full_precision(bias_in);
  const int nd = normalized_shape.size();
  WANWU_CHECK_SHAPE(nd >= 1 && x.dim() >= nd, "layer_norm: normalized_shape ", normalized_shape,
                    " needs an input with at least ", nd, " dimensions, got ", x.shape());
  for (int i = 0; i < nd; ++i)
    WANWU_CHECK_SHAPE(x.shape()[x.dim() - nd + i] == normalized_shape[i], "layer_norm: input shape ", x.shape(),
                      " does not end with normalized_shape ", normalized_shape);
  for (const Tensor* t : {&weight, &bias})
    if (t->defined())
      WANWU_CHECK_SHAPE(t->shape() == normalized_shape, "layer_norm: weight/bias of shape ", t->shape(),
                        " must equal normalized_shape ", normalized_shape);
  WANWU_CHECK_DTYPE(x.is_floating_point(), "layer_norm: dtype ", x.dtype(), " is not supported (floating types only)");
  detail::check_operand_devices("layer_norm", x, {{"weight", weight}, {"bias", bias}});
  const int64_t M = numel_of(normalized_shape), R = x.numel() / std::max<int64_t>(M, 1);
  const DType sdt = detail::stat_dtype(x.dtype());
  const Tensor x2 = detail::raw_reshape(detail::contiguous_no_grad(x), Shape{R, M});
  const Tensor w1 = weight.defined() ? detail::raw_reshape(detail::contiguous_no_grad(weight), Shape{M}) : Tensor();
  const Tensor b1 = bias.defined() ? detail::raw_reshape(detail::contiguous_no_grad(bias), Shape{M}) : Tensor();
  Tensor y2 = empty_tensor(Shape{R, M}, x.dtype(), x.device());
  Tensor mean_t = empty_tensor(Shape{R}, sdt, x.device()), rstd_t = empty_tensor(Shape{R}, sdt, x.device());
  backend_for(x.device()).layer_norm_forward(y2, mean_t, rstd_t, x2, w1, b1, eps);
  Tensor y = detail::raw_reshape(y2, x.shape());
  if (autograd::any_requires_grad({x, weight, bias})) {
    const SavedTensor sx(x2), sw(w1), sm(mean_t), sr(rstd_t);
    const Shape xs = x.shape(), ns = normalized_shape;
    autograd::record("layer_norm", {x, weight, bias}, {y}, [sx, sw, sm, sr, xs, ns, M, R](const Grads& g) {
      const Tensor xv = sx.get();
      std::vector<Tensor> r(3);
      Tensor gx = g.needs_input_grad(0) ? empty_like(xv) : Tensor();
      Tensor gw = g.needs_input_grad(1) ? empty(Shape{M}, options_of(xv)) : Tensor();
      Tensor gb = g.needs_input_grad(2) ? empty(Shape{M}, options_of(xv)) : Tensor();
      const Tensor gy = detail::raw_reshape(detail::contiguous_no_grad(g[0]), Shape{R, M});
      backend_for(xv.device()).layer_norm_backward(gx, gw, gb, gy, xv, sw.get(), sm.get(), sr.get());
      if (gx.defined()) r[0] = detail::raw_reshape(gx, xs);
      if (gw.defined()) r[1] = detail::raw_reshape(gw, ns);
      if (gb.defined()) r[2] = detail::raw_reshape(gb, ns);
      return r;
    });
  }
  return y;
}

// GroupNorm for channels-last input [N, ..., C]: statistics over each group of C / num_groups
// consecutive channels and all positions of a sample (PyTorch's grouping of NCHW channels).
inline Tensor group_norm(const Tensor& x_in, int64_t num_groups, const Tensor& weight_in = Tensor(),
                         const Tensor& bias_in = Tensor(), double eps = 1e-5) {
  const Tensor x = amp::full_precision(x_in), weight = amp::full_precision(weight_in);
  const Tensor bias = amp::full_precision(bias_in);
  WANWU_CHECK_SHAPE(x.dim() >= 2, "group_norm: expected an input [N, ..., C], got ", x.shape());
  const int64_t N = x.size(0), C = x.size(-1);
  WANWU_CHECK_SHAPE(num_groups >= 1 && C % num_groups == 0, "group_norm: num_groups (", num_groups,
                    ") must divide the number of channels (", C, ")");
  for (const Tensor* t : {&weight, &bias})
    if (t->defined())
      WANWU_CHECK_SHAPE(t->dim() == 1 && t->size(0) == C, "group_norm: weight/bias must have shape [", C, "], got ",
                        t->shape());
  const Tensor g = x.reshape({N, -1, num_groups, C / num_groups});
  const Tensor mu = mean(g, {1, 3}, KeepDim::yes);
  const Tensor var_g = var(g, {1, 3}, 0, KeepDim::yes);
  Tensor y = ((g - mu) * rsqrt(var_g + eps)).reshape(x.shape());
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return y;
}

}  // namespace wanwu
