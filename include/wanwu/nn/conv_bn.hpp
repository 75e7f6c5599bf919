// Convolution + batch norm + activation, the unit ResNet and EfficientNet are built from, with
// the batch norm folded into the convolution for inference.
//
// In eval mode a batch norm is a per-channel affine map, so conv followed by it is one convolution
// with weight w * s and bias (b - mean) * s + beta, s = gamma / sqrt(var + eps) (the fold every
// inference engine does). Folded, the bias is added inside the convolution's output tile and the
// activation runs in place: two passes over the activations, one tensor. Run as written, the
// eval batch norm and its activation are one pass too (batch_norm_apply), but into a second
// tensor. The fold applies only when nothing can need a gradient (autograd off, or no input or
// parameter requires one), the batch norm uses running statistics, and autocast is off. Otherwise
// the convolution runs as written and the batch norm and activation as one op, batch_norm_act,
// which in training keeps one activation-sized tensor for the backward where two separate ops keep
// two. Folded weights are cached on the batch norm and rebuilt when any tensor they came from
// changes (its storage or version counter), so loading weights or moving the model invalidates
// them. Results equal the unfused layers up to float rounding (tested).
#pragma once

#include "../amp/autocast.hpp"
#include "layers.hpp"

namespace wanwu::nn {

using wanwu::Activation;

namespace detail {
inline bool needs_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }
}  // namespace detail

// Whether conv_bn_act folds: inference conditions (see the header comment).
inline bool conv_bn_folds(const Conv2d& conv, const BatchNorm& bn, const Tensor& x) {
  if (bn.is_training() || !bn.running_mean.defined() || amp::is_autocast_enabled()) return false;
  if (!GradMode::is_enabled()) return true;
  return !detail::needs_grad(x) && !detail::needs_grad(conv.weight) && !detail::needs_grad(conv.bias) &&
         !detail::needs_grad(bn.weight) && !detail::needs_grad(bn.bias);
}

// act(bn(conv(x))), with the convolution's own padding or `padding` when given (TF "SAME" padding
// computed per input size).
inline Tensor conv_bn_act(const Conv2d& conv, BatchNorm& bn, const Tensor& x, Activation act,
                          const std::optional<Padding2d>& padding = std::nullopt) {
  const Padding2d pad = padding.value_or(conv.padding);
  if (!conv_bn_folds(conv, bn, x))
    return bn.forward_act(conv2d(x, conv.weight, conv.bias, conv.stride, pad, conv.dilation, conv.groups), act);
  const auto [w, b] = bn.folded().get(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                      bn.eps);
  Tensor h = conv2d(x, w, b, conv.stride, pad, conv.dilation, conv.groups);
  wanwu::detail::activate_raw(act, h);  // nothing needs a gradient: in place
  return h;
}

// relu(a + b) for a residual connection, one pass (wanwu::add_relu); in place on `a` (a fresh block
// output) when conv_bn_act folded, i.e. when nothing needs a gradient.
inline Tensor add_relu(Tensor a, const Tensor& b) {
  const bool in_place = !amp::is_autocast_enabled() && a.is_floating_point() && a.dtype() == b.dtype() &&
                        a.shape() == b.shape() &&
                        (!GradMode::is_enabled() || (!a.requires_grad() && !b.requires_grad()));
  if (!in_place) return wanwu::add_relu(a, b);
  NoGradGuard ng;
  wanwu::detail::binary_raw(BinaryOp::add_relu, a, b, a.dtype(), {}, a);
  a.bump_version();
  return a;
}

// relu(bn(conv(x)) + shortcut), a residual block's end. Folded (inference): the convolution with
// the batch norm folded in, then add_relu in place. Otherwise the batch norm adds the shortcut and
// applies the ReLU in its output pass (batch_norm_act with a residual), where a batch norm and a
// separate add_relu would write the batch norm's output and read it back; a shortcut of another
// dtype or shape than the convolution's output (autocast off for one of them) takes the two ops.
inline Tensor conv_bn_add_relu(const Conv2d& conv, BatchNorm& bn, const Tensor& x, const Tensor& shortcut) {
  if (conv_bn_folds(conv, bn, x)) return nn::add_relu(conv_bn_act(conv, bn, x, Activation::none), shortcut);
  const Tensor h = conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups);
  if (h.shape() != shortcut.shape() || h.dtype() != shortcut.dtype())
    return nn::add_relu(bn.forward_act(h, Activation::none), shortcut);
  return bn.forward_act(h, Activation::relu, shortcut);
}

}  // namespace wanwu::nn
