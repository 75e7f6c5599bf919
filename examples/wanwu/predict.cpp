// `wanwu predict`: images in, top-k labels out. The model comes from a `wanwu train` checkpoint
// (its classes and preprocessing travel in the metadata) or from --model/--weights (ImageNet
// preprocessing; labels from --labels, the bundled ImageNet names for 1000-class heads, else class
// indices). Unreadable images are errors naming the file: a silent skip would misalign the output.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"

namespace wanwu::cli {

namespace {
const std::vector<FlagSpec> kFlags = {
    {"checkpoint", Takes::value, "checkpoint written by wanwu train (classes and preprocessing from it)", "FILE"},
    {"model", Takes::value, "architecture (torchvision name), with --weights", "NAME"},
    {"weights", Takes::value, "safetensors or .pth weights with torchvision names", "FILE"},
    {"topk", Takes::value, "labels per image (default 5)", "K"},
    {"labels", Takes::value, "imagenet | FILE with one class name per line (default: the checkpoint's)", "L"},
    {"json", Takes::nothing, "one JSON object per image: {\"image\", \"topk\": [{class_id, label, prob}]}"},
    {"batch-size", Takes::value, "images per forward pass (default 16)", "N"},
    {"device", Takes::value, "cpu|cuda (default: cuda when available)", "DEV"},
};
}  // namespace

int run_predict(int argc, char** argv) {
  Args a("predict", kFlags, argc, argv, 2, true);
  if (a.help()) {
    std::cout << help_text("wanwu predict (--checkpoint C | --model M --weights W) [--topk 5] [--labels imagenet|FILE] "
                           "[--json] IMAGE...",
                           "Prints the top-k classes of each image with their probabilities.", kFlags);
    return 0;
  }
  const int64_t topk_req = a.integer("topk", 5, 1);
  const int64_t batch = a.integer("batch-size", 16, 1);
  const bool as_json = a.has("json");
  const Device device = pick_device(a, "predict");
  if (a.has("checkpoint") == (a.has("model") || a.has("weights")))
    throw UsageError("predict: give either --checkpoint, or --model and --weights");
  if (!a.has("checkpoint") && !(a.has("model") && a.has("weights")))
    throw UsageError("predict: --model and --weights go together");
  if (a.positional().empty()) throw UsageError("predict: no images given (wanwu predict ... IMAGE...)");
  if (a.has("model")) check_model_name("predict", a.str("model"));

  LoadedModel m = a.has("checkpoint") ? load_checkpoint(a.str("checkpoint"), device)
                                      : load_model_weights(a.str("model"), a.str("weights"), device, 224);
  const int64_t classes = m.model->num_classes();
  std::vector<std::string> labels = m.classes;
  if (a.has("labels")) {
    labels = a.str("labels") == "imagenet" ? imagenet_classes() : read_lines(a.str("labels"), "--labels file");
  } else if (labels.empty() && classes == 1000) {
    labels = imagenet_classes();
  }
  if (!labels.empty() && static_cast<int64_t>(labels.size()) != classes)
    throw RunError("--labels: " + std::to_string(labels.size()) + " names for a model with " + std::to_string(classes) +
                   " classes");
  const int64_t k = std::min(topk_req, classes);

  const data::Compose transform = data::eval_transform(m.preprocess.preset);
  const auto& paths = a.positional();
  for (size_t s = 0; s < paths.size(); s += static_cast<size_t>(batch)) {
    const size_t e = std::min(paths.size(), s + static_cast<size_t>(batch));
    std::vector<data::Image> imgs;
    for (size_t i = s; i < e; ++i) {
      imgs.push_back(preprocess_image(transform, data::decode_image(paths[i])));
    }
    const Tensor probs = eval_probs(*m.model, data::collate(imgs), device, batch);
    const std::vector<float> p = probs.contiguous().tolist<float>();
    for (size_t i = s; i < e; ++i) {
      const float* row = p.data() + (i - s) * static_cast<size_t>(classes);
      if (as_json) {
        std::cout << json{{"image", paths[i]}, {"topk", topk_json(row, classes, k, labels)}}.dump() << "\n";
      } else {
        std::cout << paths[i] << "\n";
        const std::vector<int64_t> order = topk_order(row, classes, k);
        for (size_t j = 0; j < order.size(); ++j) {
          char buf[64];
          std::snprintf(buf, sizeof buf, "  %2lld. %6.2f%%  ", static_cast<long long>(j + 1),
                        100.0 * static_cast<double>(row[order[j]]));
          std::cout << buf << class_label(labels, order[j]) << " (class " << order[j] << ")\n";
        }
      }
    }
  }
  return 0;
}

}  // namespace wanwu::cli
