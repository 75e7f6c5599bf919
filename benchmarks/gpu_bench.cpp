// Times wanwu's CUDA kernels at the shapes that dominate fine-tuning and prints one JSON object per
// line: {"name", "ms"} plus, where it means something, "bytes" (memory traffic, for bandwidth),
// "images_per_s" and "peak_mib". The set: bf16 GEMM 8192³ and f32 GEMM 4096³; ResNet-50's
// convolutions (1x1 and 3x3, NHWC, bf16) forward, backward-data and backward-filter; a plain copy
// (the bandwidth ceiling), an elementwise add, and softmax / layer_norm at ViT-B shapes; an Adam
// step; f32 GEMM with TF32 allowed; ViT-B's MLP input projection with its bias and tanh-GELU in the
// GEMM's epilogue; the fused cross-entropy forward + backward; AdamW and SGD steps over
// ResNet-50's 161 parameters (the multi-tensor kernels); training batch norm + ReLU forward and
// backward at ResNet-50 shapes; resnet18 training steps at 32x32, eager and replayed from a CUDA
// graph, and ResNet-50's step replayed from one; and a whole ResNet-50 training step in bf16
// autocast at batch 256 with its peak memory, its phases, and its backward pass op by op
// (autograd/profile.hpp).
// Wall-clock time over many iterations between two device synchronizations, so launch overheads
// count as they do in training. benchmarks/gpu_compare.py runs the same work in PyTorch and writes
// the table.
//
// WANWU_BENCH_DEVICE=cpu is the program's dry run (ctest's gpu_bench_on_cpu): the same rows on
// the CPU at shapes cut down to run in seconds, one timed call each. Its figures mean nothing; it
// shows, without a GPU, that every row runs to its end and prints what gpu_compare.py reads, so
// that GPU time is not lost to a mistake in the benchmark itself. WANWU_BENCH_DEVICE=cuda-dry is
// the same dry run on cuda:0: with the CUDA emulator (tests/emu, ctest's gpu_bench_emulated) it
// runs the rows' device side too (events, the device's memory statistics, benchmark-mode
// convolutions) before a GPU does.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include <wanwu/wanwu.hpp>

using namespace wanwu;

namespace {
const std::string kBenchDevice = [] {
  const char* d = std::getenv("WANWU_BENCH_DEVICE");
  return std::string(d ? d : "");
}();
const bool kDry = kBenchDevice == "cpu" || kBenchDevice == "cuda-dry";
const Device kDev = kBenchDevice == "cpu" ? Device::cpu() : Device::cuda(0);

// A size of the GPU benchmark, divided by `div` in the dry run.
int64_t sz(int64_t n, int64_t div) { return kDry ? std::max<int64_t>(1, n / div) : n; }

void sync() { backend_for(kDev).synchronize(kDev.index); }

double time_ms(int iters, const std::function<void()>& f) {
  if (kDry) iters = 1;
  for (int i = 0; i < (kDry ? 1 : 3); ++i) f();  // warm-up: cuDNN/cuBLASLt heuristics, allocator pool
  sync();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  sync();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

std::string json_escaped(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c == '\n' ? ' ' : c;
  }
  return o;
}

// Runs one row; a row that throws prints its error and the program goes on to the next, so one
// failure does not cost the rows after it (gpu_compare.py shows it as a missing time).
void guarded(const std::string& name, const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    std::printf("{\"name\": \"%s\", \"error\": \"%s\"}\n", name.c_str(), json_escaped(e.what()).c_str());
    std::fflush(stdout);
  }
}

void bench(const std::string& name, int iters, const std::function<void()>& f, double bytes = 0) {
  guarded(name, [&] {
    const double ms = time_ms(iters, f);
    std::printf("{\"name\": \"%s\", \"ms\": %.5f, \"bytes\": %.0f}\n", name.c_str(), ms, bytes);
    std::fflush(stdout);
  });
}

Tensor dev_randn(const Shape& s, DType dt) { return randn(s, TensorOptions(dt).device(kDev)); }

