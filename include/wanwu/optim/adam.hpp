// Adam and AdamW (decoupled weight decay), with amsgrad, step for step PyTorch's torch.optim.Adam
// and AdamW (their single-tensor code path): bias corrections computed in double on the host, the
// update one fused pass per parameter. The parameters of a group that share a device and a step
// count go to the backend together (adam_step_multi: a few multi-tensor launches on CUDA for a
// whole model, not one per parameter).
//
// Gated steps (Optimizer::step_unless, under a GradScaler that keeps its scale on the device) may
// be skipped on the device without the host knowing, yet the bias corrections depend on how many
// steps were taken. So each device keeps a count of the gated steps it skipped, and the kernels
// compute the corrections of step `host count - skipped` there (as torch's capturable Adam keeps
// its step counts on the device). The host settles the counts — one read — only when it must:
// before a step that is not gated, and before a gated step that updates another set of parameters
// than the gated steps before it (the skipped count applies to that set); state_dict() reads the
// counts, once per device, without settling them.
#pragma once

#include <algorithm>
#include <cmath>
#include <unordered_set>

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
  bool can_gate() const override {
    for (const auto& g : groups_)
      for (const auto& p : g.params)
        if (p.requires_grad() && !has_state_tensor(p, "exp_avg")) return false;
    return true;
  }

  void step() override {
    NoGradGuard ng;
    track_skips();
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
          skip_count(p.device());  // made here, outside any capture, for the gated steps to come
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
        if ((s.skip = skip_flag(b.device))) s.skipped = static_cast<const float*>(skip_count(b.device).data_ptr());
        backend_for(b.device).adam_step_multi(b.tensors, s);
        for (const AdamTensors& t : b.tensors) t.param.bump_version();
      }
    }
    if (gate())  // after every kernel of the step has read the counts
      for (const auto& [d, flag] : gate()->flags)
        if (Tensor* c = find_count(d)) c->add_(flag);
  }

 protected:
  SavedStep saved_steps() const override {
    if (!unsettled_) return {};
    std::vector<std::pair<Device, int64_t>> skipped;  // one read per device
    for (const auto& [d, c] : skipped_) skipped.emplace_back(d, static_cast<int64_t>(c.item<float>()));
    std::unordered_set<const TensorImpl*> gated;
    for (const Tensor& q : gated_) gated.insert(q.impl());
    return [skipped = std::move(skipped), gated = std::move(gated)](const Tensor& p, int64_t step) {
      if (gated.count(p.impl()))
        for (const auto& [d, n] : skipped)
          if (d == p.device()) return step - n;
      return step;
    };
  }
  void state_loaded() override {  // the loaded counts are the steps taken
    for (auto& [d, c] : skipped_) c.zero_();
    gated_.clear();
    unsettled_ = false;
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
    adam_bias_corrections(s, static_cast<double>(step_count));
    return s;
  }
  // The device's count of skipped gated steps (f32, one element), made at zero when missing.
  // Counts are never replaced, only zeroed in place: a captured graph holds their addresses.
  Tensor& skip_count(const Device& d) {
    if (Tensor* c = find_count(d)) return *c;
    WANWU_CHECK_T(DeviceError, active_capture(d) == nullptr, name(), ": the count of skipped steps on ", d,
                  " would be made inside a graph capture, which sets no value; run one step before capturing");
    skipped_.emplace_back(d, zeros({1}, TensorOptions(DType::f32).device(d)));
    return skipped_.back().second;
  }
  Tensor* find_count(const Device& d) {
    for (auto& [dev, c] : skipped_)
      if (dev == d) return &c;
    return nullptr;
  }
  const Tensor* find_count(const Device& d) const { return const_cast<AdamBase*>(this)->find_count(d); }
  // Keeps the skipped counts meaningful for this step (see the header): a gated step over the same
  // parameters as the gated steps since the last settling goes on counting; anything else settles.
  void track_skips() {
    const bool same = gate() && unsettled_ && same_as_gated();
    if (unsettled_ && !same) {
      for (auto& [d, c] : skipped_)
        WANWU_CHECK_T(DeviceError, active_capture(d) == nullptr, name(), ": a captured step would read the count "
                      "of skipped steps on the host (the gated steps before it updated other parameters, or it is "
                      "not gated); capture a step like the ones before it");
      for (auto& [d, c] : skipped_) {
        const int64_t n = static_cast<int64_t>(c.item<float>());
        if (n == 0) continue;
        for (const Tensor& p : gated_)
          if (p.device() == d) state_for(p).step -= n;
        c.zero_();
      }
      unsettled_ = false;
    }
    if (gate()) {
      if (!same) {
        gated_.clear();
        for (const auto& g : groups_)
          for (const auto& p : g.params)
            if (p.grad().defined()) gated_.push_back(p);
      }
      unsettled_ = true;
    }
  }
  // Whether this step updates the parameters of the gated steps before it, in the same order
  // (compared in place: the list is rebuilt only when it changes).
  bool same_as_gated() const {
    size_t i = 0;
    for (const auto& g : groups_)
      for (const auto& p : g.params)
        if (p.grad().defined() && (i >= gated_.size() || !gated_[i++].is_same(p))) return false;
    return i == gated_.size();
  }

  std::vector<std::pair<Device, Tensor>> skipped_;
  std::vector<Tensor> gated_;  // the parameters of the gated steps since the counts were settled
  bool unsettled_ = false;     // gated steps happened since then
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
