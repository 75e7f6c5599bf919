// nn::Module: a tree of named parameters, buffers and child modules, named exactly as PyTorch
// names them ("layer1.0.bn1.running_mean"), so torchvision state dicts load as they are
// (DESIGN D9). Modules are held by shared_ptr; a layer keeps Tensor handles to its registered
// parameters, and moving a module to another device or dtype swaps the data inside those same
// handles (as PyTorch's `param.data = ...`), so every handle stays valid.
//
// StateDict is an ordered name -> tensor list: modules, optimizers, schedules and the grad scaler
// all save into one, which is what a checkpoint writes (one safetensors file).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../ops/copy.hpp"
#include "../ops/options.hpp"

namespace wanwu::nn {

// Ordered name -> tensor map (insertion order, unique names).
class StateDict {
 public:
  void set(const std::string& name, const Tensor& t) {
    auto it = index_.find(name);
    if (it != index_.end()) {
      items_[it->second].second = t;
      return;
    }
    index_[name] = items_.size();
    items_.emplace_back(name, t);
  }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const Tensor& at(const std::string& name) const {
    auto it = index_.find(name);
    WANWU_CHECK_T(ValueError, it != index_.end(), "state dict has no entry '", name, "'");
    return items_[it->second].second;
  }
  const std::vector<std::pair<std::string, Tensor>>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }
  // Entries under `prefix.` with the prefix removed; and the reverse.
  StateDict sub(const std::string& prefix) const {
    StateDict out;
    const std::string p = prefix + ".";
    for (const auto& [k, v] : items_)
      if (k.compare(0, p.size(), p) == 0) out.set(k.substr(p.size()), v);
    return out;
  }
  void merge(const std::string& prefix, const StateDict& other) {
    for (const auto& [k, v] : other) set(prefix.empty() ? k : prefix + "." + k, v);
  }

 private:
  std::vector<std::pair<std::string, Tensor>> items_;
  std::map<std::string, size_t> index_;
};

// What load_state_dict found; with Strict::yes any problem throws, listing all of them.
struct LoadReport {
  std::vector<std::string> missing_keys, unexpected_keys, shape_mismatches;
  bool ok() const { return missing_keys.empty() && unexpected_keys.empty() && shape_mismatches.empty(); }
  std::string str() const {
    std::ostringstream os;
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      os << "\n  " << what << " (" << v.size() << "):";
      for (size_t i = 0; i < v.size() && i < 20; ++i) os << (i ? ", " : " ") << v[i];
      if (v.size() > 20) os << ", ... (" << v.size() - 20 << " more)";
    };
    list("missing keys", missing_keys);
    list("unexpected keys", unexpected_keys);
    list("shape mismatches", shape_mismatches);
    return os.str();
  }
};

