// Adam and AdamW (decoupled weight decay), with amsgrad, step for step PyTorch's torch.optim.Adam
// and AdamW (their single-tensor code path): bias corrections computed in double on the host, the
// update one fused pass per parameter. The parameters of a group that share a device and a step
// count go to the backend together (adam_step_multi: a few multi-tensor launches on CUDA for a
// whole model, not one per parameter).
#pragma once

#include <cmath>

#include "../ops/conv.hpp"
#include "optimizer.hpp"

namespace wanwu::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // Adam: 0; AdamW's default is 1e-2 (see AdamW)
  AmsGrad amsgrad = AmsGrad::no;
  ParamGroup group(std::vector<Tensor> params, std::string name = "") const {
    ParamGroup g;
    g.params = std::move(params);
    g.name = std::move(name);
    g.lr = lr;
    g.beta1 = beta1;
    g.beta2 = beta2;
    g.eps = eps;
    g.weight_decay = weight_decay;
    g.amsgrad = amsgrad;
    return g;
  }
};

enum class WeightDecay : uint8_t { coupled, decoupled };

class AdamBase : public Optimizer {
 public:
  AdamBase(std::vector<ParamGroup> groups, WeightDecay wd) : wd_(wd) {
    for (auto& g : groups) {
      WANWU_CHECK_VALUE(g.lr >= 0 && g.eps >= 0 && g.weight_decay >= 0, name(), ": invalid hyper-parameters in group '",
                        g.name, "': lr ", g.lr, ", eps ", g.eps, ", weight_decay ", g.weight_decay);
      WANWU_CHECK_VALUE(g.beta1 >= 0 && g.beta1 < 1 && g.beta2 >= 0 && g.beta2 < 1, name(),
                        ": betas must be in [0, 1), got (", g.beta1, ", ", g.beta2, ")");
      add_param_group(std::move(g));
    }
  }
  std::string name() const override { return wd_ == WeightDecay::decoupled ? "AdamW" : "Adam"; }

  void step() override {
    NoGradGuard ng;
    for (auto& g : groups_) {
      StepBatches<int64_t, AdamTensors> batches;  // by step count
      for (auto& p : g.params) {
        const Tensor grad = p.grad();
        if (!grad.defined()) continue;
        WANWU_CHECK_VALUE(p.is_contiguous(), name(), ": parameters must be contiguous, got strides ", p.strides());
        ParamState& st = state_for(p);
        const bool capturing = active_capture(p.device()) != nullptr;
        WANWU_CHECK_VALUE(!capturing || !st.tensors.empty(), name(), ": a parameter's state would be created inside a "
                          "graph capture, and every replay would reset it; run one step before capturing it "
                          "(StepGraph::capture)");
        if (st.tensors.empty()) {
          st.tensors["exp_avg"] = zeros_like(p);
          st.tensors["exp_avg_sq"] = zeros_like(p);
        }
        if (g.amsgrad == AmsGrad::yes && !st.tensors.count("max_exp_avg_sq"))
          st.tensors["max_exp_avg_sq"] = zeros_like(p);
        if (!capturing) st.step += 1;  // a capture's step counts advance at each replay (live_params)
        batches.add(p.device(), capturing ? st.step + 1 : st.step,
                    AdamTensors{p, detail::contiguous_no_grad(grad), st.tensors["exp_avg"], st.tensors["exp_avg_sq"],
                                g.amsgrad == AmsGrad::yes ? st.tensors["max_exp_avg_sq"] : Tensor()});
      }
      for (const auto& b : batches.batches) {
        AdamStepParams s = params_of(g, b.key);
        if (GraphCapture* cap = active_capture(b.device)) s.live = live_params(*cap, g, b.tensors);
        backend_for(b.device).adam_step_multi(b.tensors, s);
        for (const AdamTensors& t : b.tensors) t.param.bump_version();
      }
    }
  }

 private:
  AdamStepParams params_of(const ParamGroup& g, int64_t step_count) const {
    AdamStepParams s;
    s.lr = g.lr;
    s.beta1 = g.beta1;
    s.beta2 = g.beta2;
    s.eps = g.eps;
    s.weight_decay = g.weight_decay;
    s.decoupled = wd_ == WeightDecay::decoupled;
    s.amsgrad = g.amsgrad == AmsGrad::yes;
    const double step = static_cast<double>(step_count);
    s.step_size = g.lr / (1.0 - std::pow(g.beta1, step));
    s.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(g.beta2, step));
    return s;
  }
  // Inside a graph capture: each replay counts the batch's parameters' step, as the eager step
  // does, and its kernels read the hyper-parameters and bias corrections of that step.
  const double* live_params(GraphCapture& cap, const ParamGroup& g, const std::vector<AdamTensors>& batch) {
    const size_t gi = static_cast<size_t>(&g - groups_.data());
    std::vector<Tensor> params;
    for (const AdamTensors& t : batch) params.push_back(t.param);
    return cap.live_values(
        kAdamLive,
        [this, gi, params](double* v) {
          int64_t step = 0;
          for (const Tensor& p : params) step = state_for(p).step += 1;
          adam_live_store(params_of(groups_.at(gi), step), v);
        },
        wd_ == WeightDecay::decoupled ? "AdamW" : "Adam");
  }

  WeightDecay wd_;
};

class Adam : public AdamBase {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& o)
      : AdamBase(std::vector<ParamGroup>{o.group(std::move(params))}, WeightDecay::coupled) {}
  explicit Adam(std::vector<ParamGroup> groups) : AdamBase(std::move(groups), WeightDecay::coupled) {}
};

// AdamW: p <- p * (1 - lr * weight_decay) before the Adam update (Loshchilov & Hutter, 2019).
class AdamW : public AdamBase {
 public:
  static AdamOptions defaults() {
    AdamOptions o;
    o.weight_decay = 1e-2;
    return o;
  }
  AdamW(std::vector<Tensor> params, const AdamOptions& o = defaults())
      : AdamBase(std::vector<ParamGroup>{o.group(std::move(params))}, WeightDecay::decoupled) {}
  explicit AdamW(std::vector<ParamGroup> groups) : AdamBase(std::move(groups), WeightDecay::decoupled) {}
};

}  // namespace wanwu::optim
