// Optimizers, clipping, EMA, gradient accumulation and the grad scaler: hand-computed steps,
// parameter groups, state-dict round trips that continue bit-identically, and errors. Step-by-step
// agreement with torch.optim over 20 steps is in tests/parity (test_parity_optim).
#include <cmath>

#include "harness.hpp"

using namespace wanwu;
using wt::check_close;

namespace {
Tensor param(std::initializer_list<double> v) { return tensor(v, DType::f64).requires_grad_(); }
void set_grad(Tensor& p, std::initializer_list<double> g) { p.set_grad(tensor(g, DType::f64)); }

// An SGD step (lr 0.25, momentum 0.5) on an f32 parameter, the parameter moved to `dev` and `dt`
// as Module::to moves it, then a second step: exact in binary, and the momentum buffer moved along.
void check_sgd_after_move(Device dev, DType dt) {
  Tensor p = tensor({1.0, -2.0}, DType::f32).requires_grad_();
  optim::SGDOptions so;
  so.lr = 0.25;
  so.momentum = 0.5;
  optim::SGD sgd({p}, so);
  p.set_grad(tensor({0.5, 1.0}, DType::f32));
  sgd.step();  // buf = g; p = (0.875, -2.25)
  p.set_data(p.detach().to(dev, dt));
  p.set_grad(tensor({0.25, -0.5}, dt).to(dev));
  sgd.step();  // buf = 0.5 buf + g = (0.5, 0); p -= 0.25 buf
  CHECK(p.dtype() == dt);
  CHECK(p.device() == dev);
  CHECK(p.cpu().to(DType::f64).tolist<double>() == std::vector<double>{0.75, -2.25});
  const Tensor buf = sgd.state_dict().at("state.0.momentum_buffer");
  CHECK(buf.dtype() == dt);
  CHECK(buf.device() == dev);
}
}  // namespace

TEST_CASE("SGD: plain, momentum, dampening, nesterov, weight decay by hand") {
  Tensor p = param({1.0, -2.0});
  optim::SGDOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  o.weight_decay = 0.5;
  optim::SGD sgd({p}, o);
  set_grad(p, {0.2, 0.4});
  sgd.step();  // d = g + 0.5 p = (0.7, -0.6); buf = d; p -= 0.1 d
  check_close(p, {1.0 - 0.07, -2.0 + 0.06}, 1e-15, 0);
  set_grad(p, {0.2, 0.4});
  sgd.step();  // d = g + 0.5 p; buf = 0.9 buf + d
  const double d0 = 0.2 + 0.5 * 0.93, d1 = 0.4 + 0.5 * -1.94;
  check_close(p, {0.93 - 0.1 * (0.9 * 0.7 + d0), -1.94 - 0.1 * (0.9 * -0.6 + d1)}, 1e-14, 0);
  Tensor q = param({1.0});
  optim::SGDOptions n;
  n.lr = 1.0;
  n.momentum = 0.5;
  n.nesterov = optim::Nesterov::yes;
  optim::SGD nest({q}, n);
  set_grad(q, {1.0});
  nest.step();  // buf = 1; d = 1 + 0.5 * 1
  check_close(q, {-0.5});
  n.dampening = 0.1;
  CHECK_THROWS_AS(optim::SGD({param({1.0})}, n), ValueError);
  optim::SGDOptions bad;
  bad.lr = -1;
  CHECK_THROWS_AS(optim::SGD({param({1.0})}, bad), ValueError);
}

