// Activations: relu, relu6, leaky_relu, sigmoid, tanh, silu, gelu (erf and tanh forms),
// hardswish, hardsigmoid, softplus, the in-place relu_, add_relu (a residual join in one pass),
// and `activate` for the activation a
// convolution block names by enum. Forward and backward are one functor each in
// backend/functors.hpp; the backward reads the saved input or, where cheaper and exact, the saved
// output (relu, sigmoid, tanh), as PyTorch does.
#pragma once

#include "elementwise.hpp"

namespace wanwu {

enum class GeluApproximate : uint8_t { none, tanh };

namespace detail {
enum class SaveFor : uint8_t { input, output };

inline Tensor activation(UnaryOp fwd, BinaryOp bwd, SaveFor save, const Tensor& x, const OpParams& p = {}) {
  WANWU_CHECK_DTYPE(x.is_floating_point() || fwd == UnaryOp::relu, op_name(fwd), ": dtype ", x.dtype(),
                    " is not supported (floating types only)");
  Tensor y = unary_raw(fwd, x, p);
  if (autograd::any_requires_grad({x})) {
    SavedTensor s(save == SaveFor::output ? y : x);
    autograd::record(op_name(fwd), {x}, {y}, [s, bwd, p](const Grads& g) {
      return std::vector<Tensor>{binary_raw(bwd, g[0], s.get(), g[0].dtype(), p)};
    });
  }
  return y;
}
}  // namespace detail

inline Tensor relu(const Tensor& x) {
  return detail::activation(UnaryOp::relu, BinaryOp::relu_backward, detail::SaveFor::output, x);
}
inline Tensor relu6(const Tensor& x) {
  return detail::activation(UnaryOp::relu6, BinaryOp::relu6_backward, detail::SaveFor::input, x);
}
inline Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01) {
  return detail::activation(UnaryOp::leaky_relu, BinaryOp::leaky_relu_backward, detail::SaveFor::input, x,
                            {negative_slope, 0.0});
}
inline Tensor sigmoid(const Tensor& x) {
  return detail::activation(UnaryOp::sigmoid, BinaryOp::sigmoid_backward, detail::SaveFor::output, x);
}
inline Tensor tanh(const Tensor& x) {
  return detail::activation(UnaryOp::tanh, BinaryOp::tanh_backward, detail::SaveFor::output, x);
}
inline Tensor silu(const Tensor& x) {
  return detail::activation(UnaryOp::silu, BinaryOp::silu_backward, detail::SaveFor::input, x);
}
inline Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::none) {
  if (approximate == GeluApproximate::tanh)
    return detail::activation(UnaryOp::gelu_tanh, BinaryOp::gelu_tanh_backward, detail::SaveFor::input, x);
  return detail::activation(UnaryOp::gelu, BinaryOp::gelu_backward, detail::SaveFor::input, x);
}
inline Tensor hardswish(const Tensor& x) {
  return detail::activation(UnaryOp::hardswish, BinaryOp::hardswish_backward, detail::SaveFor::input, x);
}
inline Tensor hardsigmoid(const Tensor& x) {
  return detail::activation(UnaryOp::hardsigmoid, BinaryOp::hardsigmoid_backward, detail::SaveFor::input, x);
}
inline Tensor softplus(const Tensor& x_in, double beta = 1.0, double threshold = 20.0) {
  const Tensor x = amp::full_precision(x_in);
  WANWU_CHECK_VALUE(beta != 0.0, "softplus: beta must be nonzero");
  return detail::activation(UnaryOp::softplus, BinaryOp::softplus_backward, detail::SaveFor::input, x,
                            {beta, threshold});
}

// In-place relu: the backward needs only the output, which is what the tensor holds afterwards.
inline Tensor& relu_(Tensor& x) {
  autograd::check_inplace(x, "relu_");
  const bool record = autograd::any_requires_grad({x});
  detail::unary_raw(UnaryOp::relu, x, {}, x);
  x.bump_version();
  if (record) {
    SavedTensor s(x);
    autograd::record("relu_", {x}, {x}, [s](const Grads& g) {
      return std::vector<Tensor>{detail::binary_raw(BinaryOp::relu_backward, g[0], s.get(), g[0].dtype())};
    });
  }
  return x;
}

// relu(a + b) in one pass: the join of a residual block, which the composition writes as a sum and
// reads back. The backward masks by the output, as relu's. Operands of different shapes or dtypes
// (broadcasting, promotion) take the composition.
inline Tensor add_relu(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype() || !a.is_floating_point()) return relu(a + b);
  Tensor y = detail::binary_raw(BinaryOp::add_relu, a, b, a.dtype());
  if (autograd::any_requires_grad({a, b})) {
    SavedTensor s(y);
    autograd::record("add_relu", {a, b}, {y}, [s](const Grads& g) {
      const Tensor gs = detail::binary_raw(BinaryOp::relu_backward, g[0], s.get(), g[0].dtype());
      return std::vector<Tensor>{gs, gs};
    });
  }
  return y;
}

namespace detail {
// y = act(y) in place, no autograd: for a fresh output nothing else holds.
inline void activate_raw(Activation act, Tensor& y) {
  if (act == Activation::relu) unary_raw(UnaryOp::relu, y, {}, y);
  if (act == Activation::relu6) unary_raw(UnaryOp::relu6, y, {}, y);
  if (act == Activation::silu) unary_raw(UnaryOp::silu, y, {}, y);
}
}  // namespace detail

// act(x), dispatched on the block's activation.
inline Tensor activate(const Tensor& x, Activation act) {
  switch (act) {
    case Activation::none: return x;
    case Activation::relu: return relu(x);
    case Activation::relu6: return relu6(x);
    case Activation::silu: return silu(x);
  }
  return x;
}

inline Tensor Tensor::relu() const { return wanwu::relu(*this); }
inline Tensor Tensor::sigmoid() const { return wanwu::sigmoid(*this); }
inline Tensor Tensor::tanh() const { return wanwu::tanh(*this); }
inline Tensor& Tensor::relu_() { return wanwu::relu_(*this); }

}  // namespace wanwu
