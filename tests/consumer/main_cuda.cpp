// Built with wanwu_enable_cuda() against an installed wanwu: the CUDA backend must be registered
// (the kernels compiled into this program); with a GPU, a matmul and a softmax on cuda:0 must
// equal the CPU's. Exits 0 on success.
#include <cmath>
#include <cstdio>

#include <wanwu/wanwu.hpp>

int main() {
  using namespace wanwu;
  if (!has_backend(DeviceType::cuda)) {
    std::printf("the CUDA backend is not registered\n");
    return 1;
  }
  if (!cuda_is_available()) {
    std::printf("CUDA backend registered; no GPU in this machine, nothing to run on it\n");
    return 0;
  }
  Generator g(5);
  const Tensor a = randn({64, 48}, DType::f32, &g), b = randn({48, 32}, DType::f32, &g);
  const Tensor want = softmax(matmul(a, b), -1);
  const Tensor got = softmax(matmul(a.to(Device::cuda(0)), b.to(Device::cuda(0))), -1).cpu();
  const double diff = (got - want).abs().max().item<double>();
  std::printf("CUDA backend registered; max |cuda - cpu| = %g\n", diff);
  return diff < 1e-5 ? 0 : 1;
}
