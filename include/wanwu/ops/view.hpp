// View ops: results share the input's storage and differ in offset, shape and strides
// (reshape/view, permute/transpose, narrow/slice/select, expand, squeeze/unsqueeze, flatten).
// They are differentiable; their backward reshapes, permutes back, pads with zeros or sums over
// broadcast dims. `reshape` copies only when no strides can express the new shape.
#pragma once

#include <numeric>

#include "../autograd/node.hpp"
#include "factory.hpp"
#include "forward.hpp"

namespace wanwu {

namespace detail {

inline Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>(base.storage(), offset, shape, strides, base.dtype());
  impl->is_view = true;
  return Tensor(std::move(impl));
}

// A view with a backward that maps the output gradient to the input gradient.
template <class Backward>
Tensor view_op(const char* name, const Tensor& self, const Shape& shape, const Strides& strides, int64_t offset,
               Backward backward) {
  Tensor out = make_view(self, shape, strides, offset);
  if (autograd::any_requires_grad({self}))
    autograd::record(name, {self}, {out}, [backward](const Grads& g) { return std::vector<Tensor>{backward(g[0])}; });
  return out;
}

// Resolves one -1 in `shape` for `numel` elements.
inline Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      WANWU_CHECK_SHAPE(infer < 0, op, ": only one dimension can be -1, got ", shape);
      infer = i;
    } else {
      WANWU_CHECK_SHAPE(shape[i] >= 0, op, ": invalid size ", shape[i], " in shape ", shape);
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    WANWU_CHECK_SHAPE(known != 0 && numel % known == 0, op, ": shape ", shape, " is invalid for input of size ",
                      numel);
    out[infer] = numel / known;
  } else {
    WANWU_CHECK_SHAPE(known == numel, op, ": shape ", shape, " is invalid for input of size ", numel);
  }
  return out;
}

