// Graph capture, the device-independent half (the CUDA half is kernels/graph.cuh; the user's
// handle is backend/step_graph.hpp). While a thread records a training step into a CUDA graph,
// the host code of that step runs once, but its kernels run at every replay. Host state that a
// step advances — an optimizer's step counts and learning rates, a generator's Philox offset —
// would then be frozen at its capture-time value. So code that feeds such values to kernels asks
// the active capture for "live" values instead: a slot in one f64 device buffer that the kernels
// read, and a host function that recomputes the slot before every replay (PyTorch's capturable
// optimizers and graph-safe Philox offsets solve the same problem with device tensors).
//
// Capture is a recording, not a step: what the step's host code advanced while it was recorded
// (generator offsets) is rolled back when the capture ends, and each replay advances it as the
// eager step would have, so a replayed step draws the numbers its eager twin draws. Likewise the
// version counters of the tensors the step writes in place are bumped again by every replay.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "device.hpp"
#include "error.hpp"
#include "rng.hpp"
#include "tensor.hpp"

namespace wanwu {

class GraphCapture {
 public:
  // Values a graph's replays may rewrite: a few per optimizer batch and one per generator.
  static constexpr size_t kMaxLive = 480;

  // `live` is an f64 [kMaxLive] buffer on `device`, allocated before the capture began.
  GraphCapture(Device device, Tensor live) : device_(device), live_(std::move(live)) {}
  GraphCapture(const GraphCapture&) = delete;
  GraphCapture& operator=(const GraphCapture&) = delete;

  Device device() const { return device_; }
  const Tensor& live_buffer() const { return live_; }

  // Reserves n live values and returns the device address of the first. `refresh` writes them on
  // the host before every replay, in the order the values were reserved in; `who` names the
  // caller in the error when the buffer is full.
  const double* live_values(size_t n, std::function<void(double*)> refresh, const char* who) {
    WANWU_CHECK_VALUE(used_ + n <= kMaxLive, who, ": a graph holds at most ", kMaxLive,
                      " per-replay values and this capture needs more (", used_, " in use, ", n, " more asked)");
    const size_t first = used_;
    used_ += n;
    refreshers_.push_back({first, std::move(refresh)});
    return static_cast<const double*>(live_.data_ptr()) + first;
  }

  // The device address of (g's offset at replay) - (g's offset when the capture first drew from
  // it): a kernel adds it to its captured Philox offset. Call before g.reserve().
  const double* rng_shift(Generator& g) {
    for (const Drawn& d : generators_)
      if (d.gen == &g) return d.slot;
    Drawn d{&g, g.seed(), g.offset(), nullptr};
    const size_t index = generators_.size();
    d.slot = live_values(
        1,
        [this, index](double* v) {
          Drawn& e = generators_[index];
          WANWU_CHECK_VALUE(e.gen->seed() == e.seed, "StepGraph::replay: a generator the step draws from was reseeded "
                            "after the capture (seed ", e.seed, ", now ", e.gen->seed(),
                            "); the graph keeps the captured seed: capture the step again");
          const uint64_t first = e.gen->reserve(e.consumed).second;
          v[0] = static_cast<double>(first - e.start);  // exact: offsets stay far below 2^53
        },
        "rng_shift");
    generators_.push_back(d);
    return d.slot;
  }

  // Where the recording's in-place writes are logged (Tensor::bump_version) while it runs.
  std::vector<std::weak_ptr<Storage>>* write_log() { return &written_; }

  // The end of the recording: every generator goes back to where it was, so that the recording
  // draws nothing, and the storages written in place are kept once each.
  void finish() {
    for (Drawn& d : generators_) {
      d.consumed = d.gen->offset() - d.start;
      d.gen->set_state(d.seed, d.start);
    }
    std::vector<std::shared_ptr<Storage>> alive;
    for (const auto& w : written_)
      if (auto s = w.lock()) alive.push_back(std::move(s));
    const std::less<const Storage*> before;
    std::sort(alive.begin(), alive.end(), [&](const auto& a, const auto& b) { return before(a.get(), b.get()); });
    alive.erase(std::unique(alive.begin(), alive.end()), alive.end());
    written_.assign(alive.begin(), alive.end());
  }

  // The live values of the next replay, with the host state their refreshers advance; the
  // storages the replay will write in place are marked changed, as the eager step marks them.
  const std::vector<double>& refresh() {
    values_.assign(used_, 0.0);
    for (auto& [first, f] : refreshers_) f(values_.data() + first);
    for (const auto& w : written_)
      if (const auto s = w.lock()) s->bump_version();
    return values_;
  }

 private:
  struct Drawn {
    Generator* gen;
    uint64_t seed, start;
    const double* slot;
    uint64_t consumed = 0;
  };
  Device device_;
  Tensor live_;
  size_t used_ = 0;
  std::vector<std::pair<size_t, std::function<void(double*)>>> refreshers_;
  std::vector<Drawn> generators_;
  std::vector<double> values_;
  std::vector<std::weak_ptr<Storage>> written_;
};

namespace detail {
inline GraphCapture*& active_capture_slot() {
  thread_local GraphCapture* c = nullptr;
  return c;
}
}  // namespace detail

// The capture this thread is recording on `d`, or null (work for other devices runs as usual).
inline GraphCapture* active_capture(Device d) {
  GraphCapture* c = detail::active_capture_slot();
  return c && c->device() == d ? c : nullptr;
}

// A random op's Philox stream: (seed, first block), and during a capture on `d` the device
// address of the offset shift its kernel adds (null otherwise).
struct RandomDraw {
  uint64_t seed, offset;
  const double* shift;
};
inline RandomDraw reserve_random(Generator& g, uint64_t blocks, Device d) {
  const double* shift = nullptr;
  if (GraphCapture* c = active_capture(d)) shift = c->rng_shift(g);
  auto [seed, offset] = g.reserve(blocks);
  return {seed, offset, shift};
}

}  // namespace wanwu
