// Classification metrics from logits: top-1 / top-k accuracy, the confusion matrix, and per-class
// precision / recall / F1 / support with their macro averages (scikit-learn's definitions: a
// class that is never predicted has precision 0, one with no samples has recall 0, and F1 is 0
// when precision + recall is 0). Counts are accumulated batch by batch, so evaluating a dataset
// never holds all its logits; the figures are computed from integer counts, hence exact.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <tuple>
#include <vector>

#include "../core/tensor.hpp"

namespace wanwu::metrics {

struct ClassStats {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;
};

class ClassificationMetrics {
 public:
  explicit ClassificationMetrics(int64_t num_classes, int64_t k = 5)
      : c_(num_classes), k_(k), cm_(static_cast<size_t>(num_classes * num_classes), 0) {
    WANWU_CHECK_VALUE(num_classes >= 1 && k >= 1, "ClassificationMetrics: need num_classes >= 1 and k >= 1");
  }

  // logits [N, C] (any float dtype and device), labels [N] integer. Ties rank the lower class
  // first, as torch.topk/argmax do on the CPU.
  void add(const Tensor& logits, const Tensor& labels) {
    WANWU_CHECK_SHAPE(logits.dim() == 2 && logits.size(1) == c_ && labels.dim() == 1 && labels.size(0) == logits.size(0),
                      "ClassificationMetrics::add: expected logits [N, ", c_, "] and labels [N], got ", logits.shape(),
                      " and ", labels.shape());
    const std::vector<float> l = logits.to(Device::cpu(), DType::f32).contiguous().tolist<float>();
    const std::vector<int64_t> y = labels.to(Device::cpu(), DType::i64).contiguous().tolist<int64_t>();
    for (size_t i = 0; i < y.size(); ++i) add_row(l.data() + i * static_cast<size_t>(c_), y[i]);
  }
  // One sample's scores (C values) and its label; returns the predicted class.
  int64_t add_row(const float* row, int64_t label) {
    WANWU_CHECK_INDEX(label >= 0 && label < c_, "ClassificationMetrics: label ", label, " out of range for ", c_,
                      " classes");
    int64_t pred = 0, greater = 0;
    for (int64_t j = 1; j < c_; ++j)
      if (row[j] > row[pred]) pred = j;
    for (int64_t j = 0; j < c_; ++j)
      if (row[j] > row[label] || (row[j] == row[label] && j < label)) ++greater;
    if (greater < k_) ++topk_;
    ++cm_[static_cast<size_t>(label * c_ + pred)];
    ++n_;
    return pred;
  }

  int64_t num_classes() const { return c_; }
  int64_t count() const { return n_; }
  int64_t k() const { return k_; }
  // confusion(true, predicted)
  int64_t confusion(int64_t t, int64_t p) const { return cm_[static_cast<size_t>(t * c_ + p)]; }
  double accuracy() const {
    int64_t d = 0;
    for (int64_t i = 0; i < c_; ++i) d += confusion(i, i);
    return n_ ? static_cast<double>(d) / static_cast<double>(n_) : 0.0;
  }
  double topk_accuracy() const { return n_ ? static_cast<double>(topk_) / static_cast<double>(n_) : 0.0; }

  ClassStats stats(int64_t c) const {
    ClassStats s;
    int64_t predicted = 0;
    for (int64_t i = 0; i < c_; ++i) {
      s.support += confusion(c, i);
      predicted += confusion(i, c);
    }
    const double tp = static_cast<double>(confusion(c, c));
    s.precision = predicted ? tp / static_cast<double>(predicted) : 0.0;
    s.recall = s.support ? tp / static_cast<double>(s.support) : 0.0;
    s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    return s;
  }
  // Unweighted means over all classes.
  ClassStats macro() const {
    ClassStats m;
    for (int64_t c = 0; c < c_; ++c) {
      const ClassStats s = stats(c);
      m.precision += s.precision;
      m.recall += s.recall;
      m.f1 += s.f1;
      m.support += s.support;
    }
    m.precision /= static_cast<double>(c_);
    m.recall /= static_cast<double>(c_);
    m.f1 /= static_cast<double>(c_);
    return m;
  }
  // Off-diagonal cells by count, largest first: (true, predicted, count), count > 0.
  std::vector<std::tuple<int64_t, int64_t, int64_t>> most_confused(size_t limit) const {
    std::vector<std::tuple<int64_t, int64_t, int64_t>> v;
    for (int64_t t = 0; t < c_; ++t)
      for (int64_t p = 0; p < c_; ++p)
        if (t != p && confusion(t, p) > 0) v.emplace_back(t, p, confusion(t, p));
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return std::get<2>(a) > std::get<2>(b); });
    if (v.size() > limit) v.resize(limit);
    return v;
  }

 private:
  int64_t c_, k_;
  std::vector<int64_t> cm_;
  int64_t n_ = 0, topk_ = 0;
};

}  // namespace wanwu::metrics
