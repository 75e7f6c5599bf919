// Reductions over any set of axes, with keepdim: sum, mean, var/std (with Bessel-style
// `correction`), amax/amin, max/min with indices along one axis, argmax/argmin, logsumexp,
// any/all. Output dtypes follow PyTorch: integer sums give i64, mean needs a floating input,
// argmax gives i64. var, std and logsumexp are built from the primitives, so their gradients come
// from autograd; sum, mean and the extremes have hand-written backward formulas.
#pragma once

#include <cmath>
#include <limits>

#include "../autograd/node.hpp"
#include "../core/autocast_state.hpp"
#include "copy.hpp"
#include "factory.hpp"
#include "elementwise.hpp"
#include "forward.hpp"

namespace wanwu {

namespace detail {

inline Shape keepdim_shape(const Shape& s, const Dims& dims) {
  Shape k = s;
  for (int64_t d : dims) k[static_cast<int>(d)] = 1;
  return k;
}
inline Shape squeezed_shape(const Shape& s, const Dims& dims) {
  Shape out;
  bool drop[kMaxDims] = {};
  for (int64_t d : dims) drop[d] = true;
  for (int i = 0; i < s.size(); ++i)
    if (!drop[i]) out.push_back(s[i]);
  return out;
}
// A contiguous tensor seen with another shape of the same numel (no autograd).
inline Tensor raw_reshape(const Tensor& t, const Shape& s) {
  Tensor c = t.is_contiguous() ? t : copy_as(t, t.dtype());
  return Tensor(std::make_shared<TensorImpl>(c.storage(), c.storage_offset(), s, contiguous_strides(s), c.dtype()));
}

inline DType reduce_out_dtype(ReduceOp op, DType in) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::prod: return is_floating(in) ? in : DType::i64;
    case ReduceOp::mean:
      WANWU_CHECK_DTYPE(is_floating(in), "mean: input dtype ", in,
                        " is not supported (floating types only; cast with .to(DType::f32))");
      return in;
    case ReduceOp::max:
    case ReduceOp::min: return in;
    case ReduceOp::any:
    case ReduceOp::all: return DType::boolean;
  }
  return in;
}

// Runs the reduction kernel; returns the keepdim-shaped result. No autograd.
inline Tensor reduce_raw(ReduceOp op, const Tensor& x, const Dims& dims) {
  const DType dt = reduce_out_dtype(op, x.dtype());
  if (op == ReduceOp::max || op == ReduceOp::min) {
    for (int64_t d : dims)
      WANWU_CHECK_SHAPE(x.shape()[d] != 0, op_name(op), ": reduction over dimension ", d,
                        " of size 0 has no identity; shape ", x.shape());
    WANWU_CHECK_SHAPE(x.numel() != 0 || !dims.empty(), op_name(op), ": empty tensor has no ", op_name(op));
  }
  if (dims.empty()) {  // 0-dim input: nothing to reduce; the copy kernel converts (to bool: != 0)
    Tensor out = empty_tensor(x.shape(), dt, x.device());
    backend_for(x.device()).copy(out, x);
    return out;
  }
  Tensor out = empty_tensor(keepdim_shape(x.shape(), dims), dt, x.device());
  backend_for(x.device()).reduce(op, out, x, dims);
  return out;
}

inline Tensor finish_keepdim(const Tensor& out_keep, const Shape& in_shape, const Dims& dims, KeepDim keepdim) {
  return keepdim == KeepDim::yes ? out_keep : raw_reshape(out_keep, squeezed_shape(in_shape, dims));
}

// g (keepdim or not) -> the keepdim shape, ready to broadcast against the input.
inline Tensor grad_keepdim(const Tensor& g, const Shape& in_shape, const Dims& dims) {
  return g.reshape(keepdim_shape(in_shape, dims));
}

}  // namespace detail

inline Tensor sum(const Tensor& x_in, const Dims& dims_in, KeepDim keepdim = KeepDim::no) {
  const Tensor x = amp::full_precision(x_in);
  const Dims dims = normalize_dims(dims_in, x.dim(), "sum");
  Tensor out = detail::finish_keepdim(detail::reduce_raw(ReduceOp::sum, x, dims), x.shape(), dims, keepdim);
  if (x.is_floating_point() && autograd::any_requires_grad({x})) {
    const Shape in_shape = x.shape();
    autograd::record("sum", {x}, {out}, [in_shape, dims](const Grads& g) {
      return std::vector<Tensor>{detail::grad_keepdim(g[0], in_shape, dims).expand(in_shape)};
    });
  }
  return out;
}
inline Tensor sum(const Tensor& x) { return sum(x, Dims{}); }

