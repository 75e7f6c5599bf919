// Losses from logits, PyTorch's definitions exactly: cross_entropy (class-index or probability
// targets, class weights, label_smoothing, ignore_index, reductions — including the weighted
// mean, which divides by the sum of the targets' weights), nll_loss,
// binary_cross_entropy_with_logits (pos_weight) and mse_loss. The class axis is 1, as in PyTorch
// ([N, C] or [N, C, ...]).
//
// cross_entropy with class-index targets, every classifier's training loss, is one fused backend
// kernel each way (Backend::cross_entropy_forward / _backward): per row, the log-sum-exp, the
// target's term and the label-smoothing term in one pass, and a backward that writes the logits'
// gradient once from the saved lse [N]. Only the reduction over rows is composed. The other
// losses are composed from log_softmax, gather and elementwise ops, so their gradients come from
// autograd and match PyTorch's formulas term by term.
#pragma once

#include "index.hpp"
#include "options.hpp"
#include "softmax.hpp"

namespace wanwu {

struct CrossEntropyOptions {
  Tensor weight;  // [C] class weights, optional
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::mean;
  double label_smoothing = 0.0;
};

namespace detail {
inline Tensor reduce_loss(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::none: return loss;
    case Reduction::sum: return loss.sum();
    case Reduction::mean: return loss.mean();
  }
  return loss;
}
// [N, C, d1, ...] -> [N, d1, ..., C]; [C] stays.
inline Tensor classes_last(const Tensor& t) {
  if (t.dim() <= 2) return t;
  Dims p{0};
  for (int i = 2; i < t.dim(); ++i) p.push_back(i);
  p.push_back(1);
  return t.permute(p);
}
inline void check_class_input(const Tensor& input, const char* op) {
  WANWU_CHECK_SHAPE(input.dim() >= 1, op, ": input must have at least 1 dimension (the classes)");
  WANWU_CHECK_DTYPE(input.is_floating_point(), op, ": input dtype ", input.dtype(),
                    " is not supported (floating types only)");
}
// Class-index targets: i64 or i32, the input's shape without the class axis (1 for [N, C, ...], 0
// for [C]). Returns them as one contiguous i64 row. Their values are checked by whoever reads them:
// check_class_targets for the composed nll_loss, the backend for the fused cross_entropy.
inline Tensor class_targets(const Tensor& input, const Tensor& target, const char* op) {
  WANWU_CHECK_DTYPE(target.dtype() == DType::i64 || target.dtype() == DType::i32, op, ": target must hold class "
                    "indices (i64 or i32), got ", target.dtype(), "; probability targets go to cross_entropy");
  const int cd = input.dim() == 1 ? 0 : 1;
  Shape expect = input.shape();
  expect.erase(cd);
  WANWU_CHECK_SHAPE(target.shape() == expect, op, ": target of shape ", target.shape(), " does not match input ",
                    input.shape(), " (expected ", expect, ")");
  return target.to(DType::i64).reshape({-1}).contiguous();
}
// Reads the targets back and throws for a bad one: a bad label is an error naming it, never a wild
// read.
inline void check_class_targets(const Tensor& t, int64_t C, int64_t ignore_index, const char* op) {
  for (int64_t v : t.tolist<int64_t>())
    WANWU_CHECK_INDEX(v == ignore_index || (v >= 0 && v < C), bad_class_target_message(op, v, C, ignore_index));
}
}  // namespace detail

