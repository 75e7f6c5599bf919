// Elementwise ops against independent references (the C library in double precision, hand-worked
// broadcasting cases), in every dtype that they accept, on contiguous and strided inputs.
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "harness.hpp"

using namespace wanwu;
using wt::check_close;
using wt::values;

namespace {
const std::vector<double> kInputs = {-3.5, -2.0, -1.25, -0.5, -0.1, 0.2, 0.7, 1.0, 1.6, 2.5, 3.9, 7.0};
const std::vector<double> kPositive = {0.05, 0.2, 0.5, 0.9, 1.0, 1.5, 2.0, 3.3, 10.0, 123.0};

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  bool positive_only;
};
}  // namespace

TEST_CASE("unary math and activations match the C library (f64, f32, f16, bf16)") {
  const std::vector<UnaryCase> cases = {
      {"neg", [](const Tensor& x) { return -x; }, [](double x) { return -x; }, false},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::fabs(x); }, false},
      {"sign", [](const Tensor& x) { return sign(x); }, [](double x) { return double((x > 0) - (x < 0)); }, false},
      {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; }, false},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }, false},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, true},
      {"log1p", [](const Tensor& x) { return log1p(x); }, [](double x) { return std::log1p(x); }, true},
      {"expm1", [](const Tensor& x) { return expm1(x); }, [](double x) { return std::expm1(x); }, false},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1 / std::sqrt(x); }, true},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, [](double x) { return 1 / x; }, true},
      {"sin", [](const Tensor& x) { return sin(x); }, [](double x) { return std::sin(x); }, false},
      {"cos", [](const Tensor& x) { return cos(x); }, [](double x) { return std::cos(x); }, false},
      {"floor", [](const Tensor& x) { return floor(x); }, [](double x) { return std::floor(x); }, false},
      {"ceil", [](const Tensor& x) { return ceil(x); }, [](double x) { return std::ceil(x); }, false},
      {"round", [](const Tensor& x) { return round(x); }, [](double x) { return std::nearbyint(x); }, false},
      {"trunc", [](const Tensor& x) { return trunc(x); }, [](double x) { return std::trunc(x); }, false},
      {"erf", [](const Tensor& x) { return erf(x); }, [](double x) { return std::erf(x); }, false},
      {"pow 3", [](const Tensor& x) { return pow(x, 3); }, [](double x) { return x * x * x; }, false},
      {"pow 0.5", [](const Tensor& x) { return pow(x, 0.5); }, [](double x) { return std::sqrt(x); }, true},
      {"pow -1.5", [](const Tensor& x) { return pow(x, -1.5); }, [](double x) { return std::pow(x, -1.5); }, true},
      {"clamp", [](const Tensor& x) { return clamp(x, -1.0, 2.0); }, [](double x) { return std::clamp(x, -1.0, 2.0); }, false},
      {"clamp_min", [](const Tensor& x) { return clamp_min(x, 0.5); }, [](double x) { return std::max(x, 0.5); }, false},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return std::max(x, 0.0); }, false},
      {"relu6", [](const Tensor& x) { return relu6(x); }, [](double x) { return std::clamp(x, 0.0, 6.0); }, false},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); }, [](double x) { return x > 0 ? x : 0.2 * x; }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref, false},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, false},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double x) { return x * sigmoid_ref(x); }, false},
      {"gelu", [](const Tensor& x) { return gelu(x); },
       [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, false},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, GeluApproximate::tanh); },
       [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }, false},
      {"hardswish", [](const Tensor& x) { return hardswish(x); },
       [](double x) { return x * std::clamp(x + 3, 0.0, 6.0) / 6; }, false},
      {"hardsigmoid", [](const Tensor& x) { return hardsigmoid(x); },
       [](double x) { return std::clamp(x + 3, 0.0, 6.0) / 6; }, false},
      {"softplus", [](const Tensor& x) { return softplus(x); }, [](double x) { return std::log1p(std::exp(x)); }, false},
      {"softplus beta=2 threshold=3", [](const Tensor& x) { return softplus(x, 2.0, 3.0); },
       [](double x) { return 2 * x > 3 ? x : std::log1p(std::exp(2 * x)) / 2; }, false},
  };
  for (const auto& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    const auto& in = c.positive_only ? kPositive : kInputs;
    std::vector<double> want;
    for (double x : in) want.push_back(c.ref(x));
    // (dtype, relative tolerance): f16 has an 11-bit significand, bf16 an 8-bit one
    for (auto [dt, tol] : {std::pair{DType::f64, 1e-14}, {DType::f32, 2e-6}, {DType::f16, 2e-3}, {DType::bf16, 1.6e-2}}) {
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      // the input rounded to dt is what the op sees
      const Tensor x = from_vector(in, Shape{static_cast<int64_t>(in.size())}, dt);
      std::vector<double> want_dt;
      for (double xv : values(x)) want_dt.push_back(c.ref(xv));
      const Tensor y = c.op(x);
      CHECK(y.dtype() == dt);
      check_close(y, want_dt, tol, tol * 1e-2);
    }
  }
}

