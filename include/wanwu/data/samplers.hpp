// Samplers decide which dataset indices an epoch visits and in which order; the class helpers
// turn label counts into sampling or loss weights for imbalanced data.
//
// A sampler is a pure function (seed, epoch) -> index list, computed once at the start of an
// epoch on the loader's thread: no sampler state advances as batches are consumed, so the order
// is the same whatever the number of workers, and epoch e can be recomputed after a restart
// without replaying epochs 0..e-1.
//
//   SequentialSampler       0, 1, ..., n-1
//   RandomSampler           a permutation per epoch (or draws with replacement), as torch's
//   WeightedRandomSampler   index i with probability weights[i] / sum(weights), with replacement
//                           by default (torch's default); without replacement it draws
//                           Efraimidis-Spirakis keys, like torch.multinomial
//   ClassBalancedSampler    weights 1 / count(label): every class equally likely per draw, rare
//                           classes oversampled
//
// class_weights(counts) gives cross-entropy weights w_c = N / (K * n_c), N samples, K classes
// present, n_c samples of class c: the "balanced" weighting of scikit-learn. This normalisation
// keeps the average weight per *sample* at 1 (sum_c n_c w_c = N), so a weighted mean loss has
// the scale of the unweighted one. Classes without samples get weight 0.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "../wanwu.hpp"
#include "datasets.hpp"
#include "random.hpp"

namespace wanwu::data {

enum class Replacement : uint8_t { no, yes };

class Sampler {
 public:
  virtual ~Sampler() = default;
  // The dataset indices of epoch `epoch`, in order.
  virtual std::vector<int64_t> indices(uint64_t seed, int64_t epoch) const = 0;
  // How many indices an epoch has.
  virtual int64_t size() const = 0;
  virtual std::string describe() const = 0;
};

namespace detail {
// Fisher-Yates with one stream per (epoch, round): unbiased, O(n).
inline void shuffle_indices(std::vector<int64_t>& v, SampleRng& rng) {
  for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i) std::swap(v[i], v[rng.randint(0, i + 1)]);
}
}  // namespace detail

class SequentialSampler final : public Sampler {
 public:
  explicit SequentialSampler(int64_t n) : n_(n) {
    WANWU_CHECK_VALUE(n >= 0, "SequentialSampler: size must be non-negative, got ", n);
  }
  std::vector<int64_t> indices(uint64_t, int64_t) const override {
    std::vector<int64_t> v(static_cast<size_t>(n_));
    std::iota(v.begin(), v.end(), int64_t(0));
    return v;
  }
  int64_t size() const override { return n_; }
  std::string describe() const override { return detail::str("SequentialSampler(", n_, ")"); }

 private:
  int64_t n_;
};

// Without replacement: a fresh permutation per epoch; num_samples > n concatenates permutations
// (as torch does). With replacement: num_samples independent uniform draws.
class RandomSampler final : public Sampler {
 public:
  explicit RandomSampler(int64_t n, Replacement replacement = Replacement::no, int64_t num_samples = -1)
      : n_(n), replacement_(replacement), num_samples_(num_samples < 0 ? n : num_samples) {
    WANWU_CHECK_VALUE(n > 0, "RandomSampler: the dataset is empty");
  }
  std::vector<int64_t> indices(uint64_t seed, int64_t epoch) const override {
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(num_samples_));
    if (replacement_ == Replacement::yes) {
      SampleRng rng(seed, RngPurpose::shuffle, static_cast<uint64_t>(epoch), 0);
      for (int64_t i = 0; i < num_samples_; ++i) out.push_back(rng.randint(0, n_));
      return out;
    }
    for (uint64_t round = 0; static_cast<int64_t>(out.size()) < num_samples_; ++round) {
      std::vector<int64_t> perm(static_cast<size_t>(n_));
      std::iota(perm.begin(), perm.end(), int64_t(0));
      SampleRng rng(seed, RngPurpose::shuffle, static_cast<uint64_t>(epoch), round);
      detail::shuffle_indices(perm, rng);
      const int64_t take = std::min<int64_t>(n_, num_samples_ - static_cast<int64_t>(out.size()));
      out.insert(out.end(), perm.begin(), perm.begin() + take);
    }
    return out;
  }
  int64_t size() const override { return num_samples_; }
  std::string describe() const override {
    return detail::str("RandomSampler(", n_, ", replacement=", replacement_ == Replacement::yes ? "yes" : "no",
                       ", num_samples=", num_samples_, ")");
  }

 private:
  int64_t n_;
  Replacement replacement_;
  int64_t num_samples_;
};

class WeightedRandomSampler final : public Sampler {
 public:
  WeightedRandomSampler(std::vector<double> weights, int64_t num_samples, Replacement replacement = Replacement::yes)
      : weights_(std::move(weights)), num_samples_(num_samples), replacement_(replacement) {
    WANWU_CHECK_VALUE(!weights_.empty(), "WeightedRandomSampler: no weights");
    WANWU_CHECK_VALUE(num_samples > 0, "WeightedRandomSampler: num_samples must be positive, got ", num_samples);
    int64_t positive = 0;
    for (size_t i = 0; i < weights_.size(); ++i) {
      WANWU_CHECK_VALUE(std::isfinite(weights_[i]) && weights_[i] >= 0.0, "WeightedRandomSampler: weight ", i,
                        " is ", weights_[i], " (weights must be finite and non-negative)");
      positive += weights_[i] > 0.0;
    }
    WANWU_CHECK_VALUE(positive > 0, "WeightedRandomSampler: all weights are zero");
    WANWU_CHECK_VALUE(replacement == Replacement::yes || num_samples <= positive,
                      "WeightedRandomSampler: cannot draw ", num_samples, " samples without replacement from ",
                      positive, " indices with nonzero weight");
    cumulative_.resize(weights_.size());
    std::partial_sum(weights_.begin(), weights_.end(), cumulative_.begin());
  }

