// Pooling over NHWC tensors: max_pool2d (indices kept for the backward, padding, dilation,
// ceil_mode), avg_pool2d (count_include_pad, ceil_mode, divisor_override) and
// adaptive_avg_pool2d (global pooling takes the reduction fast path). Output sizes and window
// rules are PyTorch's; indices are per-channel offsets ih * W + iw into the input, as PyTorch's.
#pragma once

#include "conv.hpp"
#include "options.hpp"
#include "reduce.hpp"

namespace wanwu {

namespace detail {
// PyTorch's pooling_output_shape, with its checks.
inline int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t pad, int64_t dil, CeilMode ceil,
                             const char* op) {
  WANWU_CHECK_VALUE(k >= 1 && s >= 1 && dil >= 1, op, ": kernel size, stride and dilation must be positive, got ", k,
                    ", ", s, ", ", dil);
  WANWU_CHECK_VALUE(pad >= 0 && pad <= ((k - 1) * dil + 1) / 2, op, ": padding ", pad,
                    " must be non-negative and at most half of the effective kernel size ", (k - 1) * dil + 1);
  const int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil == CeilMode::yes ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;  // floor division, as PyTorch
  if (ceil == CeilMode::yes && (out - 1) * s >= in + pad) --out;  // the last window must start inside
  WANWU_CHECK_SHAPE(out >= 1, op, ": input size ", in, " is too small for kernel ", k, " (output size ", out, ")");
  return out;
}

inline void check_pool_input(const Tensor& x, const char* op) {
  WANWU_CHECK_SHAPE(x.dim() == 4, op, ": expected a 4-D NHWC input [N, H, W, C], got shape ", x.shape());
  WANWU_CHECK_DTYPE(x.is_floating_point(), op, ": dtype ", x.dtype(), " is not supported (floating types only)");
}
}  // namespace detail

// Max pooling; also returns the indices of the maxima (i64, per channel: ih * W + iw; -1 where a
// dilated window steps over the whole input and the value is -inf).
inline ValuesIndices max_pool2d_with_indices(const Tensor& x, Pair2 kernel, std::optional<Pair2> stride = std::nullopt,
                                             Pair2 padding = 0, Pair2 dilation = 1, CeilMode ceil = CeilMode::no) {
  detail::check_pool_input(x, "max_pool2d");
  const Pair2 s = stride.value_or(kernel);
  Pool2dParams p;
  p.kernel_h = kernel.h;
  p.kernel_w = kernel.w;
  p.stride_h = s.h;
  p.stride_w = s.w;
  p.pad_h = padding.h;
  p.pad_w = padding.w;
  p.dilation_h = dilation.h;
  p.dilation_w = dilation.w;
  const int64_t Ho = detail::pool_out_size(x.size(1), p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, ceil, "max_pool2d");
  const int64_t Wo = detail::pool_out_size(x.size(2), p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, ceil, "max_pool2d");
  const Shape os{x.size(0), Ho, Wo, x.size(3)};
  Tensor out = empty_tensor(os, x.dtype(), x.device());
  Tensor idx = empty_tensor(os, DType::i64, x.device());
  backend_for(x.device()).max_pool2d_forward(out, idx, detail::contiguous_no_grad(x), p);
  if (autograd::any_requires_grad({x})) {
    const Shape xs = x.shape();
    autograd::record("max_pool2d", {x}, {out}, [xs, p, si = SavedTensor(idx)](const Grads& g) {
      Tensor gx = empty_tensor(xs, g[0].dtype(), g[0].device());
      backend_for(gx.device()).max_pool2d_backward(gx, detail::contiguous_no_grad(g[0]), si.get(), p);
      return std::vector<Tensor>{gx};
    });
  }
  return {out, idx};
}

inline Tensor max_pool2d(const Tensor& x, Pair2 kernel, std::optional<Pair2> stride = std::nullopt, Pair2 padding = 0,
                         Pair2 dilation = 1, CeilMode ceil = CeilMode::no) {
  return max_pool2d_with_indices(x, kernel, stride, padding, dilation, ceil).values;
}

inline Tensor avg_pool2d(const Tensor& x, Pair2 kernel, std::optional<Pair2> stride = std::nullopt, Pair2 padding = 0,
                         CeilMode ceil = CeilMode::no, CountIncludePad count_include_pad = CountIncludePad::yes,
                         int64_t divisor_override = 0) {
  detail::check_pool_input(x, "avg_pool2d");
  WANWU_CHECK_VALUE(divisor_override >= 0, "avg_pool2d: divisor_override must be positive, got ", divisor_override);
  const Pair2 s = stride.value_or(kernel);
  Pool2dParams p;
  p.kernel_h = kernel.h;
  p.kernel_w = kernel.w;
  p.stride_h = s.h;
  p.stride_w = s.w;
  p.pad_h = padding.h;
  p.pad_w = padding.w;
  p.count_include_pad = count_include_pad == CountIncludePad::yes;
  p.divisor_override = divisor_override;
  const int64_t Ho = detail::pool_out_size(x.size(1), p.kernel_h, p.stride_h, p.pad_h, 1, ceil, "avg_pool2d");
  const int64_t Wo = detail::pool_out_size(x.size(2), p.kernel_w, p.stride_w, p.pad_w, 1, ceil, "avg_pool2d");
  Tensor out = empty_tensor(Shape{x.size(0), Ho, Wo, x.size(3)}, x.dtype(), x.device());
  backend_for(x.device()).avg_pool2d_forward(out, detail::contiguous_no_grad(x), p);
  if (autograd::any_requires_grad({x})) {
    const Shape xs = x.shape();
    autograd::record("avg_pool2d", {x}, {out}, [xs, p](const Grads& g) {
      Tensor gx = empty_tensor(xs, g[0].dtype(), g[0].device());
      backend_for(gx.device()).avg_pool2d_backward(gx, detail::contiguous_no_grad(g[0]), p);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

// Average over adaptive windows giving output_size (Ho, Wo); (1, 1) is global average pooling.
inline Tensor adaptive_avg_pool2d(const Tensor& x, Pair2 output_size) {
  detail::check_pool_input(x, "adaptive_avg_pool2d");
  WANWU_CHECK_VALUE(output_size.h >= 1 && output_size.w >= 1, "adaptive_avg_pool2d: output size must be positive, got (",
                    output_size.h, ", ", output_size.w, ")");
  WANWU_CHECK_SHAPE(x.size(1) >= 1 && x.size(2) >= 1, "adaptive_avg_pool2d: empty spatial input ", x.shape());
  if (output_size.h == 1 && output_size.w == 1) return mean(x, {1, 2}, KeepDim::yes);
  Tensor out = empty_tensor(Shape{x.size(0), output_size.h, output_size.w, x.size(3)}, x.dtype(), x.device());
  backend_for(x.device()).adaptive_avg_pool2d_forward(out, detail::contiguous_no_grad(x));
  if (autograd::any_requires_grad({x})) {
    const Shape xs = x.shape();
    autograd::record("adaptive_avg_pool2d", {x}, {out}, [xs](const Grads& g) {
      Tensor gx = empty_tensor(xs, g[0].dtype(), g[0].device());
      backend_for(gx.device()).adaptive_avg_pool2d_backward(gx, detail::contiguous_no_grad(g[0]));
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace wanwu
