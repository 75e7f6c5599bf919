// Gradient clipping, as torch.nn.utils: clip_grad_norm_ scales all gradients together so their
// joint p-norm is at most max_norm and returns the norm before clipping (infinite or NaN norms are
// reported, and optionally rejected); clip_grad_value_ clamps each gradient element.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../ops/reduce.hpp"

namespace wanwu::optim {

enum class ErrorIfNonfinite : uint8_t { no, yes };

// norm_type: any p > 0, or infinity for the max norm.
inline double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                              ErrorIfNonfinite error_if_nonfinite = ErrorIfNonfinite::no) {
  WANWU_CHECK_VALUE(norm_type > 0, "clip_grad_norm_: norm_type must be positive, got ", norm_type);
  NoGradGuard ng;
  std::vector<Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  double total = 0.0;
  if (std::isinf(norm_type)) {
    for (const auto& g : grads) total = std::max(total, amax(abs(g.to(DType::f64)), {}).item<double>());
  } else {
    for (const auto& g : grads) {
      const Tensor a = abs(g.to(DType::f64));
      total += norm_type == 2.0 ? sum(a * a).item<double>() : sum(pow(a, norm_type)).item<double>();
    }
    total = norm_type == 2.0 ? std::sqrt(total) : std::pow(total, 1.0 / norm_type);
  }
  WANWU_CHECK_VALUE(error_if_nonfinite == ErrorIfNonfinite::no || std::isfinite(total),
                    "clip_grad_norm_: the total norm of order ", norm_type, " of the gradients is ", total,
                    "; the parameters' gradients are not finite");
  const double coef = std::min(1.0, max_norm / (total + 1e-6));
  if (coef < 1.0 || std::isnan(coef))
    for (auto& g : grads) {
      Tensor gm = g;
      gm.mul_(coef);
    }
  return total;
}

inline void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  WANWU_CHECK_VALUE(clip_value >= 0, "clip_grad_value_: clip_value must be non-negative, got ", clip_value);
  NoGradGuard ng;
  for (const auto& p : params)
    if (p.grad().defined()) {
      Tensor g = p.grad();
      g.clamp_(-clip_value, clip_value);
    }
}

}  // namespace wanwu::optim
