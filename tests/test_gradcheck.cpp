// Gradient checks (f64, central differences) for every differentiable op, including broadcast
// operands, strided inputs, keepdim variants and in-place ops. Inputs come from wt::spread, which
// keeps values away from kinks (relu at 0, clamp bounds, max ties).
#include "harness.hpp"

using namespace wanwu;
using wt::gradcheck;
using wt::spread;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: arithmetic with broadcasting") {
  gradcheck([](const V& x) { return x[0] + x[1]; }, {spread({2, 3}), spread({3}, -1, 1, 2)});
  gradcheck([](const V& x) { return add(x[0], x[1], 2.5); }, {spread({2, 3}), spread({2, 1}, -1, 1, 2)});
  gradcheck([](const V& x) { return x[0] - x[1]; }, {spread({2, 1, 3}), spread({4, 1}, -1, 1, 3)});
  gradcheck([](const V& x) { return sub(x[0], x[1], 0.5); }, {spread({3}), spread({2, 3}, -1, 1, 3)});
  gradcheck([](const V& x) { return x[0] * x[1]; }, {spread({2, 3}), spread({2, 3}, -1, 1, 4)});
  gradcheck([](const V& x) { return x[0] * x[1]; }, {spread({4, 1}), spread({3}, -1, 1, 4)});
  gradcheck([](const V& x) { return x[0] / x[1]; }, {spread({2, 3}), spread({3}, 0.5, 2, 5)});
  gradcheck([](const V& x) { return 3.0 - x[0] * 2.0 + 1.0 / x[0]; }, {spread({5}, 0.5, 2)});
  gradcheck([](const V& x) { return pow(x[0], x[1]); }, {spread({2, 3}, 0.5, 2), spread({3}, -1, 2, 6)});
  gradcheck([](const V& x) { return pow(x[0], 3); }, {spread({6})});
  gradcheck([](const V& x) { return pow(x[0], -0.7); }, {spread({6}, 0.3, 2)});
  gradcheck([](const V& x) { return pow(2.5, x[0]); }, {spread({6})});
  gradcheck([](const V& x) { return maximum(x[0], x[1]); }, {spread({2, 3}), spread({3}, -2, 2, 9)});
  gradcheck([](const V& x) { return minimum(x[0], x[1]); }, {spread({2, 3}), spread({2, 1}, -2, 2, 9)});
  gradcheck([](const V& x) { return where(gt(x[0], 0.0), x[0], x[1]); }, {spread({2, 3}), spread({3}, -2, 2, 9)});
  gradcheck([](const V& x) { return clamp(x[0], -1.0, 1.0); }, {spread({12}, -2, 2, 10)});
}

TEST_CASE("gradcheck: unary math") {
  const Tensor any = spread({2, 4});
  const Tensor pos = spread({2, 4}, 0.2, 3.0);
  gradcheck([](const V& x) { return neg(x[0]); }, {any});
  gradcheck([](const V& x) { return abs(x[0]); }, {any});
  gradcheck([](const V& x) { return square(x[0]); }, {any});
  gradcheck([](const V& x) { return exp(x[0]); }, {any});
  gradcheck([](const V& x) { return log(x[0]); }, {pos});
  gradcheck([](const V& x) { return log1p(x[0]); }, {pos});
  gradcheck([](const V& x) { return expm1(x[0]); }, {any});
  gradcheck([](const V& x) { return sqrt(x[0]); }, {pos});
  gradcheck([](const V& x) { return rsqrt(x[0]); }, {pos});
  gradcheck([](const V& x) { return reciprocal(x[0]); }, {pos});
  gradcheck([](const V& x) { return sin(x[0]); }, {any});
  gradcheck([](const V& x) { return cos(x[0]); }, {any});
  gradcheck([](const V& x) { return erf(x[0]); }, {any});
  gradcheck([](const V& x) { return floor(x[0]) + x[0]; }, {spread({8}, 0.1, 0.9)});  // zero gradient part
}

