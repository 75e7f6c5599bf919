// CpuBackend: conv2d forward, backward-input, backward-weight (kernels in ../conv.hpp).
#pragma once

#include "../conv.hpp"
#include "../cpu_backend.hpp"
#include "../f32_bridge.hpp"

namespace wanwu {

WANWU_CPU_METHOD void CpuBackend::conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w,
                                                 const Tensor& bias, const Conv2dParams& p) {
  if (cpu::is_16bit_float(out.dtype())) {
    const Tensor o = cpu::widened_buffer(out);
    conv2d_forward(o, cpu::widen(x), cpu::widen(w), cpu::widen(bias), p);
    return cpu::narrow_into(out, o);
  }
  const cpu::ConvGeom g(x.shape(), w.shape(), out.shape(), p);
  dispatch_floating(out.dtype(), "conv2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
      cpu::conv_forward_typed<T>(static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()),
                                 static_cast<const T*>(w.data_ptr()), cpu::ptr_or_null<const T>(bias), g, &w);
  });
}

WANWU_CPU_METHOD void CpuBackend::conv2d_backward_input(const Tensor& grad_x, const Tensor& grad_out,
                                                        const Tensor& w, const Conv2dParams& p) {
  if (cpu::is_16bit_float(grad_x.dtype())) {
    const Tensor gx = cpu::widened_buffer(grad_x);
    conv2d_backward_input(gx, cpu::widen(grad_out), cpu::widen(w), p);
    return cpu::narrow_into(grad_x, gx);
  }
  const cpu::ConvGeom g(grad_x.shape(), w.shape(), grad_out.shape(), p);
  dispatch_floating(grad_x.dtype(), "conv2d backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
      cpu::conv_backward_input_typed<T>(static_cast<T*>(grad_x.data_ptr()), static_cast<const T*>(grad_out.data_ptr()),
                                        static_cast<const T*>(w.data_ptr()), g);
  });
}

WANWU_CPU_METHOD void CpuBackend::conv2d_backward_weight(const Tensor& grad_w, const Tensor& grad_out,
                                                         const Tensor& x, const Conv2dParams& p) {
  if (cpu::is_16bit_float(grad_w.dtype())) {
    const Tensor gw = cpu::widened_buffer(grad_w);
    conv2d_backward_weight(gw, cpu::widen(grad_out), cpu::widen(x), p);
    return cpu::narrow_into(grad_w, gw);
  }
  const cpu::ConvGeom g(x.shape(), grad_w.shape(), grad_out.shape(), p);
  dispatch_floating(grad_w.dtype(), "conv2d backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
      cpu::conv_backward_weight_typed<T>(static_cast<T*>(grad_w.data_ptr()), static_cast<const T*>(grad_out.data_ptr()),
                                         static_cast<const T*>(x.data_ptr()), g);
  });
}

}  // namespace wanwu
