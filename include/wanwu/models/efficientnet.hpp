// EfficientNet B0-B7 — Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
// Networks" (ICML 2019) — exactly as torchvision/models/efficientnet.py builds it: MBConv blocks
// (expand 1x1, depthwise kxk, squeeze-excitation with SiLU, project 1x1), width/depth
// multipliers with _make_divisible(8), stochastic depth growing linearly with block index,
// BatchNorm eps 1e-5 (B5-B7: eps 1e-3, momentum 0.01), and torchvision's names
// (features.<stage>.<block>.block.<i>..., classifier.1).
//
// EfficientNet-Lite0-4 (the TensorFlow "lite" variants: no squeeze-excitation, ReLU6, stem and head
// fixed at 32 and 1280 channels, first and last stage not repeated more) use the same module layout.
// Weights ported from TensorFlow also need TensorFlow's SAME padding (asymmetric for stride 2)
// and its BatchNorm eps 1e-3: EfficientNetConfig::tf_same_padding and bn_eps.
#pragma once

#include <cmath>
#include <vector>

#include "../nn/conv_bn.hpp"
#include "classifier.hpp"

namespace wanwu::models {

struct MBConvSpec {
  double expand_ratio;
  int64_t kernel, stride, in_channels, out_channels, num_layers;
};

enum class TfSamePadding : uint8_t { no, yes };

struct EfficientNetConfig {
  double width_mult = 1.0, depth_mult = 1.0, dropout = 0.2, stochastic_depth_prob = 0.2;
  double bn_eps = 1e-5, bn_momentum = 0.1;
  bool lite = false;  // no SE, ReLU6, fixed stem/head, fixed first/last repeats
  TfSamePadding tf_same_padding = TfSamePadding::no;
  int64_t num_classes = 1000;
  nn::LayerOptions options;

  static EfficientNetConfig named(const std::string& name, int64_t num_classes) {
    EfficientNetConfig c;
    c.num_classes = num_classes;
    struct Row {
      const char* name;
      double w, d, dropout;
    };
    static const Row b[] = {{"efficientnet_b0", 1.0, 1.0, 0.2}, {"efficientnet_b1", 1.0, 1.1, 0.2},
                            {"efficientnet_b2", 1.1, 1.2, 0.3}, {"efficientnet_b3", 1.2, 1.4, 0.3},
                            {"efficientnet_b4", 1.4, 1.8, 0.4}, {"efficientnet_b5", 1.6, 2.2, 0.4},
                            {"efficientnet_b6", 1.8, 2.6, 0.5}, {"efficientnet_b7", 2.0, 3.1, 0.5}};
    static const Row lite[] = {{"efficientnet_lite0", 1.0, 1.0, 0.2}, {"efficientnet_lite1", 1.0, 1.1, 0.2},
                               {"efficientnet_lite2", 1.1, 1.2, 0.3}, {"efficientnet_lite3", 1.2, 1.4, 0.3},
                               {"efficientnet_lite4", 1.4, 1.8, 0.3}};
    for (const auto& r : b)
      if (name == r.name) {
        c.width_mult = r.w;
        c.depth_mult = r.d;
        c.dropout = r.dropout;
        if (name == "efficientnet_b5" || name == "efficientnet_b6" || name == "efficientnet_b7") {
          c.bn_eps = 1e-3;
          c.bn_momentum = 0.01;
        }
        return c;
      }
    for (const auto& r : lite)
      if (name == r.name) {
        c.width_mult = r.w;
        c.depth_mult = r.d;
        c.dropout = r.dropout;
        c.lite = true;
        c.bn_eps = 1e-3;  // the TensorFlow models these weights come from, with its SAME padding
        c.tf_same_padding = TfSamePadding::yes;
        c.bn_momentum = 0.01;
        return c;
      }
    throw ValueError("unknown EfficientNet '" + name + "' (efficientnet_b0..b7, efficientnet_lite0..4)");
  }
};

namespace detail {
// torchvision's _make_divisible
inline int64_t make_divisible(double v, int64_t divisor = 8) {
  int64_t nv = std::max<int64_t>(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (static_cast<double>(nv) < 0.9 * v) nv += divisor;
  return nv;
}
}  // namespace detail

// conv (no bias) + batch norm + optional activation: torchvision's Conv2dNormActivation, whose
// children are named 0, 1, 2. With TF SAME padding the convolution pads per forward from the input
// size, as TensorFlow does.
class ConvNormAct : public nn::Sequential {
 public:
  enum class Act : uint8_t { none, silu, relu6 };
  ConvNormAct(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups, Act act, const EfficientNetConfig& c)
      : act_(act), tf_same_(c.tf_same_padding == TfSamePadding::yes) {
    conv_ = push_back(std::make_shared<nn::Conv2d>(in, out, k, stride, (k - 1) / 2, 1, groups, nn::Bias::no, c.options));
    nn::init::kaiming_normal_(conv_->weight, 0.0, nn::init::FanMode::fan_out, nn::init::Nonlinearity::leaky_relu,
                              c.options.generator);
    bn_ = push_back(batch_norm2d(out, c.options, c.bn_eps, c.bn_momentum));
    if (act == Act::silu) push_back(std::make_shared<nn::SiLU>());
    if (act == Act::relu6) push_back(std::make_shared<nn::ReLU6>());
  }
  Tensor forward(const Tensor& x) override {
    std::optional<Padding2d> pad;
    if (tf_same_) {  // pad_total = max((ceil(in / s) - 1) * s + k - in, 0), the extra pixel at the end
      auto sides = [&](int64_t in, int64_t k, int64_t s) {
        const int64_t out = (in + s - 1) / s;
        const int64_t total = std::max<int64_t>((out - 1) * s + k - in, 0);
        return std::pair<int64_t, int64_t>{total / 2, total - total / 2};
      };
      const auto [t, b] = sides(x.size(1), conv_->kernel_size.h, conv_->stride.h);
      const auto [l, r] = sides(x.size(2), conv_->kernel_size.w, conv_->stride.w);
      pad = Padding2d::sides(t, b, l, r);
    }
    const nn::Activation a = act_ == Act::silu    ? nn::Activation::silu
                             : act_ == Act::relu6 ? nn::Activation::relu6
                                                  : nn::Activation::none;
    return nn::conv_bn_act(*conv_, *bn_, x, a, pad);
  }
  std::string type_name() const override { return "Conv2dNormActivation"; }

