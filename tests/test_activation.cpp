// Activations at the edges: extreme inputs stay finite and exact where the math says so, the
// derivative at hand-worked points, and the in-place relu_ under autograd.
#include <cmath>

#include "harness.hpp"

using namespace wanwu;
using wt::check_close;

TEST_CASE("activations are stable at extreme inputs") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dt);
    const Tensor x = tensor({-1000.0, -30.0, 30.0, 1000.0}, dt);
    check_close(sigmoid(x), {0.0, 1.0 / (1.0 + std::exp(30.0)), 1.0 / (1.0 + std::exp(-30.0)), 1.0}, 1e-6, 1e-30);
    check_close(tanh(x), {-1, -1, 1, 1});
    check_close(softplus(x), {0.0, std::log1p(std::exp(-30.0)), 30.0, 1000.0}, 1e-6, 1e-30);
    check_close(silu(x), {0.0, -30.0 / (1.0 + std::exp(30.0)), 30.0 / (1.0 + std::exp(-30.0)), 1000.0}, 1e-6, 1e-20);
    check_close(gelu(x), {0.0, 0.0, 30.0, 1000.0}, 1e-6, 1e-20);
    check_close(hardswish(x), {0.0, 0.0, 30.0, 1000.0});
    check_close(hardsigmoid(x), {0.0, 0.0, 1.0, 1.0});
    check_close(relu6(x), {0.0, 0.0, 6.0, 6.0});
  }
}

TEST_CASE("derivatives at hand-worked points") {
  auto grad_of = [](Tensor (*f)(const Tensor&), double x) {
    Tensor t = tensor({x}, DType::f64).requires_grad_();
    f(t).sum().backward();
    return t.grad().item<double>();
  };
  CHECK(grad_of([](const Tensor& t) { return relu(t); }, 2.0) == 1.0);
  CHECK(grad_of([](const Tensor& t) { return relu(t); }, -2.0) == 0.0);
  CHECK(grad_of([](const Tensor& t) { return relu6(t); }, 7.0) == 0.0);
  CHECK(grad_of([](const Tensor& t) { return sigmoid(t); }, 0.0) == doctest::Approx(0.25));
  CHECK(grad_of([](const Tensor& t) { return tanh(t); }, 0.0) == doctest::Approx(1.0));
  CHECK(grad_of([](const Tensor& t) { return silu(t); }, 0.0) == doctest::Approx(0.5));
  CHECK(grad_of([](const Tensor& t) { return gelu(t); }, 0.0) == doctest::Approx(0.5));
  CHECK(grad_of([](const Tensor& t) { return hardswish(t); }, 0.0) == doctest::Approx(0.5));
  CHECK(grad_of([](const Tensor& t) { return hardswish(t); }, 3.0) == doctest::Approx(1.5));  // PyTorch: x/3 + 1/2
  CHECK(grad_of([](const Tensor& t) { return hardsigmoid(t); }, 3.0) == 0.0);
  CHECK(grad_of([](const Tensor& t) { return softplus(t); }, 0.0) == doctest::Approx(0.5));
  CHECK(grad_of([](const Tensor& t) { return leaky_relu(t); }, -1.0) == doctest::Approx(0.01));
}

TEST_CASE("relu_ in place: values, gradient, and the leaf rule") {
  Tensor w = tensor({-1.0, 2.0, -3.0, 4.0}, DType::f64).requires_grad_();
  Tensor h = w * 2.0;
  relu_(h);
  check_close(h, {0, 4, 0, 8});
  (h * h).sum().backward();
  check_close(w.grad(), {0, 16, 0, 32});  // d/dw (2w)^2 = 8w where w > 0
  CHECK_THROWS_WITH_AS(relu_(w), doctest::Contains("leaf"), AutogradError);
  CHECK_THROWS_AS(gelu(tensor({1, 2})), DTypeError);
}

TEST_CASE("add_relu equals relu(a + b): values, both gradients, NaN, and the broadcasting fallback") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dt);
    const Tensor a = tensor({-2.0, 1.0, 3.0, -0.5, std::nan(""), 2.0}, dt).requires_grad_();
    const Tensor b = tensor({1.0, -2.0, 0.5, 1.0, 1.0, -2.5}, dt).requires_grad_();
    const Tensor y = add_relu(a, b);
    const Tensor yv = y.detach();
    check_close(yv.narrow(0, 0, 4), {0.0, 0.0, 3.5, 0.5});
    CHECK(std::isnan(yv.narrow(0, 4, 1).to(DType::f64).item<double>()));
    CHECK(yv.narrow(0, 5, 1).to(DType::f64).item<double>() == 0.0);
    (y.narrow(0, 0, 4) * tensor({1.0, 2.0, 3.0, 4.0}, dt)).sum().backward();
    check_close(a.grad(), {0.0, 0.0, 3.0, 4.0, 0.0, 0.0});
    check_close(b.grad(), {0.0, 0.0, 3.0, 4.0, 0.0, 0.0});
  }
  // a bias-like operand broadcasts through relu(a + b)
  const Tensor a = tensor({-1.0, 2.0, 3.0, -4.0}).reshape({2, 2}).requires_grad_(), b = tensor({0.5, -2.5});
  const Tensor y = add_relu(a, b);
  check_close(y.detach().reshape({4}), {0.0, 0.0, 3.5, 0.0});
  y.sum().backward();
  check_close(a.grad().reshape({4}), {0.0, 0.0, 1.0, 0.0});
}
