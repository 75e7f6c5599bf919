// SequentialLR runs one schedule after another, switching at milestones; warmup_cosine() builds
// the usual fine-tuning recipe from it (a linear warm-up, then cosine decay). It is PyTorch
// 1.13's SequentialLR, quirks included, because a warm-up + cosine run is only comparable with
// PyTorch's if it reproduces them: the constructor resets every group's lr to initial_lr, rewinds
// each child by one epoch and re-runs the first child's initial step; at a milestone the next
// child restarts with step(0) (its closed form at epoch 0) and continues with its chainable form.
//
// The children are built on the same optimizer before the SequentialLR (each one's constructor
// takes its own first step, which the SequentialLR then undoes) and are shared with the caller,
// who may keep handles to inspect them.
#pragma once

#include <algorithm>
#include <memory>

#include "basic.hpp"

namespace wanwu::optim {

class SequentialLR final : public Schedule {
 public:
  SequentialLR(Optimizer& opt, std::vector<std::shared_ptr<LRScheduler>> schedulers, std::vector<int64_t> milestones,
               int64_t last_epoch = -1)
      : opt_(&opt), schedulers_(std::move(schedulers)), milestones_(std::move(milestones)) {
    check(schedulers_, milestones_);
    WANWU_CHECK_VALUE(last_epoch >= -1, name(), ": last_epoch must be >= -1, got ", last_epoch);
    const auto& gs = opt.param_groups();
    for (size_t i = 0; i < gs.size(); ++i)
      WANWU_CHECK_VALUE(gs[i].initial_lr.has_value(), name(), ": parameter group ", i,
                        " has no initial_lr (were the schedules built on this optimizer?)");
    init(last_epoch);
  }
  std::string name() const override { return "SequentialLR"; }

  void step() override {
    ++last_epoch_;
    const auto idx = static_cast<size_t>(std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) -
                                         milestones_.begin());
    LRScheduler& s = *schedulers_[idx];
    if (idx > 0 && milestones_[idx - 1] == last_epoch_)
      s.step(0);
    else
      s.step();
    last_lr_ = s.get_last_lr();
  }

