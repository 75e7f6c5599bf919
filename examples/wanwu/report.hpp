// report.html for a training run: one self-contained page (inline SVG and CSS, no scripts, no
// network) that opens anywhere, including air-gapped machines and CI artifact viewers. It is
// rebuilt from metrics.jsonl's objects after every epoch, so a resumed run's report covers the
// whole run. Charts: train/val loss, val top-1/top-5, the learning rate, the best epoch's
// confusion matrix as a heat map with class names, per-class recall bars; then the recipe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "evaluate.hpp"

namespace wanwu::cli {

namespace report_detail {

inline std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

inline std::string num(double v, const char* f = "%.4g") {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

struct Series {
  std::string name, color;
  std::vector<double> x, y;
};

// A line (or scatter) chart with axes, ticks and a legend; log axes for learning rates spanning
// decades (the lr schedule's y axis, a sweep's val-accuracy-versus-lr x axis).
enum class Scale : uint8_t { linear, log };
enum class Marks : uint8_t { lines, points };
struct ChartStyle {
  Scale x = Scale::linear, y = Scale::linear;
  Marks marks = Marks::lines;
  std::string x_label = "epoch";
};

inline std::string line_chart(const std::string& id, const std::string& title, const std::vector<Series>& series,
                              const ChartStyle& style = {}) {
  const double W = 560, H = 260, L = 60, R = 115, T = 30, B = 40;  // the legend sits right of the plot
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  auto ty = [&](double v) { return style.y == Scale::log ? std::log10(v) : v; };
  auto tx = [&](double v) { return style.x == Scale::log ? std::log10(v) : v; };
  // a point a log axis cannot show (a cosine schedule's final lr of 0) is left out, not clamped:
  // clamping would stretch the axis over a dozen empty decades
  auto shown = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (style.x != Scale::log || x > 0) && (style.y != Scale::log || y > 0);
  };
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!shown(s.x[i], s.y[i])) continue;
      x0 = std::min(x0, tx(s.x[i]));
      x1 = std::max(x1, tx(s.x[i]));
      y0 = std::min(y0, ty(s.y[i]));
      y1 = std::max(y1, ty(s.y[i]));
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  if (style.x == Scale::log) x0 -= 0.1, x1 += 0.1;  // keep points at the ends off the frame
  auto px = [&](double x) { return L + (tx(x) - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (ty(y) - y0) / (y1 - y0) * (H - T - B); };
  std::string s = "<svg id=\"" + id + "\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) +
                  "\" height=\"" + num(H) + "\" viewBox=\"0 0 " + num(W) + " " + num(H) + "\">";
  s += "<text x=\"" + num(W / 2) + "\" y=\"18\" text-anchor=\"middle\" class=\"t\">" + esc(title) + "</text>";
  s += "<rect x=\"" + num(L) + "\" y=\"" + num(T) + "\" width=\"" + num(W - L - R) + "\" height=\"" + num(H - T - B) +
       "\" fill=\"#fafafa\" stroke=\"#999\"/>";
  for (int k = 0; k <= 4; ++k) {
    const double yv = y0 + (y1 - y0) * k / 4.0;
    const double yy = H - B - (yv - y0) / (y1 - y0) * (H - T - B);
    const double label = style.y == Scale::log ? std::pow(10.0, yv) : yv;
    s += "<line x1=\"" + num(L) + "\" x2=\"" + num(W - R) + "\" y1=\"" + num(yy) + "\" y2=\"" + num(yy) +
         "\" stroke=\"#e4e4e4\"/><text x=\"" + num(L - 4) + "\" y=\"" + num(yy + 4) +
         "\" text-anchor=\"end\" class=\"a\">" + num(label, "%.3g") + "</text>";
    const double xv = x0 + (x1 - x0) * k / 4.0;
    const double xlabel = style.x == Scale::log ? std::pow(10.0, xv) : xv;
    s += "<text x=\"" + num(L + (xv - x0) / (x1 - x0) * (W - L - R)) + "\" y=\"" + num(H - B + 14) +
         "\" text-anchor=\"middle\" class=\"a\">" + num(xlabel, "%.3g") + "</text>";
  }
  s += "<text x=\"" + num((L + W - R) / 2) + "\" y=\"" + num(H - 6) + "\" text-anchor=\"middle\" class=\"a\">" +
       esc(style.x_label) + "</text>";
  double ly = T + 12;
  size_t legend_left = 12;  // more entries would run off the chart; the points' tooltips still name them
  for (const auto& sr : series) {
    std::string pts;
    for (size_t i = 0; i < sr.x.size(); ++i)
      if (shown(sr.x[i], sr.y[i]))
        pts += num(px(sr.x[i]), "%.1f") + "," + num(py(sr.y[i]), "%.1f") + " ";
    if (style.marks == Marks::lines)
      s += "<polyline class=\"series\" fill=\"none\" stroke=\"" + sr.color + "\" stroke-width=\"2\" points=\"" + pts +
           "\"/>";
    if (sr.x.size() <= 60 || style.marks == Marks::points)
      for (size_t i = 0; i < sr.x.size(); ++i)
        if (shown(sr.x[i], sr.y[i]))
          s += "<circle class=\"point\" cx=\"" + num(px(sr.x[i]), "%.1f") + "\" cy=\"" + num(py(sr.y[i]), "%.1f") +
               "\" r=\"" + (style.marks == Marks::points ? "5" : "3") + "\" fill=\"" + sr.color + "\"><title>" +
               esc(sr.name) + " " + esc(style.x_label) + " " + num(sr.x[i]) + ": " + num(sr.y[i]) + "</title></circle>";
    if (legend_left == 0) continue;
    --legend_left;
    s += "<rect x=\"" + num(W - R + 8) + "\" y=\"" + num(ly - 8) + "\" width=\"10\" height=\"10\" fill=\"" + sr.color +
         "\"/><text x=\"" + num(W - R + 22) + "\" y=\"" + num(ly + 1) + "\" class=\"a\">" + esc(sr.name) + "</text>";
    ly += 15;
  }
  return s + "</svg>";
}

// White -> dark blue by the row-normalized share (the recall view), counts in the cells.
inline std::string heat_map(const json& cm, const std::vector<std::string>& classes) {
  const size_t n = classes.size();
  const double cell = n <= 10 ? 44 : n <= 30 ? 22 : 12;
  const double L = 140, T = 120;
  // at least as wide as the title
  const double W = std::max(L + cell * static_cast<double>(n) + 10, 420.0), H = T + cell * static_cast<double>(n) + 30;
  std::string s = "<svg id=\"confusion\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) +
                  "\" height=\"" + num(H) + "\">";
  s += "<text x=\"" + std::string("10") + "\" y=\"14\" class=\"t\">confusion matrix (rows: true class, columns: predicted)</text>";
  for (size_t t = 0; t < n; ++t) {
    double row = 0;
    for (size_t p = 0; p < n; ++p) row += cm[t][p].get<double>();
    s += "<text x=\"" + num(L - 4) + "\" y=\"" + num(T + cell * (static_cast<double>(t) + 0.65)) +
         "\" text-anchor=\"end\" class=\"a\">" + esc(classes[t]) + "</text>";
    for (size_t p = 0; p < n; ++p) {
      const double v = cm[t][p].get<double>();
      const double f = row > 0 ? v / row : 0;
      const int r = static_cast<int>(255 - f * (255 - 8)), g = static_cast<int>(255 - f * (255 - 48)),
                b = static_cast<int>(255 - f * (255 - 107));
      char col[16];
      std::snprintf(col, sizeof col, "#%02x%02x%02x", r, g, b);
      const double x = L + cell * static_cast<double>(p), y = T + cell * static_cast<double>(t);
      s += "<rect class=\"cell\" x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(cell) + "\" height=\"" +
           num(cell) + "\" fill=\"" + col + "\" stroke=\"#fff\"><title>true " + esc(classes[t]) + ", predicted " +
           esc(classes[p]) + ": " + num(v, "%.0f") + "</title></rect>";
      if (cell >= 22)
        s += "<text x=\"" + num(x + cell / 2) + "\" y=\"" + num(y + cell / 2 + 4) +
             "\" text-anchor=\"middle\" class=\"c\" fill=\"" + (f > 0.5 ? "#fff" : "#222") + "\">" + num(v, "%.0f") +
             "</text>";
    }
  }
  for (size_t p = 0; p < n; ++p) {
    const double x = L + cell * (static_cast<double>(p) + 0.6);
    s += "<text transform=\"translate(" + num(x) + "," + num(T - 4) + ") rotate(-60)\" class=\"a\">" + esc(classes[p]) +
         "</text>";
  }
  return s + "</svg>";
}

inline std::string recall_bars(const json& per_class) {
  const size_t n = per_class.size();
  const double bar = 16, L = 140, T = 26, Wb = 300;
  const double H = T + bar * static_cast<double>(n) + 10;
  std::string s = "<svg id=\"recall\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(L + Wb + 60) +
                  "\" height=\"" + num(H) + "\"><text x=\"" + num(L) + "\" y=\"14\" class=\"t\">per-class recall</text>";
  for (size_t i = 0; i < n; ++i) {
    const double r = per_class[i].value("recall", 0.0);
    const double y = T + bar * static_cast<double>(i);
    s += "<text x=\"" + num(L - 4) + "\" y=\"" + num(y + 12) + "\" text-anchor=\"end\" class=\"a\">" +
         esc(per_class[i].value("class", std::string())) + "</text><rect class=\"bar\" x=\"" + num(L) + "\" y=\"" +
         num(y + 2) + "\" width=\"" + num(std::max(0.5, r * Wb)) + "\" height=\"" + num(bar - 4) +
         "\" fill=\"#3b7dd8\"/><text x=\"" + num(L + r * Wb + 4) + "\" y=\"" + num(y + 12) + "\" class=\"a\">" +
         num(r * 100, "%.1f") + "%</text>";
  }
  return s + "</svg>";
}

// The start of a report page up to <body>: the shared look of run and sweep reports.
inline std::string page_head(const std::string& title) {
  return "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + esc(title) +
         "</title><style>body{font-family:sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;"
         "margin-top:28px}.chart{margin:6px 12px 6px 0;vertical-align:top}.t{font-size:13px;font-weight:bold}"
         ".a{font-size:11px}.c{font-size:11px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px "
         "8px;font-size:13px;text-align:left}pre{white-space:pre-wrap}</style></head><body>";
}

}  // namespace report_detail

inline void write_report(const fs::path& path, const std::vector<json>& history, const std::vector<std::string>& classes,
                         const json& config, int64_t best_epoch) {
  using namespace report_detail;
  Series tl{"train loss", "#d9534f", {}, {}}, vl{"val loss", "#3b7dd8", {}, {}};
  Series acc{"val top-1", "#3b7dd8", {}, {}}, top5{"val top-5", "#5cb85c", {}, {}};
  Series lr{"lr (end of epoch)", "#8e44ad", {}, {}};
  const json* best = nullptr;
  for (const auto& h : history) {
    const double e = h.value("epoch", 0.0);
    tl.x.push_back(e), tl.y.push_back(h.value("train_loss", NAN));
    vl.x.push_back(e), vl.y.push_back(h.value("val_loss", NAN));
    acc.x.push_back(e), acc.y.push_back(h.value("val_acc", NAN));
    top5.x.push_back(e), top5.y.push_back(h.value("val_top5", NAN));
    // the per-step samples when the run recorded them (x in epochs), else the end-of-epoch lr
    const double spe = h.value("steps_per_epoch", 0.0);
    if (spe > 0 && h.contains("lr_trace") && !h.at("lr_trace").empty()) {
      lr.name = "lr";
      for (const auto& p : h.at("lr_trace")) lr.x.push_back(p[0].get<double>() / spe), lr.y.push_back(p[1].get<double>());
    } else {
      lr.x.push_back(e), lr.y.push_back(h.value("lr", NAN));
    }
    if (h.value("epoch", int64_t{0}) == best_epoch) best = &h;
  }
  const json& recipe = config.at("recipe");
  std::string page = page_head("wanwu run: " + recipe.value("model", ""));
  page += "<h1>wanwu training run: " + esc(recipe.value("model", "")) + " on " + esc(recipe.value("data", "")) + "</h1>";
  if (best)
    page += "<p id=\"summary\">Best validation accuracy <b>" + num(best->value("val_acc", 0.0) * 100, "%.2f") +
            "%</b> (top-5 " + num(best->value("val_top5", 0.0) * 100, "%.2f") + "%) at epoch " +
            std::to_string(best_epoch) + " of " + std::to_string(history.size()) + " completed; " +
            std::to_string(classes.size()) + " classes, " + std::to_string(config.value("train_samples", 0)) +
            " training and " + std::to_string(config.value("val_samples", 0)) + " validation images.</p>";
  page += "<h2>Curves</h2><div>" + line_chart("loss", "loss", {tl, vl}) + line_chart("accuracy", "accuracy", {acc, top5}) +
          line_chart("lr", "learning rate", {lr}, {.y = Scale::log}) + "</div>";
  if (best) {
    page += "<h2>Best epoch (" + std::to_string(best_epoch) + ")</h2><div>" +
            heat_map(best->at("confusion_matrix"), classes) + recall_bars(best->at("per_class")) + "</div>";
  }
  page += "<h2>Recipe</h2><table id=\"recipe\">";
  for (const auto& [k, v] : recipe.items()) page += "<tr><th>" + esc(k) + "</th><td>" + esc(v.dump()) + "</td></tr>";
  page += "<tr><th>preprocess</th><td>" + esc(config.value("preprocess", json()).dump()) + "</td></tr>";
  page += "<tr><th>device</th><td>" + esc(config.value("device", std::string())) + "</td></tr></table>";
  page += "<h2>Epochs</h2><table id=\"epochs\"><tr><th>epoch</th><th>train loss</th><th>val loss</th><th>val acc</th>"
          "<th>val top-5</th><th>lr</th><th>images/s</th><th>seconds</th></tr>";
  for (const auto& h : history)
    page += "<tr><td>" + std::to_string(h.value("epoch", 0)) + "</td><td>" + num(h.value("train_loss", 0.0)) +
            "</td><td>" + num(h.value("val_loss", 0.0)) + "</td><td>" + num(h.value("val_acc", 0.0)) + "</td><td>" +
            num(h.value("val_top5", 0.0)) + "</td><td>" + num(h.value("lr", 0.0)) + "</td><td>" +
            num(h.value("images_per_s", 0.0), "%.0f") + "</td><td>" + num(h.value("seconds", 0.0), "%.1f") + "</td></tr>";
  page += "</table></body></html>\n";
  write_text_atomic(path, page);
}

}  // namespace wanwu::cli
