// Matrix products: matmul (torch.matmul semantics: 1-D promotion, broadcast batch dims), mm, bmm
// and linear (act(x @ w^T + b), the fused hot path of every classifier head and transformer block).
// Operands go to the backend's GEMM as strided views, so transposes cost nothing; a 2-D weight
// multiplying a batch is folded into one large GEMM.
#pragma once

#include "../core/autocast_state.hpp"
#include "activation.hpp"
#include "reduce.hpp"
#include "view.hpp"

namespace wanwu {

namespace detail {

// [..., r, c] -> [B, r, c] after broadcasting to batch_shape, as a view when strides allow.
inline Tensor as_batched(const Tensor& t, const Shape& batch_shape) {
  Shape full = batch_shape;
  full.push_back(t.size(-2));
  full.push_back(t.size(-1));
  const Tensor e = broadcast_raw(t, full);
  const Shape three{numel_of(batch_shape), t.size(-2), t.size(-1)};
  if (auto st = view_strides(e.shape(), e.strides(), three))
    return Tensor(std::make_shared<TensorImpl>(e.storage(), e.storage_offset(), three, *st, e.dtype()));
  return raw_reshape(copy_as(e, e.dtype()), three);
}

inline void check_matmul_dtypes(const Tensor& a, const Tensor& b, const char* op) {
  WANWU_CHECK_DTYPE(a.dtype() == b.dtype(), op, ": expected both operands to have the same dtype, got ", a.dtype(),
                    " and ", b.dtype());
  WANWU_CHECK_DTYPE(is_floating(a.dtype()), op, ": dtype ", a.dtype(), " is not supported (floating types only)");
  WANWU_CHECK_T(DeviceError, a.device() == b.device(), op, ": operands on different devices (", a.device(), " and ",
                b.device(), ")");
}

// a [..., M, K] @ b [..., K, N] with broadcast batch dims, both at least 2-D; differentiable.
inline Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  check_matmul_dtypes(a, b, "matmul");
  const int64_t M = a.size(-2), K = a.size(-1), K2 = b.size(-2), N = b.size(-1);
  WANWU_CHECK_SHAPE(K == K2, "matmul: shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied (", K,
                    " != ", K2, ")");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  const Tensor a3 = as_batched(a, batch), b3 = as_batched(b, batch);
  Tensor out = empty_tensor(Shape{numel_of(batch), M, N}, a.dtype(), a.device());
  backend_for(a.device()).gemm(out, a3, b3, 1.0, 0.0);
  out = raw_reshape(out, out_shape);
  if (autograd::any_requires_grad({a, b})) {
    const Shape sa = a.shape(), sb = b.shape();
    SavedTensor s_a = b.requires_grad() ? SavedTensor(a) : SavedTensor();
    SavedTensor s_b = a.requires_grad() ? SavedTensor(b) : SavedTensor();
    autograd::record("matmul", {a, b}, {out}, [sa, sb, s_a, s_b](const Grads& g) {
      std::vector<Tensor> r(2);
      if (g.needs_input_grad(0)) r[0] = sum_to(matmul_nd(g[0], s_b.get().mT()), sa);
      if (g.needs_input_grad(1)) r[1] = sum_to(matmul_nd(s_a.get().mT(), g[0]), sb);
      return r;
    });
  }
  return out;
}

}  // namespace detail

inline Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = amp::lower_precision(a_in), b = amp::lower_precision(b_in);
  WANWU_CHECK_SHAPE(a.dim() >= 1 && b.dim() >= 1, "matmul: both arguments need at least 1 dimension, got shapes ",
                    a.shape(), " and ", b.shape());
  if (a.dim() == 1 && b.dim() == 1)
    return detail::matmul_nd(a.unsqueeze(0), b.unsqueeze(1)).reshape(Shape{});
  if (a.dim() == 1) return detail::matmul_nd(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return detail::matmul_nd(a, b.unsqueeze(1)).squeeze(-1);
  if (b.dim() == 2 && a.dim() > 2) {  // fold the batch into M: one large GEMM
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    const int64_t rows = numel_of(out_shape);  // not numel / K: K may be 0
    out_shape.push_back(b.size(1));
    return detail::matmul_nd(a.reshape({rows, a.size(-1)}), b).reshape(out_shape);
  }
  return detail::matmul_nd(a, b);
}

