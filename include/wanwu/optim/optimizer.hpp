// Optimizers hold parameter groups, each with its own hyper-parameters (so a backbone can train
// at a tenth of the head's learning rate, and biases and norms can skip weight decay), plus
// per-parameter state. The group is one flat struct that every optimizer and schedule reads: a
// schedule sets `lr` (and OneCycle the momentum or beta1) without knowing which optimizer runs.
// state_dict() is a flat StateDict (hyper-parameters as 0-dim f64 tensors, state tensors by
// parameter index), so a checkpoint stores it next to the model in one file.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../nn/module.hpp"
#include "foreach.hpp"

namespace wanwu::optim {

enum class Nesterov : uint8_t { no, yes };
enum class AmsGrad : uint8_t { no, yes };

struct ParamGroup {
  std::vector<Tensor> params;
  std::string name;  // a label for logs ("backbone", "head", "no_decay")
  double lr = 1e-3;
  std::optional<double> initial_lr;  // set by the first schedule attached (PyTorch's initial_lr)
  double weight_decay = 0.0;
  // SGD
  double momentum = 0.0, dampening = 0.0;
  Nesterov nesterov = Nesterov::no;
  // Adam / AdamW
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  AmsGrad amsgrad = AmsGrad::no;
};

// The parameters of a step split into backend calls: one per device and key (what the step
// parameters depend on: Adam's step count, SGD's first-step flag), in order of first appearance.
template <class Key, class Entry>
struct StepBatches {
  struct Batch {
    Device device;
    Key key;
    std::vector<Entry> tensors;
  };
  std::vector<Batch> batches;
  void add(const Device& device, const Key& key, Entry e) {
    auto it = std::find_if(batches.begin(), batches.end(),
                           [&](const Batch& b) { return b.device == device && b.key == key; });
    if (it == batches.end()) it = batches.insert(batches.end(), Batch{device, key, {}});
    it->tensors.push_back(std::move(e));
  }
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  virtual std::string name() const = 0;

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  void add_param_group(ParamGroup g) {
    for (const auto& p : g.params) {
      WANWU_CHECK_VALUE(p.defined() && p.is_floating_point(), name(), ": parameters must be floating tensors");
      WANWU_CHECK_VALUE(p.is_leaf(), name(), ": can't optimize a non-leaf tensor (shape ", p.shape(), ")");
      for (const auto& q : groups_)
        for (const auto& r : q.params)
          WANWU_CHECK_VALUE(!r.is_same(p), name(), ": a parameter appears in more than one group");
    }
    groups_.push_back(std::move(g));
  }

  // A gated step (GradScaler with ScalerSync::device; PyTorch's fused optimizers given found_inf):
  // the step is queued on every device, and each device's kernels skip it where its flag in
  // `found_inf` is nonzero, so the host never waits to read the flags. Only an optimizer whose
  // can_gate() is true takes one.
  void step_unless(const DeviceFlags& found_inf) {
    const bool stepped = try_step_unless(found_inf);
    WANWU_CHECK_VALUE(stepped, name(), ": this step cannot be gated on the device (",
                      "a parameter's state would start at it, or the optimizer does not gate its steps); read the "
                      "flags on the host and call step() when none is set");
  }
  // step_unless when can_gate(); otherwise no step and false (GradScaler then reads the flags), so
  // a caller that has both paths asks can_gate() once.
  bool try_step_unless(const DeviceFlags& found_inf) {
    if (!can_gate()) return false;
    struct Reset {
      const DeviceFlags*& gate;
      ~Reset() { gate = nullptr; }
    } reset{gate_};
    gate_ = &found_inf;
    step();
    return true;
  }
  // Whether the next step can be gated: every parameter that requires a gradient already has the
  // state the optimizer keeps (a state that starts at a step depends on whether that step is
  // taken: SGD's momentum buffer copies the first gradient, Adam counts steps from it). False for
  // an optimizer that does not read the flags (the default).
  virtual bool can_gate() const { return false; }

  // Gradients set to none (PyTorch's default set_to_none=True).
  void zero_grad() {
    for (auto& g : groups_)
      for (auto& p : g.params) p.set_grad(Tensor());
  }

  // Hyper-parameters and state, flat: "param_groups.<g>.<name>" and "state.<i>.<name>" with i
  // the parameter's position across groups (PyTorch numbers state the same way).
  nn::StateDict state_dict() const {
    nn::StateDict sd;
    const SavedStep saved = saved_steps();
    auto num = [](double v) { return scalar_tensor(v, DType::f64); };
    int64_t idx = 0;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      const auto& g = groups_[gi];
      const std::string p = "param_groups." + std::to_string(gi) + ".";
      sd.set(p + "lr", num(g.lr));
      if (g.initial_lr) sd.set(p + "initial_lr", num(*g.initial_lr));
      sd.set(p + "weight_decay", num(g.weight_decay));
      sd.set(p + "momentum", num(g.momentum));
      sd.set(p + "dampening", num(g.dampening));
      sd.set(p + "beta1", num(g.beta1));
      sd.set(p + "beta2", num(g.beta2));
      sd.set(p + "eps", num(g.eps));
      for (const auto& param : g.params) {
        auto it = state_.find(param.impl());
        if (it != state_.end()) {
          const std::string s = "state." + std::to_string(idx) + ".";
          for (const auto& [k, t] : it->second.tensors) sd.set(s + k, t.detach());
          sd.set(s + "step", scalar_tensor(saved ? saved(param, it->second.step) : it->second.step, DType::i64));
        }
        ++idx;
      }
    }
    return sd;
  }

