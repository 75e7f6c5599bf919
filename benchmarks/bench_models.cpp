// Whole-model benchmarks (Google Benchmark) for resnet50, efficientnet_b0 and vit_b_16 at
// 224x224: the eval-mode forward without autograd at batch 1, 8 and 16 (what `wanwu predict` or a
// server runs), and a full training step at batch 16 — forward, cross-entropy, backward, AdamW
// step, zero_grad — in f32 and with the forward and loss under bf16 autocast. The counter is
// images/s. benchmarks/compare_pytorch.py (suite `models`) runs the same torchvision models next to
// these, interleaved, and reads the counters from the JSON output.
//
// Each benchmark also reports its process's peak resident set as the counter peak_rss_MiB: VmHWM
// from /proc/self/status, the high-water mark of this program's own address space.
// getrusage's ru_maxrss would not do: at exec Linux folds the parent's peak into it, so a binary
// started by a Python script holding models reports the script's size. The figure only means
// "this workload's peak" when the process ran that one benchmark, so compare_pytorch.py always
// runs the binary filtered to a single benchmark. It includes the weights, the optimizer state
// and what wanwu's caching allocator keeps, as a user's process would; peak_tensors_MiB and
// peak_reserved_MiB are the allocator's high-water marks without and with its cache.
#include <benchmark/benchmark.h>

#include <fstream>
#include <optional>
#include <string>

#include <wanwu/wanwu.hpp>

using namespace wanwu;

namespace {

constexpr int64_t kImage = 224;
constexpr int64_t kClasses = 1000;

double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // "VmHWM:  123456 kB"
  return 0.0;
}

void report(benchmark::State& state, int64_t batch) {
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
  // The tensor allocator's own high-water marks: live tensors, and live plus its cache. Their
  // difference is what the cache costs at the peak.
  const MemoryStats ms = cpu_allocator().stats();
  state.counters["peak_tensors_MiB"] = static_cast<double>(ms.peak_allocated) / (1 << 20);
  state.counters["peak_reserved_MiB"] = static_cast<double>(ms.peak_reserved) / (1 << 20);
}

void eval_forward(benchmark::State& state, const std::string& arch) {
  const int64_t batch = state.range(0);
  auto model = models::create_model(arch);
  model->eval();
  NoGradGuard no_grad;
  const Tensor x = randn({batch, kImage, kImage, 3});
  // Google Benchmark times a single iteration when one takes longer than --benchmark_min_time
  // (a ViT-B/16 batch-16 forward does here); that iteration must not be a cold one. Two calls
  // warm up: the first folds the batch norms into the convolutions, whose folded weights stay
  // allocated in blocks the activations had used, so the second still takes fresh memory
  // (ResNet-50 at batch 16: 128 MiB, 1.2x slower than the calls after it), as `wanwu serve`'s
  // warm-up found. compare_pytorch.py's PyTorch side times the median of 3+ steps after one.
  model->forward(x);
  model->forward(x);
  for (auto _ : state) {
    Tensor y = model->forward(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  report(state, batch);
}

void train_step(benchmark::State& state, const std::string& arch, DType autocast) {
  const int64_t batch = state.range(0);
  auto model = models::create_model(arch);
  model->train();
  optim::AdamOptions o = optim::AdamW::defaults();
  o.lr = 1e-3;
  optim::AdamW opt(model->parameters(), o);
  const Tensor x = randn({batch, kImage, kImage, 3});
  const Tensor y = randint(0, kClasses, {batch});
  auto step = [&] {
    Tensor loss;
    {
      std::optional<amp::Autocast> ac;
      if (autocast != DType::f32) ac.emplace(autocast);
      loss = cross_entropy(model->forward(x), y);
    }
    loss.backward();
    opt.step();
    opt.zero_grad();
    return loss;
  };
  // Two warm-up steps, since a training step is timed once when it takes seconds. The first
  // allocates AdamW's moments and fills the caching allocator; those moments then sit in the
  // allocator's segments, so the second step cuts its activations from a different layout and
  // still takes some memory from the system. From the third step on, none is taken.
  step();
  step();
  for (auto _ : state) {
    Tensor loss = step();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
  report(state, batch);
}

}  // namespace

#define WANWU_MODEL_BENCHMARKS(arch)                                                                              \
  BENCHMARK_CAPTURE(eval_forward, arch, std::string(#arch))                                                       \
      ->Arg(1)->Arg(8)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);                                     \
  BENCHMARK_CAPTURE(train_step, arch##_f32, std::string(#arch), DType::f32)                                        \
      ->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);                                                     \
  BENCHMARK_CAPTURE(train_step, arch##_bf16, std::string(#arch), DType::bf16)                                      \
      ->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond)

WANWU_MODEL_BENCHMARKS(resnet50);
WANWU_MODEL_BENCHMARKS(efficientnet_b0);
WANWU_MODEL_BENCHMARKS(vit_b_16);

BENCHMARK_MAIN();
