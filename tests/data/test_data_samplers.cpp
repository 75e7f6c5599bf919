// Samplers and class-imbalance helpers: permutations are permutations and change per epoch,
// weighted draws follow their weights (chi-square at p = 0.001), zero weights are never drawn,
// class-balanced sampling equalises class frequencies (5 standard deviations), and the class
// weights follow the documented normalisation, checked on hand-computed values.
#include "harness.hpp"

#include <wanwu/data/data.hpp>

using namespace wanwu;
using namespace wanwu::data;

namespace {
std::vector<int64_t> sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}
std::vector<int64_t> iota_vec(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t(0));
  return v;
}
}  // namespace

TEST_CASE("SequentialSampler and RandomSampler") {
  CHECK(SequentialSampler(5).indices(1, 3) == std::vector<int64_t>{0, 1, 2, 3, 4});
  const RandomSampler rs(1000);
  const auto e0 = rs.indices(42, 0), e1 = rs.indices(42, 1);
  CHECK(sorted(e0) == iota_vec(1000));
  CHECK(sorted(e1) == iota_vec(1000));
  CHECK(e0 != e1);
  CHECK(e0 == rs.indices(42, 0));
  CHECK(e0 != rs.indices(43, 0));
  // Position of element 0 over many epochs is uniform: mean (n-1)/2 = 499.5, sd 288.7 / sqrt(400).
  double mean_pos = 0;
  for (int64_t e = 0; e < 400; ++e) {
    const auto p = rs.indices(7, e);
    mean_pos += static_cast<double>(std::find(p.begin(), p.end(), 0) - p.begin());
  }
  CHECK(std::abs(mean_pos / 400 - 499.5) < 5 * 288.7 / 20);
  // num_samples beyond n without replacement: whole permutations back to back.
  const auto two = RandomSampler(10, Replacement::no, 25).indices(1, 0);
  CHECK(two.size() == 25);
  CHECK(sorted({two.begin(), two.begin() + 10}) == iota_vec(10));
  CHECK(sorted({two.begin() + 10, two.begin() + 20}) == iota_vec(10));
  // With replacement: repeats happen (1000 draws from 1000: about 368 never drawn).
  const auto rep = RandomSampler(1000, Replacement::yes).indices(1, 0);
  std::vector<int64_t> u = sorted(rep);
  u.erase(std::unique(u.begin(), u.end()), u.end());
  CHECK(std::abs(static_cast<double>(1000 - u.size()) - 367.9) < 5 * 15.3);
  CHECK_THROWS_AS(RandomSampler(0), ValueError);
}

TEST_CASE("WeightedRandomSampler: frequencies follow the weights") {
  const std::vector<double> w = {1, 2, 3, 4, 0};
  const int64_t n = 40000;
  const auto idx = WeightedRandomSampler(w, n).indices(3, 0);
  std::vector<double> counts(5, 0);
  for (int64_t i : idx) counts[static_cast<size_t>(i)] += 1;
  CHECK(counts[4] == 0);
  double chi2 = 0;
  for (int k = 0; k < 4; ++k) {
    const double expected = n * w[k] / 10.0;
    chi2 += (counts[k] - expected) * (counts[k] - expected) / expected;
  }
  CHECK(chi2 < 16.27);  // chi-square, 3 degrees of freedom, p = 0.001
  // Without replacement: distinct indices, never the zero-weight one; the heaviest item is drawn
  // first far more often than the lightest.
  const WeightedRandomSampler nr(w, 4, Replacement::no);
  int first_is_3 = 0, first_is_0 = 0;
  for (int64_t e = 0; e < 2000; ++e) {
    const auto s = nr.indices(5, e);
    CHECK(sorted(s) == std::vector<int64_t>{0, 1, 2, 3});
    first_is_3 += s[0] == 3;
    first_is_0 += s[0] == 0;
  }
  // P(first = i) = w_i / 10: 800 and 200 expected (sd 21.9 and 17.9).
  CHECK(std::abs(first_is_3 - 800) < 110);
  CHECK(std::abs(first_is_0 - 200) < 90);
  CHECK_THROWS_AS(WeightedRandomSampler({1, -1}, 3), ValueError);
  CHECK_THROWS_AS(WeightedRandomSampler({0, 0}, 3), ValueError);
  CHECK_THROWS_AS(WeightedRandomSampler({1, 1, 0}, 3, Replacement::no), ValueError);
  CHECK_THROWS_AS(WeightedRandomSampler({1, std::nan("")}, 3), ValueError);
}

TEST_CASE("class counts, class weights and the class-balanced sampler") {
  CHECK(class_counts({0, 2, 2, 1, 2}) == std::vector<int64_t>{1, 1, 3});
  CHECK(class_counts({0, 0}, 3) == std::vector<int64_t>{2, 0, 0});
  CHECK_THROWS_AS(class_counts({0, 3}, 3), ValueError);
  // counts 10, 30, 0, 60: N = 100, K = 3 classes present; w = N / (K n_c).
  const Tensor w = class_weights({10, 30, 0, 60});
  CHECK(w.dtype() == DType::f32);
  wt::check_close(w, {100.0 / 30.0, 100.0 / 90.0, 0.0, 100.0 / 180.0}, 1e-6, 0.0);
  // The documented normalisation: sum_c n_c w_c = N.
  const auto wv = w.tolist<double>();
  CHECK(std::abs(10 * wv[0] + 30 * wv[1] + 60 * wv[3] - 100.0) < 1e-4);
  CHECK_THROWS_AS(class_weights({0, 0}), ValueError);

  // 900 / 90 / 10: balanced draws give each class 1/3 of 30000 (sd 81.6).
  std::vector<int64_t> labels(1000, 0);
  for (int i = 900; i < 990; ++i) labels[i] = 1;
  for (int i = 990; i < 1000; ++i) labels[i] = 2;
  const ClassBalancedSampler cb(labels, 30000);
  const auto idx = cb.indices(11, 0);
  std::vector<int64_t> drawn;
  for (int64_t i : idx) drawn.push_back(labels[static_cast<size_t>(i)]);
  const auto c = class_counts(drawn, 3);
  for (int64_t k : c) CHECK(std::abs(k - 10000) < 5 * 81.6);
  // Within class 2 every sample is drawn about equally often: 10000 / 10 each (sd 30).
  std::vector<int64_t> per(10, 0);
  for (int64_t i : idx)
    if (i >= 990) ++per[static_cast<size_t>(i - 990)];
  for (int64_t k : per) CHECK(std::abs(k - 1000) < 5 * 30);
  CHECK(cb.size() == 30000);
  CHECK(ClassBalancedSampler(labels).size() == 1000);
}
