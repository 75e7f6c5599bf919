// CUDA indexing kernels: index_select / index_add (rows along one dim) and gather / scatter_add
// (element-wise along one dim). The adds use atomics, so repeated indices accumulate without a
// serial pass (the order of the additions, and so the last bit of a float sum, is unspecified).
//
// Indices are validated where they are read: a kernel that meets an out-of-range index skips it
// and records it in the device's error record, which the backend raises as IndexError at its
// next sync point (device_check.cuh), so an indexing op costs no host sync.
#pragma once

#include "device_check.cuh"
#include "elementwise.cuh"

namespace wanwu::cuda {

// out += v with an atomic, for every dtype. 8- and 16-bit integer types (no hardware atomics)
// use a compare-and-swap on the aligned 32-bit word around them.
template <class T>
__device__ void atomic_add(T* addr, compute_t<T> v) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int32_t>) {
    atomicAdd(addr, v);
  } else if constexpr (std::is_same_v<T, int64_t>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(addr), static_cast<unsigned long long>(v));
  } else if constexpr (std::is_same_v<T, Half>) {
    atomicAdd(reinterpret_cast<__half*>(addr), __float2half_rn(v));
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    atomicAdd(reinterpret_cast<__nv_bfloat16*>(addr), __float2bfloat16_rn(v));
  } else {  // uint8_t, bool
    unsigned int* word = reinterpret_cast<unsigned int*>(reinterpret_cast<uintptr_t>(addr) & ~uintptr_t(3));
    const unsigned shift = static_cast<unsigned>(reinterpret_cast<uintptr_t>(addr) & 3) * 8;
    unsigned int old = *word, assumed;
    do {
      assumed = old;
      const T cur = static_cast<T>((assumed >> shift) & 0xFFu);
      const T next = convert<T>(static_cast<compute_t<T>>(cur) + v);
      const unsigned int nw = (assumed & ~(0xFFu << shift)) | (static_cast<unsigned int>(static_cast<uint8_t>(next)) << shift);
      old = atomicCAS(word, assumed, nw);
    } while (assumed != old);
  }
}

// An index kernel's check site: the op, the dimension's size and the dimension.
inline CheckSite index_site(int dev, CheckedOp op, int dim, int64_t size) { return check_site(dev, op, size, dim); }

struct OuterDimInner {
  int64_t outer = 1, dim = 1, inner = 1;
  OuterDimInner(const Shape& s, int d) {
    for (int i = 0; i < d; ++i) outer *= s[i];
    dim = s[d];
    for (int i = d + 1; i < s.size(); ++i) inner *= s[i];
  }
};

// Moves elements as raw words of the dtype's size: selection does not look at values.
template <class W>
__global__ void index_select_kernel(W* out, const W* in, const int64_t* idx, int64_t n, OuterDimInner g,
                                    CheckSite bad) {
  const int64_t total = g.outer * n * g.inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ii = t % g.inner, oj = t / g.inner, j = oj % n, o = oj / n;
    const int64_t v = idx[j];
    if (v < 0 || v >= g.dim) {
      bad.report(v);
      continue;
    }
    out[t] = in[(o * g.dim + v) * g.inner + ii];
  }
}

template <class T>
__global__ void index_add_kernel(T* out, const T* src, const int64_t* idx, int64_t n, OuterDimInner g,
                                 CheckSite bad) {
  const int64_t total = g.outer * n * g.inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ii = t % g.inner, oj = t / g.inner, j = oj % n, o = oj / n;
    const int64_t v = idx[j];
    if (v < 0 || v >= g.dim) {
      bad.report(v);
      continue;
    }
    atomic_add(out + (o * g.dim + v) * g.inner + ii, cv<compute_t<T>>(src[t]));
  }
}

