// Reductions against naive loops in double: every axis subset of a 4-D tensor, keepdim, strided
// inputs, both loop orders and the split-run path, integer and bool inputs, NaN propagation,
// argmax tie-breaking, var/std/logsumexp, and errors.
#include <cmath>
#include <limits>

#include "harness.hpp"

using namespace wanwu;
using wt::check_close;
using wt::values;

namespace {
// Naive reduction of a contiguous [d0,d1,d2,d3] array over the axes in `mask` (bit i = axis i).
std::vector<double> naive_reduce(const std::vector<double>& x, const std::vector<int64_t>& shape, int mask,
                                 const char* op) {
  std::vector<int64_t> out_shape;
  for (int i = 0; i < 4; ++i) out_shape.push_back((mask >> i) & 1 ? 1 : shape[i]);
  const int64_t on = out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3];
  const std::string o = op;
  const double init = o == "max" ? -INFINITY : o == "min" ? INFINITY : 0.0;
  std::vector<double> acc(static_cast<size_t>(on), init);
  std::vector<double> cnt(static_cast<size_t>(on), 0.0);
  for (int64_t a = 0; a < shape[0]; ++a)
    for (int64_t b = 0; b < shape[1]; ++b)
      for (int64_t c = 0; c < shape[2]; ++c)
        for (int64_t d = 0; d < shape[3]; ++d) {
          const double v = x[((a * shape[1] + b) * shape[2] + c) * shape[3] + d];
          const int64_t idx[4] = {(mask & 1) ? 0 : a, (mask & 2) ? 0 : b, (mask & 4) ? 0 : c, (mask & 8) ? 0 : d};
          const int64_t k = ((idx[0] * out_shape[1] + idx[1]) * out_shape[2] + idx[2]) * out_shape[3] + idx[3];
          if (o == "max") acc[k] = std::max(acc[k], v);
          else if (o == "min") acc[k] = std::min(acc[k], v);
          else acc[k] += v;
          cnt[k] += 1;
        }
  if (o == "mean")
    for (size_t k = 0; k < acc.size(); ++k) acc[k] /= cnt[k];
  return acc;
}
}  // namespace

TEST_CASE("sum, mean, amax, amin over every subset of axes, with and without keepdim") {
  const std::vector<int64_t> shape = {3, 5, 4, 7};
  const Tensor x = randn({3, 5, 4, 7}, DType::f64);
  const auto xv = values(x);
  const Tensor xt = x.permute({3, 1, 0, 2}).contiguous().permute({2, 1, 3, 0});  // same values, strided
  CHECK_FALSE(xt.is_contiguous());
  for (int mask = 1; mask < 16; ++mask) {
    Dims dims;
    for (int i = 0; i < 4; ++i)
      if ((mask >> i) & 1) dims.push_back(i);
    CAPTURE(dims);
    for (const char* op : {"sum", "mean", "max", "min"}) {
      CAPTURE(op);
      const auto want = naive_reduce(xv, shape, mask, op);
      auto run = [&](const Tensor& t, KeepDim k) {
        const std::string o = op;
        return o == "sum" ? sum(t, dims, k) : o == "mean" ? mean(t, dims, k) : o == "max" ? amax(t, dims, k) : amin(t, dims, k);
      };
      const Tensor kept = run(x, KeepDim::yes);
      CHECK(kept.dim() == 4);
      check_close(kept, want, 1e-12, 1e-12);
      check_close(run(xt, KeepDim::yes), want, 1e-12, 1e-12);
      const Tensor dropped = run(x, KeepDim::no);
      CHECK(dropped.dim() == 4 - dims.size());
      check_close(dropped, want, 1e-12, 1e-12);
    }
  }
  // negative axes and the "all axes" forms
  check_close(sum(x, {-1, -2}), values(sum(x, {2, 3})), 1e-12, 0);
  CHECK(std::fabs(x.sum().item<double>() - naive_reduce(xv, shape, 15, "sum")[0]) < 1e-9);
  CHECK(x.max().item<double>() == naive_reduce(xv, shape, 15, "max")[0]);
}

TEST_CASE("long reductions: split runs across threads and keep f32 sums accurate") {
  // 2^25 ones: a naive f32 running sum would stall at 2^24.
  const int64_t n = int64_t(1) << 25;
  const Tensor ones_big = ones({n}, DType::f32);
  CHECK(ones_big.sum().item<double>() == static_cast<double>(n));
  const Tensor r = randn({1 << 22}, DType::f32);
  const auto rv = values(r);
  double want = 0;
  for (double v : rv) want += v;
  CHECK(std::fabs(r.sum().item<double>() - want) < 1e-2);
  // outer reduction (sum over the batch of [N, C]) with N large
  const Tensor m = randn({100000, 3}, DType::f64);
  const auto mv = values(m);
  std::vector<double> col(3, 0.0);
  for (size_t i = 0; i < mv.size(); ++i) col[i % 3] += mv[i];
  check_close(sum(m, {0}), col, 1e-10, 1e-10);
  // 16-bit floats accumulate in f32 or better
  CHECK(ones({5000}, DType::f16).sum().item<double>() == 5000.0);
  CHECK(ones({5000}, DType::bf16).mean().item<double>() == 1.0);
}

