// Learning-rate schedules: values worked out by hand for a few steps of each schedule (from the
// schedules' defining formulas, not from this implementation), the argument and state-dict
// errors, and state_dict round trips (save mid-run, load into a fresh optimizer and schedule: the
// next 50 steps are bit-identical). Step-by-step equality with PyTorch over 100 steps is
// tests/parity/test_parity_sched.cpp.
#include <cmath>
#include <functional>
#include <iomanip>
#include <memory>
#include <numbers>

#include <wanwu/optim/sched.hpp>

#include "harness.hpp"

using namespace wanwu;
using namespace wanwu::optim;

namespace {

constexpr double kPi = std::numbers::pi;

// Two groups, lr 1 and 0.5, so that hand-computed factors read directly.
std::vector<ParamGroup> two_groups(double lr0 = 1.0, double lr1 = 0.5, double momentum = 0.0) {
  SGDOptions o;
  o.momentum = momentum;
  o.lr = lr0;
  ParamGroup a = o.group({zeros({3}, DType::f64).requires_grad_()}, "backbone");
  o.lr = lr1;
  ParamGroup b = o.group({zeros({2}, DType::f64).requires_grad_()}, "head");
  return {a, b};
}
std::unique_ptr<SGD> make_sgd(double momentum = 0.0) { return std::make_unique<SGD>(two_groups(1.0, 0.5, momentum)); }
std::unique_ptr<Adam> make_adam() {
  AdamOptions o;
  o.lr = 1.0;
  ParamGroup a = o.group({zeros({3}, DType::f64).requires_grad_()});
  o.lr = 0.5;
  ParamGroup b = o.group({zeros({2}, DType::f64).requires_grad_()});
  return std::make_unique<Adam>(std::vector<ParamGroup>{a, b});
}

std::vector<double> lrs(const Optimizer& opt) {
  std::vector<double> v;
  for (const auto& g : opt.param_groups()) v.push_back(g.lr);
  return v;
}

// |got - want| <= rtol * |want| (so an expected 0 must be exact).
void check_rel(double got, double want, double rtol = 1e-12) {
  INFO("got " << std::setprecision(17) << got << ", expected " << want << " (rtol " << rtol << ")");
  CHECK(std::fabs(got - want) <= rtol * std::fabs(want));
}

// Group 0 has lr `f` (base 1), group 1 `f / 2` (base 0.5): every schedule here scales both alike.
void check_factor(const Optimizer& opt, double f, double rtol = 1e-12) {
  const auto v = lrs(opt);
  REQUIRE(v.size() == 2);
  check_rel(v[0], f, rtol);
  check_rel(v[1], f / 2, rtol);
}

// An optimizer with neither momentum nor betas.
struct PlainDescent : Optimizer {
  explicit PlainDescent(std::vector<ParamGroup> g) {
    for (auto& x : g) add_param_group(std::move(x));
  }
  void step() override {}
  std::string name() const override { return "PlainDescent"; }
};

}  // namespace

TEST_CASE("StepLR decays by gamma every step_size steps; step(epoch) uses the closed form") {
  auto opt = make_sgd();
  StepLR s(*opt, 2, 0.5);
  CHECK(opt->param_groups()[0].initial_lr == 1.0);
  CHECK(opt->param_groups()[1].initial_lr == 0.5);
  CHECK(s.base_lrs() == std::vector<double>{1.0, 0.5});
  CHECK(s.last_epoch() == 0);
  const double want[] = {1, 1, 0.5, 0.5, 0.25, 0.25, 0.125};
  check_factor(*opt, want[0]);
  for (int e = 1; e < 7; ++e) {
    s.step();
    CHECK(s.last_epoch() == e);
    check_factor(*opt, want[e]);
    CHECK(s.get_last_lr() == lrs(*opt));
  }
  // The chainable form follows an lr changed from outside; the closed form ignores it.
  opt->param_groups()[0].lr = 3.0;
  s.step();  // epoch 7: no decay
  CHECK(opt->param_groups()[0].lr == 3.0);
  s.step(9);  // 1 * 0.5^4
  check_factor(*opt, 0.0625);
  CHECK(s.last_epoch() == 9);
}

