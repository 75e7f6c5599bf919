// Fits y = 3x - 1 with one weight and one bias by gradient descent; exits 0 when it converged.
#include <cmath>
#include <cstdio>

#include <wanwu/wanwu.hpp>

int main() {
  using namespace wanwu;
  const Tensor x = linspace(-1, 1, 32).unsqueeze(1);
  const Tensor y = x * 3.0 - 1.0;
  Tensor w = zeros({1, 1}).requires_grad_();
  Tensor b = zeros({1}).requires_grad_();
  for (int step = 0; step < 300; ++step) {
    const Tensor loss = (linear(x, w, b) - y).square().mean();
    loss.backward();
    NoGradGuard no_grad;
    w.sub_(w.grad() * 0.1);
    b.sub_(b.grad() * 0.1);
    w.set_grad(Tensor());
    b.set_grad(Tensor());
  }
  const float wv = w.item<float>(), bv = b.item<float>();
  std::printf("w = %.4f, b = %.4f\n", wv, bv);
  return std::fabs(wv - 3.0f) < 1e-3f && std::fabs(bv + 1.0f) < 1e-3f ? 0 : 1;
}
