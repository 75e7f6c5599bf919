// CPU fused cross-entropy over [N, C] logits with class-index targets (the Backend contract in
// ../backend.hpp has the formula). One thread handles whole rows: a max pass, an exp-sum pass that
// also gathers the smoothing term's weighted sum, and in the backward one pass that writes every
// gradient element once. The composed form (log_softmax, gather, weights, where) made five passes
// over the logits and kept a [N, C] log-probability tensor alive for the backward; this keeps
// only lse [N]. Sums accumulate in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "../backend.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

struct CrossEntropyRows {
  int64_t N = 0, C = 0;
  const int64_t* target = nullptr;
  CrossEntropyParams p;
};

// Sum of the class weights (C when there are none): the smoothing term's weight mass.
template <class T>
double class_weight_sum(const T* w, int64_t C) {
  if (!w) return static_cast<double>(C);
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += static_cast<double>(w[c]);
  return s;
}

template <class T, class A>
void cross_entropy_forward_typed(T* loss, A* lse, const T* x, const T* w, const CrossEntropyRows& r) {
  const double e = r.p.label_smoothing, W = class_weight_sum(w, r.C);
  parallel_for(r.N, std::max<int64_t>(1, 8192 / std::max<int64_t>(r.C, 1)), [&](int64_t b, int64_t end) {
    for (int64_t i = b; i < end; ++i) {
      const int64_t t = r.target[i];
      if (t == r.p.ignore_index) {
        loss[i] = T(0);
        lse[i] = A(0);
        continue;
      }
      const T* xr = x + i * r.C;
      T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
      for (int64_t c = 0; c < r.C; ++c) mx = std::max(mx, xr[c]);
      if (mx == -std::numeric_limits<T>::infinity()) mx = T(0);
      double s = 0, wx = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < r.C; ++c) s += static_cast<double>(fm::exp(xr[c] - mx));
      if (e > 0 && w) {
#pragma omp simd reduction(+ : wx)
        for (int64_t c = 0; c < r.C; ++c) wx += static_cast<double>(w[c]) * static_cast<double>(xr[c]);
      } else if (e > 0) {
#pragma omp simd reduction(+ : wx)
        for (int64_t c = 0; c < r.C; ++c) wx += static_cast<double>(xr[c]);
      }
      const double l = static_cast<double>(mx) + std::log(s);
      const double wt = w ? static_cast<double>(w[t]) : 1.0;
      double v = (1.0 - e) * wt * (l - static_cast<double>(xr[t]));
      if (e > 0) v += e / static_cast<double>(r.C) * (l * W - wx);
      loss[i] = static_cast<T>(v);
      lse[i] = static_cast<A>(l);
    }
  });
}

template <class T, class A>
void cross_entropy_backward_typed(T* gx, const T* gl, const T* x, const A* lse, const T* w,
                                  const CrossEntropyRows& r) {
  const double e = r.p.label_smoothing, W = class_weight_sum(w, r.C);
  const double es = e / static_cast<double>(std::max<int64_t>(r.C, 1));
  parallel_for(r.N, std::max<int64_t>(1, 8192 / std::max<int64_t>(r.C, 1)), [&](int64_t b, int64_t end) {
    for (int64_t i = b; i < end; ++i) {
      T* gr = gx + i * r.C;
      const int64_t t = r.target[i];
      if (t == r.p.ignore_index) {
        std::fill(gr, gr + r.C, T(0));
        continue;
      }
      const T* xr = x + i * r.C;
      const double g = static_cast<double>(gl[i]);
      const double wt = w ? static_cast<double>(w[t]) : 1.0;
      // grad = g (p_c ((1 - e) w_t + e W / C) - e w_c / C) - g (1 - e) w_t [c = t]
      const T a = static_cast<T>(g * ((1.0 - e) * wt + es * W));
      const T l = static_cast<T>(lse[i]);
      if (w && e > 0) {
        const T bs = static_cast<T>(g * es);
#pragma omp simd
        for (int64_t c = 0; c < r.C; ++c) gr[c] = a * fm::exp(xr[c] - l) - bs * w[c];
      } else {
        const T bs = static_cast<T>(g * es);
#pragma omp simd
        for (int64_t c = 0; c < r.C; ++c) gr[c] = a * fm::exp(xr[c] - l) - bs;
      }
      gr[t] -= static_cast<T>(g * (1.0 - e) * wt);
    }
  });
}

}  // namespace wanwu::cpu
