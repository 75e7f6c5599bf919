// The counters and histograms `wanwu serve` exposes on GET /metrics, in Prometheus' text format
// (version 0.0.4), so that any Prometheus-compatible scraper reads them without an exporter.
//
// Hand-written rather than a client library: five metrics do not justify a dependency, and the
// format is a few lines of text. Updates take a mutex per histogram; at the request rates one
// model on one inference thread can serve, that costs nothing measurable, and it keeps the sum,
// count and buckets of a histogram consistent with each other in every scrape.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "wanwu/core/allocator.hpp"

namespace wanwu::cli {

inline std::string prom_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Label values are our own identifiers, but escape anyway: a model name comes from a file.
inline std::string prom_label(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds)
      : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

  void observe(double v) {
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    std::lock_guard<std::mutex> lk(mu_);
    ++counts_[i];
    sum_ += v;
    ++count_;
  }

  void render(std::string& out, const std::string& name, const std::string& help) const {
    std::lock_guard<std::mutex> lk(mu_);
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += counts_[i];
      out += name + "_bucket{le=\"" + prom_number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
    }
    cumulative += counts_.back();
    out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
    out += name + "_sum " + prom_number(sum_) + "\n";
    out += name + "_count " + std::to_string(count_) + "\n";
  }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is (last bound, +Inf)
  double sum_ = 0;
  uint64_t count_ = 0;
  mutable std::mutex mu_;
};

// The error kinds a client can cause or meet; listed up front so that every series exists (at 0)
// from the first scrape, which is what rate() and alerting rules expect.
inline const std::vector<std::string>& error_kinds() {
  static const std::vector<std::string> kinds = {
      "empty_body",       "missing_field", "unsupported_media_type", "payload_too_large", "too_many_pixels",
      "bad_image",        "bad_request",   "timeout",                "queue_full",        "shutting_down",
      "not_found",        "method_not_allowed", "internal"};
  return kinds;
}

class ServeMetrics {
 public:
  ServeMetrics() {
    for (const auto& k : error_kinds()) errors_[k] = 0;
  }

  // Every response, by route (unknown paths are folded into "other" so that a scanner cannot
  // create unbounded series) and status code.
  void count_response(const std::string& path, int code) {
    static const char* known[] = {"/predict", "/health", "/metrics", "/"};
    std::string route = "other";
    for (const char* k : known)
      if (path == k) route = k;
    std::lock_guard<std::mutex> lk(mu_);
    ++responses_[{route, code}];
  }
  void count_error(const std::string& kind) {
    std::lock_guard<std::mutex> lk(mu_);
    ++errors_[kind];
  }

  Histogram batch_size{{1, 2, 4, 8, 16, 32, 64, 128, 256}};
  Histogram latency{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  Histogram inference{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  std::atomic<int64_t> queue_depth{0};
  std::atomic<int64_t> in_flight{0};

  // `memory`: the serving device's tensor allocator. `cached`: whether that allocator serves
  // allocations from a cache of its own (the CPU's), so that the count of those that missed it says
  // how often a forward pass took memory from the system.
  std::string render(const std::string& model, const std::string& device, int64_t max_batch, const MemoryStats& memory,
                     bool cached) const {
    std::string out;
    out += "# HELP wanwu_model_info The model being served.\n# TYPE wanwu_model_info gauge\n";
    out += "wanwu_model_info{model=\"" + prom_label(model) + "\",device=\"" + prom_label(device) + "\",max_batch=\"" +
           std::to_string(max_batch) + "\"} 1\n";
    {
      std::lock_guard<std::mutex> lk(mu_);
      out += "# HELP wanwu_requests_total HTTP responses sent, by route and status code.\n"
             "# TYPE wanwu_requests_total counter\n";
      for (const auto& [key, n] : responses_)
        out += "wanwu_requests_total{path=\"" + prom_label(key.first) + "\",code=\"" + std::to_string(key.second) +
               "\"} " + std::to_string(n) + "\n";
      out += "# HELP wanwu_errors_total Error responses, by what was wrong.\n# TYPE wanwu_errors_total counter\n";
      for (const auto& [kind, n] : errors_)
        out += "wanwu_errors_total{kind=\"" + prom_label(kind) + "\"} " + std::to_string(n) + "\n";
    }
    batch_size.render(out, "wanwu_batch_size", "Images per forward pass.");
    latency.render(out, "wanwu_request_latency_seconds",
                   "POST /predict, from the request having been read to the answer being ready.");
    inference.render(out, "wanwu_inference_seconds", "Seconds per forward pass (a whole batch), softmax included.");
    out += "# HELP wanwu_queue_depth Preprocessed images waiting for the model.\n# TYPE wanwu_queue_depth gauge\n";
    out += "wanwu_queue_depth " + std::to_string(queue_depth.load()) + "\n";
    out += "# HELP wanwu_in_flight_requests POST /predict requests being handled.\n"
           "# TYPE wanwu_in_flight_requests gauge\n";
    out += "wanwu_in_flight_requests " + std::to_string(in_flight.load()) + "\n";
    out += "# HELP wanwu_tensor_memory_reserved_bytes Tensor memory the serving device's allocator holds "
           "(live tensors and its cache).\n# TYPE wanwu_tensor_memory_reserved_bytes gauge\n";
    out += "wanwu_tensor_memory_reserved_bytes " + std::to_string(memory.reserved) + "\n";
    out += "# HELP wanwu_tensor_allocations_total Tensor allocations on the serving device.\n"
           "# TYPE wanwu_tensor_allocations_total counter\n";
    out += "wanwu_tensor_allocations_total " + std::to_string(memory.allocations) + "\n";
    if (cached) {
      out += "# HELP wanwu_tensor_system_allocations_total Tensor allocations the allocator's cache could not "
             "serve (memory taken from the system); constant in steady state.\n"
             "# TYPE wanwu_tensor_system_allocations_total counter\n";
      out += "wanwu_tensor_system_allocations_total " + std::to_string(memory.allocations - memory.cache_hits) + "\n";
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> responses_;
  std::map<std::string, uint64_t> errors_;
};

}  // namespace wanwu::cli
