// The autograd graph (DESIGN D7). Each op that has an input requiring grad records a `Node`:
// the backward function, the tensors it saved, and one edge per forward input pointing at the
// node that produced that input (or at the leaf's `AccumulateGrad`). Ops write their backward as
// a lambda with other ops (`record`), so a backward runs on every backend for free.
//
// Saved tensors are detached aliases plus the storage version seen at save time; using one after
// the tensor was modified in place throws, naming the op (PyTorch's "modified by an inplace
// operation" error). Saving an output does not keep its grad_fn alive, so there are no cycles.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "../core/tensor.hpp"
#include "grad_mode.hpp"

namespace wanwu {

struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;  // which of fn's forward outputs this edge feeds
  bool valid() const { return fn != nullptr; }
};

// Shape/dtype/device of a tensor a gradient must match.
struct GradMeta {
  Shape shape;
  DType dtype = DType::f32;
  Device device;
};

class Node {
 public:
  Node() : seq_(next_sequence_nr()) {}
  // Releases the chain behind this node iteratively: destroying a 100,000-op graph must not
  // recurse once per node.
  virtual ~Node() {
    std::vector<std::shared_ptr<Node>> stack;
    auto take = [&stack](std::vector<Edge>& edges) {
      for (auto& e : edges)
        if (e.fn && e.fn.use_count() == 1) stack.push_back(std::move(e.fn));
      edges.clear();
    };
    take(next_edges_);
    while (!stack.empty()) {
      std::shared_ptr<Node> n = std::move(stack.back());
      stack.pop_back();
      take(n->next_edges_);
    }  // n is destroyed here with no edges left
  }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // grads[i]: gradient w.r.t. forward output i (undefined if none reached it). Returns one
  // gradient per forward input (next edge); undefined where not needed.
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grads) = 0;
  virtual std::string name() const = 0;
  virtual void release() {}  // drop saved tensors once backward no longer needs them

  const std::vector<Edge>& next_edges() const { return next_edges_; }
  const std::vector<GradMeta>& input_meta() const { return input_meta_; }
  const std::vector<GradMeta>& output_meta() const { return output_meta_; }
  size_t num_outputs() const { return output_meta_.size(); }
  uint64_t sequence_nr() const { return seq_; }

  // Non-leaf outputs whose .grad the user asked to keep (Tensor::retain_grad).
  void retain_output(uint32_t output_nr, const std::shared_ptr<TensorImpl>& t) {
    if (retained_.size() <= output_nr) retained_.resize(output_nr + 1);
    retained_[output_nr] = t;
  }
  const std::vector<std::weak_ptr<TensorImpl>>& retained_outputs() const { return retained_; }

  // Wires the node into the graph (autograd::record does this once, right after creation).
  void connect(std::vector<Edge> edges, std::vector<GradMeta> inputs, std::vector<GradMeta> outputs) {
    next_edges_ = std::move(edges);
    input_meta_ = std::move(inputs);
    output_meta_ = std::move(outputs);
  }

 protected:
  std::vector<Edge> next_edges_;
  std::vector<GradMeta> input_meta_;
  std::vector<GradMeta> output_meta_;

 private:
  static uint64_t next_sequence_nr() {
    static std::atomic<uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t seq_;
  std::vector<std::weak_ptr<TensorImpl>> retained_;
};

// Accumulates incoming gradients into a leaf's .grad (defined in engine.hpp).
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {
    output_meta_.push_back({leaf_->shape, leaf_->dtype, leaf_->storage->device()});
  }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  std::string name() const override { return "AccumulateGrad"; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// A tensor kept for backward: a detached alias and the version it had when saved.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  // Throws AutogradError if the tensor was modified in place since it was saved; an undefined
  // tensor (an optional input that was not given) comes back undefined.
  Tensor get() const;
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  uint32_t version_ = 0;
};

// What a backward lambda receives.
struct Grads {
  std::vector<Tensor> out;  // gradient w.r.t. each forward output (undefined if none flowed)
  std::vector<char> needs;  // per forward input: whether its gradient is wanted
  const Tensor& operator[](size_t i) const { return out[i]; }
  bool needs_input_grad(size_t i) const { return needs[i] != 0; }
};
using BackwardFn = std::function<std::vector<Tensor>(const Grads&)>;

class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  std::string name() const override { return name_; }
  void release() override {
    fn_ = nullptr;
    released_ = true;
  }

 private:
  std::string name_;
  BackwardFn fn_;
  bool released_ = false;
};

namespace autograd {

// The edge a gradient for `t` must flow into: its grad_fn, or its leaf accumulator.
Edge gradient_edge(const Tensor& t);

// True when grad mode is on and any defined input requires grad: the op must record.
inline bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
inline bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// Records `fn` as the backward of an op with these inputs and outputs; the outputs get the new
// node as grad_fn. Call only when any_requires_grad(inputs) is true.
void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, BackwardFn fn);

// Rejects in-place ops that would corrupt the graph: on a leaf that requires grad (while grad
// mode is on) and on a view of a tensor that requires grad.
inline void check_inplace(const Tensor& self, const char* op) {
  if (!GradMode::is_enabled() || !self.requires_grad()) return;
  WANWU_CHECK_T(AutogradError, !self.is_leaf(), op, ": a leaf tensor that requires grad (shape ", self.shape(),
                ") is used in an in-place operation; do the update under NoGradGuard or use the out-of-place op");
  WANWU_CHECK_T(AutogradError, !self.is_view(), op, ": in-place operation on a view (shape ", self.shape(),
                ") of a tensor that requires grad is not supported; use the out-of-place op");
}

// Runs backward from `roots` seeded with `grads` (undefined: ones for a one-element root).
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, RetainGraph retain);

}  // namespace autograd
}  // namespace wanwu