TEST_CASE("MultiStepLR: repeated milestones multiply gamma, order does not matter") {
  auto opt = make_sgd();
  MultiStepLR s(*opt, {4, 2, 4}, 0.1);
  CHECK(s.milestones() == std::vector<int64_t>{2, 4, 4});
  const double want[] = {1, 1, 0.1, 0.1, 0.001, 0.001};
  check_factor(*opt, want[0]);
  for (int e = 1; e < 6; ++e) {
    s.step();
    check_factor(*opt, want[e]);
  }
  s.step(3);
  check_factor(*opt, 0.1);
  s.step(100);
  check_factor(*opt, 0.001);
}

TEST_CASE("CosineAnnealingLR: half a cosine to eta_min, then back up (recursive form)") {
  auto opt = make_sgd();
  const double eta = 0.2;
  CosineAnnealingLR s(*opt, 4, eta);
  // group 0: eta + (1 - eta) (1 + cos(pi t / 4)) / 2; group 1 the same with base 0.5.
  const double r2 = std::sqrt(2.0) / 2;
  const double c[] = {1, (1 + r2) / 2, 0.5, (1 - r2) / 2, 0, (1 - r2) / 2, 0.5, (1 + r2) / 2, 1};
  for (int t = 0; t <= 8; ++t) {
    CAPTURE(t);
    const auto v = lrs(*opt);
    check_rel(v[0], eta + (1 - eta) * c[t], 1e-12);
    check_rel(v[1], eta + (0.5 - eta) * c[t], 1e-12);
    s.step();
  }
  s.step(2);  // closed form
  check_rel(opt->param_groups()[0].lr, 0.6, 1e-15);
}

TEST_CASE("CosineAnnealingLR resumed with last_epoch starts from the closed form") {
  auto opt = make_sgd();
  for (auto& g : opt->param_groups()) g.initial_lr = g.lr;
  CosineAnnealingLR s(*opt, 10, 0.0, 4);
  CHECK(s.last_epoch() == 5);
  check_factor(*opt, (1 + std::cos(kPi * 5 / 10)) / 2);
  s.step();
  check_factor(*opt, (1 + std::cos(kPi * 6 / 10)) / 2);
}

TEST_CASE("LinearLR: the factor moves linearly, then holds") {
  auto opt = make_sgd();
  LinearLR s(*opt, 0.5, 1.0, 4);
  const double want[] = {0.5, 0.625, 0.75, 0.875, 1.0, 1.0, 1.0};
  for (int e = 0; e < 7; ++e) {
    CAPTURE(e);
    check_factor(*opt, want[e]);
    s.step();
  }
  s.step(1);
  check_factor(*opt, 0.625);

  auto opt2 = make_sgd();
  LinearLR decay(*opt2, 1.0, 0.0, 4);  // a linear decay to zero
  const double down[] = {1.0, 0.75, 0.5, 0.25, 0.0, 0.0};
  for (int e = 0; e < 6; ++e) {
    CAPTURE(e);
    check_factor(*opt2, down[e]);
    decay.step();
  }
}

TEST_CASE("warmup_cosine: linear warm-up, then cosine from the full lr to eta_min") {
  auto opt = make_sgd();
  auto s = warmup_cosine(*opt, 2, 6, 0.5, 0.0);
  // warm-up: factors 0.5, 0.75; at step 2 the cosine (T_max 4) starts at 1 and reaches 0 at 6.
  const double want[] = {0.5, 0.75, 1.0, (1 + std::cos(kPi / 4)) / 2, 0.5, (1 + std::cos(3 * kPi / 4)) / 2, 0.0};
  for (int t = 0; t <= 6; ++t) {
    CAPTURE(t);
    check_factor(*opt, want[t]);
    CHECK(s.get_last_lr() == lrs(*opt));
    CHECK(s.last_epoch() == t);
    s.step();
  }
  CHECK(opt->param_groups()[0].initial_lr == 1.0);
  REQUIRE(s.schedulers().size() == 2);
  CHECK(s.schedulers()[0]->name() == "LinearLR");
  CHECK(s.schedulers()[1]->name() == "CosineAnnealingLR");
}

