// The device work of one training step, kernel by kernel, on the CUDA emulator: what `wanwu
// train` queues on a GPU for a model's forward + loss, backward and optimizer step (bf16
// autocast, SGD with momentum and weight decay, as the GPU check's ResNet-50 step). It prints one
// table per phase: calls, threads and the bytes each kernel's pointers reach (emu_profile.hpp), so
// a pass that need not exist can be found and removed before a GPU measures the step.
//
//   step_profile [model=resnet50] [batch=2] [side=32] [amp=bf16|off] [budget=F,B,O[,R]]
//
// With a budget it exits 1 when a phase (forward + loss, backward, optimizer step) makes more
// device calls than that: ctest's step_profile_emulated holds resnet18 to one worked out from its
// layers, so a change that adds launches per layer fails there instead of on a GPU. Last, the same
// step is captured into a CUDA graph (StepGraph) and one replay's host calls are counted: R
// bounds them (the live-value write and the graph launch).
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include <wanwu/wanwu.hpp>

#include "emu_profile.hpp"

using namespace wanwu;

namespace {
uint64_t print(const char* phase, const std::vector<emu::ProfileRow>& rows) {
  uint64_t calls = 0, bytes = 0;
  for (const auto& r : rows) {
    calls += r.calls;
    bytes += r.bytes;
  }
  std::printf("\n## %s: %llu calls, %.2f MB\n\n| kernel or call | calls | threads | MB |\n|---|---:|---:|---:|\n", phase,
              static_cast<unsigned long long>(calls), bytes / 1e6);
  for (const auto& r : rows)
    std::printf("| %s | %llu | %llu | %.3f |\n", r.name.c_str(), static_cast<unsigned long long>(r.calls),
                static_cast<unsigned long long>(r.threads), r.bytes / 1e6);
  return calls;
}
}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "resnet50";
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 2, side = argc > 3 ? std::atoll(argv[3]) : 32;
  const std::string amp_mode = argc > 4 ? argv[4] : "bf16";
  unsigned long long budget[4] = {~0ull, ~0ull, ~0ull, ~0ull};
  if (argc > 5 && std::sscanf(argv[5], "%llu,%llu,%llu,%llu", &budget[0], &budget[1], &budget[2], &budget[3]) < 3) {
    std::fprintf(stderr, "step_profile: the budget must be three or four counts F,B,O[,R], got '%s'\n", argv[5]);
    return 2;
  }
  uint64_t calls[4] = {0, 0, 0, 0};
  const Device dev = Device::cuda(0);
  Generator g(0);
  models::ModelOptions mo;
  mo.layer.device = dev;
  mo.layer.generator = &g;
  auto model = models::create_model(name, mo);
  model->train();
  optim::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  so.weight_decay = 1e-4;
  optim::SGD opt(model->parameters(), so);
  const Tensor x = randn({batch, side, side, 3}, TensorOptions(DType::f32).device(dev));
  const Tensor y = randint(0, 10, {batch}, TensorOptions(DType::i64).device(dev));
  // One step; `phase_done(k)` after phase k (forward + loss, backward, optimizer step).
  auto step = [&](const std::function<void(int)>& phase_done) {
    opt.zero_grad();
    Tensor loss;
    {
      std::optional<amp::Autocast> ac;
      if (amp_mode == "bf16") ac.emplace(DType::bf16);
      loss = cross_entropy((*model)(x), y);
    }
    phase_done(0);
    loss.backward();
    phase_done(1);
    opt.step();
    phase_done(2);
  };
  const char* phases[4] = {"forward + loss", "backward", "optimizer step", "a step replayed from a graph (host calls)"};
  step([](int) {});  // the second step is the steady state: momentum buffers exist, the plan caches are warm
  emu::profile_start();
  step([&](int k) {
    calls[k] = print(phases[k], emu::profile_stop());
    if (k < 2) emu::profile_start();
  });
  // The same step from a CUDA graph: the replay's recorded work runs inside the graph launch, so
  // the host's calls are what a replayed step costs it.
  {
    StepGraph graph(dev);
    graph.capture([&] { step([](int) {}); });
    emu::profile_start();
    graph.replay();
    uint64_t host = 0;
    for (const auto& r : emu::profile_stop())
      if (r.name == "write_live_kernel" || r.name == "cudaGraphLaunch") host += r.calls;
    calls[3] = host;
    std::printf("\n## replayed from a CUDA graph: %llu host calls per step (eager: %llu)\n",
                static_cast<unsigned long long>(host),
                static_cast<unsigned long long>(calls[0] + calls[1] + calls[2]));
  }
  int rc = 0;
  for (int i = 0; i < 4; ++i)
    if (calls[i] > budget[i]) {
      std::fprintf(stderr, "step_profile: %s: %llu calls, over the budget of %llu\n", phases[i],
                   static_cast<unsigned long long>(calls[i]), budget[i]);
      rc = 1;
    }
  return rc;
}
