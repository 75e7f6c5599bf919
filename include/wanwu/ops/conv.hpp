// conv2d over NHWC activations with OHWI weights (DESIGN D4): x [N,H,W,C], weight
// [O,kH,kW,C/groups], bias [O]. Stride, padding (explicit, "same", "valid"), dilation and groups
// (depthwise included) follow torch.nn.functional.conv2d; "same" with an even effective kernel
// pads one more at the bottom/right, as PyTorch does. The backward calls the backend's
// backward-input and backward-weight kernels; the bias gradient is a sum over N, H, W.
#pragma once

#include "../autograd/node.hpp"
#include "../core/autocast_state.hpp"
#include "copy.hpp"
#include "options.hpp"
#include "reduce.hpp"

namespace wanwu {

namespace detail {
inline Tensor contiguous_no_grad(const Tensor& t) {
  if (!t.defined()) return t;
  return t.is_contiguous() ? t.detach() : copy_as(t, t.dtype());
}

inline int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad_total, int64_t dil) {
  const int64_t num = in + pad_total - dil * (k - 1) - 1;
  return (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;  // floor division
}
}  // namespace detail

// y = conv2d(x, weight) + bias, NHWC.
inline Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in = Tensor(), Pair2 stride = 1,
                     Padding2d padding = 0, Pair2 dilation = 1, int64_t groups = 1) {
  const Tensor x = amp::lower_precision(x_in), weight = amp::lower_precision(weight_in);
  const Tensor bias = amp::lower_precision(bias_in);
  WANWU_CHECK_SHAPE(x.dim() == 4, "conv2d: expected a 4-D NHWC input [N, H, W, C], got shape ", x.shape());
  WANWU_CHECK_SHAPE(weight.dim() == 4, "conv2d: expected a 4-D weight [O, kH, kW, C/groups], got shape ",
                    weight.shape());
  WANWU_CHECK_VALUE(groups >= 1, "conv2d: groups must be positive, got ", groups);
  const int64_t C = x.size(3), O = weight.size(0), KH = weight.size(1), KW = weight.size(2);
  WANWU_CHECK_SHAPE(C % groups == 0 && O % groups == 0, "conv2d: groups (", groups, ") must divide the input channels (",
                    C, ") and the output channels (", O, "); input ", x.shape(), ", weight ", weight.shape());
  WANWU_CHECK_SHAPE(weight.size(3) == C / groups, "conv2d: weight ", weight.shape(), " expects ",
                    weight.size(3) * groups, " input channels (", weight.size(3), " per group, ", groups,
                    " groups), but the input ", x.shape(), " has ", C);
  WANWU_CHECK_DTYPE(x.dtype() == weight.dtype() && x.is_floating_point(), "conv2d: input dtype ", x.dtype(),
                    " and weight dtype ", weight.dtype(), " must be the same floating type");
  detail::check_operand_devices("conv2d", x, {{"weight", weight}, {"bias", bias}});
  if (bias.defined()) {
    WANWU_CHECK_SHAPE(bias.dim() == 1 && bias.size(0) == O, "conv2d: bias of shape ", bias.shape(),
                      " does not match ", O, " output channels");
    WANWU_CHECK_DTYPE(bias.dtype() == x.dtype(), "conv2d: bias dtype ", bias.dtype(), " differs from input dtype ",
                      x.dtype());
  }
  WANWU_CHECK_VALUE(stride.h >= 1 && stride.w >= 1 && dilation.h >= 1 && dilation.w >= 1,
                    "conv2d: stride and dilation must be positive, got stride (", stride.h, ", ", stride.w,
                    ") and dilation (", dilation.h, ", ", dilation.w, ")");
  Conv2dParams p;
  p.stride_h = stride.h;
  p.stride_w = stride.w;
  p.dilation_h = dilation.h;
  p.dilation_w = dilation.w;
  p.groups = groups;
  if (padding.kind == Padding2d::Kind::same) {
    WANWU_CHECK_VALUE(stride.h == 1 && stride.w == 1, "conv2d: padding=\"same\" needs stride 1, got (", stride.h,
                      ", ", stride.w, ")");
    const int64_t th = dilation.h * (KH - 1), tw = dilation.w * (KW - 1);
    p.pad_top = th / 2;
    p.pad_bottom = th - th / 2;
    p.pad_left = tw / 2;
    p.pad_right = tw - tw / 2;
  } else if (padding.kind == Padding2d::Kind::per_side) {
    WANWU_CHECK_VALUE(padding.top >= 0 && padding.bottom >= 0 && padding.left >= 0 && padding.right >= 0,
                      "conv2d: negative padding (", padding.top, ", ", padding.bottom, ", ", padding.left, ", ",
                      padding.right, ")");
    p.pad_top = padding.top;
    p.pad_bottom = padding.bottom;
    p.pad_left = padding.left;
    p.pad_right = padding.right;
  } else if (padding.kind == Padding2d::Kind::explicit_pad) {
    WANWU_CHECK_VALUE(padding.pad.h >= 0 && padding.pad.w >= 0, "conv2d: negative padding (", padding.pad.h, ", ",
                      padding.pad.w, ")");
    p.pad_top = p.pad_bottom = padding.pad.h;
    p.pad_left = p.pad_right = padding.pad.w;
  }
  const int64_t Ho = detail::conv_out_size(x.size(1), KH, p.stride_h, p.pad_top + p.pad_bottom, p.dilation_h);
  const int64_t Wo = detail::conv_out_size(x.size(2), KW, p.stride_w, p.pad_left + p.pad_right, p.dilation_w);
  WANWU_CHECK_SHAPE(Ho >= 1 && Wo >= 1, "conv2d: the (padded) input ", x.shape(), " is smaller than the kernel ",
                    weight.shape(), " (output would be ", Ho, "x", Wo, ")");
  const Tensor xc = detail::contiguous_no_grad(x), wc = detail::contiguous_no_grad(weight);
  const Tensor bc = detail::contiguous_no_grad(bias);
  Tensor out = empty_tensor(Shape{x.size(0), Ho, Wo, O}, x.dtype(), x.device());
  backend_for(x.device()).conv2d_forward(out, xc, wc, bc, p);
  if (autograd::any_requires_grad({x, weight, bias})) {
    const SavedTensor sx = weight.requires_grad() ? SavedTensor(xc) : SavedTensor();
    const SavedTensor sw = x.requires_grad() ? SavedTensor(wc) : SavedTensor();
    const Shape xs = x.shape(), ws = weight.shape();
    const DType dt = x.dtype();
    autograd::record("conv2d", {x, weight, bias}, {out}, [p, sx, sw, xs, ws, dt](const Grads& g) {
      std::vector<Tensor> r(3);
      const Tensor gy = detail::contiguous_no_grad(g[0]);
      Backend& be = backend_for(gy.device());
      if (g.needs_input_grad(0)) {
        r[0] = empty_tensor(xs, dt, gy.device());
        be.conv2d_backward_input(r[0], gy, sw.get(), p);
      }
      if (g.needs_input_grad(1)) {
        r[1] = empty_tensor(ws, dt, gy.device());
        be.conv2d_backward_weight(r[1], gy, sx.get(), p);
      }
      if (g.needs_input_grad(2)) r[2] = sum(gy, {0, 1, 2});
      return r;
    });
  }
  return out;
}

}  // namespace wanwu
