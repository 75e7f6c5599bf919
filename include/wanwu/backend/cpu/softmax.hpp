// CPU softmax / log_softmax over any axis, forward and backward. The input is viewed as
// [outer, D, inner]: with inner == 1 (the last axis, the common case) each row is handled by one
// thread with max, exp-sum and normalize passes that stay in cache; otherwise the loop runs over
// D with the inner axis contiguous and vectorized. Always shifted by the maximum, so large logits
// never overflow; sums accumulate in double.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "../functors.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

struct SoftmaxGeom {
  int64_t outer = 1, D = 1, inner = 1;
  SoftmaxGeom(const Shape& s, int dim) {
    for (int i = 0; i < dim; ++i) outer *= s[i];
    D = s[dim];
    for (int i = dim + 1; i < s.size(); ++i) inner *= s[i];
  }
};

template <class T>
void softmax_forward_typed(T* out, const T* x, const SoftmaxGeom& g, SoftmaxKind kind) {
  const bool log_kind = kind == SoftmaxKind::log_softmax;
  if (g.inner == 1) {
    parallel_for(g.outer, std::max<int64_t>(1, 8192 / std::max<int64_t>(g.D, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = x + r * g.D;
        T* orow = out + r * g.D;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t d = 0; d < g.D; ++d) mx = std::max(mx, xr[d]);
        if (mx == -std::numeric_limits<T>::infinity()) mx = T(0);  // all -inf: exp gives 0, sum 0
        double s = 0;
        for (int64_t d = 0; d < g.D; ++d) {
          const T ev = fm::exp(xr[d] - mx);
          if (!log_kind) orow[d] = ev;
          s += static_cast<double>(ev);
        }
        if (log_kind) {
          const T lse = mx + static_cast<T>(std::log(s));
#pragma omp simd
          for (int64_t d = 0; d < g.D; ++d) orow[d] = xr[d] - lse;
        } else {
          const T inv = static_cast<T>(1.0 / s);
#pragma omp simd
          for (int64_t d = 0; d < g.D; ++d) orow[d] *= inv;
        }
      }
    });
    return;
  }
  parallel_for(g.outer, 1, [&](int64_t b, int64_t e) {
    std::vector<T> mx(static_cast<size_t>(g.inner));
    std::vector<double> s(static_cast<size_t>(g.inner));
    for (int64_t o = b; o < e; ++o) {
      const T* xo = x + o * g.D * g.inner;
      T* oo = out + o * g.D * g.inner;
      std::fill(mx.begin(), mx.end(), -std::numeric_limits<T>::infinity());
      std::fill(s.begin(), s.end(), 0.0);
      for (int64_t d = 0; d < g.D; ++d)
        for (int64_t i = 0; i < g.inner; ++i) mx[i] = std::max(mx[i], xo[d * g.inner + i]);
      for (int64_t i = 0; i < g.inner; ++i)
        if (mx[i] == -std::numeric_limits<T>::infinity()) mx[i] = T(0);
      for (int64_t d = 0; d < g.D; ++d)
        for (int64_t i = 0; i < g.inner; ++i) {
          const T ev = fm::exp(xo[d * g.inner + i] - mx[i]);
          if (!log_kind) oo[d * g.inner + i] = ev;
          s[i] += static_cast<double>(ev);
        }
      for (int64_t i = 0; i < g.inner; ++i) {
        if (log_kind) {
          const T lse = mx[i] + static_cast<T>(std::log(s[i]));
          for (int64_t d = 0; d < g.D; ++d) oo[d * g.inner + i] = xo[d * g.inner + i] - lse;
        } else {
          const T inv = static_cast<T>(1.0 / s[i]);
          for (int64_t d = 0; d < g.D; ++d) oo[d * g.inner + i] *= inv;
        }
      }
    }
  });
}

// softmax: gx = y * (gy - sum(gy * y)); log_softmax: gx = gy - exp(y) * sum(gy).
template <class T>
void softmax_backward_typed(T* gx, const T* gy, const T* y, const SoftmaxGeom& g, SoftmaxKind kind) {
  const bool log_kind = kind == SoftmaxKind::log_softmax;
  parallel_for(g.outer, std::max<int64_t>(1, 8192 / std::max<int64_t>(g.D * g.inner, 1)), [&](int64_t b, int64_t e) {
    std::vector<double> s(static_cast<size_t>(g.inner));
    for (int64_t o = b; o < e; ++o) {
      const int64_t base = o * g.D * g.inner;
      std::fill(s.begin(), s.end(), 0.0);
      for (int64_t d = 0; d < g.D; ++d)
        for (int64_t i = 0; i < g.inner; ++i) {
          const int64_t k = base + d * g.inner + i;
          s[i] += log_kind ? static_cast<double>(gy[k]) : static_cast<double>(gy[k]) * static_cast<double>(y[k]);
        }
      for (int64_t d = 0; d < g.D; ++d)
        for (int64_t i = 0; i < g.inner; ++i) {
          const int64_t k = base + d * g.inner + i;
          gx[k] = log_kind ? static_cast<T>(gy[k] - fm::exp(y[k]) * static_cast<T>(s[i]))
                           : static_cast<T>(y[k] * (gy[k] - static_cast<T>(s[i])));
        }
    }
  });
}

}  // namespace wanwu::cpu
