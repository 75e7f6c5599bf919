// CPU reductions over any set of axes, and argmax/argmin along one axis.
//
// The input's dims split into a kept space and a reduced space, each coalesced. Two loop orders:
//  - inner: each output reduces a run that is contiguous in memory (sum over the last axis,
//    full reductions); when there are fewer outputs than threads the run itself is split;
//  - outer: the kept innermost axis is contiguous and the reduced one is not (sum over the batch
//    of [N, C]); outputs are produced a block of 256 lanes at a time, which vectorizes.
// Float sums accumulate in double on the CPU: it costs nothing in a memory-bound loop and makes
// results independent of thread count to within f32 rounding.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "../functors.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

template <class T>
struct SumR {
  using A = std::conditional_t<is_floating(dtype_of_v<T>), double, int64_t>;
  static A init() { return A(0); }
  static A step(A acc, A x) { return acc + x; }
};
template <class T>
struct ProdR {
  using A = std::conditional_t<is_floating(dtype_of_v<T>), double, int64_t>;
  static A init() { return A(1); }
  static A step(A acc, A x) { return acc * x; }
};
template <class T>
struct MaxR {
  using A = compute_t<T>;
  static A init() {
    if constexpr (std::numeric_limits<A>::has_infinity) return -std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::lowest();
  }
  static A step(A acc, A x) { return (acc != acc) ? acc : ((x != x) || x > acc ? x : acc); }
};
template <class T>
struct MinR {
  using A = compute_t<T>;
  static A init() {
    if constexpr (std::numeric_limits<A>::has_infinity) return std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::max();
  }
  static A step(A acc, A x) { return (acc != acc) ? acc : ((x != x) || x < acc ? x : acc); }
};
template <class T>
struct AnyR {
  using A = bool;
  static A init() { return false; }
  static A step(A acc, A x) { return acc || x; }
};
template <class T>
struct AllR {
  using A = bool;
  static A init() { return true; }
  static A step(A acc, A x) { return acc && x; }
};

struct ReduceSpace {
  int n = 0;  // innermost first
  int64_t size[kMaxDims] = {};
  int64_t in_stride[kMaxDims] = {};
  int64_t out_stride[kMaxDims] = {};
  int64_t numel = 1;
  void add(int64_t sz, int64_t is, int64_t os, bool use_out) {
    numel *= sz;
    if (n > 0 && is == in_stride[n - 1] * size[n - 1] && (!use_out || os == out_stride[n - 1] * size[n - 1])) {
      size[n - 1] *= sz;
      return;
    }
    size[n] = sz;
    in_stride[n] = is;
    out_stride[n] = os;
    ++n;
  }
  // input/output element offsets of linear index k
  void offsets(int64_t k, int64_t& in_off, int64_t& out_off) const {
    in_off = out_off = 0;
    for (int d = 0; d < n; ++d) {
      const int64_t i = k % size[d];
      k /= size[d];
      in_off += i * in_stride[d];
      out_off += i * out_stride[d];
    }
  }
};

// Sum of a contiguous run. f32 and f64 use 32 independent lanes per block of 4096 elements (the
// adds pipeline and vectorize; each lane sums at most 128 values), and blocks are added in A
// (double for floats) — fast and accurate enough to be independent of the thread split.
template <class T, class A>
A sum_contiguous(const T* p, int64_t n) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    constexpr int64_t kLanes = std::is_same_v<T, float> ? 32 : 16, kBlock = 4096;
    A total = 0;
    int64_t i = 0;
    for (; i + kBlock <= n; i += kBlock) {
      T lane[kLanes] = {};
      for (int64_t j = 0; j < kBlock; j += kLanes)
#pragma omp simd
        for (int64_t l = 0; l < kLanes; ++l) lane[l] += p[i + j + l];
      A block = 0;
      for (int64_t l = 0; l < kLanes; ++l) block += static_cast<A>(lane[l]);
      total += block;
    }
    for (; i < n; ++i) total += static_cast<A>(p[i]);
    return total;
  } else {
    A s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<A>(static_cast<compute_t<T>>(p[i]));
    return s;
  }
}