TEST_CASE("binary ops broadcast like NumPy") {
  const Tensor a = tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});  // [2, 3]
  const Tensor col = tensor({{10.0}, {20.0}});                  // [2, 1]
  const Tensor row = tensor({100.0, 200.0, 300.0});             // [3]
  check_close(a + col, {11, 12, 13, 24, 25, 26});
  check_close(a + row, {101, 202, 303, 104, 205, 306});
  check_close(col + row, {110, 210, 310, 120, 220, 320});
  check_close(a - row, {-99, -198, -297, -96, -195, -294});
  check_close(a * col, {10, 20, 30, 80, 100, 120});
  check_close(a / col, {0.1, 0.2, 0.3, 0.2, 0.25, 0.3});
  check_close(add(a, row, 2), {201, 402, 603, 204, 405, 606});
  check_close(sub(a, row, 0.5), {-49, -98, -147, -46, -95, -144});
  check_close(2.0 - a, {1, 0, -1, -2, -3, -4});
  check_close(12.0 / a, {12, 6, 4, 3, 2.4, 2});
  check_close(pow(a, col / 10.0), {1, 2, 3, 16, 25, 36});
  check_close(pow(2.0, a), {2, 4, 8, 16, 32, 64});
  check_close(maximum(a, row / 100.0 * 2.5), {2.5, 5, 7.5, 4, 5, 7.5});
  check_close(minimum(a, col / 5.0), {1, 2, 2, 4, 4, 4});
  CHECK((a + col).shape() == Shape{2, 3});
  CHECK(add(zeros({4, 1, 3}), zeros({2, 1})).shape() == Shape{4, 2, 3});
  CHECK_THROWS_WITH_AS(a + zeros({2}), doctest::Contains("cannot be broadcast"), ShapeError);
}

TEST_CASE("strided and transposed operands give the same answer as contiguous ones") {
  const Tensor a = randn({37, 53}, DType::f64);
  const Tensor b = randn({53, 37}, DType::f64);
  const Tensor at = b.t();  // non-contiguous [37, 53]
  const auto va = values(a), vb = values(at.contiguous());
  std::vector<double> want;
  for (size_t i = 0; i < va.size(); ++i) want.push_back(va[i] * vb[i] + va[i]);
  check_close(a * at + a, want, 1e-15, 1e-15);  // the reference may be contracted to an FMA
  const Tensor s = a.slice(1, 1, 53, 3);  // step 3
  check_close(exp(s), values(exp(s.contiguous())), 0, 0);
  // large enough to run on several threads
  const Tensor big = randn({1 << 20}, DType::f32);
  const Tensor r = big * 2.0 + 1.0;
  const auto vbig = values(big), vr = values(r);
  for (size_t i = 0; i < vbig.size(); i += 9973) CHECK(vr[i] == static_cast<double>(static_cast<float>(vbig[i]) * 2.0f + 1.0f));
}

TEST_CASE("integer and bool arithmetic") {
  const Tensor i = tensor({-7, -1, 0, 3, 8});
  check_close(i + 1, {-6, 0, 1, 4, 9});
  check_close(i * i, {49, 1, 0, 9, 64});
  check_close(abs(i), {7, 1, 0, 3, 8});
  check_close(i / 2, {-3.5, -0.5, 0, 1.5, 4});
  check_close(pow(i, 2), {49, 1, 0, 9, 64});
  check_close(clamp(i, -2, 5), {-2, -1, 0, 3, 5});
  check_close(relu(i), {0, 0, 0, 3, 8});
  const Tensor u = tensor({250, 3}).to(DType::u8);
  check_close(u + 10, {4, 13});  // wraps as uint8
  const Tensor b = tensor({true, false, true});
  check_close(b + b, {1, 0, 1});
  check_close(b * b, {1, 0, 1});
  check_close(logical_not(b), {0, 1, 0});
  check_close(logical_and(b, tensor({true, true, false})), {1, 0, 0});
  check_close(logical_or(b, tensor({false, true, false})), {1, 1, 1});
}

