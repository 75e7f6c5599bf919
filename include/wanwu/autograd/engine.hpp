// The backward engine (DESIGN D7) and the Tensor autograd methods. `backward` counts, for every
// node reachable from the roots, how many edges feed it; then it runs nodes whose inputs are all
// in, newest first (the order PyTorch uses, which frees activations earliest). It is iterative,
// so a graph 100,000 nodes deep needs no stack. Gradients are checked against the shape of the
// tensor they belong to, and an op that returns a wrong shape is named in the error.
#pragma once

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "../core/autocast_state.hpp"
#include "../ops/copy.hpp"
#include "../ops/elementwise.hpp"
#include "node.hpp"
#include "profile.hpp"

namespace wanwu {

// ---------------------------------------------------------------- saved tensors

inline SavedTensor::SavedTensor(const Tensor& t) {
  if (!t.defined()) return;
  data_ = t.detach();
  version_ = t.version();
}

inline Tensor SavedTensor::get() const {
  if (!data_.defined()) return data_;  // an optional input that was not given
  WANWU_CHECK_T(AutogradError, data_.version() == version_,
                "backward: a tensor of shape ", data_.shape(), " (", data_.dtype(),
                ") needed for gradient computation was modified by an in-place operation: it is at version ",
                data_.version(), ", expected version ", version_,
                ". Use an out-of-place op, or clone() the tensor before modifying it");
  return data_;
}

// ---------------------------------------------------------------- tensor methods

namespace detail {
inline AutogradMeta& autograd_meta(const Tensor& t) {
  auto* impl = t.impl();
  if (!impl->autograd) impl->autograd = std::make_unique<AutogradMeta>();
  return *impl->autograd;
}
inline const AutogradMeta* autograd_meta_or_null(const Tensor& t) { return t.impl()->autograd.get(); }
}  // namespace detail

inline bool Tensor::requires_grad() const {
  const auto* m = detail::autograd_meta_or_null(*this);
  return m && (m->requires_grad || m->grad_fn);
}

inline Tensor& Tensor::requires_grad_(bool enabled) {
  WANWU_CHECK_T(AutogradError, is_leaf() || enabled, "requires_grad_: can only change the flag of leaf tensors; "
                "use detach() to get a tensor that does not require grad");
  WANWU_CHECK_T(AutogradError, !enabled || is_floating(dtype()), "requires_grad_: only floating-point tensors can "
                "require gradients, got dtype ", dtype());
  if (enabled || detail::autograd_meta_or_null(*this)) detail::autograd_meta(*this).requires_grad = enabled;
  return *this;
}

inline bool Tensor::is_leaf() const {
  const auto* m = detail::autograd_meta_or_null(*this);
  return !m || !m->grad_fn;
}

inline Tensor Tensor::grad() const {
  const auto* m = detail::autograd_meta_or_null(*this);
  return m ? m->grad : Tensor();
}

inline void Tensor::set_grad(const Tensor& g) const {
  if (g.defined()) {
    WANWU_CHECK_SHAPE(g.shape() == shape(), "set_grad: gradient of shape ", g.shape(), " for a tensor of shape ",
                      shape());
    WANWU_CHECK_T(DeviceError, g.device() == device(), "set_grad: gradient on ", g.device(), " for a tensor on ",
                  device());
  }
  detail::autograd_meta(*this).grad = g;
}

inline const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  const auto* m = detail::autograd_meta_or_null(*this);
  return m ? m->grad_fn : none;
}

inline uint32_t Tensor::output_nr() const {
  const auto* m = detail::autograd_meta_or_null(*this);
  return m ? m->output_nr : 0;
}

inline Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>(storage(), storage_offset(), shape(), strides(), dtype());
  return Tensor(std::move(impl));
}

inline Tensor& Tensor::detach_() {
  if (auto* m = impl()->autograd.get()) {
    m->grad_fn.reset();
    m->requires_grad = false;
    m->output_nr = 0;
  }
  return *this;
}

