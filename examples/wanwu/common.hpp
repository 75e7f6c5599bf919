// What several `wanwu` subcommands share: choosing the device, building a model from a checkpoint
// (its metadata says the architecture, the classes and the preprocessing) or from --model and
// --weights (the class count comes from the classifier's weight shape), class-name lists, and
// running a model over a batch in eval mode. Kept out of the library because these are the CLI's
// conventions (metadata keys, defaults), not general-purpose API.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <wanwu/wanwu.hpp>
#include <wanwu/data/data.hpp>

#include "args.hpp"

namespace wanwu::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Metadata keys of the checkpoints `wanwu train` writes (values are JSON text).
inline constexpr const char* kMetaModel = "wanwu.model";
inline constexpr const char* kMetaClasses = "wanwu.classes";
inline constexpr const char* kMetaPreprocess = "wanwu.preprocess";
inline constexpr const char* kMetaRecipe = "wanwu.recipe";

// The 1000 ImageNet class names bundled with the program (imagenet_classes.txt).
const std::vector<std::string>& imagenet_classes();

// --device cpu|cuda|cuda:N; default: cuda when this program has a CUDA device, else cpu.
inline Device pick_device(const Args& a, const std::string& command) {
  if (!a.has("device")) return cuda_is_available() ? Device::cuda(0) : Device::cpu();
  Device d;
  try {
    d = Device::parse(a.str("device"));
  } catch (const Error&) {
    throw UsageError(command + ": --device expects cpu, cuda or cuda:N, got '" + a.str("device") + "'");
  }
  if (d.is_cuda() && !has_backend(DeviceType::cuda))
    throw UsageError(command + ": --device " + a.str("device") +
                     ": this wanwu was built without the CUDA backend (configure with -DWANWU_CUDA=ON); use --device cpu");
  if (d.is_cuda() && !cuda_is_available())
    throw RunError(command + ": --device " + a.str("device") + ": no CUDA device is available");
  return d;
}

inline void require_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw RunError(what + " '" + path + "' does not exist");
  if (fs::is_directory(path, ec)) throw RunError(what + " '" + path + "' is a directory, expected a file");
}

// The preprocessing a checkpoint was trained with (defaults: ImageNet's eval transform).
struct Preprocess {
  data::PresetOptions preset;
  json to_json() const {
    return {{"img_size", preset.size}, {"resize", preset.resize}, {"mean", preset.mean}, {"std", preset.std}};
  }
  static Preprocess from_json(const json& j) {
    Preprocess p;
    p.preset.size = j.value("img_size", int64_t{224});
    p.preset.resize = j.value("resize", int64_t{256});
    if (j.contains("mean")) p.preset.mean = j.at("mean").get<std::vector<double>>();
    if (j.contains("std")) p.preset.std = j.at("std").get<std::vector<double>>();
    return p;
  }
};

// The resize that goes with a crop size: 224 -> 256 as torchvision; small images are not upscaled
// beyond the crop.
inline int64_t resize_for(int64_t img_size) { return img_size >= 64 ? img_size * 256 / 224 : img_size; }

struct LoadedModel {
  std::shared_ptr<models::Classifier> model;
  std::string arch;
  std::vector<std::string> classes;  // empty when the weights carry no names
  Preprocess preprocess;
  json recipe;
};

inline json parse_meta(const std::map<std::string, std::string>& meta, const char* key, const std::string& path) {
  const auto it = meta.find(key);
  if (it == meta.end()) return json();
  try {
    return json::parse(it->second);
  } catch (const json::exception&) {
    throw RunError(path + ": metadata '" + key + "' is not valid JSON");
  }
}

