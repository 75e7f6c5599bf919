// Convolution + batch norm + activation, the unit ResNet and EfficientNet are built from, with
// the batch norm folded into the convolution for inference.
//
// In eval mode a batch norm is a per-channel affine map, so conv followed by it is one convolution
// with weight w * s and bias (b - mean) * s + beta, s = gamma / sqrt(var + eps) (the fold every
// inference engine does). Run as written, the pair costs three passes over the activations (the
// batch norm's multiply and add, then the activation) and three fresh tensors; folded, the bias
// is added inside the convolution's output tile and ReLU runs in place: one pass. The fold
// applies only when nothing can need a gradient (autograd off, or no input or parameter requires
// one), the batch norm uses running statistics, and autocast is off; otherwise the layers run
// exactly as written. Folded weights are cached on the batch norm and rebuilt when any tensor they
// came from changes (its storage or version counter), so loading weights or moving the model
// invalidates them. Results equal the unfused layers up to float rounding (tested).
#pragma once

#include "../amp/autocast.hpp"
#include "layers.hpp"

namespace wanwu::nn {

enum class Activation : uint8_t { none, relu, relu6, silu };

namespace detail {

inline bool needs_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

inline Tensor apply_activation(Tensor h, Activation act, bool in_place) {
  switch (act) {
    case Activation::none: return h;
    case Activation::relu:
      if (in_place) return relu_(h);
      return relu(h);
    case Activation::relu6: return relu6(h);
    case Activation::silu: return silu(h);
  }
  return h;
}

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
  if (!conv_bn_folds(conv, bn, x)) {
    Tensor h = bn.forward(conv2d(x, conv.weight, conv.bias, conv.stride, pad, conv.dilation, conv.groups));
    return detail::apply_activation(std::move(h), act, false);
  }
  const auto [w, b] = bn.folded().get(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                      bn.eps);
  Tensor h = conv2d(x, w, b, conv.stride, pad, conv.dilation, conv.groups);
  return detail::apply_activation(std::move(h), act, true);
}

// relu(a + b) for a residual connection; in place on `a` (a fresh block output) when conv_bn_act
// folded, i.e. when nothing needs a gradient.
inline Tensor add_relu(Tensor a, const Tensor& b) {
  const bool in_place = !amp::is_autocast_enabled() && a.dtype() == b.dtype() && a.shape() == b.shape() &&
                        (!GradMode::is_enabled() || (!a.requires_grad() && !b.requires_grad()));
  if (!in_place) return relu(a + b);
  NoGradGuard ng;
  a.add_(b);
  return relu_(a);
}

}  // namespace wanwu::nn