TEST_CASE("Adam and AdamW: the first step moves each weight by lr, AdamW decays first") {
  Tensor a = param({1.0, -1.0}), b = param({1.0, -1.0});
  optim::AdamOptions o;
  o.lr = 0.01;
  optim::Adam adam({a}, o);
  o.weight_decay = 0.1;
  optim::AdamW adamw({b}, o);
  set_grad(a, {3.0, -0.5});
  set_grad(b, {3.0, -0.5});
  adam.step();
  adamw.step();
  // first step: m_hat = g, v_hat = g^2, update = lr * g / (|g| + eps)
  check_close(a, {1.0 - 0.01 * 3.0 / (3.0 + 1e-8), -1.0 + 0.01 * 0.5 / (0.5 + 1e-8)}, 1e-12, 0);
  check_close(b, {1.0 * (1 - 0.01 * 0.1) - 0.01 * 3.0 / (3.0 + 1e-8), -1.0 * (1 - 0.01 * 0.1) + 0.01 * 0.5 / (0.5 + 1e-8)},
              1e-12, 0);
  o.beta1 = 1.0;
  CHECK_THROWS_AS(optim::Adam({param({1.0})}, o), ValueError);
}

TEST_CASE("optimizer state follows its parameter when the model is moved between steps") {
  // Module::to(device, dtype) keeps each parameter's handle and replaces its data; the next step
  // finds momentum and moments on the old device or dtype and moves them (here f32 -> f64, which
  // the CPU shows; f32 on cpu -> cuda:0 takes the same path). Values exact in binary.
  check_sgd_after_move(Device::cpu(), DType::f64);

  Tensor q = tensor({1.0, -2.0}, DType::f32).requires_grad_();
  optim::AdamOptions ao;
  ao.lr = 0.5;
  optim::Adam adam({q}, ao);
  q.set_grad(tensor({3.0, -4.0}, DType::f32));
  adam.step();  // the first step moves each weight by lr against its gradient's sign
  q.set_data(q.detach().to(DType::f64));
  q.set_grad(tensor({3.0, -4.0}, DType::f64));
  adam.step();  // the same gradient again: m_hat = g and v_hat = g^2 up to eps, another lr step
  check_close(q, {0.0, -1.0}, 1e-7, 1e-7);
  CHECK(adam.state_dict().at("state.0.exp_avg").dtype() == DType::f64);
}

TEST_CASE("optimizer state follows its parameter from the CPU to cuda:0") {
  if (!cuda_is_available()) return;
  check_sgd_after_move(Device::cuda(0), DType::f32);
}

TEST_CASE("parameter groups carry their own hyper-parameters; zero_grad sets gradients to none") {
  nn::Linear lin(3, 2);
  const auto groups = optim::decay_groups(lin, 0.05);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].params.size() == 1);  // weight
  CHECK(groups[1].params[0].is_same(lin.bias));
  optim::SGDOptions o;
  o.lr = 0.1;
  auto g1 = o.group({lin.weight}, "weights");
  auto g2 = o.group({lin.bias}, "bias");
  g2.lr = 0.0;
  optim::SGD sgd({g1, g2});
  const Tensor b0 = lin.bias.clone();
  lin.forward(ones({1, 3})).sum().backward();
  sgd.step();
  check_close(lin.bias, wt::values(b0), 0, 0);  // lr 0
  sgd.zero_grad();
  CHECK_FALSE(lin.weight.grad().defined());
  CHECK_THROWS_AS(optim::SGD({g1, g1}), ValueError);  // a parameter in two groups
}

TEST_CASE("optimizer state dicts: a restored optimizer continues bit-identically") {
  for (int which = 0; which < 3; ++which) {
    CAPTURE(which);
    Generator gen(5);
    nn::Linear a(4, 3, nn::Bias::yes, {DType::f32, Device::cpu(), &gen});
    nn::Linear b(4, 3);
    auto make = [&](nn::Module& m) -> std::unique_ptr<optim::Optimizer> {
      optim::SGDOptions s;
      s.momentum = 0.9;
      optim::AdamOptions ad;
      ad.amsgrad = optim::AmsGrad::yes;
      if (which == 0) return std::make_unique<optim::SGD>(m.parameters(), s);
      if (which == 1) return std::make_unique<optim::Adam>(m.parameters(), ad);
      return std::make_unique<optim::AdamW>(m.parameters());
    };
    auto oa = make(a), ob = make(b);
    const Tensor x = randn({8, 4}, {}, &gen);
    auto train_step = [&](nn::Module& m, optim::Optimizer& o) {
      o.zero_grad();
      square(m.forward(x)).mean().backward();
      o.step();
    };
    for (int i = 0; i < 3; ++i) train_step(a, *oa);
    b.load_state_dict(a.state_dict());
    ob->load_state_dict(oa->state_dict());
    for (int i = 0; i < 3; ++i) {
      train_step(a, *oa);
      train_step(b, *ob);
    }
    check_close(b.weight, wt::values(a.weight), 0, 0);
  }
}

