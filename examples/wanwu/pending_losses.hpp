// The training loss of each micro-batch, kept on the device until it is needed. Reading a loss
// from a GPU waits for the step that made it, and a read at every step would keep the host from
// queueing the next step while the GPU runs this one (DESIGN §5: no host sync in the step loop).
// So on a GPU `wanwu train` reads the losses back together, with one wait: when the progress line
// is drawn, every kMaxPending micro-batches (which bounds the work done after a divergence before
// it is seen), and before anything is saved. On the CPU a read costs nothing, so each loss is read
// at once (LossReads::each) and a divergence stops the run before its backward pass.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <wanwu/wanwu.hpp>

#include "args.hpp"

namespace wanwu::cli {

// What a non-finite loss means: divergence, or (with fp16 loss scaling) an overflow whose step
// the scaler skips.
enum class NonFiniteLoss : uint8_t { diverged, skipped };
enum class LossReads : uint8_t { each, batched };

class PendingLosses {
 public:
  static constexpr size_t kMaxPending = 50;

  PendingLosses(LossReads reads, NonFiniteLoss non_finite)
      : read_each_(reads == LossReads::each), non_finite_(non_finite) {}

  // One micro-batch's loss over n samples, at 1-based `epoch` and optimizer `step`.
  void add(const Tensor& loss, int64_t n, int64_t epoch, int64_t step) {
    pending_.push_back({loss.detach(), n, epoch, step});
  }
  bool full() const { return !pending_.empty() && (read_each_ || pending_.size() >= kMaxPending); }

  // Adds the pending per-sample losses to sum and count, in order, and forgets them. A
  // non-finite loss that means divergence throws DivergedError naming its epoch and step.
  void read_into(double& sum, int64_t& count) {
    if (pending_.empty()) return;
    std::vector<double> values;
    {
      NoGradGuard ng;
      std::vector<Tensor> ls;
      ls.reserve(pending_.size());
      for (const Pending& p : pending_) ls.push_back(p.loss.reshape({}));
      values = stack(ls).to(DType::f64).contiguous().tolist<double>();  // the one wait
    }
    const std::vector<Pending> ps = std::move(pending_);
    pending_.clear();
    for (size_t k = 0; k < ps.size(); ++k) {
      const double v = values[k];
      if (!std::isfinite(v) && non_finite_ == NonFiniteLoss::diverged)
        throw DivergedError("training diverged: the loss is " + std::to_string(v) + " at epoch " +
                            std::to_string(ps[k].epoch) + " step " + std::to_string(ps[k].step) +
                            " (lower --lr, or use --amp bf16 instead of fp16)");
      sum += v * static_cast<double>(ps[k].n);
      count += ps[k].n;
    }
  }

 private:
  struct Pending {
    Tensor loss;
    int64_t n, epoch, step;
  };
  bool read_each_;
  NonFiniteLoss non_finite_;
  std::vector<Pending> pending_;
};

}  // namespace wanwu::cli