TEST_CASE("comparisons, where, isnan, isfinite and NaN propagation") {
  const Tensor a = tensor({1.0, 2.0, 3.0, wt::kNaN});
  const Tensor b = tensor({3.0, 2.0, 1.0, 1.0});
  check_close(eq(a, b), {0, 1, 0, 0});
  check_close(ne(a, b), {1, 0, 1, 1});
  check_close(lt(a, b), {1, 0, 0, 0});
  check_close(le(a, b), {1, 1, 0, 0});
  check_close(gt(a, b), {0, 0, 1, 0});
  check_close(ge(a, 2), {0, 1, 1, 0});
  CHECK(eq(a, b).dtype() == DType::boolean);
  check_close(where(gt(a, 1.5), a, b), {3, 2, 3, 1});
  check_close(where(gt(a, 1.5), a, -1.0), {-1, 2, 3, -1});
  check_close(where(tensor({true, false}).unsqueeze(1), tensor({1.0, 2.0}), tensor({{5.0}, {6.0}})), {1, 2, 6, 6});
  check_close(isnan(a), {0, 0, 0, 1});
  check_close(isfinite(tensor({1.0, wt::kInf, -wt::kInf, wt::kNaN})), {1, 0, 0, 0});
  check_close(maximum(a, b), {3, 2, 3, wt::kNaN});
  check_close(minimum(b, a), {1, 2, 1, wt::kNaN});
  check_close(clamp(a, 0.0, 2.5), {1, 2, 2.5, wt::kNaN});
  check_close(relu(tensor({wt::kNaN, -1.0})), {wt::kNaN, 0});
  CHECK_THROWS_AS(where(tensor({1.0}), a, b), DTypeError);
  CHECK(allclose(tensor({1.0, wt::kInf}, DType::f64), tensor({1.0 + 1e-9, wt::kInf}, DType::f64)));
  CHECK_FALSE(allclose(a, a));  // NaN is not close to NaN
  CHECK_FALSE(allclose(tensor({1.0}), tensor({1.1})));
}

TEST_CASE("in-place ops write into self, keep its dtype and bump its version") {
  Tensor x = tensor({1.0, 2.0, 3.0});
  const auto storage = x.storage();
  const uint32_t v0 = x.version();
  x.add_(tensor({1.0, 1.0, 1.0}));
  x.mul_(2);
  x.sub_(1);
  x.div_(tensor({1.0, 2.0, 4.0}));
  check_close(x, {3, 2.5, 1.75});
  CHECK(x.storage() == storage);
  CHECK(x.version() == v0 + 4);
  x += 1.0;
  x *= tensor({2.0});
  x -= x;
  check_close(x, {0, 0, 0});
  Tensor r = tensor({-1.0, 2.0});
  r.relu_();
  check_close(r, {0, 2});
  r.clamp_(0.5, 1.5);
  check_close(r, {0.5, 1.5});
  Tensor h = ones({3}, DType::f16);
  h.add_(tensor({0.5, 0.5, 0.5}, DType::f32));  // computed in f32, stored in f16
  CHECK(h.dtype() == DType::f16);
  check_close(h, {1.5, 1.5, 1.5});
  Tensor i = tensor({1, 2});
  CHECK_THROWS_WITH_AS(i.add_(0.5), doctest::Contains("can't be cast"), DTypeError);
  Tensor small = zeros({2});
  CHECK_THROWS_AS(small.add_(zeros({3, 2})), ShapeError);
}

// Worst error in ulp of f against the double-precision ref on every 61st float of [lo, hi].
// Where the correctly rounded result is 0 or infinite, `at_edge(got, rounded)` must hold instead.
struct UlpSweep {
  double worst = 0;
  float worst_x = 0;
  int64_t checked = 0;
};
template <class F, class Ref, class Edge>
UlpSweep ulp_sweep(float lo, float hi, F f, Ref ref, Edge at_edge) {
  UlpSweep r;
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 61) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(u));
    if (!(x >= lo && x <= hi)) continue;
    const float got = f(x);
    const double want = ref(static_cast<double>(x));
    const auto rf = static_cast<float>(want);
    if (std::isinf(rf) || rf == 0.0f) {
      REQUIRE(at_edge(got, rf));
      continue;
    }
    const double ulp = static_cast<double>(std::nextafter(rf, INFINITY)) - static_cast<double>(rf);
    const double err = std::fabs(static_cast<double>(got) - want) / ulp;
    if (err > r.worst) r.worst = err, r.worst_x = x;
    ++r.checked;
  }
  return r;
}

