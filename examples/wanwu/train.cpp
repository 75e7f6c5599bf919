// `wanwu train`: fine-tune (or train from scratch) an image classifier on an image folder or on
// Fashion-MNIST, with the whole recipe on the command line, and leave a run directory that
// explains itself (checkpoints, metrics.jsonl, confusion matrix, report.html, config.json).
//
// Resumability drives the shape of this file: everything a step depends on (model, optimizer,
// schedules, grad scaler, the default RNG, epoch and batch position, running loss sums) goes into
// one state file, state.safetensors, written atomically after every epoch and on an early stop
// (Ctrl-C, --max-steps). The data order and augmentation are pure functions of (seed, epoch,
// position), so a resumed run recomputes the same batches and continues bit-identically on the
// CPU. The recipe is stored in config.json and reused on --resume, so a resumed run cannot
// silently change it.
#include <atomic>
#include <chrono>
#include <csignal>
#include <exception>
#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "evaluate.hpp"
#include "pending_losses.hpp"
#include "progress.hpp"
#include "report.hpp"

namespace wanwu::cli {

namespace {

const std::vector<FlagSpec> kTrainFlags = {
    {"data", Takes::value, "DIR with train/<class>/ and val/<class>/ image folders, or fashion-mnist", "DIR"},
    {"model", Takes::value, "architecture (torchvision name): resnet18..152, efficientnet_b0..b7, vit_b_16...", "NAME"},
    {"weights", Takes::value, "start from these weights (safetensors/.pth); the head is replaced", "FILE"},
    {"out", Takes::value, "run directory (checkpoints, metrics, report)", "RUNDIR"},
    {"epochs", Takes::value, "epochs (default 10)", "N"},
    {"batch-size", Takes::value, "images per micro-batch (default 64)", "N"},
    {"accum-steps", Takes::value, "micro-batches per optimizer step (default 1)", "K"},
    {"lr", Takes::value, "peak learning rate (default 1e-3)", "LR"},
    {"optimizer", Takes::value, "adamw|adam|sgd (default adamw)", "OPT"},
    {"momentum", Takes::value, "SGD momentum (default 0.9)", "M"},
    {"nesterov", Takes::nothing, "Nesterov momentum (SGD)"},
    {"weight-decay", Takes::value, "weight decay, not applied to biases and norm parameters (default 0.05)", "WD"},
    {"scheduler", Takes::value, "cosine|step|plateau|onecycle|none (default cosine)", "S"},
    {"warmup-epochs", Takes::value, "linear warm-up epochs (default 1; fractions allowed)", "E"},
    {"amp", Takes::value, "off|fp16|bf16 mixed precision; fp16 uses dynamic loss scaling (default off)", "MODE"},
    {"label-smoothing", Takes::value, "label smoothing in [0,1) (default 0)", "X"},
    {"class-weights", Takes::value, "none|auto|FILE: loss weights; auto = inverse class frequency", "W"},
    {"sampler", Takes::value, "uniform|balanced (default uniform)", "S"},
    {"freeze-backbone", Takes::nothing, "train only the classifier head"},
    {"img-size", Takes::value, "training/eval crop size (default 224)", "PX"},
    {"augment", Takes::value, "default|none|strong (default default)", "A"},
    {"workers", Takes::value, "data loading threads (default 2)", "N"},
    {"seed", Takes::value, "seed for initialization, data order and augmentation (default 0)", "N"},
    {"max-steps", Takes::value, "stop after this many optimizer steps in total (resume later)", "N"},
    {"resume", Takes::value, "continue the run in RUNDIR with its saved recipe", "RUNDIR"},
    {"device", Takes::value, "cpu|cuda (default: cuda when available)", "DEV"},
    {"conv-search", Takes::value,
     "heuristic|benchmark: how CUDA convolutions pick cuDNN's algorithm for a shape; benchmark times the candidates "
     "on first use, as torch.backends.cudnn.benchmark (default heuristic)", "MODE"},
    {"tf32", Takes::nothing,
     "CUDA f32 matrix products and convolutions may use TF32 tensor cores (about 1e-3 relative error)"},
    {"cuda-graph", Takes::nothing,
     "on CUDA, replay each training step from one captured CUDA graph (same results, fewer launches; not with "
     "--accum-steps above 1)"},
};

// Flags that may accompany --resume: they do not change the recipe (how fast the GPU runs it, where).
const std::vector<std::string> kResumeFlags = {"resume", "max-steps", "workers", "device", "out", "conv-search", "tf32",
                                               "cuda-graph"};

// --conv-search and --tf32 (per-thread settings, set for the thread that trains).
ConvAlgorithmSearch conv_search_flag(const Args& a) {
  return a.choice("conv-search", {"heuristic", "benchmark"}, "heuristic") == "benchmark" ? ConvAlgorithmSearch::benchmark
                                                                                        : ConvAlgorithmSearch::heuristic;
}
MatmulPrecision precision_flag(const Args& a) { return a.has("tf32") ? MatmulPrecision::tf32 : MatmulPrecision::highest; }

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) {
  g_interrupted = 1;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
}

struct Config {
  std::string data, model, weights, out;
  int64_t epochs = 10, batch_size = 64, accum_steps = 1, img_size = 224, workers = 2, seed = 0, max_steps = 0;
  double lr = 1e-3, momentum = 0.9, weight_decay = 0.05, warmup_epochs = 1, label_smoothing = 0;
  bool nesterov = false, freeze_backbone = false;
  std::string optimizer = "adamw", scheduler = "cosine", amp = "off", class_weights = "none", sampler = "uniform",
              augment = "default";

