// nn: module naming, state dicts and their errors, train/eval, freezing, device/dtype moves that
// keep handles valid, initializer distributions, BatchNorm's running statistics and
// MultiheadAttention against its composed definition.
#include <cmath>

#include "harness.hpp"

using namespace wanwu;
using wt::check_close;

namespace {
struct Block : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 4, 3, 1, 1, 1, 1, nn::Bias::no));
  std::shared_ptr<nn::BatchNorm2d> bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(4));
  Tensor forward(const Tensor& x) override { return relu(bn1->forward(conv1->forward(x))); }
  std::string type_name() const override { return "Block"; }
};
struct Net : nn::Module {
  std::shared_ptr<nn::Sequential> layer1 = register_module("layer1", std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{std::make_shared<Block>(), std::make_shared<Block>()}));
  std::shared_ptr<nn::Linear> fc = register_module("fc", std::make_shared<nn::Linear>(4, 3));
  Net() {
    // the second block takes the first's 4 channels
    layer1->replace_module("1", std::make_shared<Block2>());
  }
  struct Block2 : Block {
    Block2() {
      replace_module("conv1", conv1 = std::make_shared<nn::Conv2d>(4, 4, 3, 1, 1, 1, 1, nn::Bias::no));
    }
  };
  Tensor forward(const Tensor& x) override {
    return fc->forward(adaptive_avg_pool2d(layer1->forward(x), 1).flatten(1));
  }
  std::string type_name() const override { return "Net"; }
};
}  // namespace

TEST_CASE("parameters and buffers have PyTorch's hierarchical names in registration order") {
  Net net;
  std::vector<std::string> names;
  for (const auto& [n, t] : net.state_dict()) names.push_back(n);
  const std::vector<std::string> want = {
      "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean",
      "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked", "layer1.1.conv1.weight", "layer1.1.bn1.weight",
      "layer1.1.bn1.bias", "layer1.1.bn1.running_mean", "layer1.1.bn1.running_var",
      "layer1.1.bn1.num_batches_tracked", "fc.weight", "fc.bias"};
  CHECK(names == want);
  CHECK(net.named_parameters().size() == 8);
  CHECK(net.named_buffers().size() == 6);
  CHECK(net.num_parameters() == 3 * 3 * 3 * 4 + 4 + 4 + 3 * 3 * 4 * 4 + 4 + 4 + 4 * 3 + 3);
  CHECK(net.forward(randn({2, 6, 6, 3})).shape() == Shape{2, 3});
  CHECK(net.named_modules().size() == 9);
  CHECK(net.repr().find("(fc): Linear(in_features=4, out_features=3, bias=1)") != std::string::npos);
}

TEST_CASE("state_dict round trip and load errors") {
  Net a, b;
  b.load_state_dict(a.state_dict());
  const Tensor x = randn({1, 5, 5, 3});
  a.eval();
  b.eval();
  check_close(b.forward(x), wt::values(a.forward(x)), 0, 0);
  nn::StateDict sd = a.state_dict();
  nn::StateDict missing, extra = sd, wrong;
  for (const auto& [k, v] : sd) {
    if (k != "fc.bias") missing.set(k, v);
    wrong.set(k, k == "fc.weight" ? zeros({3, 5}) : v);
  }
  extra.set("head.weight", zeros({2}));
  CHECK_THROWS_WITH_AS(b.load_state_dict(missing), doctest::Contains("missing keys (1): fc.bias"), ValueError);
  CHECK_THROWS_WITH_AS(b.load_state_dict(extra), doctest::Contains("unexpected keys (1): head.weight"), ValueError);
  CHECK_THROWS_WITH_AS(b.load_state_dict(wrong), doctest::Contains("fc.weight: checkpoint [3, 5], model [3, 4]"), ValueError);
  const nn::LoadReport rep = b.load_state_dict(missing, nn::Strict::no);
  CHECK(rep.missing_keys == std::vector<std::string>{"fc.bias"});
  CHECK_THROWS_AS(b.load_state_dict(wrong, nn::Strict::no), ValueError);  // shapes never load
}

