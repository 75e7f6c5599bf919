// Layers: Linear, Conv2d (NHWC, OHWI weights), BatchNorm2d/1d, LayerNorm, GroupNorm, Dropout,
// DropPath, pooling, Flatten, Identity, activations, and the containers Sequential and
// ModuleList. Parameter names, shapes (up to D4's NHWC/OHWI) and default initialization are
// PyTorch's, so a torchvision state dict loads and a freshly built layer is distributed like
// PyTorch's.
#pragma once

#include <array>
#include <cmath>
#include <memory>
#include <optional>

#include "../ops/activation.hpp"
#include "../ops/conv.hpp"
#include "../ops/dropout.hpp"
#include "../ops/linalg.hpp"
#include "../ops/norm.hpp"
#include "../ops/pool.hpp"
#include "init.hpp"
#include "module.hpp"

namespace wanwu::nn {

enum class Bias : uint8_t { no, yes };
enum class Affine : uint8_t { no, yes };
enum class TrackRunningStats : uint8_t { no, yes };

// Options common to layers with parameters: where they live and what type they have.
struct LayerOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  Generator* generator = nullptr;  // initialization randomness
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Bias bias = Bias::yes, const LayerOptions& o = {})
      : in_features(in_features), out_features(out_features) {
    WANWU_CHECK_VALUE(in_features > 0 && out_features > 0, "Linear: feature sizes must be positive, got ",
                      in_features, " and ", out_features);
    weight = register_parameter("weight", empty({out_features, in_features}, TensorOptions(o.dtype).device(o.device)));
    if (bias == Bias::yes)
      this->bias = register_parameter("bias", empty({out_features}, TensorOptions(o.dtype).device(o.device)));
    reset_parameters(o.generator);
  }
  // PyTorch: kaiming_uniform_(a = sqrt(5)) for the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias.
  void reset_parameters(Generator* gen = nullptr) {
    init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
    if (bias.defined()) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
      init::uniform_(bias, -bound, bound, gen);
    }
  }
  Tensor forward(const Tensor& x) override { return linear(x, weight, bias); }
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override {
    return detail::str("in_features=", in_features, ", out_features=", out_features, ", bias=", bias.defined());
  }
  int64_t in_features, out_features;
  Tensor weight, bias;
};

// The folded weight and bias of a convolution followed by this batch norm in eval mode (nn/conv_bn.hpp),
// cached on the BatchNorm and rebuilt when a source tensor changed.
class FoldedConvBn {
 public:
  std::pair<Tensor, Tensor> get(const Tensor& conv_weight, const Tensor& conv_bias, const Tensor& bn_weight,
                                const Tensor& bn_bias, const Tensor& running_mean, const Tensor& running_var, double eps) {
    const std::array<const Tensor*, 6> src = {&conv_weight, &conv_bias, &bn_weight, &bn_bias, &running_mean,
                                              &running_var};
    bool fresh = weight_.defined() && eps_ == eps;
    for (size_t i = 0; i < src.size() && fresh; ++i) {
      const Tensor& t = *src[i];
      // Holding the storages keeps their addresses from being reused by other tensors.
      fresh = t.defined() ? storages_[i] == t.storage() && versions_[i] == t.version() &&
                                offsets_[i] == t.storage_offset()
                          : storages_[i] == nullptr;
    }
    if (fresh) return {weight_, bias_};
    NoGradGuard ng;
    const int64_t O = conv_weight.size(0);
    // In f32 (f64 for f64 models) whatever the model's dtype, then rounded once: a bf16 model's
    // fold computed in bf16 rounded at each of its five steps and drifted several ulps.
    const DType sdt = running_var.dtype() == DType::f64 || conv_weight.dtype() == DType::f64 ? DType::f64 : DType::f32;
    Tensor s = rsqrt(running_var.to(sdt) + eps);
    if (bn_weight.defined()) s = s * bn_weight.to(sdt);
    Tensor b = (conv_bias.defined() ? conv_bias.to(sdt) : zeros({O}, TensorOptions(sdt).device(s.device()))) -
               running_mean.to(sdt);
    b = b * s;
    if (bn_bias.defined()) b = b + bn_bias.to(sdt);
    weight_ = (conv_weight.to(sdt) * s.reshape({O, 1, 1, 1})).to(conv_weight.dtype()).contiguous();
    bias_ = b.to(conv_weight.dtype()).contiguous();
    eps_ = eps;
    for (size_t i = 0; i < src.size(); ++i) {
      const Tensor& t = *src[i];
      storages_[i] = t.defined() ? t.storage() : nullptr;
      versions_[i] = t.defined() ? t.version() : 0;
      offsets_[i] = t.defined() ? t.storage_offset() : 0;
    }
    return {weight_, bias_};
  }

