// CpuBackend: batch norm, layer norm, softmax / log_softmax and the fused cross-entropy (kernels in
// ../norm.hpp, ../softmax.hpp, ../loss.hpp).
#pragma once

#include "../cpu_backend.hpp"
#include "../f32_bridge.hpp"
#include "../loss.hpp"
#include "../norm.hpp"
#include "../softmax.hpp"

namespace wanwu {

WANWU_CPU_METHOD void CpuBackend::batch_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& invstd,
                                                     const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                     double eps, Activation act, const Tensor& residual,
                                                     const BatchNormRunning& running) {
  WANWU_CHECK_DTYPE(!residual.defined() || (residual.dtype() == x.dtype() && residual.shape() == x.shape() &&
                                            residual.is_contiguous()),
                    "batch_norm: the residual must be a contiguous ", x.dtype(), " tensor of the input's shape ",
                    x.shape(), ", got ", residual.shape(), " ", residual.dtype());
  check_batch_norm_running(running, mean);
  cpu::dispatch_f32_f64(
      y.dtype(), "batch_norm",
      [&] {
        const Tensor yf = cpu::widened_buffer(y);
        batch_norm_forward(yf, mean, invstd, cpu::widen(x), cpu::widen(weight), cpu::widen(bias), eps, act,
                           cpu::widen(residual), running);
        cpu::narrow_into(y, yf);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        const int64_t C = x.size(-1), M = x.numel() / std::max<int64_t>(C, 1);
        const RunningStats<T> run{cpu::ptr_or_null<T>(running.mean), cpu::ptr_or_null<T>(running.var),
                                  running.momentum, cpu::ptr_or_null<int64_t>(running.batches)};
        with_activation(act, [&](auto f) {
          cpu::batch_norm_forward_typed<T, T>(static_cast<T*>(y.data_ptr()), static_cast<T*>(mean.data_ptr()),
                                              static_cast<T*>(invstd.data_ptr()), static_cast<const T*>(x.data_ptr()),
                                              cpu::ptr_or_null<const T>(weight), cpu::ptr_or_null<const T>(bias),
                                              cpu::ptr_or_null<const T>(residual), M, C, eps, f, run);
        });
      });
}

WANWU_CPU_METHOD void CpuBackend::batch_norm_backward(const Tensor& grad_x, const Tensor& grad_w,
                                                      const Tensor& grad_b, const Tensor& grad_y, const Tensor& x,
                                                      const Tensor& weight, const Tensor& save_mean,
                                                      const Tensor& save_invstd, const Tensor& relu_out,
                                                      const Tensor& masked_grad) {
  check_batch_norm_masks(x, relu_out, masked_grad);
  cpu::dispatch_f32_f64(
      x.dtype(), "batch_norm backward",
      [&] {
        const Tensor gx = cpu::widened_buffer(grad_x), gw = cpu::widened_buffer(grad_w),
                     gb = cpu::widened_buffer(grad_b), gm = cpu::widened_buffer(masked_grad);
        batch_norm_backward(gx, gw, gb, cpu::widen(grad_y), cpu::widen(x), cpu::widen(weight), save_mean,
                            save_invstd, cpu::widen(relu_out), gm);
        cpu::narrow_into(grad_x, gx);
        cpu::narrow_into(grad_w, gw);
        cpu::narrow_into(grad_b, gb);
        cpu::narrow_into(masked_grad, gm);  // exact: each value is a gradient value or zero
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        const int64_t C = x.size(-1), M = x.numel() / std::max<int64_t>(C, 1);
        cpu::batch_norm_backward_typed<T, T>(
            cpu::ptr_or_null<T>(grad_x), cpu::ptr_or_null<T>(grad_w), cpu::ptr_or_null<T>(grad_b),
            static_cast<const T*>(grad_y.data_ptr()), static_cast<const T*>(x.data_ptr()),
            cpu::ptr_or_null<const T>(weight), static_cast<const T*>(save_mean.data_ptr()),
            static_cast<const T*>(save_invstd.data_ptr()), cpu::ptr_or_null<const T>(relu_out),
            cpu::ptr_or_null<T>(masked_grad), M, C);
      });
}

