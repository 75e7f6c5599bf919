// Loading pretrained weights into a model, and saving them so PyTorch can load them back.
//
// read_state_dict() opens safetensors and torch.save'd .pth/.pt files alike (by content, not by
// extension). to_torchvision_names() recognizes the key layout of the checkpoint — torchvision's
// own (also timm's ResNets), timm's EfficientNet and ViT, and the efficientnet_pytorch package's —
// and renames it onto the model's torchvision names (DESIGN D9). Files hold convolution weights as
// PyTorch does, [O, I/g, kH, kW]; the model holds them [O, kH, kW, I/g] (D4), so loading permutes
// every Conv2d weight and save_weights() permutes back. load_weights() does all of it, lets a
// model adapt what it can (a ViT resamples its position grid), and with HeadMismatch::reinitialize
// keeps the model's own freshly initialized head when the checkpoint's has another class count —
// the usual start of a fine-tune.
#pragma once

#include <charconv>
#include <filesystem>
#include <string_view>

#include "../models/efficientnet.hpp"
#include "../models/vit.hpp"
#include "pth.hpp"
#include "safetensors.hpp"

namespace wanwu::io {

enum class HeadMismatch : uint8_t { error, reinitialize };
enum class KeyLayout : uint8_t { torchvision, timm_efficientnet, timm_vit, efficientnet_pytorch };

inline const char* key_layout_name(KeyLayout l) {
  switch (l) {
    case KeyLayout::torchvision: return "torchvision";
    case KeyLayout::timm_efficientnet: return "timm efficientnet";
    case KeyLayout::timm_vit: return "timm vit";
    case KeyLayout::efficientnet_pytorch: return "efficientnet_pytorch";
  }
  return "?";
}

struct WeightsFile {
  nn::StateDict tensors;
  std::map<std::string, std::string> metadata;  // safetensors __metadata__ (empty for .pth)
};

// A safetensors file or a PyTorch checkpoint, told apart by the first bytes.
inline WeightsFile read_state_dict(const std::string& path) {
  {
    const auto m = detail::map_file(path);
    const auto* b = static_cast<const unsigned char*>(m->base);
    const bool zip = m->size >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
    const bool legacy =
        m->size >= sizeof detail::kLegacyMagic && std::memcmp(b, detail::kLegacyMagic, sizeof detail::kLegacyMagic) == 0;
    if (zip || legacy) return {load_pth(path), {}};
    const bool json = m->size >= 9 && b[8] == '{';
    if (!json)
      throw IOError(path + ": neither a safetensors file nor a PyTorch checkpoint (.pth/.pt); convert other formats "
                           "with scripts/convert_weights.py");
  }
  auto f = load_safetensors(path);
  return {std::move(f.tensors), std::move(f.metadata)};
}

inline KeyLayout detect_key_layout(const nn::StateDict& sd) {
  if (sd.contains("_conv_stem.weight")) return KeyLayout::efficientnet_pytorch;
  if (sd.contains("conv_stem.weight")) return KeyLayout::timm_efficientnet;
  if (sd.contains("patch_embed.proj.weight")) return KeyLayout::timm_vit;
  return KeyLayout::torchvision;
}

namespace detail {
// A block index inside a checkpoint key ("12" of "_blocks.12.conv"); -1 when it is not one, so a
// malformed key is reported as unexpected instead of throwing from std::stoi.
inline int64_t parse_index(std::string_view s) {
  int64_t v = -1;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size() && v >= 0 ? v : -1;
}

inline bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Splits "a.b.rest" after `n` dots: ("a.b", "rest").
inline std::pair<std::string, std::string> split_after(const std::string& s, int n) {
  size_t pos = 0;
  for (int i = 0; i < n; ++i) {
    pos = s.find('.', pos);
    if (pos == std::string::npos) return {s, ""};
    ++pos;
  }
  return {s.substr(0, pos - 1), s.substr(pos)};
}

// One MBConv sub-module in torchvision naming: "<block>.block.<index>.<rest>".
inline std::string mbconv_key(const models::MBConv& b, const std::string& block_prefix, models::MBConvPart part,
                              const std::string& rest) {
  const int idx = b.index_of(part);
  if (idx < 0) return "";
  return block_prefix + ".block." + std::to_string(idx) + "." + rest;
}

struct EfficientNetNames {
  const models::EfficientNet& model;
  std::vector<std::pair<int, int>> flat;  // flat block index -> (features index, block index)
  std::string last;                       // features index of the head convolution
  explicit EfficientNetNames(const models::EfficientNet& m) : model(m) {
    const size_t n = m.features->size();
    for (size_t s = 1; s + 1 < n; ++s) {
      const auto stage = std::static_pointer_cast<nn::Sequential>((*m.features)[s]);
      for (size_t b = 0; b < stage->size(); ++b) flat.emplace_back(static_cast<int>(s), static_cast<int>(b));
    }
    last = std::to_string(n - 1);
  }
  const models::MBConv& block(int s, int b) const {
    const auto stage = std::static_pointer_cast<nn::Sequential>((*model.features)[static_cast<size_t>(s)]);
    return *std::static_pointer_cast<models::MBConv>((*stage)[static_cast<size_t>(b)]);
  }
  std::string block_key(int s, int b, models::MBConvPart part, const std::string& rest) const {
    return mbconv_key(block(s, b), "features." + std::to_string(s) + "." + std::to_string(b), part, rest);
  }
};

// part name inside a block -> (MBConv part, name inside that part)
using PartMap = std::vector<std::pair<std::string, std::pair<models::MBConvPart, std::string>>>;

inline std::string map_part(const PartMap& table, const std::string& rest,
                            const std::function<std::string(models::MBConvPart, const std::string&)>& key) {
  for (const auto& [from, to] : table)
    if (starts_with(rest, from + ".")) return key(to.first, to.second + rest.substr(from.size()));
  return "";
}

inline std::string rename_efficientnet_pytorch(const std::string& k, const EfficientNetNames& n) {
  using P = models::MBConvPart;
  static const PartMap part = {{"_expand_conv", {P::expand, "0"}},           {"_bn0", {P::expand, "1"}},
                               {"_depthwise_conv", {P::depthwise, "0"}},     {"_bn1", {P::depthwise, "1"}},
                               {"_se_reduce", {P::squeeze_excitation, "fc1"}}, {"_se_expand", {P::squeeze_excitation, "fc2"}},
                               {"_project_conv", {P::project, "0"}},         {"_bn2", {P::project, "1"}}};
  if (starts_with(k, "_blocks.")) {
    const auto [head, rest] = split_after(k, 2);  // "_blocks.N", "part.param"
    const int64_t flat = detail::parse_index(head.substr(8));
    if (flat < 0 || static_cast<size_t>(flat) >= n.flat.size()) return "";
    const auto [s, b] = n.flat[static_cast<size_t>(flat)];
    return map_part(part, rest, [&](P p, const std::string& r) { return n.block_key(s, b, p, r); });
  }
  static const std::vector<std::pair<std::string, std::string>> top = {
      {"_conv_stem.", "features.0.0."}, {"_bn0.", "features.0.1."}, {"_fc.", "classifier.1."}};
  for (const auto& [from, to] : top)
    if (starts_with(k, from)) return to + k.substr(from.size());
  if (starts_with(k, "_conv_head.")) return "features." + n.last + ".0." + k.substr(11);
  if (starts_with(k, "_bn1.")) return "features." + n.last + ".1." + k.substr(5);
  return "";
}

inline std::string rename_timm_efficientnet(const std::string& k, const EfficientNetNames& n,
                                            const std::set<std::string>& inverted_residual) {
  using P = models::MBConvPart;
  static const PartMap ir = {{"conv_pw", {P::expand, "0"}},       {"bn1", {P::expand, "1"}},
                             {"conv_dw", {P::depthwise, "0"}},    {"bn2", {P::depthwise, "1"}},
                             {"se.conv_reduce", {P::squeeze_excitation, "fc1"}},
                             {"se.conv_expand", {P::squeeze_excitation, "fc2"}},
                             {"conv_pwl", {P::project, "0"}},     {"bn3", {P::project, "1"}}};
  static const PartMap ds = {{"conv_dw", {P::depthwise, "0"}},    {"bn1", {P::depthwise, "1"}},
                             {"se.conv_reduce", {P::squeeze_excitation, "fc1"}},
                             {"se.conv_expand", {P::squeeze_excitation, "fc2"}},
                             {"conv_pw", {P::project, "0"}},      {"bn2", {P::project, "1"}}};
  if (starts_with(k, "blocks.")) {
    const auto [head, rest] = split_after(k, 3);  // "blocks.i.j", "part.param"
    const auto [stage_s, block_s] = split_after(head.substr(7), 1);
    const int64_t s = detail::parse_index(stage_s) + 1, b = detail::parse_index(block_s);
    if (s < 1 || b < 0 || static_cast<size_t>(s) + 1 >= n.model.features->size()) return "";
    const auto stage = std::static_pointer_cast<nn::Sequential>((*n.model.features)[static_cast<size_t>(s)]);
    if (static_cast<size_t>(b) >= stage->size()) return "";
    return map_part(inverted_residual.count(head) ? ir : ds, rest,
                    [&](P p, const std::string& r) { return n.block_key(s, b, p, r); });
  }
  static const std::vector<std::pair<std::string, std::string>> top = {
      {"conv_stem.", "features.0.0."}, {"bn1.", "features.0.1."}, {"classifier.", "classifier.1."}};
  for (const auto& [from, to] : top)
    if (starts_with(k, from)) return to + k.substr(from.size());
  if (starts_with(k, "conv_head.")) return "features." + n.last + ".0." + k.substr(10);
  if (starts_with(k, "bn2.")) return "features." + n.last + ".1." + k.substr(4);
  return "";
}

inline std::string rename_timm_vit(const std::string& k) {
  static const std::vector<std::pair<std::string, std::string>> top = {
      {"patch_embed.proj.", "conv_proj."}, {"norm.", "encoder.ln."}, {"head.", "heads.head."}};
  if (k == "cls_token") return "class_token";
  if (k == "pos_embed") return "encoder.pos_embedding";
  for (const auto& [from, to] : top)
    if (starts_with(k, from)) return to + k.substr(from.size());
  if (starts_with(k, "blocks.")) {
    const auto [head, rest] = split_after(k, 2);
    const std::string layer = "encoder.layers.encoder_layer_" + head.substr(7) + ".";
    static const std::vector<std::pair<std::string, std::string>> part = {
        {"norm1.", "ln_1."},      {"norm2.", "ln_2."},        {"attn.proj.", "self_attention.out_proj."},
        {"mlp.fc1.", "mlp.0."},   {"mlp.fc2.", "mlp.3."}};
    if (rest == "attn.qkv.weight") return layer + "self_attention.in_proj_weight";
    if (rest == "attn.qkv.bias") return layer + "self_attention.in_proj_bias";
    for (const auto& [from, to] : part)
      if (starts_with(rest, from)) return layer + to + rest.substr(from.size());
  }
  return "";
}

}  // namespace detail

// The checkpoint's keys renamed onto `model`'s torchvision names. A key the map does not know is
// kept as it is, so load_state_dict reports it as unexpected.
inline nn::StateDict to_torchvision_names(const nn::StateDict& sd, const models::Classifier& model,
                                          KeyLayout layout) {
  if (layout == KeyLayout::torchvision) return sd;
  std::function<std::string(const std::string&)> rename;
  std::optional<detail::EfficientNetNames> eff;
  std::set<std::string> inverted_residual;
  if (layout == KeyLayout::timm_vit) {
    WANWU_CHECK_T(ValueError, dynamic_cast<const models::VisionTransformer*>(&model) != nullptr,
                  "weights: a timm ViT checkpoint cannot load into ", model.arch());
    rename = detail::rename_timm_vit;
  } else {
    const auto* e = dynamic_cast<const models::EfficientNet*>(&model);
    WANWU_CHECK_T(ValueError, e != nullptr, "weights: a ", key_layout_name(layout), " checkpoint cannot load into ",
                  model.arch());
    eff.emplace(*e);
    if (layout == KeyLayout::efficientnet_pytorch) {
      rename = [&](const std::string& k) { return detail::rename_efficientnet_pytorch(k, *eff); };
    } else {
      for (const auto& [k, v] : sd)
        if (detail::starts_with(k, "blocks.") && k.find(".conv_pwl.") != std::string::npos)
          inverted_residual.insert(detail::split_after(k, 3).first);
      rename = [&](const std::string& k) { return detail::rename_timm_efficientnet(k, *eff, inverted_residual); };
    }
  }
  nn::StateDict out;
  for (const auto& [k, v] : sd) {
    const std::string n = rename(k);
    out.set(n.empty() ? k : n, v);
  }
  return out;
}

// Names of the model's Conv2d weights (stored [O, kH, kW, I/g]; files hold [O, I/g, kH, kW]).
inline std::set<std::string> conv_weight_names(nn::Module& model) {
  std::set<std::string> out;
  for (const auto& [name, m] : model.named_modules())
    if (dynamic_cast<nn::Conv2d*>(m) != nullptr) out.insert(name.empty() ? "weight" : name + ".weight");
  return out;
}

enum class ConvLayout : uint8_t { pytorch, wanwu };  // [O, I/g, kH, kW] or [O, kH, kW, I/g]

struct WeightsReport {
  nn::LoadReport load;
  KeyLayout layout = KeyLayout::torchvision;
  std::vector<std::string> reinitialized;  // head entries the checkpoint had with another shape
};

struct LoadWeightsOptions {
  HeadMismatch head = HeadMismatch::error;
  nn::Strict strict = nn::Strict::yes;
};

// Renames, permutes convolution weights, adapts, and loads a checkpoint into `model`.
inline WeightsReport load_weights(models::Classifier& model, const std::string& path,
                                  const LoadWeightsOptions& opt = {}) {
  WeightsFile f = read_state_dict(path);
  WeightsReport rep;
  rep.layout = detect_key_layout(f.tensors);
  nn::StateDict sd = to_torchvision_names(f.tensors, model, rep.layout);
  const auto it = f.metadata.find("wanwu.conv_layout");
  const bool file_is_wanwu = it != f.metadata.end() && it->second == "OHWI";
  const std::set<std::string> convs = conv_weight_names(model);
  nn::StateDict converted;
  {
    NoGradGuard ng;
    for (const auto& [k, v] : sd)
      converted.set(k, convs.count(k) && v.dim() == 4 && !file_is_wanwu ? v.permute({0, 2, 3, 1}).contiguous() : v);
  }
  model.adapt_state_dict(converted);
  const auto own = model.state_dict();
  if (opt.head == HeadMismatch::reinitialize) {
    nn::StateDict kept;
    const std::string head = model.head_prefix() + ".";
    for (const auto& [k, v] : converted) {
      if (detail::starts_with(k, head) && own.contains(k) && own.at(k).shape() != v.shape()) {
        rep.reinitialized.push_back(k + " " + v.shape().str() + " -> " + own.at(k).shape().str());
        continue;
      }
      kept.set(k, v);
    }
    for (const auto& [k, v] : own)  // the model keeps its own head: not "missing"
      if (detail::starts_with(k, head) && !kept.contains(k)) kept.set(k, v);
    converted = std::move(kept);
  }
  try {
    rep.load = model.load_state_dict(converted, opt.strict);
  } catch (const Error& e) {
    throw ValueError(path + " (" + key_layout_name(rep.layout) + " layout) does not fit " + model.arch() + ": " + e.what() +
                  (opt.head == HeadMismatch::error ? "\n  (a head for another class count? load with "
                                                     "HeadMismatch::reinitialize)"
                                                   : ""));
  }
  return rep;
}

// The model's state dict in PyTorch's layout (convolution weights [O, I/g, kH, kW]), torchvision
// names, as safetensors — torch's model.load_state_dict(safetensors.torch.load_file(path)) takes
// it as it is.
inline void save_weights(const std::string& path, nn::Module& model, std::map<std::string, std::string> metadata = {}) {
  const std::set<std::string> convs = conv_weight_names(model);
  nn::StateDict out;
  {
    NoGradGuard ng;
    for (const auto& [k, v] : model.state_dict())
      out.set(k, convs.count(k) && v.dim() == 4 ? v.permute({0, 3, 1, 2}).contiguous() : v);
  }
  metadata.emplace("format", "pt");
  metadata["wanwu.conv_layout"] = "OIHW";
  save_safetensors(path, out, metadata);
}

}  // namespace wanwu::io
