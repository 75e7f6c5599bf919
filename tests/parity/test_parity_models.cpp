// torchvision parity for whole models, against tests/parity/models.py (Debian's torch/torchvision):
//   - state_dict() names and shapes equal torchvision's for resnet50, efficientnet_b0, vit_b_16;
//   - eval-mode logits on 2 images at 224x224, loading each model from two files (safetensors and
//     .pth, torchvision and timm key layouts): max |diff| <= 1e-4 * max |logit|;
//   - resnet18 from a float16 safetensors file;
//   - one SGD step of resnet18 in train mode, in float64: logits, loss, every gradient, every
//     parameter and batch-norm buffer after the step, to 1e-9 of each tensor's largest entry.
// Exits 77 (skipped) when the reference is missing (torch not installed).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <wanwu/wanwu.hpp>

using namespace wanwu;

namespace {
int failures = 0, checks = 0;

// max |got - want| <= rel * max |want| (+ abs)
void compare(const std::string& what, const Tensor& got, const Tensor& want, double rel, double abs = 0.0,
             bool quiet = false) {
  ++checks;
  if (got.shape() != want.shape()) {
    std::printf("FAIL %s: shape %s, expected %s\n", what.c_str(), got.shape().str().c_str(), want.shape().str().c_str());
    ++failures;
    return;
  }
  const auto g = got.to(DType::f64).contiguous().tolist<double>(), w = want.to(DType::f64).contiguous().tolist<double>();
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(g[i] - w[i]));
    max_ref = std::max(max_ref, std::fabs(w[i]));
  }
  const double tol = rel * max_ref + abs;
  const bool ok = max_diff <= tol && std::isfinite(max_diff);
  if (!ok || !quiet)
    std::printf("%s %-46s max |diff| %.3g  (max |ref| %.3g, tolerance %.3g)\n", ok ? "ok  " : "FAIL", what.c_str(),
                max_diff, max_ref, tol);
  if (!ok) ++failures;
}

