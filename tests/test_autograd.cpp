// The autograd engine: diamonds, a tensor used twice, accumulation across backward calls,
// no_grad, detach, retain_grad, explicit gradients for non-scalar outputs, the in-place version
// check, a second backward through freed buffers, a 2,000-layer chain, and
// the per-op profile of backward passes.
#include <thread>

#include "harness.hpp"

using namespace wanwu;
using wt::check_close;

TEST_CASE("a diamond graph sums the gradients of both paths") {
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  Tensor a = x * 3.0;
  Tensor b = exp(a);
  Tensor c = a * a;
  Tensor y = (b + c).sum();  // dy/dx = 3 e^{3x} + 18 x
  y.backward();
  check_close(x.grad(), {3 * std::exp(3.0) + 18, 3 * std::exp(6.0) + 36}, 1e-12, 0);
}

TEST_CASE("a tensor used twice, and as both operands") {
  Tensor x = tensor({3.0}, DType::f64).requires_grad_();
  (x * x + x).sum().backward();
  CHECK(x.grad().item<double>() == 7.0);
}

TEST_CASE("gradients accumulate across backward calls until cleared") {
  Tensor w = tensor({1.0, -1.0}, DType::f64).requires_grad_();
  (w * 2.0).sum().backward();
  (w * 3.0).sum().backward();
  check_close(w.grad(), {5, 5});
  const Tensor g = w.grad();
  (w * 1.0).sum().backward();
  check_close(g, {6, 6});  // accumulated in place, as PyTorch
  w.set_grad(Tensor());
  (w * w).sum().backward();
  check_close(w.grad(), {2, -2});
}

TEST_CASE("retain_graph allows a second backward; without it the error is clear") {
  Tensor x = tensor({2.0}, DType::f64).requires_grad_();
  Tensor y = (x * x).sum();
  y.backward(Tensor(), RetainGraph::yes);
  y.backward();
  CHECK(x.grad().item<double>() == 8.0);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("second time"), AutogradError);
}

TEST_CASE("NoGradGuard, detach and requires_grad") {
  Tensor x = ones({2}).requires_grad_();
  {
    NoGradGuard ng;
    Tensor y = x * 2;
    CHECK_FALSE(y.requires_grad());
    {
      EnableGradGuard eg;
      CHECK((x * 2).requires_grad());
    }
  }
  Tensor d = (x * 2).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  Tensor z = x * 2;
  CHECK(z.requires_grad());
  CHECK_FALSE(z.is_leaf());
  CHECK(z.grad_fn()->name() == "mul");
  CHECK_THROWS_AS(z.requires_grad_(false), AutogradError);
  CHECK_THROWS_WITH_AS(tensor({1, 2}).requires_grad_(), doctest::Contains("floating"), AutogradError);
  CHECK_THROWS_WITH_AS(ones({2}).sum().backward(), doctest::Contains("does not require grad"), AutogradError);
  Tensor e = x * 2;
  e.detach_();
  CHECK_FALSE(e.requires_grad());
  // integer outputs of differentiable inputs carry no graph
  CHECK_FALSE(argmax(x).requires_grad());
  CHECK_FALSE(gt(x, 0).requires_grad());
}

TEST_CASE("retain_grad keeps a non-leaf's gradient") {
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  Tensor h = x * 2.0;
  h.retain_grad();
  Tensor y = (h * h).sum();
  y.backward();
  check_close(h.grad(), {4, 8});
  check_close(x.grad(), {8, 16});
  CHECK(h.retains_grad());
  CHECK_FALSE((x * 3.0).grad().defined());
}

TEST_CASE("backward of a non-scalar needs an explicit gradient") {
  Tensor x = tensor({1.0, 2.0, 3.0}, DType::f64).requires_grad_();
  Tensor y = x * x;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("one-element"), AutogradError);
  y.backward(tensor({1.0, 0.5, 0.0}, DType::f64));
  check_close(x.grad(), {2, 2, 0});
  CHECK_THROWS_AS(y.backward(ones({2}, DType::f64)), ShapeError);
  // several roots at once
  Tensor a = tensor({1.0}, DType::f64).requires_grad_();
  autograd::backward({a * 2.0, a * a}, {ones({1}, DType::f64), ones({1}, DType::f64)}, RetainGraph::no);
  CHECK(a.grad().item<double>() == 4.0);
}

TEST_CASE("modifying a saved tensor in place makes backward fail with a clear message") {
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  Tensor h = x * 2.0;
  Tensor y = (h * h).sum();  // mul saves h
  h.add_(1.0);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("modified by an in-place operation"), AutogradError);
  // exp saves its output: modifying the output is caught too
  Tensor x2 = tensor({1.0}, DType::f64).requires_grad_();
  Tensor e = exp(x2);
  e.mul_(2.0);
  CHECK_THROWS_AS(e.sum().backward(), AutogradError);
  // a leaf that requires grad cannot be changed in place while recording
  CHECK_THROWS_WITH_AS(x.add_(1.0), doctest::Contains("leaf"), AutogradError);
  {
    NoGradGuard ng;  // ... but can under NoGradGuard (optimizer updates)
    x.add_(1.0);
  }
  check_close(x, {2, 3});
  // in-place on a view of a tensor that requires grad is rejected
  Tensor v = (x * 1.0).narrow(0, 0, 1);
  CHECK_THROWS_WITH_AS(v.mul_(2.0), doctest::Contains("view"), AutogradError);
}

