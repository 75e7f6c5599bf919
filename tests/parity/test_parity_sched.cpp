// PyTorch parity for the learning-rate schedules: every schedule and option, two parameter groups
// with different lrs, 100 steps; the per-step lrs (and OneCycleLR's momentum / beta1) against the
// references that tests/parity/sched.py writes with Debian's python3-torch at test time. Each
// reference case carries the schedule's specification, from which this test builds the same
// schedule. Exits 77 (skipped) with the reason when the reference is missing, which is what
// happens when torch is not installed.
//
// Tolerance: both sides compute in float64 with the same formulas in the same order (products
// rounded before they are added, as Python does), so the values agree to the last bit where the
// platform's libm cos/pow are the ones Python uses; we allow 1e-12 relative per value
// (|got - want| <= 1e-12 * |want|; an expected 0 must be exactly 0), room for a different libm,
// whose ulp differences the recursive forms carry forward, and far below any real discrepancy.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>
#include <wanwu/optim/sched.hpp>
#include <wanwu/wanwu.hpp>

using namespace wanwu;
using json = nlohmann::json;

namespace {

constexpr double kRtol = 1e-12;

std::vector<double> doubles(const json& j) {
  if (j.is_array()) return j.get<std::vector<double>>();
  return {j.get<double>()};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const json& spec) {
  std::vector<optim::ParamGroup> groups;
  const auto lrs = spec["lrs"].get<std::vector<double>>();
  for (size_t i = 0; i < lrs.size(); ++i) {
    std::vector<Tensor> params{zeros({2}, DType::f64).requires_grad_()};
    if (spec["type"] == "sgd") {
      optim::SGDOptions o;
      o.lr = lrs[i];
      o.momentum = spec.value("momentum", 0.0);
      groups.push_back(o.group(params));
    } else {
      optim::AdamOptions o;
      o.lr = lrs[i];
      const auto betas = spec["betas"].get<std::vector<double>>();
      o.beta1 = betas[0];
      o.beta2 = betas[1];
      groups.push_back(o.group(params));
    }
  }
  if (spec["type"] == "sgd") return std::make_unique<optim::SGD>(std::move(groups));
  return std::make_unique<optim::Adam>(std::move(groups));
}

std::shared_ptr<optim::LRScheduler> make_epoch_schedule(optim::Optimizer& opt, const json& s) {
  const std::string kind = s["kind"];
  const int64_t le = s.value("last_epoch", int64_t{-1});
  if (kind == "step")
    return std::make_shared<optim::StepLR>(opt, s["step_size"].get<int64_t>(), s.value("gamma", 0.1), le);
  if (kind == "multistep")
    return std::make_shared<optim::MultiStepLR>(opt, s["milestones"].get<std::vector<int64_t>>(),
                                                s.value("gamma", 0.1), le);
  if (kind == "cosine")
    return std::make_shared<optim::CosineAnnealingLR>(opt, s["T_max"].get<int64_t>(), s.value("eta_min", 0.0), le);
  if (kind == "linear")
    return std::make_shared<optim::LinearLR>(opt, s.value("start_factor", 1.0 / 3), s.value("end_factor", 1.0),
                                             s.value("total_iters", int64_t{5}), le);
  if (kind == "onecycle") {
    optim::OneCycleOptions o;
    o.max_lr = doubles(s["max_lr"]);
    if (s.contains("total_steps")) o.total_steps = s["total_steps"].get<int64_t>();
    if (s.contains("epochs")) o.epochs = s["epochs"].get<int64_t>();
    if (s.contains("steps_per_epoch")) o.steps_per_epoch = s["steps_per_epoch"].get<int64_t>();
    o.pct_start = s.value("pct_start", 0.3);
    o.anneal_strategy = s.value("anneal_strategy", "cos") == "linear" ? optim::AnnealStrategy::linear
                                                                       : optim::AnnealStrategy::cos;
    o.cycle_momentum = s.value("cycle_momentum", true) ? optim::CycleMomentum::yes : optim::CycleMomentum::no;
    if (s.contains("base_momentum")) o.base_momentum = doubles(s["base_momentum"]);
    if (s.contains("max_momentum")) o.max_momentum = doubles(s["max_momentum"]);
    o.div_factor = s.value("div_factor", 25.0);
    o.final_div_factor = s.value("final_div_factor", 1e4);
    o.three_phase = s.value("three_phase", false) ? optim::ThreePhase::yes : optim::ThreePhase::no;
    return std::make_shared<optim::OneCycleLR>(opt, o);
  }
  throw std::runtime_error("unknown schedule kind " + kind);
}

std::unique_ptr<optim::Schedule> make_schedule(optim::Optimizer& opt, const json& s) {
  const std::string kind = s["kind"];
  if (kind == "sequential") {
    std::vector<std::shared_ptr<optim::LRScheduler>> children;
    for (const auto& c : s["children"]) children.push_back(make_epoch_schedule(opt, c));
    return std::make_unique<optim::SequentialLR>(opt, std::move(children), s["milestones"].get<std::vector<int64_t>>());
  }
  if (kind == "warmup_cosine")
    return std::make_unique<optim::SequentialLR>(optim::warmup_cosine(
        opt, s["warmup_steps"].get<int64_t>(), s["total_steps"].get<int64_t>(), s["warmup_start_factor"].get<double>(),
        s["eta_min"].get<double>()));
  struct Holder : optim::Schedule {  // a shared LRScheduler behind the Schedule interface
    std::shared_ptr<optim::LRScheduler> s;
    explicit Holder(std::shared_ptr<optim::LRScheduler> p) : s(std::move(p)) {}
    std::string name() const override { return s->name(); }
    void step() override { s->step(); }
    const std::vector<double>& get_last_lr() const override { return s->get_last_lr(); }
    nn::StateDict state_dict() const override { return s->state_dict(); }
    void load_state_dict(const nn::StateDict& sd) override { s->load_state_dict(sd); }
  };
  return std::make_unique<Holder>(make_epoch_schedule(opt, s));
}

optim::PlateauOptions plateau_options(const json& s) {
  optim::PlateauOptions o;
  o.mode = s.value("mode", "min") == "max" ? optim::PlateauMode::max : optim::PlateauMode::min;
  o.factor = s.value("factor", 0.1);
  o.patience = s.value("patience", int64_t{10});
  o.threshold = s.value("threshold", 1e-4);
  o.threshold_mode = s.value("threshold_mode", "rel") == "abs" ? optim::ThresholdMode::abs : optim::ThresholdMode::rel;
  o.cooldown = s.value("cooldown", int64_t{0});
  if (s.contains("min_lr")) o.min_lr = doubles(s["min_lr"]);
  o.eps = s.value("eps", 1e-8);
  return o;
}

std::vector<double> lrs_of(const optim::Optimizer& opt) {
  std::vector<double> v;
  for (const auto& g : opt.param_groups()) v.push_back(g.lr);
  return v;
}
std::vector<double> momenta_of(const optim::Optimizer& opt, bool beta1) {
  std::vector<double> v;
  for (const auto& g : opt.param_groups()) v.push_back(beta1 ? g.beta1 : g.momentum);
  return v;
}

struct Result {
  double max_rel = 0;
  bool ok = true;
  std::string first_failure;
};

// Compares a [step][group] trajectory.
void compare(const std::vector<std::vector<double>>& got, const json& want, const char* what, Result& r) {
  if (got.size() != want.size()) {
    r.ok = false;
    r.first_failure = std::string(what) + ": step counts differ";
    return;
  }
  const size_t groups = want[0].size();
  for (size_t g = 0; g < groups; ++g) {
    for (size_t k = 0; k < want.size(); ++k) {
      const double w = want[k][g].get<double>(), x = got[k][g];
      const double diff = std::fabs(x - w);
      if (w != 0) r.max_rel = std::max(r.max_rel, diff / std::fabs(w));
      if (!(diff <= kRtol * std::fabs(w))) {  // NaN fails too
        if (r.ok) {
          char buf[256];
          std::snprintf(buf, sizeof buf, "%s of group %zu at step %zu: got %.17g, expected %.17g", what, g, k, x, w);
          r.first_failure = buf;
        }
        r.ok = false;
      }
    }
  }
}

Result run_case(const json& c) {
  auto opt = make_optimizer(c["optimizer"]);
  const bool beta1 = c["optimizer"]["type"] == "adam";
  if (c.value("set_initial_lr", false))
    for (auto& g : opt->param_groups()) g.initial_lr = g.lr;
  const json& spec = c["schedule"];
  const int steps = static_cast<int>(c["lr"].size()) - 1;
  // Row 0 is the state right after construction (which takes the first step).
  std::vector<std::vector<double>> lrs, moms;
  auto record = [&] {
    lrs.push_back(lrs_of(*opt));
    moms.push_back(momenta_of(*opt, beta1));
  };
  if (spec["kind"] == "plateau") {
    optim::ReduceLROnPlateau sched(*opt, plateau_options(spec));
    record();
    const auto metrics = c["metrics"].get<std::vector<double>>();
    for (int k = 0; k < steps; ++k) {
      opt->step();
      sched.step(metrics[k]);
      record();
    }
  } else if (c.contains("epochs")) {
    auto sched = make_epoch_schedule(*opt, spec);
    record();
    const auto epochs = c["epochs"].get<std::vector<int64_t>>();
    for (int k = 0; k < steps; ++k) {
      opt->step();
      if (epochs[k] >= 0)
        sched->step(epochs[k]);
      else
        sched->step();
      record();
    }
  } else {
    auto sched = make_schedule(*opt, spec);
    record();
    for (int k = 0; k < steps; ++k) {
      opt->step();
      sched->step();
      record();
      // get_last_lr() reports what the step set
      if (sched->get_last_lr() != lrs.back()) throw std::runtime_error("get_last_lr() differs from the groups' lr");
    }
  }
  Result r;
  compare(lrs, c["lr"], "lr", r);
  if (c.contains("momentum")) compare(moms, c["momentum"], beta1 ? "beta1" : "momentum", r);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s REFERENCE.json\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::printf("SKIPPED: reference %s not found (the PyTorch reference script did not run; is python3-torch "
                "installed?)\n", argv[1]);
    return 77;
  }
  const json ref = json::parse(in);
  std::printf("reference from torch %s, tolerance %.0e relative\n", ref["torch_version"].get<std::string>().c_str(),
              kRtol);
  int failures = 0;
  double worst = 0;
  for (const auto& c : ref["cases"]) {
    const std::string name = c["name"];
    Result r;
    try {
      r = run_case(c);
    } catch (const std::exception& e) {
      r.ok = false;
      r.first_failure = std::string("threw: ") + e.what();
    }
    worst = std::max(worst, r.max_rel);
    std::printf("%s %-36s max rel diff %.3g%s%s\n", r.ok ? "ok  " : "FAIL", name.c_str(), r.max_rel,
                r.ok ? "" : "  ", r.first_failure.c_str());
    if (!r.ok) ++failures;
  }
  std::printf("%zu schedules, max relative difference %.3g\n%s\n", ref["cases"].size(), worst,
              failures ? "FAILED" : "PASSED");
  return failures ? 1 : 0;
}