TEST_CASE("clip_grad_norm_ and clip_grad_value_") {
  Tensor p = param({3.0, 4.0}), q = param({12.0});
  set_grad(p, {3.0, 4.0});
  set_grad(q, {12.0});
  const double n = optim::clip_grad_norm_({p, q}, 6.5);  // total norm 13
  CHECK(n == doctest::Approx(13.0));
  check_close(p.grad(), {1.5, 2.0}, 1e-6, 0);
  check_close(q.grad(), {6.0}, 1e-6, 0);
  CHECK(optim::clip_grad_norm_({p, q}, 100.0) == doctest::Approx(6.5).epsilon(1e-6));  // below max: unchanged
  check_close(p.grad(), {1.5, 2.0}, 1e-6, 0);
  CHECK(optim::clip_grad_norm_({p, q}, 1.0, INFINITY) == doctest::Approx(6.0).epsilon(1e-6));
  set_grad(p, {1.0, INFINITY});
  CHECK(std::isinf(optim::clip_grad_norm_({p}, 1.0)));
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({p}, 1.0, 2.0, optim::ErrorIfNonfinite::yes),
                       doctest::Contains("not finite"), ValueError);
  set_grad(p, {-5.0, 0.5});
  optim::clip_grad_value_({p}, 1.0);
  check_close(p.grad(), {-1.0, 0.5});
}

namespace {
// Tensors of every floating dtype, sized around the 4096-element chunks of the multi-tensor
// passes, with a transposed (non-contiguous) view among them; values in [-3, 3].
std::vector<Tensor> mixed_tensors(Device dev) {
  const std::vector<std::pair<int64_t, DType>> spec = {{4097, DType::f32}, {1, DType::f64},   {0, DType::f32},
                                                       {4096, DType::bf16}, {9000, DType::f16}, {33, DType::f64},
                                                       {8193, DType::f32}};
  std::vector<Tensor> ts;
  for (size_t i = 0; i < spec.size(); ++i)
    ts.push_back((rand({spec[i].first}, DType::f64) * 6.0 - 3.0).to(spec[i].second).to(dev));
  ts.push_back((rand({40, 30}, DType::f64) * 6.0 - 3.0).to(DType::f32).to(dev).t());
  // long enough that both passes split it between two threads (norm: 4 chunks of 4096 per thread
  // at least; scaling: 16384 elements)
  ts.push_back((rand({70000}, DType::f64) * 6.0 - 3.0).to(DType::bf16).to(dev));
  return ts;
}
double reference_norm(const std::vector<Tensor>& ts, double p) {
  long double acc = 0;
  for (const Tensor& t : ts)
    for (double v : t.cpu().to(DType::f64).contiguous().tolist<double>()) {
      const long double a = std::fabs(static_cast<long double>(v));
      if (std::isinf(p)) acc = std::isnan(v) || std::isnan(static_cast<double>(acc)) ? NAN : std::max(acc, a);
      else acc += std::pow(a, static_cast<long double>(p));
    }
  return std::isinf(p) ? static_cast<double>(acc) : static_cast<double>(std::pow(acc, 1.0L / p));
}
}  // namespace

