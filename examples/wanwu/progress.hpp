// Training progress for `wanwu train`: on a terminal a bar redrawn in place (epoch, step/total,
// loss, lr, images/s, ETA) at most five times a second; otherwise (a log file, a CI job) plain
// lines, about five per epoch, so logs stay short and greppable.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace wanwu::cli {

enum class ProgressStyle : uint8_t { bar, lines };

class Progress {
 public:
  explicit Progress(ProgressStyle style) : style_(style) {}

  void start_epoch(int64_t epoch, int64_t epochs, int64_t steps, int64_t first_step) {
    epoch_ = epoch;
    epochs_ = epochs;
    steps_ = steps;
    first_ = first_step;
    t0_ = Clock::now();
    last_draw_ = t0_ - std::chrono::seconds(1);
  }
  // Whether update(step, ...) would draw. The loop asks first, so that it reads the loss back
  // from the device only for the steps that are shown.
  bool due(int64_t step) const {
    if (step == steps_) return true;
    if (style_ == ProgressStyle::bar) return std::chrono::duration<double>(Clock::now() - last_draw_).count() >= 0.2;
    const int64_t every = steps_ >= 5 ? steps_ / 5 : 1;
    return step % every == 0;
  }
  // After optimizer step `step` (1-based within the epoch); draws when due(step).
  void update(int64_t step, double loss, double lr, double images_per_s) {
    if (!due(step)) return;
    const auto now = Clock::now();
    const double el = std::chrono::duration<double>(now - t0_).count();
    const double per = step > first_ ? el / static_cast<double>(step - first_) : 0.0;
    const double eta = per * static_cast<double>(steps_ - step);
    char buf[256];
    if (style_ == ProgressStyle::bar) {
      last_draw_ = now;
      const int width = 24;
      const int fill = steps_ ? static_cast<int>(width * step / steps_) : width;
      std::string bar(static_cast<size_t>(fill), '#');
      bar.resize(width, '.');
      std::snprintf(buf, sizeof buf, "\repoch %lld/%lld [%s] %lld/%lld loss %.4f lr %.3g %.0f img/s ETA %s   ",
                    static_cast<long long>(epoch_), static_cast<long long>(epochs_), bar.c_str(),
                    static_cast<long long>(step), static_cast<long long>(steps_), loss, lr, images_per_s,
                    fmt_time(eta).c_str());
      std::fputs(buf, stdout);
      if (step == steps_) std::fputs("\n", stdout);
    } else {
      std::snprintf(buf, sizeof buf, "epoch %lld/%lld step %lld/%lld loss %.4f lr %.3g %.0f img/s ETA %s\n",
                    static_cast<long long>(epoch_), static_cast<long long>(epochs_), static_cast<long long>(step),
                    static_cast<long long>(steps_), loss, lr, images_per_s, fmt_time(eta).c_str());
      std::fputs(buf, stdout);
    }
    std::fflush(stdout);
  }
  // Ends a bar that stopped early (interrupt, --max-steps).
  void interrupt() {
    if (style_ == ProgressStyle::bar) std::fputs("\n", stdout);
    std::fflush(stdout);
  }

  static std::string fmt_time(double s) {
    char b[32];
    const long t = static_cast<long>(s + 0.5);
    if (t >= 3600) std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else std::snprintf(b, sizeof b, "%ld:%02ld", t / 60, t % 60);
    return b;
  }

 private:
  using Clock = std::chrono::steady_clock;
  ProgressStyle style_;
  int64_t epoch_ = 0, epochs_ = 0, steps_ = 0, first_ = 0;
  Clock::time_point t0_, last_draw_;
};

}  // namespace wanwu::cli
