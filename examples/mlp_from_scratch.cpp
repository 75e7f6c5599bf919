// An MLP trained from scratch with nothing but tensors and autograd: three interleaved spirals
// (a classic non-linear toy problem), a 2-64-64-3 ReLU network, cross-entropy, and SGD with
// momentum written by hand. Prints the loss curve, train and
// validation accuracy and the validation confusion matrix.
//
//   mlp_from_scratch [--steps N] [--seed S]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <wanwu/wanwu.hpp>

using namespace wanwu;

// n points per class on `classes` spiral arms with Gaussian jitter.
static void make_spirals(int64_t n, int64_t classes, Generator& g, Tensor& x, Tensor& y) {
  std::vector<float> xs;
  std::vector<int64_t> ys;
  const Tensor noise = randn({n * classes, 2}, {}, &g);
  const auto nz = noise.tolist<float>();
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t i = 0; i < n; ++i) {
      const double r = static_cast<double>(i) / n;
      const double t = 4.0 * r + 2.0 * M_PI * c / classes;
      const int64_t k = c * n + i;
      xs.push_back(static_cast<float>(r * std::sin(t) + 0.02 * nz[2 * k]));
      xs.push_back(static_cast<float>(r * std::cos(t) + 0.02 * nz[2 * k + 1]));
      ys.push_back(c);
    }
  x = from_vector(xs, {n * classes, 2});
  y = from_vector(ys, {n * classes});
}

int main(int argc, char** argv) {
  int steps = 2000;
  uint64_t seed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, "mlp_from_scratch: unknown flag %s (expected --steps N or --seed S)\n", argv[i]);
      return 2;
    }
  }
  Generator g(seed);
  Tensor x_train, y_train, x_val, y_val;
  make_spirals(300, 3, g, x_train, y_train);
  make_spirals(100, 3, g, x_val, y_val);

  // Parameters with PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  auto layer = [&](int64_t in, int64_t out) {
    const double k = 1.0 / std::sqrt(static_cast<double>(in));
    return std::vector<Tensor>{uniform({out, in}, -k, k, {}, &g).requires_grad_(),
                               uniform({out}, -k, k, {}, &g).requires_grad_()};
  };
  std::vector<Tensor> params;
  for (auto [in, out] : {std::pair{2, 64}, {64, 64}, {64, 3}})
    for (auto& p : layer(in, out)) params.push_back(p);
  auto forward = [&](const Tensor& x) {
    Tensor h = relu(linear(x, params[0], params[1]));
    h = relu(linear(h, params[2], params[3]));
    return linear(h, params[4], params[5]);
  };
  auto accuracy = [&](const Tensor& x, const Tensor& y) {
    NoGradGuard ng;
    return eq(argmax(forward(x), 1), y).to(DType::f32).mean().item<double>();
  };

  std::vector<Tensor> velocity;
  for (const auto& p : params) velocity.push_back(zeros_like(p));
  const double lr = 0.2, momentum = 0.9;
  std::printf("training a 2-64-64-3 MLP on %lld spiral points for %d steps (full batch, SGD lr %.2f momentum %.1f)\n",
              static_cast<long long>(x_train.size(0)), steps, lr, momentum);
  for (int step = 1; step <= steps; ++step) {
    const Tensor loss = cross_entropy(forward(x_train), y_train);
    loss.backward();
    {
      NoGradGuard ng;  // the update is not part of the graph
      for (size_t i = 0; i < params.size(); ++i) {
        velocity[i].mul_(momentum).add_(params[i].grad());
        params[i].sub_(velocity[i], lr);
        params[i].set_grad(Tensor());
      }
    }
    if (step == 1 || step % (steps / 10 > 0 ? steps / 10 : 1) == 0)
      std::printf("step %5d  loss %.4f  train acc %.3f\n", step, loss.item<double>(), accuracy(x_train, y_train));
  }

  const double val_acc = accuracy(x_val, y_val);
  std::printf("\nvalidation accuracy: %.3f\nconfusion matrix (rows: true class, columns: predicted)\n", val_acc);
  NoGradGuard ng;
  const Tensor pred = argmax(forward(x_val), 1);
  const Tensor cm = (one_hot(y_val, 3).unsqueeze(2) * one_hot(pred, 3).unsqueeze(1)).sum({0});
  std::printf("%s\n", to_string(cm).c_str());
  return val_acc > 0.9 ? 0 : 1;
}