TEST_CASE("SequentialLR switches at each milestone and restarts the next schedule at epoch 0") {
  auto opt = make_sgd();
  auto a = std::make_shared<StepLR>(*opt, 1, 0.5);       // halves every step
  auto b = std::make_shared<MultiStepLR>(*opt, std::vector<int64_t>{2}, 0.1);
  SequentialLR s(*opt, {a, b}, {3});
  // StepLR from the base: 1, 0.5, 0.25; at 3 MultiStepLR's closed form at 0 (= base 1); its
  // milestone 2 is epoch 5 of the sequence.
  const double want[] = {1, 0.5, 0.25, 1, 1, 0.1, 0.1};
  for (int t = 0; t < 7; ++t) {
    CAPTURE(t);
    check_factor(*opt, want[t]);
    s.step();
  }
}

TEST_CASE("OneCycleLR (linear, SGD momentum): the phases by hand, and no step past total_steps") {
  auto opt = make_sgd(0.5);
  OneCycleOptions o;
  o.max_lr = {1.0, 0.5};
  o.total_steps = 10;
  o.pct_start = 0.3;  // warm-up ends at step 0.3 * 10 - 1 = 2
  o.anneal_strategy = AnnealStrategy::linear;
  o.div_factor = 4;         // initial 0.25
  o.final_div_factor = 10;  // min 0.025
  o.base_momentum = {0.8};
  o.max_momentum = {0.9};
  OneCycleLR s(*opt, o);
  CHECK(*opt->param_groups()[0].initial_lr == 0.25);
  check_rel(s.min_lrs()[0], 0.025, 1e-15);
  const double lr[] = {0.25, 0.625, 1.0, 1 - 0.975 / 7, 1 - 0.975 * 2 / 7};
  const double m[] = {0.9, 0.85, 0.8, 0.8 + 0.1 / 7, 0.8 + 0.2 / 7};
  for (int t = 0; t < 5; ++t) {
    CAPTURE(t);
    check_factor(*opt, lr[t]);
    check_rel(opt->param_groups()[0].momentum, m[t], 1e-12);
    check_rel(opt->param_groups()[1].momentum, m[t], 1e-12);
    s.step();
  }
  while (s.last_epoch() < 9) s.step();
  check_factor(*opt, 0.025);
  check_rel(opt->param_groups()[0].momentum, 0.9, 1e-12);
  s.step();  // step 10 is still allowed (PyTorch extrapolates the last phase)
  check_factor(*opt, 1 - 0.975 * 8 / 7);
  CHECK_THROWS_WITH_AS(s.step(), doctest::Contains("tried to step 12 times"), ValueError);
  CHECK(s.last_epoch() == 10);  // a failed step changes nothing
}

TEST_CASE("OneCycleLR (cos, three phases, Adam): cycles beta1, leaves momentum alone") {
  auto opt = make_adam();
  OneCycleOptions o;
  o.max_lr = {2.0};
  o.total_steps = 10;
  o.pct_start = 0.3;  // phases end at 2, 4 and 9
  o.three_phase = ThreePhase::yes;
  o.div_factor = 8;  // initial 0.25
  o.final_div_factor = 5;  // min 0.05
  OneCycleLR s(*opt, o);
  // cos anneal: end + (start - end) (1 + cos(pi pct)) / 2
  auto cosa = [](double a, double b, double pct) { return b + (a - b) * (1 + std::cos(kPi * pct)) / 2; };
  const double lr[] = {0.25, cosa(0.25, 2, 0.5), 2.0, cosa(2, 0.25, 0.5), 0.25, cosa(0.25, 0.05, 0.2)};
  const double b1[] = {0.95, cosa(0.95, 0.85, 0.5), 0.85, cosa(0.85, 0.95, 0.5), 0.95, 0.95};
  for (int t = 0; t < 6; ++t) {
    CAPTURE(t);
    check_rel(opt->param_groups()[0].lr, lr[t], 1e-12);
    check_rel(opt->param_groups()[1].lr, lr[t], 1e-12);  // one max_lr for both groups
    check_rel(opt->param_groups()[0].beta1, b1[t], 1e-12);
    CHECK(opt->param_groups()[0].momentum == 0.0);
    s.step();
  }
}