inline void Tensor::retain_grad() const {
  WANWU_CHECK_T(AutogradError, requires_grad(), "retain_grad: tensor does not require grad");
  if (is_leaf()) return;  // leaves keep their gradient anyway
  auto& m = detail::autograd_meta(*this);
  m.retains_grad = true;
  m.grad_fn->retain_output(m.output_nr, impl_ptr());
}

inline bool Tensor::retains_grad() const {
  const auto* m = detail::autograd_meta_or_null(*this);
  return m && (m->retains_grad || (is_leaf() && m->requires_grad));
}

inline void Tensor::backward(const Tensor& gradient, RetainGraph retain) const {
  autograd::backward({*this}, {gradient}, retain);
}

// ---------------------------------------------------------------- nodes

namespace detail {
// g made suitable to become a .grad: its own contiguous memory, no graph.
inline Tensor own_gradient(const Tensor& g, DType dt) {
  const bool exclusive = g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.is_contiguous() &&
                         g.storage_offset() == 0 && !g.is_view() && !g.impl()->is_wrapped_number;
  if (g.dtype() == dt && exclusive && !g.requires_grad()) return g;
  return copy_as(g, dt);
}
}  // namespace detail

inline std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grads) {
  Tensor& g = grads[0];
  if (!g.defined()) return {};
  auto& meta = *leaf_->autograd;
  if (!meta.grad.defined()) {
    meta.grad = detail::own_gradient(g, leaf_->dtype);
  } else {
    NoGradGuard ng;
    meta.grad.add_(g);
  }
  return {};
}

inline std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>&& grads) {
  WANWU_CHECK_T(AutogradError, !released_, "backward through ", name_,
                " a second time: its saved tensors were freed after the first backward; pass RetainGraph::yes to "
                "the first backward() to keep them");
  Grads g;
  g.out = std::move(grads);
  g.needs.resize(next_edges_.size());
  for (size_t i = 0; i < next_edges_.size(); ++i) g.needs[i] = next_edges_[i].valid();
  return fn_(g);
}

namespace autograd {

inline Edge gradient_edge(const Tensor& t) {
  if (!t.defined()) return {};
  auto* m = t.impl()->autograd.get();
  if (!m) return {};
  if (m->grad_fn) return {m->grad_fn, m->output_nr};
  if (!m->requires_grad) return {};
  std::shared_ptr<Node> acc = m->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    m->grad_accumulator = acc;
  }
  return {acc, 0};
}

inline void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
                   BackwardFn fn) {
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  std::vector<Edge> edges;
  std::vector<GradMeta> in_meta, out_meta;
  edges.reserve(inputs.size());
  for (const auto& t : inputs) {
    edges.push_back(GradMode::is_enabled() ? gradient_edge(t) : Edge{});
    in_meta.push_back(t.defined() ? GradMeta{t.shape(), t.dtype(), t.device()} : GradMeta{});
  }
  for (const auto& t : outputs) out_meta.push_back({t.shape(), t.dtype(), t.device()});
  node->connect(std::move(edges), std::move(in_meta), std::move(out_meta));
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto& m = detail::autograd_meta(outputs[i]);
    m.grad_fn = node;
    m.output_nr = static_cast<uint32_t>(i);
    m.requires_grad = true;
  }
}

