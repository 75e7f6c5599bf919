// CPU-vs-CUDA parity helpers. Each check runs an op on the CPU in f64 (the reference, computed by
// the CPU backend independently of any CUDA code) and on cuda:0 in the dtype under test, then
// compares the outputs and — through autograd, with loss = sum(out * w) for a fixed random w —
// the gradients of every floating input. Tolerances are per dtype and scale with the size of the
// reference values: |got - ref| <= atol * max(1, max|ref|) + rtol * |ref|.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <wanwu/wanwu.hpp>

namespace cp {

using namespace wanwu;
// WANWU_PARITY_DEVICE=cpu in the environment makes the CPU "the device": the suite's dry run
// (ctest's cuda_parity_on_cpu), in which every case runs its own code, the CPU backend in the dtype
// under test against f64 and the suite's tolerances, on machines without a GPU. It finds a test's
// own mistakes before GPU time is spent on them.
inline bool on_cpu() {
  const char* d = std::getenv("WANWU_PARITY_DEVICE");
  return d && std::string(d) == "cpu";
}
inline const Device kCuda = on_cpu() ? Device::cpu() : Device::cuda(0);

struct Tol {
  double rtol, atol;
};
// f32: a few ulps per accumulated term; f16 (11-bit mantissa) and bf16 (8-bit) round each
// stored value; f64: the CPU and the GPU sum in different orders.
inline Tol tol_for(DType d) {
  switch (d) {
    case DType::f64: return {1e-9, 1e-10};
    case DType::f32: return {2e-4, 2e-5};
    case DType::f16: return {2e-2, 5e-3};
    case DType::bf16: return {5e-2, 3e-2};
    default: return {0.0, 0.0};
  }
}

inline std::vector<double> host_values(const Tensor& t) { return t.detach().cpu().to(DType::f64).contiguous().tolist<double>(); }

inline void compare(const std::string& what, const Tensor& got, const Tensor& ref, Tol tol) {
  CAPTURE(what);
  REQUIRE(got.defined());
  REQUIRE(ref.defined());
  REQUIRE(got.shape() == ref.shape());
  const auto g = host_values(got), r = host_values(ref);
  double scale = 1.0;
  for (double x : r)
    if (std::isfinite(x)) scale = std::max(scale, std::fabs(x));
  for (size_t i = 0; i < g.size(); ++i) {
    const double a = g[i], b = r[i];
    const bool ok = (std::isnan(a) && std::isnan(b)) || a == b || std::fabs(a - b) <= tol.atol * scale + tol.rtol * std::fabs(b);
    if (!ok) {
      FAIL_CHECK(what << ": element " << i << " of " << g.size() << ": cuda " << a << ", cpu " << b << " (rtol "
                      << tol.rtol << ", atol " << tol.atol << " x " << scale << ")");
      return;
    }
  }
}

// Exact equality (integer, bool and index results).
inline void compare_exact(const std::string& what, const Tensor& got, const Tensor& ref) {
  compare(what, got, ref, {0.0, 0.0});
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on f64 CPU copies of `inputs` and on `dt` CUDA copies; compares outputs and gradients.
// Non-floating inputs (indices, masks) are passed through unchanged (moved to the device).
inline void parity(const std::string& name, const Fn& f, const std::vector<Tensor>& inputs, DType dt,
                   bool check_grads = true, Tol tol = {-1, -1}) {
  CAPTURE(name);
  CAPTURE(dt);
  if (tol.rtol < 0) tol = tol_for(dt);
  std::vector<Tensor> ref_in, dev_in;
  for (const Tensor& x : inputs) {
    if (x.is_floating_point()) {
      // the reference sees exactly the values the device sees (rounded to dt first)
      Tensor rounded = x.detach().to(dt).to(DType::f64).contiguous();
      ref_in.push_back(rounded.detach().requires_grad_(check_grads));
      dev_in.push_back(x.detach().to(dt).to(kCuda).detach().requires_grad_(check_grads));
    } else {
      ref_in.push_back(x);
      dev_in.push_back(x.to(kCuda));
    }
  }
  const Tensor ref_out = f(ref_in);
  const Tensor dev_out = f(dev_in);
  REQUIRE(dev_out.device() == kCuda);
  compare(name + " forward", dev_out, ref_out, tol);
  if (!check_grads || !ref_out.is_floating_point()) return;
  Generator g(99);
  const Tensor w = randn(ref_out.shape(), DType::f64, &g);
  (ref_out * w).sum().backward();
  (dev_out * w.to(dev_out.dtype()).to(kCuda)).sum().backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].is_floating_point()) continue;
    CAPTURE(i);
    const Tensor rg = ref_in[i].grad(), dg = dev_in[i].grad();
    REQUIRE(rg.defined() == dg.defined());
    if (!rg.defined()) continue;
    REQUIRE(dg.device() == kCuda);
    // Gradients sum many terms: one more factor of slack than the forward.
    compare(name + " grad of input " + std::to_string(i), dg, rg, {tol.rtol * 2, tol.atol * 2});
  }
}

inline const std::vector<DType> kFloatTypes = {DType::f32, DType::f64, DType::f16, DType::bf16};

// Values in [lo, hi) from a fixed seed, f32 on the CPU.
inline Tensor rnd(const Shape& s, double lo = -2.0, double hi = 2.0, uint64_t seed = 1) {
  Generator g(seed);
  return uniform(s, lo, hi, DType::f32, &g);
}

// Queues `products` 4096^3 f32 matrix products (0.14 TFLOP each, milliseconds apiece without TF32)
// on the idle device, for a test to check that an op returns while the device is still busy
// (Backend::is_idle). Returns their result.
inline Tensor queue_busy_work(int products) {
  Tensor busy = rnd({4096, 4096}, -1, 1).to(kCuda);
  (void)matmul(busy, busy);  // the product's kernel is loaded before anything is judged
  backend_for(kCuda).synchronize(0);
  REQUIRE(backend_for(kCuda).is_idle(0));
  for (int i = 0; i < products; ++i) busy = matmul(busy, busy) * 1e-3;
  REQUIRE_FALSE(backend_for(kCuda).is_idle(0));
  return busy;
}

}  // namespace cp
