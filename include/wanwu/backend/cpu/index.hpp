// CPU indexing kernels: index_select / index_add (rows along one dim) and gather / scatter_add
// (element-wise along one dim). Tensors are contiguous; indices are i64 and range-checked here,
// where they are read, so a bad label gives an IndexError instead of a wild read.
#pragma once

#include <atomic>
#include <cstring>

#include "loops.hpp"

namespace wanwu::cpu {

// Views a contiguous tensor as [outer, size(dim), inner].
struct OuterDimInner {
  int64_t outer = 1, dim = 1, inner = 1;
  OuterDimInner(const Shape& s, int d) {
    for (int i = 0; i < d; ++i) outer *= s[i];
    dim = s[d];
    for (int i = d + 1; i < s.size(); ++i) inner *= s[i];
  }
};

inline void check_index_value(int64_t v, int64_t size, const char* op, int dim) {
  WANWU_CHECK_INDEX(v >= 0 && v < size, op, ": index ", v, " is out of bounds for dimension ", dim, " with size ",
                    size);
}

inline void index_select(const Tensor& out, const Tensor& in, int dim, const Tensor& index) {
  const OuterDimInner g(in.shape(), dim);
  const int64_t n = index.numel();
  const int64_t* idx = index.data<int64_t>();
  for (int64_t j = 0; j < n; ++j) check_index_value(idx[j], g.dim, "index_select", dim);
  const size_t row = static_cast<size_t>(g.inner) * in.itemsize();
  const char* src = static_cast<const char*>(in.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  parallel_for(g.outer * n, std::max<int64_t>(1, 65536 / std::max<int64_t>(row, 1)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / n, j = t % n;
      std::memcpy(dst + (o * n + j) * row, src + (o * g.dim + idx[j]) * row, row);
    }
  });
}

inline void index_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  const OuterDimInner g(out.shape(), dim);
  const int64_t n = index.numel();
  const int64_t* idx = index.data<int64_t>();
  for (int64_t j = 0; j < n; ++j) check_index_value(idx[j], g.dim, "index_add", dim);
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    T* o = static_cast<T*>(out.data_ptr());
    const T* s = static_cast<const T*>(src.data_ptr());
    // Parallel over (outer, inner) positions; each position walks j serially, so repeated
    // indices never race.
    parallel_for(g.outer * g.inner, 4096, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t oo = t / g.inner, ii = t % g.inner;
        for (int64_t j = 0; j < n; ++j) {
          T& dst = o[(oo * g.dim + idx[j]) * g.inner + ii];
          dst = convert<T>(static_cast<C>(dst) + static_cast<C>(s[(oo * n + j) * g.inner + ii]));
        }
      }
    });
  });
}

// `in` viewed with index's shape and stride 0 along dim: element (…, j, …) points at
// in(…, 0, …); the kernels add index * stride(dim).
inline Tensor along_dim_view(const Tensor& t, const Shape& index_shape, int dim) {
  Strides st = t.strides();
  st[dim] = 0;
  auto impl = std::make_shared<TensorImpl>(t.storage(), t.storage_offset(), index_shape, st, t.dtype());
  return Tensor(impl);
}

inline void gather(const Tensor& out, const Tensor& in, int dim, const Tensor& index) {
  const Tensor view = along_dim_view(in, index.shape(), dim);
  const int64_t dim_size = in.shape()[dim], dim_stride = in.strides()[dim];
  std::atomic<bool> has_bad{false};
  std::atomic<int64_t> bad{0};
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Tensor* ops[3] = {&out, &index, &view};
    StridedLoop<3>(ops).run([&](char** p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t v = *reinterpret_cast<const int64_t*>(p[1] + i * s[1]);
        if (v < 0 || v >= dim_size) {
          bad.store(v);
          has_bad.store(true);
          continue;
        }
        *reinterpret_cast<T*>(p[0] + i * s[0]) = reinterpret_cast<const T*>(p[2] + i * s[2])[v * dim_stride];
      }
    });
  });
  if (has_bad.load()) check_index_value(bad.load(), dim_size, "gather", dim);
}

inline void scatter_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  const int64_t dim_size = out.shape()[dim], dim_stride = out.strides()[dim];
  const int64_t* idx = index.data<int64_t>();
  for (int64_t j = 0; j < index.numel(); ++j) check_index_value(idx[j], dim_size, "scatter_add", dim);
  const Tensor view = along_dim_view(out, index.shape(), dim);
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    const Tensor* ops[3] = {&view, &index, &src};
    StridedLoop<3> loop(ops);
    // Serial: different elements may add into the same output.
    loop.run([&](char** p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t v = *reinterpret_cast<const int64_t*>(p[1] + i * s[1]);
        T& dst = reinterpret_cast<T*>(p[0] + i * s[0])[v * dim_stride];
        dst = convert<T>(static_cast<C>(dst) + static_cast<C>(*reinterpret_cast<const T*>(p[2] + i * s[2])));
      }
    }, int64_t(1) << 62);
  });
}

}  // namespace wanwu::cpu