  json to_json() const {
    return {{"data", data},
            {"model", model},
            {"weights", weights},
            {"epochs", epochs},
            {"batch_size", batch_size},
            {"accum_steps", accum_steps},
            {"lr", lr},
            {"optimizer", optimizer},
            {"momentum", momentum},
            {"nesterov", nesterov},
            {"weight_decay", weight_decay},
            {"scheduler", scheduler},
            {"warmup_epochs", warmup_epochs},
            {"amp", amp},
            {"label_smoothing", label_smoothing},
            {"class_weights", class_weights},
            {"sampler", sampler},
            {"freeze_backbone", freeze_backbone},
            {"img_size", img_size},
            {"augment", augment},
            {"seed", seed}};
  }
  static Config from_json(const json& j) {
    Config c;
    c.data = j.at("data");
    c.model = j.at("model");
    c.weights = j.at("weights");
    c.epochs = j.at("epochs");
    c.batch_size = j.at("batch_size");
    c.accum_steps = j.at("accum_steps");
    c.lr = j.at("lr");
    c.optimizer = j.at("optimizer");
    c.momentum = j.at("momentum");
    c.nesterov = j.at("nesterov");
    c.weight_decay = j.at("weight_decay");
    c.scheduler = j.at("scheduler");
    c.warmup_epochs = j.at("warmup_epochs");
    c.amp = j.at("amp");
    c.label_smoothing = j.at("label_smoothing");
    c.class_weights = j.at("class_weights");
    c.sampler = j.at("sampler");
    c.freeze_backbone = j.at("freeze_backbone");
    c.img_size = j.at("img_size");
    c.augment = j.at("augment");
    c.seed = j.at("seed");
    return c;
  }
};

Config parse_config(const Args& a) {
  Config c;
  c.data = a.required("data");
  c.model = check_model_name("train", a.required("model"));
  c.weights = a.str("weights");
  c.out = a.required("out");
  c.epochs = a.integer("epochs", 10, 1);
  c.batch_size = a.integer("batch-size", 64, 1);
  c.accum_steps = a.integer("accum-steps", 1, 1);
  c.lr = a.number("lr", 1e-3, 0.0);
  c.optimizer = a.choice("optimizer", {"adamw", "adam", "sgd"}, "adamw");
  c.momentum = a.number("momentum", 0.9, 0.0, 1.0);
  c.nesterov = a.has("nesterov");
  c.weight_decay = a.number("weight-decay", 0.05, 0.0);
  c.scheduler = a.choice("scheduler", {"cosine", "step", "plateau", "onecycle", "none"}, "cosine");
  c.warmup_epochs = a.number("warmup-epochs", 1, 0.0);
  c.amp = a.choice("amp", {"off", "fp16", "bf16"}, "off");
  c.label_smoothing = a.number("label-smoothing", 0.0, 0.0, 0.999);
  c.class_weights = a.str("class-weights", "none");
  c.sampler = a.choice("sampler", {"uniform", "balanced"}, "uniform");
  c.freeze_backbone = a.has("freeze-backbone");
  c.img_size = a.integer("img-size", 224, 8);
  c.augment = a.choice("augment", {"default", "none", "strong"}, "default");
  c.seed = a.integer("seed", 0, 0);
  if (c.nesterov && c.optimizer != "sgd") throw UsageError("train: --nesterov needs --optimizer sgd");
  return c;
}

Tensor train_forward(models::Classifier& model, const Tensor& x, const Tensor& y, const std::optional<DType>& autocast,
                     const CrossEntropyOptions& ce) {
  std::optional<amp::Autocast> ac;
  if (autocast) ac.emplace(*autocast);
  return cross_entropy(model.forward(x), y, ce);
}

// One training step captured into a CUDA graph (backend/step_graph.hpp) with its own input
// tensors: a replay copies the batch in and reruns the step's device work.
struct GraphedStep {
  StepGraph graph;
  Tensor x, y, loss;
  explicit GraphedStep(Device d) : graph(d) {}
  const Tensor& replay(const data::Batch& b) {
    x.copy_(b.images, NonBlocking::yes);
    y.copy_(b.labels, NonBlocking::yes);
    graph.replay();
    return loss;
  }
};
template <class Step>
std::unique_ptr<GraphedStep> capture_train_step(Device device, const data::Batch& b, Step step) {
  auto g = std::make_unique<GraphedStep>(device);
  g->x = empty_tensor(b.images.shape(), b.images.dtype(), device);
  g->y = empty_tensor(b.labels.shape(), b.labels.dtype(), device);
  g->graph.capture([gp = g.get(), step] { gp->loss = step(gp->x, gp->y); });
  return g;
}

data::AugmentPreset augment_preset(const std::string& s) {
  if (s == "none") return data::AugmentPreset::none;
  if (s == "strong") return data::AugmentPreset::strong;
  return data::AugmentPreset::default_;
}

struct Datasets {
  std::shared_ptr<const data::Dataset> train, val;
};

Datasets open_datasets(const std::string& spec) {
  if (spec == "fashion-mnist") {
    const std::string root = data::default_fashion_mnist_dir();
    if (!fs::exists(root))
      throw RunError("--data fashion-mnist: " + root +
                     " not found (install the Debian package dataset-fashion-mnist, e.g. scripts/setup-deps.sh)");
    return {data::fashion_mnist(data::Split::train, root, data::ColorMode::rgb),
            data::fashion_mnist(data::Split::test, root, data::ColorMode::rgb)};
  }
  std::error_code ec;
  if (!fs::is_directory(spec, ec)) throw RunError("--data '" + spec + "': no such directory");
  for (const char* sub : {"train", "val"})
    if (!fs::is_directory(fs::path(spec) / sub, ec))
      throw RunError("--data '" + spec + "': no '" + sub +
                     "' folder (expected DIR/train/<class>/*.jpg|png and DIR/val/<class>/...)");
  auto f = data::image_folder_train_val(spec);
  return {f.train, f.val};
}

Tensor load_class_weights(const Config& c, const data::Dataset& train) {
  if (c.class_weights == "none") return Tensor();
  if (c.class_weights == "auto") return data::class_weights(train);
  const auto lines = read_lines(c.class_weights, "--class-weights file");
  std::vector<float> w;
  for (const auto& l : lines) {
    if (l.empty()) continue;
    try {
      size_t used = 0;
      const double v = std::stod(l, &used);
      if (used != l.size() || !(v >= 0)) throw std::invalid_argument(l);
      w.push_back(static_cast<float>(v));
    } catch (const std::exception&) {
      throw RunError("--class-weights " + c.class_weights + ": expected one non-negative number per line, got '" + l +
                     "'");
    }
  }
  if (static_cast<int64_t>(w.size()) != train.num_classes())
    throw RunError("--class-weights " + c.class_weights + ": " + std::to_string(w.size()) + " weights for " +
                   std::to_string(train.num_classes()) + " classes");
  Tensor t = empty({static_cast<int64_t>(w.size())}, DType::f32);
  std::copy(w.begin(), w.end(), t.data<float>());
  return t;
}

// The learning-rate schedule for a recipe: per optimizer step for everything but the plateau
// rule, which steps once per epoch on the validation loss (with an optional per-step warm-up).
struct Schedules {
  std::unique_ptr<optim::Schedule> per_step;             // may be null (none, plateau w/o warm-up)
  std::shared_ptr<optim::LinearLR> warmup_only;          // plateau/none: warm-up alone
  std::unique_ptr<optim::ReduceLROnPlateau> plateau;     // plateau
  int64_t warmup_steps = 0;

