// CpuBackend: fused SGD and Adam/AdamW steps, the gradient utilities (kernels in ../optim.hpp).
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

WANWU_CPU_METHOD void CpuBackend::scale_multi(const std::vector<Tensor>& ts, double factor,
                                              const Tensor& found_nonfinite, const Tensor& divisor) {
  if (divisor.defined())
    factor = static_cast<float>(1.0 / static_cast<double>(*static_cast<const float*>(divisor.data_ptr())));
  bool bad = false;
  for (const Tensor& t : ts)
    dispatch_floating(t.dtype(), "scale_multi", [&](auto tag) {
      using T = typename decltype(tag)::type;
      bad = cpu::scale_typed<T>(static_cast<T*>(t.data_ptr()), t.numel(), factor) || bad;
    });
  if (bad && found_nonfinite.defined()) *static_cast<float*>(found_nonfinite.data_ptr()) = 1.0f;
}

WANWU_CPU_METHOD void CpuBackend::norm_multi(const std::vector<Tensor>& ts, const NormParams& p, const Tensor& out) {
  std::vector<double> partial;
  for (const Tensor& t : ts)
    dispatch_floating(t.dtype(), "norm_multi", [&](auto tag) {
      using T = typename decltype(tag)::type;
      cpu::norm_partials_typed<T>(static_cast<const T*>(t.data_ptr()), t.numel(), p, partial);
    });
  double total = 0.0;
  for (double v : partial) total = norm_combine(total, v, p);
  *static_cast<double*>(out.data_ptr()) = total;
}

WANWU_CPU_METHOD void CpuBackend::amp_update_scale(const Tensor& scale, const Tensor& growth_tracker,
                                                   const Tensor& found_inf, const AmpScaleParams& p) {
  wanwu::amp_update_scale(*static_cast<float*>(scale.data_ptr()), *static_cast<int32_t*>(growth_tracker.data_ptr()),
                          *static_cast<const float*>(found_inf.data_ptr()), p);
}

}  // namespace wanwu
