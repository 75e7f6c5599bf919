// The base of the learning-rate schedules: PyTorch 1.13's torch.optim.lr_scheduler._LRScheduler,
// transcribed so that every schedule gives the very same per-step learning rates as PyTorch, not
// merely the same curve. That is why the shape follows PyTorch's rather than a cleaner one: most
// schedules are "chainable" (each step derives the new lr from the group's current lr, so two
// schedules can act on one optimizer), the constructor records `initial_lr` in each group and
// performs the first step, `step(epoch)` jumps to an epoch through the closed form where PyTorch
// has one, and SequentialLR (sequential.hpp) relies on all of it when it rewinds its children.
//
// `Schedule` is what a training loop needs (step once per iteration, read the lrs, save and load
// state). LRScheduler adds the epoch machinery; SequentialLR is a Schedule but not an
// LRScheduler, so it cannot be nested where PyTorch's would fail at the first milestone.
// ReduceLROnPlateau steps on a metric and stands apart (plateau.hpp).
//
// A schedule keeps a reference to its optimizer and must not outlive it. State dicts are flat
// nn::StateDicts of 0-dim f64/i64 tensors holding the counters and the hyper-parameters (loading
// restores both, as PyTorch's does); with the optimizer's own state dict they resume a run
// bit-identically.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../optimizer.hpp"

namespace wanwu::optim {

namespace sched_detail {

// PyTorch evaluates every formula in Python floats, rounding each product before it is added to
// anything. Compilers may fuse a*b + c into one multiply-add with a single rounding (GCC does by
// default on FMA hardware), which moves results by an ulp and, through the recursive forms, away
// from PyTorch. A product that feeds a sum goes through here; the volatile store forces rounding.
inline double rounded(double x) {
  volatile double v = x;
  return v;
}

// Python's // (floor division); C++'s / truncates toward zero.
inline int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

inline bool finite(double v) { return std::isfinite(v); }

inline Tensor f64(double v) { return scalar_tensor(v, DType::f64); }
inline Tensor i64(int64_t v) { return scalar_tensor(v, DType::i64); }

inline const Tensor& entry(const nn::StateDict& sd, const std::string& key, const std::string& who) {
  WANWU_CHECK_VALUE(sd.contains(key), who, ": the state dict has no '", key,
                    "' (was it saved by a different schedule?)");
  const Tensor& t = sd.at(key);
  WANWU_CHECK_SHAPE(t.defined() && t.numel() == 1, who, ": state '", key, "' must hold one value, got shape ",
                    t.defined() ? t.shape().str() : std::string("(undefined)"));
  return t;
}
inline double read_f64(const nn::StateDict& sd, const std::string& key, const std::string& who) {
  const Tensor& t = entry(sd, key, who);
  WANWU_CHECK_DTYPE(t.is_floating_point(), who, ": state '", key, "' must be a floating tensor, got ", t.dtype());
  return t.item<double>();
}
inline int64_t read_i64(const nn::StateDict& sd, const std::string& key, const std::string& who) {
  const Tensor& t = entry(sd, key, who);
  WANWU_CHECK_DTYPE(!t.is_floating_point() && t.dtype() != DType::boolean, who, ": state '", key,
                    "' must be an integer tensor, got ", t.dtype());
  return t.item<int64_t>();
}
// Lists are stored as "<prefix>.0", "<prefix>.1", ...
inline size_t list_size(const nn::StateDict& sd, const std::string& prefix) {
  size_t n = 0;
  while (sd.contains(prefix + "." + std::to_string(n))) ++n;
  return n;
}
inline void write_f64_list(nn::StateDict& sd, const std::string& prefix, const std::vector<double>& v) {
  for (size_t i = 0; i < v.size(); ++i) sd.set(prefix + "." + std::to_string(i), f64(v[i]));
}
inline void write_i64_list(nn::StateDict& sd, const std::string& prefix, const std::vector<int64_t>& v) {
  for (size_t i = 0; i < v.size(); ++i) sd.set(prefix + "." + std::to_string(i), i64(v[i]));
}
// One value per parameter group: the count must match the optimizer the state is loaded into.
inline std::vector<double> read_group_list(const nn::StateDict& sd, const std::string& prefix, size_t groups,
                                           const std::string& who) {
  const size_t n = list_size(sd, prefix);
  WANWU_CHECK_VALUE(n == groups, who, ": the state dict has ", n, " values of '", prefix, "', the optimizer has ",
                    groups, " parameter groups");
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = read_f64(sd, prefix + "." + std::to_string(i), who);
  return v;
}
inline std::vector<double> read_f64_list(const nn::StateDict& sd, const std::string& prefix, const std::string& who) {
  std::vector<double> v(list_size(sd, prefix));
  for (size_t i = 0; i < v.size(); ++i) v[i] = read_f64(sd, prefix + "." + std::to_string(i), who);
  return v;
}
inline std::vector<int64_t> read_i64_list(const nn::StateDict& sd, const std::string& prefix, const std::string& who) {
  std::vector<int64_t> v(list_size(sd, prefix));
  for (size_t i = 0; i < v.size(); ++i) v[i] = read_i64(sd, prefix + "." + std::to_string(i), who);
  return v;
}

inline std::vector<double> group_lrs(const Optimizer& opt) {
  std::vector<double> v;
  for (const auto& g : opt.param_groups()) v.push_back(g.lr);
  return v;
}

// A per-group hyper-parameter given as one value for every group or one value per group
// (PyTorch's "float or list").
inline std::vector<double> per_group(const std::vector<double>& values, size_t groups, const std::string& who,
                                     const char* what) {
  WANWU_CHECK_VALUE(values.size() == 1 || values.size() == groups, who, ": expected 1 or ", groups, " values for ",
                    what, " (one per parameter group), got ", values.size());
  return values.size() == groups ? values : std::vector<double>(groups, values.front());
}

}  // namespace sched_detail

// What a training loop needs from a per-iteration schedule.
class Schedule {
 public:
  virtual ~Schedule() = default;
  Schedule() = default;
  // A copy would share the optimizer (and SequentialLR's children) with the original; moving is
  // fine.
  Schedule(const Schedule&) = delete;
  Schedule& operator=(const Schedule&) = delete;
  Schedule(Schedule&&) = default;
  Schedule& operator=(Schedule&&) = default;

