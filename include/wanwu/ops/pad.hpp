// Constant padding in torch.nn.functional.pad's convention: `pads` lists (before, after) pairs
// starting from the LAST dimension — for NHWC images {0, 0, left, right, top, bottom} pads W and
// H. Negative amounts crop. The backward is the matching slice of the gradient.
#pragma once

#include <vector>

#include "conv.hpp"

namespace wanwu {

inline Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0) {
  WANWU_CHECK_VALUE(pads.size() % 2 == 0 && static_cast<int>(pads.size() / 2) <= x.dim(), "pad: expected an even "
                    "number of padding values, at most 2 per dimension of the input ", x.shape(), ", got ", pads.size());
  Shape out_shape = x.shape();
  Dims before;  // per dim, the padding before (may be negative)
  before.resize(x.dim(), 0);
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int d = x.dim() - 1 - static_cast<int>(i);
    before[d] = pads[2 * i];
    out_shape[d] = x.shape()[d] + pads[2 * i] + pads[2 * i + 1];
    WANWU_CHECK_SHAPE(out_shape[d] >= 0, "pad: padding ", pads[2 * i], ", ", pads[2 * i + 1], " makes dimension ", d,
                      " of input ", x.shape(), " negative");
  }
  Tensor out = full(out_shape, value, options_of(x));
  // overlap: in out, [max(before, 0), ...); in x, [max(-before, 0), ...)
  Tensor dst = out.detach(), src = x.detach();
  for (int d = 0; d < x.dim(); ++d) {
    const int64_t o0 = std::max<int64_t>(before[d], 0), i0 = std::max<int64_t>(-before[d], 0);
    const int64_t len = std::max<int64_t>(0, std::min(out_shape[d] - o0, x.shape()[d] - i0));
    dst = dst.narrow(d, o0, len);
    src = src.narrow(d, i0, len);
  }
  if (dst.numel() > 0) backend_for(x.device()).copy(dst, src);
  if (x.is_floating_point() && autograd::any_requires_grad({x})) {
    const Shape xs = x.shape();
    autograd::record("pad", {x}, {out}, [xs, before](const Grads& g) {
      Tensor gx = zeros(xs, options_of(g[0]));
      Tensor dst2 = gx, src2 = g[0];
      for (int d = 0; d < gx.dim(); ++d) {
        const int64_t o0 = std::max<int64_t>(before[d], 0), i0 = std::max<int64_t>(-before[d], 0);
        const int64_t len = std::max<int64_t>(0, std::min(src2.size(d) - o0, xs[d] - i0));
        src2 = src2.narrow(d, o0, len);
        dst2 = dst2.narrow(d, i0, len);
      }
      if (dst2.numel() > 0) backend_for(gx.device()).copy(dst2, src2);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace wanwu