TEST_CASE("total_norm and scale_all_: whole-model passes against element-by-element references") {
  wt::for_each_device([](Device dev) {
    manual_seed(7);
    const std::vector<Tensor> ts = mixed_tensors(dev);
    for (double p : {1.0, 2.0, 3.0, 0.5, wt::kInf}) {
      CAPTURE(p);
      CHECK(optim::total_norm(ts, p) == doctest::Approx(reference_norm(ts, p)).epsilon(1e-12));
    }
    CHECK(optim::total_norm({}, 2.0) == 0.0);
    CHECK(optim::total_norm({ts[2]}, wt::kInf) == 0.0);  // no elements
    // the same on one thread as on two: partial sums in a fixed order
    const int saved = get_num_threads();
    set_num_threads(2);
    const double two = optim::total_norm(ts, 2.0);
    set_num_threads(1);
    const double one = optim::total_norm(ts, 2.0);
    set_num_threads(saved);
    CHECK(one == two);

    // scaling: each element times the factor in the compute type (f32 for the 2-byte dtypes, as
    // torch's foreach and unscale kernels do, not rounded to the dtype first), rounded once, bit
    // for bit; the view is written through; no element is flagged
    std::vector<std::vector<double>> want;
    for (const Tensor& t : ts) {
      std::vector<double> w;
      for (double x : wt::values(t)) {
        const float f = static_cast<float>(x) * 0.37f;
        switch (t.dtype()) {
          case DType::f64: w.push_back(x * 0.37); break;
          case DType::bf16: w.push_back(static_cast<float>(BFloat16(f))); break;
          case DType::f16: w.push_back(static_cast<float>(Half(f))); break;
          default: w.push_back(f);
        }
      }
      want.push_back(w);
    }
    CHECK_FALSE(optim::scale_all_(ts, 0.37, optim::CheckNonfinite::yes));
    for (size_t i = 0; i < ts.size(); ++i) {
      CAPTURE(i);
      CHECK(wt::values(ts[i]) == want[i]);
    }
    // inf, -inf or NaN anywhere (first element, past a chunk boundary, a 2-byte dtype, the view)
    // is found
    const std::vector<std::pair<size_t, int64_t>> spots = {{0, 0}, {0, 4096}, {3, 4095}, {4, 5000}, {6, 8192},
                                                           {8, 69999}};
    const std::vector<double> bad = {wt::kInf, -wt::kInf, wt::kNaN};
    for (size_t k = 0; k < spots.size(); ++k) {
      CAPTURE(k);
      std::vector<Tensor> u = mixed_tensors(dev);
      u[spots[k].first].narrow(0, spots[k].second, 1).fill_(bad[k % bad.size()]);
      CHECK(optim::scale_all_(u, 0.5, optim::CheckNonfinite::yes));
      CHECK_FALSE(optim::scale_all_(u, 1.0));  // not asked: nothing read back
    }
    std::vector<Tensor> v = mixed_tensors(dev);
    v[7].select(1, 3).fill_(wt::kNaN);  // a column of the transposed view
    CHECK(optim::scale_all_(v, 2.0, optim::CheckNonfinite::yes));
    CHECK(std::isnan(optim::total_norm(v, 2.0)));
    CHECK(std::isnan(optim::total_norm(v, wt::kInf)));  // NaN wins over larger values in the max norm
    // the check reads the values before the factor: finite ones that it overflows are not flagged
    std::vector<Tensor> w = mixed_tensors(dev);
    CHECK_FALSE(optim::scale_all_(w, 1e300, optim::CheckNonfinite::yes));
    CHECK(std::isinf(wt::values(w[0])[0]));

    CHECK_THROWS_WITH_AS(optim::total_norm(ts, 0.0), doctest::Contains("must be positive"), ValueError);
    CHECK_THROWS_WITH_AS(optim::scale_all_({ts[0], zeros({3}, TensorOptions(DType::i64).device(dev))}, 2.0),
                         doctest::Contains("tensor 1 of shape [3] is i64"), DTypeError);
  });
}

TEST_CASE("clip_grad_norm_: a NaN gradient gives a NaN max norm, which error_if_nonfinite rejects") {
  Tensor p = param({1.0, 2.0}), q = param({5.0});
  set_grad(p, {1.0, std::nan("")});
  set_grad(q, {5.0});
  CHECK(std::isnan(optim::clip_grad_norm_({p, q}, 1.0, INFINITY)));
  CHECK(std::isnan(wt::values(q.grad())[0]));  // scaled by a NaN factor, as torch does
  set_grad(p, {1.0, std::nan("")});
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({p, q}, 1.0, INFINITY, optim::ErrorIfNonfinite::yes),
                       doctest::Contains("not finite"), ValueError);
}

