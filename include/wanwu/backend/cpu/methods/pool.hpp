// CpuBackend: max/avg/adaptive pooling and bilinear resize (kernels in ../pool.hpp, ../resize.hpp).
#pragma once

#include "../cpu_backend.hpp"
#include "../f32_bridge.hpp"
#include "../pool.hpp"
#include "../resize.hpp"

namespace wanwu {

WANWU_CPU_METHOD void CpuBackend::max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x,
                                                     const Pool2dParams& p) {
  cpu::dispatch_f32_f64(
      out.dtype(), "max_pool2d",
      [&] {
        const Tensor o = cpu::widened_buffer(out);
        max_pool2d_forward(o, indices, cpu::widen(x), p);
        cpu::narrow_into(out, o);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::max_pool_forward<T>(static_cast<T*>(out.data_ptr()), static_cast<int64_t*>(indices.data_ptr()),
                                 static_cast<const T*>(x.data_ptr()), cpu::PoolGeom(x.shape(), out.shape()), p);
      });
}

// The CPU scatters (its threads own disjoint channel blocks, so no two add into one element) and
// does not need the window.
WANWU_CPU_METHOD void CpuBackend::max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                                      const Tensor& indices, const Pool2dParams& p) {
  cpu::dispatch_f32_f64(
      grad_x.dtype(), "max_pool2d backward",
      [&] {
        const Tensor gx = cpu::widened_buffer(grad_x);
        max_pool2d_backward(gx, cpu::widen(grad_out), indices, p);
        cpu::narrow_into(grad_x, gx);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::max_pool_backward<T>(static_cast<T*>(grad_x.data_ptr()), static_cast<const T*>(grad_out.data_ptr()),
                                  static_cast<const int64_t*>(indices.data_ptr()),
                                  cpu::PoolGeom(grad_x.shape(), grad_out.shape()));
      });
}

WANWU_CPU_METHOD void CpuBackend::avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p) {
  cpu::dispatch_f32_f64(
      out.dtype(), "avg_pool2d",
      [&] {
        const Tensor o = cpu::widened_buffer(out);
        avg_pool2d_forward(o, cpu::widen(x), p);
        cpu::narrow_into(out, o);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::avg_pool_forward<T>(static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()),
                                 cpu::PoolGeom(x.shape(), out.shape()), p);
      });
}

WANWU_CPU_METHOD void CpuBackend::avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                                      const Pool2dParams& p) {
  cpu::dispatch_f32_f64(
      grad_x.dtype(), "avg_pool2d backward",
      [&] {
        const Tensor gx = cpu::widened_buffer(grad_x);
        avg_pool2d_backward(gx, cpu::widen(grad_out), p);
        cpu::narrow_into(grad_x, gx);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::avg_pool_backward<T>(static_cast<T*>(grad_x.data_ptr()), static_cast<const T*>(grad_out.data_ptr()),
                                  cpu::PoolGeom(grad_x.shape(), grad_out.shape()), p);
      });
}

WANWU_CPU_METHOD void CpuBackend::adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x) {
  cpu::dispatch_f32_f64(
      out.dtype(), "adaptive_avg_pool2d",
      [&] {
        const Tensor o = cpu::widened_buffer(out);
        adaptive_avg_pool2d_forward(o, cpu::widen(x));
        cpu::narrow_into(out, o);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::adaptive_avg_forward<T>(static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()),
                                     cpu::PoolGeom(x.shape(), out.shape()));
      });
}

WANWU_CPU_METHOD void CpuBackend::adaptive_avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out) {
  cpu::dispatch_f32_f64(
      grad_x.dtype(), "adaptive_avg_pool2d backward",
      [&] {
        const Tensor gx = cpu::widened_buffer(grad_x);
        adaptive_avg_pool2d_backward(gx, cpu::widen(grad_out));
        cpu::narrow_into(grad_x, gx);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::adaptive_avg_backward<T>(static_cast<T*>(grad_x.data_ptr()), static_cast<const T*>(grad_out.data_ptr()),
                                      cpu::PoolGeom(grad_x.shape(), grad_out.shape()));
      });
}

WANWU_CPU_METHOD void CpuBackend::interpolate_bilinear_forward(const Tensor& out, const Tensor& x,
                                                               AlignCorners align) {
  cpu::dispatch_f32_f64(
      out.dtype(), "interpolate",
      [&] {
        const Tensor o = cpu::widened_buffer(out);
        interpolate_bilinear_forward(o, cpu::widen(x), align);
        cpu::narrow_into(out, o);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::bilinear_forward_typed<T>(static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()),
                                       x.shape(), out.shape(), align);
      });
}

WANWU_CPU_METHOD void CpuBackend::interpolate_bilinear_backward(const Tensor& grad_x, const Tensor& grad_out,
                                                                AlignCorners align) {
  cpu::dispatch_f32_f64(
      grad_x.dtype(), "interpolate backward",
      [&] {
        const Tensor gx = cpu::widened_buffer(grad_x);
        interpolate_bilinear_backward(gx, cpu::widen(grad_out), align);
        cpu::narrow_into(grad_x, gx);
      },
      [&](auto tag) {
        using T = typename decltype(tag)::type;
        cpu::bilinear_backward_typed<T>(static_cast<T*>(grad_x.data_ptr()), static_cast<const T*>(grad_out.data_ptr()),
                                        grad_x.shape(), grad_out.shape(), align);
      });
}

}  // namespace wanwu