TEST_CASE("OneCycleLR: epochs * steps_per_epoch, and CycleMomentum::no leaves the momentum") {
  auto opt = make_sgd(0.3);
  OneCycleOptions o;
  o.max_lr = {1.0};
  o.epochs = 3;
  o.steps_per_epoch = 4;
  o.cycle_momentum = CycleMomentum::no;
  OneCycleLR s(*opt, o);
  CHECK(s.total_steps() == 12);
  for (int t = 0; t < 12; ++t) s.step();
  CHECK(opt->param_groups()[0].momentum == 0.3);
}

TEST_CASE("ReduceLROnPlateau (min, rel): patience, cooldown, per-group min_lr and eps") {
  auto opt = make_sgd();
  PlateauOptions o;
  o.factor = 0.5;
  o.patience = 1;
  o.threshold = 0.1;  // better means < 0.9 * best
  o.cooldown = 1;
  o.min_lr = {0.3, 0.1};
  ReduceLROnPlateau s(*opt, o);
  struct Row {
    double metric, lr0, lr1;
    int64_t bad;
  };
  const Row rows[] = {
      {10, 1, 0.5, 0},        // first value: the best
      {9.5, 1, 0.5, 1},       // within the threshold: bad
      {9.5, 0.5, 0.25, 0},    // second bad > patience: cut, cooldown 1
      {9.5, 0.5, 0.25, 0},    // in cooldown: not counted
      {9.5, 0.5, 0.25, 1},    //
      {9.5, 0.3, 0.125, 0},   // cut: group 0 stops at min_lr
      {8.5, 0.3, 0.125, 0},   // better than 9.0
      {8.5, 0.3, 0.125, 1},   //
      {8.5, 0.3, 0.1, 0},     // group 0 already at min_lr (no change); group 1 to its min_lr
  };
  for (const auto& r : rows) {
    CAPTURE(r.metric);
    s.step(r.metric);
    CHECK(opt->param_groups()[0].lr == r.lr0);
    CHECK(opt->param_groups()[1].lr == r.lr1);
    CHECK(s.num_bad_epochs() == r.bad);
  }
  CHECK(s.best() == 8.5);
  CHECK(s.last_epoch() == 9);
  CHECK(s.get_last_lr() == std::vector<double>{0.3, 0.1});
}

TEST_CASE("ReduceLROnPlateau (max, abs) and a cut smaller than eps") {
  auto opt = make_sgd();
  PlateauOptions o;
  o.mode = PlateauMode::max;
  o.threshold_mode = ThresholdMode::abs;
  o.threshold = 0.5;  // better means > best + 0.5
  o.patience = 0;
  o.factor = 0.9;
  o.eps = 0.06;  // group 0: 1 -> 0.9 is a cut of 0.1; group 1: 0.5 -> 0.45 only 0.05, skipped
  ReduceLROnPlateau s(*opt, o);
  s.step(1.0);
  CHECK(s.best() == 1.0);
  s.step(1.4);  // not better by more than 0.5
  check_rel(opt->param_groups()[0].lr, 0.9, 1e-15);
  CHECK(opt->param_groups()[1].lr == 0.5);
  s.step(2.0);  // better
  CHECK(s.best() == 2.0);
  check_rel(opt->param_groups()[0].lr, 0.9, 1e-15);
  s.step(std::nan(""));  // NaN is never an improvement
  check_rel(opt->param_groups()[0].lr, 0.81, 1e-15);
}