  void step(int64_t global_step) {
    if (per_step) per_step->step();
    if (warmup_only && global_step <= warmup_steps) warmup_only->step();
  }
  nn::StateDict state_dict() const {
    nn::StateDict sd;
    if (per_step) sd.merge("per_step", per_step->state_dict());
    if (warmup_only) sd.merge("warmup", warmup_only->state_dict());
    if (plateau) sd.merge("plateau", plateau->state_dict());
    return sd;
  }
  void load_state_dict(const nn::StateDict& sd) {
    if (per_step) per_step->load_state_dict(sd.sub("per_step"));
    if (warmup_only) warmup_only->load_state_dict(sd.sub("warmup"));
    if (plateau) plateau->load_state_dict(sd.sub("plateau"));
  }
};

Schedules make_schedules(const Config& c, optim::Optimizer& opt, int64_t steps_per_epoch) {
  Schedules s;
  const int64_t total = steps_per_epoch * c.epochs;
  s.warmup_steps = std::min<int64_t>(static_cast<int64_t>(c.warmup_epochs * static_cast<double>(steps_per_epoch) + 0.5),
                                     total - 1);
  if (s.warmup_steps < 0) s.warmup_steps = 0;
  const int64_t w = s.warmup_steps;
  if (c.scheduler == "cosine") {
    if (w > 0) s.per_step = std::make_unique<optim::SequentialLR>(optim::warmup_cosine(opt, w, total));
    else s.per_step = std::make_unique<optim::CosineAnnealingLR>(opt, std::max<int64_t>(1, total));
  } else if (c.scheduler == "step") {
    // x0.1 after each third of the run (torchvision's reference recipes drop 10x twice or thrice)
    const int64_t step_size = std::max<int64_t>(1, (total - w) / 3);
    if (w > 0) {
      auto warm = std::make_shared<optim::LinearLR>(opt, 0.01, 1.0, w);
      auto st = std::make_shared<optim::StepLR>(opt, step_size, 0.1);
      s.per_step = std::make_unique<optim::SequentialLR>(opt, std::vector<std::shared_ptr<optim::LRScheduler>>{warm, st},
                                                         std::vector<int64_t>{w});
    } else {
      s.per_step = std::make_unique<optim::StepLR>(opt, step_size, 0.1);
    }
  } else if (c.scheduler == "onecycle") {
    optim::OneCycleOptions o;
    o.max_lr = {c.lr};
    o.total_steps = std::max<int64_t>(2, total);
    if (c.warmup_epochs > 0) o.pct_start = std::min(0.5, std::max(1.0 / static_cast<double>(total), c.warmup_epochs / static_cast<double>(c.epochs)));
    o.cycle_momentum = c.optimizer == "sgd" && c.momentum > 0 ? optim::CycleMomentum::yes : optim::CycleMomentum::no;
    s.per_step = std::make_unique<optim::OneCycleLR>(opt, o);
    s.warmup_steps = 0;
  } else {  // plateau, none: constant after an optional linear warm-up
    if (w > 0) s.warmup_only = std::make_shared<optim::LinearLR>(opt, 0.01, 1.0, w);
    if (c.scheduler == "plateau") {
      optim::PlateauOptions po;
      po.patience = 2;
      s.plateau = std::make_unique<optim::ReduceLROnPlateau>(opt, po);
    }
  }
  return s;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Config& c, models::Classifier& model) {
  std::vector<optim::ParamGroup> groups = optim::decay_groups(model, c.weight_decay);
  if (groups.empty()) throw RunError("train: the model has no trainable parameters");
  for (auto& g : groups) {
    g.lr = c.lr;
    if (c.optimizer == "sgd") {
      g.momentum = c.momentum;
      g.nesterov = c.nesterov ? optim::Nesterov::yes : optim::Nesterov::no;
    }
  }
  if (c.optimizer == "sgd") return std::make_unique<optim::SGD>(std::move(groups));
  if (c.optimizer == "adam") return std::make_unique<optim::Adam>(std::move(groups));
  return std::make_unique<optim::AdamW>(std::move(groups));
}

// Where a run stands; saved in state.safetensors' metadata.
struct RunState {
  int64_t epoch = 0;           // 0-based epoch in progress (or next to start)
  int64_t batch = 0;           // micro-batches of `epoch` already consumed
  int64_t global_step = 0;     // optimizer steps so far
  double loss_sum = 0;         // this epoch's summed per-sample training loss so far
  int64_t loss_count = 0;
  double best_acc = -1;
  int64_t best_epoch = 0;      // 1-based, 0: none yet
  json lr_trace = json::array();  // this epoch's [step, lr] samples so far (for the report)
  json to_json() const {
    return {{"epoch", epoch},       {"batch", batch},           {"global_step", global_step}, {"loss_count", loss_count},
            {"best_acc", best_acc}, {"best_epoch", best_epoch}, {"lr_trace", lr_trace}};
  }
};

const char* kStateFile = "state.safetensors";

void save_state(const fs::path& dir, const RunState& st, models::Classifier& model, const optim::Optimizer& opt,
                const Schedules& sch, const amp::GradScaler& scaler) {
  nn::StateDict sd;
  {
    NoGradGuard ng;
    for (const auto& [k, v] : model.state_dict()) sd.set("model." + k, v.detach());
  }
  sd.merge("optim", opt.state_dict());
  sd.merge("sched", sch.state_dict());
  sd.merge("scaler", scaler.state_dict());
  sd.set("loss_sum", scalar_tensor(st.loss_sum, DType::f64));
  const Generator& g = default_generator();
  json meta = st.to_json();
  meta["rng_seed"] = std::to_string(g.seed());
  meta["rng_offset"] = std::to_string(g.offset());
  io::save_safetensors((dir / kStateFile).string(), sd, {{"wanwu.state", meta.dump()}});
}

RunState load_state(const fs::path& dir, models::Classifier& model, optim::Optimizer& opt, Schedules& sch,
                    amp::GradScaler& scaler) {
  const fs::path p = dir / kStateFile;
  require_file(p.string(), "--resume: state file");
  io::SafetensorsFile f = io::load_safetensors(p.string());
  const auto it = f.metadata.find("wanwu.state");
  if (it == f.metadata.end()) throw RunError(p.string() + ": no 'wanwu.state' metadata; not a wanwu run state");
  const json m = json::parse(it->second);
  RunState st;
  st.epoch = m.at("epoch");
  st.batch = m.at("batch");
  st.global_step = m.at("global_step");
  st.loss_count = m.at("loss_count");
  st.best_acc = m.at("best_acc");
  st.best_epoch = m.at("best_epoch");
  st.lr_trace = m.value("lr_trace", json::array());
  st.loss_sum = f.tensors.at("loss_sum").item<double>();
  model.load_state_dict(f.tensors.sub("model"));
  opt.load_state_dict(f.tensors.sub("optim"));
  sch.load_state_dict(f.tensors.sub("sched"));
  scaler.load_state_dict(f.tensors.sub("scaler"));
  default_generator().set_state(std::stoull(m.at("rng_seed").get<std::string>()),
                                std::stoull(m.at("rng_offset").get<std::string>()));
  return st;
}

std::map<std::string, std::string> checkpoint_metadata(const Config& c, const std::vector<std::string>& classes,
                                                       const Preprocess& pre, int64_t epoch, double val_acc) {
  return {{kMetaModel, json(c.model).dump()},
          {kMetaClasses, json(classes).dump()},
          {kMetaPreprocess, pre.to_json().dump()},
          {kMetaRecipe, c.to_json().dump()},
          {"wanwu.epoch", std::to_string(epoch)},
          {"wanwu.val_acc", json(val_acc).dump()}};
}

std::string history_text(const std::vector<json>& h) {
  std::string s;
  for (const auto& j : h) s += j.dump() + "\n";
  return s;
}


// One training run from parsed flags; run_train and the sweep's trials both come through here.
TrainOutcome train(const Args& a, const TrainHooks& hooks) {
  Config c;
  const bool resuming = a.has("resume");
  fs::path out;
  if (resuming) {
    for (const auto& [k, v] : a.given())
      if (std::find(kResumeFlags.begin(), kResumeFlags.end(), k) == kResumeFlags.end())
        throw UsageError("train: --" + k + " cannot be combined with --resume (the recipe comes from the run's config.json)");
    out = a.str("resume");
    const fs::path cfg = out / "config.json";
    require_file(cfg.string(), "--resume: run config");
    std::ifstream in(cfg);
    try {
      c = Config::from_json(json::parse(in).at("recipe"));
    } catch (const json::exception& e) {
      throw RunError(cfg.string() + ": unreadable run config (" + std::string(e.what()) + ")");
    }
    if (a.has("out") && fs::path(a.str("out")) != out) throw UsageError("train: --out must match --resume");
  } else {
    c = parse_config(a);
    out = c.out;
  }
  c.out = out.string();
  c.workers = a.integer("workers", 2, 0);
  c.max_steps = a.integer("max-steps", 0, 1);
  if (!resuming && c.class_weights != "none" && c.class_weights != "auto") require_file(c.class_weights, "--class-weights file");
  const Device device = pick_device(a, "train");
  // A run that fails leaves no device error pending (a bad index or target a GPU kernel found that
  // no read has raised yet): `wanwu sweep` runs its next trial in this process, and that trial's
  // first read would raise it.
  struct DropPendingDeviceErrors {
    Device d;
    int uncaught = std::uncaught_exceptions();
    ~DropPendingDeviceErrors() {
      if (!d.is_cuda() || std::uncaught_exceptions() == uncaught) return;
      try {
        backend_for(d).synchronize(d.index);
      } catch (...) {  // the error that is unwinding is the one to report
      }
    }
  } drop_pending_device_errors{device};
  const ConvAlgorithmSearchGuard conv_search(conv_search_flag(a));
  const MatmulPrecisionGuard matmul_precision(precision_flag(a));

  // The run directory first: an unwritable --out should fail before minutes of data loading.
  {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec || !fs::is_directory(out)) throw RunError("--out '" + out.string() + "': cannot create the directory" +
                                                     (ec ? " (" + ec.message() + ")" : ""));
    const fs::path probe = out / ".write_test";
    std::ofstream t(probe);
    if (!t) throw RunError("--out '" + out.string() + "': the directory is not writable");
    t.close();
    fs::remove(probe, ec);
  }

