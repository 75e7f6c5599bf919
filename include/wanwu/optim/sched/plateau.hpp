// ReduceLROnPlateau: cut every group's lr by `factor` when a monitored metric (validation loss,
// accuracy) has not improved for more than `patience` evaluations — PyTorch 1.13's rules exactly:
// "improved" means beyond a relative or absolute threshold of the best value so far; after a cut,
// `cooldown` evaluations pass before bad ones count again; no lr goes below its group's min_lr,
// and a cut smaller than eps is skipped. It steps on a metric, not once per iteration, so it is
// not a Schedule; call step(metric) after each evaluation.
#pragma once

#include <algorithm>
#include <limits>

#include "scheduler.hpp"

namespace wanwu::optim {

enum class PlateauMode : uint8_t { min, max };  // min: a loss; max: an accuracy
enum class ThresholdMode : uint8_t { rel, abs };

struct PlateauOptions {
  PlateauMode mode = PlateauMode::min;
  double factor = 0.1;   // new_lr = lr * factor
  int64_t patience = 10;  // bad evaluations tolerated before a cut
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::rel;
  int64_t cooldown = 0;
  std::vector<double> min_lr{0.0};  // one value for every group, or one per group
  double eps = 1e-8;
};

class ReduceLROnPlateau {
 public:
  ReduceLROnPlateau(Optimizer& opt, const PlateauOptions& o = {}) : opt_(&opt) {
    auto min_lrs = sched_detail::per_group(o.min_lr, opt.param_groups().size(), name(), "min_lr");
    check(o, min_lrs);
    mode_ = o.mode;
    factor_ = o.factor;
    patience_ = o.patience;
    threshold_ = o.threshold;
    threshold_mode_ = o.threshold_mode;
    cooldown_ = o.cooldown;
    min_lrs_ = std::move(min_lrs);
    eps_ = o.eps;
    reset();
    last_lr_ = sched_detail::group_lrs(opt);
  }
  std::string name() const { return "ReduceLROnPlateau"; }

  // One evaluation. A NaN metric never counts as an improvement (as in PyTorch).
  void step(double metric) { update(metric, last_epoch_ + 1); }
  // PyTorch's deprecated step(metrics, epoch): the epoch only sets last_epoch.
  void step(double metric, int64_t epoch) {
    WANWU_CHECK_VALUE(epoch >= 0, name(), ": step(metric, epoch) needs epoch >= 0, got ", epoch);
    update(metric, epoch);
  }

  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }
  Optimizer& optimizer() const { return *opt_; }

  nn::StateDict state_dict() const {
    using namespace sched_detail;
    nn::StateDict sd;
    sd.set("mode", i64(mode_ == PlateauMode::max));
    sd.set("factor", f64(factor_));
    sd.set("patience", i64(patience_));
    sd.set("threshold", f64(threshold_));
    sd.set("threshold_mode", i64(threshold_mode_ == ThresholdMode::abs));
    sd.set("cooldown", i64(cooldown_));
    write_f64_list(sd, "min_lrs", min_lrs_);
    sd.set("eps", f64(eps_));
    sd.set("best", f64(best_));
    sd.set("num_bad_epochs", i64(num_bad_epochs_));
    sd.set("cooldown_counter", i64(cooldown_counter_));
    sd.set("last_epoch", i64(last_epoch_));
    write_f64_list(sd, "last_lr", last_lr_);
    return sd;
  }