TEST_CASE("bad arguments throw ValueError naming the schedule and the value") {
  auto opt = make_sgd();
  auto throws = [](const std::function<void()>& f, const char* text) {
    CHECK_THROWS_WITH_AS(f(), doctest::Contains(text), ValueError);
  };
  throws([&] { StepLR(*opt, 0); }, "StepLR: step_size must be >= 1, got 0");
  throws([&] { StepLR(*opt, 3, -0.5); }, "StepLR: gamma must be finite and >= 0, got -0.5");
  throws([&] { StepLR(*opt, 3, 0.5, -2); }, "StepLR: last_epoch must be -1");
  throws([&] { MultiStepLR(*opt, {3, -1}); }, "MultiStepLR: milestones must be >= 0, got -1");
  throws([&] { CosineAnnealingLR(*opt, 0); }, "CosineAnnealingLR: T_max must be >= 1, got 0");
  throws([&] { CosineAnnealingLR(*opt, 5, -1e-3); }, "CosineAnnealingLR: eta_min must be finite and >= 0");
  throws([&] { LinearLR(*opt, 0.0); }, "LinearLR: start_factor must be in (0, 1], got 0");
  throws([&] { LinearLR(*opt, 0.5, 1.5); }, "LinearLR: end_factor must be in [0, 1], got 1.5");
  throws([&] { LinearLR(*opt, 0.5, 1.0, 0); }, "LinearLR: total_iters must be >= 1, got 0");
  throws([&] { StepLR(*opt, 2).step(-3); }, "StepLR: step(epoch) needs epoch >= 0, got -3");
  throws([&] { warmup_cosine(*opt, 0, 10); }, "warmup_cosine: warmup_steps must be >= 1, got 0");
  throws([&] { warmup_cosine(*opt, 10, 10); }, "warmup_cosine: total_steps (10) must exceed warmup_steps (10)");
  throws([&] { warmup_cosine(*opt, 2, 10, 0.0); }, "warmup_cosine: warmup_start_factor must be in (0, 1], got 0");

  // SequentialLR
  auto other = make_sgd();
  auto a = std::make_shared<StepLR>(*opt, 2);
  auto b = std::make_shared<StepLR>(*other, 2);
  throws([&] { SequentialLR(*opt, {a, b}, {3}); }, "SequentialLR: schedule 1 (StepLR) belongs to a different optimizer");
  throws([&] { SequentialLR(*opt, {a, a}, {}); }, "needs one milestone fewer than schedules, got 2 schedules and 0");
  throws([&] { SequentialLR(*opt, {a, a, a}, {4, 4}); }, "milestones must be strictly increasing, got 4 then 4");
  throws([&] { SequentialLR(*opt, {}, {}); }, "SequentialLR: needs at least one schedule");

  // OneCycleLR
  OneCycleOptions o;
  o.max_lr = {0.1, 0.2, 0.3};
  o.total_steps = 10;
  throws([&] { OneCycleLR(*opt, o); }, "OneCycleLR: expected 1 or 2 values for max_lr (one per parameter group), got 3");
  o.max_lr = {0.1};
  o.total_steps = 0;
  throws([&] { OneCycleLR(*opt, o); }, "OneCycleLR: expected a positive total_steps, got 0");
  o.total_steps.reset();
  o.epochs = 3;
  throws([&] { OneCycleLR(*opt, o); }, "OneCycleLR: define either total_steps or both epochs and steps_per_epoch");
  o.total_steps = 10;
  o.pct_start = 1.5;
  throws([&] { OneCycleLR(*opt, o); }, "OneCycleLR: pct_start must be in [0, 1], got 1.5");
  o.pct_start = 0.6;
  o.three_phase = ThreePhase::yes;
  throws([&] { OneCycleLR(*opt, o); }, "OneCycleLR: a three-phase cycle needs pct_start <= 0.5");
  o.three_phase = ThreePhase::no;
  o.pct_start = 0.1;  // 0.1 * 10 - 1 = 0: the warm-up would end where it starts
  throws([&] { OneCycleLR(*opt, o); }, "OneCycleLR: phase 0 of the cycle is empty");
  o.pct_start = 0.3;
  o.div_factor = 0;
  throws([&] { OneCycleLR(*opt, o); }, "OneCycleLR: div_factor must be finite and > 0, got 0");
  o.div_factor = 25;
  auto adam = make_adam();
  o.max_momentum = {1.0};
  throws([&] { OneCycleLR(*adam, o); }, "OneCycleLR: max_momentum cycles Adam's beta1 and must be in [0, 1), got 1");
  o.max_momentum = {0.95};
  PlainDescent plain(two_groups());
  throws([&] { OneCycleLR(plain, o); }, "OneCycleLR: cycle_momentum needs an optimizer with a momentum (SGD)");
  o.cycle_momentum = CycleMomentum::no;
  CHECK_NOTHROW(OneCycleLR(plain, o));

  // ReduceLROnPlateau
  PlateauOptions p;
  p.factor = 1.0;
  throws([&] { ReduceLROnPlateau(*opt, p); }, "ReduceLROnPlateau: factor must be in [0, 1), got 1");
  p.factor = 0.1;
  p.patience = -1;
  throws([&] { ReduceLROnPlateau(*opt, p); }, "ReduceLROnPlateau: patience must be >= 0, got -1");
  p.patience = 2;
  p.min_lr = {0.1, 0.2, 0.3};
  throws([&] { ReduceLROnPlateau(*opt, p); }, "ReduceLROnPlateau: expected 1 or 2 values for min_lr");
  p.min_lr = {-1};
  throws([&] { ReduceLROnPlateau(*opt, p); }, "ReduceLROnPlateau: min_lr must be finite and >= 0, got -1");
  p.min_lr = {0};
  p.cooldown = -2;
  throws([&] { ReduceLROnPlateau(*opt, p); }, "ReduceLROnPlateau: cooldown must be >= 0, got -2");
}