TEST_CASE("gradcheck: activations") {
  const Tensor x = spread({3, 5}, -4, 4);
  gradcheck([](const V& v) { return relu(v[0]); }, {x});
  const Tensor y = spread({3, 5}, -2, 2.5, 11);
  REQUIRE(min(abs(x + y)).item<double>() > 1e-3);  // away from relu's kink
  gradcheck([](const V& v) { return add_relu(v[0], v[1]); }, {x, y});
  gradcheck([](const V& v) { return relu6(v[0] * 2.0); }, {x});
  gradcheck([](const V& v) { return leaky_relu(v[0], 0.1); }, {x});
  gradcheck([](const V& v) { return sigmoid(v[0]); }, {x});
  gradcheck([](const V& v) { return tanh(v[0]); }, {x});
  gradcheck([](const V& v) { return silu(v[0]); }, {x});
  gradcheck([](const V& v) { return gelu(v[0]); }, {x});
  gradcheck([](const V& v) { return gelu(v[0], GeluApproximate::tanh); }, {x});
  gradcheck([](const V& v) { return hardswish(v[0]); }, {x});
  gradcheck([](const V& v) { return hardsigmoid(v[0]); }, {x});
  gradcheck([](const V& v) { return softplus(v[0]); }, {x});
  gradcheck([](const V& v) { return softplus(v[0], 2.0, 3.0); }, {x});
}

TEST_CASE("gradcheck: reductions") {
  const Tensor x = spread({3, 4, 5});
  for (KeepDim k : {KeepDim::no, KeepDim::yes}) {
    gradcheck([k](const V& v) { return sum(v[0], {1}, k); }, {x});
    gradcheck([k](const V& v) { return sum(v[0], {0, 2}, k); }, {x});
    gradcheck([k](const V& v) { return mean(v[0], {-1}, k); }, {x});
    gradcheck([k](const V& v) { return amax(v[0], {1, 2}, k); }, {x});
    gradcheck([k](const V& v) { return amin(v[0], {0}, k); }, {x});
    gradcheck([k](const V& v) { return max(v[0], 2, k).values; }, {x});
    gradcheck([k](const V& v) { return min(v[0], 0, k).values; }, {x});
    gradcheck([k](const V& v) { return var(v[0], {1}, 1, k); }, {x});
    gradcheck([k](const V& v) { return var(v[0], {0, 2}, 0, k); }, {x});
    gradcheck([k](const V& v) { return stddev(v[0], {2}, 1, k); }, {x});
    gradcheck([k](const V& v) { return logsumexp(v[0], {1}, k); }, {x});
  }
  gradcheck([](const V& v) { return v[0].sum(); }, {x});
  gradcheck([](const V& v) { return v[0].mean(); }, {x});
  gradcheck([](const V& v) { return v[0].max(); }, {x});
  gradcheck([](const V& v) { return sum(v[0].t(), {0}); }, {spread({4, 3})});  // strided input
  // ties: amax shares the gradient evenly (checked against the hand-computed value)
  Tensor t = tensor({1.0, 3.0, 3.0}, DType::f64).requires_grad_();
  t.max().backward();
  wt::check_close(t.grad(), {0, 0.5, 0.5});
}

TEST_CASE("gradcheck: views") {
  const Tensor x = spread({2, 3, 4});
  gradcheck([](const V& v) { return v[0].reshape({4, 6}) * v[0].reshape({4, 6}); }, {x});
  gradcheck([](const V& v) { return v[0].permute({2, 0, 1}).contiguous().view({-1}); }, {x});
  gradcheck([](const V& v) { return v[0].transpose(0, 2); }, {x});
  gradcheck([](const V& v) { return v[0].narrow(1, 1, 2); }, {x});
  gradcheck([](const V& v) { return v[0].slice(2, 0, 4, 3); }, {x});
  gradcheck([](const V& v) { return v[0].select(1, -1); }, {x});
  gradcheck([](const V& v) { return v[0].unsqueeze(1).expand({2, 5, 3, 4}); }, {x});
  gradcheck([](const V& v) { return v[0].flatten(1).unflatten(1, {4, 3}).squeeze(); }, {x});
  gradcheck([](const V& v) { return v[0].to(DType::f32).to(DType::f64); }, {x}, 1e-3, 1e-3, 1e-3);  // f32 rounding
  gradcheck([](const V& v) { return v[0].clone() * 2.0; }, {x});
}