TEST_CASE("train/eval, freezing, dtype moves keep the same tensor handles") {
  Net net;
  net.eval();
  CHECK_FALSE(net.layer1->child("0")->is_training());
  net.train();
  CHECK(net.fc->is_training());
  net.layer1->requires_grad_(false);
  int trainable = 0;
  for (const auto& p : net.parameters()) trainable += p.requires_grad();
  CHECK(trainable == 2);  // fc.weight, fc.bias
  const Tensor w = net.fc->weight;
  net.to(DType::f64);
  CHECK(w.dtype() == DType::f64);             // the layer's handle sees the new data
  CHECK(net.fc->weight.is_same(w));
  CHECK(net.state_dict().at("layer1.0.bn1.num_batches_tracked").dtype() == DType::i64);  // not floating: kept
  CHECK(net.forward(randn({1, 4, 4, 3}, DType::f64)).dtype() == DType::f64);
  int calls = 0;
  net.apply([&](nn::Module&) { ++calls; });
  CHECK(calls == 9);
}

TEST_CASE("BatchNorm2d tracks running statistics like PyTorch, cumulative average when momentum is none") {
  nn::BatchNorm2d bn(2, 1e-5, std::nullopt);
  const Tensor x1 = tensor({1.0, 3.0, 2.0, 6.0}).reshape({2, 1, 1, 2});  // channel 0: 1, 2; channel 1: 3, 6
  bn.forward(x1);
  check_close(bn.running_mean, {1.5, 4.5});
  check_close(bn.running_var, {0.5, 4.5});  // unbiased
  const Tensor x2 = tensor({3.0, 3.0, 5.0, 3.0}).reshape({2, 1, 1, 2});
  bn.forward(x2);
  check_close(bn.running_mean, {(1.5 + 4.0) / 2, (4.5 + 3.0) / 2});  // cumulative: mean of the batch means
  CHECK(bn.num_batches_tracked.item<int64_t>() == 2);
  bn.eval();
  const Tensor y = bn.forward(x1);
  check_close(y.select(3, 0), {(1 - 2.75) / std::sqrt(1.25 + 1e-5), (2 - 2.75) / std::sqrt(1.25 + 1e-5)}, 1e-6, 0);
  CHECK_THROWS_AS(bn.forward(zeros({2, 1, 1, 3})), ShapeError);
}

// With a momentum the count goes up inside the batch norm's statistics pass (no op of its own):
// once per training call, never in eval mode, on every device.
TEST_CASE("BatchNorm2d counts its training batches in the statistics pass") {
  wt::for_each_device([](Device dev) {
    nn::LayerOptions o;
    o.device = dev;
    nn::BatchNorm2d bn(2, 1e-5, 0.1, nn::Affine::yes, nn::TrackRunningStats::yes, o);
    const Tensor x = tensor({1.0, 3.0, 2.0, 6.0}).reshape({2, 1, 1, 2}).to(dev);  // batch means 1.5, 4.5
    for (int i = 0; i < 3; ++i) bn.forward(x);
    CHECK(bn.num_batches_tracked.item<int64_t>() == 3);
    // three updates from 0 towards the same batch mean: (1 - 0.9^3) of it
    check_close(bn.running_mean.cpu(), {0.271 * 1.5, 0.271 * 4.5}, 1e-6, 1e-6);
    const Tensor before = bn.num_batches_tracked.clone();
    bn.num_batches_tracked.fill_(41);  // a loaded count goes on from where it was
    bn.forward(x);
    CHECK(bn.num_batches_tracked.item<int64_t>() == 42);
    bn.eval();
    bn.forward(x);
    CHECK(bn.num_batches_tracked.item<int64_t>() == 42);
    CHECK(before.item<int64_t>() == 3);  // the clone is not the count
  });
  // the functional op names a count of the wrong kind
  const Tensor x = randn({4, 3});
  CHECK_THROWS_WITH_AS(batch_norm_act(x, Tensor(), Tensor(), Tensor(), Tensor(), Mode::train, Activation::none, 0.1,
                                      1e-5, Tensor(), zeros({2}, DType::i64)),
                       doctest::Contains("num_batches_tracked must be one i64 element, got [2] i64"), DTypeError);
}

