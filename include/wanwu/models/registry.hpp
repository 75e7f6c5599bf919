// Models by name, as the CLI and configs name them: create_model("resnet50", classes) builds any
// architecture in models/ with torchvision's initialization. Names are torchvision's
// (resnet18..152, efficientnet_b0..b7, vit_b_16, vit_b_32, vit_l_16, vit_l_32, vit_h_14) plus
// efficientnet_lite0..4, and the small-image cifar_resnet8/20 (cifar_resnet.hpp). model_names() lists them for help texts and error messages.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cifar_resnet.hpp"
#include "efficientnet.hpp"
#include "resnet.hpp"
#include "vit.hpp"

namespace wanwu::models {

struct ModelOptions {
  int64_t num_classes = 1000;
  int64_t image_size = 224;  // ViT only: fixes the position grid
  double dropout = -1;       // < 0: the architecture's default
  nn::LayerOptions layer;    // dtype, device, initialization generator
};

inline std::vector<std::string> model_names() {
  return {"resnet18",        "resnet34",        "resnet50",        "resnet101",       "resnet152",
          "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
          "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_lite0", "efficientnet_lite1",
          "efficientnet_lite2", "efficientnet_lite3", "efficientnet_lite4", "vit_b_16", "vit_b_32",
          "vit_l_16",        "vit_l_32",        "vit_h_14",        "cifar_resnet8",   "cifar_resnet20"};
}

inline std::shared_ptr<Classifier> create_model(const std::string& name, const ModelOptions& o = {}) {
  WANWU_CHECK_VALUE(o.num_classes >= 1, "create_model(", name, "): num_classes must be positive, got ", o.num_classes);
  const auto names = model_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw ValueError("unknown model '" + name + "'; known models: " + known);
  }
  if (name.rfind("cifar_resnet", 0) == 0) {
    CifarResNetConfig c = CifarResNetConfig::named(name, o.num_classes);
    c.options = o.layer;
    return std::make_shared<CifarResNet>(c, name);
  }
  if (name.rfind("resnet", 0) == 0) {
    ResNetConfig c = ResNetConfig::named(name, o.num_classes);
    c.options = o.layer;
    return std::make_shared<ResNet>(c, name);
  }
  if (name.rfind("efficientnet_", 0) == 0) {
    EfficientNetConfig c = EfficientNetConfig::named(name, o.num_classes);
    c.options = o.layer;
    if (o.dropout >= 0) c.dropout = o.dropout;
    return std::make_shared<EfficientNet>(c, name);
  }
  if (name.rfind("vit_", 0) == 0) {
    ViTConfig c = ViTConfig::named(name, o.num_classes, o.image_size);
    c.options = o.layer;
    if (o.dropout >= 0) c.dropout = o.dropout;
    return std::make_shared<VisionTransformer>(c, name);
  }
  throw ValueError("create_model: '" + name + "' is listed in model_names() but has no builder");
}

}  // namespace wanwu::models