// The number of classes a weights file's classifier has, read from the head's weight shape.
inline int64_t head_classes(const std::string& arch, const nn::StateDict& tensors, const std::string& path) {
  models::ModelOptions o;
  o.num_classes = 1;
  auto probe = models::create_model(arch, o);
  const auto renamed = io::to_torchvision_names(tensors, *probe, io::detect_key_layout(tensors));
  std::string head_weight;
  for (const auto& [k, v] : probe->state_dict())
    if (k.rfind(probe->head_prefix() + ".", 0) == 0 && k.size() > 7 && k.compare(k.size() - 7, 7, ".weight") == 0)
      head_weight = k;
  if (head_weight.empty() || !renamed.contains(head_weight))
    throw RunError(path + ": has no classifier weight '" + head_weight + "' for model " + arch +
                   " (weights for another architecture?)");
  return renamed.at(head_weight).size(0);
}

// load_weights with a short message when the file does not fit: the library's text lists every
// missing key and shape, which is right for a debugger and too long for one line of CLI output.
inline io::WeightsReport load_weights_checked(models::Classifier& model, const std::string& path,
                                              const io::LoadWeightsOptions& opt = {}) {
  try {
    return io::load_weights(model, path, opt);
  } catch (const ValueError& e) {
    std::string detail = e.what();
    for (auto& c : detail)
      if (c == '\n') c = ' ';
    size_t from = std::string::npos;
    for (const char* k : {"missing keys", "unexpected keys", "shape mismatches"})
      from = std::min(from, detail.find(k));
    std::string first = from == std::string::npos ? detail : detail.substr(from);
    if (first.size() > 240) first = first.substr(0, 240) + "...";
    throw RunError(path + ": these weights do not fit " + model.arch() + " (weights for another architecture?): " + first);
  }
}

// A checkpoint written by `wanwu train` (architecture, classes and preprocessing in its metadata).
inline LoadedModel load_checkpoint(const std::string& path, Device device) {
  require_file(path, "checkpoint");
  io::WeightsFile f = io::read_state_dict(path);
  LoadedModel m;
  const json model = parse_meta(f.metadata, kMetaModel, path);
  if (!model.is_string())
    throw RunError(path + ": not a wanwu checkpoint (no '" + std::string(kMetaModel) +
                   "' metadata); use --model M --weights " + path);
  m.arch = model.get<std::string>();
  const json classes = parse_meta(f.metadata, kMetaClasses, path);
  if (classes.is_array()) m.classes = classes.get<std::vector<std::string>>();
  const json pre = parse_meta(f.metadata, kMetaPreprocess, path);
  if (pre.is_object()) m.preprocess = Preprocess::from_json(pre);
  m.recipe = parse_meta(f.metadata, kMetaRecipe, path);
  models::ModelOptions o;
  o.num_classes = m.classes.empty() ? head_classes(m.arch, f.tensors, path) : static_cast<int64_t>(m.classes.size());
  o.image_size = m.preprocess.preset.size;
  m.model = models::create_model(m.arch, o);
  load_weights_checked(*m.model, path);
  if (device != Device::cpu()) m.model->to(device);
  m.model->eval();
  return m;
}

// --model M --weights W: any torchvision-layout safetensors or .pth; classes from the head.
inline LoadedModel load_model_weights(const std::string& arch, const std::string& path, Device device,
                                      int64_t image_size) {
  require_file(path, "weights file");
  LoadedModel m;
  m.arch = arch;
  io::WeightsFile f = io::read_state_dict(path);
  models::ModelOptions o;
  o.num_classes = head_classes(arch, f.tensors, path);
  o.image_size = image_size;
  m.model = models::create_model(arch, o);
  load_weights_checked(*m.model, path);
  if (device != Device::cpu()) m.model->to(device);
  m.model->eval();
  const json classes = parse_meta(f.metadata, kMetaClasses, path);
  if (classes.is_array()) m.classes = classes.get<std::vector<std::string>>();
  return m;
}

// --model must be a registered name; a usage error otherwise, listing the names.
inline std::string check_model_name(const std::string& command, const std::string& name) {
  const auto names = models::model_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) return name;
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  throw UsageError(command + ": --model: unknown model '" + name + "' (known: " + list + ")");
}