inline Tensor mean(const Tensor& x_in, const Dims& dims_in, KeepDim keepdim = KeepDim::no) {
  const Tensor x = amp::full_precision(x_in);
  const Dims dims = normalize_dims(dims_in, x.dim(), "mean");
  Tensor out = detail::finish_keepdim(detail::reduce_raw(ReduceOp::mean, x, dims), x.shape(), dims, keepdim);
  if (autograd::any_requires_grad({x})) {
    const Shape in_shape = x.shape();
    int64_t count = 1;
    for (int64_t d : dims) count *= in_shape[d];
    autograd::record("mean", {x}, {out}, [in_shape, dims, count](const Grads& g) {
      return std::vector<Tensor>{
          mul(detail::grad_keepdim(g[0], in_shape, dims), 1.0 / static_cast<double>(count)).expand(in_shape)};
    });
  }
  return out;
}
inline Tensor mean(const Tensor& x) { return mean(x, Dims{}); }

namespace detail {
// amax/amin: the gradient is shared evenly among the elements that attain the extreme.
inline Tensor extreme(ReduceOp op, const Tensor& x, const Dims& dims_in, KeepDim keepdim) {
  const Dims dims = normalize_dims(dims_in, x.dim(), op_name(op));
  Tensor keep = reduce_raw(op, x, dims);
  Tensor out = finish_keepdim(keep, x.shape(), dims, keepdim);
  if (x.is_floating_point() && autograd::any_requires_grad({x})) {
    const Shape in_shape = x.shape();
    SavedTensor sx(x), sk(keep);
    autograd::record(op_name(op), {x}, {out}, [in_shape, dims, sx, sk](const Grads& g) {
      const Tensor mask = eq(sx.get(), sk.get()).to(g[0].dtype());
      const Tensor count = sum(mask, dims, KeepDim::yes);
      return std::vector<Tensor>{mul(div(grad_keepdim(g[0], in_shape, dims), count), mask)};
    });
  }
  return out;
}
}  // namespace detail

inline Tensor amax(const Tensor& x, const Dims& dims, KeepDim keepdim = KeepDim::no) {
  return detail::extreme(ReduceOp::max, x, dims, keepdim);
}
inline Tensor amin(const Tensor& x, const Dims& dims, KeepDim keepdim = KeepDim::no) {
  return detail::extreme(ReduceOp::min, x, dims, keepdim);
}
inline Tensor max(const Tensor& x) { return amax(x, Dims{}); }
inline Tensor min(const Tensor& x) { return amin(x, Dims{}); }

struct ValuesIndices {
  Tensor values;
  Tensor indices;  // i64
};

namespace detail {
inline ValuesIndices extreme_along(ArgReduceOp op, const Tensor& x, int64_t dim_in, KeepDim keepdim,
                                   const char* name) {
  const int d = normalize_dim(dim_in, x.dim(), name);
  if (x.dim() == 0) {  // a 0-dim tensor is its own extreme, at index 0
    return {x.clone(), zeros(Shape{}, TensorOptions(DType::i64).device(x.device()))};
  }
  WANWU_CHECK_SHAPE(x.shape()[d] > 0, name, ": dimension ", d, " has size 0; shape ", x.shape());
  const Dims dims{d};
  const Shape ks = keepdim_shape(x.shape(), dims);
  Tensor vals = empty_tensor(ks, x.dtype(), x.device());
  Tensor idx = empty_tensor(ks, DType::i64, x.device());
  backend_for(x.device()).arg_reduce(op, vals, idx, x, d);
  ValuesIndices r{finish_keepdim(vals, x.shape(), dims, keepdim), finish_keepdim(idx, x.shape(), dims, keepdim)};
  if (x.is_floating_point() && autograd::any_requires_grad({x})) {
    const Shape in_shape = x.shape();
    autograd::record(name, {x}, {r.values}, [in_shape, d, si = SavedTensor(idx), dims](const Grads& g) {
      Tensor gi = zeros(in_shape, options_of(g[0]));
      const Tensor gk = copy_as(grad_keepdim(g[0], in_shape, dims), g[0].dtype());
      backend_for(gi.device()).scatter_add(gi, d, si.get(), gk);
      return std::vector<Tensor>{gi};
    });
  }
  return r;
}
}  // namespace detail

// Largest value along `dim` and its index (the first one on ties; NaN counts as largest).
inline ValuesIndices max(const Tensor& x, int64_t dim, KeepDim keepdim = KeepDim::no) {
  return detail::extreme_along(ArgReduceOp::argmax, x, dim, keepdim, "max");
}
inline ValuesIndices min(const Tensor& x, int64_t dim, KeepDim keepdim = KeepDim::no) {
  return detail::extreme_along(ArgReduceOp::argmin, x, dim, keepdim, "min");
}