Tensor nhwc(const Tensor& nchw) { return nchw.permute({0, 2, 3, 1}).contiguous(); }
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s REFERENCE.json\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::printf("SKIPPED: reference %s not found (is python3-torchvision installed?)\n", argv[1]);
    return 77;
  }
  const nlohmann::json ref = nlohmann::json::parse(in);
  const std::filesystem::path dir = std::filesystem::path(argv[1]).parent_path();
  std::printf("reference from torch %s, torchvision %s\n", ref["torch_version"].get<std::string>().c_str(),
              ref["torchvision_version"].get<std::string>().c_str());
  const nn::StateDict t = io::load_safetensors((dir / ref["tensors"].get<std::string>()).string()).tensors;
  const Tensor x = nhwc(t.at("x"));

  for (const auto& m : ref["models"]) {
    const std::string arch = m["arch"];
    auto model = models::create_model(arch);
    model->eval();
    // names and shapes: torchvision's, with convolution weights [O, kH, kW, I/g]
    const auto sd = model->state_dict();
    const auto convs = io::conv_weight_names(*model);
    size_t bad = 0;
    for (const auto& kv : m["keys"]) {
      const std::string k = kv[0];
      Shape s;
      for (auto d : kv[1]) s.push_back(d.get<int64_t>());
      if (convs.count(k)) s = Shape{s[0], s[2], s[3], s[1]};
      if (!sd.contains(k) || sd.at(k).shape() != s) {
        if (bad++ < 5) std::printf("  %s: torchvision %s, wanwu %s\n", k.c_str(), s.str().c_str(),
                                   sd.contains(k) ? sd.at(k).shape().str().c_str() : "missing");
      }
    }
    ++checks;
    const bool names_ok = bad == 0 && sd.size() == m["keys"].size();
    std::printf("%s %-46s %zu entries, %zu differ\n", names_ok ? "ok  " : "FAIL", (arch + " state_dict names").c_str(),
                sd.size(), bad);
    if (!names_ok) ++failures;
    for (const auto& f : m["files"]) {
      const std::string file = f;
      auto fresh = models::create_model(arch);
      const auto rep = io::load_weights(*fresh, (dir / file).string());
      fresh->eval();
      Tensor logits;
      {
        NoGradGuard ng;
        logits = fresh->forward(x);
      }
      compare(arch + " logits from " + file + " (" + io::key_layout_name(rep.layout) + ")", logits,
              t.at(arch + ".logits"), 1e-4);
    }
  }

  {  // float16 weights
    auto r18 = models::create_model("resnet18");
    io::load_weights(*r18, (dir / "resnet18_f16.safetensors").string());
    r18->eval();
    NoGradGuard ng;
    compare("resnet18 logits from float16 safetensors", r18->forward(x), t.at("resnet18_f16.logits"), 1e-4);
  }

  {  // one SGD step in train mode (float64: see models.py)
    models::ModelOptions mo;
    mo.num_classes = 10;
    mo.layer.dtype = DType::f64;
    auto net = models::create_model("resnet18", mo);
    io::load_weights(*net, (dir / "resnet18_train_init.pth").string());
    net->train();
    optim::SGDOptions so;
    so.lr = 0.1, so.momentum = 0.9, so.weight_decay = 1e-4;
    optim::SGD opt(net->parameters(), so);
    const Tensor logits = net->forward(nhwc(t.at("train.x")));
    const Tensor loss = cross_entropy(logits, t.at("train.y"));
    loss.backward();
    compare("train: logits", logits, t.at("train.logits"), 1e-9);
    compare("train: loss", loss.reshape({1}), t.at("train.loss"), 1e-9);
    const auto convs = io::conv_weight_names(*net);
    auto as_torch = [&](const std::string& k, const Tensor& v) {
      return convs.count(k) ? v.permute({0, 3, 1, 2}).contiguous() : v;
    };
    int n_grad = 0, n_after = 0;
    const int before = failures;
    for (const auto& [k, p] : net->named_parameters()) {
      compare("train: grad " + k, as_torch(k, p.grad()), t.at("train.grad." + k), 1e-9, 0.0, true);
      ++n_grad;
    }
    opt.step();
    for (const auto& [k, v] : net->state_dict()) {
      compare("train: after step " + k, as_torch(k, v), t.at("train.after." + k), 1e-9, 0.0, true);
      ++n_after;
    }
    std::printf("%s train: %d gradients and %d parameters/buffers after the step\n",
                failures == before ? "ok  " : "FAIL", n_grad, n_after);
  }

  // small .pth files in both torch.save formats: exact values, then corrupted copies (truncated
  // anywhere, bytes overwritten anywhere) must load or throw wanwu's error, never crash or read
  // out of bounds
  for (const std::string file : {"small_zip.pth", "small_legacy.pth"}) {
    const std::string path = (dir / file).string();
    const nn::StateDict sd = io::read_state_dict(path).tensors;
    for (const std::string k : {"a.weight", "a.bias", "b.weight", "b.t", "b.row", "n.num_batches_tracked"}) {
      const Tensor want = t.at("small." + k);
      if (!sd.contains(k)) {
        std::printf("FAIL %s: no tensor %s\n", file.c_str(), k.c_str());
        ++failures;
        continue;
      }
      compare(file + " " + k, sd.at(k).to(want.dtype()), want, 0.0, 0.0, true);
    }
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Generator g(11);
    int refused = 0, loaded = 0;
    const std::string mutant = (dir / ("mutant_" + file)).string();
    for (int trial = 0; trial < 400; ++trial) {
      std::string b = bytes;
      const auto r = randint(0, 1 << 30, {3}, {}, &g).tolist<int64_t>();
      if (trial % 4 == 0) {
        b.resize(static_cast<size_t>(r[0]) % b.size());
      } else {
        for (int j = 0; j <= trial % 4; ++j) b[static_cast<size_t>(r[j % 3] + 7919 * j) % b.size()] ^= static_cast<char>(1 + (r[2] >> (8 * j)) % 255);
      }
      std::ofstream(mutant, std::ios::binary | std::ios::trunc) << b;
      try {
        io::read_state_dict(mutant);
        ++loaded;  // flips inside tensor data leave a valid file
      } catch (const Error&) {
        ++refused;
      }
    }
    ++checks;
    const bool ok = refused >= 100 && refused + loaded == 400;
    std::printf("%s %-46s %d of 400 corrupted copies refused with an error, %d still valid\n", ok ? "ok  " : "FAIL",
                (file + " corruption").c_str(), refused, loaded);
    if (!ok) ++failures;
  }

  std::printf("%d of %d comparisons passed\n", checks - failures, checks);
  std::printf(failures ? "FAILED\n" : "PASSED\n");
  return failures ? 1 : 0;
}
