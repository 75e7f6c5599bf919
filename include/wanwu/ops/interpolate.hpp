// Resizing NHWC tensors to a given (H, W), as torch.nn.functional.interpolate: mode "bilinear"
// (a backend kernel, since it runs on whole images) and "bicubic" (A = -0.75, borders clamped),
// which only resizes small things such as ViT position embeddings, so it is composed from two
// matrix products with host-built interpolation matrices and gets its backward for free.
// No antialias, as PyTorch's default.
#pragma once

#include <cmath>
#include <vector>

#include "conv.hpp"
#include "linalg.hpp"
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

namespace detail {
// [out, in] matrix whose row o holds the bicubic weights PyTorch's upsample_bicubic2d gives input
// samples for output sample o (source index o * (in-1)/(out-1) with align_corners, else
// (o + 0.5) * in/out - 0.5, not clamped; taps outside [0, in) clamp to the border).
inline std::vector<double> bicubic_matrix(int64_t out, int64_t in, AlignCorners align) {
  constexpr double A = -0.75;
  auto near = [](double t) { return ((A + 2) * t - (A + 3)) * t * t + 1; };     // |t| <= 1
  auto far = [](double t) { return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A; };  // 1 < |t| < 2
  std::vector<double> m(static_cast<size_t>(out * in), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    double src;
    if (align == AlignCorners::yes) src = out > 1 ? static_cast<double>(o) * static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
    else src = (static_cast<double>(o) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5;
    const double f = std::floor(src), t = src - f;
    const double w[4] = {far(t + 1), near(t), near(1 - t), far(2 - t)};
    for (int j = 0; j < 4; ++j) {
      const int64_t idx = std::clamp<int64_t>(static_cast<int64_t>(f) - 1 + j, 0, in - 1);
      m[static_cast<size_t>(o * in + idx)] += w[j];
    }
  }
  return m;
}
}  // namespace detail

inline Tensor interpolate_bicubic(const Tensor& x, Pair2 size, AlignCorners align = AlignCorners::no) {
  WANWU_CHECK_SHAPE(x.dim() == 4, "interpolate_bicubic: expected a 4-D NHWC input [N, H, W, C], got ", x.shape());
  WANWU_CHECK_DTYPE(x.is_floating_point(), "interpolate_bicubic: dtype ", x.dtype(),
                    " is not supported (floating types only)");
  WANWU_CHECK_VALUE(size.h >= 1 && size.w >= 1, "interpolate_bicubic: output size must be positive, got (", size.h,
                    ", ", size.w, ")");
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  WANWU_CHECK_SHAPE(H >= 1 && W >= 1, "interpolate_bicubic: empty spatial input ", x.shape());
  auto matrix = [&](int64_t out, int64_t in) {
    const auto m = detail::bicubic_matrix(out, in, align);
    return from_vector(m, Shape{out, in}, TensorOptions(x.dtype()).device(x.device()));
  };
  // rows: [oh, H] @ [N, H, W*C]; then columns: [ow, W] @ [N, W, oh*C]
  Tensor h = matmul(matrix(size.h, H), x.reshape({N, H, W * C})).reshape({N, size.h, W, C});
  h = h.transpose(1, 2).contiguous().reshape({N, W, size.h * C});
  h = matmul(matrix(size.w, W), h).reshape({N, size.w, size.h, C});
  return h.transpose(1, 2).contiguous();
}

}  // namespace wanwu
