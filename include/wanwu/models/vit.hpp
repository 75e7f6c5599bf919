// Vision Transformer — Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
// Recognition at Scale" (ICLR 2021) — as torchvision/models/vision_transformer.py builds it:
// patch embedding by a strided convolution (conv_proj), a class token, a learned position
// embedding (encoder.pos_embedding), pre-norm encoder blocks (ln_1, self_attention, ln_2, mlp.0,
// mlp.3; LayerNorm eps 1e-6, exact GELU), a final encoder.ln and the head heads.head. Every
// parameter name equals torchvision's state_dict() key.
//
// Another image size changes the number of patches; resize_pos_embedding() resamples the position
// grid with bicubic interpolation (align_corners=True), which is what torchvision's
// interpolate_embeddings() does, and load-time adaptation calls it for checkpoints trained at
// another resolution.
#pragma once

#include <cmath>

#include "../nn/attention.hpp"
#include "../ops/interpolate.hpp"
#include "classifier.hpp"

namespace wanwu::models {

struct ViTConfig {
  int64_t image_size = 224, patch_size = 16, num_layers = 12, num_heads = 12, hidden_dim = 768, mlp_dim = 3072;
  double dropout = 0.0, attention_dropout = 0.0;
  int64_t num_classes = 1000;
  nn::LayerOptions options;

