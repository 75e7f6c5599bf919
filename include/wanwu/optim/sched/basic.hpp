// The epoch-indexed schedules: StepLR, MultiStepLR, CosineAnnealingLR and LinearLR, each PyTorch
// 1.13's formula for formula. Each has two forms, as in PyTorch: the chainable get_lr() that
// step() uses (it scales the group's current lr, so it composes with other changes to the lr)
// and the closed form that step(epoch) uses. Both are kept, in PyTorch's arithmetic order,
// because they round differently and SequentialLR switches between them at its milestones;
// CosineAnnealingLR in particular is recursive, so its values drift from the closed form in the
// last bits exactly as PyTorch's do.
#pragma once

#include <algorithm>
#include <cmath>
#include <numbers>

#include "scheduler.hpp"

namespace wanwu::optim {

// lr = base_lr * gamma^floor(epoch / step_size).
class StepLR final : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1, int64_t last_epoch = -1)
      : LRScheduler(opt), step_size_(step_size), gamma_(gamma) {
    check(step_size, gamma);
    check_last_epoch(last_epoch);
    attach(last_epoch);
    initial_step();
  }
  std::string name() const override { return "StepLR"; }
  int64_t step_size() const { return step_size_; }
  double gamma() const { return gamma_; }

 protected:
  std::vector<double> get_lr() override {
    std::vector<double> v;
    const bool decay = last_epoch() != 0 && last_epoch() % step_size_ == 0;
    for (const auto& g : groups()) v.push_back(decay ? g.lr * gamma_ : g.lr);
    return v;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    std::vector<double> v;
    const double f = std::pow(gamma_, static_cast<double>(sched_detail::floor_div(last_epoch(), step_size_)));
    for (double b : base_lrs()) v.push_back(b * f);
    return v;
  }
  void save_hyper(nn::StateDict& sd) const override {
    sd.set("step_size", sched_detail::i64(step_size_));
    sd.set("gamma", sched_detail::f64(gamma_));
  }
  void load_hyper(const nn::StateDict& sd) override {
    const int64_t step_size = sched_detail::read_i64(sd, "step_size", name());
    const double gamma = sched_detail::read_f64(sd, "gamma", name());
    check(step_size, gamma);
    step_size_ = step_size;
    gamma_ = gamma;
  }

 private:
  void check(int64_t step_size, double gamma) const {
    WANWU_CHECK_VALUE(step_size >= 1, name(), ": step_size must be >= 1, got ", step_size);
    WANWU_CHECK_VALUE(sched_detail::finite(gamma) && gamma >= 0, name(), ": gamma must be finite and >= 0, got ", gamma);
  }
  int64_t step_size_;
  double gamma_;
};

// lr = base_lr * gamma^(number of milestones <= epoch). A milestone listed k times multiplies by
// gamma^k when it is reached (PyTorch keeps them in a Counter); order does not matter.
class MultiStepLR final : public LRScheduler {
 public:
  MultiStepLR(Optimizer& opt, std::vector<int64_t> milestones, double gamma = 0.1, int64_t last_epoch = -1)
      : LRScheduler(opt), milestones_(std::move(milestones)), gamma_(gamma) {
    check(milestones_, gamma);
    std::sort(milestones_.begin(), milestones_.end());
    check_last_epoch(last_epoch);
    attach(last_epoch);
    initial_step();
  }
  std::string name() const override { return "MultiStepLR"; }
  const std::vector<int64_t>& milestones() const { return milestones_; }
  double gamma() const { return gamma_; }

