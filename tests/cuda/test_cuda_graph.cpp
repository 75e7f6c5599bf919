// CUDA graphs (backend/step_graph.hpp): a training step captured once and replayed must compute
// what the same number of eager steps computes — with a learning rate that changes every step,
// Adam's bias corrections, dropout masks that differ per step and batch norm's running statistics
// — and a step that cannot be recorded must fail at its capture with the call named, leaving the
// device usable. The reference is the eager loop itself, run from the same seed; the graph's
// bookkeeping (live values, generator offsets, step counts) is what would make the two drift.
#include "parity.hpp"

using namespace wanwu;
using cp::kCuda;

namespace {

// conv -> batch norm -> ReLU -> dropout -> global mean -> linear: every kind of device work a
// step holds (cuDNN, our kernels, cuBLASLt, a Philox draw, in-place running statistics).
struct TinyNet : nn::Module {
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Linear> fc;
  explicit TinyNet(Device dev) {
    Generator g(31);
    nn::LayerOptions o;
    o.generator = &g;
    conv = register_module("conv", std::make_shared<nn::Conv2d>(3, 8, 3, 1, 1, 1, 1, nn::Bias::no, o));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(8));
    fc = register_module("fc", std::make_shared<nn::Linear>(8, 5, nn::Bias::yes, o));
    to(dev);
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = dropout(relu((*bn)((*conv)(x))), 0.3, mode());
    return (*fc)(mean(h, Dims{1, 2}));
  }
  std::string type_name() const override { return "TinyNet"; }
};

struct Batches {
  std::vector<Tensor> x, y;
};
Batches make_batches(int n) {
  Generator g(5);
  Batches b;
  for (int i = 0; i < n; ++i) {
    b.x.push_back(randn({4, 6, 6, 3}, DType::f32, &g).to(kCuda));
    b.y.push_back(randint(0, 5, {4}, TensorOptions(DType::i64), &g).to(kCuda));
  }
  return b;
}

// adamw_fp16: f16 autocast under a GradScaler whose scale doubles after every clean step until the
// f16 gradients overflow, so some steps are skipped. The eager run keeps the scale on the host
// (ScalerSync::host: it reads each step's check, the independent reference); the captured run
// keeps it on the device, where the optimizer's kernels skip the step.
enum class Recipe { sgd_f32, adamw_bf16, adamw_fp16 };

std::unique_ptr<optim::Optimizer> make_optimizer(TinyNet& m, Recipe r) {
  if (r == Recipe::sgd_f32) {
    optim::SGDOptions o;
    o.lr = 0.2;
    o.momentum = 0.9;
    o.weight_decay = 1e-3;
    return std::make_unique<optim::SGD>(m.parameters(), o);
  }
  optim::AdamOptions o = optim::AdamW::defaults();
  o.lr = 0.05;
  std::vector<Tensor> decay, no_decay;
  for (const auto& [n, p] : m.named_parameters()) (p.dim() > 1 ? decay : no_decay).push_back(p);
  optim::ParamGroup a = o.group(decay, "decay"), b = o.group(no_decay, "no_decay");
  b.weight_decay = 0.0;
  return std::make_unique<optim::AdamW>(std::vector<optim::ParamGroup>{a, b});
}

// The learning rate of step k, changed between steps as a schedule would.
void set_lr(optim::Optimizer& opt, int k) {
  for (auto& g : opt.param_groups()) g.lr = (g.name == "no_decay" ? 0.03 : 0.1) / (1.0 + k);
}

struct Trained {
  std::vector<std::pair<std::string, Tensor>> state;  // parameters and buffers
  std::vector<double> losses;
  uint64_t generator_offset;
  Tensor first_moment;  // SGD's momentum buffer or Adam's exp_avg of the conv weight
  uint32_t weight_versions, running_mean_versions;  // how often the loop marked them changed
  std::vector<double> scales;  // adamw_fp16: the loss scale after each step
  int64_t adam_steps = 0;      // Adam's step count of the conv weight (steps taken)
  uint32_t taken = 0;          // steps not skipped
};