  std::vector<int64_t> indices(uint64_t seed, int64_t epoch) const override {
    SampleRng rng(seed, RngPurpose::sample, static_cast<uint64_t>(epoch), 0);
    std::vector<int64_t> out(static_cast<size_t>(num_samples_));
    const int64_t n = static_cast<int64_t>(weights_.size());
    if (replacement_ == Replacement::yes) {
      // Inverse CDF: the first index whose cumulative weight exceeds u * total (zero-weight
      // indices have empty intervals and are never drawn).
      const double total = cumulative_.back();
      for (auto& o : out) {
        const double u = rng.uniform() * total;
        const int64_t i = std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin();
        o = std::min(i, n - 1);
        while (weights_[o] == 0.0) --o;  // u landed on the rounding edge of the total
      }
      return out;
    }
    // Efraimidis-Spirakis: the num_samples largest keys log(u) / w, in decreasing key order.
    std::vector<std::pair<double, int64_t>> keys;
    keys.reserve(weights_.size());
    for (int64_t i = 0; i < n; ++i) {
      const double u = 1.0 - rng.uniform();  // (0, 1]
      if (weights_[i] > 0.0) keys.emplace_back(std::log(u) / weights_[i], i);
    }
    std::partial_sort(keys.begin(), keys.begin() + num_samples_, keys.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    for (int64_t k = 0; k < num_samples_; ++k) out[k] = keys[k].second;
    return out;
  }
  int64_t size() const override { return num_samples_; }
  std::string describe() const override {
    return detail::str("WeightedRandomSampler(", weights_.size(), " weights, num_samples=", num_samples_,
                       ", replacement=", replacement_ == Replacement::yes ? "yes" : "no", ")");
  }
  const std::vector<double>& weights() const { return weights_; }

 private:
  std::vector<double> weights_, cumulative_;
  int64_t num_samples_;
  Replacement replacement_;
};

// ---- class counts and weights ----

// Samples per class; num_classes < 0: one more than the largest label.
inline std::vector<int64_t> class_counts(const std::vector<int64_t>& labels, int64_t num_classes = -1) {
  int64_t k = num_classes;
  if (k < 0) k = labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end()) + 1;
  std::vector<int64_t> counts(static_cast<size_t>(k), 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    WANWU_CHECK_VALUE(labels[i] >= 0 && labels[i] < k, "class_counts: label ", labels[i], " of sample ", i,
                      " is out of range for ", k, " classes");
    ++counts[labels[i]];
  }
  return counts;
}
inline std::vector<int64_t> class_counts(const Dataset& ds) { return class_counts(ds.labels(), ds.num_classes()); }

// Cross-entropy class weights w_c = N / (K * n_c) over the K classes that have samples (0 for the
// others): sum_c n_c * w_c = N. An f32 tensor [num classes].
inline Tensor class_weights(const std::vector<int64_t>& counts) {
  WANWU_CHECK_VALUE(!counts.empty(), "class_weights: no classes");
  int64_t total = 0, present = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    WANWU_CHECK_VALUE(counts[c] >= 0, "class_weights: negative count ", counts[c], " for class ", c);
    total += counts[c];
    present += counts[c] > 0;
  }
  WANWU_CHECK_VALUE(total > 0, "class_weights: all classes are empty");
  std::vector<float> w(counts.size());
  for (size_t c = 0; c < counts.size(); ++c)
    w[c] = counts[c] > 0 ? static_cast<float>(static_cast<double>(total) /
                                              (static_cast<double>(present) * static_cast<double>(counts[c])))
                         : 0.0f;
  return from_vector(w, Shape{static_cast<int64_t>(w.size())});
}
inline Tensor class_weights(const Dataset& ds) { return class_weights(class_counts(ds)); }

// Draws with replacement so that every class (with samples) is equally likely per draw.
class ClassBalancedSampler final : public Sampler {
 public:
  explicit ClassBalancedSampler(const std::vector<int64_t>& labels, int64_t num_samples = -1)
      : inner_(make_weights(labels), num_samples < 0 ? static_cast<int64_t>(labels.size()) : num_samples,
               Replacement::yes) {}
  explicit ClassBalancedSampler(const Dataset& ds, int64_t num_samples = -1)
      : ClassBalancedSampler(ds.labels(), num_samples) {}
  std::vector<int64_t> indices(uint64_t seed, int64_t epoch) const override { return inner_.indices(seed, epoch); }
  int64_t size() const override { return inner_.size(); }
  std::string describe() const override {
    return detail::str("ClassBalancedSampler(", inner_.weights().size(), " samples, num_samples=", size(), ")");
  }

 private:
  static std::vector<double> make_weights(const std::vector<int64_t>& labels) {
    WANWU_CHECK_VALUE(!labels.empty(), "ClassBalancedSampler: no labels");
    const auto counts = class_counts(labels);
    std::vector<double> w(labels.size());
    for (size_t i = 0; i < labels.size(); ++i) w[i] = 1.0 / static_cast<double>(counts[labels[i]]);
    return w;
  }
  WeightedRandomSampler inner_;
};

}  // namespace wanwu::data
