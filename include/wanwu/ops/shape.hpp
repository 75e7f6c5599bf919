// Joining and splitting: cat, stack, split (equal sizes or explicit sizes), chunk, unbind. cat copies
// each input into a slice of one output and its backward hands each input its slice of the
// gradient; split and chunk return views.
#pragma once

#include <vector>

#include "elementwise.hpp"
#include "view.hpp"

namespace wanwu {

inline Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0) {
  WANWU_CHECK_VALUE(!tensors.empty(), "cat: expected a non-empty list of tensors");
  // PyTorch skips legacy empty 1-D tensors of shape [0].
  std::vector<Tensor> ts;
  for (const auto& t : tensors) {
    WANWU_CHECK(t.defined(), "cat: undefined tensor in the list");
    if (!(t.dim() == 1 && t.numel() == 0)) ts.push_back(t);
  }
  if (ts.empty()) return tensors[0].clone();
  const Tensor& ref = ts[0];
  WANWU_CHECK_SHAPE(ref.dim() > 0, "cat: zero-dimensional tensor cannot be concatenated");
  const int d = normalize_dim(dim, ref.dim(), "cat");
  ResultTypeState rt;
  int64_t total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    WANWU_CHECK_SHAPE(t.dim() == ref.dim(), "cat: tensor ", i, " has ", t.dim(), " dimensions, expected ", ref.dim(),
                      " (shapes ", ref.shape(), " and ", t.shape(), ")");
    for (int k = 0; k < ref.dim(); ++k)
      WANWU_CHECK_SHAPE(k == d || t.shape()[k] == ref.shape()[k], "cat: sizes of tensors must match except in "
                        "dimension ", d, "; tensor ", i, " has shape ", t.shape(), ", tensor 0 has ", ref.shape());
    WANWU_CHECK_T(DeviceError, t.device() == ref.device(), "cat: tensor ", i, " is on ", t.device(),
                  ", tensor 0 on ", ref.device());
    rt.add_tensor(t.dtype(), false);
    total += t.shape()[d];
  }
  const DType dt = rt.result();
  Shape out_shape = ref.shape();
  out_shape[d] = total;
  Tensor out = empty_tensor(out_shape, dt, ref.device());
  std::vector<int64_t> sizes;
  int64_t off = 0;
  for (const auto& t : ts) {
    const int64_t n = t.shape()[d];
    Strides st = out.strides();
    Shape sh = out.shape();
    sh[d] = n;
    const Tensor slot(std::make_shared<TensorImpl>(out.storage(), off * out.strides()[d], sh, st, dt));
    backend_for(out.device()).copy(slot, t);
    sizes.push_back(n);
    off += n;
  }
  if (is_floating(dt) && autograd::any_requires_grad(ts)) {
    autograd::record("cat", ts, {out}, [sizes, d](const Grads& g) {
      std::vector<Tensor> r(sizes.size());
      int64_t o = 0;
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (g.needs_input_grad(i)) r[i] = g[0].narrow(d, o, sizes[i]);
        o += sizes[i];
      }
      return r;
    });
  }
  return out;
}

inline Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0) {
  WANWU_CHECK_VALUE(!tensors.empty(), "stack: expected a non-empty list of tensors");
  const int d = normalize_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (size_t i = 0; i < tensors.size(); ++i) {
    WANWU_CHECK_SHAPE(tensors[i].shape() == tensors[0].shape(), "stack: expects each tensor to be equal size, but "
                      "got ", tensors[0].shape(), " at entry 0 and ", tensors[i].shape(), " at entry ", i);
    us.push_back(tensors[i].unsqueeze(d));
  }
  return cat(us, d);
}

// The slices of x along dim, as views (torch.unbind). One autograd node serves them all: its
// backward stacks their gradients into one buffer (zeros for a slice that got none). A select per
// slice would each fill a zero tensor of x's whole size and copy its gradient in, and the engine
// would then add those up: for an attention's packed q, k, v projection, three fills and two adds
// of the whole projection per layer, where the stack writes it once.
inline std::vector<Tensor> unbind(const Tensor& x, int64_t dim = 0) {
  WANWU_CHECK_SHAPE(x.dim() > 0, "unbind: cannot unbind a 0-dim tensor");
  const int d = normalize_dim(dim, x.dim(), "unbind");
  const int64_t n = x.size(d);
  Shape sh = x.shape();
  Strides st = x.strides();
  sh.erase(d);
  st.erase(d);
  std::vector<Tensor> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(detail::make_view(x, sh, st, x.storage_offset() + i * x.strides()[d]));
  if (n > 0 && autograd::any_requires_grad({x})) {
    autograd::record("unbind", {x}, out, [d, n, sh](const Grads& g) {
      const Tensor* some = nullptr;
      for (int64_t i = 0; i < n && !some; ++i)
        if (g[i].defined()) some = &g[i];
      if (!some) return std::vector<Tensor>{Tensor()};
      std::vector<Tensor> parts;
      for (int64_t i = 0; i < n; ++i) parts.push_back(g[i].defined() ? g[i] : zeros(sh, options_of(*some)));
      return std::vector<Tensor>{stack(parts, d)};
    });
  }
  return out;
}

// Pieces of `split_size` along dim (the last may be smaller); views.
inline std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0) {
  const int d = normalize_dim(dim, x.dim(), "split");
  WANWU_CHECK_VALUE(split_size > 0 || x.size(d) == 0, "split: split_size must be positive, got ", split_size);
  std::vector<Tensor> out;
  const int64_t n = x.size(d);
  if (n == 0) return {x};
  for (int64_t s = 0; s < n; s += split_size) out.push_back(x.narrow(d, s, std::min(split_size, n - s)));
  return out;
}

inline std::vector<Tensor> split_with_sizes(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0) {
  const int d = normalize_dim(dim, x.dim(), "split_with_sizes");
  int64_t total = 0;
  for (int64_t s : sizes) {
    WANWU_CHECK_VALUE(s >= 0, "split_with_sizes: negative size ", s);
    total += s;
  }
  WANWU_CHECK_SHAPE(total == x.size(d), "split_with_sizes: sizes sum to ", total, " but dimension ", d, " has size ",
                    x.size(d));
  std::vector<Tensor> out;
  int64_t off = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, off, s));
    off += s;
  }
  return out;
}

// `chunks` pieces of ceil(size / chunks) (fewer when the size runs out), as PyTorch.
inline std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0) {
  WANWU_CHECK_VALUE(chunks > 0, "chunk: number of chunks must be positive, got ", chunks);
  const int d = normalize_dim(dim, x.dim(), "chunk");
  const int64_t n = x.size(d);
  return split(x, std::max<int64_t>((n + chunks - 1) / chunks, 1), d);
}

}  // namespace wanwu