TEST_CASE("a rejected schedule leaves the optimizer untouched") {
  auto opt = make_sgd(0.5);
  OneCycleOptions o;
  o.max_lr = {4.0};
  o.total_steps = 10;
  o.max_momentum = {0.95};
  o.base_momentum = {-0.1};
  CHECK_THROWS_AS(OneCycleLR(*opt, o), ValueError);
  CHECK_FALSE(opt->param_groups()[0].initial_lr.has_value());
  CHECK(opt->param_groups()[0].lr == 1.0);
  CHECK(opt->param_groups()[0].momentum == 0.5);
  CHECK_THROWS_AS(StepLR(*opt, 0), ValueError);
  CHECK_FALSE(opt->param_groups()[0].initial_lr.has_value());
}

TEST_CASE("resuming with last_epoch needs initial_lr in every group") {
  auto opt = make_sgd();
  CHECK_THROWS_WITH_AS(StepLR(*opt, 2, 0.1, 5), doctest::Contains("StepLR: resuming at last_epoch 5 needs initial_lr"),
                       ValueError);
}

TEST_CASE("a schedule rejects an optimizer whose groups changed") {
  auto opt = make_sgd();
  StepLR s(*opt, 2);
  SGDOptions o;
  opt->add_param_group(o.group({zeros({1}, DType::f64).requires_grad_()}));
  CHECK_THROWS_WITH_AS(s.step(), doctest::Contains("the optimizer has 3 parameter groups, the schedule was built for 2"),
                       ValueError);
}

// ---- state dicts ----

namespace {

struct Run {
  std::unique_ptr<Optimizer> opt;
  std::function<void()> step;  // one optimizer + schedule step
  std::function<nn::StateDict()> save;
  std::function<void(const nn::StateDict&)> load;
};

// Runs `a` for `k` steps, saves optimizer and schedule, loads them into the fresh `b` and checks
// that the next 50 steps give identical lrs, momenta and beta1.
void check_resume(Run a, Run b, int k = 23) {
  for (int i = 0; i < k; ++i) a.step();
  const nn::StateDict opt_sd = a.opt->state_dict();
  const nn::StateDict sched_sd = a.save();
  for (const auto& entry : sched_sd) {
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    CAPTURE(name);
    CHECK(t.dim() == 0);
    CHECK((t.dtype() == DType::f64 || t.dtype() == DType::i64));
  }
  b.opt->load_state_dict(opt_sd);
  b.load(sched_sd);
  for (int i = 0; i < 50; ++i) {
    CAPTURE(i);
    a.step();
    b.step();
    for (size_t g = 0; g < a.opt->param_groups().size(); ++g) {
      const auto& x = a.opt->param_groups()[g];
      const auto& y = b.opt->param_groups()[g];
      REQUIRE(x.lr == y.lr);  // bit-identical
      REQUIRE(x.momentum == y.momentum);
      REQUIRE(x.beta1 == y.beta1);
    }
  }
}

template <class S, class... Args>
Run run_of(std::unique_ptr<Optimizer> opt, Args&&... args) {
  Run r;
  auto s = std::make_shared<S>(*opt, std::forward<Args>(args)...);
  Optimizer* o = opt.get();
  r.opt = std::move(opt);
  r.step = [s, o] {
    o->step();
    s->step();
  };
  r.save = [s] { return s->state_dict(); };
  r.load = [s](const nn::StateDict& sd) { s->load_state_dict(sd); };
  return r;
}

}  // namespace

