// Printing, in PyTorch's style: nested brackets, one common number format per tensor (integers
// as "1.", fixed with 4 decimals, or scientific when magnitudes span more than 10^3), rows
// wrapped at 80 columns, and tensors over 1,000 elements summarized with "..." (3 items at each
// edge). The suffix always names shape and dtype, then the device if not the CPU and the autograd
// state: `tensor([1., 2.], shape=[2], dtype=f32, requires_grad)`.
#pragma once

#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "../autograd/node.hpp"
#include "../ops/copy.hpp"

namespace wanwu {

namespace detail {

struct PrintFormat {
  enum class Mode : uint8_t { integer, fixed, scientific, int_dtype, boolean } mode = Mode::fixed;
  int width = 1;

  std::string format(double v) const {
    char buf[64];
    if (mode == Mode::boolean) return v != 0.0 ? "true" : "false";
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    switch (mode) {
      case Mode::int_dtype: std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v)); break;
      case Mode::integer: std::snprintf(buf, sizeof buf, "%.0f.", v); break;
      case Mode::fixed: std::snprintf(buf, sizeof buf, "%.4f", v); break;
      case Mode::scientific: std::snprintf(buf, sizeof buf, "%.4e", v); break;
      case Mode::boolean: break;
    }
    return buf;
  }
};

inline PrintFormat choose_format(const std::vector<double>& vals, DType dt) {
  PrintFormat f;
  if (dt == DType::boolean) f.mode = PrintFormat::Mode::boolean;
  else if (!is_floating(dt)) f.mode = PrintFormat::Mode::int_dtype;
  else {
    bool all_int = true;
    double max_abs = 0.0, min_abs = INFINITY;
    for (double v : vals) {
      if (!std::isfinite(v)) continue;
      if (v != std::floor(v)) all_int = false;
      const double a = std::fabs(v);
      max_abs = std::max(max_abs, a);
      if (a > 0) min_abs = std::min(min_abs, a);
    }
    if (all_int) f.mode = max_abs > 1e8 ? PrintFormat::Mode::scientific : PrintFormat::Mode::integer;
    else if (max_abs > 1e8 || (min_abs < 1e-4) || (min_abs != INFINITY && max_abs / min_abs > 1000.0))
      f.mode = PrintFormat::Mode::scientific;
    else f.mode = PrintFormat::Mode::fixed;
  }
  for (double v : vals)  // nan and inf do not widen the columns (as in PyTorch)
    if (std::isfinite(v)) f.width = std::max<int>(f.width, static_cast<int>(f.format(v).size()));
  return f;
}

// Indices shown along a dim of size n: all, or 3 at each end with -1 marking the gap.
inline std::vector<int64_t> shown_indices(int64_t n, bool summarize) {
  std::vector<int64_t> idx;
  if (summarize && n > 6) {
    for (int64_t i = 0; i < 3; ++i) idx.push_back(i);
    idx.push_back(-1);
    for (int64_t i = n - 3; i < n; ++i) idx.push_back(i);
  } else {
    for (int64_t i = 0; i < n; ++i) idx.push_back(i);
  }
  return idx;
}

inline void collect(const Tensor& t, bool summarize, std::vector<double>& out) {
  if (t.dim() == 0) {
    out.push_back(t.item<double>());
    return;
  }
  for (int64_t i : shown_indices(t.size(0), summarize))
    if (i >= 0) collect(t.select(0, i), summarize, out);
}

inline void print_rec(std::ostream& os, const Tensor& t, const PrintFormat& f, bool summarize, int indent) {
  if (t.dim() == 0) {
    const std::string s = f.format(t.item<double>());
    os << std::string(std::max<int>(0, f.width - static_cast<int>(s.size())), ' ') << s;
    return;
  }
  os << '[';
  const auto idx = shown_indices(t.size(0), summarize);
  if (t.dim() == 1) {
    int col = indent + 1;
    for (size_t k = 0; k < idx.size(); ++k) {
      std::string item = idx[k] < 0 ? std::string("...") : [&] {
        const std::string s = f.format(t.select(0, idx[k]).item<double>());
        return std::string(std::max<int>(0, f.width - static_cast<int>(s.size())), ' ') + s;
      }();
      if (k > 0) {
        if (col + 2 + static_cast<int>(item.size()) > 80) {
          os << ",\n" << std::string(indent + 1, ' ');
          col = indent + 1;
        } else {
          os << ", ";
          col += 2;
        }
      }
      os << item;
      col += static_cast<int>(item.size());
    }
  } else {
    for (size_t k = 0; k < idx.size(); ++k) {
      if (k > 0) os << ',' << std::string(t.dim() - 1, '\n') << std::string(indent + 1, ' ');
      if (idx[k] < 0) os << "...";
      else print_rec(os, t.select(0, idx[k]), f, summarize, indent + 1);
    }
  }
  os << ']';
}

}  // namespace detail

inline std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  NoGradGuard ng;
  const Tensor c = t.detach().cpu();
  const bool summarize = c.numel() > 1000;
  std::vector<double> vals;
  if (c.numel() > 0) detail::collect(c, summarize, vals);
  const auto f = detail::choose_format(vals, c.dtype());
  os << "tensor(";
  if (c.numel() == 0 && c.dim() > 0) os << "[]";
  else detail::print_rec(os, c, f, summarize, 7);
  os << ", shape=" << t.shape() << ", dtype=" << t.dtype();
  if (!t.device().is_cpu()) os << ", device=" << t.device();
  if (t.grad_fn()) os << ", grad_fn=<" << t.grad_fn()->name() << ">";
  else if (t.requires_grad()) os << ", requires_grad";
  return os << ')';
}

inline std::string to_string(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

}  // namespace wanwu