TEST_CASE("initializers follow PyTorch's bounds and moments") {
  Generator g(3);
  Tensor w = empty({256, 3, 3, 64});
  nn::init::kaiming_uniform_(w, std::sqrt(5.0), nn::init::FanMode::fan_in, nn::init::Nonlinearity::leaky_relu, &g);
  const double bound = 1.0 / std::sqrt(3.0 * 3 * 64);  // gain sqrt(2/6) * sqrt(3/fan_in)
  CHECK(w.max().item<double>() <= bound);
  CHECK(w.max().item<double>() > 0.99 * bound);
  CHECK(w.min().item<double>() >= -bound);
  Tensor x = empty({512, 512});
  nn::init::xavier_normal_(x, 1.0, &g);
  CHECK(stddev(x.to(DType::f64), {}).item<double>() == doctest::Approx(std::sqrt(2.0 / 1024)).epsilon(0.01));
  Tensor t = empty({200000}, DType::f64);
  nn::init::trunc_normal_(t, 1.0, 2.0, -1.0, 2.0, &g);
  CHECK(t.min().item<double>() >= -1.0);
  CHECK(t.max().item<double>() <= 2.0);
  // the mean of N(1, 2) truncated to [-1, 2]: mu + s (phi(a) - phi(b)) / (Phi(b) - Phi(a)), a = -1, b = 0.5
  auto phi = [](double z) { return std::exp(-z * z / 2) / std::sqrt(2 * M_PI); };
  auto Phi = [](double z) { return 0.5 * (1 + std::erf(z / std::sqrt(2.0))); };
  const double want = 1.0 + 2.0 * (phi(-1.0) - phi(0.5)) / (Phi(0.5) - Phi(-1.0));
  CHECK(t.mean().item<double>() == doctest::Approx(want).epsilon(0.01));
  for (double y : {-0.999, -0.5, 0.0, 0.3, 0.9, 0.999999}) CHECK(std::erf(nn::init::erfinv(y)) == doctest::Approx(y).epsilon(1e-14));
  Tensor z = ones({3});
  nn::init::zeros_(z);
  CHECK(z.sum().item<double>() == 0.0);
}

TEST_CASE("MultiheadAttention equals its definition and uses PyTorch's parameter names") {
  nn::MultiheadAttention mha(8, 2, 0.0, nn::Bias::yes, nn::BatchFirst::yes);
  std::vector<std::string> names;
  for (const auto& [n, p] : mha.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"});
  NoGradGuard ng;
  nn::init::normal_(mha.in_proj_bias, 0.0, 0.1);
  const Tensor x = randn({3, 5, 8});
  const Tensor y = mha.forward(x);
  // the definition, head by head
  const Tensor qkv = linear(x, mha.in_proj_weight, mha.in_proj_bias);
  std::vector<Tensor> heads;
  for (int h = 0; h < 2; ++h) {
    const Tensor q = qkv.narrow(2, h * 4, 4), k = qkv.narrow(2, 8 + h * 4, 4), v = qkv.narrow(2, 16 + h * 4, 4);
    heads.push_back(matmul(softmax(matmul(q, k.mT()) / 2.0, -1), v));
  }
  const Tensor ref = mha.out_proj->forward(cat(heads, 2));
  check_close(y, ref, 1e-5, 1e-5);
  // sequence-first layout and a bool mask (true = blocked, PyTorch's module convention)
  nn::MultiheadAttention seq_first(8, 2);
  seq_first.load_state_dict(mha.state_dict());
  check_close(seq_first.forward(x.transpose(0, 1)).transpose(0, 1), ref, 1e-5, 1e-5);
  const Tensor block_last = ge(arange(5).unsqueeze(0), 4).expand({5, 5});  // nobody attends to position 4
  const Tensor masked = mha.forward(x, x, x, block_last);
  const Tensor x_mod = cat({x.narrow(1, 0, 4), randn({3, 1, 8})}, 1);  // change only position 4's key/value
  check_close(mha.forward(x_mod, x_mod, x_mod, block_last).narrow(1, 0, 4), wt::values(masked.narrow(1, 0, 4)), 1e-5, 1e-5);
  CHECK_THROWS_AS(nn::MultiheadAttention(10, 3), ValueError);
}

// The batch norm written out from its definition on the unfused convolution, in f64.
namespace {
Tensor conv_bn_reference(const nn::Conv2d& conv, const nn::BatchNorm& bn, const Tensor& x, nn::Activation act) {
  NoGradGuard ng;
  const Tensor y = conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups);
  const std::vector<double> yv = y.to(DType::f64).contiguous().tolist<double>();
  const auto mean = bn.running_mean.tolist<double>(), var = bn.running_var.tolist<double>();
  const auto g = bn.weight.tolist<double>(), b = bn.bias.tolist<double>();
  const size_t C = mean.size();
  std::vector<double> out(yv.size());
  for (size_t i = 0; i < yv.size(); ++i) {
    const size_t c = i % C;
    double v = (yv[i] - mean[c]) / std::sqrt(var[c] + bn.eps) * g[c] + b[c];
    if (act == nn::Activation::relu) v = std::max(v, 0.0);
    if (act == nn::Activation::relu6) v = std::min(std::max(v, 0.0), 6.0);
    if (act == nn::Activation::silu) v = v / (1 + std::exp(-v));
    out[i] = v;
  }
  Tensor r = empty(y.shape(), DType::f64);
  std::copy(out.begin(), out.end(), r.data<double>());
  return r;
}
}  // namespace

