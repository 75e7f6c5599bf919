// Tensor factories: empty/zeros/ones/full, arange/linspace/eye, tensors from C++ values, and
// random tensors from the Philox generator (DESIGN D8). Every factory takes TensorOptions
// (dtype, device, requires_grad), so the same line builds a CPU or a CUDA tensor.
#pragma once

#include <cmath>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "../backend/backend.hpp"

namespace wanwu {

namespace detail {
inline Tensor finish_factory(Tensor t, const TensorOptions& o) {
  if (o.requires_grad_) t.requires_grad_(true);
  return t;
}
}  // namespace detail

inline Tensor empty(const Shape& shape, const TensorOptions& o = {}) {
  return detail::finish_factory(empty_tensor(shape, o.dtype_, o.device_), o);
}
inline Tensor full(const Shape& shape, Scalar value, const TensorOptions& o = {}) {
  Tensor t = empty_tensor(shape, o.dtype_, o.device_);
  backend_for(o.device_).fill(t, value);
  return detail::finish_factory(t, o);
}
inline Tensor zeros(const Shape& shape, const TensorOptions& o = {}) { return full(shape, 0, o); }
inline Tensor ones(const Shape& shape, const TensorOptions& o = {}) { return full(shape, 1, o); }

inline TensorOptions options_of(const Tensor& t) { return TensorOptions().dtype(t.dtype()).device(t.device()); }
inline Tensor empty_like(const Tensor& t) { return empty_tensor(t.shape(), t.dtype(), t.device()); }
inline Tensor empty_like(const Tensor& t, const TensorOptions& o) { return empty(t.shape(), o); }
inline Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), options_of(t)); }
inline Tensor zeros_like(const Tensor& t, const TensorOptions& o) { return zeros(t.shape(), o); }
inline Tensor ones_like(const Tensor& t) { return ones(t.shape(), options_of(t)); }
inline Tensor ones_like(const Tensor& t, const TensorOptions& o) { return ones(t.shape(), o); }
inline Tensor full_like(const Tensor& t, Scalar v) { return full(t.shape(), v, options_of(t)); }

// A 0-dim tensor holding `value`.
inline Tensor scalar_tensor(Scalar value, const TensorOptions& o = {}) { return full(Shape{}, value, o); }

// A tensor with the given shape holding a copy of host values (converted to o.dtype_).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions o) {
  WANWU_CHECK_SHAPE(static_cast<int64_t>(values.size()) == numel_of(shape), "from_vector: ", values.size(),
                    " values do not fill shape ", shape, " (", numel_of(shape), " elements)");
  // Stage in a CPU tensor of T's own dtype, then convert/move with the copy kernels.
  Tensor host = empty_tensor(shape, dtype_of_v<T>, Device::cpu());
  T* p = static_cast<T*>(host.data_ptr());
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  Tensor out = empty_tensor(shape, o.dtype_, o.device_);
  if (o.device_.is_cpu()) {
    cpu_backend().copy(out, host);
  } else {
    Tensor staged = empty_tensor(shape, o.dtype_, Device::cpu());
    cpu_backend().copy(staged, host);
    backend_for(o.device_).copy_from_host(out, staged.data_ptr());
  }
  return detail::finish_factory(out, o);
}
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  return from_vector(values, shape, TensorOptions(dtype_of_v<T>));
}
template <class T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, Shape{static_cast<int64_t>(values.size())});
}

// tensor({1.f, 2.f}), tensor({{1, 2}, {3, 4}}, DType::f64): dtype defaults to the values' type
// (float literals without f are double, so the default follows PyTorch: f32 for floating values,
// i64 for integers).
namespace detail {
template <class T>
constexpr DType literal_dtype() {
  if constexpr (std::is_same_v<T, bool>) return DType::boolean;
  else if constexpr (std::is_integral_v<T>) return DType::i64;
  else if constexpr (std::is_same_v<T, double>) return DType::f32;
  else return dtype_of_v<T>;
}
}  // namespace detail

template <class T>
Tensor tensor(std::initializer_list<T> v, std::optional<TensorOptions> o = std::nullopt) {
  std::vector<double> d;
  for (const T& x : v) d.push_back(static_cast<double>(x));
  TensorOptions opt = o.value_or(TensorOptions(detail::literal_dtype<T>()));
  if constexpr (std::is_integral_v<T>) {
    std::vector<int64_t> iv(v.begin(), v.end());
    return from_vector(iv, Shape{static_cast<int64_t>(v.size())}, opt);
  } else {
    return from_vector(d, Shape{static_cast<int64_t>(v.size())}, opt);
  }
}
template <class T>
Tensor tensor(std::initializer_list<std::initializer_list<T>> v, std::optional<TensorOptions> o = std::nullopt) {
  std::vector<double> d;
  const int64_t rows = static_cast<int64_t>(v.size());
  const int64_t cols = rows ? static_cast<int64_t>(v.begin()->size()) : 0;
  for (const auto& row : v) {
    WANWU_CHECK_SHAPE(static_cast<int64_t>(row.size()) == cols, "tensor: ragged nested list (rows of ", cols,
                      " and ", row.size(), " values)");
    for (const T& x : row) d.push_back(static_cast<double>(x));
  }
  TensorOptions opt = o.value_or(TensorOptions(detail::literal_dtype<T>()));
  return from_vector(d, Shape{rows, cols}, opt);
}

