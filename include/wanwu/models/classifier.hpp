// The interface every image classifier shares: NHWC images [N, H, W, 3] in, logits [N, classes]
// out; forward_features() gives the pooled feature vector the head consumes; reset_classifier()
// swaps the head for another number of classes (fine-tuning); freeze_backbone() makes everything
// but the head non-trainable. Parameter names are torchvision's (DESIGN D9); `head_prefix()` names
// the head's subtree ("fc", "classifier", "heads").
#pragma once

#include <string>

#include "../nn/layers.hpp"

namespace wanwu::models {

// BatchNorm2d with a model's dtype/device (eps and momentum as the architecture sets them).
inline std::shared_ptr<nn::BatchNorm2d> batch_norm2d(int64_t channels, const nn::LayerOptions& o, double eps = 1e-5,
                                                     double momentum = 0.1) {
  return std::make_shared<nn::BatchNorm2d>(channels, eps, momentum, nn::Affine::yes, nn::TrackRunningStats::yes, o);
}

class Classifier : public nn::Module {
 public:
  virtual Tensor forward_features(const Tensor& x) = 0;
  virtual Tensor forward_head(const Tensor& features) = 0;
  Tensor forward(const Tensor& x) override { return forward_head(forward_features(x)); }

  virtual void reset_classifier(int64_t num_classes) = 0;
  virtual int64_t num_classes() const = 0;
  virtual int64_t num_features() const = 0;
  virtual std::string head_prefix() const = 0;
  const std::string& arch() const { return arch_; }
  // Rewrites a checkpoint's entries that this architecture can adapt (a ViT's position grid for
  // another image size) before load_state_dict compares shapes.
  virtual void adapt_state_dict(nn::StateDict&) const {}

  // Only the head trains (the backbone's batch-norm statistics still update in train mode; call
  // eval() on the backbone too to keep them).
  void freeze_backbone() {
    requires_grad_(false);
    for (auto [n, p] : named_parameters())
      if (n.rfind(head_prefix() + ".", 0) == 0) p.requires_grad_(true);
  }
  void unfreeze() { requires_grad_(true); }

 protected:
  std::string arch_;
};

// A classifier whose head is one Linear named "fc" over the pooled features, as torchvision's
// ResNets (and the small-image ResNets) have it: the head methods, written once.
class FcHeadClassifier : public Classifier {
 public:
  Tensor forward_head(const Tensor& f) override { return fc->forward(f); }
  void reset_classifier(int64_t num_classes) override {
    replace_module("fc", fc = std::make_shared<nn::Linear>(features_, num_classes, nn::Bias::yes, options_));
    fc->train(mode());
  }
  int64_t num_classes() const override { return fc->out_features; }
  int64_t num_features() const override { return features_; }
  std::string head_prefix() const override { return "fc"; }

  std::shared_ptr<nn::Linear> fc;

 protected:
  explicit FcHeadClassifier(const nn::LayerOptions& o) : options_(o) {}
  // Registers the head; the constructors call it last, so "fc" comes last in the state dict as in
  // torchvision's.
  void add_fc_head(int64_t features, int64_t num_classes) {
    features_ = features;
    fc = register_module("fc", std::make_shared<nn::Linear>(features_, num_classes, nn::Bias::yes, options_));
  }

  nn::LayerOptions options_;  // dtype, device and initialization of every layer
  int64_t features_ = 0;
};

}  // namespace wanwu::models