  void load_state_dict(const nn::StateDict& sd) {
    using namespace sched_detail;
    const size_t n = opt_->param_groups().size();
    const int64_t mode = read_i64(sd, "mode", name());
    const int64_t tmode = read_i64(sd, "threshold_mode", name());
    WANWU_CHECK_VALUE((mode == 0 || mode == 1) && (tmode == 0 || tmode == 1), name(),
                      ": invalid mode or threshold_mode in the state dict");
    PlateauOptions o;
    o.mode = mode ? PlateauMode::max : PlateauMode::min;
    o.factor = read_f64(sd, "factor", name());
    o.patience = read_i64(sd, "patience", name());
    o.threshold = read_f64(sd, "threshold", name());
    o.threshold_mode = tmode ? ThresholdMode::abs : ThresholdMode::rel;
    o.cooldown = read_i64(sd, "cooldown", name());
    o.min_lr = read_group_list(sd, "min_lrs", n, name());
    o.eps = read_f64(sd, "eps", name());
    check(o, o.min_lr);
    const double best = read_f64(sd, "best", name());
    const int64_t bad = read_i64(sd, "num_bad_epochs", name());
    const int64_t cool = read_i64(sd, "cooldown_counter", name());
    const int64_t epoch = read_i64(sd, "last_epoch", name());
    WANWU_CHECK_VALUE(bad >= 0 && cool >= 0 && epoch >= 0, name(), ": invalid counters in the state dict");
    auto last = read_group_list(sd, "last_lr", n, name());
    mode_ = o.mode;
    factor_ = o.factor;
    patience_ = o.patience;
    threshold_ = o.threshold;
    threshold_mode_ = o.threshold_mode;
    cooldown_ = o.cooldown;
    min_lrs_ = std::move(o.min_lr);
    eps_ = o.eps;
    best_ = best;
    num_bad_epochs_ = bad;
    cooldown_counter_ = cool;
    last_epoch_ = epoch;
    last_lr_ = std::move(last);
  }

 private:
  void check(const PlateauOptions& o, const std::vector<double>& min_lrs) const {
    using sched_detail::finite;
    WANWU_CHECK_VALUE(o.factor >= 0 && o.factor < 1, name(), ": factor must be in [0, 1), got ", o.factor);
    WANWU_CHECK_VALUE(o.patience >= 0, name(), ": patience must be >= 0, got ", o.patience);
    WANWU_CHECK_VALUE(finite(o.threshold) && o.threshold >= 0, name(), ": threshold must be finite and >= 0, got ",
                      o.threshold);
    WANWU_CHECK_VALUE(o.cooldown >= 0, name(), ": cooldown must be >= 0, got ", o.cooldown);
    for (double v : min_lrs)
      WANWU_CHECK_VALUE(finite(v) && v >= 0, name(), ": min_lr must be finite and >= 0, got ", v);
    WANWU_CHECK_VALUE(finite(o.eps) && o.eps >= 0, name(), ": eps must be finite and >= 0, got ", o.eps);
  }

  void reset() {
    best_ = mode_ == PlateauMode::min ? std::numeric_limits<double>::infinity()
                                      : -std::numeric_limits<double>::infinity();
    cooldown_counter_ = 0;
    num_bad_epochs_ = 0;
  }

  bool is_better(double a, double best) const {
    if (mode_ == PlateauMode::min)
      return threshold_mode_ == ThresholdMode::rel ? a < best * (1. - threshold_) : a < best - threshold_;
    return threshold_mode_ == ThresholdMode::rel ? a > best * (threshold_ + 1.) : a > best + threshold_;
  }

  void update(double metric, int64_t epoch) {
    auto& gs = opt_->param_groups();
    WANWU_CHECK_VALUE(gs.size() == min_lrs_.size(), name(), ": the optimizer has ", gs.size(),
                      " parameter groups, the schedule was built for ", min_lrs_.size());
    last_epoch_ = epoch;
    if (is_better(metric, best_)) {
      best_ = metric;
      num_bad_epochs_ = 0;
    } else {
      ++num_bad_epochs_;
    }
    if (in_cooldown()) {
      --cooldown_counter_;
      num_bad_epochs_ = 0;  // bad epochs in cooldown do not count
    }
    if (num_bad_epochs_ > patience_) {
      reduce_lr();
      cooldown_counter_ = cooldown_;
      num_bad_epochs_ = 0;
    }
    last_lr_ = sched_detail::group_lrs(*opt_);
  }

  void reduce_lr() {
    auto& gs = opt_->param_groups();
    for (size_t i = 0; i < gs.size(); ++i) {
      const double old_lr = gs[i].lr;
      const double new_lr = std::max(sched_detail::rounded(old_lr * factor_), min_lrs_[i]);
      if (old_lr - new_lr > eps_) gs[i].lr = new_lr;
    }
  }

  Optimizer* opt_;
  PlateauMode mode_ = PlateauMode::min;
  double factor_ = 0.1;
  int64_t patience_ = 10;
  double threshold_ = 1e-4;
  ThresholdMode threshold_mode_ = ThresholdMode::rel;
  int64_t cooldown_ = 0;
  std::vector<double> min_lrs_;
  double eps_ = 1e-8;
  double best_ = 0;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
  std::vector<double> last_lr_;
};

}  // namespace wanwu::optim
