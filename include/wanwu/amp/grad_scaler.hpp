// Dynamic loss scaling for f16 training, as torch.cuda.amp.GradScaler (DESIGN D12): the loss is
// multiplied by a scale (2^16 to start) so small f16 gradients do not flush to zero; before the
// optimizer step the gradients are divided by it and checked; a step with any inf/NaN gradient is
// skipped and the scale halved; after growth_interval (2000) clean steps the scale doubles.
// Call order per step: scale(loss).backward(); [unscale_(opt); clip...]; step(opt); update().
//
// Two ways to keep the scale (GradScalerOptions::sync):
// - ScalerSync::host, torch.cuda.amp.GradScaler's own: step() reads the inf/NaN flag (one wait for
//   the GPU per step) and calls opt.step() only for a clean step; step() returns which.
// - ScalerSync::device, as PyTorch's fused optimizers with a GradScaler: the scale and the count
//   of clean steps stay on the device; the unscale divides by the scale there, the optimizer's
//   kernels skip a step whose flag is set (Optimizer::step_unless), and update() is one kernel
//   (torch's _amp_update_scale_). Nothing is read back, so the step loop never waits for the GPU
//   and a whole fp16 step can be captured into a CUDA graph (StepGraph). An optimizer that cannot
//   gate its next step (its state would start there) gets the host's way for that step.
//   The values and the skipped steps are the host way's, step for step.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../optim/foreach.hpp"
#include "../optim/optimizer.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/reduce.hpp"

namespace wanwu::amp {

enum class ScalerMode : uint8_t { off, on };
enum class ScalerSync : uint8_t { host, device };

struct GradScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  ScalerMode mode = ScalerMode::on;
  ScalerSync sync = ScalerSync::host;
};

class GradScaler {
 public:
  explicit GradScaler(const GradScalerOptions& o = {}) : o_(o), scale_(static_cast<float>(o.init_scale)) {
    WANWU_CHECK_VALUE(o.init_scale > 0 && o.growth_factor > 1 && o.backoff_factor > 0 && o.backoff_factor < 1 &&
                          o.growth_interval >= 1,
                      "GradScaler: need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1");
    WANWU_CHECK_VALUE(o.sync == ScalerSync::host || o.growth_interval <= std::numeric_limits<int32_t>::max(),
                      "GradScaler: with ScalerSync::device the growth_interval is counted in 32 bits, got ",
                      o.growth_interval);
  }
  bool enabled() const { return o_.mode == ScalerMode::on; }
  ScalerSync sync() const { return o_.sync; }
  // With ScalerSync::device, a read from the device.
  double get_scale() const {
    if (!enabled()) return 1.0;
    return on_device() ? static_cast<double>(scale_dev_.item<float>()) : static_cast<double>(scale_);
  }

  // With ScalerSync::device the scale moves to the loss's device at the first call.
  Tensor scale(const Tensor& loss) const {
    if (!enabled()) return loss;
    if (o_.sync == ScalerSync::host) return loss * static_cast<double>(scale_);
    place(loss.device());
    return loss * scale_dev_;  // an f64 loss promotes the f32 scale, as in torch
  }

  // Divides this optimizer's gradients by the scale and records whether any was inf/NaN.
  void unscale_(optim::Optimizer& opt) {
    if (!enabled()) return;
    PerOptimizer& st = per_[&opt];
    WANWU_CHECK_VALUE(!st.unscaled, "GradScaler: unscale_() was already called on this optimizer since the last update()");
    WANWU_CHECK_VALUE(!st.stepped, "GradScaler: unscale_() is being called after step()");
    std::vector<Tensor> grads;
    for (auto& g : opt.param_groups())
      for (auto& p : g.params)
        if (p.grad().defined()) grads.push_back(p.grad());
    // One pass over every gradient that checks it and divides it (the check reads the values
    // before the division, so a finite gradient that the division overflows does not count), as
    // torch's _amp_foreach_non_finite_check_and_unscale_, with inv_scale = float(1 / double(scale)).
    if (o_.sync == ScalerSync::device) {
      place(grads.empty() ? Device::cpu() : grads.front().device());
      st.flags = optim::unscale_all_(grads, scale_dev_);
      st.unscaled = true;
      return;
    }
    for (const Tensor& g : grads)
      WANWU_CHECK_T(DeviceError, active_capture(g.device()) == nullptr, "GradScaler: fp16 loss scaling with "
                    "ScalerSync::host reads its inf/NaN check on the host every step, which a graph capture on ",
                    g.device(), " cannot record (StepGraph); use ScalerSync::device");
    const double inv = static_cast<double>(static_cast<float>(1.0 / static_cast<double>(scale_)));
    // Marked unscaled first: if the check's read raises (a bad target found on the device), the
    // gradients are divided already, and a step() after the caller catches it must neither divide
    // them again nor apply them.
    st.unscaled = true;
    try {
      if (optim::scale_all_(grads, inv, optim::CheckNonfinite::yes)) st.found_inf = true;
    } catch (...) {
      st.found_inf = true;
      throw;
    }
  }

