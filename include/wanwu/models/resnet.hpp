// ResNet 18/34/50/101/152 — He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016),
// as torchvision/models/resnet.py builds it: BasicBlock / Bottleneck with the stride on the 3x3
// convolution ("ResNet v1.5"), downsample = 1x1 conv + batch norm named "downsample.0/1",
// kaiming_normal_(fan_out, relu) convolutions, and the same parameter names. NHWC throughout.
#pragma once

#include <array>

#include "../nn/conv_bn.hpp"
#include "classifier.hpp"

namespace wanwu::models {

enum class ResNetBlock : uint8_t { basic, bottleneck };

struct ResNetConfig {
  ResNetBlock block = ResNetBlock::bottleneck;
  std::array<int, 4> layers = {3, 4, 6, 3};
  int64_t num_classes = 1000;
  nn::LayerOptions options;
  static ResNetConfig named(const std::string& name, int64_t num_classes) {
    ResNetConfig c;
    c.num_classes = num_classes;
    if (name == "resnet18") c.block = ResNetBlock::basic, c.layers = {2, 2, 2, 2};
    else if (name == "resnet34") c.block = ResNetBlock::basic, c.layers = {3, 4, 6, 3};
    else if (name == "resnet50") c.layers = {3, 4, 6, 3};
    else if (name == "resnet101") c.layers = {3, 4, 23, 3};
    else if (name == "resnet152") c.layers = {3, 8, 36, 3};
    else throw ValueError("unknown ResNet '" + name + "' (resnet18, resnet34, resnet50, resnet101, resnet152)");
    return c;
  }
};

namespace detail {
inline std::shared_ptr<nn::Conv2d> resnet_conv(int64_t in, int64_t out, int64_t k, int64_t stride,
                                               const nn::LayerOptions& o) {
  auto c = std::make_shared<nn::Conv2d>(in, out, k, stride, k / 2, 1, 1, nn::Bias::no, o);
  nn::init::kaiming_normal_(c->weight, 0.0, nn::init::FanMode::fan_out, nn::init::Nonlinearity::relu, o.generator);
  return c;
}

// downsample: Sequential(conv, bn) as torchvision names it ("downsample.0", "downsample.1"),
// whose batch norm folds into the conv in inference (nn/conv_bn.hpp).
class ConvBn : public nn::Sequential {
 public:
  ConvBn(std::shared_ptr<nn::Conv2d> conv, std::shared_ptr<nn::BatchNorm2d> bn)
      : conv_(push_back(std::move(conv))), bn_(push_back(std::move(bn))) {}
  Tensor forward(const Tensor& x) override { return nn::conv_bn_act(*conv_, *bn_, x, nn::Activation::none); }

 private:
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::BatchNorm2d> bn_;
};
}  // namespace detail

class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, bool downsample, const nn::LayerOptions& o) {
    conv1 = register_module("conv1", detail::resnet_conv(inplanes, planes, 3, stride, o));
    bn1 = register_module("bn1", batch_norm2d(planes, o));
    conv2 = register_module("conv2", detail::resnet_conv(planes, planes, 3, 1, o));
    bn2 = register_module("bn2", batch_norm2d(planes, o));
    if (downsample)
      this->downsample = register_module(
          "downsample", std::make_shared<detail::ConvBn>(detail::resnet_conv(inplanes, planes, 1, stride, o),
                                                         batch_norm2d(planes, o)));
  }
  Tensor forward(const Tensor& x) override {
    using nn::Activation;
    const Tensor out = nn::conv_bn_act(*conv1, *bn1, x, Activation::relu);
    return nn::conv_bn_add_relu(*conv2, *bn2, out, downsample ? downsample->forward(x) : x);
  }
  std::string type_name() const override { return "BasicBlock"; }
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<detail::ConvBn> downsample;
};

class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, bool downsample, const nn::LayerOptions& o) {
    const int64_t width = planes;
    conv1 = register_module("conv1", detail::resnet_conv(inplanes, width, 1, 1, o));
    bn1 = register_module("bn1", batch_norm2d(width, o));
    conv2 = register_module("conv2", detail::resnet_conv(width, width, 3, stride, o));
    bn2 = register_module("bn2", batch_norm2d(width, o));
    conv3 = register_module("conv3", detail::resnet_conv(width, planes * expansion, 1, 1, o));
    bn3 = register_module("bn3", batch_norm2d(planes * expansion, o));
    if (downsample)
      this->downsample = register_module(
          "downsample", std::make_shared<detail::ConvBn>(detail::resnet_conv(inplanes, planes * expansion, 1, stride, o),
                                                         batch_norm2d(planes * expansion, o)));
  }
  Tensor forward(const Tensor& x) override {
    using nn::Activation;
    Tensor out = nn::conv_bn_act(*conv1, *bn1, x, Activation::relu);
    out = nn::conv_bn_act(*conv2, *bn2, out, Activation::relu);
    return nn::conv_bn_add_relu(*conv3, *bn3, out, downsample ? downsample->forward(x) : x);
  }
  std::string type_name() const override { return "Bottleneck"; }
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<detail::ConvBn> downsample;
};

class ResNet : public FcHeadClassifier {
 public:
  explicit ResNet(const ResNetConfig& c, std::string arch = "resnet") : FcHeadClassifier(c.options) {
    arch_ = std::move(arch);
    const int64_t expansion = c.block == ResNetBlock::basic ? BasicBlock::expansion : Bottleneck::expansion;
    conv1 = register_module("conv1", detail::resnet_conv(3, 64, 7, 2, options_));
    bn1 = register_module("bn1", batch_norm2d(64, options_));
    int64_t inplanes = 64;
    const int64_t planes[4] = {64, 128, 256, 512};
    for (int li = 0; li < 4; ++li) {
      auto layer = std::make_shared<nn::Sequential>();
      const int64_t stride = li == 0 ? 1 : 2;
      for (int b = 0; b < c.layers[li]; ++b) {
        const int64_t s = b == 0 ? stride : 1;
        const bool ds = b == 0 && (stride != 1 || inplanes != planes[li] * expansion);
        if (c.block == ResNetBlock::basic) layer->push_back(std::make_shared<BasicBlock>(inplanes, planes[li], s, ds, options_));
        else layer->push_back(std::make_shared<Bottleneck>(inplanes, planes[li], s, ds, options_));
        inplanes = planes[li] * expansion;
      }
      layers[li] = register_module("layer" + std::to_string(li + 1), layer);
    }
    add_fc_head(512 * expansion, c.num_classes);
  }
  Tensor forward_features(const Tensor& x) override {
    WANWU_CHECK_SHAPE(x.dim() == 4 && x.size(3) == 3, arch_, ": expected NHWC images [N, H, W, 3], got ", x.shape());
    Tensor h = max_pool2d(nn::conv_bn_act(*conv1, *bn1, x, nn::Activation::relu), 3, 2, 1);
    for (auto& l : layers) h = l->forward(h);
    return mean(h, {1, 2});  // global average pooling
  }
  std::string type_name() const override { return "ResNet"; }

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::array<std::shared_ptr<nn::Sequential>, 4> layers;
};

}  // namespace wanwu::models
