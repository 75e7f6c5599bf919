// Geometry of a 2-D NHWC convolution: sizes, groups, padding, and the input row/column a kernel
// tap reads for an output position. Shared by the GEMM and the depthwise kernels.
#pragma once

#include "../backend.hpp"

namespace wanwu::cpu {

struct ConvGeom {
  int64_t N, H, W, C, O, KH, KW, Ho, Wo, G, Cg, Og, K;
  Conv2dParams p;
  ConvGeom(const Shape& x, const Shape& w, const Shape& out, const Conv2dParams& prm)
      : N(x[0]), H(x[1]), W(x[2]), C(x[3]), O(w[0]), KH(w[1]), KW(w[2]), Ho(out[1]), Wo(out[2]), G(prm.groups),
        Cg(x[3] / prm.groups), Og(w[0] / prm.groups), K(w[1] * w[2] * (x[3] / prm.groups)), p(prm) {}
  bool pointwise() const {
    return KH == 1 && KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 && p.pad_left == 0 &&
           p.pad_bottom == 0 && p.pad_right == 0 && G == 1;
  }
  bool depthwise() const { return G == C && G > 1 && Cg == 1; }
  int64_t in_row(int64_t oh, int64_t kh) const { return oh * p.stride_h - p.pad_top + kh * p.dilation_h; }
  int64_t in_col(int64_t ow, int64_t kw) const { return ow * p.stride_w - p.pad_left + kw * p.dilation_w; }
};

}  // namespace wanwu::cpu