  static ViTConfig named(const std::string& name, int64_t num_classes, int64_t image_size = 224) {
    struct Row {
      const char* name;
      int64_t patch, layers, heads, hidden, mlp;
    };
    static const Row rows[] = {{"vit_b_16", 16, 12, 12, 768, 3072},  {"vit_b_32", 32, 12, 12, 768, 3072},
                               {"vit_l_16", 16, 24, 16, 1024, 4096}, {"vit_l_32", 32, 24, 16, 1024, 4096},
                               {"vit_h_14", 14, 32, 16, 1280, 5120}};
    for (const auto& r : rows)
      if (name == r.name) {
        ViTConfig c;
        c.patch_size = r.patch, c.num_layers = r.layers, c.num_heads = r.heads, c.hidden_dim = r.hidden, c.mlp_dim = r.mlp;
        c.num_classes = num_classes;
        c.image_size = image_size;
        return c;
      }
    throw ValueError("unknown ViT '" + name + "' (vit_b_16, vit_b_32, vit_l_16, vit_l_32, vit_h_14)");
  }
};

// torchvision's MLPBlock: Linear, GELU, Dropout, Linear, Dropout (children 0..4); xavier-uniform
// weights, N(0, 1e-6) biases.
class MLPBlock : public nn::Sequential {
 public:
  MLPBlock(int64_t dim, int64_t mlp_dim, double dropout, const nn::LayerOptions& o) {
    auto fc1 = push_back(std::make_shared<nn::Linear>(dim, mlp_dim, nn::Bias::yes, o));
    push_back(std::make_shared<nn::GELU>());
    push_back(std::make_shared<nn::Dropout>(dropout));
    auto fc2 = push_back(std::make_shared<nn::Linear>(mlp_dim, dim, nn::Bias::yes, o));
    push_back(std::make_shared<nn::Dropout>(dropout));
    for (auto* fc : {fc1.get(), fc2.get()}) {
      nn::init::xavier_uniform_(fc->weight, 1.0, o.generator);
      nn::init::normal_(fc->bias, 0.0, 1e-6, o.generator);
    }
  }
  std::string type_name() const override { return "MLPBlock"; }
};

class EncoderBlock : public nn::Module {
 public:
  EncoderBlock(const ViTConfig& c) {
    ln_1 = register_module("ln_1", std::make_shared<nn::LayerNorm>(Shape{c.hidden_dim}, 1e-6, nn::Affine::yes, c.options));
    self_attention = register_module(
        "self_attention", std::make_shared<nn::MultiheadAttention>(c.hidden_dim, c.num_heads, c.attention_dropout,
                                                                   nn::Bias::yes, nn::BatchFirst::yes, c.options));
    dropout = register_module("dropout", std::make_shared<nn::Dropout>(c.dropout));
    ln_2 = register_module("ln_2", std::make_shared<nn::LayerNorm>(Shape{c.hidden_dim}, 1e-6, nn::Affine::yes, c.options));
    mlp = register_module("mlp", std::make_shared<MLPBlock>(c.hidden_dim, c.mlp_dim, c.dropout, c.options));
  }
  Tensor forward(const Tensor& input) override {
    Tensor x = dropout->forward(self_attention->forward(ln_1->forward(input))) + input;
    return x + mlp->forward(ln_2->forward(x));
  }
  std::string type_name() const override { return "EncoderBlock"; }
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2;
  std::shared_ptr<nn::MultiheadAttention> self_attention;
  std::shared_ptr<nn::Dropout> dropout;
  std::shared_ptr<MLPBlock> mlp;
};

class Encoder : public nn::Module {
 public:
  Encoder(int64_t seq_length, const ViTConfig& c) {
    pos_embedding = register_parameter(
        "pos_embedding", empty({1, seq_length, c.hidden_dim}, TensorOptions(c.options.dtype).device(c.options.device)));
    nn::init::normal_(pos_embedding, 0.0, 0.02, c.options.generator);
    dropout = register_module("dropout", std::make_shared<nn::Dropout>(c.dropout));
    layers = register_module("layers", std::make_shared<nn::Sequential>());
    for (int64_t i = 0; i < c.num_layers; ++i)
      layers->add("encoder_layer_" + std::to_string(i), std::make_shared<EncoderBlock>(c));
    ln = register_module("ln", std::make_shared<nn::LayerNorm>(Shape{c.hidden_dim}, 1e-6, nn::Affine::yes, c.options));
  }
  Tensor forward(const Tensor& x) override {
    WANWU_CHECK_SHAPE(x.dim() == 3 && x.size(1) == pos_embedding.size(1), "ViT encoder: ", x.size(1),
                      " tokens do not match the position embedding's ", pos_embedding.size(1),
                      " (resize_pos_embedding() for another image size)");
    return ln->forward(layers->forward(dropout->forward(x + pos_embedding)));
  }
  std::string type_name() const override { return "Encoder"; }
  Tensor pos_embedding;
  std::shared_ptr<nn::Dropout> dropout;
  std::shared_ptr<nn::Sequential> layers;
  std::shared_ptr<nn::LayerNorm> ln;
};

// [1, 1 + g*g, D] position embedding (class token first) resampled to a new_grid x new_grid patch
// grid, as torchvision's interpolate_embeddings (bicubic, align_corners=True).
inline Tensor interpolate_pos_embedding(const Tensor& pos, int64_t new_grid) {
  WANWU_CHECK_SHAPE(pos.dim() == 3 && pos.size(0) == 1, "interpolate_pos_embedding: expected [1, 1 + g*g, D], got ",
                    pos.shape());
  const int64_t n = pos.size(1) - 1, D = pos.size(2);
  const auto g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  WANWU_CHECK_SHAPE(g * g == n, "interpolate_pos_embedding: ", n, " patch positions do not form a square grid");
  WANWU_CHECK_VALUE(new_grid >= 1, "interpolate_pos_embedding: grid must be positive, got ", new_grid);
  if (new_grid == g) return pos;
  const Tensor cls = pos.narrow(1, 0, 1);
  const Tensor grid = pos.narrow(1, 1, n).reshape({1, g, g, D});
  const Tensor resized = interpolate_bicubic(grid, {new_grid, new_grid}, AlignCorners::yes);
  return cat({cls, resized.reshape({1, new_grid * new_grid, D})}, 1);
}

class VisionTransformer : public Classifier {
 public:
  explicit VisionTransformer(const ViTConfig& c, std::string arch = "vit") : c_(c) {
    arch_ = std::move(arch);
    WANWU_CHECK_VALUE(c.image_size % c.patch_size == 0, arch_, ": image size ", c.image_size,
                      " is not divisible by the patch size ", c.patch_size);
    const TensorOptions opt = TensorOptions(c.options.dtype).device(c.options.device);
    conv_proj = register_module("conv_proj", std::make_shared<nn::Conv2d>(3, c.hidden_dim, c.patch_size, c.patch_size, 0,
                                                                          1, 1, nn::Bias::yes, c.options));
    // torchvision: trunc_normal_(std = sqrt(1 / fan_in)), zero bias
    nn::init::trunc_normal_(conv_proj->weight, 0.0, std::sqrt(1.0 / static_cast<double>(3 * c.patch_size * c.patch_size)),
                            -2.0, 2.0, c.options.generator);
    nn::init::zeros_(conv_proj->bias);
    class_token = register_parameter("class_token", zeros({1, 1, c.hidden_dim}, opt));
    const int64_t grid = c.image_size / c.patch_size;
    encoder = register_module("encoder", std::make_shared<Encoder>(grid * grid + 1, c));
    heads = register_module("heads", std::make_shared<nn::Sequential>());
    heads->add("head", make_head(c.num_classes));
  }

