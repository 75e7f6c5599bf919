// An exponential moving average of a model's weights (as timm's ModelEmaV2): after each optimizer
// step, ema = decay * ema + (1 - decay) * weight for parameters, buffers copied as they are. With
// warm-up, the decay starts small — min(decay, (1 + n) / (10 + n)) after n updates — so early
// averages are not dominated by the random initial weights. The EMA is kept as a StateDict, which
// can be copied into a model of the same architecture for evaluation or saved in a checkpoint.
#pragma once

#include <algorithm>
#include <set>

#include "../nn/module.hpp"
#include "../ops/elementwise.hpp"

namespace wanwu::optim {

enum class EmaWarmup : uint8_t { no, yes };

class ModelEma {
 public:
  ModelEma(const nn::Module& model, double decay = 0.9999, EmaWarmup warmup = EmaWarmup::no)
      : decay_(decay), warmup_(warmup) {
    WANWU_CHECK_VALUE(decay >= 0 && decay <= 1, "ModelEma: decay must be in [0, 1], got ", decay);
    NoGradGuard ng;
    for (const auto& [n, p] : model.named_parameters()) params_.insert(n);
    for (const auto& [n, t] : model.state_dict()) shadow_.set(n, t.detach().clone());
  }

  double current_decay() const {
    if (warmup_ == EmaWarmup::no) return decay_;
    const double n = static_cast<double>(updates_);
    return std::min(decay_, (1.0 + n) / (10.0 + n));
  }

  void update(const nn::Module& model) {
    NoGradGuard ng;
    const double d = current_decay();
    for (const auto& [n, t] : model.state_dict()) {
      WANWU_CHECK_T(ValueError, shadow_.contains(n), "ModelEma: the model has an entry '", n,
                    "' the average does not (a different architecture?)");
      Tensor e = shadow_.at(n);
      if (params_.count(n) && t.is_floating_point()) {
        e.mul_(d).add_(t, 1.0 - d);
      } else {
        e.copy_(t);
      }
    }
    ++updates_;
  }

  // Loads the averaged weights into `model` (same architecture).
  void copy_to(nn::Module& model) const { model.load_state_dict(shadow_); }
  const nn::StateDict& weights() const { return shadow_; }
  int64_t updates() const { return updates_; }

  nn::StateDict state_dict() const {
    nn::StateDict sd;
    sd.merge("weights", shadow_);
    sd.set("updates", scalar_tensor(updates_, DType::i64));
    return sd;
  }
  void load_state_dict(const nn::StateDict& sd) {
    NoGradGuard ng;
    const nn::StateDict w = sd.sub("weights");
    for (const auto& [n, t] : shadow_) {
      WANWU_CHECK_T(ValueError, w.contains(n), "ModelEma: the state dict has no average for '", n, "'");
      Tensor dst = t;
      dst.copy_(w.at(n));
    }
    updates_ = sd.at("updates").item<int64_t>();
  }

 private:
  double decay_;
  EmaWarmup warmup_;
  std::set<std::string> params_;
  nn::StateDict shadow_;
  int64_t updates_ = 0;
};

}  // namespace wanwu::optim
