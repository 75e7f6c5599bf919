// Gradient clipping, as torch.nn.utils: clip_grad_norm_ scales all gradients together so their
// joint p-norm is at most max_norm and returns the norm before clipping (infinite or NaN norms are
// reported, and optionally rejected); clip_grad_value_ clamps each gradient element. The norm and
// the scaling are whole-model passes (foreach.hpp): one wait for the GPU per call, not one per
// parameter.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../ops/reduce.hpp"
#include "foreach.hpp"

namespace wanwu::optim {

enum class ErrorIfNonfinite : uint8_t { no, yes };

// norm_type: any p > 0, or infinity for the max norm.
inline double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                              ErrorIfNonfinite error_if_nonfinite = ErrorIfNonfinite::no) {
  WANWU_CHECK_VALUE(norm_type > 0, "clip_grad_norm_: norm_type must be positive, got ", norm_type);
  std::vector<Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  const double total = total_norm(grads, norm_type);
  WANWU_CHECK_VALUE(error_if_nonfinite == ErrorIfNonfinite::no || std::isfinite(total),
                    "clip_grad_norm_: the total norm of order ", norm_type, " of the gradients is ", total,
                    "; the parameters' gradients are not finite");
  // torch multiplies by clamp(max_norm / (total + 1e-6), max=1), which keeps a NaN (std::min
  // would not); a factor of 1 changes nothing
  const double raw = max_norm / (total + 1e-6);
  const double coef = std::isnan(raw) ? raw : std::min(1.0, raw);
  if (coef < 1.0 || std::isnan(coef)) scale_all_(grads, coef);
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
