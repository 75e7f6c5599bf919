// CUDA optimizer steps: one fused pass per parameter applying the per-element updates of
// backend/functors.hpp (sgd_update, adam_update) — the code the CPU backend runs — reading the
// gradient in its own dtype.
#pragma once

#include "runtime.cuh"

namespace wanwu::cuda {

template <class T, class G>
__global__ void sgd_kernel(T* p, const G* g, T* buf, int64_t n, SgdStepParams s) {
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    C pc = cv<C>(p[i]), bc = buf ? cv<C>(buf[i]) : C(0);
    sgd_update<C>(pc, cv<C>(g[i]), bc, s);
    p[i] = cv<T>(pc);
    if (buf) buf[i] = cv<T>(bc);
  }
}

template <class T, class G>
__global__ void adam_kernel(T* p, const G* g, T* m, T* v, T* vmax, int64_t n, AdamStepParams s) {
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    C pc = cv<C>(p[i]), mc = cv<C>(m[i]), vc = cv<C>(v[i]);
    C xc = vmax ? cv<C>(vmax[i]) : C(0);
    adam_update<C>(pc, cv<C>(g[i]), mc, vc, xc, s);
    p[i] = cv<T>(pc);
    m[i] = cv<T>(mc);
    v[i] = cv<T>(vc);
    if (vmax) vmax[i] = cv<T>(xc);
  }
}

inline void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdStepParams& s) {
  const int64_t n = param.numel();
  if (n == 0) return;
  dispatch_floating(param.dtype(), "sgd step", [&](auto pt) {
    using T = typename decltype(pt)::type;
    dispatch_floating(grad.dtype(), "sgd step", [&](auto gt) {
      using G = typename decltype(gt)::type;
      sgd_kernel<T, G><<<blocks_for(n), kThreads, 0, stream(param.device().index)>>>(
          ptr<T>(param), ptr<const G>(grad), ptr_or_null<T>(buf), n, s);
    });
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

inline void adam_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                      const Tensor& vmax, const AdamStepParams& s) {
  const int64_t n = param.numel();
  if (n == 0) return;
  dispatch_floating(param.dtype(), "adam step", [&](auto pt) {
    using T = typename decltype(pt)::type;
    dispatch_floating(grad.dtype(), "adam step", [&](auto gt) {
      using G = typename decltype(gt)::type;
      adam_kernel<T, G><<<blocks_for(n), kThreads, 0, stream(param.device().index)>>>(
          ptr<T>(param), ptr<const G>(grad), ptr<T>(m), ptr<T>(v), ptr_or_null<T>(vmax), n, s);
    });
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

}  // namespace wanwu::cuda