 protected:
  std::vector<double> get_lr() override {
    const auto hits = std::count(milestones_.begin(), milestones_.end(), last_epoch());
    std::vector<double> v;
    for (const auto& g : groups())
      v.push_back(hits == 0 ? g.lr : g.lr * std::pow(gamma_, static_cast<double>(hits)));
    return v;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch()) - milestones_.begin();
    const double f = std::pow(gamma_, static_cast<double>(passed));
    std::vector<double> v;
    for (double b : base_lrs()) v.push_back(b * f);
    return v;
  }
  void save_hyper(nn::StateDict& sd) const override {
    sd.set("num_milestones", sched_detail::i64(static_cast<int64_t>(milestones_.size())));
    sched_detail::write_i64_list(sd, "milestones", milestones_);
    sd.set("gamma", sched_detail::f64(gamma_));
  }
  void load_hyper(const nn::StateDict& sd) override {
    const int64_t n = sched_detail::read_i64(sd, "num_milestones", name());
    auto milestones = sched_detail::read_i64_list(sd, "milestones", name());
    WANWU_CHECK_VALUE(static_cast<int64_t>(milestones.size()) == n, name(), ": the state dict lists ",
                      milestones.size(), " milestones, its num_milestones says ", n);
    const double gamma = sched_detail::read_f64(sd, "gamma", name());
    check(milestones, gamma);
    std::sort(milestones.begin(), milestones.end());
    milestones_ = std::move(milestones);
    gamma_ = gamma;
  }

 private:
  void check(const std::vector<int64_t>& milestones, double gamma) const {
    for (int64_t m : milestones) WANWU_CHECK_VALUE(m >= 0, name(), ": milestones must be >= 0, got ", m);
    WANWU_CHECK_VALUE(sched_detail::finite(gamma) && gamma >= 0, name(), ": gamma must be finite and >= 0, got ", gamma);
  }
  std::vector<int64_t> milestones_;  // sorted, repeats kept
  double gamma_;
};

// Half a cosine from the base lr down to eta_min over T_max epochs (SGDR without restarts; past
// T_max it rises again, as PyTorch's does). step() uses PyTorch's recursive form, which respects
// lr changes made by others; step(epoch) the closed form.
class CosineAnnealingLR final : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& opt, int64_t T_max, double eta_min = 0.0, int64_t last_epoch = -1)
      : LRScheduler(opt), T_max_(T_max), eta_min_(eta_min) {
    check(T_max, eta_min);
    check_last_epoch(last_epoch);
    attach(last_epoch);
    initial_step();
  }
  std::string name() const override { return "CosineAnnealingLR"; }
  int64_t T_max() const { return T_max_; }
  double eta_min() const { return eta_min_; }

 protected:
  std::vector<double> get_lr() override {
    using sched_detail::rounded;
    constexpr double pi = std::numbers::pi;
    const int64_t e = last_epoch();
    const double T = static_cast<double>(T_max_);
    const auto& gs = groups();
    const auto& base = base_lrs();
    std::vector<double> v;
    if (e == 0) {
      for (const auto& g : gs) v.push_back(g.lr);
    } else if (step_count() == 1 && e > 0) {
      // First step of a schedule resumed with last_epoch > 0: nothing to recurse from.
      for (size_t i = 0; i < gs.size(); ++i)
        v.push_back(eta_min_ + rounded((base[i] - eta_min_) * (1 + std::cos(static_cast<double>(e) * pi / T)) / 2));
    } else if ((e - 1 - T_max_) % (2 * T_max_) == 0) {
      // Just past a minimum the ratio below is 0/0; PyTorch steps up by the closed-form increment.
      for (size_t i = 0; i < gs.size(); ++i)
        v.push_back(gs[i].lr + rounded((base[i] - eta_min_) * (1 - std::cos(pi / T)) / 2));
    } else {
      const double ratio =
          (1 + std::cos(pi * static_cast<double>(e) / T)) / (1 + std::cos(pi * static_cast<double>(e - 1) / T));
      for (const auto& g : gs) v.push_back(rounded(ratio * (g.lr - eta_min_)) + eta_min_);
    }
    return v;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    using sched_detail::rounded;
    constexpr double pi = std::numbers::pi;
    const double c = 1 + std::cos(pi * static_cast<double>(last_epoch()) / static_cast<double>(T_max_));
    std::vector<double> v;
    for (double b : base_lrs()) v.push_back(eta_min_ + rounded((b - eta_min_) * c / 2));
    return v;
  }
  void save_hyper(nn::StateDict& sd) const override {
    sd.set("T_max", sched_detail::i64(T_max_));
    sd.set("eta_min", sched_detail::f64(eta_min_));
  }
  void load_hyper(const nn::StateDict& sd) override {
    const int64_t T_max = sched_detail::read_i64(sd, "T_max", name());
    const double eta_min = sched_detail::read_f64(sd, "eta_min", name());
    check(T_max, eta_min);
    T_max_ = T_max;
    eta_min_ = eta_min;
  }

 private:
  void check(int64_t T_max, double eta_min) const {
    WANWU_CHECK_VALUE(T_max >= 1, name(), ": T_max must be >= 1, got ", T_max);
    WANWU_CHECK_VALUE(sched_detail::finite(eta_min) && eta_min >= 0, name(), ": eta_min must be finite and >= 0, got ",
                      eta_min);
  }
  int64_t T_max_;
  double eta_min_;
};

