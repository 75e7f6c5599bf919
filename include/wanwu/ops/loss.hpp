// Losses from logits, PyTorch's definitions exactly: cross_entropy (class-index or probability
// targets, class weights, label_smoothing, ignore_index, reductions — including the weighted
// mean, which divides by the sum of the targets' weights), nll_loss,
// binary_cross_entropy_with_logits (pos_weight) and mse_loss. They are composed from
// log_softmax, gather and elementwise ops, so their gradients come from autograd and match
// PyTorch's formulas term by term. The class axis is 1, as in PyTorch ([N, C] or [N, C, ...]).
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
}  // namespace detail

// Negative log-likelihood of class-index targets from log-probabilities [N, C, ...] (or [C]).
inline Tensor nll_loss(const Tensor& log_probs_in, const Tensor& target, const Tensor& weight = Tensor(),
                       int64_t ignore_index = -100, Reduction reduction = Reduction::mean) {
  const Tensor log_probs = amp::full_precision(log_probs_in);
  detail::check_class_input(log_probs, "nll_loss");
  WANWU_CHECK_DTYPE(target.dtype() == DType::i64 || target.dtype() == DType::i32, "nll_loss: target must hold class "
                    "indices (i64 or i32), got ", target.dtype(), "; probability targets go to cross_entropy");
  const int cd = log_probs.dim() == 1 ? 0 : 1;
  const int64_t C = log_probs.size(cd);
  Shape expect = log_probs.shape();
  expect.erase(cd);
  WANWU_CHECK_SHAPE(target.shape() == expect, "nll_loss: target of shape ", target.shape(), " does not match input ",
                    log_probs.shape(), " (expected ", expect, ")");
  if (weight.defined())
    WANWU_CHECK_SHAPE(weight.dim() == 1 && weight.size(0) == C, "nll_loss: weight of shape ", weight.shape(),
                      " does not match ", C, " classes");
  const Tensor t = target.to(DType::i64);
  const Tensor valid = ne(t, ignore_index);
  for (int64_t v : t.tolist<int64_t>())  // a bad label is an error, never a wild read
    WANWU_CHECK_INDEX(v == ignore_index || (v >= 0 && v < C), "nll_loss: target ", v, " is out of bounds for ", C,
                      " classes (valid: 0..", C - 1, ", or ignore_index ", ignore_index, ")");
  const Tensor safe = where(valid, t, 0);
  const Tensor lp = detail::classes_last(log_probs);
  const Tensor picked = gather(lp, -1, safe.unsqueeze(-1)).squeeze(-1);
  Tensor w = valid.to(log_probs.dtype());
  if (weight.defined()) w = w * index_select(weight.to(log_probs.dtype()), 0, safe.reshape({-1})).reshape(t.shape());
  const Tensor loss = -(picked * w);
  if (reduction == Reduction::mean) return loss.sum() / w.sum();  // PyTorch: divide by the total weight
  return detail::reduce_loss(loss, reduction);
}

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
  const Tensor logp = log_softmax(input, cd);
  // [C] weights broadcast along the class axis
  Tensor wb;
  if (o.weight.defined()) {
    Shape ws = Shape::filled(input.dim(), 1);
    ws[cd] = C;
    wb = o.weight.to(input.dtype()).reshape(ws);
  }
  if (target.is_floating_point()) {  // class probabilities
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
  const Tensor nll = nll_loss(logp, target, o.weight, o.ignore_index, o.reduction);
  if (o.label_smoothing <= 0) return nll;
  // PyTorch: (1 - e) * nll + e / C * smooth, smooth = -sum_c w_c logp_c (0 where ignored)
  const Tensor valid = ne(target.to(DType::i64), o.ignore_index);
  Tensor smooth = -sum(wb.defined() ? logp * wb : logp, {cd});
  smooth = where(valid, smooth, 0.0);
  Tensor smooth_red;
  if (o.reduction == Reduction::mean) {
    if (o.weight.defined()) {
      const Tensor safe = where(valid, target.to(DType::i64), 0);
      const Tensor wt = index_select(o.weight.to(input.dtype()), 0, safe.reshape({-1})).reshape(target.shape());
      smooth_red = smooth.sum() / (wt * valid.to(input.dtype())).sum();
    } else {
      smooth_red = smooth.sum() / valid.to(input.dtype()).sum();
    }
  } else {
    smooth_red = detail::reduce_loss(smooth, o.reduction);
  }
  return nll * (1.0 - o.label_smoothing) + smooth_red * (o.label_smoothing / static_cast<double>(C));
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
