// `wanwu eval`: the figures of a checkpoint on a labelled image folder (or Fashion-MNIST's test
// split): accuracy, top-5, per-class precision / recall / F1 / support, macro averages, the
// confusion matrix and the most confused pairs. The folder's classes must be the checkpoint's, in
// the same order, or every label would be scored against the wrong output.
#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "evaluate.hpp"

namespace wanwu::cli {

namespace {
const std::vector<FlagSpec> kFlags = {
    {"checkpoint", Takes::value, "checkpoint written by wanwu train", "FILE"},
    {"data", Takes::value, "DIR/val, DIR (an image folder of classes), or fashion-mnist (its test split)", "DIR"},
    {"json", Takes::nothing, "print one JSON object instead of tables"},
    {"batch-size", Takes::value, "images per forward pass (default 64)", "N"},
    {"workers", Takes::value, "data loading threads (default 2)", "N"},
    {"save-predictions", Takes::value, "write index,source,label,prediction per sample to this CSV", "FILE"},
    {"device", Takes::value, "cpu|cuda (default: cuda when available)", "DEV"},
};
}  // namespace

int run_eval(int argc, char** argv) {
  Args a("eval", kFlags, argc, argv, 2, false);
  if (a.help()) {
    std::cout << help_text("wanwu eval --checkpoint C.safetensors --data DIR_OR_VAL_DIR [--json]",
                           "Evaluates a checkpoint: accuracy, top-5, per-class precision/recall/F1, confusion matrix.",
                           kFlags);
    return 0;
  }
  const std::string ckpt = a.required("checkpoint"), spec = a.required("data");
  const int64_t batch = a.integer("batch-size", 64, 1);
  const int workers = static_cast<int>(a.integer("workers", 2, 0));
  const Device device = pick_device(a, "eval");

  LoadedModel m = load_checkpoint(ckpt, device);
  std::shared_ptr<const data::Dataset> ds;
  if (spec == "fashion-mnist") {
    ds = data::fashion_mnist(data::Split::test, data::default_fashion_mnist_dir(), data::ColorMode::rgb);
  } else {
    std::error_code ec;
    if (!fs::is_directory(spec, ec)) throw RunError("--data '" + spec + "': no such directory");
    const fs::path val = fs::path(spec) / "val";
    ds = std::make_shared<data::ImageFolder>(fs::is_directory(val, ec) ? val.string() : spec);
  }
  if (m.classes.empty()) m.classes.resize(static_cast<size_t>(m.model->num_classes()));
  if (ds->classes() != m.classes) {
    std::string have, want;
    for (const auto& c : ds->classes()) have += (have.empty() ? "" : ",") + c;
    for (const auto& c : m.classes) want += (want.empty() ? "" : ",") + c;
    throw RunError("--data " + spec + ": classes [" + have + "] differ from the checkpoint's [" + want + "]");
  }
  data::LoaderOptions lo;
  lo.batch_size = batch;
  lo.num_workers = workers;
  lo.shuffle = data::Shuffle::no;
  data::DataLoader loader(ds, std::make_shared<data::Compose>(data::eval_transform(m.preprocess.preset)), lo);
  const std::optional<DType> autocast =
      m.recipe.is_object() ? parse_amp_dtype(m.recipe.value("amp", std::string("off"))) : std::nullopt;
  const int64_t C = m.model->num_classes();
  EvalResult r = evaluate(*m.model, loader, device, autocast, C,
                          a.has("save-predictions") ? KeepPredictions::yes : KeepPredictions::no);
  const auto& mt = r.metrics;

  if (a.has("save-predictions")) {
    std::string csv = "index,source,label,prediction\n";
    for (const auto& p : r.predictions)
      csv += std::to_string(p.index) + ",\"" + ds->source(p.index) + "\"," + std::to_string(p.label) + "," +
             std::to_string(p.pred) + "\n";
    write_text_atomic(a.str("save-predictions"), csv);
  }
  const auto macro = mt.macro();
  const auto confused = mt.most_confused(10);
  if (a.has("json")) {
    json pairs = json::array();
    for (const auto& [t, p, n] : confused)
      pairs.push_back({{"true", m.classes[static_cast<size_t>(t)]}, {"predicted", m.classes[static_cast<size_t>(p)]}, {"count", n}});
    json out = {{"checkpoint", ckpt},
                {"data", spec},
                {"samples", mt.count()},
                {"loss", r.loss},
                {"accuracy", mt.accuracy()},
                {"top5", mt.topk_accuracy()},
                {"top5_k", mt.k()},
                {"macro", {{"precision", macro.precision}, {"recall", macro.recall}, {"f1", macro.f1}}},
                {"per_class", per_class_json(mt, m.classes)},
                {"classes", m.classes},
                {"confusion_matrix", confusion_json(mt)},
                {"most_confused", pairs}};
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf("%s on %s: %lld images\n", ckpt.c_str(), spec.c_str(), static_cast<long long>(mt.count()));
  std::printf("accuracy %.4f   top-%lld %.4f   loss %.4f\n\n", mt.accuracy(), static_cast<long long>(mt.k()),
              mt.topk_accuracy(), r.loss);
  size_t w = 5;
  for (const auto& c : m.classes) w = std::max(w, c.size());
  std::printf("%-*s  %9s  %9s  %9s  %7s\n", static_cast<int>(w), "class", "precision", "recall", "f1", "support");
  for (int64_t c = 0; c < C; ++c) {
    const auto s = mt.stats(c);
    std::printf("%-*s  %9.4f  %9.4f  %9.4f  %7lld\n", static_cast<int>(w), m.classes[static_cast<size_t>(c)].c_str(),
                s.precision, s.recall, s.f1, static_cast<long long>(s.support));
  }
  std::printf("%-*s  %9.4f  %9.4f  %9.4f  %7lld\n\n", static_cast<int>(w), "macro avg", macro.precision, macro.recall,
              macro.f1, static_cast<long long>(macro.support));
  if (C <= 30) {
    std::printf("confusion matrix (rows: true, columns: predicted)\n");
    for (int64_t t = 0; t < C; ++t) {
      std::printf("%-*s ", static_cast<int>(w), m.classes[static_cast<size_t>(t)].c_str());
      for (int64_t p = 0; p < C; ++p) std::printf(" %6lld", static_cast<long long>(mt.confusion(t, p)));
      std::printf("\n");
    }
    std::printf("\n");
  }
  if (!confused.empty()) {
    std::printf("most confused (true -> predicted: count)\n");
    for (const auto& [t, p, n] : confused)
      std::printf("  %s -> %s: %lld\n", m.classes[static_cast<size_t>(t)].c_str(), m.classes[static_cast<size_t>(p)].c_str(),
                  static_cast<long long>(n));
  }
  return 0;
}

}  // namespace wanwu::cli
