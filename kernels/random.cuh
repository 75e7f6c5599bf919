// CUDA random fill: element i is random_value(p, i) / random_int(p, i) from core/rng.hpp, the
// same Philox 4x32-10 mapping the CPU backend runs, so one seed gives the same tensor on both
// devices (DESIGN D8).
#pragma once

#include "runtime.cuh"

namespace wanwu::cuda {

template <class T>
__global__ void random_kernel(T* out, int64_t n, RandomParams p, bool wide) {
  if (p.offset_shift) p.offset += static_cast<uint64_t>(*p.offset_shift);  // a graph replay's draw
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (p.kind == RandomKind::randint) out[i] = cv<T>(random_int(p, i, wide));
    else out[i] = cv<T>(random_value(p, i, wide));
  }
}

inline void random(const Tensor& out, const RandomParams& p, bool wide) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    random_kernel<T><<<blocks_for(n), kThreads, 0, stream(out.device().index)>>>(ptr<T>(out), n, p, wide);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

}  // namespace wanwu::cuda