  Datasets ds = open_datasets(c.data);
  const std::vector<std::string>& classes = ds.train->classes();
  const int64_t num_classes = static_cast<int64_t>(classes.size());
  if (num_classes < 2) throw RunError("--data " + c.data + ": need at least 2 classes, found " + std::to_string(num_classes));

  Preprocess pre;
  pre.preset.size = c.img_size;
  pre.preset.resize = resize_for(c.img_size);
  const data::TransformPtr train_tf =
      std::make_shared<data::Compose>(data::train_transform(augment_preset(c.augment), pre.preset));
  const data::TransformPtr val_tf = std::make_shared<data::Compose>(data::eval_transform(pre.preset));

  data::LoaderOptions lo;
  lo.batch_size = c.batch_size;
  lo.num_workers = static_cast<int>(c.workers);
  lo.seed = static_cast<uint64_t>(c.seed);
  lo.drop_last = ds.train->size() > c.batch_size ? data::DropLast::yes : data::DropLast::no;
  if (c.sampler == "balanced") lo.sampler = std::make_shared<data::ClassBalancedSampler>(*ds.train);
  // on a GPU the batches are uploaded asynchronously from pinned memory
  lo.pin_memory = device.is_cuda() ? data::PinMemory::yes : data::PinMemory::no;
  data::DataLoader train_loader(ds.train, train_tf, lo);
  data::LoaderOptions vo = lo;
  vo.shuffle = data::Shuffle::no;
  vo.sampler = nullptr;
  vo.drop_last = data::DropLast::no;
  data::DataLoader val_loader(ds.val, val_tf, vo);

