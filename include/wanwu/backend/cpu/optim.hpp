// CPU optimizer steps: one parallel pass per parameter applying the shared per-element update
// (functors.hpp), reading the gradient in its own dtype; and the gradient utilities' passes
// (GradScaler's unscale and check, clip_grad_norm_'s norm).
#pragma once

#include <atomic>
#include <vector>

#include "../functors.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

template <class T, class G>
void sgd_step_typed(T* p, const G* g, T* buf, int64_t n, const SgdStepParams& s) {
  using C = compute_t<T>;
  if (step_skipped(s)) return;
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      C pc = static_cast<C>(p[i]), bc = buf ? static_cast<C>(buf[i]) : C(0);
      sgd_update<C>(pc, static_cast<C>(static_cast<compute_t<G>>(g[i])), bc, s);
      p[i] = convert<T>(pc);
      if (buf) buf[i] = convert<T>(bc);
    }
  });
}

template <class T, class G>
void adam_step_typed(T* p, const G* g, T* m, T* v, T* vmax, int64_t n, const AdamStepParams& s_in) {
  using C = compute_t<T>;
  if (step_skipped(s_in)) return;
  const AdamStepParams s = with_live(s_in);  // a gated step's bias corrections
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      C pc = static_cast<C>(p[i]), mc = static_cast<C>(m[i]), vc = static_cast<C>(v[i]);
      C xc = vmax ? static_cast<C>(vmax[i]) : C(0);
      adam_update<C>(pc, static_cast<C>(static_cast<compute_t<G>>(g[i])), mc, vc, xc, s);
      p[i] = convert<T>(pc);
      m[i] = convert<T>(mc);
      v[i] = convert<T>(vc);
      if (vmax) vmax[i] = convert<T>(xc);
    }
  });
}

// x *= factor in the compute type; returns whether an element was inf or NaN before. The flag is
// an or-reduction without branches, so that the loop vectorizes (`omp simd`: at -O2 as well).
template <class T>
bool scale_typed(T* x, int64_t n, double factor) {
  using C = compute_t<T>;
  const C f = static_cast<C>(factor);
  std::atomic<bool> bad{false};
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    T* const p = x + b;
    const int64_t m = e - b;
    int local = 0;
#pragma omp simd reduction(| : local)
    for (int64_t i = 0; i < m; ++i) {
      const C v = static_cast<C>(p[i]);
      local |= !IsFiniteF()(v);
      p[i] = convert<T>(v * f);
    }
    if (local) bad.store(true, std::memory_order_relaxed);
  });
  return bad.load();
}

// Norm partials of kNormChunk elements each, appended to `partial` in element order. A chunk is
// summed in kNormLanes interleaved lanes (independent adds that vectorize), combined in lane
// order: the same order whatever thread computes the chunk, so the total is the same on any
// thread count.
inline constexpr int64_t kNormChunk = 4096;
inline constexpr int kNormLanes = 8;

template <class T, class Term, class Combine>
double norm_chunk(const T* x, int64_t n, Term term, Combine combine) {
  double lane[kNormLanes] = {};
  int64_t i = 0;
  for (; i + kNormLanes <= n; i += kNormLanes)
    for (int l = 0; l < kNormLanes; ++l)
      lane[l] = combine(lane[l], term(static_cast<double>(static_cast<compute_t<T>>(x[i + l]))));
  for (; i < n; ++i) lane[0] = combine(lane[0], term(static_cast<double>(static_cast<compute_t<T>>(x[i]))));
  double acc = 0.0;
  for (int l = 0; l < kNormLanes; ++l) acc = combine(acc, lane[l]);
  return acc;
}

template <class T>
void norm_partials_typed(const T* x, int64_t n, const NormParams& s, std::vector<double>& partial) {
  const int64_t chunks = (n + kNormChunk - 1) / kNormChunk, base = static_cast<int64_t>(partial.size());
  partial.resize(static_cast<size_t>(base + chunks), 0.0);
  double* out = partial.data() + base;
  // the kind is chosen outside the element loop: norm_term's and norm_combine's branches there
  // would keep it scalar
  auto run = [&](auto term, auto combine) {
    parallel_for(chunks, 4, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c)
        out[c] = norm_chunk(x + c * kNormChunk, std::min(kNormChunk, n - c * kNormChunk), term, combine);
    });
  };
  const auto add = [](double a, double t) { return a + t; };
  switch (s.kind) {
    case NormKind::sum_square: return run([](double v) { return v * v; }, add);
    case NormKind::sum_abs: return run([](double v) { return v < 0 ? -v : v; }, add);
    case NormKind::sum_pow: return run([&s](double v) { return norm_term(v, s); }, add);
    case NormKind::max_abs:
      return run([](double v) { return v < 0 ? -v : v; }, [&s](double a, double t) { return norm_combine(a, t, s); });
  }
}

}  // namespace wanwu::cpu