TEST_CASE("in-place ops on non-leaves are differentiable") {
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  Tensor w = tensor({3.0, 4.0}, DType::f64).requires_grad_();
  Tensor h = x * 1.0;
  h.mul_(w);   // h = x * w
  h.add_(x, 2.0);  // h = x * w + 2 x
  h.div_(w);   // h = x + 2 x / w
  h.sum().backward();
  check_close(x.grad(), {1 + 2.0 / 3.0, 1 + 2.0 / 4.0}, 1e-12, 0);
  check_close(w.grad(), {-2 * 1.0 / 9.0, -2 * 2.0 / 16.0}, 1e-12, 0);
  // copy_ into a non-leaf routes the gradient to the source
  Tensor s = tensor({5.0, 6.0}, DType::f64).requires_grad_();
  Tensor buf = zeros({2}, DType::f64);
  buf.copy_(s * 2.0);
  (buf * buf).sum().backward();
  check_close(s.grad(), {40, 48});
}

TEST_CASE("a 2,000-layer chain runs without recursion limits") {
  Tensor x = tensor({0.5}, DType::f64).requires_grad_();
  Tensor h = x;
  for (int i = 0; i < 2000; ++i) h = h * 1.001 + 0.0;
  h.sum().backward();
  CHECK(x.grad().item<double>() == doctest::Approx(std::pow(1.001, 2000)).epsilon(1e-12));
  // a much deeper one, to show there is no stack depth involved
  Tensor y = tensor({1.0}, DType::f64).requires_grad_();
  Tensor g = y;
  for (int i = 0; i < 100000; ++i) g = g + 1.0;
  g.sum().backward();
  CHECK(y.grad().item<double>() == 1.0);
}

TEST_CASE("broadcast gradients are reduced back to the input shapes") {
  Tensor a = ones({3, 1}, DType::f64).requires_grad_();
  Tensor b = ones({4}, DType::f64).requires_grad_();
  Tensor s = ones(Shape{}, DType::f64).requires_grad_();
  ((a + b) * s).sum().backward();
  CHECK(a.grad().shape() == Shape{3, 1});
  check_close(a.grad(), {4, 4, 4});
  check_close(b.grad(), {3, 3, 3, 3});
  CHECK(s.grad().shape() == Shape{});
  CHECK(s.grad().item<double>() == 24.0);
}

TEST_CASE("gradients flow through dtype and view conversions") {
  Tensor x = tensor({1.0, 2.0, 3.0, 4.0}, DType::f64).requires_grad_();
  Tensor y = x.to(DType::f32).reshape({2, 2}).t().contiguous();
  (y * y).sum().backward();
  CHECK(x.grad().dtype() == DType::f64);
  check_close(x.grad(), {2, 4, 6, 8});
}

TEST_CASE("a BackwardProfile times every node of the backward passes run while it is alive, by name") {
  auto calls = [](const autograd::BackwardProfile& p, const std::string& name) {
    for (const autograd::OpTime& o : p.ops())
      if (o.name == name) return o.calls;
    return int64_t(0);
  };
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  autograd::BackwardProfile prof;
  CHECK(autograd::BackwardProfile::current() == &prof);
  for (int i = 0; i < 2; ++i) {
    const Tensor a = x * 3.0;
    (exp(a) + a * a).sum().backward();
  }
  // Per pass: sum, add, exp, the two muls and x's AccumulateGrad; a receives three gradients (from
  // exp and from both operands of a * a), which takes two sums.
  CHECK(calls(prof, "sum") == 2);
  CHECK(calls(prof, "add") == 2);
  CHECK(calls(prof, "exp") == 2);
  CHECK(calls(prof, "mul") == 4);
  CHECK(calls(prof, "AccumulateGrad") == 2);
  CHECK(calls(prof, "sum of gradients") == 4);
  const auto ops = prof.ops();
  CHECK(ops.size() == 6);
  double total = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    CHECK(ops[i].ms >= 0);
    if (i > 0) CHECK(ops[i - 1].ms >= ops[i].ms);  // most time first
    total += ops[i].ms;
  }
  CHECK(prof.total_ms() == doctest::Approx(total));
  // profiling changes no value: two passes accumulate 2 (3 e^{3x} + 18 x)
  check_close(x.grad(), {2 * (3 * std::exp(3.0) + 18.0), 2 * (3 * std::exp(6.0) + 36.0)}, 1e-12, 1e-12);
  {
    autograd::BackwardProfile inner;  // the innermost profile gets the reports, then the outer again
    (x * 2.0).sum().backward();
    CHECK(calls(inner, "mul") == 1);
    CHECK(calls(prof, "mul") == 4);
  }
  CHECK(autograd::BackwardProfile::current() == &prof);
  std::thread([&] { (x * 2.0).sum().backward(); }).join();  // another thread's pass is its own
  CHECK(calls(prof, "mul") == 4);
  (x * 2.0).sum().backward();
  CHECK(calls(prof, "mul") == 5);
}