TEST_CASE("integer and bool reductions, any and all") {
  const Tensor i = tensor({{1, 2, 3}, {4, 5, 6}}).to(DType::i32);
  CHECK(sum(i).dtype() == DType::i64);
  CHECK(sum(i).item<int64_t>() == 21);
  check_close(sum(i, {1}), {6, 15});
  check_close(amax(i, {0}), {4, 5, 6});
  const Tensor b = tensor({{true, false}, {true, true}});
  CHECK(sum(b).item<int64_t>() == 3);
  check_close(any(b, {1}), {1, 1});
  check_close(all(b, {1}), {0, 1});
  CHECK(all(b).item<bool>() == false);
  CHECK(any(zeros({3})).item<bool>() == false);
}

TEST_CASE("max/min with indices, argmax, ties and NaN") {
  const Tensor x = tensor({{1.0, 5.0, 5.0, 2.0}, {7.0, -1.0, 7.0, 0.0}});
  const auto mx = max(x, 1);
  check_close(mx.values, {5, 7});
  check_close(mx.indices, {1, 0});  // first of the tied maxima
  CHECK(mx.indices.dtype() == DType::i64);
  const auto mn = min(x, 0, KeepDim::yes);
  CHECK(mn.values.shape() == Shape{1, 4});
  check_close(mn.values, {1, -1, 5, 0});
  check_close(mn.indices, {0, 1, 0, 1});
  check_close(argmax(x, 0), {1, 0, 1, 0});
  CHECK(argmax(x).item<int64_t>() == 4);
  CHECK(argmin(x).item<int64_t>() == 5);
  const Tensor n = tensor({1.0, wt::kNaN, 3.0, wt::kNaN});
  CHECK(std::isnan(n.max().item<double>()));
  CHECK(std::isnan(n.min().item<double>()));
  CHECK(argmax(n).item<int64_t>() == 1);  // the first NaN
  CHECK(std::isnan(amax(n, {0}).item<double>()));
}

TEST_CASE("var, std and logsumexp") {
  const Tensor x = tensor({{1.0, 2.0, 4.0}, {3.0, 3.0, 9.0}}, DType::f64);
  // row 0: mean 7/3, squared deviations sum 14/3
  check_close(var(x, {1}), {7.0 / 3.0, 12.0}, 1e-12, 0);
  check_close(var(x, {1}, 0), {14.0 / 9.0, 8.0}, 1e-12, 0);
  check_close(stddev(x, {1}), {std::sqrt(7.0 / 3.0), std::sqrt(12.0)}, 1e-12, 0);
  CHECK(std::fabs(var(x).item<double>() - 118.0 / 15.0) < 1e-12);  // sum of squares 39 1/3, over 5
  check_close(logsumexp(x, {1}), {std::log(std::exp(1.0) + std::exp(2.0) + std::exp(4.0)),
                                  std::log(2 * std::exp(3.0) + std::exp(9.0))}, 1e-12, 0);
  // stable for large values, and a row of -inf gives -inf, not NaN
  const Tensor big = tensor({{1000.0, 1000.0}, {-wt::kInf, -wt::kInf}}, DType::f64);
  check_close(logsumexp(big, {1}), {1000.0 + std::log(2.0), -wt::kInf}, 1e-12, 0);
  CHECK(logsumexp(x, {0, 1}, KeepDim::yes).shape() == Shape{1, 1});
}

TEST_CASE("empty reductions and errors") {
  const Tensor e = zeros({0, 3});
  check_close(sum(e, {0}), {0, 0, 0});
  const auto m = values(mean(e, {0}));
  CHECK(std::isnan(m[0]));
  CHECK_THROWS_AS(amax(e, {0}), ShapeError);
  CHECK_THROWS_AS(max(e, 0), ShapeError);
  CHECK_THROWS_AS(sum(zeros({2, 2}), {2}), IndexError);
  CHECK_THROWS_AS(sum(zeros({2, 2}), {1, -1}), IndexError);
  // a 0-dim tensor reduces to itself
  CHECK(scalar_tensor(3.0).sum().item<double>() == 3.0);
  CHECK(max(scalar_tensor(3.0), 0).values.item<double>() == 3.0);
}