  // The class token's final representation.
  Tensor forward_features(const Tensor& x) override {
    WANWU_CHECK_SHAPE(x.dim() == 4 && x.size(3) == 3, arch_, ": expected NHWC images [N, H, W, 3], got ", x.shape());
    WANWU_CHECK_SHAPE(x.size(1) == c_.image_size && x.size(2) == c_.image_size, arch_, ": expected ", c_.image_size, "x",
                      c_.image_size, " images, got ", x.shape(), " (resize_pos_embedding() changes the size)");
    const int64_t N = x.size(0);
    Tensor tokens = conv_proj->forward(x);  // [N, g, g, D]: row-major patches, as torchvision's flatten
    tokens = tokens.reshape({N, -1, c_.hidden_dim});
    tokens = cat({class_token.expand({N, 1, c_.hidden_dim}), tokens}, 1);
    return encoder->forward(tokens).select(1, 0);
  }
  Tensor forward_head(const Tensor& f) override { return heads->forward(f); }
  void reset_classifier(int64_t num_classes) override {
    auto head = make_head(num_classes);
    head->train(mode());
    heads->replace_module("head", head);
  }
  int64_t num_classes() const override { return std::static_pointer_cast<nn::Linear>((*heads)[0])->out_features; }
  int64_t num_features() const override { return c_.hidden_dim; }
  std::string head_prefix() const override { return "heads"; }
  std::string type_name() const override { return "VisionTransformer"; }
  int64_t image_size() const { return c_.image_size; }

  // Serve another (square) image size: resample the position grid in place.
  void resize_pos_embedding(int64_t image_size) {
    WANWU_CHECK_VALUE(image_size >= c_.patch_size && image_size % c_.patch_size == 0, arch_, ": image size ",
                      image_size, " must be a positive multiple of the patch size ", c_.patch_size);
    Tensor resized;
    {
      NoGradGuard ng;
      resized = interpolate_pos_embedding(encoder->pos_embedding, image_size / c_.patch_size).contiguous();
    }
    encoder->pos_embedding.set_data(resized);
    c_.image_size = image_size;
  }

  // A checkpoint trained at another resolution carries another pos_embedding length: resample it
  // to this model's grid before loading (timm and torchvision do the same).
  void adapt_state_dict(nn::StateDict& sd) const override {
    const std::string key = "encoder.pos_embedding";
    if (!sd.contains(key)) return;
    const Tensor& pos = sd.at(key);
    if (pos.dim() == 3 && pos.size(1) != encoder->pos_embedding.size(1)) {
      NoGradGuard ng;
      sd.set(key, interpolate_pos_embedding(pos, c_.image_size / c_.patch_size).contiguous());
    }
  }

  std::shared_ptr<nn::Conv2d> conv_proj;
  Tensor class_token;
  std::shared_ptr<Encoder> encoder;
  std::shared_ptr<nn::Sequential> heads;

 private:
  // torchvision zero-initializes the head
  std::shared_ptr<nn::Linear> make_head(int64_t num_classes) {
    auto fc = std::make_shared<nn::Linear>(c_.hidden_dim, num_classes, nn::Bias::yes, c_.options);
    nn::init::zeros_(fc->weight);
    nn::init::zeros_(fc->bias);
    return fc;
  }
  ViTConfig c_;
};

}  // namespace wanwu::models