// One ResNet-50 convolution at batch 32, bf16 NHWC: forward, backward-data, backward-filter.
void conv_bench(const std::string& tag, int64_t hw, int64_t cin, int64_t cout, int64_t k, int64_t stride) {
  const int64_t pad = k / 2, ohw = (hw + 2 * pad - k) / stride + 1;
  const int64_t n = sz(32, 16);
  const Tensor x = dev_randn({n, hw, hw, cin}, DType::bf16), w = dev_randn({cout, k, k, cin}, DType::bf16);
  const Tensor gy = dev_randn({n, ohw, ohw, cout}, DType::bf16);
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = pad;
  Tensor gx = empty_like(x), gw = empty_like(w);
  bench("conv " + tag + " fwd", 20, [&] { (void)conv2d(x, w, Tensor(), stride, pad); });
  bench("conv " + tag + " bwd-data", 20, [&] { backend_for(kDev).conv2d_backward_input(gx, gy, w, p); });
  bench("conv " + tag + " bwd-filter", 20, [&] { backend_for(kDev).conv2d_backward_weight(gw, gy, x, p); });
}

// Training batch norm + ReLU forward and backward at ResNet-50 shapes (batch 256), bf16
// activations with f32 parameters and running statistics as autocast hands them over: the
// training step's backward trails PyTorch's, and this is its largest memory-bound piece.
void batch_norm_bench(int64_t hw, int64_t c) {
  const int64_t n = sz(256, 64);
  const Tensor x0 = dev_randn({n, hw, hw, c}, DType::bf16), gy = dev_randn({n, hw, hw, c}, DType::bf16);
  const TensorOptions f32 = TensorOptions(DType::f32).device(kDev);
  Tensor w = ones({c}, f32).requires_grad_(true), b = zeros({c}, f32).requires_grad_(true);
  Tensor rm = zeros({c}, f32), rv = ones({c}, f32);
  Tensor x = x0.detach().requires_grad_(true);
  bench("batch_norm+relu fwd+bwd bf16 256x" + std::to_string(hw) + "x" + std::to_string(hw) + "x" + std::to_string(c),
        20, [&] {
          const Tensor y = batch_norm_act(x, rm, rv, w, b, Mode::train, Activation::relu);
          y.backward(gy);
          x.set_grad(Tensor());
          w.set_grad(Tensor());
          b.set_grad(Tensor());
        });
}

// Cross-entropy forward + backward from logits [n, c] with class indices, as a training step runs it.
void cross_entropy_bench(int64_t n, int64_t c, DType dt) {
  n = sz(n, 16);
  const Tensor x = dev_randn({n, c}, dt).requires_grad_(true);
  const Tensor y = randint(0, c, {n}, TensorOptions(DType::i64).device(kDev));
  const int64_t es = dt == DType::f32 ? 4 : 2;
  bench("cross_entropy fwd+bwd " + std::string(dtype_name(dt)) + " [" + std::to_string(n) + "," + std::to_string(c) + "]",
        20, [&] {
          cross_entropy(x, y).backward();
          x.set_grad(Tensor());
        }, 3.0 * es * n * c);
}

// One optimizer step over ResNet-50's parameters (161 tensors, 25.6M values) with gradients set:
// the multi-tensor kernels against PyTorch's default (foreach) implementation.
void optimizer_bench() {
  Generator g(0);
  models::ModelOptions mo;
  mo.layer.device = kDev;
  mo.layer.generator = &g;
  auto model = models::create_model("resnet50", mo);
  int64_t np = 0;
  for (const Tensor& p : model->parameters()) {
    p.set_grad(randn(p.shape(), TensorOptions(DType::f32).device(kDev)));
    np += p.numel();
  }
  optim::AdamOptions ao = optim::AdamW::defaults();
  optim::AdamW adamw(model->parameters(), ao);
  bench("adamw step resnet50 params", 20, [&] { adamw.step(); }, 7.0 * 4 * np);
  optim::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  so.weight_decay = 1e-4;
  optim::SGD sgd(model->parameters(), so);
  bench("sgd momentum step resnet50 params", 20, [&] { sgd.step(); }, 5.0 * 4 * np);
  // clip_grad_norm_ (the first call scales the norm to 1, every later one by 1 / (1 + 1e-6), so
  // each call makes both passes), then GradScaler's unscale and check, each with its one read of
  // the result, as a training step has. In this order: 23 unscales by 2^-16 leave zero gradients,
  // whose norm clipping would not scale.
  bench("clip_grad_norm resnet50 grads", 20, [&] { (void)optim::clip_grad_norm_(model->parameters(), 1.0); },
        3.0 * 4 * np);
  std::vector<Tensor> grads;
  for (const Tensor& p : model->parameters()) grads.push_back(p.grad());
  bench("unscale+check resnet50 grads", 20,
        [&] { (void)optim::scale_all_(grads, 1.0 / 65536, optim::CheckNonfinite::yes); }, 2.0 * 4 * np);
}