  // Model: seeded initialization, then the pretrained weights (head replaced) if given.
  Generator init_gen(static_cast<uint64_t>(c.seed) * 2654435761ull + 1);
  models::ModelOptions mo;
  mo.num_classes = num_classes;
  mo.image_size = c.img_size;
  mo.layer.generator = &init_gen;
  std::shared_ptr<models::Classifier> model = models::create_model(c.model, mo);
  if (!c.weights.empty() && !resuming) {
    require_file(c.weights, "--weights file");
    io::LoadWeightsOptions lw;
    lw.head = io::HeadMismatch::reinitialize;
    const auto rep = load_weights_checked(*model, c.weights, lw);
    std::cout << "loaded " << c.weights << " (" << io::key_layout_name(rep.layout) << " layout)"
              << (rep.reinitialized.empty() ? "" : "; new head for " + std::to_string(num_classes) + " classes") << "\n";
  }
  if (device != Device::cpu()) model->to(device);
  if (c.freeze_backbone) model->freeze_backbone();
  default_generator().manual_seed(static_cast<uint64_t>(c.seed));

  const Tensor class_w = load_class_weights(c, *ds.train);
  CrossEntropyOptions ce;
  if (class_w.defined()) ce.weight = class_w.to(device);
  ce.label_smoothing = c.label_smoothing;

