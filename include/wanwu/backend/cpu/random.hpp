// CPU random fill: element i of the output is random_value(p, i) (core/rng.hpp), computed in
// parallel, so the result depends only on (seed, offset) and matches the CUDA backend.
#pragma once

#include "../backend.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

template <class T>
void random_kernel(const Tensor& out, const RandomParams& p, bool wide) {
  T* o = static_cast<T*>(out.data_ptr());
  parallel_for(out.numel(), 16384, [&](int64_t b, int64_t e) {
    if (p.kind == RandomKind::randint) {
      for (int64_t i = b; i < e; ++i) o[i] = convert<T>(random_int(p, i, wide));
    } else {
      for (int64_t i = b; i < e; ++i) o[i] = convert<T>(random_value(p, i, wide));
    }
  });
}

inline void random(const Tensor& out, const RandomParams& p, bool wide) {
  dispatch_dtype(out.dtype(), [&](auto tag) { random_kernel<typename decltype(tag)::type>(out, p, wide); });
}

}  // namespace wanwu::cpu