  // Unscales (if not done yet) and runs opt.step() unless a gradient was inf/NaN. Returns
  // whether the optimizer stepped; for a step gated on the device (ScalerSync::device), true: the
  // device skips it or not, and get_scale() tells afterwards (a halved scale: skipped).
  bool step(optim::Optimizer& opt) {
    if (!enabled()) {
      opt.step();
      return true;
    }
    PerOptimizer& st = per_[&opt];
    WANWU_CHECK_VALUE(!st.stepped, "GradScaler: step() was already called on this optimizer since the last update()");
    if (!st.unscaled) unscale_(opt);
    st.stepped = true;
    if (o_.sync == ScalerSync::device) {
      if (opt.try_step_unless(st.flags)) return true;
      for (const auto& [d, f] : st.flags.flags)
        WANWU_CHECK_T(DeviceError, active_capture(d) == nullptr, "GradScaler: ", opt.name(), "'s state would start "
                      "at this step, which then depends on a read of the inf/NaN check; run one step with finite "
                      "gradients before capturing (StepGraph)");
      st.found_inf = st.flags.any();
    }
    if (st.found_inf) return false;
    opt.step();
    return true;
  }

  // Adjusts the scale from this step's inf checks and starts the next step.
  void update() {
    if (!enabled()) return;
    bool found_inf = false, any = false;
    for (const auto& [o, st] : per_) {
      any = any || st.unscaled;
      found_inf = found_inf || st.found_inf;
    }
    WANWU_CHECK_VALUE(any, "GradScaler: update() without an unscale_() or step() since the last update()");
    if (o_.sync == ScalerSync::device) {
      update_on_device();
      per_.clear();
      return;
    }
    if (found_inf) {
      scale_ = static_cast<float>(static_cast<double>(scale_) * o_.backoff_factor);
      growth_tracker_ = 0;
    } else if (++growth_tracker_ == o_.growth_interval) {
      const float grown = static_cast<float>(static_cast<double>(scale_) * o_.growth_factor);
      if (std::isfinite(grown)) scale_ = grown;
      growth_tracker_ = 0;
    }
    per_.clear();
  }

  nn::StateDict state_dict() const {
    nn::StateDict sd;
    const bool dev = on_device();
    sd.set("scale", scalar_tensor(dev ? static_cast<double>(scale_dev_.item<float>()) : static_cast<double>(scale_),
                                  DType::f64));
    sd.set("growth_tracker",
           scalar_tensor(dev ? static_cast<int64_t>(tracker_dev_.item<int32_t>()) : growth_tracker_, DType::i64));
    sd.set("growth_factor", scalar_tensor(o_.growth_factor, DType::f64));
    sd.set("backoff_factor", scalar_tensor(o_.backoff_factor, DType::f64));
    sd.set("growth_interval", scalar_tensor(o_.growth_interval, DType::i64));
    return sd;
  }
  void load_state_dict(const nn::StateDict& sd) {
    scale_ = static_cast<float>(sd.at("scale").item<double>());
    growth_tracker_ = sd.at("growth_tracker").item<int64_t>();
    o_.growth_factor = sd.at("growth_factor").item<double>();
    o_.backoff_factor = sd.at("backoff_factor").item<double>();
    o_.growth_interval = sd.at("growth_interval").item<int64_t>();
    WANWU_CHECK_VALUE(o_.sync == ScalerSync::host || o_.growth_interval <= std::numeric_limits<int32_t>::max(),
                      "GradScaler: the state dict's growth_interval ", o_.growth_interval,
                      " does not fit the 32-bit count of ScalerSync::device");
    if (on_device()) {
      NoGradGuard ng;
      scale_dev_.fill_(static_cast<double>(scale_));
      tracker_dev_.fill_(growth_tracker_);
    }
  }

 private:
  struct PerOptimizer {
    bool unscaled = false, stepped = false, found_inf = false;
    optim::DeviceFlags flags;  // ScalerSync::device: each device's inf/NaN flag, left there
  };
  bool on_device() const { return scale_dev_.defined(); }
  // ScalerSync::device: the scale (f32) and clean-step count (i32), 0-dim, made on the first
  // device that needs them from the host's values.
  void place(const Device& d) const {
    if (on_device()) return;
    WANWU_CHECK_T(DeviceError, active_capture(d) == nullptr, "GradScaler: the loss scale would be made inside a "
                  "graph capture on ", d, ", which sets no value; run one step before capturing (StepGraph)");
    scale_dev_ = full({}, static_cast<double>(scale_), TensorOptions(DType::f32).device(d));
    tracker_dev_ = full({}, static_cast<double>(growth_tracker_), TensorOptions(DType::i32).device(d));
  }
  // torch's _amp_update_scale_ on the scale's device, with the flags of every optimizer summed.
  void update_on_device() {
    NoGradGuard ng;
    const Device d = scale_dev_.device();
    std::vector<Tensor> flags;
    for (const auto& [o, st] : per_)
      for (const auto& [fd, f] : st.flags.flags) flags.push_back(fd == d ? f : f.to(d));
    Tensor found = flags.size() == 1 ? flags[0] : zeros({1}, TensorOptions(DType::f32).device(d));
    if (flags.size() > 1)
      for (const Tensor& f : flags) found.add_(f);
    AmpScaleParams p;
    p.growth_factor = o_.growth_factor;
    p.backoff_factor = o_.backoff_factor;
    p.growth_interval = static_cast<int32_t>(o_.growth_interval);
    backend_for(d).amp_update_scale(scale_dev_, tracker_dev_, found, p);
    scale_dev_.bump_version();
    tracker_dev_.bump_version();
  }
  GradScalerOptions o_;
  float scale_;  // f32, as PyTorch keeps it; with ScalerSync::device, the value until place()
  int64_t growth_tracker_ = 0;
  mutable Tensor scale_dev_, tracker_dev_;
  std::unordered_map<const optim::Optimizer*, PerOptimizer> per_;
};

}  // namespace wanwu::amp