  const int64_t batches = train_loader.batches_per_epoch();
  const optim::GradAccumulation acc(c.accum_steps, std::max<int64_t>(1, batches));
  const int64_t steps_per_epoch = acc.optimizer_steps_per_epoch();
  auto opt = make_optimizer(c, *model);
  Schedules sched = make_schedules(c, *opt, steps_per_epoch);
  amp::GradScalerOptions so;
  so.mode = c.amp == "fp16" ? amp::ScalerMode::on : amp::ScalerMode::off;
  so.sync = amp::ScalerSync::device;  // no wait for the GPU per step, and fp16 steps can be graphs
  amp::GradScaler scaler(so);
  const std::optional<DType> autocast = c.amp == "fp16"   ? std::optional<DType>(DType::f16)
                                        : c.amp == "bf16" ? std::optional<DType>(DType::bf16)
                                                          : std::nullopt;
  // --cuda-graph (docs/cuda.md): the CPU has no graphs and ignores it, as it does --tf32.
  const bool graph_steps = a.has("cuda-graph") && device.is_cuda();
  if (graph_steps && c.accum_steps != 1)
    throw UsageError("train: --cuda-graph needs --accum-steps 1, got " + std::to_string(c.accum_steps));

  RunState st;
  std::vector<json> history;
  if (resuming) {
    st = load_state(out, *model, *opt, sched, scaler);
    history = read_metrics(out / "metrics.jsonl", st.epoch);
    if (st.epoch >= c.epochs) {
      std::cout << "run " << out.string() << " is already complete (" << c.epochs << " epochs)\n";
      return {TrainEnd::completed, out};
    }
    std::cout << "resuming " << out.string() << " at epoch " << st.epoch + 1 << ", batch " << st.batch << " (step "
              << st.global_step << ")\n";
  }
  json config = {{"recipe", c.to_json()},
                 {"classes", classes},
                 {"preprocess", pre.to_json()},
                 {"train_samples", ds.train->size()},
                 {"val_samples", ds.val->size()},
                 {"device", device.str()},
                 {"steps_per_epoch", steps_per_epoch}};
  write_text_atomic(out / "config.json", config.dump(2) + "\n");
  write_text_atomic(out / "metrics.jsonl", history_text(history));

  std::cout << "train: " << c.model << " on " << c.data << " (" << ds.train->size() << " train / " << ds.val->size()
            << " val images, " << num_classes << " classes), " << c.epochs << " epochs x " << steps_per_epoch
            << " steps, " << device.str() << "\n";

  g_interrupted = 0;
  std::signal(SIGINT, on_sigint);
  struct RestoreSignal {
    ~RestoreSignal() { std::signal(SIGINT, SIG_DFL); }
  } restore_signal;

