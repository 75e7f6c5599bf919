// StepGraph: a fixed-shape training step recorded once and replayed (torch.cuda.CUDAGraph with
// torch.cuda.graph). On CUDA the step's kernels, library calls and copies become one CUDA graph,
// and a replay costs the host one launch instead of hundreds: what a small model or a small batch
// is limited by. Elsewhere a replay runs the step again, so code written for graphs runs anywhere.
//
//   Tensor x = zeros({B, H, W, 3}, cuda), y = zeros({B}, i64-on-cuda);   // the step's inputs
//   auto step = [&] { opt.zero_grad(); loss = cross_entropy(model(x), y); loss.backward(); opt.step(); };
//   step();                      // one eager step first: optimizer state, cuDNN's choices
//   StepGraph graph(cuda);
//   graph.capture(step);         // records; runs nothing
//   for (...) { x.copy_(batch.images); y.copy_(batch.labels); graph.replay(); sched.step(); }
//
// The rules are PyTorch's, for the same reasons:
// - The capture runs the step's host code once; replays repeat only its device work. What the
//   step reads must be in tensors whose contents change between replays (copy new batches into
//   the captured inputs); tensors the step returns or assigns (the loss, gradients) are rewritten
//   by each replay at the same addresses. Keep the inputs, the model and the optimizer alive as
//   long as the graph.
// - No reads from the device and no waits inside the step (item(), printing, the inf check of fp16
//   loss scaling with the scale on the host): they throw during the capture, naming the call. A
//   GradScaler with ScalerSync::device keeps its scale and check on the device and captures.
// - Optimizer hyper-parameters (a schedule's learning rate), Adam's step counts and the Philox
//   offsets of dropout are refreshed before every replay (core/capture.hpp), so replay k computes
//   what the k-th eager step would have; the version counters of what the step
//   writes in place (parameters, running statistics) advance as the eager step's do.
// - One eager step before the capture: state created inside a capture (momentum buffers, Adam's
//   moments) would be recreated by every replay, so optimizers refuse it.
#pragma once

#include <functional>
#include <memory>

#include "backend.hpp"

namespace wanwu {

class StepGraph {
 public:
  explicit StepGraph(Device device) : device_(device) {}
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  Device device() const { return device_; }
  bool captured() const { return static_cast<bool>(step_) || static_cast<bool>(graph_); }
  int64_t replays() const { return replays_; }

  // Records `step`'s work on the device. If the step throws, nothing is kept and the exception
  // propagates; the device runs work as it comes again.
  void capture(std::function<void()> step) {
    WANWU_CHECK_VALUE(!captured(), "StepGraph::capture: this graph already holds a step");
    WANWU_CHECK_VALUE(step != nullptr, "StepGraph::capture: no step given");
    WANWU_CHECK_VALUE(detail::active_capture_slot() == nullptr,
                      "StepGraph::capture: this thread is already recording a graph");
    if (device_.is_cpu()) {  // nothing to record: a replay is the step
      step_ = std::move(step);
      return;
    }
    Backend& be = backend_for(device_);
    auto cap = std::make_unique<GraphCapture>(device_, empty_tensor(Shape{int64_t(GraphCapture::kMaxLive)},
                                                                    DType::f64, device_));
    be.begin_capture(device_.index);
    detail::active_capture_slot() = cap.get();
    detail::capture_write_log() = cap->write_log();
    try {
      step();
    } catch (...) {
      detail::active_capture_slot() = nullptr;
      detail::capture_write_log() = nullptr;
      cap->finish();
      be.abort_capture(device_.index);
      throw;
    }
    detail::active_capture_slot() = nullptr;
    detail::capture_write_log() = nullptr;
    cap->finish();
    graph_ = be.end_capture(device_.index, cap->live_buffer());
    capture_ = std::move(cap);
  }

  // One step: the recorded work, after refreshing its live values. Does not wait for the device.
  void replay() {
    WANWU_CHECK_VALUE(captured(), "StepGraph::replay: nothing captured yet (call capture first)");
    if (step_) step_();
    else graph_->replay(capture_->refresh());
    ++replays_;
  }

 private:
  Device device_;
  std::function<void()> step_;             // CPU
  std::unique_ptr<GraphCapture> capture_;  // holds the live buffer: destroyed after the graph
  std::unique_ptr<DeviceGraph> graph_;
  int64_t replays_ = 0;
};

}  // namespace wanwu
