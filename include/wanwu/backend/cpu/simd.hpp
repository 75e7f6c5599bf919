// A minimal portable SIMD vector for hand-blocked CPU kernels: GCC/Clang vector extensions, 32
// bytes wide (AVX2 registers with -mavx2 / -march=native; two SSE registers otherwise). Kernels
// use it where register blocking matters and auto-vectorization cannot see it (depthwise
// convolution keeps several output pixels' accumulators in registers across kernel taps).
// Specialized per type: the vector_size attribute does not apply to a dependent type.
#pragma once

#include <cstring>

#include "../../core/macros.hpp"

namespace wanwu::cpu {

template <class T, class Vec>
struct SimdOps {
  using V = Vec;
  static constexpr int L = static_cast<int>(sizeof(Vec) / sizeof(T));
  static WANWU_ALWAYS_INLINE V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static WANWU_ALWAYS_INLINE void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
  static WANWU_ALWAYS_INLINE V zero() { return V{}; }
};

typedef float SimdF32 __attribute__((vector_size(32)));
typedef double SimdF64 __attribute__((vector_size(32)));

template <class T>
struct Simd;
template <>
struct Simd<float> : SimdOps<float, SimdF32> {};
template <>
struct Simd<double> : SimdOps<double, SimdF64> {};

static_assert(Simd<float>::L == 8 && Simd<double>::L == 4);

}  // namespace wanwu::cpu