 private:
  Act act_;
  bool tf_same_;
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::BatchNorm2d> bn_;
};

// torchvision.ops.SqueezeExcitation: pool, fc1 (1x1 conv), SiLU, fc2 (1x1 conv), sigmoid, scale.
class SqueezeExcitation : public nn::Module {
 public:
  SqueezeExcitation(int64_t channels, int64_t squeeze, const nn::LayerOptions& o) {
    fc1 = register_module("fc1", std::make_shared<nn::Conv2d>(channels, squeeze, 1, 1, 0, 1, 1, nn::Bias::yes, o));
    fc2 = register_module("fc2", std::make_shared<nn::Conv2d>(squeeze, channels, 1, 1, 0, 1, 1, nn::Bias::yes, o));
    for (auto* c : {fc1.get(), fc2.get()}) {
      nn::init::kaiming_normal_(c->weight, 0.0, nn::init::FanMode::fan_out, nn::init::Nonlinearity::leaky_relu, o.generator);
      nn::init::zeros_(c->bias);
    }
  }
  Tensor forward(const Tensor& x) override {
    const Tensor s = sigmoid(fc2->forward(silu(fc1->forward(mean(x, {1, 2}, KeepDim::yes)))));
    return x * s;
  }
  std::string type_name() const override { return "SqueezeExcitation"; }
  std::shared_ptr<nn::Conv2d> fc1, fc2;
};

// The parts of an MBConv block; which of them exist (and so their child index in `block`) depends
// on the expansion ratio and on squeeze-excitation. Weight name maps ask index_of().
enum class MBConvPart : uint8_t { expand, depthwise, squeeze_excitation, project };

class MBConv : public nn::Module {
 public:
  MBConv(const MBConvSpec& s, double sd_prob, const EfficientNetConfig& c) : sd_prob_(sd_prob) {
    use_res_ = s.stride == 1 && s.in_channels == s.out_channels;
    const auto act = c.lite ? ConvNormAct::Act::relu6 : ConvNormAct::Act::silu;
    block = register_module("block", std::make_shared<nn::Sequential>());
    const int64_t expanded = detail::make_divisible(static_cast<double>(s.in_channels) * s.expand_ratio);
    auto add = [&](MBConvPart part, std::shared_ptr<nn::Module> m) {
      index_[static_cast<int>(part)] = static_cast<int>(block->size());
      block->push_back(std::move(m));
    };
    if (expanded != s.in_channels)
      add(MBConvPart::expand, std::make_shared<ConvNormAct>(s.in_channels, expanded, 1, 1, 1, act, c));
    add(MBConvPart::depthwise, std::make_shared<ConvNormAct>(expanded, expanded, s.kernel, s.stride, expanded, act, c));
    if (!c.lite)
      add(MBConvPart::squeeze_excitation,
          std::make_shared<SqueezeExcitation>(expanded, std::max<int64_t>(1, s.in_channels / 4), c.options));
    add(MBConvPart::project, std::make_shared<ConvNormAct>(expanded, s.out_channels, 1, 1, 1, ConvNormAct::Act::none, c));
  }
  // Child index of `part` inside `block`, or -1 when this block has no such part.
  int index_of(MBConvPart part) const { return index_[static_cast<int>(part)]; }
  Tensor forward(const Tensor& x) override {
    Tensor r = block->forward(x);
    if (use_res_) r = drop_path(r, sd_prob_, mode()) + x;
    return r;
  }
  std::string type_name() const override { return "MBConv"; }
  std::shared_ptr<nn::Sequential> block;