  void load_state_dict(const nn::StateDict& sd) {
    NoGradGuard ng;
    int64_t idx = 0;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      auto& g = groups_[gi];
      const std::string p = "param_groups." + std::to_string(gi) + ".";
      WANWU_CHECK_T(ValueError, sd.contains(p + "lr"), name(), ": the state dict has no parameter group ", gi,
                    " (it was saved with ", count_groups(sd), " groups, this optimizer has ", groups_.size(), ")");
      g.lr = sd.at(p + "lr").item<double>();
      if (sd.contains(p + "initial_lr")) g.initial_lr = sd.at(p + "initial_lr").item<double>();
      g.weight_decay = sd.at(p + "weight_decay").item<double>();
      g.momentum = sd.at(p + "momentum").item<double>();
      g.dampening = sd.at(p + "dampening").item<double>();
      g.beta1 = sd.at(p + "beta1").item<double>();
      g.beta2 = sd.at(p + "beta2").item<double>();
      g.eps = sd.at(p + "eps").item<double>();
      for (const auto& param : g.params) {
        const nn::StateDict st = sd.sub("state." + std::to_string(idx));
        ++idx;
        if (st.size() == 0) {
          state_.erase(param.impl());
          continue;
        }
        ParamState ps;
        for (const auto& [k, t] : st) {
          if (k == "step") {
            ps.step = t.item<int64_t>();
            continue;
          }
          WANWU_CHECK_SHAPE(t.shape() == param.shape(), name(), ": state '", k, "' of parameter ", idx - 1,
                            " has shape ", t.shape(), ", the parameter ", param.shape());
          ps.tensors[k] = t.to(param.device(), param.dtype()).clone();
        }
        state_[param.impl()] = std::move(ps);
      }
    }
    state_loaded();
  }

 protected:
  struct ParamState {
    std::map<std::string, Tensor> tensors;
    int64_t step = 0;
  };
  // A parameter's state, moved to the parameter's device and dtype when the model was moved since
  // the last step (Module::to keeps the parameter's handle, which keys the state), as
  // load_state_dict places it: the step kernels read state and parameter through one backend and
  // one dtype, and a CPU buffer handed to a CUDA kernel is an illegal address.
  ParamState& state_for(const Tensor& p) {
    ParamState& st = state_[p.impl()];
    for (auto& [name, t] : st.tensors)
      if (t.device() != p.device() || t.dtype() != p.dtype()) t = t.to(p.device(), p.dtype());
    return st;
  }
  bool has_state(const Tensor& p) const { return state_.count(p.impl()) > 0; }
  // A parameter's state under `key` exists (for can_gate), without moving it.
  bool has_state_tensor(const Tensor& p, const char* key) const {
    auto it = state_.find(p.impl());
    return it != state_.end() && it->second.tensors.count(key) > 0;
  }
  // The step counts state_dict() saves, from a parameter and its host count; empty: the host
  // counts. Adam corrects its host counts for the gated steps the device skipped, which it reads
  // once per device here rather than once per parameter.
  using SavedStep = std::function<int64_t(const Tensor& param, int64_t host_step)>;
  virtual SavedStep saved_steps() const { return {}; }
  // Called at the end of load_state_dict().
  virtual void state_loaded() {}
  // Inside step_unless: the address of the flag that gates the step on `d`; null in step().
  const float* skip_flag(const Device& d) const {
    if (!gate_) return nullptr;
    const Tensor* f = gate_->find(d);
    WANWU_CHECK_T(DeviceError, f != nullptr, name(), ": a gated step has no inf/NaN flag for the parameters on ", d);
    return static_cast<const float*>(f->data_ptr());
  }
  const DeviceFlags* gate() const { return gate_; }
  std::vector<ParamGroup> groups_;

 private:
  static size_t count_groups(const nn::StateDict& sd) {
    size_t n = 0;
    while (sd.contains("param_groups." + std::to_string(n) + ".lr")) ++n;
    return n;
  }
  std::unordered_map<const TensorImpl*, ParamState> state_;
  const DeviceFlags* gate_ = nullptr;
};

// Splits a module's parameters into the usual two fine-tuning groups: with weight decay, and
// without (biases and every 1-D parameter: norm scales and shifts), as timm and torchvision's
// reference scripts do.
inline std::vector<ParamGroup> decay_groups(const nn::Module& m, double weight_decay) {
  ParamGroup decay, no_decay;
  decay.name = "decay";
  decay.weight_decay = weight_decay;
  no_decay.name = "no_decay";
  no_decay.weight_decay = 0.0;
  for (const auto& [n, p] : m.named_parameters()) {
    if (!p.requires_grad()) continue;
    const bool is_bias = n.size() >= 4 && n.compare(n.size() - 4, 4, "bias") == 0;
    (p.dim() <= 1 || is_bias ? no_decay : decay).params.push_back(p);
  }
  std::vector<ParamGroup> out;
  if (!decay.params.empty()) out.push_back(decay);
  if (!no_decay.params.empty()) out.push_back(no_decay);
  return out;
}

}  // namespace wanwu::optim
