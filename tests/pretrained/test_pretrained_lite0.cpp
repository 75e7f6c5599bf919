// A real pretrained model on real photographs, end to end in C++: the EfficientNet-Lite0
// ImageNet checkpoint (a legacy torch .pth in efficientnet_pytorch's key layout) loaded with
// io::load_weights, two PNG photographs decoded and preprocessed by wanwu's data pipeline
// (Resize 256, CenterCrop 224, Normalize), classified in eval mode. Checks, against
// tests/pretrained/efficientnet_lite0.py (the model's own PyTorch implementation on the same
// files with torchvision's transforms):
//   - the right class is in the top 5 (281 tabby for chelsea.png, 967 espresso for coffee.png),
//     and the top-1 class is a cat (281-285) and espresso respectively;
//   - the top-5 classes are PyTorch's, in order, and all 1000 probabilities agree within 1e-3.
// Exits 77 (skipped) when the reference could not be made (no torch, or the wheels could not
// be fetched).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>
#include <wanwu/wanwu.hpp>
#include <wanwu/data/data.hpp>

using namespace wanwu;

namespace {
std::vector<int64_t> top_k(const std::vector<double>& p, size_t k) {
  std::vector<int64_t> idx(p.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                    [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  idx.resize(k);
  return idx;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s REFERENCE.json\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::printf("SKIPPED: reference %s not found (see the reference test's output)\n", argv[1]);
    return 77;
  }
  const nlohmann::json ref = nlohmann::json::parse(in);
  auto model = models::create_model("efficientnet_lite0");
  const io::WeightsReport report = io::load_weights(*model, ref["weights"].get<std::string>());
  std::printf("loaded %s (key layout %s)\n", ref["weights"].get<std::string>().c_str(),
              io::key_layout_name(report.layout));
  model->eval();

  data::PresetOptions pre;
  pre.mean = ref["mean"].get<std::vector<double>>();
  pre.std = ref["std"].get<std::vector<double>>();
  const data::Compose tf = data::eval_transform(pre);

  int failures = 0;
  const int64_t expected_top1[2][2] = {{281, 285}, {967, 967}};  // cats; espresso
  const int64_t expected_class[2] = {281, 967};                    // tabby; espresso
  for (size_t n = 0; n < ref["images"].size(); ++n) {
    const auto& im = ref["images"][n];
    const std::string path = im["path"];
    const Tensor x = data::image_to_tensor(tf(data::decode_image(path), 0, 0, 0)).unsqueeze(0);
    Tensor prob;
    {
      NoGradGuard no_grad;
      prob = softmax(model->forward(x), -1);
    }
    const std::vector<double> got = prob.to(DType::f64).contiguous().tolist<double>();
    const std::vector<double> want = im["prob"].get<std::vector<double>>();
    double max_diff = 0;
    for (size_t i = 0; i < want.size(); ++i) max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
    const auto tg = top_k(got, 5), tw = top_k(want, 5);
    const bool top1_ok = tg[0] >= expected_top1[n][0] && tg[0] <= expected_top1[n][1];
    const bool in_top5 = std::find(tg.begin(), tg.end(), expected_class[n]) != tg.end();
    const bool ok = got.size() == 1000 && max_diff <= 1e-3 && tg == tw && top1_ok && in_top5;
    std::printf("%s %s: top-5", ok ? "ok  " : "FAIL", path.c_str());
    for (auto c : tg) std::printf(" %lld (%.4f)", static_cast<long long>(c), got[c]);
    std::printf("; PyTorch top-5");
    for (auto c : tw) std::printf(" %lld (%.4f)", static_cast<long long>(c), want[c]);
    std::printf("; max |prob diff| %.2e\n", max_diff);
    if (!ok) ++failures;
  }
  std::printf("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