  const std::vector<double>& get_last_lr() const override { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<int64_t>& milestones() const { return milestones_; }
  const std::vector<std::shared_ptr<LRScheduler>>& schedulers() const { return schedulers_; }
  Optimizer& optimizer() const { return *opt_; }

  // "last_epoch", "last_lr.<g>", "milestones.<k>" and each child's state under "schedulers.<i>.".
  nn::StateDict state_dict() const override {
    nn::StateDict sd;
    sd.set("last_epoch", sched_detail::i64(last_epoch_));
    sd.set("num_schedulers", sched_detail::i64(static_cast<int64_t>(schedulers_.size())));
    sched_detail::write_i64_list(sd, "milestones", milestones_);
    sched_detail::write_f64_list(sd, "last_lr", last_lr_);
    for (size_t i = 0; i < schedulers_.size(); ++i)
      sd.merge("schedulers." + std::to_string(i), schedulers_[i]->state_dict());
    return sd;
  }

  void load_state_dict(const nn::StateDict& sd) override {
    using namespace sched_detail;
    const int64_t n = read_i64(sd, "num_schedulers", name());
    WANWU_CHECK_VALUE(n == static_cast<int64_t>(schedulers_.size()), name(), ": the state dict holds ", n,
                      " schedules, this SequentialLR has ", schedulers_.size());
    const int64_t epoch = read_i64(sd, "last_epoch", name());
    WANWU_CHECK_VALUE(epoch >= 0, name(), ": invalid last_epoch ", epoch, " in the state dict");
    auto milestones = read_i64_list(sd, "milestones", name());
    check(schedulers_, milestones);
    auto last = read_group_list(sd, "last_lr", opt_->param_groups().size(), name());
    // Children load one by one; keep their old states so that a failure leaves all unchanged.
    std::vector<nn::StateDict> old;
    for (const auto& s : schedulers_) old.push_back(s->state_dict());
    try {
      for (size_t i = 0; i < schedulers_.size(); ++i)
        schedulers_[i]->load_state_dict(sd.sub("schedulers." + std::to_string(i)));
    } catch (...) {
      for (size_t i = 0; i < schedulers_.size(); ++i) schedulers_[i]->load_state_dict(old[i]);
      throw;
    }
    last_epoch_ = epoch;
    milestones_ = std::move(milestones);
    last_lr_ = std::move(last);
  }

 private:
  void check(const std::vector<std::shared_ptr<LRScheduler>>& schedulers, const std::vector<int64_t>& milestones) const {
    WANWU_CHECK_VALUE(!schedulers.empty(), name(), ": needs at least one schedule");
    for (size_t i = 0; i < schedulers.size(); ++i) {
      WANWU_CHECK_VALUE(schedulers[i] != nullptr, name(), ": schedule ", i, " is null");
      WANWU_CHECK_VALUE(&schedulers[i]->optimizer() == opt_, name(), ": schedule ", i, " (", schedulers[i]->name(),
                        ") belongs to a different optimizer; all must share the SequentialLR's");
    }
    WANWU_CHECK_VALUE(milestones.size() + 1 == schedulers.size(), name(),
                      ": needs one milestone fewer than schedules, got ", schedulers.size(), " schedules and ",
                      milestones.size(), " milestones");
    for (size_t i = 0; i < milestones.size(); ++i) {
      WANWU_CHECK_VALUE(milestones[i] >= 1, name(), ": milestones must be >= 1, got ", milestones[i]);
      WANWU_CHECK_VALUE(i == 0 || milestones[i] > milestones[i - 1], name(),
                        ": milestones must be strictly increasing, got ", milestones[i - 1], " then ", milestones[i]);
    }
  }

  void init(int64_t last_epoch) {
    last_epoch_ = last_epoch + 1;
    for (auto& g : opt_->param_groups()) g.lr = *g.initial_lr;
    for (auto& s : schedulers_) s->last_epoch_ -= 1;
    schedulers_.front()->initial_step();
    last_lr_ = schedulers_.front()->get_last_lr();
  }

  Optimizer* opt_;
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<int64_t> milestones_;
  int64_t last_epoch_ = 0;
  std::vector<double> last_lr_;
};

// Linear warm-up from warmup_start_factor * lr over warmup_steps steps, then cosine decay to
// eta_min at total_steps: exactly PyTorch's (and torchvision's reference recipe's)
//   SequentialLR([LinearLR(start_factor, 1.0, warmup_steps),
//                 CosineAnnealingLR(total_steps - warmup_steps, eta_min)], milestones=[warmup_steps])
// so the last warm-up step is one increment short of the full lr and the cosine starts at it.
// The default start factor, 0.01, is torchvision's reference recipe's (lr_warmup_decay).
inline SequentialLR warmup_cosine(Optimizer& opt, int64_t warmup_steps, int64_t total_steps,
                                  double warmup_start_factor = 0.01, double eta_min = 0.0) {
  WANWU_CHECK_VALUE(warmup_steps >= 1, "warmup_cosine: warmup_steps must be >= 1, got ", warmup_steps);
  WANWU_CHECK_VALUE(total_steps > warmup_steps, "warmup_cosine: total_steps (", total_steps,
                    ") must exceed warmup_steps (", warmup_steps, ")");
  WANWU_CHECK_VALUE(warmup_start_factor > 0 && warmup_start_factor <= 1,
                    "warmup_cosine: warmup_start_factor must be in (0, 1], got ", warmup_start_factor);
  WANWU_CHECK_VALUE(std::isfinite(eta_min) && eta_min >= 0, "warmup_cosine: eta_min must be finite and >= 0, got ",
                    eta_min);
  auto warmup = std::make_shared<LinearLR>(opt, warmup_start_factor, 1.0, warmup_steps);
  auto cosine = std::make_shared<CosineAnnealingLR>(opt, total_steps - warmup_steps, eta_min);
  return SequentialLR(opt, {warmup, cosine}, {warmup_steps});
}

}  // namespace wanwu::optim
