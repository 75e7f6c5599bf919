// Gradient accumulation over K micro-batches: backward each micro-batch with its loss scaled by
// 1/K, step the optimizer (and the schedule) once per K. The last group of an epoch may be
// shorter; its losses are scaled by 1/(its size), so every optimizer step sees the mean gradient
// of the samples it covers, exactly as one large batch would (for models without batch norm).
// With a GradScaler the real step is scaler.step(); unscale_ happens once per real step.
//
//   GradAccumulation acc(K, batches_per_epoch);
//   for (int64_t i = 0; i < batches_per_epoch; ++i) {
//     Tensor loss = criterion(model(x_i), y_i) * acc.loss_scale(i);
//     scaler.scale(loss).backward();
//     if (acc.is_step(i)) { scaler.step(opt); scaler.update(); opt.zero_grad(); sched.step(); }
//   }
#pragma once

#include <cstdint>

#include "../core/error.hpp"

namespace wanwu::optim {

class GradAccumulation {
 public:
  GradAccumulation(int64_t steps, int64_t batches_per_epoch) : k_(steps), n_(batches_per_epoch) {
    WANWU_CHECK_VALUE(steps >= 1, "GradAccumulation: accumulation steps must be at least 1, got ", steps);
    WANWU_CHECK_VALUE(batches_per_epoch >= 1, "GradAccumulation: an epoch needs at least one batch, got ",
                      batches_per_epoch);
  }
  int64_t steps() const { return k_; }
  // Micro-batches in the group that contains micro-batch i (0-based within the epoch).
  int64_t group_size(int64_t i) const {
    check(i);
    const int64_t start = i / k_ * k_;
    return std::min(k_, n_ - start);
  }
  double loss_scale(int64_t i) const { return 1.0 / static_cast<double>(group_size(i)); }
  // True after the last micro-batch of a group: time to step the optimizer.
  bool is_step(int64_t i) const {
    check(i);
    return (i + 1) % k_ == 0 || i + 1 == n_;
  }
  int64_t optimizer_steps_per_epoch() const { return (n_ + k_ - 1) / k_; }

 private:
  void check(int64_t i) const {
    WANWU_CHECK_INDEX(i >= 0 && i < n_, "GradAccumulation: micro-batch ", i, " outside the epoch of ", n_, " batches");
  }
  int64_t k_, n_;
};

}  // namespace wanwu::optim