// Strides that view (old_shape, old_strides) as new_shape, if any (PyTorch's computeStride).
inline std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides,
                                           const Shape& new_shape) {
  Strides ns;
  ns.resize(new_shape.size());
  if (numel_of(old_shape) == 0) return contiguous_strides(new_shape);
  if (old_shape.empty()) return Strides::filled(new_shape.size(), 1);  // 0-dim: any all-ones shape
  int view_d = new_shape.size() - 1;
  int64_t chunk_base_stride = old_strides.size() ? old_strides.back() : 1;
  int64_t tensor_numel = 1, view_numel = 1;
  for (int tensor_d = old_shape.size() - 1; tensor_d >= 0; --tensor_d) {
    tensor_numel *= old_shape[tensor_d];
    if (tensor_d == 0 ||
        (old_shape[tensor_d - 1] != 1 && old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        ns[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (tensor_d > 0) {
        chunk_base_stride = old_strides[tensor_d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return ns;
}

}  // namespace detail

inline Tensor Tensor::view(const Shape& shape_in) const {
  const Shape shape = detail::infer_shape(shape_in, numel(), "view");
  const auto st = detail::view_strides(this->shape(), strides(), shape);
  WANWU_CHECK_SHAPE(st.has_value(), "view: shape ", shape, " is incompatible with the input's shape ",
                    this->shape(), " and strides ", strides(), "; use reshape() instead");
  const Shape in_shape = this->shape();
  return detail::view_op("view", *this, shape, *st, storage_offset(),
                         [in_shape](const Tensor& g) { return g.reshape(in_shape); });
}

inline Tensor Tensor::reshape(const Shape& shape_in) const {
  const Shape shape = detail::infer_shape(shape_in, numel(), "reshape");
  if (detail::view_strides(this->shape(), strides(), shape)) return view(shape);
  return clone().view(shape);
}

inline Tensor Tensor::permute(const Dims& dims) const {
  WANWU_CHECK_SHAPE(dims.size() == dim(), "permute: got ", dims.size(), " dims ", dims, " for a tensor with ", dim(),
                    " dimensions");
  Shape sh;
  Strides st;
  Dims inverse;
  inverse.resize(dim());
  bool seen[kMaxDims] = {};
  for (int i = 0; i < dims.size(); ++i) {
    const int d = normalize_dim(dims[i], dim(), "permute");
    WANWU_CHECK_INDEX(!seen[d], "permute: dimension ", d, " repeats in ", dims);
    seen[d] = true;
    sh.push_back(shape()[d]);
    st.push_back(strides()[d]);
    inverse[d] = i;
  }
  return detail::view_op("permute", *this, sh, st, storage_offset(),
                         [inverse](const Tensor& g) { return g.permute(inverse); });
}

inline Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  const int a = normalize_dim(d0, dim(), "transpose"), b = normalize_dim(d1, dim(), "transpose");
  Dims p;
  for (int i = 0; i < dim(); ++i) p.push_back(i);
  if (dim() == 0) return *this;
  std::swap(p[a], p[b]);
  return permute(p);
}

inline Tensor Tensor::t() const {
  WANWU_CHECK_SHAPE(dim() <= 2, "t(): expects a tensor with <= 2 dimensions, got shape ", shape());
  return dim() < 2 ? *this : transpose(0, 1);
}
inline Tensor Tensor::mT() const {
  WANWU_CHECK_SHAPE(dim() >= 2, "mT: expects a tensor with >= 2 dimensions, got shape ", shape());
  return transpose(-2, -1);
}

inline Tensor Tensor::slice(int64_t dim_in, int64_t start, int64_t end, int64_t step) const {
  WANWU_CHECK_SHAPE(dim() > 0, "slice: cannot slice a 0-dim tensor");
  const int d = normalize_dim(dim_in, dim(), "slice");
  WANWU_CHECK_VALUE(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = shape()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = shape();
  Strides st = strides();
  sh[d] = (end - start + step - 1) / step;
  st[d] *= step;
  const Shape in_shape = shape();
  const int64_t s0 = start, s1 = end;
  return detail::view_op("slice", *this, sh, st, storage_offset() + start * strides()[d],
                         [in_shape, d, s0, s1, step](const Tensor& g) {
                           Tensor gi = zeros(in_shape, options_of(g));
                           gi.slice(d, s0, s1, step).copy_(g);
                           return gi;
                         });
}

inline Tensor Tensor::narrow(int64_t dim_in, int64_t start, int64_t length) const {
  WANWU_CHECK_SHAPE(dim() > 0, "narrow: cannot narrow a 0-dim tensor");
  const int d = normalize_dim(dim_in, dim(), "narrow");
  const int64_t n = shape()[d];
  if (start < 0) start += n;
  WANWU_CHECK_INDEX(start >= 0 && length >= 0 && start + length <= n, "narrow: start ", start, " + length ", length,
                    " exceeds dimension ", d, " of size ", n, " (shape ", shape(), ")");
  return slice(d, start, start + length, 1);
}

inline Tensor Tensor::select(int64_t dim_in, int64_t index) const {
  WANWU_CHECK_SHAPE(dim() > 0, "select: cannot select from a 0-dim tensor");
  const int d = normalize_dim(dim_in, dim(), "select");
  const int64_t n = shape()[d];
  WANWU_CHECK_INDEX(index >= -n && index < n, "select: index ", index, " out of range for dimension ", d,
                    " of size ", n, " (shape ", shape(), ")");
  if (index < 0) index += n;
  Shape sh = shape();
  Strides st = strides();
  sh.erase(d);
  st.erase(d);
  const Shape in_shape = shape();
  return detail::view_op("select", *this, sh, st, storage_offset() + index * strides()[d],
                         [in_shape, d, index](const Tensor& g) {
                           Tensor gi = zeros(in_shape, options_of(g));
                           gi.select(d, index).copy_(g);
                           return gi;
                         });
}

inline Tensor Tensor::expand(const Shape& target) const {
  WANWU_CHECK_SHAPE(target.size() >= dim(), "expand: the number of sizes (", target.size(),
                    ") must be at least the tensor's dimensions (", dim(), "), shape ", shape());
  Shape sh;
  Strides st;
  sh.resize(target.size());
  st.resize(target.size());
  const int lead = target.size() - dim();
  for (int i = 0; i < target.size(); ++i) {
    const int j = i - lead;
    if (j < 0) {
      WANWU_CHECK_SHAPE(target[i] >= 0, "expand: size -1 is not allowed in a new leading dimension, target ",
                        target);
      sh[i] = target[i];
      st[i] = 0;
      continue;
    }
    const int64_t cur = shape()[j];
    const int64_t want = target[i] == -1 ? cur : target[i];
    WANWU_CHECK_SHAPE(cur == want || cur == 1, "expand: the size of dimension ", j, " (", cur,
                      ") must match the target ", want, " or be 1; shape ", shape(), " -> ", target);
    sh[i] = want;
    st[i] = cur == want ? strides()[j] : 0;
  }
  if (sh == shape()) return *this;
  const Shape in_shape = shape();
  return detail::view_op("expand", *this, sh, st, storage_offset(),
                         [in_shape](const Tensor& g) { return sum_to(g, in_shape); });
}

inline Tensor Tensor::squeeze() const {
  Shape sh;
  for (int64_t s : shape())
    if (s != 1) sh.push_back(s);
  return sh == shape() ? *this : reshape(sh);
}

inline Tensor Tensor::squeeze(int64_t dim_in) const {
  if (dim() == 0) return *this;
  const int d = normalize_dim(dim_in, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape sh = shape();
  Strides st = strides();
  sh.erase(d);
  st.erase(d);
  const Shape in_shape = shape();
  return detail::view_op("squeeze", *this, sh, st, storage_offset(),
                         [in_shape](const Tensor& g) { return g.reshape(in_shape); });
}

inline Tensor Tensor::unsqueeze(int64_t dim_in) const {
  const int d = normalize_dim(dim_in, dim() + 1, "unsqueeze");
  Shape sh = shape();
  Strides st = strides();
  const int64_t new_stride = d < dim() ? strides()[d] * shape()[d] : 1;
  sh.insert(d, 1);
  st.insert(d, new_stride);
  const Shape in_shape = shape();
  return detail::view_op("unsqueeze", *this, sh, st, storage_offset(),
                         [in_shape](const Tensor& g) { return g.reshape(in_shape); });
}

inline Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const int s = normalize_dim(start_dim, dim(), "flatten"), e = normalize_dim(end_dim, dim(), "flatten");
  WANWU_CHECK_INDEX(s <= e, "flatten: start_dim ", s, " cannot come after end_dim ", e);
  Shape sh;
  for (int i = 0; i < s; ++i) sh.push_back(shape()[i]);
  int64_t m = 1;
  for (int i = s; i <= e; ++i) m *= shape()[i];
  sh.push_back(m);
  for (int i = e + 1; i < dim(); ++i) sh.push_back(shape()[i]);
  return reshape(sh);
}

inline Tensor Tensor::unflatten(int64_t dim_in, const Shape& sizes) const {
  const int d = normalize_dim(dim_in, dim(), "unflatten");
  const Shape inner = detail::infer_shape(sizes, shape()[d], "unflatten");
  Shape sh;
  for (int i = 0; i < d; ++i) sh.push_back(shape()[i]);
  for (int64_t v : inner) sh.push_back(v);
  for (int i = d + 1; i < dim(); ++i) sh.push_back(shape()[i]);
  return reshape(sh);
}

inline Tensor Tensor::as_strided(const Shape& shape, const Strides& strides, int64_t storage_offset) const {
  WANWU_CHECK_T(AutogradError, !autograd::any_requires_grad({*this}),
                "as_strided: not differentiable; call it on a detached tensor or under NoGradGuard");
  WANWU_CHECK_SHAPE(shape.size() == strides.size(), "as_strided: shape ", shape, " and strides ", strides,
                    " differ in length");
  int64_t max_off = storage_offset;
  for (int i = 0; i < shape.size(); ++i) {
    WANWU_CHECK_SHAPE(shape[i] >= 0 && strides[i] >= 0, "as_strided: negative size or stride in ", shape, " / ",
                      strides);
    if (shape[i] == 0) max_off = -1;
    if (max_off >= 0) max_off += (shape[i] - 1) * strides[i];
  }
  WANWU_CHECK_INDEX(max_off < 0 || static_cast<size_t>(max_off + 1) * itemsize() <= storage()->nbytes(),
                    "as_strided: view ", shape, " with strides ", strides, " at offset ", storage_offset,
                    " exceeds the storage of ", storage()->nbytes(), " bytes");
  return detail::make_view(*this, shape, strides, storage_offset);
}

}  // namespace wanwu