// The training steps' set-up: a seeded torchvision model on the device in train mode, and SGD
// with momentum and weight decay over its parameters (torchvision's reference recipe).
std::pair<std::shared_ptr<models::Classifier>, std::unique_ptr<optim::SGD>> sgd_training(const std::string& arch,
                                                                                          int64_t classes) {
  Generator g(0);
  models::ModelOptions mo;
  mo.num_classes = classes;
  mo.layer.device = kDev;
  mo.layer.generator = &g;
  auto model = models::create_model(arch, mo);
  model->train();
  optim::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  so.weight_decay = 1e-4;
  auto opt = std::make_unique<optim::SGD>(model->parameters(), so);
  return {model, std::move(opt)};
}

// A bf16 or fp16 autocast training step (SGD with momentum, synthetic data on the device; fp16
// with a GradScaler that keeps its scale on the device) run eagerly or replayed from a CUDA graph
// (backend/step_graph.hpp), against PyTorch's eager step and its torch.cuda.graph replay (for
// fp16, PyTorch's documented pattern: forward, loss and backward captured, its GradScaler's step
// and update eager, since they read the inf check on the host). At small images and batches a
// step is hundreds of launches of little work each, and the host's launch time, not the GPU,
// sets its pace: what graphs remove.
void graph_step_bench(const std::string& arch, int64_t batch, int64_t side, int iters, bool graph,
                      DType precision = DType::bf16) {
  const auto setup = sgd_training(arch, 10);
  const auto& model = setup.first;
  optim::SGD& opt = *setup.second;
  const Tensor x = dev_randn({sz(batch, batch / 2), side, side, 3}, DType::f32);
  const Tensor y = randint(0, 10, {sz(batch, batch / 2)}, TensorOptions(DType::i64).device(kDev));
  amp::GradScalerOptions so;
  so.mode = precision == DType::f16 ? amp::ScalerMode::on : amp::ScalerMode::off;
  so.sync = amp::ScalerSync::device;
  amp::GradScaler scaler(so);
  auto step = [&] {
    opt.zero_grad();
    Tensor loss;
    {
      amp::Autocast ac(precision);
      loss = cross_entropy((*model)(x), y);
    }
    scaler.scale(loss).backward();
    scaler.step(opt);
    scaler.update();
  };
  // optimizer state and the convolutions' algorithms exist before the capture (an fp16 step
  // whose gradients overflow starts no momentum buffer)
  for (int w = 0; w == 0 || (!opt.can_gate() && w < 30); ++w) step();
  StepGraph sg(kDev);
  if (graph) sg.capture(step);
  bench(detail::str(arch, " train step ", precision == DType::f16 ? "fp16" : "bf16", ", batch ", batch, ", ", side,
                    "x", side, graph ? ", cuda graph" : ", eager"),
        iters, [&] {
          if (graph) sg.replay();
          else step();
        });
}

