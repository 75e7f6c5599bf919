// CpuBackend: scaled dot-product attention forward and backward (kernels in ../attention.hpp).
#pragma once

#include "../attention.hpp"
#include "../cpu_backend.hpp"
#include "../f32_bridge.hpp"

namespace wanwu {

WANWU_CPU_METHOD void CpuBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q,
                                                    const Tensor& k, const Tensor& v, const Tensor& mask,
                                                    const AttentionParams& p) {
  cpu::dispatch_f32_f64(
      out.dtype(), "scaled_dot_product_attention",
      [&] {
        const Tensor o = cpu::widened_buffer(out);
        const Tensor m = mask.defined() && mask.dtype() != DType::boolean ? cpu::widen(mask) : mask;
        attention_forward(o, lse, cpu::widen(q), cpu::widen(k), cpu::widen(v), m, p);
        cpu::narrow_into(out, o);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::attention_forward_typed<T, T>(static_cast<T*>(out.data_ptr()), static_cast<T*>(lse.data_ptr()), q, k, v,
                                           mask, p);
      });
}

WANWU_CPU_METHOD void CpuBackend::attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                                                     const Tensor& grad_out, const Tensor& q, const Tensor& k,
                                                     const Tensor& v, const Tensor& out, const Tensor& lse,
                                                     const Tensor& mask, const AttentionParams& p) {
  cpu::dispatch_f32_f64(
      q.dtype(), "scaled_dot_product_attention backward",
      [&] {
        const Tensor gq = cpu::widened_buffer(grad_q), gk = cpu::widened_buffer(grad_k),
                     gv = cpu::widened_buffer(grad_v);
        const Tensor m = mask.defined() && mask.dtype() != DType::boolean ? cpu::widen(mask) : mask;
        attention_backward(gq, gk, gv, cpu::widen(grad_out), cpu::widen(q), cpu::widen(k), cpu::widen(v),
                           cpu::widen(out), lse, m, p);
        cpu::narrow_into(grad_q, gq);
        cpu::narrow_into(grad_k, gk);
        cpu::narrow_into(grad_v, gv);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::attention_backward_typed<T, T>(static_cast<T*>(grad_q.data_ptr()), static_cast<T*>(grad_k.data_ptr()),
                                            static_cast<T*>(grad_v.data_ptr()),
                                            static_cast<const T*>(grad_out.data_ptr()), q, k, v,
                                            static_cast<const T*>(out.data_ptr()),
                                            static_cast<const T*>(lse.data_ptr()), mask, p);
      });
}

}  // namespace wanwu
