// OneCycleLR: the 1cycle policy (Smith & Topin, "Super-Convergence", 2017) as PyTorch 1.13 implements
// it, which follows fastai: the lr rises from max_lr/div_factor to max_lr over pct_start of the
// run, then anneals to initial_lr/final_div_factor (three_phase: back down to the initial lr
// symmetrically, then to the minimum), while the momentum — SGD's momentum or Adam's beta1 —
// moves the opposite way between max_momentum and base_momentum. Every step is computed from the
// phase table afresh (the schedule is not chainable), in PyTorch's arithmetic, so the lrs and
// momenta equal PyTorch's.
//
// PyTorch keeps max_lr, min_lr and the momentum bounds in the optimizer's parameter groups;
// wanwu's groups have no slots for them, so the schedule keeps them and saves them in its own
// state dict. initial_lr stays in the group, as in PyTorch.
#pragma once

#include <cmath>
#include <numbers>

#include "../adam.hpp"
#include "../sgd.hpp"
#include "scheduler.hpp"

namespace wanwu::optim {

enum class AnnealStrategy : uint8_t { cos, linear };
enum class ThreePhase : uint8_t { no, yes };
enum class CycleMomentum : uint8_t { no, yes };

struct OneCycleOptions {
  std::vector<double> max_lr;  // one value for every group, or one per group (required)
  // The length of the cycle: total_steps, or epochs * steps_per_epoch when total_steps is unset.
  std::optional<int64_t> total_steps;
  std::optional<int64_t> epochs, steps_per_epoch;
  double pct_start = 0.3;
  AnnealStrategy anneal_strategy = AnnealStrategy::cos;
  CycleMomentum cycle_momentum = CycleMomentum::yes;
  std::vector<double> base_momentum{0.85};  // one value, or one per group
  std::vector<double> max_momentum{0.95};
  double div_factor = 25.0;      // initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;  // min_lr = initial_lr / final_div_factor
  ThreePhase three_phase = ThreePhase::no;
  // The index of the last step of a resumed run. The groups' initial_lr comes from the optimizer
  // state; max_lr, final_div_factor and the momentum bounds must be the original run's.
  int64_t last_epoch = -1;
};

class OneCycleLR final : public LRScheduler {
 public:
  OneCycleLR(Optimizer& opt, const OneCycleOptions& o) : LRScheduler(opt) {
    using namespace sched_detail;
    const size_t n = groups().size();
    // Checks first: nothing in the optimizer changes unless all pass.
    const int64_t total = resolve_total_steps(o);
    WANWU_CHECK_VALUE(o.pct_start >= 0 && o.pct_start <= 1, name(), ": pct_start must be in [0, 1], got ", o.pct_start);
    WANWU_CHECK_VALUE(o.three_phase == ThreePhase::no || o.pct_start <= 0.5, name(),
                      ": a three-phase cycle needs pct_start <= 0.5 (its first two phases take 2 * pct_start of the "
                      "run), got ",
                      o.pct_start);
    WANWU_CHECK_VALUE(finite(o.div_factor) && o.div_factor > 0, name(), ": div_factor must be finite and > 0, got ",
                      o.div_factor);
    WANWU_CHECK_VALUE(finite(o.final_div_factor) && o.final_div_factor > 0, name(),
                      ": final_div_factor must be finite and > 0, got ", o.final_div_factor);
    const auto max_lrs = per_group(o.max_lr, n, name(), "max_lr");
    for (double v : max_lrs) WANWU_CHECK_VALUE(finite(v) && v >= 0, name(), ": max_lr must be finite and >= 0, got ", v);
    check_last_epoch(o.last_epoch);
    const bool cycle = o.cycle_momentum == CycleMomentum::yes;
    std::vector<double> max_m, base_m;
    if (cycle) {
      use_beta1_ = momentum_field_of(opt) == Field::beta1;
      max_m = per_group(o.max_momentum, n, name(), "max_momentum");
      base_m = per_group(o.base_momentum, n, name(), "base_momentum");
      for (double v : max_m) check_momentum(v, "max_momentum");
      for (double v : base_m) check_momentum(v, "base_momentum");
    }
    auto phases = make_phases(o.pct_start, total, o.three_phase);
    check_phases(phases, total);

    total_steps_ = total;
    three_phase_ = o.three_phase;
    phases_ = std::move(phases);
    anneal_ = o.anneal_strategy;
    cycle_ = o.cycle_momentum;
    max_lr_ = max_lrs;
    auto& gs = groups();
    for (size_t i = 0; i < n; ++i) {
      if (o.last_epoch == -1) gs[i].initial_lr = max_lrs[i] / o.div_factor;
      min_lr_.push_back(*gs[i].initial_lr / o.final_div_factor);
    }
    if (cycle) {
      max_momentum_ = max_m;
      base_momentum_ = base_m;
      if (o.last_epoch == -1)
        for (size_t i = 0; i < n; ++i) momentum_of(gs[i]) = max_m[i];
    }
    attach(o.last_epoch);
    initial_step();
  }
  std::string name() const override { return "OneCycleLR"; }
  int64_t total_steps() const { return total_steps_; }
  const std::vector<double>& max_lrs() const { return max_lr_; }
  const std::vector<double>& min_lrs() const { return min_lr_; }