// One eager step, then `steps` more: eagerly, or replayed from one capture.
Trained train(Recipe r, int steps, bool graph) {
  manual_seed(99);
  TinyNet m(kCuda);
  m.train();
  auto opt = make_optimizer(m, r);
  const Batches data = make_batches(steps + 1);
  Tensor x = data.x[0].clone(), y = data.y[0].clone(), loss;
  amp::GradScalerOptions so;
  so.mode = r == Recipe::adamw_fp16 ? amp::ScalerMode::on : amp::ScalerMode::off;
  so.growth_interval = 1;
  so.sync = graph ? amp::ScalerSync::device : amp::ScalerSync::host;
  amp::GradScaler scaler(so);
  auto step = [&] {
    opt->zero_grad();
    {
      std::optional<amp::Autocast> ac;
      if (r != Recipe::sgd_f32) ac.emplace(r == Recipe::adamw_bf16 ? DType::bf16 : DType::f16);
      loss = cross_entropy(m(x), y);
    }
    scaler.scale(loss).backward();
    scaler.step(*opt);
    scaler.update();
  };
  set_lr(*opt, 0);
  // the warm-up: optimizer state exists before any capture (an fp16 step may be skipped)
  for (int w = 0; w == 0 || !opt->can_gate(); ++w) {
    REQUIRE(w < 20);
    step();
  }
  Trained t;
  StepGraph g(kCuda);
  if (graph) g.capture(step);
  const uint32_t w0 = m.conv->weight.version(), rm0 = m.bn->running_mean.version();
  double scale_before = scaler.get_scale();
  for (int k = 1; k <= steps; ++k) {
    x.copy_(data.x[k]);
    y.copy_(data.y[k]);
    set_lr(*opt, k);
    if (graph) g.replay();
    else step();
    t.losses.push_back(loss.item<double>());
    t.scales.push_back(scaler.get_scale());
    t.taken += t.scales.back() >= scale_before ? 1 : 0;  // a skipped step halves the scale
    scale_before = t.scales.back();
  }
  if (graph) CHECK(g.replays() == steps);
  t.weight_versions = m.conv->weight.version() - w0;
  t.running_mean_versions = m.bn->running_mean.version() - rm0;
  for (const auto& [n, p] : m.named_parameters()) t.state.emplace_back(n, p.detach().clone());
  for (const auto& [n, b] : m.named_buffers()) t.state.emplace_back(n, b.detach().clone());
  t.generator_offset = default_generator().offset();
  const nn::StateDict sd = opt->state_dict();
  t.first_moment = sd.at(r == Recipe::sgd_f32 ? "state.0.momentum_buffer" : "state.0.exp_avg").detach().clone();
  if (r == Recipe::adamw_bf16) CHECK(sd.at("state.0.step").item<int64_t>() == steps + 1);
  if (r != Recipe::sgd_f32) t.adam_steps = sd.at("state.0.step").item<int64_t>();
  return t;
}

void check_same(const Trained& eager, const Trained& replayed) {
  // The same kernels on the same inputs; the slack is for cuDNN algorithms that accumulate in a
  // run-dependent order on a GPU. A frozen learning rate, bias correction or dropout mask moves
  // these by far more.
  const cp::Tol tol{1e-5, 1e-6};
  REQUIRE(eager.losses.size() == replayed.losses.size());
  for (size_t k = 0; k < eager.losses.size(); ++k) {
    CAPTURE(k);
    CHECK(replayed.losses[k] == doctest::Approx(eager.losses[k]).epsilon(1e-5));
  }
  REQUIRE(eager.state.size() == replayed.state.size());
  for (size_t i = 0; i < eager.state.size(); ++i)
    cp::compare(eager.state[i].first, replayed.state[i].second, eager.state[i].second, tol);
  cp::compare("optimizer state", replayed.first_moment, eager.first_moment, tol);
  CHECK(replayed.generator_offset == eager.generator_offset);
  CHECK(replayed.scales == eager.scales);
  CHECK(replayed.adam_steps == eager.adam_steps);
  // every step, replayed or not, marks what it wrote as changed (caches keyed by versions, like
  // eval mode's folded conv-bn weights, depend on it)
  const uint32_t steps = static_cast<uint32_t>(eager.losses.size());
  CHECK(eager.weight_versions >= eager.taken);  // a step skipped on the host writes nothing
  CHECK(eager.running_mean_versions >= steps);
  if (!cp::on_cpu()) {  // a CPU replay is the eager step
    CHECK(replayed.weight_versions == steps);
    CHECK(replayed.running_mean_versions == steps);
  }
}

}  // namespace