TEST_CASE("state_dict round trip: the next 50 steps are bit-identical") {
  SUBCASE("StepLR (hyper-parameters come from the state dict)") {
    check_resume(run_of<StepLR>(make_sgd(), 7, 0.7), run_of<StepLR>(make_sgd(), 3, 0.1));
  }
  SUBCASE("MultiStepLR") {
    check_resume(run_of<MultiStepLR>(make_sgd(), std::vector<int64_t>{5, 30, 30, 60}, 0.5),
                 run_of<MultiStepLR>(make_sgd(), std::vector<int64_t>{1}, 0.9));
  }
  SUBCASE("CosineAnnealingLR, through a restart") {
    check_resume(run_of<CosineAnnealingLR>(make_sgd(), 20, 0.01), run_of<CosineAnnealingLR>(make_sgd(), 20, 0.01));
  }
  SUBCASE("LinearLR") {
    check_resume(run_of<LinearLR>(make_sgd(), 0.1, 1.0, 40), run_of<LinearLR>(make_sgd(), 0.1, 1.0, 40));
  }
  SUBCASE("OneCycleLR with Adam") {
    OneCycleOptions o;
    o.max_lr = {0.3, 0.1};
    o.total_steps = 80;
    o.three_phase = ThreePhase::yes;
    check_resume(run_of<OneCycleLR>(make_adam(), o), run_of<OneCycleLR>(make_adam(), o));
  }
  SUBCASE("OneCycleLR with SGD, loaded into one built with other options") {
    OneCycleOptions o;
    o.max_lr = {0.3};
    o.total_steps = 80;
    o.anneal_strategy = AnnealStrategy::linear;
    OneCycleOptions other;
    other.max_lr = {1.0};
    other.total_steps = 200;
    check_resume(run_of<OneCycleLR>(make_sgd(0.9), o), run_of<OneCycleLR>(make_sgd(0.9), other));
  }
  SUBCASE("SequentialLR (warmup_cosine)") {
    auto make = [] {
      Run r;
      r.opt = make_sgd();
      auto s = std::make_shared<SequentialLR>(warmup_cosine(*r.opt, 10, 70, 0.1, 1e-4));
      Optimizer* o = r.opt.get();
      r.step = [s, o] {
        o->step();
        s->step();
      };
      r.save = [s] { return s->state_dict(); };
      r.load = [s](const nn::StateDict& sd) { s->load_state_dict(sd); };
      return r;
    };
    check_resume(make(), make(), 5);  // saved during the warm-up
    check_resume(make(), make(), 23);
  }
  SUBCASE("ReduceLROnPlateau") {
    auto make = [] {
      Run r;
      r.opt = make_sgd();
      PlateauOptions p;
      p.patience = 2;
      p.cooldown = 1;
      p.factor = 0.7;
      p.min_lr = {1e-3, 1e-4};
      auto s = std::make_shared<ReduceLROnPlateau>(*r.opt, p);
      auto k = std::make_shared<int>(0);
      Optimizer* o = r.opt.get();
      r.step = [s, o, k] {
        o->step();
        const int i = (*k)++;
        s->step(i % 7 == 0 ? 1.0 / (1 + i) : 2.0);  // occasional improvements, long stalls
      };
      r.save = [s, k] {
        auto sd = s->state_dict();
        sd.set("test.counter", scalar_tensor(static_cast<int64_t>(*k), DType::i64));
        return sd;
      };
      r.load = [s, k](const nn::StateDict& sd) {
        s->load_state_dict(sd);
        *k = static_cast<int>(sd.at("test.counter").item<int64_t>());
      };
      return r;
    };
    check_resume(make(), make());
  }
}