TEST_CASE("ModelEma averages parameters, copies buffers, warms up") {
  nn::BatchNorm1d bn(2);
  optim::ModelEma ema(bn, 0.9);
  {
    NoGradGuard ng;
    bn.weight.fill_(2.0);
    bn.running_mean.fill_(5.0);
  }
  ema.update(bn);
  check_close(ema.weights().at("weight"), {0.9 * 1 + 0.1 * 2, 0.9 * 1 + 0.1 * 2}, 1e-6, 0);  // f32
  check_close(ema.weights().at("running_mean"), {5, 5});  // buffers copied
  nn::BatchNorm1d other(2);
  ema.copy_to(other);
  check_close(other.weight, {1.1, 1.1}, 1e-6, 0);
  optim::ModelEma warm(bn, 0.999, optim::EmaWarmup::yes);
  CHECK(warm.current_decay() == doctest::Approx(0.1));  // (1 + 0) / (10 + 0)
  warm.update(bn);
  CHECK(warm.current_decay() == doctest::Approx(2.0 / 11.0));
  optim::ModelEma restored(bn, 0.9);
  restored.load_state_dict(ema.state_dict());
  CHECK(restored.updates() == 1);
  check_close(restored.weights().at("weight"), wt::values(ema.weights().at("weight")), 0, 0);
}

TEST_CASE("4 micro-batches of 8 accumulate the gradient of one batch of 32") {
  Generator g(9);
  nn::Linear a(5, 3, nn::Bias::yes, {DType::f64, Device::cpu(), &g});
  nn::Linear b(5, 3, nn::Bias::yes, {DType::f64});
  b.load_state_dict(a.state_dict());
  const Tensor x = randn({32, 5}, DType::f64, &g);
  const Tensor y = randint(0, 3, {32}, std::nullopt, &g);
  cross_entropy(a.forward(x), y).backward();
  optim::GradAccumulation acc(4, 4);
  for (int64_t i = 0; i < 4; ++i) (cross_entropy(b.forward(x.narrow(0, i * 8, 8)), y.narrow(0, i * 8, 8)) * acc.loss_scale(i)).backward();
  check_close(b.weight.grad(), a.weight.grad(), 1e-12, 1e-15);
  check_close(b.bias.grad(), a.bias.grad(), 1e-12, 1e-15);
  // 10 batches in groups of 4: 4, 4, then a last group of 2 scaled by 1/2
  optim::GradAccumulation ten(4, 10);
  CHECK(ten.optimizer_steps_per_epoch() == 3);
  CHECK(ten.is_step(3));
  CHECK_FALSE(ten.is_step(4));
  CHECK(ten.is_step(9));
  CHECK(ten.loss_scale(0) == 0.25);
  CHECK(ten.loss_scale(8) == 0.5);
  CHECK_THROWS_AS(ten.loss_scale(10), IndexError);
  CHECK_THROWS_AS(optim::GradAccumulation(0, 5), ValueError);
}

TEST_CASE("GradScaler: one NaN among several gradients skips the step; every gradient is divided first") {
  Tensor a = param({1.0, 2.0}), b = param({3.0}), c = param({4.0, 5.0, 6.0});
  optim::SGDOptions o;
  o.lr = 1.0;
  optim::SGD sgd({a, b, c}, o);
  amp::GradScalerOptions so;
  so.init_scale = 4.0;
  amp::GradScaler scaler(so);
  a.set_grad(from_vector(std::vector<double>{8.0, -4.0}, {2}, DType::f64));
  b.set_grad(from_vector(std::vector<double>{NAN}, {1}, DType::f64));
  c.set_grad(from_vector(std::vector<double>{4.0, 0.0, 2.0}, {3}, DType::f64));
  CHECK_FALSE(scaler.step(sgd));
  check_close(a.grad(), {2.0, -1.0}, 0, 0);  // divided by the scale, exactly
  check_close(c.grad(), {1.0, 0.0, 0.5}, 0, 0);
  check_close(a, {1.0, 2.0}, 0, 0);  // not stepped
  scaler.update();
  CHECK(scaler.get_scale() == 2.0);
  // the check reads the gradients as they came: a finite one that the division would overflow
  // (scale below 1) does not skip the step, as in torch
  amp::GradScalerOptions tiny;
  tiny.init_scale = 1e-30;
  amp::GradScaler small(tiny);
  Tensor d = tensor({0.0}, DType::f32).requires_grad_();
  optim::SGD sgd_d({d}, o);
  d.set_grad(from_vector(std::vector<double>{1e10}, {1}, DType::f32));
  CHECK(small.step(sgd_d));
}

