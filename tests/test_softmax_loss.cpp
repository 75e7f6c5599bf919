// softmax / log_softmax over any axis and the losses: gradient checks for every option (class
// weights, label smoothing, ignore_index, reductions, probability targets, pos_weight), a
// hand-worked cross-entropy, stability with huge logits, and errors. Values against PyTorch
// (including the 1e-6 relative bound on weighted, smoothed, ignoring cross-entropy) are in
// tests/parity (test_parity_ops).
#include <cmath>

#include "harness.hpp"

using namespace wanwu;
using wt::gradcheck;
using wt::spread;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: softmax and log_softmax over each axis") {
  const Tensor x = spread({3, 4, 5});
  for (int d : {0, 1, 2, -1}) {
    CAPTURE(d);
    gradcheck([d](const V& v) { return softmax(v[0], d); }, {x});
    gradcheck([d](const V& v) { return log_softmax(v[0], d); }, {x});
  }
}

TEST_CASE("softmax is stable and normalized") {
  const Tensor x = tensor({{1000.0, 1001.0, -1000.0}, {-1e30, 0.0, 1e30}}, DType::f64);
  const Tensor p = softmax(x, 1);
  const double e = std::exp(1.0);
  wt::check_close(p, {1 / (1 + e), e / (1 + e), 0, 0, 0, 1}, 1e-12, 1e-300);
  wt::check_close(log_softmax(x, 1).select(0, 1), {-2e30, -1e30, 0}, 1e-12, 1e-12);
  wt::check_close(log_softmax(x, 1).select(0, 0), {-std::log1p(e), 1 - std::log1p(e), -2000 - std::log1p(e)}, 1e-12, 1e-9);
  wt::check_close(sum(softmax(randn({7, 13}, DType::f64), 1), {1}), std::vector<double>(7, 1.0), 1e-14, 0);
}

TEST_CASE("gradcheck: cross_entropy and the other losses") {
  const Tensor x = spread({5, 4});
  const Tensor y = tensor({3, 0, 1, 1, 2});
  const Tensor y_ign = tensor({3, -100, 1, 1, 2});
  const Tensor w = tensor({0.5, 1.0, 2.0, 1.5}, DType::f64);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (double ls : {0.0, 0.2}) {
      CrossEntropyOptions o;
      o.reduction = r;
      o.label_smoothing = ls;
      gradcheck([&](const V& v) { return cross_entropy(v[0], y, o); }, {x});
      o.weight = w;
      gradcheck([&](const V& v) { return cross_entropy(v[0], y_ign, o); }, {x});
    }
  const Tensor probs = softmax(spread({5, 4}, -1, 1, 9), 1);
  CrossEntropyOptions po;
  po.weight = w;
  po.label_smoothing = 0.1;
  gradcheck([&](const V& v) { return cross_entropy(v[0], probs, po); }, {x});
  gradcheck([&](const V& v) { return cross_entropy(v[0], tensor({{0, 2}, {1, -100}})); }, {spread({2, 3, 2})});
  gradcheck([&](const V& v) { return nll_loss(log_softmax(v[0], 1), y, w); }, {x});
  const Tensor t = rand({5, 4}, DType::f64);
  gradcheck([&](const V& v) { return binary_cross_entropy_with_logits(v[0], t); }, {x});
  gradcheck([&](const V& v) { return binary_cross_entropy_with_logits(v[0], t, Tensor(), tensor({1.0, 2.0, 0.5, 3.0}, DType::f64)); },
            {x});
  gradcheck([&](const V& v) { return mse_loss(v[0], v[1], Reduction::sum); }, {x, spread({5, 4}, -1, 1, 3)});
}

TEST_CASE("cross_entropy on a hand-worked case") {
  // logits (0, ln 2, ln 3): probabilities 1/6, 2/6, 3/6
  const Tensor x = tensor({{0.0, std::log(2.0), std::log(3.0)}}, DType::f64);
  CHECK(cross_entropy(x, tensor({2})).item<double>() == doctest::Approx(std::log(2.0)).epsilon(1e-12));
  CrossEntropyOptions o;
  o.label_smoothing = 0.3;  // 0.7 * -log(1/2) + 0.3 / 3 * -(log 1/6 + log 2/6 + log 3/6)
  const double smooth = -(std::log(1.0 / 6) + std::log(2.0 / 6) + std::log(3.0 / 6)) / 3.0;
  CHECK(cross_entropy(x, tensor({2}), o).item<double>() ==
        doctest::Approx(0.7 * std::log(2.0) + 0.3 * smooth).epsilon(1e-12));
  // weighted mean divides by the sum of the targets' weights
  const Tensor x2 = tensor({{0.0, 0.0}, {0.0, 0.0}}, DType::f64);
  CrossEntropyOptions ow;
  ow.weight = tensor({1.0, 3.0}, DType::f64);
  CHECK(cross_entropy(x2, tensor({0, 1}), ow).item<double>() == doctest::Approx(std::log(2.0)).epsilon(1e-12));
  // huge logits stay finite
  CHECK(std::isfinite(cross_entropy(tensor({{1e4, -1e4}}), tensor({1})).item<double>()));
}

