// Times wanwu's CUDA kernels at the shapes that dominate fine-tuning (a bf16 and an f32 GEMM, a
// ResNet 3x3 convolution forward and backward in NHWC, ViT-B softmax and layer_norm, an Adam
// step, an elementwise add) and prints one JSON object per line: {"name", "ms"}. Wall-clock time
// over many iterations between two device synchronizations, so launch overheads count as they
// do in training. benchmarks/gpu_compare.py runs the same ops in PyTorch and writes the table.
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

#include <wanwu/wanwu.hpp>

using namespace wanwu;

namespace {
const Device kDev = Device::cuda(0);

void sync() { backend_for(kDev).synchronize(0); }

void bench(const std::string& name, int iters, const std::function<void()>& f) {
  for (int i = 0; i < 3; ++i) f();  // warm-up: cuDNN/cuBLASLt heuristics, allocator pool
  sync();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  sync();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
  std::printf("{\"name\": \"%s\", \"ms\": %.5f}\n", name.c_str(), ms);
  std::fflush(stdout);
}

Tensor dev_randn(const Shape& s, DType dt) { return randn(s, TensorOptions(dt).device(kDev)); }
}  // namespace

int main() {
  if (!cuda_is_available()) {
    std::printf("no CUDA device\n");
    return 77;
  }
  NoGradGuard no_grad;
  {
    const Tensor a = dev_randn({4096, 4096}, DType::bf16), b = dev_randn({4096, 4096}, DType::bf16);
    bench("gemm bf16 4096^3", 20, [&] { (void)matmul(a, b); });
  }
  {
    const Tensor a = dev_randn({4096, 4096}, DType::f32), b = dev_randn({4096, 4096}, DType::f32);
    bench("gemm f32 4096^3", 10, [&] { (void)matmul(a, b); });
  }
  {
    const Tensor x = dev_randn({32, 56, 56, 64}, DType::bf16), w = dev_randn({64, 3, 3, 64}, DType::bf16);
    const Tensor gy = dev_randn({32, 56, 56, 64}, DType::bf16);
    bench("conv3x3 fwd bf16 32x56x56x64", 20, [&] { (void)conv2d(x, w, Tensor(), 1, 1); });
    Conv2dParams p;
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    Tensor gx = empty_like(x), gw = empty_like(w);
    bench("conv3x3 bwd-data bf16", 20, [&] { backend_for(kDev).conv2d_backward_input(gx, gy, w, p); });
    bench("conv3x3 bwd-filter bf16", 20, [&] { backend_for(kDev).conv2d_backward_weight(gw, gy, x, p); });
  }
  {
    const Tensor s = dev_randn({64 * 12 * 197, 197}, DType::f32);
    bench("softmax f32 [151296,197]", 20, [&] { (void)softmax(s, -1); });
  }
  {
    const Tensor x = dev_randn({64 * 197, 768}, DType::f32), w = dev_randn({768}, DType::f32),
                 b = dev_randn({768}, DType::f32);
    bench("layer_norm f32 [12608,768]", 20, [&] { (void)layer_norm(x, {768}, w, b); });
  }
  {
    const int64_t n = int64_t(25) << 20;
    Tensor p = dev_randn({n}, DType::f32), g = dev_randn({n}, DType::f32), m = zeros({n}, TensorOptions(DType::f32).device(kDev)),
           v = zeros({n}, TensorOptions(DType::f32).device(kDev));
    AdamStepParams s;
    s.step_size = 1e-3;
    bench("adam step f32 26M", 20, [&] { backend_for(kDev).adam_step(p, g, m, v, Tensor(), s); });
  }
  {
    const Tensor a = dev_randn({int64_t(64) << 20}, DType::f32), b = dev_randn({int64_t(64) << 20}, DType::f32);
    bench("add f32 64M", 20, [&] { (void)(a + b); });
  }
  return 0;
}