TEST_CASE("gradcheck: matmul, linear") {
  gradcheck([](const V& v) { return mm(v[0], v[1]); }, {spread({3, 4}), spread({4, 2}, -1, 1, 3)});
  gradcheck([](const V& v) { return matmul(v[0], v[1]); }, {spread({2, 1, 3, 4}), spread({5, 4, 2}, -1, 1, 3)});
  gradcheck([](const V& v) { return matmul(v[0], v[1]); }, {spread({2, 3, 4}), spread({4, 2}, -1, 1, 3)});
  gradcheck([](const V& v) { return matmul(v[0], v[1]); }, {spread({4}), spread({4}, -1, 1, 3)});
  gradcheck([](const V& v) { return matmul(v[0], v[1]); }, {spread({3, 4}), spread({4}, -1, 1, 3)});
  gradcheck([](const V& v) { return matmul(v[0], v[1]); }, {spread({4}), spread({2, 4, 3}, -1, 1, 3)});
  gradcheck([](const V& v) { return bmm(v[0], v[1].transpose(1, 2)); }, {spread({2, 3, 4}), spread({2, 5, 4}, -1, 1, 3)});
  gradcheck([](const V& v) { return linear(v[0], v[1], v[2]); },
            {spread({2, 3, 4}), spread({5, 4}, -1, 1, 3), spread({5}, -1, 1, 4)});
  gradcheck([](const V& v) { return linear(v[0], v[1]); }, {spread({4}), spread({5, 4}, -1, 1, 3)});
}

TEST_CASE("gradcheck: cat, stack, split, chunk, unbind, index ops") {
  gradcheck([](const V& v) { return cat({v[0], v[1] * 2.0, v[0]}, 1); }, {spread({2, 3}), spread({2, 2}, -1, 1, 3)});
  gradcheck([](const V& v) { return stack({v[0], v[1]}, 2); }, {spread({2, 3}), spread({2, 3}, -1, 1, 3)});
  gradcheck([](const V& v) { return split(v[0], 2, 1)[1] * split(v[0], 2, 1)[0]; }, {spread({3, 4})});
  gradcheck([](const V& v) { return chunk(v[0], 3, 0)[2]; }, {spread({5, 2})});
  gradcheck([](const V& v) { const auto u = unbind(v[0], 1); return u[0] * u[2] + u[2]; }, {spread({2, 3, 2})});
  gradcheck([](const V& v) { return index_select(v[0], 1, tensor({2, 0, 2})); }, {spread({2, 3})});
  gradcheck([](const V& v) { return gather(v[0], 1, tensor({{1, 1}, {0, 2}})); }, {spread({2, 3})});
  gradcheck([](const V& v) { return scatter_add(v[0], 0, tensor({{1, 0, 1}}), v[1]); },
            {spread({2, 3}), spread({2, 3}, -1, 1, 5)});
}

TEST_CASE("gradcheck: in-place ops and copy_") {
  gradcheck(
      [](const V& v) {
        Tensor h = v[0] * 1.0;
        h.mul_(v[1]);
        h.add_(v[1], -0.5);
        h.div_(v[1] + 3.0);
        h.sub_(v[0]);
        return h;
      },
      {spread({2, 3}), spread({3}, 0.5, 2, 6)});
  gradcheck(
      [](const V& v) {
        Tensor h = v[0] * 1.0;
        h.clamp_(-1.0, 1.0);
        return h;
      },
      {spread({8}, -2, 2, 3)});
  gradcheck(
      [](const V& v) {
        Tensor h = zeros({2, 3}, DType::f64);
        h.copy_(v[0] * 3.0);
        return h * h;
      },
      {spread({3})});
}
