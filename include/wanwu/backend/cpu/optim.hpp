// CPU optimizer steps: one parallel pass per parameter applying the shared per-element update
// (functors.hpp), reading the gradient in its own dtype.
#pragma once

#include "../functors.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

template <class T, class G>
void sgd_step_typed(T* p, const G* g, T* buf, int64_t n, const SgdStepParams& s) {
  using C = compute_t<T>;
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
void adam_step_typed(T* p, const G* g, T* m, T* v, T* vmax, int64_t n, const AdamStepParams& s) {
  using C = compute_t<T>;
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

}  // namespace wanwu::cpu
