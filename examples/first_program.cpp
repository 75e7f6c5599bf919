// The README's first program: a linear model fitted by SGD with autograd.
#include <iostream>
#include <wanwu/wanwu.hpp>
using namespace wanwu;

int main() {
  const Tensor x = randn({64, 3});                       // inputs
  const Tensor y = x.matmul(tensor({{2.0}, {-1.0}, {0.5}})) + 0.3;  // targets of a linear map
  Tensor w = zeros({1, 3}).requires_grad_();             // parameters
  Tensor b = zeros({1}).requires_grad_();
  for (int step = 0; step < 200; ++step) {
    const Tensor loss = (linear(x, w, b) - y).square().mean();
    loss.backward();                                     // fills w.grad(), b.grad()
    NoGradGuard no_grad;                                 // the update is not recorded
    w.sub_(w.grad(), 0.1);                               // SGD step: w -= 0.1 * grad
    b.sub_(b.grad(), 0.1);
    w.set_grad(Tensor());                                // zero_grad (set to none)
    b.set_grad(Tensor());
  }
  std::cout << w << "\n" << b << "\n";                   // ~[[2, -1, 0.5]], ~[0.3]
}
