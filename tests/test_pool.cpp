// Pooling: gradient checks for max (padding, dilation, ceil mode), average (count_include_pad,
// divisor_override, ceil mode) and adaptive average pooling; output sizes by PyTorch's formula;
// argument errors. Values against PyTorch are in tests/parity (test_parity_ops).
#include <type_traits>

#include <wanwu/backend/pool_gather.hpp>

#include "harness.hpp"

using namespace wanwu;
using wt::gradcheck;
using wt::spread;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: pooling") {
  const Tensor x = spread({2, 7, 6, 3});
  gradcheck([](const V& v) { return max_pool2d(v[0], 3, 2, 1); }, {x});
  gradcheck([](const V& v) { return max_pool2d(v[0], 3, 2, 0, 1, CeilMode::yes); }, {x});
  gradcheck([](const V& v) { return max_pool2d(v[0], 2, 1, 0, 2); }, {x});
  gradcheck([](const V& v) { return avg_pool2d(v[0], 3, 2, 1); }, {x});
  gradcheck([](const V& v) { return avg_pool2d(v[0], 3, 2, 1, CeilMode::yes, CountIncludePad::no); }, {x});
  gradcheck([](const V& v) { return avg_pool2d(v[0], 2, 2, 0, CeilMode::no, CountIncludePad::yes, 3); }, {x});
  gradcheck([](const V& v) { return adaptive_avg_pool2d(v[0], {3, 4}); }, {x});
  gradcheck([](const V& v) { return adaptive_avg_pool2d(v[0], 1); }, {x});
}

TEST_CASE("max_pool2d values and indices on a hand-worked case") {
  // one channel, 4x4 input 0..15; 2x2 windows, stride 2: maxima 5, 7, 13, 15
  const Tensor x = arange(16, DType::f64).reshape({1, 4, 4, 1});
  const auto r = max_pool2d_with_indices(x, 2);
  wt::check_close(r.values, {5, 7, 13, 15});
  wt::check_close(r.indices, {5, 7, 13, 15});
  // padding never wins: -1 padding would be larger than these values only if used
  const Tensor neg = (arange(4, DType::f64) - 10.0).reshape({1, 2, 2, 1});
  wt::check_close(max_pool2d(neg, 3, 1, 1), {-7, -7, -7, -7});
  wt::check_close(avg_pool2d(neg, 3, 1, 1, CeilMode::no, CountIncludePad::no), {-8.5, -8.5, -8.5, -8.5});
  wt::check_close(avg_pool2d(neg, 3, 1, 1, CeilMode::no, CountIncludePad::yes), {-34.0 / 9, -34.0 / 9, -34.0 / 9, -34.0 / 9});
}

TEST_CASE("max_pool2d: a dilated window that steps over the whole input is -inf with index -1") {
  // W = 2, kernel 2, dilation 3, padding 2: the windows' taps are at (-2, 1), (-1, 2) and (0, 3);
  // the middle one reads no pixel. PyTorch gives -inf for such windows (and an index past the
  // input, which its backward would write through; it checks padding against the kernel size, not
  // the dilated window, so this exact call it refuses); here the index is -1 and the backward
  // skips it.
  const Tensor x = from_vector<double>({3.0, 5.0, -1.0, 2.0}, {2, 1, 2, 1}).requires_grad_();
  const auto r = max_pool2d_with_indices(x, {1, 2}, 1, {0, 2}, {1, 3});
  REQUIRE(r.values.shape() == Shape{2, 1, 3, 1});
  const auto v = r.values.tolist<double>();
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(v == std::vector<double>{5.0, -inf, 3.0, 2.0, -inf, -1.0});
  CHECK(r.indices.tolist<int64_t>() == std::vector<int64_t>{1, -1, 0, 1, -1, 0});
  r.values.backward(from_vector<double>({1, 10, 100, 1000, 10000, 100000}, {2, 1, 3, 1}));
  CHECK(x.grad().tolist<double>() == std::vector<double>{100.0, 1.0, 100000.0, 1000.0});
  // a whole image of empty windows: 1x1 input, kernel 2, dilation 3, padding 2 -> 2x2 of -inf; the
  // second image's gradient is not touched by the first's windows
  const Tensor y = from_vector<double>({7.0, 8.0}, {2, 1, 1, 1}).requires_grad_();
  const auto q = max_pool2d_with_indices(y, 2, 1, 2, 3);
  REQUIRE(q.values.shape() == Shape{2, 2, 2, 1});
  CHECK(q.values.tolist<double>() == std::vector<double>(8, -inf));
  CHECK(q.indices.tolist<int64_t>() == std::vector<int64_t>(8, -1));
  q.values.backward(ones({2, 2, 2, 1}, DType::f64));
  CHECK(y.grad().tolist<double>() == std::vector<double>{0.0, 0.0});
}

