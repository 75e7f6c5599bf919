// Bilinear resize of NHWC tensors to a given (H, W), as torch.nn.functional.interpolate with
// mode="bilinear" (align_corners true or false, no antialias). Used to resize ViT position
// embeddings to another image size.
#pragma once

#include "conv.hpp"
#include "options.hpp"

namespace wanwu {

inline Tensor interpolate_bilinear(const Tensor& x, Pair2 size, AlignCorners align = AlignCorners::no) {
  WANWU_CHECK_SHAPE(x.dim() == 4, "interpolate: expected a 4-D NHWC input [N, H, W, C], got ", x.shape());
  WANWU_CHECK_DTYPE(x.is_floating_point(), "interpolate: dtype ", x.dtype(), " is not supported (floating types only)");
  WANWU_CHECK_VALUE(size.h >= 1 && size.w >= 1, "interpolate: output size must be positive, got (", size.h, ", ",
                    size.w, ")");
  WANWU_CHECK_SHAPE(x.size(1) >= 1 && x.size(2) >= 1, "interpolate: empty spatial input ", x.shape());
  Tensor out = empty_tensor(Shape{x.size(0), size.h, size.w, x.size(3)}, x.dtype(), x.device());
  backend_for(x.device()).interpolate_bilinear_forward(out, detail::contiguous_no_grad(x), align);
  if (autograd::any_requires_grad({x})) {
    const Shape xs = x.shape();
    autograd::record("interpolate_bilinear", {x}, {out}, [xs, align](const Grads& g) {
      Tensor gx = empty_tensor(xs, g[0].dtype(), g[0].device());
      backend_for(gx.device()).interpolate_bilinear_backward(gx, detail::contiguous_no_grad(g[0]), align);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace wanwu