  Progress progress(stdout_is_terminal() ? ProgressStyle::bar : ProgressStyle::lines);
  PendingLosses losses(device.is_cuda() ? LossReads::batched : LossReads::each,
                       scaler.enabled() ? NonFiniteLoss::skipped : NonFiniteLoss::diverged);
  int64_t eager_steps = 0;
  std::unique_ptr<GraphedStep> graphed;  // after the model, optimizer and scaler: it replays their work
  const auto run_t0 = std::chrono::steady_clock::now();
  double train_seconds_total = 0;
  int64_t images_total = 0;
  bool stopped = false;
  std::string stop_reason;

  for (; st.epoch < c.epochs && !stopped; ++st.epoch) {
    const auto ep_t0 = std::chrono::steady_clock::now();
    model->train();
    const int64_t first_batch = st.batch;
    progress.start_epoch(st.epoch + 1, c.epochs, steps_per_epoch, first_batch / c.accum_steps);
    int64_t images_epoch = 0;
    int64_t i = 0;
    auto epoch = train_loader.epoch(st.epoch);
    for (data::Batch& b : epoch) {
      if (i < first_batch) {  // batches a resumed run already trained on
        ++i;
        continue;
      }
      // With --cuda-graph, a full batch after the run's first step that created the optimizer's
      // state (with fp16, a step whose gradients overflowed creates none) replays the captured
      // step; its loss is copied out before the next replay rewrites it.
      const bool replay = graph_steps && (graphed || (eager_steps > 0 && opt->can_gate())) &&
                          b.labels.size(0) == c.batch_size;
      Tensor loss;
      if (replay) {
        if (!graphed) graphed = capture_train_step(device, b, [&](const Tensor& x, const Tensor& y) {
            const Tensor l = train_forward(*model, x, y, autocast, ce);
            scaler.scale(l * acc.loss_scale(0)).backward();
            scaler.step(*opt);
            scaler.update();
            opt->zero_grad();
            return l;
          });
        loss = graphed->replay(b).clone();
      } else {
        // the loader's batch is fresh and nothing writes it: the upload need not wait
        loss = train_forward(*model, b.images.to(device, NonBlocking::yes), b.labels.to(device, NonBlocking::yes),
                             autocast, ce);
      }
      losses.add(loss, b.labels.size(0), st.epoch + 1, st.global_step + 1);
      if (losses.full()) losses.read_into(st.loss_sum, st.loss_count);
      if (!replay) scaler.scale(loss * acc.loss_scale(i)).backward();
      images_epoch += b.labels.size(0);
      ++i;
      st.batch = i;
      if (!acc.is_step(i - 1)) continue;
      if (!replay) {
        scaler.step(*opt);
        scaler.update();
        opt->zero_grad();
        ++eager_steps;
      }
      ++st.global_step;
      sched.step(st.global_step);
      if (st.global_step % std::max<int64_t>(1, steps_per_epoch / 25) == 0)
        st.lr_trace.push_back({st.global_step, opt->param_groups()[0].lr});
      const int64_t shown_step = i / c.accum_steps + (i % c.accum_steps ? 1 : 0);
      if (progress.due(shown_step)) {
        losses.read_into(st.loss_sum, st.loss_count);
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - ep_t0).count();
        progress.update(shown_step, st.loss_sum / static_cast<double>(st.loss_count), opt->param_groups()[0].lr,
                        el > 0 ? static_cast<double>(images_epoch) / el : 0.0);
      }
      const bool epoch_done = i >= epoch.num_batches();
      if (!epoch_done && (g_interrupted || (c.max_steps > 0 && st.global_step >= c.max_steps))) {
        stopped = true;
        stop_reason = g_interrupted ? "interrupted" : "--max-steps reached";
        break;
      }
    }
    losses.read_into(st.loss_sum, st.loss_count);  // before anything is saved: a divergence throws here
    if (stopped) {
      progress.interrupt();
      io::save_weights((out / "last.safetensors").string(), *model,
                       checkpoint_metadata(c, classes, pre, st.epoch, history.empty() ? 0.0 : history.back().value("val_acc", 0.0)));
      save_state(out, st, *model, *opt, sched, scaler);
      break;
    }
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ep_t0).count();
    const double train_loss = st.loss_count ? st.loss_sum / static_cast<double>(st.loss_count) : 0.0;
    EvalResult ev = evaluate(*model, val_loader, device, autocast, num_classes, KeepPredictions::no);
    if (sched.plateau) sched.plateau->step(ev.loss);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ep_t0).count();
    train_seconds_total += train_s;
    images_total += images_epoch;

    json line = {{"epoch", st.epoch + 1},
                 {"train_loss", train_loss},
                 {"val_loss", ev.loss},
                 {"val_acc", ev.metrics.accuracy()},
                 {"val_top5", ev.metrics.topk_accuracy()},
                 {"lr", opt->param_groups()[0].lr},
                 {"images_per_s", train_s > 0 ? static_cast<double>(images_epoch) / train_s : 0.0},
                 {"seconds", seconds},
                 {"step", st.global_step},
                 {"steps_per_epoch", steps_per_epoch},
                 {"lr_trace", st.lr_trace},
                 {"per_class", per_class_json(ev.metrics, classes)},
                 {"confusion_matrix", confusion_json(ev.metrics)}};
    history.push_back(line);
    std::printf("epoch %lld/%lld: train_loss %.4f val_loss %.4f val_acc %.4f val_top5 %.4f lr %.3g (%.1f s)\n",
                static_cast<long long>(st.epoch + 1), static_cast<long long>(c.epochs), train_loss, ev.loss,
                ev.metrics.accuracy(), ev.metrics.topk_accuracy(), opt->param_groups()[0].lr, seconds);
    std::fflush(stdout);

    const auto meta = checkpoint_metadata(c, classes, pre, st.epoch + 1, ev.metrics.accuracy());
    if (ev.metrics.accuracy() > st.best_acc) {
      st.best_acc = ev.metrics.accuracy();
      st.best_epoch = st.epoch + 1;
      io::save_weights((out / "best.safetensors").string(), *model, meta);
      write_text_atomic(out / "confusion_matrix.csv", confusion_csv(ev.metrics, classes));
    }
    io::save_weights((out / "last.safetensors").string(), *model, meta);
    write_text_atomic(out / "metrics.jsonl", history_text(history));
    // The state describes the start of the next epoch.
    RunState next = st;
    next.epoch = st.epoch + 1;
    next.batch = 0;
    next.loss_sum = 0;
    next.loss_count = 0;
    next.lr_trace = json::array();
    save_state(out, next, *model, *opt, sched, scaler);
    write_report(out / "report.html", history, classes, config, st.best_epoch);
    st.batch = 0;
    st.loss_sum = 0;
    st.loss_count = 0;
    st.lr_trace = json::array();
    const bool pause = hooks.pause_after_epoch > 0 && st.epoch + 1 >= hooks.pause_after_epoch;
    if (g_interrupted || pause || (c.max_steps > 0 && st.global_step >= c.max_steps)) {
      stopped = st.epoch + 1 < c.epochs;
      stop_reason = g_interrupted ? "interrupted" : pause ? "paused after epoch " + std::to_string(st.epoch + 1)
                                                          : "--max-steps reached";
      if (stopped) {
        ++st.epoch;
        break;
      }
    }
  }

  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_t0).count();
  if (stopped)
    std::printf("stopped (%s) at epoch %lld, step %lld; saved %s; continue with: wanwu train --resume %s\n",
                stop_reason.c_str(), static_cast<long long>(st.epoch + 1), static_cast<long long>(st.global_step),
                (out / "last.safetensors").string().c_str(), out.string().c_str());
  const bool interrupted = g_interrupted != 0;
  if (st.best_epoch > 0 && images_total > 0)
    std::printf("best val_acc %.4f at epoch %lld; %.1f s total, %.0f images/s in training; run: %s (report.html)\n",
                st.best_acc, static_cast<long long>(st.best_epoch), total_s,
                static_cast<double>(images_total) / train_seconds_total, out.string().c_str());
  else if (st.best_epoch > 0)
    std::printf("best val_acc so far %.4f at epoch %lld; run: %s (report.html)\n", st.best_acc,
                static_cast<long long>(st.best_epoch), out.string().c_str());
  std::fflush(stdout);
  return {interrupted ? TrainEnd::interrupted : stopped ? TrainEnd::paused : TrainEnd::completed, out};
}

}  // namespace