TEST_CASE("OneCycleLR resumed with last_epoch continues the run") {
  OneCycleOptions o;
  o.max_lr = {0.5, 0.2};
  o.total_steps = 60;
  auto a = make_sgd(0.9);
  OneCycleLR sa(*a, o);
  for (int i = 0; i < 20; ++i) sa.step();
  auto b = make_sgd(0.9);
  b->load_state_dict(a->state_dict());
  o.last_epoch = 19;  // the constructor takes step 20
  OneCycleLR sb(*b, o);
  CHECK(sb.last_epoch() == 20);
  for (int i = 0; i < 30; ++i) {
    CHECK(lrs(*a) == lrs(*b));
    CHECK(a->param_groups()[1].momentum == b->param_groups()[1].momentum);
    sa.step();
    sb.step();
  }
}

TEST_CASE("load_state_dict rejects a state from another schedule or optimizer, changing nothing") {
  auto opt = make_sgd();
  StepLR step(*opt, 3);
  CosineAnnealingLR cos(*opt, 10);
  const auto before = step.state_dict();
  CHECK_THROWS_WITH_AS(step.load_state_dict(cos.state_dict()),
                       doctest::Contains("StepLR: the state dict has no 'step_size'"), ValueError);
  CHECK(step.step_size() == 3);

  auto three = std::make_unique<SGD>(std::vector<ParamGroup>{two_groups()[0], two_groups()[1], two_groups()[0]});
  StepLR s3(*three, 3);
  CHECK_THROWS_WITH_AS(step.load_state_dict(s3.state_dict()),
                       doctest::Contains("has 3 values of 'base_lrs', the optimizer has 2 parameter groups"),
                       ValueError);

  auto bad = before;
  bad.set("step_size", scalar_tensor(0.5, DType::f64));
  CHECK_THROWS_WITH_AS(step.load_state_dict(bad), doctest::Contains("'step_size' must be an integer tensor"),
                       DTypeError);
  bad.set("step_size", scalar_tensor(int64_t{0}, DType::i64));
  CHECK_THROWS_WITH_AS(step.load_state_dict(bad), doctest::Contains("step_size must be >= 1, got 0"), ValueError);
  CHECK(step.step_size() == 3);

  // OneCycle's momentum target must match the optimizer's kind
  OneCycleOptions o;
  o.max_lr = {0.1};
  o.total_steps = 10;
  auto adam = make_adam();
  OneCycleLR on_adam(*adam, o);
  auto sgd = make_sgd(0.9);
  OneCycleLR on_sgd(*sgd, o);
  CHECK_THROWS_WITH_AS(on_sgd.load_state_dict(on_adam.state_dict()),
                       doctest::Contains("the state dict cycles beta1, this optimizer (SGD) has momentum"), ValueError);

  // A SequentialLR whose child fails to load keeps all its children as they were.
  auto opt2 = make_sgd();
  auto seq = warmup_cosine(*opt2, 3, 10);
  seq.step();
  auto sd = seq.state_dict();
  sd.set("schedulers.0.last_epoch", scalar_tensor(int64_t{7}, DType::i64));
  sd.set("schedulers.1.T_max", scalar_tensor(int64_t{-4}, DType::i64));
  const auto child0 = seq.schedulers()[0]->last_epoch();
  CHECK_THROWS_WITH_AS(seq.load_state_dict(sd), doctest::Contains("CosineAnnealingLR: T_max must be >= 1, got -4"),
                       ValueError);
  CHECK(seq.schedulers()[0]->last_epoch() == child0);
}
