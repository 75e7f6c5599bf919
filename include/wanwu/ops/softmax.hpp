// softmax and log_softmax over any axis: one fused, max-shifted kernel each way, with the
// backward written from the saved output (softmax: y * (g - sum(g * y)); log_softmax:
// g - exp(y) * sum(g)).
#pragma once

#include "conv.hpp"

namespace wanwu {

namespace detail {
inline Tensor softmax_op(const Tensor& x_in, int64_t dim_in, SoftmaxKind kind) {
  const Tensor x = amp::full_precision(x_in);
  const char* name = kind == SoftmaxKind::softmax ? "softmax" : "log_softmax";
  WANWU_CHECK_DTYPE(x.is_floating_point(), name, ": dtype ", x.dtype(), " is not supported (floating types only)");
  if (x.dim() == 0) return kind == SoftmaxKind::softmax ? ones_like(x) : zeros_like(x);
  const int d = normalize_dim(dim_in, x.dim(), name);
  Tensor out = empty_tensor(x.shape(), x.dtype(), x.device());
  if (x.numel() > 0) backend_for(x.device()).softmax_forward(out, contiguous_no_grad(x), d, kind);
  if (autograd::any_requires_grad({x})) {
    autograd::record(name, {x}, {out}, [so = SavedTensor(out), d, kind](const Grads& g) {
      const Tensor y = so.get();
      Tensor gx = empty_like(y);
      backend_for(y.device()).softmax_backward(gx, contiguous_no_grad(g[0]), y, d, kind);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}
}  // namespace detail

inline Tensor softmax(const Tensor& x, int64_t dim) { return detail::softmax_op(x, dim, SoftmaxKind::softmax); }
inline Tensor log_softmax(const Tensor& x, int64_t dim) { return detail::softmax_op(x, dim, SoftmaxKind::log_softmax); }

}  // namespace wanwu