// The CUDA max-pool backward's per-element math (backend/pool_gather.hpp), run here: the window
// range must hold every output whose taps reach the input position and nothing that cannot, and
// the gathered gradient must equal the CPU backward's scatter bit for bit (both add in output
// order), padding, dilation, ceil mode and empty windows included.
TEST_CASE("max_pool2d backward as a gather: the window range against brute force, the sum against the scatter") {
  for (int64_t size = 1; size <= 9; ++size)
    for (int64_t k = 1; k <= 4; ++k)
      for (int64_t s = 1; s <= 3; ++s)
        for (int64_t dil = 1; dil <= 3; ++dil)
          for (int64_t pad = 0; pad <= ((k - 1) * dil + 1) / 2; ++pad)  // PyTorch's limit
            for (CeilMode ceil : {CeilMode::no, CeilMode::yes}) {
              int64_t pooled = 0;
              try {
                pooled = detail::pool_out_size(size, k, s, pad, dil, ceil, "test");
              } catch (const ShapeError&) {  // the input is too small for the window: no output
                continue;
              }
              for (int64_t i = 0; i < size; ++i) {
                int64_t start = 0, end = 0;
                pool_outputs_covering(i, pad, k, dil, s, pooled, start, end);
                CAPTURE(size);
                CAPTURE(k);
                CAPTURE(s);
                CAPTURE(pad);
                CAPTURE(dil);
                CAPTURE(i);
                CHECK(start >= 0);
                CHECK(end <= pooled);
                for (int64_t o = 0; o < pooled; ++o) {
                  bool tap = false;
                  for (int64_t t = 0; t < k; ++t) tap = tap || o * s - pad + t * dil == i;
                  const bool spans = o * s - pad <= i && i <= o * s - pad + (k - 1) * dil;
                  if (tap) CHECK((o >= start && o < end));
                  CHECK((o >= start && o < end) == spans);
                }
              }
            }

  struct Case {
    int64_t H, W, kh, kw, sh, sw, ph, pw, dh, dw;
    CeilMode ceil;
  };
  const Case cases[] = {
      {9, 8, 3, 3, 2, 2, 1, 1, 1, 1, CeilMode::no},   // ResNet's stem pool: overlapping windows
      {7, 6, 3, 3, 2, 2, 0, 0, 1, 1, CeilMode::yes},  // ceil mode: a last window past the input
      {7, 9, 2, 3, 1, 2, 1, 1, 2, 3, CeilMode::no},   // dilation, padding
      {1, 2, 1, 2, 1, 1, 0, 2, 1, 3, CeilMode::no},   // windows with no pixel (index -1)
      {5, 5, 1, 1, 2, 2, 0, 0, 1, 1, CeilMode::no},   // strided 1x1: inputs no window holds
  };
  for (const Case& t : cases) {
    CAPTURE(t.H);
    CAPTURE(t.W);
    CAPTURE(t.kh);
    CAPTURE(t.dw);
    for (bool ties : {false, true}) {
      Tensor x = randn({2, t.H, t.W, 3}, DType::f64);
      if (ties) x = round(x);  // many equal maxima: the saved index decides
      const Tensor gy = randn(max_pool2d(x, {t.kh, t.kw}, Pair2{t.sh, t.sw}, {t.ph, t.pw}, {t.dh, t.dw}, t.ceil).shape(),
                              DType::f64);
      Pool2dParams p;
      p.kernel_h = t.kh, p.kernel_w = t.kw, p.stride_h = t.sh, p.stride_w = t.sw;
      p.pad_h = t.ph, p.pad_w = t.pw, p.dilation_h = t.dh, p.dilation_w = t.dw;
      // Every input element's gathered gradient, summed in A from gradients of type T and rounded
      // to T once, as the GPU kernel computes it.
      const auto gather_all = [&](auto acc, const auto* g, const int64_t* idx, int64_t Ho, int64_t Wo) {
        using A = decltype(acc);
        using T = std::remove_cv_t<std::remove_pointer_t<decltype(g)>>;
        std::vector<double> v;
        for (int64_t n = 0; n < 2; ++n)
          for (int64_t ih = 0; ih < t.H; ++ih)
            for (int64_t iw = 0; iw < t.W; ++iw)
              for (int64_t c = 0; c < 3; ++c)
                v.push_back(static_cast<double>(T(max_pool_grad_at<A>(g, idx, n, ih, iw, c, t.W, Ho, Wo, 3, p))));
        return v;
      };
      // f64, and bf16 as the GPU runs it (f32 sums of bf16 gradients) against the CPU's bf16
      // backward (widened to f32, scattered, narrowed)
      for (DType dt : {DType::f64, DType::bf16}) {
        CAPTURE(dt);
        const Tensor xd = x.to(dt).detach().requires_grad_();
        const auto r = max_pool2d_with_indices(xd, {t.kh, t.kw}, Pair2{t.sh, t.sw}, {t.ph, t.pw}, {t.dh, t.dw}, t.ceil);
        const int64_t Ho = r.values.size(1), Wo = r.values.size(2);
        const Tensor gd = gy.to(dt);
        r.values.backward(gd);
        const std::vector<double> ref = xd.grad().to(DType::f64).tolist<double>();
        const int64_t* idx = r.indices.data<int64_t>();
        const std::vector<double> got = dt == DType::f64 ? gather_all(0.0, gd.data<double>(), idx, Ho, Wo)
                                                         : gather_all(0.0f, gd.data<BFloat16>(), idx, Ho, Wo);
        REQUIRE(got.size() == ref.size());
        for (size_t e = 0; e < ref.size(); ++e) CHECK(got[e] == ref[e]);
      }
    }
  }
}

