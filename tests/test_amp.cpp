// Autocast: which ops run in which dtype (PyTorch's CUDA autocast lists; the matmul-like ops
// also agree with PyTorch's CPU autocast, checked in the same table), nesting and disabled
// regions, gradients reaching f32 master weights in f32, and an autocast training step of a
// small conv net staying close to the f32 step.
#include "harness.hpp"

using namespace wanwu;

TEST_CASE("autocast runs matmul-like ops low, precision-sensitive ops in f32, the rest as their inputs") {
  for (DType low : {DType::bf16, DType::f16}) {
    CAPTURE(dtype_name(low));
    const Tensor x = randn({4, 8}), w = randn({6, 8}), img = randn({2, 8, 8, 3}), cw = randn({4, 3, 3, 3});
    const Tensor q = randn({1, 2, 4, 8});
    amp::Autocast ac(low);
    const Tensor y = linear(x, w);
    CHECK(y.dtype() == low);
    CHECK(conv2d(img, cw).dtype() == low);
    CHECK(matmul(x, w.t()).dtype() == low);
    CHECK(mm(x, w.t()).dtype() == low);
    CHECK(bmm(x.unsqueeze(0), w.t().unsqueeze(0)).dtype() == low);
    CHECK(scaled_dot_product_attention(q, q, q).dtype() == low);
    // f32 list
    CHECK(softmax(y, -1).dtype() == DType::f32);
    CHECK(log_softmax(y, -1).dtype() == DType::f32);
    CHECK(layer_norm(y, {6}).dtype() == DType::f32);
    CHECK(group_norm(y.reshape({4, 1, 6}), 2).dtype() == DType::f32);
    CHECK(exp(y).dtype() == DType::f32);
    CHECK(log(abs(y) + 1.0).dtype() == DType::f32);
    CHECK(sum(y).dtype() == DType::f32);
    CHECK(mean(y).dtype() == DType::f32);
    CHECK(mse_loss(y, y).dtype() == DType::f32);
    CHECK(cross_entropy(y, tensor({0, 1, 2, 3})).dtype() == DType::f32);
    CHECK(binary_cross_entropy_with_logits(y, rand({4, 6})).dtype() == DType::f32);
    // everything else follows its inputs
    CHECK(relu(y).dtype() == low);
    CHECK((y + x.narrow(1, 0, 6)).dtype() == DType::f32);  // promotion with an f32 tensor
    CHECK(batch_norm(y, Tensor(), Tensor(), Tensor(), Tensor(), Mode::train).dtype() == low);
    // f64 is never touched
    CHECK(linear(x.to(DType::f64), w.to(DType::f64)).dtype() == DType::f64);
  }
}

TEST_CASE("autocast guards nest and can be disabled inside") {
  const Tensor x = randn({2, 3}), w = randn({4, 3});
  CHECK_FALSE(amp::is_autocast_enabled());
  {
    amp::Autocast outer(DType::bf16);
    CHECK(linear(x, w).dtype() == DType::bf16);
    {
      amp::Autocast inner(DType::f16);
      CHECK(linear(x, w).dtype() == DType::f16);
      {
        amp::Autocast off(DType::f16, amp::AutocastMode::off);
        CHECK(linear(x, w).dtype() == DType::f32);
      }
      CHECK(amp::autocast_dtype() == DType::f16);
    }
    CHECK(amp::autocast_dtype() == DType::bf16);
  }
  CHECK_FALSE(amp::is_autocast_enabled());
  CHECK_THROWS_AS(amp::Autocast(DType::f32), DTypeError);
}

TEST_CASE("under autocast, f32 master weights receive f32 gradients") {
  nn::Linear lin(8, 4);
  const Tensor x = randn({16, 8});
  Tensor loss;
  {
    amp::Autocast ac(DType::bf16);
    loss = cross_entropy(lin.forward(x), randint(0, 4, {16}));
  }
  CHECK(loss.dtype() == DType::f32);
  loss.backward();
  CHECK(lin.weight.grad().dtype() == DType::f32);
  CHECK(lin.bias.grad().dtype() == DType::f32);
}

TEST_CASE("an f16 autocast training step of a small conv net stays close to the f32 step") {
  // conv - bn - relu - pool - linear; one SGD step each way from the same weights and data.
  struct Net : nn::Module {
    std::shared_ptr<nn::Conv2d> conv = register_module("conv", std::make_shared<nn::Conv2d>(3, 8, 3, 1, 1));
    std::shared_ptr<nn::BatchNorm2d> bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(8));
    std::shared_ptr<nn::Linear> fc = register_module("fc", std::make_shared<nn::Linear>(8, 5));
    Tensor forward(const Tensor& x) override {
      return fc->forward(adaptive_avg_pool2d(relu(bn->forward(conv->forward(x))), 1).flatten(1));
    }
  };
  Generator g(4);
  Net a, b;
  b.load_state_dict(a.state_dict());
  const Tensor x = randn({8, 12, 12, 3}, {}, &g);
  const Tensor y = randint(0, 5, {8}, std::nullopt, &g);
  optim::SGDOptions o;
  o.lr = 0.5;
  optim::SGD sa(a.parameters(), o), sb(b.parameters(), o);
  cross_entropy(a.forward(x), y).backward();
  sa.step();
  amp::GradScaler scaler;
  Tensor loss;
  {
    amp::Autocast ac(DType::f16);
    loss = cross_entropy(b.forward(x), y);
  }
  scaler.scale(loss).backward();
  CHECK(scaler.step(sb));
  scaler.update();
  // f16 has an 11-bit significand: weights after one step agree to about 1e-3 of their scale
  for (const auto& [n, pa] : a.named_parameters()) {
    CAPTURE(n);
    const Tensor pb = b.state_dict().at(n);
    const double scale = amax(abs(pa.detach()), {}).item<double>();
    const double diff = amax(abs(pa.detach() - pb), {}).item<double>();
    CHECK(diff <= 2e-3 * scale + 1e-4);
  }
}
