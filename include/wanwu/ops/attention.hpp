// scaled_dot_product_attention, as torch.nn.functional.scaled_dot_product_attention: q [B,H,L,D],
// k [B,H,S,D], v [B,H,S,Dv]; an optional mask broadcastable to [B,H,L,S] (bool: true = attend;
// floating: added to the scores); causal masking; dropout on the attention weights; scale
// defaulting to 1/sqrt(D). One fused kernel each way (backend attention_forward/backward): the
// CPU holds one [L, S] block per (batch, head) at a time.
#pragma once

#include <cmath>
#include <optional>

#include "conv.hpp"
#include "elementwise.hpp"
#include "options.hpp"

namespace wanwu {

struct AttentionOptions {
  Tensor mask;            // bool or floating, broadcastable to [B, H, L, S]
  double dropout_p = 0.0;
  Causal causal = Causal::no;
  std::optional<double> scale;  // default 1 / sqrt(D)
  Generator* generator = nullptr;
};

inline Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                           const AttentionOptions& o_in = {}) {
  const Tensor q = amp::lower_precision(q_in), k = amp::lower_precision(k_in), v = amp::lower_precision(v_in);
  AttentionOptions o = o_in;
  if (o.mask.defined() && o.mask.is_floating_point() && q.dtype() != q_in.dtype()) o.mask = o.mask.to(q.dtype());  // autocast
  const char* op = "scaled_dot_product_attention";
  WANWU_CHECK_SHAPE(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op, ": expected 4-D q, k, v [B, H, L, D], got ",
                    q.shape(), ", ", k.shape(), ", ", v.shape());
  WANWU_CHECK_SHAPE(k.size(0) == q.size(0) && v.size(0) == q.size(0) && k.size(1) == q.size(1) &&
                        v.size(1) == q.size(1) && k.size(3) == q.size(3) && v.size(2) == k.size(2),
                    op, ": incompatible shapes q ", q.shape(), ", k ", k.shape(), ", v ", v.shape());
  WANWU_CHECK_DTYPE(q.dtype() == k.dtype() && q.dtype() == v.dtype() && q.is_floating_point(), op,
                    ": q, k, v must share one floating dtype, got ", q.dtype(), ", ", k.dtype(), ", ", v.dtype());
  detail::check_operand_devices(op, q, {{"key", k}, {"value", v}, {"mask", o.mask}});
  WANWU_CHECK_VALUE(o.dropout_p >= 0.0 && o.dropout_p < 1.0, op, ": dropout_p must be in [0, 1), got ", o.dropout_p);
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), S = k.size(2), D = q.size(3), Dv = v.size(3);
  AttentionParams p;
  p.scale = o.scale.value_or(1.0 / std::sqrt(static_cast<double>(D)));
  p.dropout_p = o.dropout_p;
  p.causal = o.causal == Causal::yes;
  Tensor mask;
  if (o.mask.defined()) {
    WANWU_CHECK_DTYPE(o.mask.dtype() == DType::boolean || o.mask.dtype() == q.dtype(), op,
                      ": mask must be bool or have the dtype of q (", q.dtype(), "), got ", o.mask.dtype());
    const Shape full{B, H, L, S};
    WANWU_CHECK_SHAPE(broadcast_shapes(o.mask.shape(), full, op) == full, op, ": mask of shape ", o.mask.shape(),
                      " does not broadcast to ", full);
    mask = detail::broadcast_raw(o.mask.detach(), full);
  }
  if (p.dropout_p > 0.0) {
    Generator& g = o.generator ? *o.generator : default_generator();
    const RandomDraw r = reserve_random(g, random_blocks(B * H * L * S, false), q.device());
    p.seed = r.seed;
    p.offset = r.offset;
    p.offset_shift = r.shift;
  }
  // GEMMs read q, k, v through their strides; only the last axis must be contiguous.
  auto rows = [](const Tensor& t) { return t.stride(3) == 1 ? t.detach() : detail::copy_as(t, t.dtype()); };
  const Tensor qc = rows(q), kc = rows(k), vc = rows(v);
  Tensor out = empty_tensor(Shape{B, H, L, Dv}, q.dtype(), q.device());
  Tensor lse = empty_tensor(Shape{B, H, L}, q.dtype() == DType::f64 ? DType::f64 : DType::f32, q.device());
  backend_for(q.device()).attention_forward(out, lse, qc, kc, vc, mask, p);
  if (autograd::any_requires_grad({q, k, v})) {
    const SavedTensor sq(qc), sk(kc), sv(vc), so(out), sl(lse), sm(mask);
    autograd::record(op, {q, k, v}, {out}, [sq, sk, sv, so, sl, sm, p](const Grads& g) {
      const Tensor qv = sq.get(), kv = sk.get(), vv = sv.get();
      Tensor gq = empty_tensor(qv.shape(), qv.dtype(), qv.device());
      Tensor gk = empty_tensor(kv.shape(), kv.dtype(), kv.device());
      Tensor gv = empty_tensor(vv.shape(), vv.dtype(), vv.device());
      backend_for(qv.device()).attention_backward(gq, gk, gv, detail::contiguous_no_grad(g[0]), qv, kv, vv, so.get(),
                                                  sl.get(), sm.defined() ? sm.get() : Tensor(), p);
      return std::vector<Tensor>{gq, gk, gv};
    });
  }
  return out;
}

}  // namespace wanwu
