// Strided N-operand iteration for CPU kernels. Operands share one shape; each has its own byte
// strides (0 where broadcast). Dimensions are coalesced (adjacent dims that are contiguous for
// every operand merge, size-1 dims vanish), so a contiguous or simply broadcast case becomes one
// long inner loop that the compiler vectorizes. The range is split across threads statically.
#pragma once

#include <cstdint>

#include "../../core/tensor.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

inline constexpr int64_t kElementwiseGrain = 32768;

template <int N>
struct StridedLoop {
  int ndim = 0;  // after coalescing; dim 0 is the innermost
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};  // bytes
  char* base[N] = {};
  int64_t numel = 1;

  // ops[0] is usually the output; all must have ops[0]'s shape.
  explicit StridedLoop(const Tensor* const (&ops)[N]) {
    const Shape& shape = ops[0]->shape();
    numel = numel_of(shape);
    for (int k = 0; k < N; ++k) base[k] = static_cast<char*>(ops[k]->data_ptr());
    for (int d = shape.size() - 1; d >= 0; --d) {  // innermost first
      const int64_t sz = shape[d];
      if (sz == 1) continue;
      if (ndim > 0) {
        bool merge = true;
        for (int k = 0; k < N && merge; ++k) {
          const int64_t sd = ops[k]->strides()[d] * static_cast<int64_t>(ops[k]->itemsize());
          merge = sd == strides[k][ndim - 1] * sizes[ndim - 1];
        }
        if (merge) {
          sizes[ndim - 1] *= sz;
          continue;
        }
      }
      sizes[ndim] = sz;
      for (int k = 0; k < N; ++k)
        strides[k][ndim] = ops[k]->strides()[d] * static_cast<int64_t>(ops[k]->itemsize());
      ++ndim;
    }
  }

  // Calls inner(ptrs, inner_strides, n) over runs of the innermost dimension, in parallel.
  template <class Inner>
  void run(Inner&& inner, int64_t grain = kElementwiseGrain) const {
    if (numel == 0) return;
    if (ndim == 0) {
      char* p[N];
      int64_t s[N] = {};
      for (int k = 0; k < N; ++k) p[k] = base[k];
      inner(p, s, int64_t(1));
      return;
    }
    parallel_for(numel, grain, [&](int64_t begin, int64_t end) { run_range(inner, begin, end); });
  }

  template <class Inner>
  void run_range(Inner& inner, int64_t begin, int64_t end) const {
    int64_t idx[kMaxDims] = {};
    int64_t rem = begin;
    for (int d = 0; d < ndim; ++d) {
      idx[d] = rem % sizes[d];
      rem /= sizes[d];
    }
    int64_t inner_strides[N];
    for (int k = 0; k < N; ++k) inner_strides[k] = strides[k][0];
    int64_t pos = begin;
    while (pos < end) {
      char* p[N];
      for (int k = 0; k < N; ++k) {
        char* q = base[k];
        for (int d = 0; d < ndim; ++d) q += idx[d] * strides[k][d];
        p[k] = q;
      }
      const int64_t n = std::min(sizes[0] - idx[0], end - pos);
      inner(p, inner_strides, n);
      pos += n;
      idx[0] += n;
      for (int d = 0; d + 1 < ndim && idx[d] == sizes[d]; ++d) {
        idx[d] = 0;
        ++idx[d + 1];
      }
    }
  }
};

}  // namespace wanwu::cpu