TEST_CASE("conv_bn_act folds batch norm into the convolution for inference and equals the unfused layers") {
  for (const DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
    for (const int64_t groups : {int64_t{1}, int64_t{6}}) {
      for (const nn::Bias has_bias : {nn::Bias::no, nn::Bias::yes}) {
        CAPTURE(dt);
        CAPTURE(groups);
        nn::LayerOptions o;
        o.dtype = dt;
        nn::Conv2d conv(6, 6, 3, 2, 1, 1, groups, has_bias, o);
        nn::BatchNorm2d bn(6, 1e-3, 0.1, nn::Affine::yes, nn::TrackRunningStats::yes, o);
        {
          NoGradGuard ng;
          bn.running_mean.copy_(randn({6}, dt));
          bn.running_var.copy_(rand({6}, dt) + 0.5);
          bn.weight.copy_(randn({6}, dt));
          bn.bias.copy_(randn({6}, dt));
        }
        bn.eval();
        const Tensor x = randn({2, 7, 9, 6}, dt);
        for (const nn::Activation act : {nn::Activation::none, nn::Activation::relu, nn::Activation::relu6,
                                         nn::Activation::silu}) {
          NoGradGuard ng;
          CHECK(nn::conv_bn_folds(conv, bn, x));
          check_close(nn::conv_bn_act(conv, bn, x, act).to(DType::f64), conv_bn_reference(conv, bn, x, act), tol, tol);
        }
        // changed statistics (in place: a version bump) and reloaded weights rebuild the fold
        {
          NoGradGuard ng;
          const Tensor before = nn::conv_bn_act(conv, bn, x, nn::Activation::none);
          bn.running_var.mul_(3.0);
          const Tensor after = nn::conv_bn_act(conv, bn, x, nn::Activation::none);
          check_close(after.to(DType::f64), conv_bn_reference(conv, bn, x, nn::Activation::none), tol, tol);
          CHECK(max(abs(after - before)).item<double>() > 1e-3);
          nn::StateDict sd;
          sd.set("weight", randn(conv.weight.shape(), dt));
          if (conv.bias.defined()) sd.set("bias", randn({6}, dt));
          conv.load_state_dict(sd);
          check_close(nn::conv_bn_act(conv, bn, x, nn::Activation::relu).to(DType::f64),
                      conv_bn_reference(conv, bn, x, nn::Activation::relu), tol, tol);
        }
        // gradients wanted: no fold, the layers run as written and gradients reach the parameters
        const Tensor xg = x.detach().requires_grad_();
        CHECK_FALSE(nn::conv_bn_folds(conv, bn, xg));
        const Tensor y = nn::conv_bn_act(conv, bn, xg, nn::Activation::relu);
        check_close(y.detach().to(DType::f64), conv_bn_reference(conv, bn, x, nn::Activation::relu), tol, tol);
        y.sum().backward();
        CHECK(conv.weight.grad().defined());
        CHECK(xg.grad().defined());
        CHECK(bn.weight.grad().defined());
        // training mode: batch statistics, never folded
        bn.train();
        {
          NoGradGuard ng;
          CHECK_FALSE(nn::conv_bn_folds(conv, bn, x));
        }
      }
    }
  }
}