enum class Strict : uint8_t { no, yes };
enum class Recurse : uint8_t { no, yes };
enum class Persistent : uint8_t { no, yes };

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The single-input forward every layer implements (containers chain it).
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // A short description for printing, e.g. "Linear(in_features=512, out_features=10, bias=true)".
  virtual std::string extra_repr() const { return ""; }
  virtual std::string type_name() const { return "Module"; }

  // ---- registration ----
  Tensor register_parameter(const std::string& name, Tensor t) {
    check_name(name);
    if (t.defined() && !t.requires_grad()) t.requires_grad_(true);
    params_.emplace_back(name, t);
    return t;
  }
  Tensor register_buffer(const std::string& name, Tensor t, Persistent persistent = Persistent::yes) {
    check_name(name);
    buffers_.emplace_back(name, t);
    if (persistent == Persistent::no) non_persistent_.insert(name);
    return t;
  }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_name(name);
    WANWU_CHECK_VALUE(m != nullptr, "register_module('", name, "'): null module");
    children_.emplace_back(name, m);
    return m;
  }
  // Replaces a registered child (e.g. a new classifier head), keeping its position and name.
  void replace_module(const std::string& name, std::shared_ptr<Module> m) {
    for (auto& [n, c] : children_)
      if (n == name) {
        c = std::move(m);
        return;
      }
    throw ValueError("replace_module: " + type_name() + " has no child '" + name + "'");
  }
  std::shared_ptr<Module> child(const std::string& name) const {
    for (const auto& [n, c] : children_)
      if (n == name) return c;
    return nullptr;
  }

  // ---- traversal (registration order, as PyTorch) ----
  std::vector<std::pair<std::string, Tensor>> named_parameters(Recurse r = Recurse::yes) const {
    std::vector<std::pair<std::string, Tensor>> out;
    collect("", r, [&](const std::string& prefix, const Module& m) {
      for (const auto& [n, t] : m.params_)
        if (t.defined()) out.emplace_back(prefix + n, t);
    });
    return out;
  }
  std::vector<Tensor> parameters(Recurse r = Recurse::yes) const {
    std::vector<Tensor> out;
    for (auto& [n, t] : named_parameters(r)) out.push_back(t);
    return out;
  }
  std::vector<std::pair<std::string, Tensor>> named_buffers(Recurse r = Recurse::yes) const {
    std::vector<std::pair<std::string, Tensor>> out;
    collect("", r, [&](const std::string& prefix, const Module& m) {
      for (const auto& [n, t] : m.buffers_)
        if (t.defined()) out.emplace_back(prefix + n, t);
    });
    return out;
  }
  std::vector<Tensor> buffers(Recurse r = Recurse::yes) const {
    std::vector<Tensor> out;
    for (auto& [n, t] : named_buffers(r)) out.push_back(t);
    return out;
  }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // This module (name "") and all descendants, depth first.
  std::vector<std::pair<std::string, Module*>> named_modules() {
    std::vector<std::pair<std::string, Module*>> out;
    std::function<void(const std::string&, Module*)> walk = [&](const std::string& p, Module* m) {
      out.emplace_back(p, m);
      for (auto& [n, c] : m->children_) walk(p.empty() ? n : p + "." + n, c.get());
    };
    walk("", this);
    return out;
  }
  int64_t num_parameters(Recurse r = Recurse::yes) const {
    int64_t n = 0;
    for (const auto& t : parameters(r)) n += t.numel();
    return n;
  }

  // ---- state ----
  StateDict state_dict() const {
    StateDict sd;
    collect("", Recurse::yes, [&](const std::string& prefix, const Module& m) {
      for (const auto& [n, t] : m.params_)
        if (t.defined()) sd.set(prefix + n, t.detach());
      for (const auto& [n, t] : m.buffers_)
        if (t.defined() && !m.non_persistent_.count(n)) sd.set(prefix + n, t.detach());
    });
    return sd;
  }

  // Copies matching entries into this module's tensors (converting dtype and device).
  LoadReport load_state_dict(const StateDict& sd, Strict strict = Strict::yes) {
    LoadReport rep;
    std::set<std::string> used;
    NoGradGuard ng;
    collect("", Recurse::yes, [&](const std::string& prefix, const Module& m) {
      auto load = [&](const std::string& n, const Tensor& dst) {
        const std::string key = prefix + n;
        if (!sd.contains(key)) {
          rep.missing_keys.push_back(key);
          return;
        }
        used.insert(key);
        const Tensor& src = sd.at(key);
        if (src.shape() != dst.shape()) {
          rep.shape_mismatches.push_back(key + ": checkpoint " + src.shape().str() + ", model " + dst.shape().str());
          return;
        }
        Tensor d = dst;
        d.copy_(src);
      };
      for (const auto& [n, t] : m.params_)
        if (t.defined()) load(n, t);
      for (const auto& [n, t] : m.buffers_)
        if (t.defined() && !m.non_persistent_.count(n)) load(n, t);
    });
    for (const auto& [k, v] : sd)
      if (!used.count(k)) rep.unexpected_keys.push_back(k);
    if (strict == Strict::yes && !rep.ok())
      throw ValueError("load_state_dict: the state dict does not match " + type_name() + rep.str());
    if (strict == Strict::no && !rep.shape_mismatches.empty())
      throw ValueError("load_state_dict: shapes differ for " + type_name() + rep.str());
    return rep;
  }

  // ---- mode, freezing, device and dtype ----
  virtual void train(Mode mode = Mode::train) {
    mode_ = mode;
    for (auto& [n, c] : children_) c->train(mode);
  }
  void eval() { train(Mode::eval); }
  Mode mode() const { return mode_; }
  bool is_training() const { return mode_ == Mode::train; }

  // Sets requires_grad on every parameter of this subtree (false: frozen).
  void requires_grad_(bool enabled) {
    for (auto& t : parameters()) {
      if (enabled != t.requires_grad()) t.set_grad(Tensor());
      t.requires_grad_(enabled);
    }
  }

  // Moves parameters and buffers; floating tensors also take `dtype` when given.
  void to(Device device, std::optional<DType> dtype = std::nullopt) {
    NoGradGuard ng;
    for (auto* list : all_tensors()) {
      for (auto& [n, t] : *list) {
        if (!t.defined()) continue;
        const DType dt = dtype && t.is_floating_point() ? *dtype : t.dtype();
        if (t.device() == device && t.dtype() == dt) continue;
        t.set_data(t.detach().to(device, dt));
        if (t.grad().defined()) t.set_grad(t.grad().to(device, dt));
      }
    }
  }
  void to(DType dtype) {
    const auto ps = parameters();
    const auto bs = buffers();
    if (!ps.empty()) to(ps.front().device(), dtype);
    else if (!bs.empty()) to(bs.front().device(), dtype);
  }

  // Calls fn on this module and every descendant.
  void apply(const std::function<void(Module&)>& fn) {
    for (auto& [n, c] : children_) c->apply(fn);
    fn(*this);
  }

  // zero_grad: gradients set to none (PyTorch's default).
  void zero_grad() {
    for (auto& p : parameters()) p.set_grad(Tensor());
  }

  std::string repr(int indent = 0) const {
    std::ostringstream os;
    os << type_name() << "(" << extra_repr();
    if (!children_.empty()) {
      os << "\n";
      for (const auto& [n, c] : children_) os << std::string(indent + 2, ' ') << "(" << n << "): " << c->repr(indent + 2) << "\n";
      os << std::string(indent, ' ');
    }
    os << ")";
    return os.str();
  }

 protected:
  Mode mode_ = Mode::train;

 private:
  void check_name(const std::string& name) const {
    WANWU_CHECK_VALUE(!name.empty() && name.find('.') == std::string::npos, type_name(),
                      ": invalid name '", name, "' (non-empty, no '.')");
    for (const auto* list : {&params_, &buffers_})
      for (const auto& [n, t] : *list) WANWU_CHECK_VALUE(n != name, type_name(), ": '", name, "' is already registered");
    for (const auto& [n, c] : children_) WANWU_CHECK_VALUE(n != name, type_name(), ": '", name, "' is already registered");
  }
  void collect(const std::string& prefix, Recurse r,
               const std::function<void(const std::string&, const Module&)>& f) const {
    f(prefix, *this);
    if (r == Recurse::no) return;
    for (const auto& [n, c] : children_) c->collect(prefix + n + ".", r, f);
  }
  std::vector<std::vector<std::pair<std::string, Tensor>>*> all_tensors() {
    std::vector<std::vector<std::pair<std::string, Tensor>>*> out;
    std::function<void(Module&)> walk = [&](Module& m) {
      out.push_back(&m.params_);
      out.push_back(&m.buffers_);
      for (auto& [n, c] : m.children_) walk(*c);
    };
    walk(*this);
    return out;
  }

  std::vector<std::pair<std::string, Tensor>> params_, buffers_;
  std::set<std::string> non_persistent_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

inline std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.repr(); }

}  // namespace wanwu::nn
