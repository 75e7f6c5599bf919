// Shared test helpers: run a body on every available device, compare tensors with stated
// tolerances, and check gradients against central finite differences in f64.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <wanwu/wanwu.hpp>

namespace wt {

using namespace wanwu;

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

inline std::vector<Device> test_devices() {
  std::vector<Device> d{Device::cpu()};
  if (cuda_is_available()) d.push_back(Device::cuda(0));
  return d;
}

// Runs body(device) on the CPU and on every CUDA device this program has.
template <class F>
void for_each_device(F&& body) {
  for (Device d : test_devices()) {
    CAPTURE(d);
    body(d);
  }
}

inline std::vector<double> values(const Tensor& t) { return t.tolist<double>(); }

// Every element: |a - b| <= atol + rtol * |b|; NaN matches NaN. Reports the first mismatch.
inline void check_close(const Tensor& a, const std::vector<double>& expected, double rtol = 1e-6, double atol = 1e-6) {
  const auto v = values(a);
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const double x = v[i], y = expected[i];
    const bool ok = (std::isnan(x) && std::isnan(y)) || x == y || std::fabs(x - y) <= atol + rtol * std::fabs(y);
    if (!ok) {
      FAIL_CHECK("element " << i << ": got " << x << ", expected " << y << " (rtol " << rtol << ", atol " << atol
                            << ")");
      return;
    }
  }
}
inline void check_close(const Tensor& a, const Tensor& b, double rtol = 1e-6, double atol = 1e-6) {
  REQUIRE(a.shape() == b.shape());
  check_close(a, values(b), rtol, atol);
}

// Gradient check: for loss = sum(f(inputs) * w) with fixed random w, compares autograd's
// gradient of every floating input with central differences. Inputs are converted to f64.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      double eps = 1e-6, double rtol = 1e-4, double atol = 1e-6) {
  for (auto& x : inputs)
    if (x.is_floating_point()) x = x.detach().to(DType::f64).contiguous().detach().requires_grad_(true);
  Tensor out = f(inputs);
  REQUIRE(out.dtype() == DType::f64);
  Generator g(1234);
  const Tensor w = randn(out.shape(), DType::f64, &g);
  (out * w).sum().backward();

  auto loss_at = [&]() {
    NoGradGuard ng;
    return (f(inputs) * w).sum().item<double>();
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    CAPTURE(i);
    REQUIRE(x.grad().defined());
    const auto analytic = values(x.grad());
    double* p = x.data<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double orig = p[j];
      p[j] = orig + eps;
      const double fp = loss_at();
      p[j] = orig - eps;
      const double fm = loss_at();
      p[j] = orig;
      const double numeric = (fp - fm) / (2 * eps);
      const double a = analytic[j];
      if (std::fabs(a - numeric) > atol + rtol * std::fabs(numeric)) {
        FAIL_CHECK("input " << i << " element " << j << ": autograd " << a << ", finite difference " << numeric);
        return;
      }
    }
  }
}

// Values spread away from zero and from each other: keeps kinks (relu at 0, max ties) away
// from the finite-difference stencil.
inline Tensor spread(const Shape& shape, double lo = -2.0, double hi = 2.0, uint64_t seed = 7) {
  const int64_t n = numel_of(shape);
  std::vector<double> v(static_cast<size_t>(n));
  Generator g(seed);
  for (int64_t i = 0; i < n; ++i) {
    double x;
    do {
      x = lo + (hi - lo) * g.next_double();
    } while (std::fabs(x) < 0.05);
    v[i] = x + 1e-3 * static_cast<double>(i);  // distinct values
  }
  return from_vector(v, shape, DType::f64);
}

}  // namespace wt