TEST_CASE("f32 erfc on the host (GELU's): within 5 ulp of the correctly rounded value over its whole range") {
  // fm::erfc(float) is our own vectorizable form. Through 0, the tail where e^{-x^2} needs its
  // split argument, and the subnormal results before erfc underflows at 10.06.
  const UlpSweep r = ulp_sweep(
      -11.0f, 11.0f, [](float x) { return fm::erfc(x); }, [](double x) { return std::erfc(x); },
      [](float got, float) { return got <= std::numeric_limits<float>::denorm_min(); });
  CAPTURE(r.worst_x);
  CHECK(r.checked > 30000000);
  CHECK(r.worst <= 5.0);
  CHECK(r.worst > 0.0);  // the sweep did compare something not exactly representable
  CHECK(std::isnan(fm::erfc(std::numeric_limits<float>::quiet_NaN())));
  CHECK(fm::erfc(std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(fm::erfc(-std::numeric_limits<float>::infinity()) == 2.0f);
  CHECK(fm::erfc(0.0f) == 1.0f);
  CHECK(fm::erfc(-30.0f) == 2.0f);
  CHECK(fm::erfc(30.0f) == 0.0f);
}

TEST_CASE("f32 exp on the host: within 1.5 ulp of the correctly rounded value, subnormals, inf and NaN") {
  // fm::exp(float) is our own polynomial (it vectorizes; the C library's expf does not): the whole
  // range from underflow to overflow, subnormal results included.
  const UlpSweep r = ulp_sweep(
      -110.0f, 95.0f, [](float x) { return fm::exp(x); }, [](double x) { return std::exp(x); },
      [](float got, float rounded) { return got == rounded; });
  CAPTURE(r.worst_x);
  CHECK(r.checked > 20000000);
  CHECK(r.worst <= 1.5);
  CHECK(std::isnan(fm::exp(std::numeric_limits<float>::quiet_NaN())));
  CHECK(fm::exp(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  CHECK(fm::exp(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(fm::exp(88.72f) == doctest::Approx(std::exp(static_cast<double>(88.72f))).epsilon(1e-6));
  CHECK(std::isinf(fm::exp(88.73f)));
  CHECK(fm::exp(-100.0f) > 0.0f);  // subnormal, not flushed
  CHECK(fm::exp(0.0f) == 1.0f);
}

TEST_CASE("FastDivmod (the CUDA kernels' channel index) equals / and % for every 31-bit operand pair tried") {
  // Edge divisors (1, powers of two and their neighbours, the largest) and pseudo-random ones,
  // each against edge dividends (0, multiples of d and their neighbours, 2^31 - 1) and random ones.
  std::mt19937_64 rng(7);
  std::vector<uint32_t> ds = {1, 2, 3, 5, 7, 64, 100, 255, 256, 257, 1000, 1024, 2048, 12345, 65535, 65536,
                              1u << 30, (1u << 30) + 1, (1u << 31) - 1};
  for (int i = 0; i < 300; ++i) ds.push_back(1 + static_cast<uint32_t>(rng() % ((1u << 31) - 1)));
  for (int i = 0; i < 300; ++i) ds.push_back(1 + static_cast<uint32_t>(rng() % 5000));
  int64_t wrong = 0;
  for (uint32_t d : ds) {
    const FastDivmod f(d);
    std::vector<uint32_t> ns = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, (1u << 31) - 1, (1u << 31) - d};
    for (int i = 0; i < 300; ++i) ns.push_back(static_cast<uint32_t>(rng() % (1u << 31)));
    for (uint32_t n : ns) {
      if (n >= (1u << 31)) continue;  // 2 * d past 2^31 for the largest divisors
      if (f.div(n) != n / d || f.mod(n) != n % d) {
        if (wrong++ < 3) FAIL_CHECK("d " << d << ", n " << n << ": " << f.div(n) << " r " << f.mod(n));
      }
    }
  }
  CHECK(wrong == 0);
}
