// Core kernel benchmarks (Google Benchmark): elementwise add/mul on 16M floats, a 16M-float sum,
// one-element adds (the per-op host cost, with and without autograd recording),
// sgemm 1024^3 and a transformer-sized GEMM (1576x768 @ 768x3072: ViT-B/16's MLP at batch 8),
// next to the references they are judged against in the same run: memcpy of the same bytes and
// OpenBLAS's sgemm called directly. benchmarks/compare_pytorch.py runs these against PyTorch.
//
// Throughput counters: bytes_per_second (elementwise, sum, memcpy), FLOP/s as items_per_second
// (GEMM). Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (see docs/benchmarks.md).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstring>
#include <vector>

#include <wanwu/wanwu.hpp>

using namespace wanwu;

namespace {
constexpr int64_t kElems = int64_t(1) << 24;  // 16M floats = 64 MiB

void BM_memcpy_64MiB(benchmark::State& state) {
  std::vector<float> a(kElems, 1.0f), b(kElems, 0.0f);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), kElems * sizeof(float));
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * kElems * int64_t(sizeof(float)));  // read + write
}

// The machine's copy bandwidth with all of wanwu's threads, each copying its own slice: the
// ceiling an elementwise kernel is judged against.
void BM_memcpy_64MiB_threads(benchmark::State& state) {
  std::vector<float> a(kElems, 1.0f), b(kElems, 0.0f);
  const int nt = get_num_threads();
  for (auto _ : state) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; ++t) {
      const int64_t lo = kElems * t / nt, hi = kElems * (t + 1) / nt;
      std::memcpy(b.data() + lo, a.data() + lo, static_cast<size_t>(hi - lo) * sizeof(float));
    }
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * kElems * int64_t(sizeof(float)));
  state.counters["threads"] = nt;
}

void BM_add_f32_16M(benchmark::State& state) {
  const Tensor a = rand({kElems}), b = rand({kElems});
  for (auto _ : state) {
    Tensor c = a + b;
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 3 * kElems * int64_t(sizeof(float)));
}

void BM_mul_f32_16M(benchmark::State& state) {
  const Tensor a = rand({kElems}), b = rand({kElems});
  for (auto _ : state) {
    Tensor c = a * b;
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 3 * kElems * int64_t(sizeof(float)));
}

void BM_sum_f32_16M(benchmark::State& state) {
  const Tensor a = rand({kElems});
  for (auto _ : state) {
    Tensor s = a.sum();
    benchmark::DoNotOptimize(s.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * kElems * int64_t(sizeof(float)));
}

// The host's cost of one op, where the data is one element: argument checks, dispatch, the output's
// allocation, and with requires_grad the autograd node. On a GPU this is what a step of small
// kernels waits on; measured here, on the CPU, against PyTorch's eager overhead.
void BM_add_f32_1(benchmark::State& state) {
  const Tensor a = rand({1}), b = rand({1});
  for (auto _ : state) {
    Tensor c = a + b;
    benchmark::DoNotOptimize(c.data_ptr());
  }
}

void BM_add_f32_1_grad(benchmark::State& state) {
  const Tensor a = rand({1}).requires_grad_(), b = rand({1});
  for (auto _ : state) {
    Tensor c = a + b;
    benchmark::DoNotOptimize(c.data_ptr());
  }
}

void gemm_flops(benchmark::State& state, int64_t m, int64_t k, int64_t n) {
  state.SetItemsProcessed(state.iterations() * 2 * m * n * k);
  state.counters["M"] = static_cast<double>(m);
  state.counters["N"] = static_cast<double>(n);
  state.counters["K"] = static_cast<double>(k);
}

void BM_matmul_f32(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  const Tensor a = randn({m, k}), b = randn({k, n});
  for (auto _ : state) {
    Tensor c = matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  gemm_flops(state, m, k, n);
}

void BM_openblas_sgemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  const Tensor a = randn({m, k}), b = randn({k, n});
  std::vector<float> c(static_cast<size_t>(m * n));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data<float>(), k, b.data<float>(), n,
                0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  gemm_flops(state, m, k, n);
}
}  // namespace

BENCHMARK(BM_memcpy_64MiB)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_memcpy_64MiB_threads)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_add_f32_16M)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_mul_f32_16M)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sum_f32_16M)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_add_f32_1)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_add_f32_1_grad)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_matmul_f32)->Args({1024, 1024, 1024})->Args({1576, 768, 3072})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_openblas_sgemm)->Args({1024, 1024, 1024})->Args({1576, 768, 3072})->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