// Negative log-likelihood of class-index targets from log-probabilities [N, C, ...] (or [C]).
inline Tensor nll_loss(const Tensor& log_probs_in, const Tensor& target, const Tensor& weight = Tensor(),
                       int64_t ignore_index = -100, Reduction reduction = Reduction::mean) {
  const Tensor log_probs = amp::full_precision(log_probs_in);
  detail::check_class_input(log_probs, "nll_loss");
  const int cd = log_probs.dim() == 1 ? 0 : 1;
  const int64_t C = log_probs.size(cd);
  if (weight.defined())
    WANWU_CHECK_SHAPE(weight.dim() == 1 && weight.size(0) == C, "nll_loss: weight of shape ", weight.shape(),
                      " does not match ", C, " classes");
  detail::check_operand_devices("nll_loss", log_probs, {{"target", target}, {"weight", weight}});
  const Tensor t_row = detail::class_targets(log_probs, target, "nll_loss");
  detail::check_class_targets(t_row, C, ignore_index, "nll_loss");
  const Tensor t = t_row.reshape(target.shape());
  const Tensor valid = ne(t, ignore_index);
  const Tensor safe = where(valid, t, 0);
  const Tensor lp = detail::classes_last(log_probs);
  const Tensor picked = gather(lp, -1, safe.unsqueeze(-1)).squeeze(-1);
  Tensor w = valid.to(log_probs.dtype());
  if (weight.defined()) w = w * index_select(weight.to(log_probs.dtype()), 0, safe.reshape({-1})).reshape(t.shape());
  const Tensor loss = -(picked * w);
  if (reduction == Reduction::mean) return loss.sum() / w.sum();  // PyTorch: divide by the total weight
  return detail::reduce_loss(loss, reduction);
}

namespace detail {
// Class-index targets through the fused kernel: the logits as rows [M, C] (classes last), one
// autograd node for the per-row losses, then the reduction. The weighted mean divides by the sum
// of the non-ignored targets' weights (their count without weights), the smoothing term too, as
// PyTorch does; with every target ignored that is 0 / 0 = NaN, as in PyTorch.
inline Tensor cross_entropy_indices(const Tensor& input_in, const Tensor& target, const CrossEntropyOptions& o) {
  const Tensor input = amp::full_precision(input_in);
  const int64_t C = input.size(input.dim() == 1 ? 0 : 1);
  check_operand_devices("cross_entropy", input, {{"target", target}, {"weight", o.weight}});
  const Tensor t = class_targets(input, target, "cross_entropy");  // the backend checks the values
  // rows counted from the other dimensions: with no classes reshape cannot infer them (-1 of 0)
  const Tensor last = input.dim() == 1 ? input.unsqueeze(0) : classes_last(input);
  int64_t rows_n = 1;
  for (int64_t d = 0; d + 1 < last.dim(); ++d) rows_n *= last.size(d);
  const Tensor rows = last.reshape({rows_n, C});
  const Tensor x = contiguous_no_grad(rows);
  const Tensor w = o.weight.defined() ? contiguous_no_grad(o.weight.detach().to(input.dtype())) : Tensor();
  const CrossEntropyParams p{o.ignore_index, o.label_smoothing};
  const int64_t M = x.size(0);
  Tensor loss = empty_tensor(Shape{M}, x.dtype(), x.device());
  const Tensor lse = empty_tensor(Shape{M}, x.dtype() == DType::f64 ? DType::f64 : DType::f32, x.device());
  if (M > 0) backend_for(x.device()).cross_entropy_forward(loss, lse, x, t, w, p);
  if (autograd::any_requires_grad({rows})) {
    autograd::record("cross_entropy", {rows}, {loss}, [sx = SavedTensor(x), lse, t, w, p](const Grads& g) {
      const Tensor xs = sx.get();
      Tensor gx = empty_like(xs);
      if (xs.numel() > 0) backend_for(xs.device()).cross_entropy_backward(gx, contiguous_no_grad(g[0]), xs, lse, t, w, p);
      return std::vector<Tensor>{gx};
    });
  }
  switch (o.reduction) {
    case Reduction::none: return loss.reshape(target.shape());
    case Reduction::sum: return loss.sum();
    case Reduction::mean: break;
  }
  const Tensor valid = ne(t, o.ignore_index).to(loss.dtype());
  const Tensor denom = w.defined() ? (index_select(w, 0, where(ne(t, o.ignore_index), t, 0)) * valid).sum() : valid.sum();
  return loss.sum() / denom;
}
}  // namespace detail