// Reduces linear indices [begin, end) of the reduced space starting at `base`.
template <class T, class R>
typename R::A reduce_range(const T* base, const ReduceSpace& red, int64_t begin, int64_t end) {
  using A = typename R::A;
  A acc = R::init();
  if (red.n == 0) return R::step(acc, static_cast<A>(static_cast<compute_t<T>>(base[0])));
  int64_t idx[kMaxDims] = {};
  int64_t rem = begin;
  for (int d = 0; d < red.n; ++d) {
    idx[d] = rem % red.size[d];
    rem /= red.size[d];
  }
  const int64_t s0 = red.in_stride[0];
  int64_t pos = begin;
  while (pos < end) {
    const T* p = base;
    for (int d = 0; d < red.n; ++d) p += idx[d] * red.in_stride[d];
    const int64_t n = std::min(red.size[0] - idx[0], end - pos);
    if constexpr (std::is_same_v<R, SumR<T>>) {
      A s = 0;
      if (s0 == 1) {
        s = sum_contiguous<T, A>(p, n);
      } else {
        for (int64_t i = 0; i < n; ++i) s += static_cast<A>(static_cast<compute_t<T>>(p[i * s0]));
      }
      acc += s;
    } else {
      for (int64_t i = 0; i < n; ++i) acc = R::step(acc, static_cast<A>(static_cast<compute_t<T>>(p[i * s0])));
    }
    pos += n;
    idx[0] += n;
    for (int d = 0; d + 1 < red.n && idx[d] == red.size[d]; ++d) {
      idx[d] = 0;
      ++idx[d + 1];
    }
  }
  return acc;
}

// out = reduce(in) over `dims`; out has the keepdim shape. `scale` multiplies the result (mean).
template <class T, class O, class R>
void reduce_kernel(const Tensor& out, const Tensor& in, const Dims& dims, double scale) {
  using A = typename R::A;
  bool reduced[kMaxDims] = {};
  for (int64_t d : dims) reduced[d] = true;
  ReduceSpace kept, red;
  for (int d = in.dim() - 1; d >= 0; --d) {
    if (in.shape()[d] == 1) continue;
    if (reduced[d]) red.add(in.shape()[d], in.strides()[d], 0, false);
    else kept.add(in.shape()[d], in.strides()[d], out.strides()[d], true);
  }
  const T* src = static_cast<const T*>(in.data_ptr());
  O* dst = static_cast<O*>(out.data_ptr());
  auto finish = [scale](A acc) -> O {
    if constexpr (std::is_same_v<A, bool>) return convert<O>(acc);
    else if constexpr (std::is_floating_point_v<A>) return convert<O>(acc * static_cast<A>(scale));
    else return convert<O>(acc);
  };
  const int64_t K = kept.numel, Rn = red.numel;
  if (K == 0) return;
  if (Rn == 0) {  // empty reduction: the identity (mean: NaN, as 0/0)
    const O v = finish(R::init());
    for (int64_t k = 0; k < K; ++k) {
      int64_t in_off, out_off;
      kept.offsets(k, in_off, out_off);
      dst[out_off] = v;
    }
    return;
  }

  const bool outer = kept.n > 0 && kept.in_stride[0] == 1 && (red.n == 0 || red.in_stride[0] != 1);
  if (outer) {
    constexpr int64_t kBlock = 256;
    const int64_t L = kept.size[0];
    const int64_t nblocks = (L + kBlock - 1) / kBlock;
    const int64_t outer_count = K / L;
    ReduceSpace kept_outer;  // kept dims without the innermost
    for (int d = 1; d < kept.n; ++d) {
      kept_outer.size[kept_outer.n] = kept.size[d];
      kept_outer.in_stride[kept_outer.n] = kept.in_stride[d];
      kept_outer.out_stride[kept_outer.n] = kept.out_stride[d];
      ++kept_outer.n;
    }
    const int64_t os0 = kept.out_stride[0];
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, Rn * kBlock));
    parallel_for(outer_count * nblocks, grain, [&](int64_t b, int64_t e) {
      A acc[kBlock];
      for (int64_t task = b; task < e; ++task) {
        const int64_t ko = task / nblocks, j0 = (task % nblocks) * kBlock, len = std::min(kBlock, L - j0);
        int64_t in_off, out_off;
        kept_outer.offsets(ko, in_off, out_off);
        for (int64_t j = 0; j < len; ++j) acc[j] = R::init();
        int64_t idx[kMaxDims] = {};
        for (int64_t r = 0; r < Rn; ++r) {
          const T* p = src + in_off + j0;
          for (int d = 0; d < red.n; ++d) p += idx[d] * red.in_stride[d];
          if constexpr (std::is_same_v<R, SumR<T>>) {
#pragma omp simd
            for (int64_t j = 0; j < len; ++j) acc[j] += static_cast<A>(static_cast<compute_t<T>>(p[j]));
          } else {
            for (int64_t j = 0; j < len; ++j) acc[j] = R::step(acc[j], static_cast<A>(static_cast<compute_t<T>>(p[j])));
          }
          for (int d = 0; d < red.n && ++idx[d] == red.size[d]; ++d) idx[d] = 0;
        }
        for (int64_t j = 0; j < len; ++j) dst[out_off + (j0 + j) * os0] = finish(acc[j]);
      }
    });
    return;
  }

  const int nt = max_threads();
  if (K < nt && Rn >= 65536) {  // few outputs, long runs: split each run across threads
    for (int64_t k = 0; k < K; ++k) {
      int64_t in_off, out_off;
      kept.offsets(k, in_off, out_off);
      const int chunks = parallel_chunks(Rn, 32768);
      std::vector<A> partial(static_cast<size_t>(chunks), R::init());
      const int64_t chunk = (Rn + chunks - 1) / chunks;
      parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c)
          partial[c] = reduce_range<T, R>(src + in_off, red, c * chunk, std::min(Rn, (c + 1) * chunk));
      });
      A acc = R::init();
      for (A v : partial) acc = R::step(acc, v);
      dst[out_off] = finish(acc);
    }
    return;
  }
  const int64_t grain = std::max<int64_t>(1, 32768 / Rn);
  parallel_for(K, grain, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      int64_t in_off, out_off;
      kept.offsets(k, in_off, out_off);
      dst[out_off] = finish(reduce_range<T, R>(src + in_off, red, 0, Rn));
    }
  });
}

