// The small-image ResNets of He et al., "Deep Residual Learning for Image Recognition" (2016),
// section 4.2 (the CIFAR-10 networks): a 3x3 stem without max-pooling, three stages of n
// BasicBlocks with 16, 32 and 64 channels (strides 1, 2, 2), global average pooling and a linear
// head: 6n + 2 layers. torchvision has no such model; ImageNet ResNets shrink a 28x28 or 32x32
// image to 1x1 by their last stage and spend most of their work on 512-channel 1x1 maps, while
// these keep the resolution and cost ~20 MFLOPs per 28x28 image (resnet18: ~75 MFLOPs), which is
// what training on small images on a CPU needs (the Fashion-MNIST demo). Parameter names follow
// torchvision's ResNet (conv1, bn1, layerK.B.conv1, ..., fc) and the downsampling blocks use 1x1
// projections (the paper's option B), so the same key conventions and weight loading apply.
//   cifar_resnet8 (n = 1, 78k parameters), cifar_resnet20 (n = 3, 272k parameters)
#pragma once

#include "resnet.hpp"

namespace wanwu::models {

struct CifarResNetConfig {
  int64_t blocks_per_stage = 1;  // n: 6n + 2 layers
  int64_t width = 16;            // channels of the first stage (then 2x, 4x)
  int64_t num_classes = 10;
  nn::LayerOptions options;
  static CifarResNetConfig named(const std::string& name, int64_t num_classes) {
    CifarResNetConfig c;
    c.num_classes = num_classes;
    if (name == "cifar_resnet8") c.blocks_per_stage = 1;
    else if (name == "cifar_resnet20") c.blocks_per_stage = 3;
    else throw ValueError("unknown small-image ResNet '" + name + "' (cifar_resnet8, cifar_resnet20)");
    return c;
  }
};

class CifarResNet : public FcHeadClassifier {
 public:
  explicit CifarResNet(const CifarResNetConfig& c, std::string arch = "cifar_resnet") : FcHeadClassifier(c.options) {
    WANWU_CHECK_VALUE(c.blocks_per_stage >= 1 && c.width >= 1, "CifarResNet: need blocks_per_stage >= 1 and width >= 1");
    arch_ = std::move(arch);
    conv1 = register_module("conv1", detail::resnet_conv(3, c.width, 3, 1, options_));
    bn1 = register_module("bn1", batch_norm2d(c.width, options_));
    int64_t inplanes = c.width;
    for (int li = 0; li < 3; ++li) {
      const int64_t planes = c.width << li;
      auto layer = std::make_shared<nn::Sequential>();
      for (int64_t b = 0; b < c.blocks_per_stage; ++b) {
        const int64_t s = b == 0 && li > 0 ? 2 : 1;
        layer->push_back(std::make_shared<BasicBlock>(inplanes, planes, s, b == 0 && (s != 1 || inplanes != planes), options_));
        inplanes = planes;
      }
      layers[static_cast<size_t>(li)] = register_module("layer" + std::to_string(li + 1), layer);
    }
    add_fc_head(inplanes, c.num_classes);
  }
  Tensor forward_features(const Tensor& x) override {
    WANWU_CHECK_SHAPE(x.dim() == 4 && x.size(3) == 3, arch_, ": expected NHWC images [N, H, W, 3], got ", x.shape());
    Tensor h = nn::conv_bn_act(*conv1, *bn1, x, nn::Activation::relu);
    for (auto& l : layers) h = l->forward(h);
    return mean(h, {1, 2});
  }
  std::string type_name() const override { return "CifarResNet"; }

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::array<std::shared_ptr<nn::Sequential>, 3> layers;
};

}  // namespace wanwu::models