// it: operands (out or out-view, index, in-or-src view with stride 0 along dim).
template <class T, bool Scatter>
__global__ void gather_scatter_kernel(StridedIter<3> it, int64_t n, T* a, const int64_t* idx, T* b,
                                      int64_t dim_size, int64_t dim_stride, CheckSite bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    it.offsets(i, off);
    const int64_t v = idx[off[1]];
    if (v < 0 || v >= dim_size) {
      bad.report(v);
      continue;
    }
    if constexpr (Scatter) atomic_add(a + off[0] + v * dim_stride, cv<compute_t<T>>(b[off[2]]));
    else a[off[0]] = b[off[2] + v * dim_stride];
  }
}

template <class F>
void dispatch_word(size_t bytes, F&& f) {
  switch (bytes) {
    case 1: return f(TypeTag<uint8_t>{});
    case 2: return f(TypeTag<uint16_t>{});
    case 4: return f(TypeTag<uint32_t>{});
    default: return f(TypeTag<uint64_t>{});
  }
}

inline void index_select(const Tensor& out, const Tensor& in_, int dim, const Tensor& index_) {
  const Tensor in = contiguous(in_), index = contiguous(index_);
  const OuterDimInner g(in.shape(), dim);
  const int64_t n = index.numel(), total = g.outer * n * g.inner;
  if (total == 0) return;
  const int dev = out.device().index;
  const CheckSite site = index_site(dev, CheckedOp::index_select, dim, g.dim);
  dispatch_word(in.itemsize(), [&](auto tag) {
    using W = typename decltype(tag)::type;
    index_select_kernel<W><<<blocks_for(total), kThreads, 0, stream(dev)>>>(ptr<W>(out), ptr<const W>(in),
                                                                            ptr<const int64_t>(index), n, g, site);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void index_add(const Tensor& out, int dim, const Tensor& index_, const Tensor& src_) {
  const Tensor src = contiguous(src_), index = contiguous(index_);
  const OuterDimInner g(out.shape(), dim);
  const int64_t n = index.numel(), total = g.outer * n * g.inner;
  if (total == 0) return;
  const int dev = out.device().index;
  const CheckSite site = index_site(dev, CheckedOp::index_add, dim, g.dim);
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    index_add_kernel<T><<<blocks_for(total), kThreads, 0, stream(dev)>>>(ptr<T>(out), ptr<const T>(src),
                                                                         ptr<const int64_t>(index), n, g, site);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

// `t` viewed with index's shape and stride 0 along dim (the kernels add index * stride(dim)).
inline Strides along_dim_strides(const Tensor& t, int dim) {
  Strides st = t.strides();
  st[dim] = 0;
  return st;
}

inline void gather(const Tensor& out, const Tensor& in, int dim, const Tensor& index) {
  const int64_t n = index.numel();
  if (n == 0) return;
  const Strides view = along_dim_strides(in, dim);
  const auto it = make_iter<3>(index.shape(), {&out.strides(), &index.strides(), &view});
  const int dev = out.device().index;
  const CheckSite site = index_site(dev, CheckedOp::gather, dim, in.shape()[dim]);
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    gather_scatter_kernel<T, false><<<blocks_for(n), kThreads, 0, stream(dev)>>>(
        it, n, ptr<T>(out), ptr<const int64_t>(index), ptr<T>(in), in.shape()[dim], in.strides()[dim], site);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void scatter_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  const int64_t n = index.numel();
  if (n == 0) return;
  const Strides view = along_dim_strides(out, dim);
  const auto it = make_iter<3>(index.shape(), {&view, &index.strides(), &src.strides()});
  const int dev = out.device().index;
  const CheckSite site = index_site(dev, CheckedOp::scatter_add, dim, out.shape()[dim]);
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    gather_scatter_kernel<T, true><<<blocks_for(n), kThreads, 0, stream(dev)>>>(
        it, n, ptr<T>(out), ptr<const int64_t>(index), ptr<T>(src), out.shape()[dim], out.strides()[dim], site);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

}  // namespace wanwu::cuda