 private:
  Tensor weight_, bias_;
  double eps_ = 0;
  std::array<std::shared_ptr<Storage>, 6> storages_{};
  std::array<uint32_t, 6> versions_{};
  std::array<int64_t, 6> offsets_{};
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Pair2 kernel_size, Pair2 stride = 1, Padding2d padding = 0,
         Pair2 dilation = 1, int64_t groups = 1, Bias bias = Bias::yes, const LayerOptions& o = {})
      : in_channels(in_channels), out_channels(out_channels), kernel_size(kernel_size), stride(stride),
        padding(padding), dilation(dilation), groups(groups) {
    WANWU_CHECK_VALUE(groups >= 1 && in_channels % groups == 0 && out_channels % groups == 0,
                      "Conv2d: groups (", groups, ") must divide in_channels (", in_channels, ") and out_channels (",
                      out_channels, ")");
    weight = register_parameter(
        "weight", empty({out_channels, kernel_size.h, kernel_size.w, in_channels / groups},
                        TensorOptions(o.dtype).device(o.device)));
    if (bias == Bias::yes)
      this->bias = register_parameter("bias", empty({out_channels}, TensorOptions(o.dtype).device(o.device)));
    reset_parameters(o.generator);
  }
  void reset_parameters(Generator* gen = nullptr) {
    init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
    if (bias.defined()) {
      const double bound = 1.0 / std::sqrt(init::calculate_fans(weight).fan_in);
      init::uniform_(bias, -bound, bound, gen);
    }
  }
  Tensor forward(const Tensor& x) override { return conv2d(x, weight, bias, stride, padding, dilation, groups); }
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override {
    return detail::str(in_channels, ", ", out_channels, ", kernel_size=(", kernel_size.h, ", ", kernel_size.w,
                       "), stride=(", stride.h, ", ", stride.w, ")", groups > 1 ? detail::str(", groups=", groups) : "",
                       bias.defined() ? "" : ", bias=false");
  }
  int64_t in_channels, out_channels;
  Pair2 kernel_size, stride;
  Padding2d padding;
  Pair2 dilation;
  int64_t groups;
  Tensor weight, bias;
};