  virtual std::string name() const = 0;
  // Advances one step and writes the new learning rates into the optimizer's groups. Call it
  // after optimizer.step(), as in PyTorch.
  virtual void step() = 0;
  // The learning rates the last step set, one per parameter group.
  virtual const std::vector<double>& get_last_lr() const = 0;
  virtual nn::StateDict state_dict() const = 0;
  // Restores counters and hyper-parameters; throws (leaving the schedule unchanged) when the
  // state does not fit this schedule or this optimizer.
  virtual void load_state_dict(const nn::StateDict& sd) = 0;
};

class SequentialLR;

// PyTorch's _LRScheduler. A concrete schedule's constructor checks its arguments, then calls
// attach() and initial_step() — the base cannot take the first step itself, because the derived
// get_lr() is not callable from a base constructor.
class LRScheduler : public Schedule {
 public:
  void step() override { advance(std::nullopt); }
  // PyTorch's deprecated step(epoch): sets last_epoch and uses the closed form where the schedule
  // has one (the chainable form otherwise). SequentialLR uses it to start a child at epoch 0.
  void step(int64_t epoch) {
    WANWU_CHECK_VALUE(epoch >= 0, name(), ": step(epoch) needs epoch >= 0, got ", epoch);
    advance(epoch);
  }

  const std::vector<double>& get_last_lr() const override { return last_lr_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  int64_t last_epoch() const { return last_epoch_; }
  Optimizer& optimizer() const { return *opt_; }

  nn::StateDict state_dict() const override {
    nn::StateDict sd;
    sd.set("last_epoch", sched_detail::i64(last_epoch_));
    sd.set("step_count", sched_detail::i64(step_count_));
    sched_detail::write_f64_list(sd, "base_lrs", base_lrs_);
    sched_detail::write_f64_list(sd, "last_lr", last_lr_);
    save_hyper(sd);
    return sd;
  }

  void load_state_dict(const nn::StateDict& sd) override {
    using namespace sched_detail;
    const size_t n = opt_->param_groups().size();
    auto base = read_group_list(sd, "base_lrs", n, name());
    auto last = read_group_list(sd, "last_lr", n, name());
    const int64_t epoch = read_i64(sd, "last_epoch", name());
    const int64_t count = read_i64(sd, "step_count", name());
    WANWU_CHECK_VALUE(epoch >= -1 && count >= 0, name(), ": invalid counters in the state dict: last_epoch ", epoch,
                      ", step_count ", count);
    load_hyper(sd);  // checks everything before it assigns anything
    base_lrs_ = std::move(base);
    last_lr_ = std::move(last);
    last_epoch_ = epoch;
    step_count_ = count;
  }

 protected:
  explicit LRScheduler(Optimizer& opt) : opt_(&opt) {}

  // The chainable form: the lrs for last_epoch_, usually from the groups' current lrs.
  virtual std::vector<double> get_lr() = 0;
  // The closed form (from base_lrs and last_epoch_ alone), for schedules where PyTorch has one.
  virtual std::optional<std::vector<double>> closed_form_lr() const { return std::nullopt; }
  // The schedule's own hyper-parameters. load_hyper validates all of them before it assigns any.
  virtual void save_hyper(nn::StateDict& sd) const = 0;
  virtual void load_hyper(const nn::StateDict& sd) = 0;

  // Argument check shared by every constructor; call it before anything is changed.
  void check_last_epoch(int64_t last_epoch) const {
    WANWU_CHECK_VALUE(last_epoch >= -1, name(), ": last_epoch must be -1 (a new run) or the index of the last ",
                      "epoch of a resumed run, got ", last_epoch);
    if (last_epoch == -1) return;
    const auto& groups = opt_->param_groups();
    for (size_t i = 0; i < groups.size(); ++i)
      WANWU_CHECK_VALUE(groups[i].initial_lr.has_value(), name(), ": resuming at last_epoch ", last_epoch,
                        " needs initial_lr in every parameter group, group ", i,
                        " has none (load the optimizer's state dict first)");
  }

  // PyTorch's constructor body: a new run records each group's lr as initial_lr unless a schedule
  // already did (so a second schedule on the same optimizer starts from the same base).
  void attach(int64_t last_epoch) {
    auto& groups = opt_->param_groups();
    if (last_epoch == -1)
      for (auto& g : groups)
        if (!g.initial_lr) g.initial_lr = g.lr;
    base_lrs_.clear();
    for (const auto& g : groups) base_lrs_.push_back(*g.initial_lr);
    last_epoch_ = last_epoch;
  }

  void initial_step() {
    step_count_ = 0;
    step();
  }

  int64_t step_count() const { return step_count_; }
  std::vector<ParamGroup>& groups() const { return opt_->param_groups(); }

 private:
  friend class SequentialLR;

  void advance(std::optional<int64_t> epoch) {
    auto& gs = opt_->param_groups();
    WANWU_CHECK_VALUE(gs.size() == base_lrs_.size(), name(), ": the optimizer has ", gs.size(),
                      " parameter groups, the schedule was built for ", base_lrs_.size());
    const int64_t saved_epoch = last_epoch_, saved_count = step_count_;
    ++step_count_;
    std::vector<double> values;
    try {
      if (!epoch) {
        ++last_epoch_;
        values = get_lr();
      } else {
        last_epoch_ = *epoch;
        auto closed = closed_form_lr();
        values = closed ? std::move(*closed) : get_lr();
      }
    } catch (...) {
      last_epoch_ = saved_epoch;
      step_count_ = saved_count;
      throw;
    }
    for (size_t i = 0; i < gs.size(); ++i) gs[i].lr = values[i];
    last_lr_ = sched_detail::group_lrs(*opt_);
  }

  Optimizer* opt_;
  std::vector<double> base_lrs_, last_lr_;
  int64_t last_epoch_ = -1;
  int64_t step_count_ = 0;  // PyTorch's _step_count: CosineAnnealingLR's first step depends on it
};

}  // namespace wanwu::optim