 protected:
  std::vector<double> get_lr() override {
    const int64_t step_num = last_epoch();
    WANWU_CHECK_VALUE(step_num <= total_steps_, name(), ": tried to step ", step_num + 1,
                      " times; the specified number of total steps is ", total_steps_);
    auto& gs = groups();
    const bool cycle = cycle_ == CycleMomentum::yes;
    for (size_t i = 0; i < gs.size(); ++i)
      WANWU_CHECK_VALUE(gs[i].initial_lr.has_value(), name(), ": parameter group ", i, " lost its initial_lr");
    std::vector<double> lrs;
    const double s = static_cast<double>(step_num);
    for (size_t i = 0; i < gs.size(); ++i) {
      double start_step = 0, lr = 0, momentum = 0;
      for (size_t k = 0; k < phases_.size(); ++k) {
        const Phase& p = phases_[k];
        if (s <= p.end_step || k + 1 == phases_.size()) {
          const double pct = (s - start_step) / (p.end_step - start_step);
          lr = anneal(value(i, p.start_lr), value(i, p.end_lr), pct);
          if (cycle) momentum = anneal(value(i, p.start_momentum), value(i, p.end_momentum), pct);
          break;
        }
        start_step = p.end_step;
      }
      lrs.push_back(lr);
      if (cycle) momentum_of(gs[i]) = momentum;
    }
    return lrs;
  }

  void save_hyper(nn::StateDict& sd) const override {
    using namespace sched_detail;
    sd.set("total_steps", i64(total_steps_));
    sd.set("three_phase", i64(three_phase_ == ThreePhase::yes));
    std::vector<double> ends;
    for (const auto& p : phases_) ends.push_back(p.end_step);
    write_f64_list(sd, "phase_end", ends);
    sd.set("anneal_strategy", i64(anneal_ == AnnealStrategy::linear));
    sd.set("cycle_momentum", i64(cycle_ == CycleMomentum::yes));
    sd.set("use_beta1", i64(use_beta1_));
    write_f64_list(sd, "max_lr", max_lr_);
    write_f64_list(sd, "min_lr", min_lr_);
    if (cycle_ == CycleMomentum::yes) {
      write_f64_list(sd, "max_momentum", max_momentum_);
      write_f64_list(sd, "base_momentum", base_momentum_);
    }
  }

  void load_hyper(const nn::StateDict& sd) override {
    using namespace sched_detail;
    const size_t n = groups().size();
    const int64_t total = read_i64(sd, "total_steps", name());
    WANWU_CHECK_VALUE(total >= 1, name(), ": invalid total_steps ", total, " in the state dict");
    const int64_t three = read_i64(sd, "three_phase", name());
    const int64_t linear = read_i64(sd, "anneal_strategy", name());
    const int64_t cycle = read_i64(sd, "cycle_momentum", name());
    const int64_t beta1 = read_i64(sd, "use_beta1", name());
    for (int64_t flag : {three, linear, cycle, beta1})
      WANWU_CHECK_VALUE(flag == 0 || flag == 1, name(), ": invalid flag ", flag, " in the state dict");
    const auto ends = read_f64_list(sd, "phase_end", name());
    WANWU_CHECK_VALUE(ends.size() == (three ? 3u : 2u), name(), ": the state dict has ", ends.size(),
                      " phases, a ", three ? "three" : "two", "-phase cycle needs ", three ? 3 : 2);
    auto phases = phase_table(three ? ThreePhase::yes : ThreePhase::no);
    for (size_t k = 0; k < phases.size(); ++k) phases[k].end_step = ends[k];
    check_phases(phases, total);
    auto max_lr = read_group_list(sd, "max_lr", n, name());
    auto min_lr = read_group_list(sd, "min_lr", n, name());
    std::vector<double> max_m, base_m;
    if (cycle) {
      const bool here = momentum_field_of(optimizer()) == Field::beta1;
      WANWU_CHECK_VALUE(here == (beta1 == 1), name(), ": the state dict cycles ", beta1 ? "beta1" : "momentum",
                        ", this optimizer (", optimizer().name(), ") has ", here ? "beta1" : "momentum");
      max_m = read_group_list(sd, "max_momentum", n, name());
      base_m = read_group_list(sd, "base_momentum", n, name());
    }
    total_steps_ = total;
    three_phase_ = three ? ThreePhase::yes : ThreePhase::no;
    phases_ = std::move(phases);
    anneal_ = linear ? AnnealStrategy::linear : AnnealStrategy::cos;
    cycle_ = cycle ? CycleMomentum::yes : CycleMomentum::no;
    use_beta1_ = beta1 == 1;
    max_lr_ = std::move(max_lr);
    min_lr_ = std::move(min_lr);
    max_momentum_ = std::move(max_m);
    base_momentum_ = std::move(base_m);
  }