// BatchNorm over the last (channel) axis: NHWC images (BatchNorm2d) or [N, C] features
// (BatchNorm1d). momentum == nullopt: cumulative moving average (PyTorch's momentum=None).
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                     Affine affine = Affine::yes, TrackRunningStats track = TrackRunningStats::yes,
                     const LayerOptions& o = {})
      : num_features(num_features), eps(eps), momentum(momentum) {
    const TensorOptions opt = TensorOptions(o.dtype).device(o.device);
    if (affine == Affine::yes) {
      weight = register_parameter("weight", ones({num_features}, opt));
      bias = register_parameter("bias", zeros({num_features}, opt));
    }
    if (track == TrackRunningStats::yes) {
      running_mean = register_buffer("running_mean", zeros({num_features}, opt));
      running_var = register_buffer("running_var", ones({num_features}, opt));
      num_batches_tracked = register_buffer("num_batches_tracked", zeros(Shape{}, TensorOptions(DType::i64).device(o.device)));
    }
  }
  Tensor forward(const Tensor& x) override { return forward_act(x, Activation::none); }
  // act(forward(x)) as one op (batch_norm_act): in training it keeps one activation-sized tensor
  // for the backward instead of two. With a residual: act(forward(x) + residual), act none or relu.
  Tensor forward_act(const Tensor& x, Activation act, const Tensor& residual = Tensor()) {
    WANWU_CHECK_SHAPE(x.dim() >= 2 && x.size(-1) == num_features, type_name(), ": expected ", num_features,
                      " channels in the last dimension, got input ", x.shape());
    const bool use_batch_stats = is_training() || !running_mean.defined();
    double m = momentum.value_or(0.0);
    // the count goes up in the statistics' pass, unless the cumulative average (momentum None)
    // needs it on the host first
    Tensor count = is_training() ? num_batches_tracked : Tensor();
    if (count.defined() && !momentum) {
      NoGradGuard ng;
      num_batches_tracked.add_(1);
      m = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
      count = Tensor();
    }
    return batch_norm_act(x, running_mean, running_var, weight, bias, use_batch_stats ? Mode::train : Mode::eval, act,
                          m, eps, residual, count);
  }
  // The eval-mode fold of a preceding convolution into this batch norm (nn/conv_bn.hpp).
  FoldedConvBn& folded() const { return folded_; }
  std::string type_name() const override { return "BatchNorm"; }
  std::string extra_repr() const override {
    return detail::str(num_features, ", eps=", eps, ", momentum=", momentum ? *momentum : -1.0,
                       ", affine=", weight.defined(), ", track_running_stats=", running_mean.defined());
  }
  int64_t num_features;
  double eps;
  std::optional<double> momentum;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  mutable FoldedConvBn folded_;
};
class BatchNorm2d : public BatchNorm {
 public:
  using BatchNorm::BatchNorm;
  Tensor forward(const Tensor& x) override {
    WANWU_CHECK_SHAPE(x.dim() == 4, "BatchNorm2d: expected a 4-D NHWC input, got ", x.shape());
    return BatchNorm::forward(x);
  }
  std::string type_name() const override { return "BatchNorm2d"; }
};
class BatchNorm1d : public BatchNorm {
 public:
  using BatchNorm::BatchNorm;
  std::string type_name() const override { return "BatchNorm1d"; }
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, Affine affine = Affine::yes,
                     const LayerOptions& o = {})
      : normalized_shape(normalized_shape), eps(eps) {
    if (affine == Affine::yes) {
      weight = register_parameter("weight", ones(normalized_shape, TensorOptions(o.dtype).device(o.device)));
      bias = register_parameter("bias", zeros(normalized_shape, TensorOptions(o.dtype).device(o.device)));
    }
  }
  Tensor forward(const Tensor& x) override { return layer_norm(x, normalized_shape, weight, bias, eps); }
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override { return detail::str(normalized_shape, ", eps=", eps); }
  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};

class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, Affine affine = Affine::yes,
            const LayerOptions& o = {})
      : num_groups(num_groups), num_channels(num_channels), eps(eps) {
    WANWU_CHECK_VALUE(num_groups >= 1 && num_channels % num_groups == 0, "GroupNorm: num_groups (", num_groups,
                      ") must divide num_channels (", num_channels, ")");
    if (affine == Affine::yes) {
      weight = register_parameter("weight", ones({num_channels}, TensorOptions(o.dtype).device(o.device)));
      bias = register_parameter("bias", zeros({num_channels}, TensorOptions(o.dtype).device(o.device)));
    }
  }
  Tensor forward(const Tensor& x) override { return group_norm(x, num_groups, weight, bias, eps); }
  std::string type_name() const override { return "GroupNorm"; }
  int64_t num_groups, num_channels;
  double eps;
  Tensor weight, bias;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr) : p(p), gen(gen) {
    WANWU_CHECK_VALUE(p >= 0.0 && p <= 1.0, "Dropout: probability has to be between 0 and 1, got ", p);
  }
  Tensor forward(const Tensor& x) override { return dropout(x, p, mode(), gen); }
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override { return detail::str("p=", p); }
  double p;
  Generator* gen;
};

class DropPath : public Module {
 public:
  explicit DropPath(double p = 0.0, Generator* gen = nullptr) : p(p), gen(gen) {}
  Tensor forward(const Tensor& x) override { return drop_path(x, p, mode(), gen); }
  std::string type_name() const override { return "DropPath"; }
  std::string extra_repr() const override { return detail::str("p=", p); }
  double p;
  Generator* gen;
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_dim, end_dim); }
  std::string type_name() const override { return "Flatten"; }
  int64_t start_dim, end_dim;
};

