// Parameter initializers with PyTorch's formulas (torch.nn.init): uniform, normal, constant,
// kaiming (He) and xavier (Glorot) in both forms, trunc_normal. All fill in place, without
// recording a graph, and take an optional Generator for reproducible initialization.
// Fan-in/fan-out follow PyTorch's definitions; 4-D weights are OHWI here (DESIGN D4), which gives
// the same fans as PyTorch's OIHW.
#pragma once

#include <cmath>
#include <string_view>

#include "../autograd/grad_mode.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/factory.hpp"

namespace wanwu::nn::init {

enum class FanMode : uint8_t { fan_in, fan_out };
enum class Nonlinearity : uint8_t { linear, conv, sigmoid, tanh, relu, leaky_relu, selu };

// PyTorch's calculate_gain.
inline double calculate_gain(Nonlinearity nl, double param = 0.01) {
  switch (nl) {
    case Nonlinearity::linear:
    case Nonlinearity::conv:
    case Nonlinearity::sigmoid: return 1.0;
    case Nonlinearity::tanh: return 5.0 / 3.0;
    case Nonlinearity::relu: return std::sqrt(2.0);
    case Nonlinearity::leaky_relu: return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::selu: return 3.0 / 4.0;
  }
  return 1.0;
}

struct Fans {
  double fan_in, fan_out;
};
inline Fans calculate_fans(const Tensor& t) {
  WANWU_CHECK_SHAPE(t.dim() >= 2, "init: fan in and fan out need a tensor with at least 2 dimensions, got ",
                    t.shape());
  if (t.dim() == 2) return {static_cast<double>(t.size(1)), static_cast<double>(t.size(0))};
  // OHWI: inputs are the last dim, the receptive field the dims between
  double receptive = 1;
  for (int i = 1; i < t.dim() - 1; ++i) receptive *= static_cast<double>(t.size(i));
  return {static_cast<double>(t.size(-1)) * receptive, static_cast<double>(t.size(0)) * receptive};
}

namespace detail {
inline Tensor& fill_from(Tensor& t, const Tensor& values) {
  NoGradGuard ng;
  t.copy_(values);
  return t;
}
}  // namespace detail

inline Tensor& uniform_(Tensor& t, double a = 0.0, double b = 1.0, Generator* gen = nullptr) {
  return detail::fill_from(t, uniform(t.shape(), a, b, TensorOptions(DType::f64).device(t.device()), gen));
}
inline Tensor& normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr) {
  return detail::fill_from(t, normal(t.shape(), mean, std, TensorOptions(DType::f64).device(t.device()), gen));
}
inline Tensor& constant_(Tensor& t, double value) {
  NoGradGuard ng;
  t.fill_(value);
  return t;
}
inline Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
inline Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }

inline Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                                Nonlinearity nl = Nonlinearity::leaky_relu, Generator* gen = nullptr) {
  const Fans f = calculate_fans(t);
  const double std = calculate_gain(nl, a) / std::sqrt(mode == FanMode::fan_in ? f.fan_in : f.fan_out);
  const double bound = std::sqrt(3.0) * std;
  return uniform_(t, -bound, bound, gen);
}
inline Tensor& kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                               Nonlinearity nl = Nonlinearity::leaky_relu, Generator* gen = nullptr) {
  const Fans f = calculate_fans(t);
  return normal_(t, 0.0, calculate_gain(nl, a) / std::sqrt(mode == FanMode::fan_in ? f.fan_in : f.fan_out), gen);
}
inline Tensor& xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr) {
  const Fans f = calculate_fans(t);
  const double bound = gain * std::sqrt(6.0 / (f.fan_in + f.fan_out));
  return uniform_(t, -bound, bound, gen);
}
inline Tensor& xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr) {
  const Fans f = calculate_fans(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / (f.fan_in + f.fan_out)), gen);
}

// Inverse of erf on (-1, 1): a rational initial guess refined by Newton steps to double precision.
inline double erfinv(double y) {
  if (y <= -1.0) return -INFINITY;
  if (y >= 1.0) return INFINITY;
  const double w = -std::log((1.0 - y) * (1.0 + y));
  double x;
  if (w < 5.0) {  // Giles, "Approximating the erfinv function", single-precision coefficients
    const double v = w - 2.5;
    double p = 2.81022636e-08;
    for (double c : {3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                     -0.00417768164, 0.246640727, 1.50140941})
      p = p * v + c;
    x = p * y;
  } else {
    const double v = std::sqrt(w) - 3.0;
    double p = -0.000200214257;
    for (double c : {0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047,
                     1.00167406, 2.83297682})
      p = p * v + c;
    x = p * y;
  }
  for (int i = 0; i < 2; ++i)  // Newton on erf(x) - y
    x -= (std::erf(x) - y) / (2.0 / std::sqrt(M_PI) * std::exp(-x * x));
  return x;
}

// Normal(mean, std) truncated to [a, b], by PyTorch's inverse-CDF method.
inline Tensor& trunc_normal_(Tensor& t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                             Generator* gen = nullptr) {
  WANWU_CHECK_VALUE(std > 0 && a < b, "trunc_normal_: need std > 0 and a < b, got std ", std, ", [", a, ", ", b, "]");
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double l = cdf((a - mean) / std), u = cdf((b - mean) / std);
  Tensor uni = uniform(t.shape(), 2 * l - 1, 2 * u - 1, DType::f64, gen);
  double* p = uni.data<double>();
  for (int64_t i = 0; i < uni.numel(); ++i)
    p[i] = std::clamp(erfinv(p[i]) * std * std::sqrt(2.0) + mean, a, b);
  return detail::fill_from(t, uni);
}

}  // namespace wanwu::nn::init
