// One pass of a model over a dataset in eval mode, shared by `wanwu train` (validation each
// epoch) and `wanwu eval`: mean cross-entropy (unweighted, no label smoothing, so runs with
// different recipes compare), top-1 / top-5 and the confusion matrix, and optionally every
// sample's prediction so a test can recompute the figures independently.
#pragma once

#include <optional>
#include <vector>

#include <wanwu/metrics/classification.hpp>

#include "common.hpp"

namespace wanwu::cli {

struct Prediction {
  int64_t index, label, pred;
};

struct EvalResult {
  metrics::ClassificationMetrics metrics;
  double loss = 0;
  std::vector<Prediction> predictions;
};

enum class KeepPredictions : uint8_t { no, yes };

// Batches whose logits are still on the device, read back kEvalReadEvery at a time: a read per
// batch would make a GPU's host wait for each forward pass before queueing the next. The CPU takes
// the same path (the read is free there), so the CPU tests cover it.
inline constexpr size_t kEvalReadEvery = 8;

inline EvalResult evaluate(models::Classifier& model, const data::DataLoader& loader, Device device,
                           std::optional<DType> autocast, int64_t num_classes, KeepPredictions keep) {
  EvalResult r{metrics::ClassificationMetrics(num_classes, std::min<int64_t>(5, num_classes)), 0.0, {}};
  model.eval();
  NoGradGuard ng;
  double loss_sum = 0;
  struct Pending {
    Tensor logits, labels;
    std::vector<int64_t> indices;
  };
  std::vector<Pending> pending;
  auto read = [&] {
    if (pending.empty()) return;
    std::vector<Tensor> ls;
    for (const Pending& p : pending) ls.push_back(p.logits);
    // one wait for the device; then each batch's loss and metrics on the CPU, as one at a time would
    const Tensor all = cat(ls, 0).to(Device::cpu(), DType::f32).contiguous();
    int64_t row = 0;
    for (const Pending& p : pending) {
      const int64_t n = p.labels.size(0);
      const Tensor logits = all.narrow(0, row, n).contiguous();
      row += n;
      loss_sum += cross_entropy(logits, p.labels).item<double>() * static_cast<double>(n);
      const std::vector<float> l = logits.tolist<float>();
      const std::vector<int64_t> y = p.labels.tolist<int64_t>();
      for (size_t i = 0; i < y.size(); ++i) {
        const int64_t pred = r.metrics.add_row(l.data() + i * static_cast<size_t>(num_classes), y[i]);
        if (keep == KeepPredictions::yes) r.predictions.push_back({p.indices[i], y[i], pred});
      }
    }
    pending.clear();
  };
  for (data::Batch& b : loader.epoch(0)) {
    Tensor x = b.images.to(device, NonBlocking::yes);
    Tensor logits;
    if (autocast) {
      amp::Autocast ac(*autocast);
      logits = model.forward(x);
    } else {
      logits = model.forward(x);
    }
    pending.push_back({logits, b.labels.to(Device::cpu()), b.indices});
    if (pending.size() >= kEvalReadEvery) read();
  }
  read();
  r.loss = r.metrics.count() ? loss_sum / static_cast<double>(r.metrics.count()) : 0.0;
  return r;
}

// Atomic text file: write a temporary beside it, then rename (a crash leaves the old file).
inline void write_text_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw RunError("cannot write '" + tmp.string() + "'");
    out << text;
    out.flush();
    if (!out) throw RunError("cannot write '" + tmp.string() + "' (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw RunError("cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
}

inline std::string confusion_csv(const metrics::ClassificationMetrics& m, const std::vector<std::string>& classes) {
  auto q = [](const std::string& s) {
    std::string o = "\"";
    for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
  };
  std::string s = "true\\predicted";
  for (const auto& c : classes) s += "," + q(c);
  s += "\n";
  for (int64_t t = 0; t < m.num_classes(); ++t) {
    s += q(classes[static_cast<size_t>(t)]);
    for (int64_t p = 0; p < m.num_classes(); ++p) s += "," + std::to_string(m.confusion(t, p));
    s += "\n";
  }
  return s;
}

inline json confusion_json(const metrics::ClassificationMetrics& m) {
  json cm = json::array();
  for (int64_t t = 0; t < m.num_classes(); ++t) {
    json row = json::array();
    for (int64_t p = 0; p < m.num_classes(); ++p) row.push_back(m.confusion(t, p));
    cm.push_back(row);
  }
  return cm;
}

inline json per_class_json(const metrics::ClassificationMetrics& m, const std::vector<std::string>& classes) {
  json a = json::array();
  for (int64_t c = 0; c < m.num_classes(); ++c) {
    const auto s = m.stats(c);
    a.push_back({{"class", classes[static_cast<size_t>(c)]},
                 {"precision", s.precision},
                 {"recall", s.recall},
                 {"f1", s.f1},
                 {"support", s.support}});
  }
  return a;
}

}  // namespace wanwu::cli
