// Indexing ops: index_select (rows along a dim), gather / scatter_add (per-element along a dim),
// one_hot. Index tensors may be i32 or i64; out-of-range indices raise IndexError naming the op,
// the index and the dimension size: in the call on the CPU; on a GPU, where only the kernel sees
// the values, at the next read from the device or synchronize(), so indexing costs no host sync.
#pragma once

#include "elementwise.hpp"
#include "factory.hpp"

namespace wanwu {

namespace detail {
inline Tensor index_i64(const Tensor& index, const char* op) {
  WANWU_CHECK_DTYPE(index.dtype() == DType::i64 || index.dtype() == DType::i32, op,
                    ": index must be an integer tensor (i64 or i32), got ", index.dtype());
  return index.dtype() == DType::i64 && index.is_contiguous() ? index : copy_as(index, DType::i64);
}
inline Tensor contiguous_raw(const Tensor& t) { return t.is_contiguous() ? t : copy_as(t, t.dtype()); }
}  // namespace detail

// x.index_select(dim, index)[..., j, ...] = x[..., index[j], ...]; index is 1-D (or 0-dim).
inline Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  WANWU_CHECK_SHAPE(x.dim() >= 1, "index_select: input must have at least 1 dimension");
  WANWU_CHECK_SHAPE(index.dim() <= 1, "index_select: index must be 1-D, got shape ", index.shape());
  detail::check_operand_devices("index_select", x, {{"index", index}});
  const int d = normalize_dim(dim, x.dim(), "index_select");
  const Tensor idx = detail::index_i64(index, "index_select");
  Shape out_shape = x.shape();
  out_shape[d] = idx.numel();
  Tensor out = empty_tensor(out_shape, x.dtype(), x.device());
  backend_for(x.device()).index_select(out, detail::contiguous_raw(x), d, idx);
  if (x.is_floating_point() && autograd::any_requires_grad({x})) {
    const Shape xs = x.shape();
    autograd::record("index_select", {x}, {out}, [xs, d, si = SavedTensor(idx)](const Grads& g) {
      Tensor gi = zeros(xs, options_of(g[0]));
      backend_for(gi.device()).index_add(gi, d, si.get(), detail::contiguous_raw(g[0]));
      return std::vector<Tensor>{gi};
    });
  }
  return out;
}

// out[i][j][k] = x[i][index[i][j][k]][k] for dim 1; index has x's rank and is no larger than x
// outside dim.
inline Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const int d = normalize_dim(dim, x.dim(), "gather");
  WANWU_CHECK_SHAPE(index.dim() == x.dim(), "gather: index has ", index.dim(), " dimensions but input has ", x.dim(),
                    " (shapes ", index.shape(), " and ", x.shape(), ")");
  for (int i = 0; i < x.dim(); ++i)
    WANWU_CHECK_SHAPE(i == d || index.shape()[i] <= x.shape()[i], "gather: index shape ", index.shape(),
                      " exceeds input shape ", x.shape(), " in dimension ", i);
  detail::check_operand_devices("gather", x, {{"index", index}});
  const Tensor idx = detail::index_i64(index, "gather");
  Tensor out = empty_tensor(idx.shape(), x.dtype(), x.device());
  backend_for(x.device()).gather(out, detail::contiguous_raw(x), d, idx);
  if (x.is_floating_point() && autograd::any_requires_grad({x})) {
    const Shape xs = x.shape();
    autograd::record("gather", {x}, {out}, [xs, d, si = SavedTensor(idx)](const Grads& g) {
      Tensor gi = zeros(xs, options_of(g[0]));
      backend_for(gi.device()).scatter_add(gi, d, si.get(), detail::contiguous_raw(g[0]));
      return std::vector<Tensor>{gi};
    });
  }
  return out;
}

// A copy of x with src added at the positions index names along dim (repeats accumulate).
inline Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int d = normalize_dim(dim, x.dim(), "scatter_add");
  WANWU_CHECK_SHAPE(index.dim() == x.dim() && src.dim() == x.dim(), "scatter_add: index ", index.shape(), ", src ",
                    src.shape(), " and input ", x.shape(), " must have the same number of dimensions");
  for (int i = 0; i < x.dim(); ++i) {
    WANWU_CHECK_SHAPE(index.shape()[i] <= src.shape()[i], "scatter_add: index shape ", index.shape(),
                      " exceeds src shape ", src.shape(), " in dimension ", i);
    WANWU_CHECK_SHAPE(i == d || index.shape()[i] <= x.shape()[i], "scatter_add: index shape ", index.shape(),
                      " exceeds input shape ", x.shape(), " in dimension ", i);
  }
  WANWU_CHECK_DTYPE(src.dtype() == x.dtype(), "scatter_add: src dtype ", src.dtype(), " differs from input dtype ",
                    x.dtype());
  detail::check_operand_devices("scatter_add", x, {{"index", index}, {"src", src}});
  const Tensor idx = detail::index_i64(index, "scatter_add");
  Tensor out = detail::copy_as(x, x.dtype());
  // src restricted to index's shape
  Tensor s = src;
  for (int i = 0; i < x.dim(); ++i)
    if (s.shape()[i] != idx.shape()[i]) s = s.detach().narrow(i, 0, idx.shape()[i]);
  backend_for(x.device()).scatter_add(out, d, idx, detail::contiguous_raw(s));
  if (x.is_floating_point() && autograd::any_requires_grad({x, src})) {
    const Shape ss = src.shape();
    autograd::record("scatter_add", {x, src}, {out}, [ss, d, si = SavedTensor(idx)](const Grads& g) {
      const Tensor idx = si.get();
      std::vector<Tensor> r(2);
      if (g.needs_input_grad(0)) r[0] = g[0];
      if (g.needs_input_grad(1)) {
        Tensor gs = zeros(ss, options_of(g[0]));
        Tensor part = gather(g[0], d, idx);
        Tensor slot = gs;
        for (int i = 0; i < gs.dim(); ++i)
          if (slot.shape()[i] != idx.shape()[i]) slot = slot.narrow(i, 0, idx.shape()[i]);
        slot.copy_(part);
        r[1] = gs;
      }
      return r;
    });
  }
  return out;
}

// i64 tensor of shape index.shape + [num_classes] with a 1 at each index (-1: max(index) + 1).
inline Tensor one_hot(const Tensor& index, int64_t num_classes = -1) {
  WANWU_CHECK_DTYPE(index.dtype() == DType::i64 || index.dtype() == DType::i32,
                    "one_hot: class values must be an integer tensor, got ", index.dtype());
  NoGradGuard ng;
  const int64_t lo = index.numel() ? index.min().item<int64_t>() : 0;
  WANWU_CHECK_INDEX(lo >= 0, "one_hot: class values must be non-negative, got ", lo);
  if (num_classes < 0) {
    WANWU_CHECK_VALUE(index.numel() > 0, "one_hot: cannot infer the number of classes from an empty tensor");
    num_classes = index.max().item<int64_t>() + 1;
  } else if (index.numel() > 0) {
    const int64_t hi = index.max().item<int64_t>();
    WANWU_CHECK_INDEX(hi < num_classes, "one_hot: class value ", hi, " is out of range for ", num_classes,
                      " classes");
  }
  const Tensor classes = arange(0, num_classes, 1, TensorOptions(DType::i64).device(index.device()));
  return eq(index.to(DType::i64).unsqueeze(-1), classes).to(DType::i64);
}

}  // namespace wanwu
