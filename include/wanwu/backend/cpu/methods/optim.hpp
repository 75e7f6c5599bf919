// CpuBackend: fused SGD and Adam/AdamW steps (kernels in ../optim.hpp).
#pragma once

#include "../cpu_backend.hpp"
#include "../f32_bridge.hpp"
#include "../optim.hpp"

namespace wanwu {

WANWU_CPU_METHOD void CpuBackend::sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                                           const SgdStepParams& s) {
  dispatch_floating(param.dtype(), "sgd step", [&](auto pt) {
    using T = typename decltype(pt)::type;
    dispatch_floating(grad.dtype(), "sgd step", [&](auto gt) {
      using G = typename decltype(gt)::type;
      cpu::sgd_step_typed<T, G>(static_cast<T*>(param.data_ptr()), static_cast<const G*>(grad.data_ptr()),
                                cpu::ptr_or_null<T>(momentum_buffer), param.numel(), s);
    });
  });
}

WANWU_CPU_METHOD void CpuBackend::adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                                            const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq,
                                            const AdamStepParams& s) {
  dispatch_floating(param.dtype(), "adam step", [&](auto pt) {
    using T = typename decltype(pt)::type;
    dispatch_floating(grad.dtype(), "adam step", [&](auto gt) {
      using G = typename decltype(gt)::type;
      cpu::adam_step_typed<T, G>(static_cast<T*>(param.data_ptr()), static_cast<const G*>(grad.data_ptr()),
                                 static_cast<T*>(exp_avg.data_ptr()), static_cast<T*>(exp_avg_sq.data_ptr()),
                                 cpu::ptr_or_null<T>(max_exp_avg_sq), param.numel(), s);
    });
  });
}

}  // namespace wanwu