// Cross-entropy from logits [N, C, ...] (or [C]); target: class indices (integer, input's shape
// without the class axis) or class probabilities (floating, the input's shape).
inline Tensor cross_entropy(const Tensor& input, const Tensor& target, const CrossEntropyOptions& o = {}) {
  detail::check_class_input(input, "cross_entropy");
  WANWU_CHECK_VALUE(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0,
                    "cross_entropy: label_smoothing must be in [0, 1], got ", o.label_smoothing);
  const int cd = input.dim() == 1 ? 0 : 1;
  const int64_t C = input.size(cd);
  if (o.weight.defined())
    WANWU_CHECK_SHAPE(o.weight.dim() == 1 && o.weight.size(0) == C, "cross_entropy: weight of shape ",
                      o.weight.shape(), " does not match ", C, " classes");
  if (target.is_floating_point()) {  // class probabilities
    const Tensor logp = log_softmax(input, cd);
    // [C] weights broadcast along the class axis
    Tensor wb;
    if (o.weight.defined()) {
      Shape ws = Shape::filled(input.dim(), 1);
      ws[cd] = C;
      wb = o.weight.to(input.dtype()).reshape(ws);
    }
    WANWU_CHECK_SHAPE(target.shape() == input.shape(), "cross_entropy: probability target of shape ", target.shape(),
                      " must match the input ", input.shape());
    Tensor t = target.to(input.dtype());
    if (o.label_smoothing > 0) t = t * (1.0 - o.label_smoothing) + o.label_smoothing / static_cast<double>(C);
    Tensor prod = logp * t;
    if (wb.defined()) prod = prod * wb;
    const Tensor loss = -sum(prod, {cd});
    if (o.reduction == Reduction::mean) return loss.sum() / static_cast<double>(std::max<int64_t>(1, input.numel() / C));
    return detail::reduce_loss(loss, o.reduction);
  }
  return detail::cross_entropy_indices(input, target, o);
}

// Sigmoid + binary cross-entropy in one stable expression; pos_weight scales positive targets.
inline Tensor binary_cross_entropy_with_logits(const Tensor& input_in, const Tensor& target_in,
                                               const Tensor& weight = Tensor(), const Tensor& pos_weight = Tensor(),
                                               Reduction reduction = Reduction::mean) {
  const Tensor input = amp::full_precision(input_in), target = amp::full_precision(target_in);
  WANWU_CHECK_SHAPE(input.shape() == target.shape(), "binary_cross_entropy_with_logits: target of shape ",
                    target.shape(), " must match the input ", input.shape());
  WANWU_CHECK_DTYPE(input.is_floating_point() && target.is_floating_point(),
                    "binary_cross_entropy_with_logits: input and target must be floating, got ", input.dtype(),
                    " and ", target.dtype());
  const Tensor max_val = clamp_min(-input, 0.0);
  const Tensor log_term = log(exp(-max_val) + exp(-input - max_val)) + max_val;  // log(1 + exp(-x))
  Tensor loss;
  if (pos_weight.defined()) {
    const Tensor log_weight = (pos_weight - 1.0) * target + 1.0;
    loss = (1.0 - target) * input + log_weight * log_term;
  } else {
    loss = (1.0 - target) * input + log_term;
  }
  if (weight.defined()) loss = loss * weight;
  return detail::reduce_loss(loss, reduction);
}

inline Tensor mse_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction = Reduction::mean) {
  const Tensor input = amp::full_precision(input_in), target = amp::full_precision(target_in);
  WANWU_CHECK_SHAPE(input.shape() == target.shape(), "mse_loss: target of shape ", target.shape(),
                    " must match the input ", input.shape());
  return detail::reduce_loss(square(input - target), reduction);
}

}  // namespace wanwu