WANWU_CPU_METHOD void CpuBackend::batch_norm_act_grad(const Tensor& grad_h, const Tensor& grad_y, const Tensor& x,
                                                      const Tensor& scale, const Tensor& shift, BinaryOp bwd) {
  cpu::dispatch_f32_f64(
      x.dtype(), "batch_norm_act backward",
      [&] {
        const Tensor gh = cpu::widened_buffer(grad_h);
        batch_norm_act_grad(gh, cpu::widen(grad_y), cpu::widen(x), scale, shift, bwd);
        cpu::narrow_into(grad_h, gh);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        const int64_t C = x.size(-1), M = x.numel() / std::max<int64_t>(C, 1);
        cpu::batch_norm_act_grad_typed<T>(static_cast<T*>(grad_h.data_ptr()), static_cast<const T*>(grad_y.data_ptr()),
                                          static_cast<const T*>(x.data_ptr()), static_cast<const T*>(scale.data_ptr()),
                                          static_cast<const T*>(shift.data_ptr()), M, C, bwd);
      });
}

WANWU_CPU_METHOD void CpuBackend::batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& scale,
                                                   const Tensor& shift, Activation act, const Tensor& residual) {
  cpu::dispatch_f32_f64(
      x.dtype(), "batch_norm (eval)",
      [&] {  // 16-bit x: computed in f32 (scale and shift are f32) and rounded once, on the way out
        const Tensor yf = cpu::widened_buffer(y);
        batch_norm_apply(yf, cpu::widen(x), scale, shift, act, cpu::widen(residual));
        cpu::narrow_into(y, yf);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        const int64_t C = x.size(-1), M = x.numel() / std::max<int64_t>(C, 1);
        with_activation(act, [&](auto f) {
          cpu::batch_norm_apply_typed<T>(static_cast<T*>(y.data_ptr()), static_cast<const T*>(x.data_ptr()),
                                         static_cast<const T*>(scale.data_ptr()),
                                         static_cast<const T*>(shift.data_ptr()), cpu::ptr_or_null<const T>(residual),
                                         M, C, f);
        });
      });
}

WANWU_CPU_METHOD void CpuBackend::layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd,
                                                     const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                     double eps) {
  cpu::dispatch_f32_f64(
      y.dtype(), "layer_norm",
      [&] {
        const Tensor yf = cpu::widened_buffer(y);
        layer_norm_forward(yf, mean, rstd, cpu::widen(x), cpu::widen(weight), cpu::widen(bias), eps);
        cpu::narrow_into(y, yf);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::layer_norm_forward_typed<T, T>(static_cast<T*>(y.data_ptr()), static_cast<T*>(mean.data_ptr()),
                                            static_cast<T*>(rstd.data_ptr()), static_cast<const T*>(x.data_ptr()),
                                            cpu::ptr_or_null<const T>(weight), cpu::ptr_or_null<const T>(bias),
                                            x.size(0), x.size(1), eps);
      });
}

WANWU_CPU_METHOD void CpuBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_w,
                                                      const Tensor& grad_b, const Tensor& grad_y, const Tensor& x,
                                                      const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  cpu::dispatch_f32_f64(
      x.dtype(), "layer_norm backward",
      [&] {
        const Tensor gx = cpu::widened_buffer(grad_x), gw = cpu::widened_buffer(grad_w),
                     gb = cpu::widened_buffer(grad_b);
        layer_norm_backward(gx, gw, gb, cpu::widen(grad_y), cpu::widen(x), cpu::widen(weight), mean, rstd);
        cpu::narrow_into(grad_x, gx);
        cpu::narrow_into(grad_w, gw);
        cpu::narrow_into(grad_b, gb);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::layer_norm_backward_typed<T, T>(
            cpu::ptr_or_null<T>(grad_x), cpu::ptr_or_null<T>(grad_w), cpu::ptr_or_null<T>(grad_b),
            static_cast<const T*>(grad_y.data_ptr()), static_cast<const T*>(x.data_ptr()),
            cpu::ptr_or_null<const T>(weight), static_cast<const T*>(mean.data_ptr()),
            static_cast<const T*>(rstd.data_ptr()), x.size(0), x.size(1));
      });
}