TEST_CASE("cross_entropy with no classes: a target not ignored is out of bounds; ignored rows give 0, their mean NaN") {
  // as PyTorch: F.cross_entropy(torch.zeros(2, 0), torch.tensor([-100, 0])) raises IndexError, and
  // with every target ignored the losses are 0 and their mean 0 / 0
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 0}), tensor({-100, 0})),
                       doctest::Contains("cross_entropy: target 0 is out of bounds for 0 classes"), IndexError);
  CrossEntropyOptions o;
  o.reduction = Reduction::none;
  const Tensor none = cross_entropy(zeros({2, 0}), tensor({-100, -100}), o);
  CHECK(none.shape() == Shape{2});
  CHECK(none.tolist<double>() == std::vector<double>{0.0, 0.0});
  CHECK(std::isnan(cross_entropy(zeros({2, 0}), tensor({-100, -100})).item<double>()));
  // classes on axis 1 of [N, C, L]: the rows come from N and L, not from numel / C
  const Tensor spatial = cross_entropy(zeros({2, 0, 3}), full({2, 3}, -100.0).to(DType::i64), o);
  CHECK(spatial.shape() == Shape{2, 3});
}

TEST_CASE("cross_entropy's fused kernel against the definition computed in double, 1000 classes") {
  // loss_i = (1 - e) w_t (lse_i - x_it) + e / C sum_c w_c (lse_i - x_ic), 0 for ignored rows;
  // mean divides by the sum of w_t over rows not ignored.
  const int64_t N = 9, C = 1000;
  const Tensor x = randn({N, C}, DType::f64) * 4.0;
  const Tensor wgt = rand({C}, DType::f64) + 0.5;
  const std::vector<double> tv = {3, 999, -100, 0, 517, 3, -100, 42, 998};
  const Tensor y = from_vector(tv, {N}, DType::i64);
  const auto xv = wt::values(x), wv = wt::values(wgt);
  for (double e : {0.0, 0.15}) {
    for (int use_w = 0; use_w < 2; ++use_w) {
      CAPTURE(e);
      CAPTURE(use_w);
      std::vector<double> want(N, 0.0);
      double denom = 0;
      for (int64_t i = 0; i < N; ++i) {
        const int64_t t = static_cast<int64_t>(tv[i]);
        if (t == -100) continue;
        double mx = -1e300;
        for (int64_t c = 0; c < C; ++c) mx = std::max(mx, xv[i * C + c]);
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += std::exp(xv[i * C + c] - mx);
        const double lse = mx + std::log(s);
        double smooth = 0;
        for (int64_t c = 0; c < C; ++c) smooth += (use_w ? wv[c] : 1.0) * (lse - xv[i * C + c]);
        const double wt_ = use_w ? wv[t] : 1.0;
        want[i] = (1 - e) * wt_ * (lse - xv[i * C + t]) + e / C * smooth;
        denom += wt_;
      }
      CrossEntropyOptions o;
      o.label_smoothing = e;
      if (use_w) o.weight = wgt;
      o.reduction = Reduction::none;
      wt::check_close(cross_entropy(x, y, o), want, 1e-12, 1e-12);
      double total = 0;
      for (double v : want) total += v;
      o.reduction = Reduction::sum;
      CHECK(cross_entropy(x, y, o).item<double>() == doctest::Approx(total).epsilon(1e-12));
      o.reduction = Reduction::mean;
      CHECK(cross_entropy(x, y, o).item<double>() == doctest::Approx(total / denom).epsilon(1e-12));
      // f32 and bf16 logits: the same kernel through f32 math, loss in the input's dtype
      o.reduction = Reduction::none;
      if (use_w) o.weight = wgt.to(DType::f32);
      const Tensor l32 = cross_entropy(x.to(DType::f32), y, o);
      CHECK(l32.dtype() == DType::f32);
      wt::check_close(l32, want, 1e-5, 1e-4);
      const Tensor xb = x.to(DType::bf16);
      const Tensor lb = cross_entropy(xb, y, o);
      CHECK(lb.dtype() == DType::bf16);
      o.weight = use_w ? wgt : Tensor();
      wt::check_close(lb, cross_entropy(xb.to(DType::f64), y, o), 1e-2, 1e-2);
    }
  }
  // every target ignored: the mean is 0 / 0, NaN, as in PyTorch
  CHECK(std::isnan(cross_entropy(randn({2, 3}), tensor({-100, -100})).item<double>()));
  // class weights get no gradient (PyTorch does not differentiate them either); the logits do
  const Tensor xl = randn({4, 3}, DType::f64).requires_grad_();
  CrossEntropyOptions ow;
  ow.weight = tensor({1.0, 2.0, 3.0}, DType::f64).requires_grad_();
  cross_entropy(xl, tensor({0, 1, 2, 1}), ow).backward();
  CHECK(xl.grad().defined());
  CHECK_FALSE(ow.weight.grad().defined());
}

TEST_CASE("loss errors") {
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}), tensor({0, 3})), doctest::Contains("out of bounds"), IndexError);
  CHECK_THROWS_AS(cross_entropy(zeros({2, 3}), tensor({0, 1, 2})), ShapeError);
  CHECK_THROWS_AS(cross_entropy(zeros({2, 3}), zeros({2, 2})), ShapeError);
  CrossEntropyOptions o;
  o.weight = ones({2});
  CHECK_THROWS_AS(cross_entropy(zeros({2, 3}), tensor({0, 1}), o), ShapeError);
  o = {};
  o.label_smoothing = 1.5;
  CHECK_THROWS_AS(cross_entropy(zeros({2, 3}), tensor({0, 1}), o), ValueError);
  CHECK_THROWS_AS(nll_loss(zeros({2, 3}), zeros({2})), DTypeError);
  CHECK_THROWS_AS(mse_loss(zeros({2}), zeros({3})), ShapeError);
  CHECK_THROWS_AS(binary_cross_entropy_with_logits(zeros({2}), zeros({3})), ShapeError);
}
