// PyTorch parity for the vision and transformer ops: forward outputs and input gradients of every
// case tests/parity/ops.py writes (conv2d, pooling, norms, softmax, losses, attention,
// interpolate, pad), in f64. Tolerance: max |diff| <= 1e-10 * max(1, max |reference|) — f64
// rounding differences only; any formula difference is orders of magnitude larger. Exits 77
// (skipped) when the reference file is missing (PyTorch not installed).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <wanwu/wanwu.hpp>

using namespace wanwu;
using json = nlohmann::json;

namespace {
int failures = 0, checks = 0;
constexpr double kTol = 1e-10;

Tensor load(const json& j) {
  Shape shape;
  for (auto s : j["shape"]) shape.push_back(s.get<int64_t>());
  const std::string dt = j["dtype"];
  if (dt == "torch.bool") {
    std::vector<bool> v = j["data"].get<std::vector<bool>>();
    std::vector<uint8_t> u(v.begin(), v.end());
    return from_vector(u, shape).to(DType::boolean);
  }
  if (dt == "torch.int64") return from_vector(j["data"].get<std::vector<int64_t>>(), shape);
  return from_vector(j["data"].get<std::vector<double>>(), shape, DType::f64);
}

void compare(const std::string& what, const Tensor& got, const Tensor& want) {
  ++checks;
  if (got.shape() != want.shape()) {
    std::printf("FAIL %s: shape %s, expected %s\n", what.c_str(), got.shape().str().c_str(), want.shape().str().c_str());
    ++failures;
    return;
  }
  const auto g = got.tolist<double>(), w = want.tolist<double>();
  double max_diff = 0, max_ref = 1;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i]) != std::isnan(w[i])) max_diff = INFINITY;
    else if (!std::isnan(g[i])) max_diff = std::max(max_diff, std::fabs(g[i] - w[i]));
    max_ref = std::max(max_ref, std::fabs(w[i]));
  }
  if (max_diff > kTol * max_ref) {
    std::printf("FAIL %s: max |diff| = %.3g (tolerance %.3g)\n", what.c_str(), max_diff, kTol * max_ref);
    ++failures;
  }
}

Reduction reduction_of(const json& p) {
  const std::string r = p.value("reduction", "mean");
  return r == "none" ? Reduction::none : r == "sum" ? Reduction::sum : Reduction::mean;
}

Pair2 pair_of(const json& v) { return v.is_array() ? Pair2(v[0].get<int64_t>(), v[1].get<int64_t>()) : Pair2(v.get<int64_t>()); }

using Inputs = std::map<std::string, Tensor>;
Tensor opt(const Inputs& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? Tensor() : it->second;
}