TEST_CASE("GradScaler: skips steps with inf gradients, backs off, grows after the interval") {
  Tensor p = param({1.0});
  optim::SGDOptions o;
  o.lr = 0.1;
  optim::SGD sgd({p}, o);
  amp::GradScalerOptions so;
  so.init_scale = 8.0;
  so.growth_interval = 2;
  amp::GradScaler scaler(so);
  auto step_with_grad = [&](double g) {
    sgd.zero_grad();
    (scaler.scale(p * 1.0) * g).sum().backward();  // grad = scale * g
    const bool stepped = scaler.step(sgd);
    scaler.update();
    return stepped;
  };
  CHECK(step_with_grad(1.0));
  check_close(p, {0.9}, 1e-15, 0);  // unscaled gradient 1
  CHECK(scaler.get_scale() == 8.0);
  CHECK(step_with_grad(1.0));
  CHECK(scaler.get_scale() == 16.0);  // two clean steps: grow
  CHECK_FALSE(step_with_grad(INFINITY));
  check_close(p, {0.8}, 1e-15, 0);  // skipped
  CHECK(scaler.get_scale() == 8.0);
  amp::GradScaler restored(so);
  restored.load_state_dict(scaler.state_dict());
  CHECK(restored.get_scale() == 8.0);
  sgd.zero_grad();
  scaler.scale(p).sum().backward();
  scaler.unscale_(sgd);
  CHECK_THROWS_AS(scaler.unscale_(sgd), ValueError);
  scaler.step(sgd);
  scaler.update();
  CHECK_THROWS_AS(scaler.update(), ValueError);
}

namespace scaled {
// Ten fp16-style steps of two parameters under a GradScaler (init scale 8, growth every 2 clean
// steps). Step k's loss is sum(a * ga[k]) + sum(b * gb[k]), so the unscaled gradients are ga[k]
// and gb[k] exactly; an inf there makes the step one to skip, and an empty gb[k] leaves b without a
// gradient (the set of parameters a step updates changes: Adam must settle its skipped counts).
const double kInf = INFINITY;
const std::vector<std::vector<double>> ga = {{kInf, 1.0}, {0.5, -1.0}, {0.25, 2.0}, {1.0, 1.0},  {-0.5, 0.75},
                                             {2.0, -0.25}, {1.0, kInf}, {-1.0, 0.5}, {0.5, 0.5}, {kInf, 0.0}};
const std::vector<std::vector<double>> gb = {{1.0, 2.0, 3.0}, {-1.0, 0.5, 2.0}, {0.5, 0.5, -0.5}, {1.0, kInf, 0.0},
                                             {0.25, -2.0, 1.0}, {},             {1.0, 1.0, 1.0},  {0.5, 2.0, -1.0},
                                             {-0.25, 0.5, 0.75}, {1.0, 1.0, 1.0}};
// The scale after each step: skips at 0, 3, 6, 9 halve it; two clean steps double it.
const std::vector<double> kScales = {4, 4, 8, 4, 4, 8, 4, 4, 8, 4};

enum class Opt { sgd, adamw };
struct Setup {
  Tensor a = tensor({1.0, -2.0}, DType::f64).requires_grad_(), b = tensor({0.5, 3.0, -1.5}, DType::f64).requires_grad_();
  std::unique_ptr<optim::Optimizer> opt;
  amp::GradScaler scaler;
  Setup(Opt kind, amp::ScalerSync sync) : scaler(options(sync)) {
    if (kind == Opt::sgd) {
      optim::SGDOptions o;
      o.lr = 0.1;
      o.momentum = 0.9;
      o.dampening = 0.1;
      o.weight_decay = 0.01;
      opt = std::make_unique<optim::SGD>(std::vector<Tensor>{a, b}, o);
    } else {
      optim::AdamOptions o = optim::AdamW::defaults();
      o.lr = 0.1;
      opt = std::make_unique<optim::AdamW>(std::vector<Tensor>{a, b}, o);
    }
  }
  static amp::GradScalerOptions options(amp::ScalerSync sync) {
    amp::GradScalerOptions so;
    so.init_scale = 8.0;
    so.growth_interval = 2;
    so.sync = sync;
    return so;
  }
  void step(size_t k) {
    opt->zero_grad();
    Tensor loss = (a * from_vector(ga[k], {2}, DType::f64)).sum();
    if (!gb[k].empty()) loss = loss + (b * from_vector(gb[k], {3}, DType::f64)).sum();
    scaler.scale(loss).backward();
    scaler.step(*opt);
    scaler.update();
  }
};
}  // namespace scaled