TEST_CASE("a bf16 or f16 model's batch-norm fold is computed in f32 and rounded once") {
  // The fold's scale, weight and bias against the same fold in f64 from the same (rounded) values,
  // rounded once to the model's dtype. Computed in f32 they differ only where the exact value sits
  // within f32's error of a rounding boundary (about 1e-4 of the elements); computed in the
  // model's dtype, rounding at each of the fold's steps, a third or more of them were off.
  for (const DType dt : {DType::bf16, DType::f16}) {
    CAPTURE(dt);
    nn::LayerOptions o;
    o.dtype = dt;
    const int64_t C = 64;
    nn::Conv2d conv(16, C, 3, 1, 1, 1, 1, nn::Bias::yes, o);
    nn::BatchNorm2d bn(C, 1e-5, 0.1, nn::Affine::yes, nn::TrackRunningStats::yes, o);
    {
      NoGradGuard ng;
      bn.running_mean.copy_(randn({C}, DType::f32).to(dt));
      bn.running_var.copy_((rand({C}, DType::f32) * 3.0 + 0.05).to(dt));
      bn.weight.copy_(randn({C}, DType::f32).to(dt));
      bn.bias.copy_(randn({C}, DType::f32).to(dt));
      conv.bias.copy_(randn({C}, DType::f32).to(dt));
    }
    bn.eval();
    NoGradGuard ng;
    const auto [w, b] = bn.folded().get(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                                         bn.running_var, bn.eps);
    CHECK(w.dtype() == dt);
    CHECK(b.dtype() == dt);
    const auto f64 = [](const Tensor& t) { return t.to(DType::f64); };
    const Tensor s = rsqrt(f64(bn.running_var) + bn.eps) * f64(bn.weight);
    const Tensor w_ref = (f64(conv.weight) * s.reshape({C, 1, 1, 1})).to(dt);
    const Tensor b_ref = ((f64(conv.bias) - f64(bn.running_mean)) * s + f64(bn.bias)).to(dt);
    const auto mismatches = [&](const Tensor& got, const Tensor& ref) {
      return ne(got, ref).to(DType::i64).sum().item<int64_t>();
    };
    CHECK(mismatches(w, w_ref) <= w.numel() / 100);
    CHECK(mismatches(b, b_ref) <= 1);
    // and no element is further than one unit in the last place from the once-rounded value
    const double ulp = dt == DType::bf16 ? 1.0 / 128 : 1.0 / 1024;  // relative spacing, upper bound
    CHECK(max(abs(f64(w) - f64(w_ref)) / (abs(f64(w_ref)) + 1e-30)).item<double>() <= ulp);
    CHECK(max(abs(f64(b) - f64(b_ref)) / (abs(f64(b_ref)) + 1e-30)).item<double>() <= ulp);
  }
}

TEST_CASE("add_relu adds in place only when nothing needs a gradient") {
  const Tensor a0 = tensor({-2.0, 1.0, 3.0}), b = tensor({1.0, -2.0, 0.5});
  {
    NoGradGuard ng;
    Tensor a = a0.clone();
    const Tensor r = nn::add_relu(a, b);
    check_close(r, {0.0, 0.0, 3.5});
  }
  const Tensor ag = a0.clone().requires_grad_();
  const Tensor r = nn::add_relu(ag, b);
  check_close(r.detach(), {0.0, 0.0, 3.5});
  check_close(ag.detach(), {-2.0, 1.0, 3.0});  // untouched
  r.sum().backward();
  check_close(ag.grad(), {0.0, 0.0, 1.0});
}