// [start, end) in steps; dtype i64 when all three are integers, else the default float.
inline Tensor arange(Scalar start, Scalar end, Scalar step = 1, std::optional<TensorOptions> o = std::nullopt) {
  const bool ints = !start.is_floating() && !end.is_floating() && !step.is_floating();
  const double s = start.to_double(), e = end.to_double(), st = step.to_double();
  WANWU_CHECK_VALUE(st != 0.0, "arange: step must be nonzero");
  WANWU_CHECK_VALUE((st > 0 && e >= s) || (st < 0 && e <= s), "arange: upper bound ", e,
                    " and lower bound ", s, " are inconsistent with step sign ", st);
  const int64_t n = static_cast<int64_t>(std::ceil((e - s) / st));
  TensorOptions opt = o.value_or(TensorOptions(ints ? DType::i64 : default_float_dtype()));
  if (ints) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = start.to_int() + i * step.to_int();
    return from_vector(v, Shape{n}, opt);
  }
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = s + static_cast<double>(i) * st;
  return from_vector(v, Shape{n}, opt);
}
inline Tensor arange(Scalar end, std::optional<TensorOptions> o = std::nullopt) { return arange(0, end, 1, o); }

// `steps` evenly spaced values from start to end inclusive (PyTorch's symmetric formula).
inline Tensor linspace(double start, double end, int64_t steps, const TensorOptions& o = {}) {
  WANWU_CHECK_VALUE(steps >= 0, "linspace: number of steps must be non-negative, got ", steps);
  std::vector<double> v(static_cast<size_t>(steps));
  const double step = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
  const int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    v[i] = i < half ? start + step * static_cast<double>(i) : end - step * static_cast<double>(steps - i - 1);
  return from_vector(v, Shape{steps}, o);
}

inline Tensor eye(int64_t n, int64_t m = -1, const TensorOptions& o = {}) {
  if (m < 0) m = n;
  WANWU_CHECK_VALUE(n >= 0, "eye: n must be non-negative, got ", n);
  std::vector<double> v(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < std::min(n, m); ++i) v[i * m + i] = 1.0;
  return from_vector(v, Shape{n, m}, o);
}

// ---- random ----
namespace detail {
inline Tensor random_tensor(const Shape& shape, const TensorOptions& o, RandomParams p, Generator* gen) {
  Tensor t = empty_tensor(shape, o.dtype_, o.device_);
  const uint64_t range = static_cast<uint64_t>(p.hi - p.lo);
  const bool wide = o.dtype_ == DType::f64 || (p.kind == RandomKind::randint && range > (uint64_t(1) << 32));
  Generator& g = gen ? *gen : default_generator();
  const RandomDraw r = reserve_random(g, random_blocks(t.numel(), wide), o.device_);
  p.seed = r.seed;
  p.offset = r.offset;
  p.offset_shift = r.shift;
  backend_for(o.device_).random(t, p, wide);
  return finish_factory(t, o);
}
inline void check_random_float(const TensorOptions& o, const char* op) {
  WANWU_CHECK_DTYPE(is_floating(o.dtype_), op, ": dtype ", o.dtype_, " is not supported (floating types only)");
}
}  // namespace detail

// Uniform in [0, 1).
inline Tensor rand(const Shape& shape, const TensorOptions& o = {}, Generator* gen = nullptr) {
  detail::check_random_float(o, "rand");
  return detail::random_tensor(shape, o, {RandomKind::uniform, 0.0, 1.0}, gen);
}
// Uniform in [low, high).
inline Tensor uniform(const Shape& shape, double low, double high, const TensorOptions& o = {},
                      Generator* gen = nullptr) {
  detail::check_random_float(o, "uniform");
  return detail::random_tensor(shape, o, {RandomKind::uniform, low, high}, gen);
}
// Normal with mean 0 and standard deviation 1 (or `mean`, `std`).
inline Tensor randn(const Shape& shape, const TensorOptions& o = {}, Generator* gen = nullptr) {
  detail::check_random_float(o, "randn");
  return detail::random_tensor(shape, o, {RandomKind::normal, 0.0, 1.0}, gen);
}
inline Tensor normal(const Shape& shape, double mean, double std, const TensorOptions& o = {},
                     Generator* gen = nullptr) {
  detail::check_random_float(o, "normal");
  WANWU_CHECK_VALUE(std >= 0.0, "normal: std must be non-negative, got ", std);
  return detail::random_tensor(shape, o, {RandomKind::normal, mean, std}, gen);
}
// Integers uniform in [low, high); dtype defaults to i64.
inline Tensor randint(int64_t low, int64_t high, const Shape& shape, std::optional<TensorOptions> o = std::nullopt,
                      Generator* gen = nullptr) {
  WANWU_CHECK_VALUE(high > low, "randint: high (", high, ") must be greater than low (", low, ")");
  RandomParams p;
  p.kind = RandomKind::randint;
  p.lo = low;
  p.hi = high;
  return detail::random_tensor(shape, o.value_or(TensorOptions(DType::i64)), p, gen);
}
// 1 with probability p, else 0.
inline Tensor bernoulli(const Shape& shape, double p, const TensorOptions& o = {}, Generator* gen = nullptr) {
  WANWU_CHECK_VALUE(p >= 0.0 && p <= 1.0, "bernoulli: probability must be in [0, 1], got ", p);
  return detail::random_tensor(shape, o, {RandomKind::bernoulli, p, 0.0}, gen);
}
inline Tensor rand_like(const Tensor& t, Generator* gen = nullptr) { return rand(t.shape(), options_of(t), gen); }
inline Tensor randn_like(const Tensor& t, Generator* gen = nullptr) { return randn(t.shape(), options_of(t), gen); }

}  // namespace wanwu