// ---- activations ----
#define WANWU_ACTIVATION_MODULE(Name, expr)                          \
  class Name : public Module {                                       \
   public:                                                           \
    Tensor forward(const Tensor& x) override { return expr; }        \
    std::string type_name() const override { return #Name; }         \
  };
WANWU_ACTIVATION_MODULE(ReLU, relu(x))
WANWU_ACTIVATION_MODULE(ReLU6, relu6(x))
WANWU_ACTIVATION_MODULE(SiLU, silu(x))
WANWU_ACTIVATION_MODULE(Sigmoid, sigmoid(x))
WANWU_ACTIVATION_MODULE(Tanh, tanh(x))
WANWU_ACTIVATION_MODULE(Hardswish, hardswish(x))
WANWU_ACTIVATION_MODULE(Hardsigmoid, hardsigmoid(x))
#undef WANWU_ACTIVATION_MODULE

class GELU : public Module {
 public:
  explicit GELU(GeluApproximate approximate = GeluApproximate::none) : approximate(approximate) {}
  Tensor forward(const Tensor& x) override { return gelu(x, approximate); }
  std::string type_name() const override { return "GELU"; }
  GeluApproximate approximate;
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, negative_slope); }
  std::string type_name() const override { return "LeakyReLU"; }
  double negative_slope;
};

// ---- pooling ----
class MaxPool2d : public Module {
 public:
  MaxPool2d(Pair2 kernel_size, std::optional<Pair2> stride = std::nullopt, Pair2 padding = 0, Pair2 dilation = 1,
            CeilMode ceil = CeilMode::no)
      : kernel_size(kernel_size), stride(stride.value_or(kernel_size)), padding(padding), dilation(dilation), ceil(ceil) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, kernel_size, stride, padding, dilation, ceil); }
  std::string type_name() const override { return "MaxPool2d"; }
  Pair2 kernel_size, stride, padding, dilation;
  CeilMode ceil;
};

class AvgPool2d : public Module {
 public:
  AvgPool2d(Pair2 kernel_size, std::optional<Pair2> stride = std::nullopt, Pair2 padding = 0,
            CeilMode ceil = CeilMode::no, CountIncludePad cip = CountIncludePad::yes)
      : kernel_size(kernel_size), stride(stride.value_or(kernel_size)), padding(padding), ceil(ceil), cip(cip) {}
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, kernel_size, stride, padding, ceil, cip); }
  std::string type_name() const override { return "AvgPool2d"; }
  Pair2 kernel_size, stride, padding;
  CeilMode ceil;
  CountIncludePad cip;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Pair2 output_size) : output_size(output_size) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, output_size); }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  Pair2 output_size;
};

// ---- containers ----
// Children named "0", "1", ... as PyTorch's nn.Sequential; forward chains them.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> mods) {
    for (auto& m : mods) push_back(m);
  }
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return register_module(std::to_string(size_++), std::move(m));
  }
  // A named child (PyTorch's Sequential(OrderedDict(...))), e.g. "encoder_layer_0".
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    ++size_;
    return register_module(name, std::move(m));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = x;
    for (const auto& [n, c] : named_children()) h = c->forward(h);
    return h;
  }
  std::shared_ptr<Module> operator[](size_t i) const { return named_children().at(i).second; }
  size_t size() const { return size_; }
  std::string type_name() const override { return "Sequential"; }

 private:
  size_t size_ = 0;
};

// Children named "0", "1", ... without a forward of their own (like PyTorch's ModuleList).
class ModuleList : public Module {
 public:
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return register_module(std::to_string(size_++), std::move(m));
  }
  std::shared_ptr<Module> operator[](size_t i) const { return named_children().at(i).second; }
  size_t size() const { return size_; }
  Tensor forward(const Tensor&) override {
    throw Error("ModuleList has no forward: call its modules one by one, or use Sequential");
  }
  std::string type_name() const override { return "ModuleList"; }

 private:
  size_t size_ = 0;
};

}  // namespace wanwu::nn
