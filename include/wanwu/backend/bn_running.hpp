// A training batch norm's running-statistics update, per channel, shared by the CPU kernel and the
// CUDA statistics kernel (kernels/batch_norm.cuh) so both devices round the same way (DESIGN §6).
// It runs where the batch mean and variance are worked out, in f64 before either is rounded:
// written as tensor ops it was a multiply and a scaled add per statistic, each with its own
// launches on a GPU, and it rounded four times instead of once.
#pragma once

#include <cstdint>

#include "../core/macros.hpp"

namespace wanwu {

// running = (1 - momentum) * running + momentum * batch statistic (PyTorch's order of terms); the
// variance that goes in is unbiased, var * M / (M - 1) over M values per channel. A null pointer
// is a statistic not tracked. `batches` (BatchNorm's num_batches_tracked, or null) counts the
// call, once, at channel 0: as a tensor op it was a fill and an add, two launches per batch norm.
template <class S>
struct RunningStats {
  S* mean = nullptr;
  S* var = nullptr;
  double momentum = 0.1;
  int64_t* batches = nullptr;
  WANWU_HD void update(int64_t c, double batch_mean, double biased_var, int64_t M) const {
    if (batches && c == 0) *batches += 1;
    if (mean) mean[c] = static_cast<S>(momentum * batch_mean + (1.0 - momentum) * static_cast<double>(mean[c]));
    if (var) {
      const double unbiased = M > 1 ? biased_var * static_cast<double>(M) / static_cast<double>(M - 1) : biased_var;
      var[c] = static_cast<S>(momentum * unbiased + (1.0 - momentum) * static_cast<double>(var[c]));
    }
  }
};

}  // namespace wanwu
