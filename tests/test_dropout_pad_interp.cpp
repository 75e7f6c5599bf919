// dropout and drop_path (rates, scaling, eval identity, reproducibility), pad (values, crops,
// gradient) and bilinear interpolation (gradient, identity at the same size, align_corners).
#include <cmath>

#include "harness.hpp"

using namespace wanwu;
using wt::gradcheck;
using wt::spread;
using V = std::vector<Tensor>;

TEST_CASE("dropout: rate, scaling, eval identity, same seed same mask") {
  const Tensor x = ones({200000});
  Generator g(1);
  const Tensor y = dropout(x, 0.3, Mode::train, &g);
  const double kept = gt(y, 0.0).to(DType::f64).mean().item<double>();
  CHECK(std::fabs(kept - 0.7) < 5 * std::sqrt(0.21 / 200000));
  CHECK(y.max().item<double>() == doctest::Approx(1.0 / 0.7));
  CHECK(std::fabs(y.mean().item<double>() - 1.0) < 0.01);
  CHECK(dropout(x, 0.3, Mode::eval).is_same(x));
  Generator a(5), b(5);
  CHECK(dropout(x, 0.5, Mode::train, &a).tolist<float>() == dropout(x, 0.5, Mode::train, &b).tolist<float>());
  CHECK(dropout(x, 1.0, Mode::train).sum().item<double>() == 0.0);
  CHECK_THROWS_AS(dropout(x, 1.5, Mode::train), ValueError);
  // the gradient is the same mask and scale
  Tensor w = ones({1000}, DType::f64).requires_grad_();
  Generator c(3);
  const Tensor out = dropout(w, 0.5, Mode::train, &c);
  out.sum().backward();
  wt::check_close(w.grad(), wt::values(out), 0, 0);
}

TEST_CASE("drop_path drops whole samples") {
  const Tensor x = ones({4000, 3, 2});
  Generator g(2);
  const Tensor y = drop_path(x, 0.2, Mode::train, &g);
  const Tensor per_sample = amax(y, {1, 2});
  CHECK(all(eq(amin(y, {1, 2}), per_sample)).item<bool>());  // a sample is all kept or all dropped
  const double kept = gt(per_sample, 0.0).to(DType::f64).mean().item<double>();
  CHECK(std::fabs(kept - 0.8) < 5 * std::sqrt(0.16 / 4000));
  CHECK(per_sample.max().item<double>() == doctest::Approx(1.25));
  CHECK(drop_path(x, 0.2, Mode::eval).is_same(x));
}

TEST_CASE("pad: values, negative crops and gradient") {
  const Tensor x = arange(6, DType::f64).reshape({2, 3});
  wt::check_close(pad(x, {1, 0}, -1.0), {-1, 0, 1, 2, -1, 3, 4, 5});
  wt::check_close(pad(x, {0, 0, 1, 0}), {0, 0, 0, 0, 1, 2, 3, 4, 5});
  wt::check_close(pad(x, {-1, 1}), {1, 2, 0, 4, 5, 0});
  CHECK(pad(zeros({1, 4, 4, 3}), {0, 0, 1, 1, 2, 2}).shape() == Shape{1, 8, 6, 3});
  gradcheck([](const V& v) { return pad(v[0], {1, 2, -1, 1}, 0.5); }, {spread({2, 3, 4})});
  CHECK_THROWS_AS(pad(x, {1}), ValueError);
  CHECK_THROWS_AS(pad(x, {-4, 0}), ShapeError);
}

TEST_CASE("bilinear interpolation") {
  const Tensor x = spread({2, 4, 5, 3});
  gradcheck([](const V& v) { return interpolate_bilinear(v[0], {7, 3}); }, {x});
  gradcheck([](const V& v) { return interpolate_bilinear(v[0], {6, 9}, AlignCorners::yes); }, {x});
  gradcheck([](const V& v) { return interpolate_bicubic(v[0], {7, 3}); }, {x});
  gradcheck([](const V& v) { return interpolate_bicubic(v[0], {6, 9}, AlignCorners::yes); }, {x});
  // same size: identity; align_corners keeps the corner values when upsampling
  wt::check_close(interpolate_bilinear(x, {4, 5}), wt::values(x), 1e-15, 1e-15);
  const Tensor up = interpolate_bilinear(x, {7, 9}, AlignCorners::yes);
  wt::check_close(up.select(1, 6).select(1, 8), wt::values(x.select(1, 3).select(1, 4)), 1e-15, 1e-15);
  // 1-D ramp resampled at half-pixel centres: values between the samples
  const Tensor ramp = arange(4, DType::f64).reshape({1, 1, 4, 1});
  wt::check_close(interpolate_bilinear(ramp, {1, 8}), {0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3});
  CHECK_THROWS_AS(interpolate_bilinear(zeros({4, 4, 3}), {2, 2}), ShapeError);
  CHECK_THROWS_AS(interpolate_bilinear(zeros({1, 4, 4, 3}), {0, 2}), ValueError);
}