const std::vector<FlagSpec>& train_flags() { return kTrainFlags; }

TrainOutcome run_train_args(const std::vector<std::string>& args, const TrainHooks& hooks) {
  std::vector<char*> argv;
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  const Args a("train", kTrainFlags, static_cast<int>(argv.size()), argv.data(), 0, false);
  return train(a, hooks);
}

void check_train_args(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  const Args a("train", kTrainFlags, static_cast<int>(argv.size()), argv.data(), 0, false);
  (void)parse_config(a);
  a.integer("workers", 2, 0);
  conv_search_flag(a);
  pick_device(a, "train");
}

int run_train(int argc, char** argv) {
  Args a("train", kTrainFlags, argc, argv, 2, false);
  if (a.help()) {
    std::cout << help_text("wanwu train --data DIR|fashion-mnist --model NAME --out RUNDIR [flags]",
                           "Fine-tunes a classifier; writes best/last checkpoints, metrics.jsonl, confusion_matrix.csv,\n"
                           "report.html and config.json into RUNDIR. Ctrl-C stops after the current step and saves;\n"
                           "--resume RUNDIR continues (bit-identically on the CPU). On --resume, only --max-steps,\n"
                           "--workers, --device, --conv-search and --tf32 may be given; the recipe comes from\n"
                           "RUNDIR/config.json.",
                           kTrainFlags);
    return 0;
  }
  train(a, {});
  return 0;
}

}  // namespace wanwu::cli
