// Where a backward pass spends its time, op by op: while a BackwardProfile is alive on a thread,
// every backward() that thread runs times each node's gradient formula, the sums of gradients
// that meet at a tensor, and the casts of gradients back to their inputs' dtypes, under the
// node's name ("conv2d", "batch_norm_act", ...). The profile accumulates over backward passes.
//
// Why this shape: a training step's backward is a few hundred nodes whose kernels run
// asynchronously on a GPU, so host timestamps around a node measure only its launches. The
// profile synchronizes the device before and after each timed piece, which makes each piece's
// time its own device time plus its launch overhead, and makes the profiled pass slower than an
// unprofiled one: it is for finding which ops hold a gap (the ResNet-50 step in
// scripts/gpu-check.sh), not for timing the step. On the CPU the synchronization costs nothing.
// The state is per thread, like GradMode, so profiling one thread's training loop does not touch
// another's; profiles nest, and each must end on its thread in reverse order of creation (a
// scope, as in the tests and benchmarks).
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "../backend/backend.hpp"

namespace wanwu::autograd {

struct OpTime {
  std::string name;
  int64_t calls = 0;
  double ms = 0;
};

class BackwardProfile {
 public:
  BackwardProfile() : prev_(active()) { active() = this; }
  ~BackwardProfile() { active() = prev_; }
  BackwardProfile(const BackwardProfile&) = delete;
  BackwardProfile& operator=(const BackwardProfile&) = delete;

  // Every op seen so far, most time first.
  std::vector<OpTime> ops() const {
    std::vector<OpTime> v = ops_;
    std::stable_sort(v.begin(), v.end(), [](const OpTime& a, const OpTime& b) { return a.ms > b.ms; });
    return v;
  }
  double total_ms() const {
    double t = 0;
    for (const OpTime& o : ops_) t += o.ms;
    return t;
  }

  // The profile backward() reports to on this thread, or null.
  static BackwardProfile* current() { return active(); }

  // Runs f with the device idle before and after, and charges the time to `name`.
  template <class F>
  decltype(auto) time(std::string_view name, Device device, F&& f) {
    sync(device);
    const auto t0 = std::chrono::steady_clock::now();
    struct Charge {
      BackwardProfile& p;
      std::string_view name;
      Device device;
      std::chrono::steady_clock::time_point t0;
      ~Charge() {
        p.sync(device);
        try {  // runs during unwinding too: a failed op is charged, and nothing may escape here
          p.add(name, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        } catch (...) {
        }
      }
    } charge{*this, name, device, t0};
    return f();
  }

 private:
  static BackwardProfile*& active() {
    thread_local BackwardProfile* p = nullptr;
    return p;
  }
  // drain, not synchronize: a bad index a kernel found stays pending for the program's next read
  // instead of being raised here and swallowed
  static void sync(Device d) noexcept {
    try {
      backend_for(d).drain(d.index);
    } catch (...) {  // the op's own error, if any, is the one to report
    }
  }
  void add(std::string_view name, double ms) {
    for (OpTime& o : ops_)
      if (o.name == name) {
        ++o.calls;
        o.ms += ms;
        return;
      }
    ops_.push_back({std::string(name), 1, ms});
  }

  BackwardProfile* prev_;
  std::vector<OpTime> ops_;
};

}  // namespace wanwu::autograd
