// MultiheadAttention with PyTorch's parameter names and layout: in_proj_weight [3E, E],
// in_proj_bias [3E], out_proj.weight / out_proj.bias, batch_first or [L, N, E] inputs, and
// PyTorch's initialization (xavier_uniform_ for the packed projection, zero biases). The heads
// are views of one projection and go to the fused scaled_dot_product_attention.
#pragma once

#include "../ops/attention.hpp"
#include "../ops/shape.hpp"
#include "layers.hpp"

namespace wanwu::nn {

enum class BatchFirst : uint8_t { no, yes };

class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout = 0.0, Bias bias = Bias::yes,
                     BatchFirst batch_first = BatchFirst::no, const LayerOptions& o = {})
      : embed_dim(embed_dim), num_heads(num_heads), dropout_p(dropout), batch_first(batch_first) {
    WANWU_CHECK_VALUE(num_heads >= 1 && embed_dim % num_heads == 0, "MultiheadAttention: embed_dim (", embed_dim,
                      ") must be divisible by num_heads (", num_heads, ")");
    const TensorOptions opt = TensorOptions(o.dtype).device(o.device);
    in_proj_weight = register_parameter("in_proj_weight", empty({3 * embed_dim, embed_dim}, opt));
    if (bias == Bias::yes) in_proj_bias = register_parameter("in_proj_bias", zeros({3 * embed_dim}, opt));
    out_proj = register_module("out_proj", std::make_shared<Linear>(embed_dim, embed_dim, bias, o));
    init::xavier_uniform_(in_proj_weight, 1.0, o.generator);
    if (out_proj->bias.defined()) init::zeros_(out_proj->bias);
  }

  // Self-attention.
  Tensor forward(const Tensor& x) override { return forward(x, x, x); }

  // query [N, L, E] (batch_first) or [L, N, E]; key/value [N, S, E] or [S, N, E]. attn_mask,
  // broadcastable to [N, H, L, S], follows this module's PyTorch convention: bool true = NOT
  // allowed to attend (the opposite of scaled_dot_product_attention's), floating = added.
  Tensor forward(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask = Tensor()) {
    WANWU_CHECK_SHAPE(query.dim() == 3 && key.dim() == 3 && value.dim() == 3 && query.size(2) == embed_dim,
                      "MultiheadAttention: expected 3-D query/key/value with ", embed_dim, " features, got ",
                      query.shape(), ", ", key.shape(), ", ", value.shape());
    const Tensor q_in = batch_first == BatchFirst::yes ? query : query.transpose(0, 1);
    const Tensor k_in = batch_first == BatchFirst::yes ? key : key.transpose(0, 1);
    const Tensor v_in = batch_first == BatchFirst::yes ? value : value.transpose(0, 1);
    const int64_t N = q_in.size(0), L = q_in.size(1), S = k_in.size(1), H = num_heads, D = embed_dim / num_heads;
    Tensor q, k, v;
    if (query.is_same(key) && key.is_same(value)) {  // one packed projection
      // unbind, not three selects: one gradient buffer for the projection in the backward
      const auto qkv = unbind(linear(q_in, in_proj_weight, in_proj_bias).reshape({N, L, 3, H, D}), 2);
      q = qkv[0].permute({0, 2, 1, 3});
      k = qkv[1].permute({0, 2, 1, 3});
      v = qkv[2].permute({0, 2, 1, 3});
    } else {
      const auto w = chunk(in_proj_weight, 3, 0);
      std::vector<Tensor> b(3);
      if (in_proj_bias.defined()) b = chunk(in_proj_bias, 3, 0);
      q = linear(q_in, w[0], b[0]).reshape({N, L, H, D}).permute({0, 2, 1, 3});
      k = linear(k_in, w[1], b[1]).reshape({N, S, H, D}).permute({0, 2, 1, 3});
      v = linear(v_in, w[2], b[2]).reshape({N, S, H, D}).permute({0, 2, 1, 3});
    }
    AttentionOptions ao;
    ao.mask = attn_mask.defined() && attn_mask.dtype() == DType::boolean ? logical_not(attn_mask) : attn_mask;
    ao.dropout_p = is_training() ? dropout_p : 0.0;
    const Tensor o = scaled_dot_product_attention(q, k, v, ao).permute({0, 2, 1, 3}).reshape({N, L, embed_dim});
    const Tensor y = out_proj->forward(o);
    return batch_first == BatchFirst::yes ? y : y.transpose(0, 1);
  }
  std::string type_name() const override { return "MultiheadAttention"; }
  std::string extra_repr() const override { return detail::str("embed_dim=", embed_dim, ", num_heads=", num_heads); }

  int64_t embed_dim, num_heads;
  double dropout_p;
  BatchFirst batch_first;
  Tensor in_proj_weight, in_proj_bias;
  std::shared_ptr<Linear> out_proj;
};

}  // namespace wanwu::nn