// One name per line; blank lines are kept as names only when inside the list.
inline std::vector<std::string> read_lines(const std::string& path, const std::string& what) {
  require_file(path, what);
  std::ifstream in(path);
  if (!in) throw RunError(what + " '" + path + "' cannot be read");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

// Eval-mode logits [N, classes] as f32 on the CPU, for NHWC f32 images, in chunks of batch_size.
inline Tensor eval_logits(models::Classifier& model, const Tensor& images_nhwc, Device device, int64_t batch_size,
                          std::optional<DType> autocast) {
  NoGradGuard ng;
  std::vector<Tensor> parts;
  const int64_t n = images_nhwc.size(0);
  for (int64_t s = 0; s < n; s += batch_size) {
    const int64_t e = std::min(n, s + batch_size);
    Tensor x = images_nhwc.slice(0, s, e).to(device);
    Tensor y;
    if (autocast) {
      amp::Autocast ac(*autocast);
      y = model.forward(x);
    } else {
      y = model.forward(x);
    }
    parts.push_back(y.to(Device::cpu(), DType::f32).contiguous());
  }
  return parts.size() == 1 ? parts[0] : cat(parts, 0);
}

inline std::optional<DType> parse_amp_dtype(const std::string& s) {
  if (s == "f16" || s == "fp16") return DType::f16;
  if (s == "bf16") return DType::bf16;
  return std::nullopt;
}

inline bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

// The lines of a run's metrics.jsonl (one JSON object per epoch) up to epoch `through_epoch`;
// unreadable lines are skipped (a run killed mid-write leaves at most a partial last line). train
// reads them back on --resume, the sweep to rank and resume its trials.
inline std::vector<json> read_metrics(const fs::path& file,
                                      int64_t through_epoch = std::numeric_limits<int64_t>::max()) {
  std::vector<json> h;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      if (j.value("epoch", int64_t{0}) <= through_epoch) h.push_back(std::move(j));
    } catch (const json::exception&) {
    }
  }
  return h;
}

// ---- Classifying images: shared by predict and serve, so that the same bytes and checkpoint give
// the same answer from both by construction (one preprocessing, one forward, one top-k rule). ----

// The model input for one decoded image: the checkpoint's eval transform. Eval transforms are
// deterministic; the generator is required by the interface and never drawn from.
inline data::Image preprocess_image(const data::Compose& transform, data::Image decoded) {
  data::SampleRng rng(0, data::RngPurpose::augment, 0, 0);
  return transform.apply(std::move(decoded), rng);
}

// Class probabilities [N, classes] (f32, CPU) for a batch of preprocessed NHWC images.
inline Tensor eval_probs(models::Classifier& model, const Tensor& images_nhwc, Device device, int64_t batch_size) {
  return softmax(eval_logits(model, images_nhwc, device, batch_size, std::nullopt), 1);
}

// The k most probable classes of one row of probabilities, most probable first; ties go to the
// lower class id so that the order is reproducible.
inline std::vector<int64_t> topk_order(const float* row, int64_t classes, int64_t k) {
  k = std::min(k, classes);
  std::vector<int64_t> order(static_cast<size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) order[static_cast<size_t>(c)] = c;
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t x, int64_t y) { return row[x] > row[y] || (row[x] == row[y] && x < y); });
  order.resize(static_cast<size_t>(k));
  return order;
}

inline std::string class_label(const std::vector<std::string>& labels, int64_t c) {
  return labels.empty() ? std::to_string(c) : labels[static_cast<size_t>(c)];
}

// [{"class_id", "label", "prob"}, ...] for the top k: predict --json's "topk" and serve's answer.
inline json topk_json(const float* row, int64_t classes, int64_t k, const std::vector<std::string>& labels) {
  json top = json::array();
  for (const int64_t c : topk_order(row, classes, k))
    top.push_back({{"class_id", c}, {"label", class_label(labels, c)}, {"prob", row[c]}});
  return top;
}

}  // namespace wanwu::cli