TEST_CASE("GradScaler with the scale on the device (ScalerSync::device): the host way's steps, step for step") {
  using namespace scaled;
  for (Opt kind : {Opt::sgd, Opt::adamw}) {
    const std::string name = kind == Opt::sgd ? "SGD" : "AdamW";
    CAPTURE(name);
    Setup host(kind, amp::ScalerSync::host), dev(kind, amp::ScalerSync::device);
    for (size_t k = 0; k < ga.size(); ++k) {
      CAPTURE(k);
      host.step(k);
      dev.step(k);
      // the same f64 arithmetic on either way: equal to the last bit
      check_close(dev.a, host.a, 0, 0);
      check_close(dev.b, host.b, 0, 0);
      CHECK(host.scaler.get_scale() == kScales[k]);
      CHECK(dev.scaler.get_scale() == kScales[k]);
    }
    const nn::StateDict h = host.opt->state_dict(), d = dev.opt->state_dict();
    for (const auto& [key, t] : h) {
      CAPTURE(key);
      REQUIRE(d.contains(key));
      check_close(d.at(key), t, 0, 0);
    }
    if (kind == Opt::adamw) {  // a was stepped at 1, 2, 4, 5, 7, 8; b at 1, 2, 4, 7, 8
      CHECK(d.at("state.0.step").item<int64_t>() == 6);
      CHECK(d.at("state.1.step").item<int64_t>() == 5);
    }
    CHECK(dev.scaler.state_dict().at("scale").item<double>() == 4.0);
    CHECK(dev.scaler.state_dict().at("growth_tracker").item<int64_t>() == 0);
  }
}