 private:
  double sd_prob_;
  bool use_res_;
  int index_[4] = {-1, -1, -1, -1};
};

class EfficientNet : public Classifier {
 public:
  explicit EfficientNet(const EfficientNetConfig& c, std::string arch = "efficientnet") : c_(c) {
    arch_ = std::move(arch);
    // torchvision's inverted_residual_setting for B0, then scaled
    const MBConvSpec base[] = {{1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},  {6, 5, 2, 24, 40, 2},  {6, 3, 2, 40, 80, 3},
                               {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1}};
    std::vector<MBConvSpec> specs;
    const int n_stages = 7;
    for (int i = 0; i < n_stages; ++i) {
      MBConvSpec s = base[i];
      const bool fixed_stem = c.lite && i == 0, fixed_repeat = c.lite && (i == 0 || i == n_stages - 1);
      s.in_channels = fixed_stem ? s.in_channels : detail::make_divisible(static_cast<double>(s.in_channels) * c.width_mult);
      s.out_channels = detail::make_divisible(static_cast<double>(s.out_channels) * c.width_mult);
      if (!fixed_repeat) s.num_layers = static_cast<int64_t>(std::ceil(static_cast<double>(s.num_layers) * c.depth_mult));
      specs.push_back(s);
    }
    features = register_module("features", std::make_shared<nn::Sequential>());
    const auto act = c.lite ? ConvNormAct::Act::relu6 : ConvNormAct::Act::silu;
    features->push_back(std::make_shared<ConvNormAct>(3, specs[0].in_channels, 3, 2, 1, act, c));
    int64_t total = 0;
    for (const auto& s : specs) total += s.num_layers;
    int64_t block_id = 0;
    for (const auto& s : specs) {
      auto stage = std::make_shared<nn::Sequential>();
      for (int64_t l = 0; l < s.num_layers; ++l) {
        MBConvSpec bs = s;
        if (l > 0) {
          bs.in_channels = bs.out_channels;
          bs.stride = 1;
        }
        const double sd = c.stochastic_depth_prob * static_cast<double>(block_id) / static_cast<double>(total);
        stage->push_back(std::make_shared<MBConv>(bs, sd, c));
        ++block_id;
      }
      features->push_back(stage);
    }
    const int64_t last_in = specs.back().out_channels;
    features_ = c.lite ? 1280 : 4 * last_in;
    features->push_back(std::make_shared<ConvNormAct>(last_in, features_, 1, 1, 1, act, c));
    classifier = register_module("classifier", std::make_shared<nn::Sequential>());
    classifier->push_back(std::make_shared<nn::Dropout>(c.dropout));
    classifier->push_back(make_head(c.num_classes));
  }
  Tensor forward_features(const Tensor& x) override {
    WANWU_CHECK_SHAPE(x.dim() == 4 && x.size(3) == 3, arch_, ": expected NHWC images [N, H, W, 3], got ", x.shape());
    return mean(features->forward(x), {1, 2});
  }
  Tensor forward_head(const Tensor& f) override { return classifier->forward(f); }
  void reset_classifier(int64_t num_classes) override {
    auto head = make_head(num_classes);
    head->train(mode());
    classifier->replace_module("1", head);
  }
  int64_t num_classes() const override {
    return std::static_pointer_cast<nn::Linear>((*classifier)[1])->out_features;
  }
  int64_t num_features() const override { return features_; }
  std::string head_prefix() const override { return "classifier"; }
  std::string type_name() const override { return "EfficientNet"; }

  std::shared_ptr<nn::Sequential> features, classifier;

 private:
  // torchvision: U(-1/sqrt(out), 1/sqrt(out)) weights, zero bias
  std::shared_ptr<nn::Linear> make_head(int64_t num_classes) {
    auto fc = std::make_shared<nn::Linear>(features_, num_classes, nn::Bias::yes, c_.options);
    const double r = 1.0 / std::sqrt(static_cast<double>(num_classes));
    nn::init::uniform_(fc->weight, -r, r, c_.options.generator);
    nn::init::zeros_(fc->bias);
    return fc;
  }
  EfficientNetConfig c_;
  int64_t features_ = 0;
};

}  // namespace wanwu::models
