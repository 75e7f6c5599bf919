// Dropout and stochastic depth (drop_path). Masks come from the Philox generator (DESIGN D8), so
// the same seed gives the same mask on the CPU and on CUDA. In Mode::eval both are the identity.
#pragma once

#include "elementwise.hpp"
#include "factory.hpp"
#include "options.hpp"

namespace wanwu {

// Zeroes each element with probability p and scales the rest by 1 / (1 - p).
inline Tensor dropout(const Tensor& x, double p, Mode mode, Generator* gen = nullptr) {
  WANWU_CHECK_VALUE(p >= 0.0 && p <= 1.0, "dropout: probability has to be between 0 and 1, got ", p);
  if (mode == Mode::eval || p == 0.0) return x;
  WANWU_CHECK_DTYPE(x.is_floating_point(), "dropout: dtype ", x.dtype(), " is not supported (floating types only)");
  if (p == 1.0) return x * 0.0;
  const Tensor mask = bernoulli(x.shape(), 1.0 - p, options_of(x), gen) * (1.0 / (1.0 - p));
  return x * mask;
}

// Stochastic depth, per sample (torchvision's stochastic_depth, mode "row"): drops the whole
// residual branch of a sample with probability p and scales survivors by 1 / (1 - p).
inline Tensor drop_path(const Tensor& x, double p, Mode mode, Generator* gen = nullptr) {
  WANWU_CHECK_VALUE(p >= 0.0 && p <= 1.0, "drop_path: drop probability has to be between 0 and 1, got ", p);
  if (mode == Mode::eval || p == 0.0) return x;
  WANWU_CHECK_SHAPE(x.dim() >= 1, "drop_path: expected a batched input, got a 0-dim tensor");
  Shape s = Shape::filled(x.dim(), 1);
  s[0] = x.size(0);
  Tensor mask = bernoulli(s, 1.0 - p, options_of(x), gen);
  if (p < 1.0) mask = mask * (1.0 / (1.0 - p));
  return x * mask;
}

}  // namespace wanwu