inline Tensor mm(const Tensor& a, const Tensor& b) {
  WANWU_CHECK_SHAPE(a.dim() == 2 && b.dim() == 2, "mm: expected 2-D tensors, got shapes ", a.shape(), " and ",
                    b.shape());
  return detail::matmul_nd(amp::lower_precision(a), amp::lower_precision(b));
}

inline Tensor bmm(const Tensor& a, const Tensor& b) {
  WANWU_CHECK_SHAPE(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0), "bmm: expected 3-D tensors with equal "
                    "batch sizes, got shapes ", a.shape(), " and ", b.shape());
  return detail::matmul_nd(amp::lower_precision(a), amp::lower_precision(b));
}

// y = act(x @ weight^T + bias); x [..., in], weight [out, in], bias [out] (optional). The bias
// and the activation run in the GEMM's epilogue (cuBLASLt on CUDA), so a linear layer writes its
// output once. GELU's epilogue is the tanh form; with a gradient needed it is computed as
// gelu(linear(...), tanh), because its backward needs the pre-activation, which the fused
// forward never stores. ReLU's backward reads the output itself, so it stays fused in training.
inline Tensor linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in = Tensor(),
                     GemmEpilogue act = GemmEpilogue::none) {
  const Tensor x = amp::lower_precision(x_in), weight = amp::lower_precision(weight_in);
  const Tensor bias = amp::lower_precision(bias_in);
  WANWU_CHECK_SHAPE(weight.dim() == 2, "linear: weight must be 2-D [out_features, in_features], got ", weight.shape());
  WANWU_CHECK_SHAPE(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input of shape ", x.shape(),
                    " does not match weight of shape ", weight.shape(), " (expected last dim ", weight.size(1), ")");
  detail::check_matmul_dtypes(x, weight, "linear");
  const int64_t out_f = weight.size(0), in_f = weight.size(1);
  if (bias.defined()) {
    WANWU_CHECK_SHAPE(bias.dim() == 1 && bias.size(0) == out_f, "linear: bias of shape ", bias.shape(),
                      " does not match ", out_f, " output features");
    detail::check_matmul_dtypes(x, bias, "linear");
  }
  const bool grads = autograd::any_requires_grad({x, weight, bias});
  if (act == GemmEpilogue::gelu_tanh && grads) return gelu(linear(x, weight, bias), GeluApproximate::tanh);
  // rows from the leading dims, not numel / in_features: with 0 input features that quotient is 0
  // whatever the batch, and the output would have been a [batch..., out] view of 0 bytes
  const int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
  const Tensor x2 = detail::raw_reshape(x, Shape{rows, in_f});
  Tensor out = empty_tensor(Shape{1, rows, out_f}, x.dtype(), x.device());
  const Tensor w3 = weight.detach().t().unsqueeze(0);
  backend_for(x.device()).gemm_bias_act(out, x2.unsqueeze(0), w3, bias.defined() ? bias.detach().contiguous() : bias,
                                        act);
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  out_shape.push_back(out_f);
  out = detail::raw_reshape(out, out_shape);
  if (grads) {
    const Shape xs = x.shape();
    SavedTensor s_x = weight.requires_grad() ? SavedTensor(x2) : SavedTensor();
    SavedTensor s_w = x.requires_grad() ? SavedTensor(weight) : SavedTensor();
    SavedTensor s_y = act == GemmEpilogue::relu ? SavedTensor(out) : SavedTensor();
    autograd::record("linear", {x, weight, bias}, {out}, [xs, s_x, s_w, s_y, rows, out_f](const Grads& g) {
      std::vector<Tensor> r(3);
      Tensor g2 = g[0].reshape({rows, out_f});
      if (s_y.defined()) g2 = where(gt(s_y.get().reshape({rows, out_f}), 0.0), g2, 0.0);  // relu: y > 0 iff its input was
      if (g.needs_input_grad(0)) r[0] = mm(g2, s_w.get()).reshape(xs);
      if (g.needs_input_grad(1)) r[1] = mm(g2.t(), s_x.get());
      if (g.needs_input_grad(2)) r[2] = sum(g2, {0});
      return r;
    });
  }
  return out;
}

inline Tensor Tensor::matmul(const Tensor& o) const { return wanwu::matmul(*this, o); }

}  // namespace wanwu
