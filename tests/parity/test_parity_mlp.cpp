// PyTorch parity for a small MLP: forward logits, cross-entropy loss and the gradient of every
// parameter and of the input, against references that tests/parity/mlp.py writes with
// Debian's python3-torch at test time. Exits 77 (skipped) with the reason when the reference is
// missing, which is what happens when torch is not installed.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>
#include <wanwu/wanwu.hpp>

using namespace wanwu;

namespace {
int failures = 0;

Tensor unpack(const nlohmann::json& j) {
  Shape shape;
  for (auto s : j["shape"]) shape.push_back(s.get<int64_t>());
  return from_vector(j["data"].get<std::vector<double>>(), shape, DType::f64);
}

// max |a - b| <= tol * max(1, max |b|)
void compare(const char* what, const Tensor& got, const Tensor& want, double tol) {
  if (got.shape() != want.shape()) {
    std::printf("FAIL %s: shape %s, expected %s\n", what, got.shape().str().c_str(), want.shape().str().c_str());
    ++failures;
    return;
  }
  const auto g = got.tolist<double>(), w = want.tolist<double>();
  double max_diff = 0, max_ref = 1;
  for (size_t i = 0; i < g.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(g[i] - w[i]));
    max_ref = std::max(max_ref, std::fabs(w[i]));
  }
  const bool ok = max_diff <= tol * max_ref;
  std::printf("%s %-18s max |diff| = %.3g (tolerance %.3g)\n", ok ? "ok  " : "FAIL", what, max_diff, tol * max_ref);
  if (!ok) ++failures;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s REFERENCE.json\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::printf("SKIPPED: reference %s not found (the PyTorch reference script did not run; is python3-torch "
                "installed?)\n", argv[1]);
    return 77;
  }
  const nlohmann::json ref = nlohmann::json::parse(in);
  std::printf("reference from torch %s\n", ref["torch_version"].get<std::string>().c_str());

  std::map<std::string, Tensor> p;
  for (auto& [name, v] : ref["params"].items()) p[name] = unpack(v).requires_grad_();
  Tensor x = unpack(ref["x"]).requires_grad_();
  const std::vector<int64_t> yv = ref["y"].get<std::vector<int64_t>>();
  const Tensor y = from_vector(yv, Shape{static_cast<int64_t>(yv.size())}, DType::i64);

  Tensor h = gelu(linear(x, p["fc1.weight"], p["fc1.bias"]));
  h = tanh(linear(h, p["fc2.weight"], p["fc2.bias"]));
  const Tensor logits = linear(h, p["head.weight"], p["head.bias"]);
  // cross-entropy from primitives: -mean(log_softmax(logits)[i, y_i])
  const Tensor log_probs = logits - logsumexp(logits, {1}, KeepDim::yes);
  const Tensor loss = -gather(log_probs, 1, y.unsqueeze(1)).mean();
  loss.backward();

  // f64 end to end: differences are rounding only.
  const double tol = 1e-12;
  compare("logits", logits, unpack(ref["logits"]), tol);
  compare("loss", loss.reshape({1}), from_vector(std::vector<double>{ref["loss"].get<double>()}, {1}), tol);
  for (auto& [name, t] : p) compare(("grad " + name).c_str(), t.grad(), unpack(ref["grads"][name]), tol);
  compare("grad input", x.grad(), unpack(ref["x_grad"]), tol);
  std::printf("%s\n", failures ? "FAILED" : "PASSED");
  return failures ? 1 : 0;
}