WANWU_CPU_METHOD void CpuBackend::softmax_forward(const Tensor& out, const Tensor& x, int dim, SoftmaxKind kind) {
  cpu::dispatch_f32_f64(
      out.dtype(), "softmax",
      [&] {
        const Tensor o = cpu::widened_buffer(out);
        softmax_forward(o, cpu::widen(x), dim, kind);
        cpu::narrow_into(out, o);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::softmax_forward_typed<T>(static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()),
                                      cpu::SoftmaxGeom(x.shape(), dim), kind);
      });
}

WANWU_CPU_METHOD void CpuBackend::softmax_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& out,
                                                   int dim, SoftmaxKind kind) {
  cpu::dispatch_f32_f64(
      grad_x.dtype(), "softmax backward",
      [&] {
        const Tensor gx = cpu::widened_buffer(grad_x);
        softmax_backward(gx, cpu::widen(grad_out), cpu::widen(out), dim, kind);
        cpu::narrow_into(grad_x, gx);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::softmax_backward_typed<T>(static_cast<T*>(grad_x.data_ptr()), static_cast<const T*>(grad_out.data_ptr()),
                                       static_cast<const T*>(out.data_ptr()), cpu::SoftmaxGeom(out.shape(), dim), kind);
      });
}

namespace detail_cpu_ce {
inline cpu::CrossEntropyRows rows(const Tensor& logits, const Tensor& target, const CrossEntropyParams& p) {
  cpu::CrossEntropyRows r;
  r.N = logits.size(0);
  r.C = logits.size(1);
  r.target = static_cast<const int64_t*>(target.data_ptr());
  r.p = p;
  return r;
}
}  // namespace detail_cpu_ce

// Checks the targets before the rows' threads start (they cannot throw), in the call.
WANWU_CPU_METHOD void CpuBackend::cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                                        const Tensor& target, const Tensor& weight,
                                                        const CrossEntropyParams& p) {
  const int64_t C = logits.size(1);
  const int64_t* t = static_cast<const int64_t*>(target.data_ptr());
  for (int64_t i = 0; i < target.numel(); ++i)
    WANWU_CHECK_INDEX(t[i] == p.ignore_index || (t[i] >= 0 && t[i] < C),
                      bad_class_target_message("cross_entropy", t[i], C, p.ignore_index));
  cpu::dispatch_f32_f64(
      logits.dtype(), "cross_entropy",
      [&] {
        const Tensor l = cpu::widened_buffer(loss);
        cross_entropy_forward(l, lse, cpu::widen(logits), target, cpu::widen(weight), p);
        cpu::narrow_into(loss, l);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::cross_entropy_forward_typed<T, T>(static_cast<T*>(loss.data_ptr()), static_cast<T*>(lse.data_ptr()),
                                               static_cast<const T*>(logits.data_ptr()), cpu::ptr_or_null<const T>(weight),
                                               detail_cpu_ce::rows(logits, target, p));
      });
}

WANWU_CPU_METHOD void CpuBackend::cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                                         const Tensor& logits, const Tensor& lse, const Tensor& target,
                                                         const Tensor& weight, const CrossEntropyParams& p) {
  cpu::dispatch_f32_f64(
      logits.dtype(), "cross_entropy backward",
      [&] {
        const Tensor gx = cpu::widened_buffer(grad_logits);
        cross_entropy_backward(gx, cpu::widen(grad_loss), cpu::widen(logits), lse, target, cpu::widen(weight), p);
        cpu::narrow_into(grad_logits, gx);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::cross_entropy_backward_typed<T, T>(
            static_cast<T*>(grad_logits.data_ptr()), static_cast<const T*>(grad_loss.data_ptr()),
            static_cast<const T*>(logits.data_ptr()), static_cast<const T*>(lse.data_ptr()),
            cpu::ptr_or_null<const T>(weight), detail_cpu_ce::rows(logits, target, p));
      });
}

}  // namespace wanwu
