// Op benchmarks at the shapes of the models wanwu fine-tunes (Google Benchmark), each a full
// forward + backward step as training runs it: every distinct convolution of ResNet50 at batch 8
// and 224x224, the depthwise convolutions of EfficientNet-B0, attention at ViT-B/16 shapes
// (B=8, H=12, L=197, D=64), batch norm at ResNet50 shapes and layer norm at ViT-B/16 shapes;
// and clip_grad_norm_ over ResNet50's gradients.
// benchmarks/compare_pytorch.py runs the same steps in PyTorch; the shape tables are shared
// through benchmarks/model_shapes.json so both sides always agree.
#include <benchmark/benchmark.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>
#include <wanwu/wanwu.hpp>

using namespace wanwu;

namespace {

nlohmann::json shapes() {
  std::ifstream f(WANWU_BENCH_SHAPES);
  return nlohmann::json::parse(f);
}

// y = conv(x, w); backward with dy to x and w (x requires grad, as inside a network).
void conv_step(benchmark::State& state, const nlohmann::json& s) {
  const int64_t N = s["n"], H = s["h"], W = s["w"], C = s["c"], O = s["o"], k = s["k"], st = s["stride"],
                pd = s["pad"], g = s["groups"];
  Tensor x = randn({N, H, W, C}).requires_grad_();
  Tensor w = (randn({O, k, k, C / g}) * 0.05).requires_grad_();
  const Tensor y0 = conv2d(x.detach(), w.detach(), Tensor(), st, pd, 1, g);
  const Tensor dy = randn(y0.shape());
  for (auto _ : state) {
    Tensor y = conv2d(x, w, Tensor(), st, pd, 1, g);
    y.backward(dy);
    x.set_grad(Tensor());
    w.set_grad(Tensor());
  }
  const double flops = 3.0 * 2.0 * static_cast<double>(y0.numel()) * static_cast<double>(k * k * (C / g));
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void attention_step(benchmark::State& state, const nlohmann::json& s) {
  const int64_t B = s["b"], H = s["heads"], L = s["l"], D = s["d"];
  Tensor q = randn({B, H, L, D}).requires_grad_(), k = randn({B, H, L, D}).requires_grad_();
  Tensor v = randn({B, H, L, D}).requires_grad_();
  const Tensor dy = randn({B, H, L, D});
  for (auto _ : state) {
    Tensor y = scaled_dot_product_attention(q, k, v);
    y.backward(dy);
    q.set_grad(Tensor());
    k.set_grad(Tensor());
    v.set_grad(Tensor());
  }
}

void batch_norm_step(benchmark::State& state, const nlohmann::json& s) {
  const int64_t N = s["n"], H = s["h"], W = s["w"], C = s["c"];
  Tensor x = randn({N, H, W, C}).requires_grad_();
  Tensor w = ones({C}).requires_grad_(), b = zeros({C}).requires_grad_();
  Tensor rm = zeros({C}), rv = ones({C});
  const Tensor dy = randn({N, H, W, C});
  for (auto _ : state) {
    Tensor y = batch_norm(x, rm, rv, w, b, Mode::train);
    y.backward(dy);
    x.set_grad(Tensor());
    w.set_grad(Tensor());
    b.set_grad(Tensor());
  }
}

void layer_norm_step(benchmark::State& state, const nlohmann::json& s) {
  const int64_t B = s["b"], L = s["l"], E = s["e"];
  Tensor x = randn({B, L, E}).requires_grad_();
  Tensor w = ones({E}).requires_grad_(), b = zeros({E}).requires_grad_();
  const Tensor dy = randn({B, L, E});
  for (auto _ : state) {
    Tensor y = layer_norm(x, {E}, w, b);
    y.backward(dy);
    x.set_grad(Tensor());
    w.set_grad(Tensor());
    b.set_grad(Tensor());
  }
}

// The training loss: cross-entropy from [N, C] logits with class indices, label smoothing 0.1.
void cross_entropy_step(benchmark::State& state, int64_t N, int64_t C) {
  Tensor x = randn({N, C}).requires_grad_();
  const Tensor y = randint(0, C, {N});
  CrossEntropyOptions o;
  o.label_smoothing = 0.1;
  for (auto _ : state) {
    cross_entropy(x, y, o).backward();
    x.set_grad(Tensor());
  }
}

// clip_grad_norm_ over ResNet50's 161 parameter tensors (25.6M values) with random gradients,
// whose norm (~5000) makes it scale them: a norm pass and a scaling pass over every gradient.
void clip_grad_norm_step(benchmark::State& state) {
  auto model = models::create_model("resnet50");
  const std::vector<Tensor> params = model->parameters();
  for (const Tensor& p : params) p.set_grad(randn(p.shape()));
  for (auto _ : state) benchmark::DoNotOptimize(optim::clip_grad_norm_(params, 1.0));
}

}  // namespace

int main(int argc, char** argv) {
  const auto j = shapes();
  for (const auto& s : j["conv"])
    benchmark::RegisterBenchmark(("conv/" + s["name"].get<std::string>()).c_str(),
                                 [s](benchmark::State& st) { conv_step(st, s); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  for (const auto& s : j["attention"])
    benchmark::RegisterBenchmark(("attention/" + s["name"].get<std::string>()).c_str(),
                                 [s](benchmark::State& st) { attention_step(st, s); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  for (const auto& s : j["batch_norm"])
    benchmark::RegisterBenchmark(("batch_norm/" + s["name"].get<std::string>()).c_str(),
                                 [s](benchmark::State& st) { batch_norm_step(st, s); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  for (const auto& s : j["layer_norm"])
    benchmark::RegisterBenchmark(("layer_norm/" + s["name"].get<std::string>()).c_str(),
                                 [s](benchmark::State& st) { layer_norm_step(st, s); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  for (auto [N, C] : {std::pair<int64_t, int64_t>{256, 1000}, {4096, 10}})
    benchmark::RegisterBenchmark(("cross_entropy/" + std::to_string(N) + "x" + std::to_string(C)).c_str(),
                                 [N, C](benchmark::State& st) { cross_entropy_step(st, N, C); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("clip_grad_norm/resnet50", clip_grad_norm_step)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
