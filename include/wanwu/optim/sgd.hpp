// SGD with momentum, dampening, Nesterov and (coupled) weight decay, step for step PyTorch's
// torch.optim.SGD. The update is one fused pass per parameter; a group's parameters on one device
// go to the backend together (sgd_step_multi: multi-tensor launches on CUDA), apart from those
// whose momentum buffer starts this step. Under a GradScaler that keeps its scale on the device,
// the step is gated there (Optimizer::step_unless): the kernels skip it where a gradient was inf.
#pragma once

#include "../ops/conv.hpp"
#include "optimizer.hpp"

namespace wanwu::optim {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  Nesterov nesterov = Nesterov::no;
  // A group with these hyper-parameters (adjust fields afterwards for per-group values).
  ParamGroup group(std::vector<Tensor> params, std::string name = "") const {
    ParamGroup g;
    g.params = std::move(params);
    g.name = std::move(name);
    g.lr = lr;
    g.momentum = momentum;
    g.dampening = dampening;
    g.weight_decay = weight_decay;
    g.nesterov = nesterov;
    return g;
  }
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& o) : SGD(std::vector<ParamGroup>{o.group(std::move(params))}) {}
  explicit SGD(std::vector<ParamGroup> groups) {
    for (auto& g : groups) {
      WANWU_CHECK_VALUE(g.lr >= 0 && g.momentum >= 0 && g.weight_decay >= 0, "SGD: invalid hyper-parameters in group '",
                        g.name, "': lr ", g.lr, ", momentum ", g.momentum, ", weight_decay ", g.weight_decay);
      WANWU_CHECK_VALUE(g.nesterov == Nesterov::no || (g.momentum > 0 && g.dampening == 0),
                        "SGD: Nesterov momentum requires a momentum and zero dampening");
      add_param_group(std::move(g));
    }
  }
  std::string name() const override { return "SGD"; }
  // Gated steps need every momentum buffer to exist: the first step sets it to the gradient, and a
  // step the device skips must not count as that first step.
  bool can_gate() const override {
    for (const auto& g : groups_)
      if (g.momentum != 0.0)
        for (const auto& p : g.params)
          if (p.requires_grad() && !has_state_tensor(p, "momentum_buffer")) return false;
    return true;
  }

  void step() override {
    NoGradGuard ng;
    for (auto& g : groups_) {
      StepBatches<bool, SgdTensors> batches;  // by whether the momentum buffer starts now
      for (auto& p : g.params) {
        const Tensor grad = p.grad();
        if (!grad.defined()) continue;
        WANWU_CHECK_VALUE(p.is_contiguous(), "SGD: parameters must be contiguous, got strides ", p.strides());
        Tensor buf;
        bool init = false;
        if (g.momentum != 0.0) {
          ParamState& st = state_for(p);
          auto it = st.tensors.find("momentum_buffer");
          if (it == st.tensors.end()) {
            // checked before the buffer exists: a failed capture must leave no state behind
            WANWU_CHECK_VALUE(active_capture(p.device()) == nullptr, "SGD: momentum buffers would start inside a "
                              "graph capture, and every replay would start them again; run one step before "
                              "capturing it (StepGraph::capture)");
            buf = empty_like(p);
            st.tensors["momentum_buffer"] = buf;
            init = true;
          } else {
            buf = it->second;
          }
        }
        batches.add(p.device(), init, SgdTensors{p, detail::contiguous_no_grad(grad), buf});
      }
      for (const auto& b : batches.batches) {
        SgdStepParams s = params_of(g);
        s.init_buffer = b.key;
        s.skip = skip_flag(b.device);
        if (GraphCapture* cap = active_capture(b.device)) s.live = live_params(*cap, g);
        backend_for(b.device).sgd_step_multi(b.tensors, s);
        for (const SgdTensors& t : b.tensors) t.param.bump_version();
      }
    }
  }

 private:
  static SgdStepParams params_of(const ParamGroup& g) {
    SgdStepParams s;
    s.lr = g.lr;
    s.momentum = g.momentum;
    s.dampening = g.dampening;
    s.weight_decay = g.weight_decay;
    s.nesterov = g.nesterov == Nesterov::yes;
    return s;
  }
  // Inside a graph capture: the hyper-parameters each replay reads, taken from the group as it is
  // at that replay (a schedule changes lr between replays). Which tensors the step touches is
  // fixed by the capture, so a momentum buffer cannot start in one and momentum cannot turn on.
  const double* live_params(GraphCapture& cap, const ParamGroup& g) {
    const size_t gi = static_cast<size_t>(&g - groups_.data());
    const bool momentum = g.momentum != 0.0;
    return cap.live_values(
        kSgdLive,
        [this, gi, momentum](double* v) {
          const ParamGroup& now = groups_.at(gi);
          WANWU_CHECK_VALUE((now.momentum != 0.0) == momentum, "SGD: group '", now.name, "' turned momentum ",
                            momentum ? "off" : "on", " after its step was captured into a graph; capture it again");
          sgd_live_store(params_of(now), v);
        },
        "SGD");
  }
};

}  // namespace wanwu::optim