TEST_CASE("a captured SGD step (momentum, weight decay, a new lr every step, dropout) replays as its eager twin") {
  const Trained eager = train(Recipe::sgd_f32, 3, false), replayed = train(Recipe::sgd_f32, 3, true);
  // the losses move: each replay ran on its own batch with its own mask
  CHECK(eager.losses[0] != eager.losses[1]);
  check_same(eager, replayed);
}

TEST_CASE("a captured AdamW step under bf16 autocast (two groups, bias corrections, dropout) replays as its eager twin") {
  const Trained eager = train(Recipe::adamw_bf16, 3, false), replayed = train(Recipe::adamw_bf16, 3, true);
  check_same(eager, replayed);
}

TEST_CASE("a captured fp16 AdamW step with the loss scale on the device replays as the host-scaled eager steps, skips included") {
  const Trained eager = train(Recipe::adamw_fp16, 6, false), replayed = train(Recipe::adamw_fp16, 6, true);
  // the check is only worth something if both kinds of step happened among the replays
  CHECK(eager.taken >= 1);
  CHECK(eager.taken < 6);
  CHECK(eager.adam_steps < 7);
  check_same(eager, replayed);
}

TEST_CASE("random draws in a captured step advance at each replay as the eager draws do") {
  manual_seed(4);
  std::vector<std::vector<double>> eager;
  for (int k = 0; k < 3; ++k) eager.push_back(cp::host_values(rand({6}, TensorOptions(DType::f32).device(kCuda))));
  const uint64_t eager_offset = default_generator().offset();
  manual_seed(4);
  Tensor out;
  StepGraph g(kCuda);
  g.capture([&] { out = rand({6}, TensorOptions(DType::f32).device(kCuda)); });
  CHECK(default_generator().offset() == 0);  // the capture drew nothing
  for (int k = 0; k < 3; ++k) {
    g.replay();
    CAPTURE(k);
    CHECK(cp::host_values(out) == eager[k]);
  }
  CHECK(eager[0] != eager[1]);
  CHECK(default_generator().offset() == eager_offset);
  if (cp::on_cpu()) return;  // a CPU replay runs the step again, with the new seed
  default_generator().manual_seed(5);
  CHECK_THROWS_WITH_AS(g.replay(), doctest::Contains("was reseeded after the capture"), ValueError);
}

TEST_CASE("attention dropout in a captured step draws each replay's mask as the eager step does, forward and backward") {
  // q, k, v [B,H,L,D] leaves; the step's output and the gradients of q and v depend on the mask
  Generator g(8);
  Tensor q = randn({2, 2, 5, 8}, DType::f32, &g).to(kCuda).requires_grad_(true);
  Tensor k = randn({2, 2, 7, 8}, DType::f32, &g).to(kCuda);
  Tensor v = randn({2, 2, 7, 8}, DType::f32, &g).to(kCuda).requires_grad_(true);
  AttentionOptions ao;
  ao.dropout_p = 0.3;
  Tensor out;
  auto step = [&] {
    q.set_grad(Tensor());
    v.set_grad(Tensor());
    out = scaled_dot_product_attention(q, k, v, ao);
    out.sum().backward();
  };
  auto snapshot = [&] {
    return std::vector<std::vector<double>>{cp::host_values(out), cp::host_values(q.grad()), cp::host_values(v.grad())};
  };
  manual_seed(12);
  std::vector<std::vector<std::vector<double>>> eager;
  for (int i = 0; i < 3; ++i) {
    step();
    eager.push_back(snapshot());
  }
  CHECK(eager[0][0] != eager[1][0]);  // a new mask each step
  manual_seed(12);
  StepGraph graph(kCuda);
  graph.capture(step);
  for (int i = 0; i < 3; ++i) {
    graph.replay();
    const auto got = snapshot();
    CAPTURE(i);
    for (size_t t = 0; t < got.size(); ++t) {
      REQUIRE(got[t].size() == eager[i][t].size());
      for (size_t e = 0; e < got[t].size(); ++e)
        CHECK(got[t][e] == doctest::Approx(eager[i][t][e]).epsilon(1e-5).scale(1.0));
    }
  }
}