// The lr factor moves linearly from start_factor to end_factor over total_iters epochs, then stays:
// a linear warm-up (start_factor < 1 = end_factor) or a linear decay.
class LinearLR final : public LRScheduler {
 public:
  LinearLR(Optimizer& opt, double start_factor = 1.0 / 3, double end_factor = 1.0, int64_t total_iters = 5,
           int64_t last_epoch = -1)
      : LRScheduler(opt), start_(start_factor), end_(end_factor), total_iters_(total_iters) {
    check(start_factor, end_factor, total_iters);
    check_last_epoch(last_epoch);
    attach(last_epoch);
    initial_step();
  }
  std::string name() const override { return "LinearLR"; }
  double start_factor() const { return start_; }
  double end_factor() const { return end_; }
  int64_t total_iters() const { return total_iters_; }

 protected:
  std::vector<double> get_lr() override {
    using sched_detail::rounded;
    const int64_t e = last_epoch();
    std::vector<double> v;
    for (const auto& g : groups()) {
      if (e == 0)
        v.push_back(g.lr * start_);
      else if (e > total_iters_)
        v.push_back(g.lr);
      else  // the ratio of consecutive factors, so that it chains
        v.push_back(g.lr * (1. + (end_ - start_) / (rounded(static_cast<double>(total_iters_) * start_) +
                                                      rounded(static_cast<double>(e - 1) * (end_ - start_)))));
    }
    return v;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    using sched_detail::rounded;
    const double done = static_cast<double>(std::min(total_iters_, last_epoch()));
    const double f = start_ + rounded((end_ - start_) * done / static_cast<double>(total_iters_));
    std::vector<double> v;
    for (double b : base_lrs()) v.push_back(b * f);
    return v;
  }
  void save_hyper(nn::StateDict& sd) const override {
    sd.set("start_factor", sched_detail::f64(start_));
    sd.set("end_factor", sched_detail::f64(end_));
    sd.set("total_iters", sched_detail::i64(total_iters_));
  }
  void load_hyper(const nn::StateDict& sd) override {
    const double s = sched_detail::read_f64(sd, "start_factor", name());
    const double e = sched_detail::read_f64(sd, "end_factor", name());
    const int64_t n = sched_detail::read_i64(sd, "total_iters", name());
    check(s, e, n);
    start_ = s;
    end_ = e;
    total_iters_ = n;
  }

 private:
  void check(double start, double end, int64_t total_iters) const {
    // start_factor 0 would divide by zero in the chainable form at the first step.
    WANWU_CHECK_VALUE(start > 0 && start <= 1, name(), ": start_factor must be in (0, 1], got ", start);
    WANWU_CHECK_VALUE(end >= 0 && end <= 1, name(), ": end_factor must be in [0, 1], got ", end);
    WANWU_CHECK_VALUE(total_iters >= 1, name(), ": total_iters must be >= 1, got ", total_iters);
  }
  double start_, end_;
  int64_t total_iters_;
};

}  // namespace wanwu::optim