// Runs one case; returns the outputs in file order.
std::vector<Tensor> run(const std::string& op, const json& p, Inputs& in) {
  if (op == "conv2d") {
    Padding2d pad(0);
    if (p["padding"].is_string()) pad = p["padding"] == "same" ? Padding2d::same() : Padding2d::valid();
    else pad = Padding2d(pair_of(p["padding"]));
    Tensor x = in["x"];
    if (p.value("noncontiguous", false)) {  // same values, transposed storage
      x = x.transpose(1, 2).contiguous().transpose(1, 2).detach().requires_grad_();
      in["x"] = x;
    }
    return {conv2d(x, in["w"], opt(in, "b"), pair_of(p["stride"]), pad, pair_of(p["dilation"]), p["groups"])};
  }
  if (op == "max_pool2d")
    return {max_pool2d(in["x"], p["kernel"].get<int64_t>(), Pair2(p["stride"].get<int64_t>()), p["padding"].get<int64_t>(),
                       p["dilation"].get<int64_t>(), p["ceil"].get<bool>() ? CeilMode::yes : CeilMode::no)};
  if (op == "avg_pool2d")
    return {avg_pool2d(in["x"], p["kernel"].get<int64_t>(), Pair2(p["stride"].get<int64_t>()), p["padding"].get<int64_t>(),
                       p["ceil"].get<bool>() ? CeilMode::yes : CeilMode::no,
                       p["count_include_pad"].get<bool>() ? CountIncludePad::yes : CountIncludePad::no,
                       p["divisor"].get<int64_t>())};
  if (op == "adaptive_avg_pool2d") return {adaptive_avg_pool2d(in["x"], pair_of(p["output"]))};
  if (op == "batch_norm") {
    const auto rm = p["running_mean"].get<std::vector<double>>(), rv = p["running_var"].get<std::vector<double>>();
    Tensor m = from_vector(rm, {static_cast<int64_t>(rm.size())}, DType::f64);
    Tensor v = from_vector(rv, {static_cast<int64_t>(rv.size())}, DType::f64);
    const bool train = p["train"];
    Tensor y = batch_norm(in["x"], m, v, in["w"], in["b"], train ? Mode::train : Mode::eval, p["momentum"], p["eps"]);
    if (train) return {y, m, v};
    return {y};
  }
  if (op == "layer_norm") {
    Shape ns;
    for (auto s : p["normalized"]) ns.push_back(s.get<int64_t>());
    return {layer_norm(in["x"], ns, opt(in, "w"), opt(in, "b"), p["eps"])};
  }
  if (op == "group_norm") return {group_norm(in["x"], p["groups"], in["w"], in["b"], p["eps"])};
  if (op == "softmax") return {softmax(in["x"], p["dim"])};
  if (op == "log_softmax") return {log_softmax(in["x"], p["dim"])};
  if (op == "cross_entropy") {
    CrossEntropyOptions o;
    o.weight = opt(in, "weight");
    o.ignore_index = p["ignore_index"];
    o.reduction = reduction_of(p);
    o.label_smoothing = p["label_smoothing"];
    return {cross_entropy(in["x"], in["target"], o)};
  }
  if (op == "nll_loss") return {nll_loss(in["x"], in["target"], opt(in, "weight"), p["ignore_index"], reduction_of(p))};
  if (op == "bce_with_logits")
    return {binary_cross_entropy_with_logits(in["x"], in["target"], opt(in, "weight"), opt(in, "pos_weight"),
                                             reduction_of(p))};
  if (op == "mse_loss") return {mse_loss(in["x"], in["target"], reduction_of(p))};
  if (op == "attention") {
    AttentionOptions o;
    o.mask = opt(in, "mask");
    o.causal = p.value("causal", false) ? Causal::yes : Causal::no;
    if (p.contains("scale")) o.scale = p["scale"].get<double>();
    return {scaled_dot_product_attention(in["q"], in["k"], in["v"], o)};
  }
  if (op == "interpolate") {
    const AlignCorners align = p["align_corners"].get<bool>() ? AlignCorners::yes : AlignCorners::no;
    if (p.value("mode", std::string("bilinear")) == "bicubic") return {interpolate_bicubic(in["x"], pair_of(p["size"]), align)};
    return {interpolate_bilinear(in["x"], pair_of(p["size"]), align)};
  }
  if (op == "pad") return {pad(in["x"], p["pads"].get<std::vector<int64_t>>(), p["value"])};
  throw ValueError("unknown op " + op);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s REFERENCE.json\n", argv[0]);
    return 2;
  }
  std::ifstream f(argv[1]);
  if (!f) {
    std::printf("SKIPPED: reference %s not found (the PyTorch reference script did not run; is python3-torch "
                "installed?)\n", argv[1]);
    return 77;
  }
  const json ref = json::parse(f);
  std::printf("reference from torch %s: %zu cases\n", ref["torch_version"].get<std::string>().c_str(),
              ref["cases"].size());
  for (const auto& c : ref["cases"]) {
    const std::string name = c["name"];
    try {
      Inputs in;
      for (auto& [k, v] : c["inputs"].items()) {
        Tensor t = load(v);
        if (c.contains("grads") && c["grads"].contains(k)) t.requires_grad_();
        in[k] = t;
      }
      std::vector<Tensor> outs = run(c["op"], c["params"], in);
      for (size_t i = 0; i < c["outputs"].size(); ++i)
        compare(name + " output " + std::to_string(i), outs[i], load(c["outputs"][i]));
      if (c.contains("grad_out")) {
        outs[0].backward(load(c["grad_out"]));
        for (auto& [k, v] : c["grads"].items()) compare(name + " grad " + k, in[k].grad(), load(v));
      }
    } catch (const std::exception& e) {
      std::printf("FAIL %s: threw %s\n", name.c_str(), e.what());
      ++failures;
    }
  }
  std::printf("%d of %d comparisons passed\n%s\n", checks - failures, checks, failures ? "FAILED" : "PASSED");
  return failures ? 1 : 0;
}