TEST_CASE("GradScaler with the scale on the device: a run saved after skipped gated steps resumes as it would have gone on") {
  using namespace scaled;
  for (Opt kind : {Opt::sgd, Opt::adamw}) {
    const std::string name = kind == Opt::sgd ? "SGD" : "AdamW";
    CAPTURE(name);
    Setup whole(kind, amp::ScalerSync::device), first(kind, amp::ScalerSync::device);
    for (size_t k = 0; k < ga.size(); ++k) whole.step(k);
    for (size_t k = 0; k < 7; ++k) first.step(k);  // step 6 was skipped on the device
    const nn::StateDict opt_sd = first.opt->state_dict(), scaler_sd = first.scaler.state_dict();
    if (kind == Opt::adamw) CHECK(opt_sd.at("state.0.step").item<int64_t>() == 4);  // steps 1, 2, 4, 5
    CHECK(scaler_sd.at("scale").item<double>() == 4.0);
    Setup resumed(kind, amp::ScalerSync::device);
    resumed.a.detach().copy_(first.a.detach());
    resumed.b.detach().copy_(first.b.detach());
    resumed.opt->load_state_dict(opt_sd);
    resumed.scaler.load_state_dict(scaler_sd);
    for (size_t k = 7; k < ga.size(); ++k) resumed.step(k);
    check_close(resumed.a, whole.a, 0, 0);
    check_close(resumed.b, whole.b, 0, 0);
    CHECK(resumed.scaler.get_scale() == whole.scaler.get_scale());
  }
  amp::GradScalerOptions big;
  big.sync = amp::ScalerSync::device;
  big.growth_interval = int64_t(1) << 40;
  CHECK_THROWS_WITH_AS(amp::GradScaler{big}, doctest::Contains("growth_interval is counted in 32 bits"), ValueError);
  // the unscale's divisor is the scale: one f32 element
  const std::vector<Tensor> grads = {tensor({2.0, 4.0}, DType::f32)};
  CHECK_THROWS_WITH_AS(optim::unscale_all_(grads, Tensor()), doctest::Contains("the divisor is undefined"),
                       ValueError);
  CHECK_THROWS_WITH_AS(optim::unscale_all_(grads, tensor({2.0}, DType::f64)),
                       doctest::Contains("the divisor must be one f32 element, got f64 of shape [1]"), DTypeError);
  const optim::DeviceFlags flags = optim::unscale_all_(grads, full({}, 4.0, TensorOptions(DType::f32)));
  check_close(grads[0], {0.5, 1.0}, 0, 0);
  CHECK_FALSE(flags.any());
}

TEST_CASE("Adam and SGD batch parameters by step: a parameter that joins late follows its own step count") {
  // p2 gets no gradient at step 1, so from then on it is one Adam step behind p1 (bias
  // corrections of step 1, 2 where p1 has 2, 3) and its momentum buffer starts a step later: the
  // optimizer sends the two to the backend in separate batches. Each must end where a fresh
  // optimizer holding only that parameter ends after the same gradients.
  const std::vector<std::vector<double>> g1 = {{0.3, -1.2, 2.0}, {-0.7, 0.4, 0.1}, {1.5, 0.2, -0.6}};
  const std::vector<std::vector<double>> g2 = {{}, {0.9, -0.3}, {-0.2, 1.1}};
  for (int kind = 0; kind < 2; ++kind) {
    CAPTURE(kind);
    auto make = [&](std::vector<Tensor> ps) -> std::unique_ptr<optim::Optimizer> {
      if (kind == 0) {
        optim::AdamOptions o;
        o.lr = 0.05;
        o.weight_decay = 0.01;
        o.amsgrad = optim::AmsGrad::yes;
        return std::make_unique<optim::AdamW>(std::move(ps), o);
      }
      optim::SGDOptions o;
      o.lr = 0.1;
      o.momentum = 0.9;
      o.dampening = 0.1;
      return std::make_unique<optim::SGD>(std::move(ps), o);
    };
    Tensor p1 = param({1.0, -2.0, 0.5}), p2 = param({0.25, 3.0});
    Tensor r1 = param({1.0, -2.0, 0.5}), r2 = param({0.25, 3.0});
    auto both = make({p1, p2});
    auto only1 = make({r1});
    auto only2 = make({r2});
    auto sg = [](Tensor& p, const std::vector<double>& g) {
      p.set_grad(from_vector(g, {static_cast<int64_t>(g.size())}, DType::f64));
    };
    for (size_t s = 0; s < g1.size(); ++s) {
      sg(p1, g1[s]);
      sg(r1, g1[s]);
      if (g2[s].empty()) {
        p2.set_grad(Tensor());
      } else {
        sg(p2, g2[s]);
        sg(r2, g2[s]);
        only2->step();
      }
      both->step();
      only1->step();
    }
    check_close(p1, wt::values(r1), 1e-15, 0);
    check_close(p2, wt::values(r2), 1e-15, 0);
    CHECK(wt::values(p2) != std::vector<double>{0.25, 3.0});
  }
}