inline void reduce(ReduceOp op, const Tensor& out, const Tensor& in, const Dims& dims) {
  const char* name = op_name(op);
  int64_t count = 1;
  for (int64_t d : dims) count *= in.shape()[static_cast<int>(d)];
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::prod:
      return dispatch_dtype(in.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        using O = std::conditional_t<is_floating(dtype_of_v<T>), T, int64_t>;
        if (op == ReduceOp::sum) reduce_kernel<T, O, SumR<T>>(out, in, dims, 1.0);
        else reduce_kernel<T, O, ProdR<T>>(out, in, dims, 1.0);
      });
    case ReduceOp::mean:
      return dispatch_floating(in.dtype(), name, [&](auto tag) {
        using T = typename decltype(tag)::type;
        reduce_kernel<T, T, SumR<T>>(out, in, dims, count > 0 ? 1.0 / static_cast<double>(count) : NAN);
      });
    case ReduceOp::max:
    case ReduceOp::min:
      return dispatch_dtype(in.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (op == ReduceOp::max) reduce_kernel<T, T, MaxR<T>>(out, in, dims, 1.0);
        else reduce_kernel<T, T, MinR<T>>(out, in, dims, 1.0);
      });
    case ReduceOp::any:
    case ReduceOp::all:
      return dispatch_dtype(in.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (op == ReduceOp::any) reduce_kernel<T, bool, AnyR<T>>(out, in, dims, 1.0);
        else reduce_kernel<T, bool, AllR<T>>(out, in, dims, 1.0);
      });
  }
}

template <class T, bool IsMax>
void arg_reduce_kernel(const Tensor& values, const Tensor& indices, const Tensor& in, int dim) {
  using C = compute_t<T>;
  ReduceSpace kept;
  for (int d = in.dim() - 1; d >= 0; --d)
    if (d != dim && in.shape()[d] != 1) kept.add(in.shape()[d], in.strides()[d], values.strides()[d], true);
  const int64_t len = in.shape()[dim], stride = in.strides()[dim];
  const T* src = static_cast<const T*>(in.data_ptr());
  T* vals = static_cast<T*>(values.data_ptr());
  int64_t* idxs = static_cast<int64_t*>(indices.data_ptr());
  parallel_for(kept.numel, std::max<int64_t>(1, 32768 / std::max<int64_t>(len, 1)), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      int64_t in_off, out_off;
      kept.offsets(k, in_off, out_off);
      const T* p = src + in_off;
      C best = static_cast<C>(p[0]);
      int64_t bi = 0;
      for (int64_t j = 1; j < len && best == best; ++j) {  // stops at the first NaN
        const C v = static_cast<C>(p[j * stride]);
        if (v != v || (IsMax ? v > best : v < best)) {
          best = v;
          bi = j;
        }
      }
      vals[out_off] = convert<T>(best);
      idxs[out_off] = bi;
    }
  });
}

inline void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in, int dim) {
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (op == ArgReduceOp::argmax) arg_reduce_kernel<T, true>(values, indices, in, dim);
    else arg_reduce_kernel<T, false>(values, indices, in, dim);
  });
}

}  // namespace wanwu::cpu
