// Dynamic loss scaling for f16 training, as torch.cuda.amp.GradScaler (DESIGN D12): the loss is
// multiplied by a scale (2^16 to start) so small f16 gradients do not flush to zero; before the
// optimizer step the gradients are divided by it and checked; a step with any inf/NaN gradient is
// skipped and the scale halved; after growth_interval (2000) clean steps the scale doubles.
// Call order per step: scale(loss).backward(); [unscale_(opt); clip...]; step(opt); update().
#pragma once

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../optim/foreach.hpp"
#include "../optim/optimizer.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/reduce.hpp"

namespace wanwu::amp {

enum class ScalerMode : uint8_t { off, on };

struct GradScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  ScalerMode mode = ScalerMode::on;
};

class GradScaler {
 public:
  explicit GradScaler(const GradScalerOptions& o = {}) : o_(o), scale_(static_cast<float>(o.init_scale)) {
    WANWU_CHECK_VALUE(o.init_scale > 0 && o.growth_factor > 1 && o.backoff_factor > 0 && o.backoff_factor < 1 &&
                          o.growth_interval >= 1,
                      "GradScaler: need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1");
  }
  bool enabled() const { return o_.mode == ScalerMode::on; }
  double get_scale() const { return enabled() ? static_cast<double>(scale_) : 1.0; }

  Tensor scale(const Tensor& loss) const { return enabled() ? loss * static_cast<double>(scale_) : loss; }

  // Divides this optimizer's gradients by the scale and records whether any was inf/NaN.
  void unscale_(optim::Optimizer& opt) {
    if (!enabled()) return;
    PerOptimizer& st = per_[&opt];
    WANWU_CHECK_VALUE(!st.unscaled, "GradScaler: unscale_() was already called on this optimizer since the last update()");
    WANWU_CHECK_VALUE(!st.stepped, "GradScaler: unscale_() is being called after step()");
    // PyTorch: inv_scale = float(1 / double(scale))
    const double inv = static_cast<double>(static_cast<float>(1.0 / static_cast<double>(scale_)));
    // One pass over every gradient that checks it and divides it (the check reads the values
    // before the division, so a finite gradient that the division overflows does not count), and
    // one read of the flag per device at the end, as torch's _amp_foreach_non_finite_check_and_unscale_.
    std::vector<Tensor> grads;
    for (auto& g : opt.param_groups())
      for (auto& p : g.params)
        if (p.grad().defined()) grads.push_back(p.grad());
    for (const Tensor& g : grads)
      WANWU_CHECK_T(DeviceError, active_capture(g.device()) == nullptr, "GradScaler: fp16 loss scaling reads its "
                    "inf/NaN check on the host every step, which a graph capture on ", g.device(),
                    " cannot record (StepGraph); train such a step without a graph, or in bf16 or f32");
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
  // whether the optimizer stepped.
  bool step(optim::Optimizer& opt) {
    if (!enabled()) {
      opt.step();
      return true;
    }
    PerOptimizer& st = per_[&opt];
    WANWU_CHECK_VALUE(!st.stepped, "GradScaler: step() was already called on this optimizer since the last update()");
    if (!st.unscaled) unscale_(opt);
    st.stepped = true;
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
    sd.set("scale", scalar_tensor(static_cast<double>(scale_), DType::f64));
    sd.set("growth_tracker", scalar_tensor(growth_tracker_, DType::i64));
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
  }

 private:
  struct PerOptimizer {
    bool unscaled = false, stepped = false, found_inf = false;
  };
  GradScalerOptions o_;
  float scale_;  // f32, as PyTorch keeps it
  int64_t growth_tracker_ = 0;
  std::unordered_map<const optim::Optimizer*, PerOptimizer> per_;
};

}  // namespace wanwu::amp