// torchvision's ResNet-50 training step as a user writes it: bf16 autocast forward, cross-entropy,
// backward, SGD with momentum and weight decay; synthetic data already on the GPU. With
// ConvAlgorithmSearch::benchmark (PyTorch's cudnn.benchmark) the first step times the cuDNN
// candidates of every shape; the phases and the backward profile are taken in the default mode.
void resnet50_train_step(int64_t batch, int iters, ConvAlgorithmSearch search) {
  ConvAlgorithmSearchGuard search_guard(search);
  const bool bench_mode = search == ConvAlgorithmSearch::benchmark;
  const auto setup = sgd_training("resnet50", 1000);
  const auto& model = setup.first;
  optim::SGD& opt = *setup.second;
  // the emulator's convolutions are reference loops: its dry run takes 32x32 images
  const int64_t side = kBenchDevice == "cuda-dry" ? 32 : 224;
  const Tensor x = dev_randn({batch, side, side, 3}, DType::f32);
  const Tensor y = randint(0, 1000, {batch}, TensorOptions(DType::i64).device(kDev));
  sync();
  reset_peak_memory_stats(kDev);
  // One step; given `phases`, a device synchronization after each phase (forward + loss,
  // backward, optimizer) adds that phase's milliseconds to it.
  using clock = std::chrono::steady_clock;
  auto step = [&](double* phases) {
    opt.zero_grad();
    if (phases) sync();
    auto mark = clock::now();
    auto lap = [&](int k) {
      if (!phases) return;
      sync();
      const auto now = clock::now();
      phases[k] += std::chrono::duration<double, std::milli>(now - mark).count();
      mark = now;
    };
    Tensor loss;
    {
      amp::Autocast ac(DType::bf16);
      loss = cross_entropy((*model)(x), y);
    }
    lap(0);
    loss.backward();
    lap(1);
    opt.step();
    lap(2);
  };
  const double ms = time_ms(iters, [&] { step(nullptr); });
  const MemoryStats st = memory_stats(kDev);
  std::printf("{\"name\": \"resnet50 train step bf16 autocast, batch %lld\", \"ms\": %.5f, \"images_per_s\": %.1f, "
              "\"peak_mib\": %.1f, \"conv_search\": \"%s\"}\n",
              static_cast<long long>(batch), ms, batch * 1000.0 / ms, st.peak_allocated / 1048576.0,
              bench_mode ? "benchmark" : "heuristic");
  std::fflush(stdout);
  if (bench_mode) return;
  double phase[3] = {0, 0, 0};
  const int reps = kDry ? 1 : 5;
  for (int i = 0; i < reps; ++i) step(phase);
  for (double& t : phase) t /= reps;
  std::printf("{\"phases\": \"resnet50\", \"forward_ms\": %.3f, \"backward_ms\": %.3f, \"optimizer_ms\": %.3f}\n",
              phase[0], phase[1], phase[2]);
  // Which ops hold the backward's time: one more step with each backward node timed alone
  // (autograd/profile.hpp), its 25 costliest ops.
  {
    autograd::BackwardProfile prof;
    step(nullptr);
    const auto ops = prof.ops();
    for (size_t i = 0; i < ops.size() && i < 25; ++i)
      std::printf("{\"backward_op\": \"%s\", \"calls\": %lld, \"ms\": %.3f}\n", ops[i].name.c_str(),
                  static_cast<long long>(ops[i].calls), ops[i].ms);
    std::printf("{\"backward_total_ms\": %.3f}\n", prof.total_ms());
  }
  std::fflush(stdout);
}
}  // namespace