TEST_CASE("pooling output sizes follow PyTorch's formula, ceil mode included") {
  CHECK(max_pool2d(zeros({1, 112, 112, 64}), 3, 2, 1).shape() == Shape{1, 56, 56, 64});
  CHECK(max_pool2d(zeros({1, 8, 8, 1}), 3, 2, 0, 1, CeilMode::no).shape() == Shape{1, 3, 3, 1});
  CHECK(max_pool2d(zeros({1, 8, 8, 1}), 3, 2, 0, 1, CeilMode::yes).shape() == Shape{1, 4, 4, 1});
  // ceil mode never starts a window in the padding: 5 with k=2, s=2, p=1 -> 3, not 4
  CHECK(max_pool2d(zeros({1, 5, 5, 1}), 2, 2, 1, 1, CeilMode::yes).shape() == Shape{1, 3, 3, 1});
  CHECK(adaptive_avg_pool2d(zeros({2, 7, 7, 5}), 1).shape() == Shape{2, 1, 1, 5});
}

TEST_CASE("pooling argument errors") {
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({4, 4, 1}), 2), doctest::Contains("max_pool2d"), ShapeError);
  CHECK_THROWS_AS(max_pool2d(zeros({1, 4, 4, 1}), 2, 2, 2), ValueError);  // padding over half the kernel
  CHECK_THROWS_AS(avg_pool2d(zeros({1, 4, 4, 1}), 0), ValueError);
  CHECK_THROWS_AS(max_pool2d(zeros({1, 2, 2, 1}), 3), ShapeError);  // window larger than the input
  CHECK_THROWS_AS(adaptive_avg_pool2d(zeros({1, 4, 4, 1}), 0), ValueError);
  CHECK_THROWS_AS(max_pool2d(zeros({1, 4, 4, 1}, DType::i64), 2), DTypeError);
}
