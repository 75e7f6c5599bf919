// Whole-model benchmarks (Google Benchmark): eval-mode forward of resnet50, efficientnet_b0 and
// vit_b_16 at 224x224, batch 1 and 8, f32, no autograd — the inference a user runs with
// `wanwu predict` or a server. benchmarks/compare_pytorch.py (suite `models`) runs the same
// torchvision models under torch.inference_mode next to these; the counter is images/s.
#include <benchmark/benchmark.h>

#include <string>

#include <wanwu/wanwu.hpp>

using namespace wanwu;

namespace {

void eval_forward(benchmark::State& state, const std::string& arch) {
  const int64_t batch = state.range(0);
  auto model = models::create_model(arch);
  model->eval();
  NoGradGuard no_grad;
  const Tensor x = randn({batch, 224, 224, 3});
  for (auto _ : state) {
    Tensor y = model->forward(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_CAPTURE(eval_forward, resnet50, std::string("resnet50"))->Arg(1)->Arg(8)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(eval_forward, efficientnet_b0, std::string("efficientnet_b0"))->Arg(1)->Arg(8)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(eval_forward, vit_b_16, std::string("vit_b_16"))->Arg(1)->Arg(8)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