int main() {
  if (!kDry && !cuda_is_available()) {
    std::printf("no CUDA device\n");
    return 77;
  }
  {
    NoGradGuard no_grad;
    {
      const int64_t k = sz(8192, 16);
      const Tensor a = dev_randn({k, k}, DType::bf16), b = dev_randn({k, k}, DType::bf16);
      bench("gemm bf16 8192^3", 20, [&] { (void)matmul(a, b); });
    }
    {
      const int64_t k = sz(4096, 16);
      const Tensor a = dev_randn({k, k}, DType::f32), b = dev_randn({k, k}, DType::f32);
      bench("gemm f32 4096^3", 10, [&] { (void)matmul(a, b); });
      MatmulPrecisionGuard tf32(MatmulPrecision::tf32);
      bench("gemm f32 4096^3 tf32", 20, [&] { (void)matmul(a, b); });
    }
    {
      // ViT-B/16's MLP input projection at batch 256: [50432, 768] -> 3072, bias + tanh-GELU
      const Tensor x = dev_randn({sz(256 * 197, 256), 768}, DType::bf16), w = dev_randn({3072, 768}, DType::bf16);
      const Tensor b = dev_randn({3072}, DType::bf16);
      bench("linear+bias+gelu_tanh bf16 [50432,768]x[768,3072]", 20,
            [&] { (void)linear(x, w, b, GemmEpilogue::gelu_tanh); });
    }
    conv_bench("3x3 56x56 64->64", 56, 64, 64, 3, 1);
    conv_bench("1x1 56x56 256->64", 56, 256, 64, 1, 1);
    conv_bench("3x3/2 56x56 128->128", 56, 128, 128, 3, 2);
    conv_bench("3x3 14x14 256->256", 14, 256, 256, 3, 1);
    conv_bench("1x1 7x7 512->2048", 7, 512, 2048, 1, 1);
    const int64_t n = sz(int64_t(64) << 20, 64);
    {
      const Tensor a = dev_randn({n}, DType::f32), b = dev_randn({n}, DType::f32);
      bench("copy f32 64M", 20, [&] { (void)a.clone(); }, 2.0 * 4 * n);
      bench("add f32 64M", 20, [&] { (void)(a + b); }, 3.0 * 4 * n);
      // 2-byte elements: 16-byte packs carry 8 per access (a scalar access moves 64 bytes per warp)
      const Tensor ah = a.to(DType::bf16), bh = b.to(DType::bf16);
      bench("add bf16 64M", 20, [&] { (void)(ah + bh); }, 3.0 * 2 * n);
      bench("cast bf16->f32 64M", 20, [&] { (void)ah.to(DType::f32); }, 6.0 * n);
    }
    {
      const int64_t rows = sz(64 * 12 * 197, 64), cols = 197;
      const Tensor s = dev_randn({rows, cols}, DType::f32);
      bench("softmax f32 [151296,197]", 20, [&] { (void)softmax(s, -1); }, 2.0 * 4 * rows * cols);
      const Tensor sh = s.to(DType::bf16);
      bench("softmax bf16 [151296,197]", 20, [&] { (void)softmax(sh, -1); }, 2.0 * 2 * rows * cols);
    }
    {
      const int64_t rows = sz(256 * 197, 64);
      const Tensor x = dev_randn({rows, 768}, DType::f32), w = dev_randn({768}, DType::f32),
                   b = dev_randn({768}, DType::f32);
      bench("layer_norm f32 [50432,768]", 20, [&] { (void)layer_norm(x, {768}, w, b); }, 2.0 * 4 * rows * 768);
      const Tensor xh = x.to(DType::bf16), wh = w.to(DType::bf16), bh = b.to(DType::bf16);
      bench("layer_norm bf16 [50432,768]", 20, [&] { (void)layer_norm(xh, {768}, wh, bh); }, 2.0 * 2 * rows * 768);
    }
    {
      const int64_t np = sz(int64_t(25) << 20, 64);
      Tensor p = dev_randn({np}, DType::f32), g = dev_randn({np}, DType::f32),
             m = zeros({np}, TensorOptions(DType::f32).device(kDev)), v = zeros({np}, TensorOptions(DType::f32).device(kDev));
      AdamStepParams s;
      s.step_size = 1e-3;
      bench("adam step f32 26M", 20, [&] { backend_for(kDev).adam_step(p, g, m, v, Tensor(), s); }, 7.0 * 4 * np);
    }
  }
  cross_entropy_bench(256, 1000, DType::f32);
  cross_entropy_bench(8192, 1000, DType::f32);
  cross_entropy_bench(8192, 1000, DType::bf16);
  guarded("optimizer steps", optimizer_bench);
  batch_norm_bench(56, 64);
  batch_norm_bench(56, 256);
  batch_norm_bench(14, 1024);
  for (DType precision : {DType::bf16, DType::f16})
    for (bool graph : {false, true})
      guarded("resnet18 train step",
              [graph, precision] { graph_step_bench("resnet18", 64, 32, 50, graph, precision); });
  guarded("resnet50 train step, cuda graph",
          [] { graph_step_bench("resnet50", 256, kDry ? 32 : 224, 10, true); });
  guarded("resnet50 train step", [] { resnet50_train_step(sz(256, 128), 10, ConvAlgorithmSearch::heuristic); });
  guarded("resnet50 train step, conv benchmark mode",
          [] { resnet50_train_step(sz(256, 128), 10, ConvAlgorithmSearch::benchmark); });
  return 0;
}