TEST_CASE("StepGraph: replay before capture and a second capture are errors") {
  StepGraph g(kCuda);
  CHECK_THROWS_WITH_AS(g.replay(), doctest::Contains("nothing captured yet"), ValueError);
  Tensor t = zeros({3}, TensorOptions(DType::f32).device(kCuda));
  g.capture([&] { t.add_(1.0); });
  g.replay();
  g.replay();
  CHECK(cp::host_values(t) == std::vector<double>{2, 2, 2});  // the capture itself ran nothing
  CHECK_THROWS_WITH_AS(g.capture([] {}), doctest::Contains("already holds a step"), ValueError);
}

TEST_CASE("a step that reads from the device, or would start optimizer state, fails at its capture; the device keeps working") {
  if (cp::on_cpu()) return;  // the CPU records nothing: its steps run at replay, where reads are fine
  Tensor t = ones({4}, TensorOptions(DType::f32).device(kCuda));
  const MemoryStats before = memory_stats(kCuda);
  {
    StepGraph g(kCuda);
    CHECK_THROWS_WITH_AS(g.capture([&] { (void)(t * 2.0).sum().item<double>(); }),
                         doctest::Contains("a read from the device (item, tolist, to(cpu)) on cuda:0 during a graph "
                                           "capture"),
                         DeviceError);
    CHECK_FALSE(g.captured());
    CHECK_THROWS_WITH_AS(g.capture([] { backend_for(kCuda).synchronize(0); }), doctest::Contains("synchronize on cuda:0 during a graph capture"),
                         DeviceError);
  }
  {
    Tensor p = t.clone().requires_grad_(true);
    optim::SGDOptions o;
    o.momentum = 0.9;
    optim::SGD opt({p}, o);
    StepGraph g(kCuda);
    CHECK_THROWS_WITH_AS(g.capture([&] {
      (p * p).sum().backward();
      opt.step();
    }),
                         doctest::Contains("momentum buffers would start inside a graph capture"), ValueError);
    CHECK_FALSE(opt.state_dict().contains("state.0.momentum_buffer"));  // the failed capture left none
    amp::GradScaler scaler;  // ScalerSync::host
    CHECK_THROWS_WITH_AS(g.capture([&] {
      opt.zero_grad();
      scaler.scale((p * p).sum()).backward();
      scaler.step(opt);
    }),
                         doctest::Contains("ScalerSync::host reads its inf/NaN check"), DeviceError);
    amp::GradScalerOptions so;
    so.sync = amp::ScalerSync::device;
    amp::GradScaler on_device(so);
    CHECK_THROWS_WITH_AS(g.capture([&] { (void)on_device.scale(p.sum()); }),
                         doctest::Contains("the loss scale would be made inside a graph capture"), DeviceError);
    (void)on_device.scale(p.sum());  // the scale is on the device now
    CHECK_THROWS_WITH_AS(g.capture([&] {
      opt.zero_grad();
      on_device.scale((p * p).sum()).backward();
      on_device.step(opt);  // SGD's momentum buffer would start here
    }),
                         doctest::Contains("SGD's state would start at this step"), DeviceError);
  }
  // eager work runs as before, and a capture after the failed ones works
  CHECK(cp::host_values(t * 3.0) == std::vector<double>{3, 3, 3, 3});
  {
    StepGraph g(kCuda);
    Tensor out;
    g.capture([&] { out = t * 5.0; });
    g.replay();
    CHECK(cp::host_values(out) == std::vector<double>{5, 5, 5, 5});
  }
  // every graph's memory is back once the graphs and their tensors are gone
  CHECK(memory_stats(kCuda).allocated == before.allocated);
}