 private:
  enum class Value : uint8_t { initial_lr, max_lr, min_lr, max_momentum, base_momentum };
  enum class Field : uint8_t { momentum, beta1 };
  struct Phase {
    double end_step;
    Value start_lr, end_lr, start_momentum, end_momentum;
  };

  static std::vector<Phase> phase_table(ThreePhase three) {
    using V = Value;
    if (three == ThreePhase::yes)
      return {{0, V::initial_lr, V::max_lr, V::max_momentum, V::base_momentum},
              {0, V::max_lr, V::initial_lr, V::base_momentum, V::max_momentum},
              {0, V::initial_lr, V::min_lr, V::max_momentum, V::max_momentum}};
    return {{0, V::initial_lr, V::max_lr, V::max_momentum, V::base_momentum},
            {0, V::max_lr, V::min_lr, V::base_momentum, V::max_momentum}};
  }
  static std::vector<Phase> make_phases(double pct_start, int64_t total, ThreePhase three) {
    using sched_detail::rounded;
    const double T = static_cast<double>(total);
    auto phases = phase_table(three);
    phases[0].end_step = rounded(pct_start * T) - 1;
    if (three == ThreePhase::yes) phases[1].end_step = rounded(2 * pct_start * T) - 2;
    phases.back().end_step = T - 1;
    return phases;
  }
  // A phase of zero length would divide 0 by 0 when it is reached (PyTorch raises then); say so
  // up front instead.
  void check_phases(const std::vector<Phase>& phases, int64_t total) const {
    double start = 0;
    for (size_t k = 0; k < phases.size(); ++k) {
      WANWU_CHECK_VALUE(phases[k].end_step != start, name(), ": phase ", k,
                        " of the cycle is empty (it would end at step ", phases[k].end_step,
                        " where it starts) with total_steps ", total, "; choose another pct_start or total_steps");
      start = phases[k].end_step;
    }
  }

  int64_t resolve_total_steps(const OneCycleOptions& o) const {
    if (o.total_steps) {
      WANWU_CHECK_VALUE(*o.total_steps > 0, name(), ": expected a positive total_steps, got ", *o.total_steps);
      return *o.total_steps;
    }
    WANWU_CHECK_VALUE(o.epochs && o.steps_per_epoch, name(),
                      ": define either total_steps or both epochs and steps_per_epoch");
    WANWU_CHECK_VALUE(*o.epochs > 0, name(), ": expected a positive epochs, got ", *o.epochs);
    WANWU_CHECK_VALUE(*o.steps_per_epoch > 0, name(), ": expected a positive steps_per_epoch, got ", *o.steps_per_epoch);
    return *o.epochs * *o.steps_per_epoch;
  }

  // PyTorch cycles 'betas'[0] when the optimizer has betas, else 'momentum'.
  Field momentum_field_of(const Optimizer& opt) const {
    if (dynamic_cast<const AdamBase*>(&opt)) return Field::beta1;
    if (dynamic_cast<const SGD*>(&opt)) return Field::momentum;
    throw ValueError(detail::str(name(), ": cycle_momentum needs an optimizer with a momentum (SGD) or betas (Adam, ",
                                 "AdamW), got ", opt.name(), "; use CycleMomentum::no"));
  }
  void check_momentum(double v, const char* what) const {
    if (use_beta1_)  // Adam's bias correction divides by 1 - beta1^t
      WANWU_CHECK_VALUE(v >= 0 && v < 1, name(), ": ", what, " cycles Adam's beta1 and must be in [0, 1), got ", v);
    else
      WANWU_CHECK_VALUE(v >= 0 && v <= 1, name(), ": ", what, " cycles SGD's momentum and must be in [0, 1], got ", v);
  }
  double& momentum_of(ParamGroup& g) const { return use_beta1_ ? g.beta1 : g.momentum; }

  double value(size_t group, Value v) const {
    switch (v) {
      case Value::initial_lr: return *groups()[group].initial_lr;
      case Value::max_lr: return max_lr_[group];
      case Value::min_lr: return min_lr_[group];
      case Value::max_momentum: return max_momentum_[group];
      case Value::base_momentum: return base_momentum_[group];
    }
    return 0;
  }
  double anneal(double start, double end, double pct) const {
    using sched_detail::rounded;
    if (anneal_ == AnnealStrategy::cos) {
      const double cos_out = std::cos(std::numbers::pi * pct) + 1;
      return end + rounded((start - end) / 2.0 * cos_out);
    }
    return rounded((end - start) * pct) + start;
  }

  int64_t total_steps_ = 0;
  ThreePhase three_phase_ = ThreePhase::no;
  std::vector<Phase> phases_;
  AnnealStrategy anneal_ = AnnealStrategy::cos;
  CycleMomentum cycle_ = CycleMomentum::no;
  bool use_beta1_ = false;
  std::vector<double> max_lr_, min_lr_, max_momentum_, base_momentum_;
};

}  // namespace wanwu::optim