inline void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads_in, RetainGraph retain) {
  WANWU_CHECK_VALUE(roots.size() == grads_in.size(), "backward: ", roots.size(), " roots but ", grads_in.size(),
                    " gradients");
  NoGradGuard no_grad;  // backward formulas do not record (no higher-order gradients)
  struct AutocastOff {     // nor autocast: gradients keep the dtypes of the forward
    amp::AutocastState saved = amp::autocast_state();
    AutocastOff() { amp::autocast_state().enabled = false; }
    ~AutocastOff() { amp::autocast_state() = saved; }
  } autocast_off;

  struct Root {
    Edge edge;
    Tensor grad;
  };
  std::vector<Root> root_list;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    Edge e = gradient_edge(r);
    WANWU_CHECK_T(AutogradError, e.valid(), "backward: tensor of shape ", r.shape(),
                  " does not require grad and has no grad_fn");
    Tensor g = grads_in[i];
    if (!g.defined()) {
      WANWU_CHECK_T(AutogradError, r.numel() == 1, "backward: a gradient can be created implicitly only for "
                    "one-element outputs; pass a gradient for the tensor of shape ", r.shape());
      g = ones_like(r);
    } else {
      WANWU_CHECK_SHAPE(g.shape() == r.shape(), "backward: gradient of shape ", g.shape(), " for an output of shape ",
                        r.shape());
      if (g.dtype() != r.dtype() || g.device() != r.device()) g = g.to(r.device(), r.dtype());
    }
    root_list.push_back({e, g});
  }

  // Dependencies: how many edges point at each node.
  std::unordered_map<Node*, int> deps;
  {
    std::unordered_set<Node*> seen;
    std::vector<Node*> stack;
    for (const auto& r : root_list)
      if (seen.insert(r.edge.fn.get()).second) stack.push_back(r.edge.fn.get());
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next_edges()) {
        if (!e.valid()) continue;
        ++deps[e.fn.get()];
        if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
      }
    }
  }

  // f(), timed under `name` when a BackwardProfile is alive on this thread (profile.hpp).
  BackwardProfile* const profile = BackwardProfile::current();
  auto run = [profile](std::string_view name, Device device, auto&& f) {
    return profile ? profile->time(name, device, f) : f();
  };
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  auto accumulate = [&](const Edge& e, Tensor g) {
    auto& buf = buffers[e.fn.get()];
    if (buf.empty()) buf.resize(e.fn->num_outputs());
    Tensor& slot = buf[e.input_nr];
    slot = slot.defined() ? run("sum of gradients", g.device(), [&] { return add(slot, g); }) : std::move(g);
  };

  auto newer = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr() < b->sequence_nr();
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(newer)> ready(newer);
  for (const auto& r : root_list) accumulate(r.edge, r.grad);
  {
    std::unordered_set<Node*> queued;
    for (const auto& r : root_list)
      if (deps[r.edge.fn.get()] == 0 && queued.insert(r.edge.fn.get()).second) ready.push(r.edge.fn);
  }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    std::vector<Tensor> grads;
    if (auto it = buffers.find(node.get()); it != buffers.end()) {
      grads = std::move(it->second);
      buffers.erase(it);
    }
    grads.resize(node->num_outputs());
    bool any = false;
    for (const auto& g : grads) any = any || g.defined();

    // Non-leaf tensors that asked to keep their gradient.
    const auto& retained = node->retained_outputs();
    for (size_t i = 0; i < retained.size() && i < grads.size(); ++i) {
      auto t = retained[i].lock();
      if (!t || !grads[i].defined() || !t->autograd) continue;
      Tensor& dst = t->autograd->grad;
      dst = dst.defined() ? add(dst, grads[i]) : detail::copy_as(grads[i], grads[i].dtype());
    }

    std::vector<Tensor> outs;
    if (any && profile) {
      const auto first = std::find_if(grads.begin(), grads.end(), [](const Tensor& g) { return g.defined(); });
      outs = run(node->name(), first->device(), [&] { return node->apply(std::move(grads)); });
    } else if (any) {
      outs = node->apply(std::move(grads));
    }
    if (retain == RetainGraph::no) node->release();

    const auto& edges = node->next_edges();
    WANWU_CHECK_T(AutogradError, !any || outs.size() == edges.size() || edges.empty(), "backward of ", node->name(),
                  " returned ", outs.size(), " gradients for ", edges.size(), " inputs");
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid()) continue;
      if (any && outs[i].defined()) {
        Tensor g = std::move(outs[i]);
        const GradMeta& meta = node->input_meta()[i];
        WANWU_CHECK_T(AutogradError, g.shape() == meta.shape, "backward of ", node->name(), " returned a gradient of "
                      "shape ", g.shape(), " for input ", i, " of shape ", meta.shape);
        if (g.dtype() != meta.dtype || g.device() != meta.device)
          g = run("cast of a gradient to its input's dtype", meta.device,
                  [&] { return g.to(meta.device, meta.dtype); });
        accumulate(e, std::move(g));
      }
      if (--deps[e.fn.get()] == 0) ready.push(e.fn);
    }
  }
}

}  // namespace autograd
}  // namespace wanwu