inline Tensor argmax(const Tensor& x, int64_t dim, KeepDim keepdim = KeepDim::no) {
  NoGradGuard ng;
  return max(x, dim, keepdim).indices;
}
inline Tensor argmin(const Tensor& x, int64_t dim, KeepDim keepdim = KeepDim::no) {
  NoGradGuard ng;
  return min(x, dim, keepdim).indices;
}
// Index into the flattened tensor.
inline Tensor argmax(const Tensor& x) {
  NoGradGuard ng;
  return argmax(x.reshape({-1}), 0);
}
inline Tensor argmin(const Tensor& x) {
  NoGradGuard ng;
  return argmin(x.reshape({-1}), 0);
}

inline Tensor any(const Tensor& x, const Dims& dims = {}, KeepDim keepdim = KeepDim::no) {
  const Dims d = normalize_dims(dims, x.dim(), "any");
  return detail::finish_keepdim(detail::reduce_raw(ReduceOp::any, x, d), x.shape(), d, keepdim);
}
inline Tensor all(const Tensor& x, const Dims& dims = {}, KeepDim keepdim = KeepDim::no) {
  const Dims d = normalize_dims(dims, x.dim(), "all");
  return detail::finish_keepdim(detail::reduce_raw(ReduceOp::all, x, d), x.shape(), d, keepdim);
}

// Variance with `correction` (1: unbiased, PyTorch's default; 0: population).
inline Tensor var(const Tensor& x, const Dims& dims_in, int64_t correction = 1, KeepDim keepdim = KeepDim::no) {
  const Dims dims = normalize_dims(dims_in, x.dim(), "var");
  WANWU_CHECK_DTYPE(x.is_floating_point(), "var: input dtype ", x.dtype(), " is not supported (floating types only)");
  int64_t n = 1;
  for (int64_t d : dims) n *= x.shape()[d];
  const Tensor centered = x - mean(x, dims, KeepDim::yes);
  const double denom = static_cast<double>(std::max<int64_t>(n - correction, 0));
  return sum(centered * centered, dims, keepdim) / denom;
}
inline Tensor var(const Tensor& x) { return var(x, Dims{}); }
inline Tensor stddev(const Tensor& x, const Dims& dims, int64_t correction = 1, KeepDim keepdim = KeepDim::no) {
  return var(x, dims, correction, keepdim).sqrt();
}

// log(sum(exp(x))) over dims, computed stably by shifting with the (detached) maximum.
inline Tensor logsumexp(const Tensor& x_in, const Dims& dims_in, KeepDim keepdim = KeepDim::no) {
  const Tensor x = amp::full_precision(x_in);
  const Dims dims = normalize_dims(dims_in, x.dim(), "logsumexp");
  WANWU_CHECK_DTYPE(x.is_floating_point(), "logsumexp: input dtype ", x.dtype(),
                    " is not supported (floating types only)");
  Tensor m = detail::reduce_raw(ReduceOp::max, x.detach(), dims);
  m = where(isfinite(m), m, zeros_like(m));  // rows of -inf (or inf) must not produce NaN
  Tensor r = (x - m).exp().sum(dims, KeepDim::yes).log() + m;
  return keepdim == KeepDim::yes ? r : r.reshape(detail::squeezed_shape(x.shape(), dims));
}

// Sums `x` over the dims that broadcasting expanded, giving `shape`: the backward of broadcasting.
inline Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int lead = x.dim() - shape.size();
  WANWU_CHECK_SHAPE(lead >= 0, "sum_to: cannot reduce shape ", x.shape(), " to ", shape);
  Dims dims;
  for (int i = 0; i < x.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
    } else {
      WANWU_CHECK_SHAPE(shape[i - lead] == x.shape()[i] || shape[i - lead] == 1, "sum_to: cannot reduce shape ",
                        x.shape(), " to ", shape);
      if (shape[i - lead] == 1 && x.shape()[i] != 1) dims.push_back(i);
    }
  }
  Tensor r = dims.empty() ? x : sum(x, dims, KeepDim::yes);
  return r.reshape(shape);
}

inline Tensor Tensor::sum() const { return wanwu::sum(*this); }
inline Tensor Tensor::sum(const Dims& dims, KeepDim keepdim) const { return wanwu::sum(*this, dims, keepdim); }
inline Tensor Tensor::mean() const { return wanwu::mean(*this); }
inline Tensor Tensor::mean(const Dims& dims, KeepDim keepdim) const { return wanwu::mean(*this, dims, keepdim); }
inline Tensor Tensor::max() const { return wanwu::max(*this); }
inline Tensor Tensor::min() const { return wanwu::min(*this); }
inline Tensor Tensor::argmax() const { return wanwu::argmax(*this); }
inline Tensor Tensor::argmax(int64_t dim, KeepDim keepdim) const { return wanwu::argmax(*this, dim, keepdim); }

}  // namespace wanwu
