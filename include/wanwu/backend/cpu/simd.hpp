// A minimal portable SIMD vector for hand-blocked CPU kernels: GCC/Clang vector extensions, as
// wide as the target's widest registers: 64 bytes where AVX-512 is enabled (-march=native on a
// CPU that has it), 32 otherwise (AVX2 registers with -mavx2; two SSE registers without). Kernels
// use it where register blocking matters and auto-vectorization cannot see it (depthwise
// convolution keeps several output pixels' accumulators in registers across kernel taps).
// The width follows the registers because GCC's auto-vectorizer prefers 256-bit vectors even with
// AVX-512 on: with 32-byte vectors on a two-core AVX-512 machine the GEMM kernel ran at half the
// FMA rate the cores have (ResNet-50's eval forward at batch 4: 167 ms against 117 ms with 64-byte
// vectors and gemm_narrow's 12-row block).
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

#if defined(__AVX512F__)
typedef float SimdF32 __attribute__((vector_size(64)));
typedef double SimdF64 __attribute__((vector_size(64)));
#else
typedef float SimdF32 __attribute__((vector_size(32)));
typedef double SimdF64 __attribute__((vector_size(32)));
#endif

template <class T>
struct Simd;
template <>
struct Simd<float> : SimdOps<float, SimdF32> {};
template <>
struct Simd<double> : SimdOps<double, SimdF64> {};

static_assert(Simd<float>::L == 2 * Simd<double>::L);

}  // namespace wanwu::cpu
