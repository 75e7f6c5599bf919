// Portability macros shared by host code and CUDA kernels. Per-element math is written once as
// `WANWU_HD` functors and compiled by g++ for the CPU backend and by nvcc for the CUDA one, so
// the math that the CPU tests check is the math the GPU runs (DESIGN §6).
#pragma once

#if defined(__CUDACC__)
#define WANWU_HD __host__ __device__
#define WANWU_DEVICE_CODE 1
#else
#define WANWU_HD
#endif

#if defined(__GNUC__) || defined(__clang__)
#define WANWU_ALWAYS_INLINE inline __attribute__((always_inline))
#define WANWU_RESTRICT __restrict__
#else
#define WANWU_ALWAYS_INLINE inline
#define WANWU_RESTRICT
#endif

// Per-element functors' call operators: inlined into the loops that call them whatever their size,
// so that the loops vectorize (a call per element does not; fm::exp alone is ~20 instructions).
#if defined(__CUDACC__)
#define WANWU_HD_INLINE __host__ __device__ __forceinline__
#else
#define WANWU_HD_INLINE WANWU_ALWAYS_INLINE
#endif
