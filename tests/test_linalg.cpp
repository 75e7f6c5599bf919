// matmul / mm / bmm / linear against a naive triple loop in double: every torch.matmul shape
// case (1-D, 2-D, batched with broadcasting), transposed and strided operands, f32/f64/f16/bf16.
#include <thread>

#include "harness.hpp"

#include <atomic>
#include <stdexcept>

#include <wanwu/backend/cpu/parallel.hpp>

using namespace wanwu;
using wt::check_close;
using wt::values;

namespace {
// naive [M,K] @ [K,N] on contiguous values
std::vector<double> naive_mm(const std::vector<double>& a, const std::vector<double>& b, int64_t M, int64_t K,
                             int64_t N) {
  std::vector<double> c(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) c[i * N + j] += a[i * K + k] * b[k * N + j];
  return c;
}
}  // namespace

TEST_CASE("mm against a naive loop, with transposed and strided operands") {
  for (auto [M, K, N] : {std::tuple{1, 1, 1}, {3, 4, 5}, {17, 33, 9}, {64, 128, 32}, {5, 0, 3}}) {
    CAPTURE(M);
    CAPTURE(K);
    CAPTURE(N);
    const Tensor a = randn({M, K}, DType::f64), b = randn({K, N}, DType::f64);
    const auto want = naive_mm(values(a), values(b), M, K, N);
    check_close(mm(a, b), want, 1e-12, 1e-12);
    // the same matrices stored transposed
    const Tensor at = a.t().contiguous().t(), bt = b.t().contiguous().t();
    check_close(mm(at, b), want, 1e-12, 1e-12);
    check_close(mm(a, bt), want, 1e-12, 1e-12);
    check_close(mm(at, bt), want, 1e-12, 1e-12);
  }
  // a layout BLAS cannot take (column stride 2) is copied first
  const Tensor wide = randn({6, 10}, DType::f64);
  const Tensor a = wide.slice(1, 0, 10, 2);  // [6, 5], strides (10, 2)
  const Tensor b = randn({5, 4}, DType::f64);
  check_close(mm(a, b), naive_mm(values(a), values(b), 6, 5, 4), 1e-12, 1e-12);
}

TEST_CASE("matmul shape rules: 1-D promotion and broadcast batches") {
  const Tensor v = randn({4}, DType::f64), w = randn({4}, DType::f64);
  const Tensor M = randn({3, 4}, DType::f64), N = randn({4, 2}, DType::f64);
  const auto vv = values(v), wv = values(w);
  double dot = 0;
  for (int i = 0; i < 4; ++i) dot += vv[i] * wv[i];
  CHECK(matmul(v, w).dim() == 0);
  CHECK(std::fabs(matmul(v, w).item<double>() - dot) < 1e-12);
  check_close(matmul(M, v), naive_mm(values(M), vv, 3, 4, 1), 1e-12, 1e-12);
  CHECK(matmul(M, v).shape() == Shape{3});
  check_close(matmul(v, N), naive_mm(vv, values(N), 1, 4, 2), 1e-12, 1e-12);
  CHECK(matmul(v, N).shape() == Shape{2});

  // [2, 1, 3, 4] @ [5, 4, 2] -> [2, 5, 3, 2]
  const Tensor A = randn({2, 1, 3, 4}, DType::f64), B = randn({5, 4, 2}, DType::f64);
  const Tensor C = matmul(A, B);
  CHECK(C.shape() == Shape{2, 5, 3, 2});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j)
      check_close(C[i][j], naive_mm(values(A[i][0]), values(B[j]), 3, 4, 2), 1e-12, 1e-12);
  // batch @ 2-D folds into one GEMM
  const Tensor X = randn({2, 3, 4}, DType::f64);
  const Tensor Y = matmul(X, N);
  CHECK(Y.shape() == Shape{2, 3, 2});
  check_close(Y[1], naive_mm(values(X[1]), values(N), 3, 4, 2), 1e-12, 1e-12);
  const Tensor Bb = randn({2, 4, 5}, DType::f64);
  check_close(bmm(X, Bb)[1], naive_mm(values(X[1]), values(Bb[1]), 3, 4, 5), 1e-12, 1e-12);
  check_close(bmm(X, Bb.transpose(1, 2).contiguous().transpose(1, 2))[0],
              naive_mm(values(X[0]), values(Bb[0]), 3, 4, 5), 1e-12, 1e-12);
}

TEST_CASE("matmul in f32, f16 and bf16 stays within the precision of the dtype") {
  const Tensor a = randn({32, 48}, DType::f64), b = randn({48, 24}, DType::f64);
  for (auto [dt, tol] : {std::pair{DType::f32, 1e-5}, {DType::f16, 4e-3}, {DType::bf16, 3e-2}}) {
    CAPTURE(dt);
    const Tensor al = a.to(dt), bl = b.to(dt);
    // reference from the rounded inputs, rounded once at the end
    const auto want = values(from_vector(naive_mm(values(al), values(bl), 32, 48, 24), {32, 24}, DType::f64).to(dt));
    const Tensor c = matmul(al, bl);
    CHECK(c.dtype() == dt);
    check_close(c, want, tol, tol);
  }
}

TEST_CASE("linear: x @ w^T + b for 1-D to 4-D inputs") {
  const Tensor w = randn({5, 3}, DType::f64), b = randn({5}, DType::f64);
  const Tensor x = randn({2, 4, 3}, DType::f64);
  const Tensor y = linear(x, w, b);
  CHECK(y.shape() == Shape{2, 4, 5});
  const auto wt_ = values(w.t().contiguous());
  auto want = naive_mm(values(x), wt_, 8, 3, 5);
  const auto bv = values(b);
  for (size_t i = 0; i < want.size(); ++i) want[i] += bv[i % 5];
  check_close(y, want, 1e-12, 1e-12);
  check_close(linear(x, w), naive_mm(values(x), wt_, 8, 3, 5), 1e-12, 1e-12);
  CHECK(linear(randn({3}, DType::f64), w, b).shape() == Shape{5});
  CHECK_THROWS_WITH_AS(linear(randn({2, 4}, DType::f64), w, b), doctest::Contains("linear"), ShapeError);
  CHECK_THROWS_AS(linear(x, w, randn({4}, DType::f64)), ShapeError);
}

TEST_CASE("linear with a ReLU or tanh-GELU epilogue equals the activation of linear, values and gradients") {
  const Tensor w = randn({6, 4}, DType::f64), b = randn({6}, DType::f64);
  const Tensor x = randn({3, 5, 4}, DType::f64);
  check_close(linear(x, w, b, GemmEpilogue::relu), relu(linear(x, w, b)), 1e-15, 0);
  check_close(linear(x, w, Tensor(), GemmEpilogue::relu), relu(linear(x, w)), 1e-15, 0);
  check_close(linear(x, w, b, GemmEpilogue::gelu_tanh), gelu(linear(x, w, b), GeluApproximate::tanh), 1e-15, 0);
  check_close(linear(x, w, b, GemmEpilogue::none), linear(x, w, b), 0, 0);
  // the fused ReLU keeps its own backward (from the output); GELU falls back to the composition
  for (GemmEpilogue act : {GemmEpilogue::relu, GemmEpilogue::gelu_tanh}) {
    CAPTURE(static_cast<int>(act));
    wt::gradcheck([&](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2], act); },
                  {wt::spread({2, 3, 4}, -2, 2, 3), wt::spread({6, 4}, -1, 1, 4), wt::spread({6}, -1, 1, 5)});
  }
  // f32 through the same kernels: within f32 rounding of the f64 result
  const Tensor y32 = linear(x.to(DType::f32), w.to(DType::f32), b.to(DType::f32), GemmEpilogue::gelu_tanh);
  CHECK(y32.dtype() == DType::f32);
  check_close(y32, gelu(linear(x, w, b), GeluApproximate::tanh), 1e-5, 1e-6);
}

TEST_CASE("the f32 matmul precision is a scoped, per-thread setting the CPU does not change results for") {
  CHECK(float32_matmul_precision() == MatmulPrecision::highest);
  const Tensor a = randn({33, 17}), b = randn({17, 9});
  const Tensor full = mm(a, b);
  {
    MatmulPrecisionGuard g(MatmulPrecision::tf32);
    CHECK(float32_matmul_precision() == MatmulPrecision::tf32);
    std::thread([] { CHECK(float32_matmul_precision() == MatmulPrecision::highest); }).join();
    check_close(mm(a, b), full, 0, 0);  // the CPU has no TF32: bit-identical
  }
  CHECK(float32_matmul_precision() == MatmulPrecision::highest);
}

TEST_CASE("linear and matmul with an empty inner or outer dimension, as PyTorch") {
  // 0 input features: each output is the bias (an empty sum is 0); the output owns its memory
  const Tensor x = zeros({5, 0}, DType::f64).requires_grad_(), w = zeros({3, 0}, DType::f64).requires_grad_();
  const Tensor b = from_vector<double>({1.0, -2.0, 3.0}, {3}).requires_grad_();
  const Tensor y = linear(x, w, b);
  REQUIRE(y.shape() == Shape{5, 3});
  REQUIRE(y.storage()->nbytes() >= size_t(15) * sizeof(double));
  CHECK(y.tolist<double>() == std::vector<double>{1, -2, 3, 1, -2, 3, 1, -2, 3, 1, -2, 3, 1, -2, 3});
  y.sum().backward();
  CHECK(b.grad().tolist<double>() == std::vector<double>{5, 5, 5});
  CHECK(w.grad().shape() == Shape{3, 0});
  CHECK(x.grad().shape() == Shape{5, 0});
  CHECK(linear(zeros({2, 4, 0}), zeros({3, 0})).tolist<float>() == std::vector<float>(24, 0.0f));
  // 0 output features: an empty result, and a backward that runs
  const Tensor x2 = randn({5, 3}, DType::f64).requires_grad_();
  const Tensor y2 = linear(x2, zeros({0, 3}, DType::f64).requires_grad_(), zeros({0}, DType::f64));
  CHECK(y2.shape() == Shape{5, 0});
  y2.sum().backward();
  CHECK(x2.grad().tolist<double>() == std::vector<double>(15, 0.0));
  // a batch folded into one GEMM with K = 0
  const Tensor m = matmul(zeros({2, 3, 0}), zeros({0, 4}));
  CHECK(m.shape() == Shape{2, 3, 4});
  CHECK(m.tolist<float>() == std::vector<float>(24, 0.0f));
}

TEST_CASE("matmul errors") {
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}), zeros({4, 2})), doctest::Contains("cannot be multiplied"), ShapeError);
  CHECK_THROWS_AS(matmul(zeros({2, 3}), zeros({3, 2}, DType::f64)), DTypeError);
  CHECK_THROWS_AS(matmul(tensor({1, 2}), tensor({1, 2})), DTypeError);
  CHECK_THROWS_AS(matmul(zeros({2, 2, 3}), zeros({3, 3, 2})), ShapeError);
  CHECK_THROWS_AS(mm(zeros({2}), zeros({2, 2})), ShapeError);
  CHECK_THROWS_AS(bmm(zeros({2, 2, 2}), zeros({3, 2, 2})), ShapeError);
}

TEST_CASE("parallel_for_dynamic visits every index once and carries a worker's exception out") {
  const int saved = get_num_threads();
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    for (auto [n, block] : {std::pair<int64_t, int64_t>{0, 4}, {1, 4}, {7, 3}, {1000, 17}, {64, 64}, {5, 0}}) {
      CAPTURE(n);
      CAPTURE(block);
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      for (auto& s : seen) s = 0;
      wanwu::cpu::parallel_for_dynamic(n, block, [&](int64_t b, int64_t e) {
        CHECK(b < e);
        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) CHECK(seen[static_cast<size_t>(i)] == 1);
    }
    CHECK_THROWS_WITH_AS(wanwu::cpu::parallel_for_dynamic(100, 1,
                                                          [](int64_t b, int64_t e) {
                                                            if (b <= 37 && 37 < e) throw std::runtime_error("block 37");
                                                          }),
                         "block 37", std::runtime_error);
  }
  set_num_threads(saved);
}

// The narrow GEMM and the implicit-GEMM convolution hand row blocks to whichever thread comes free;
// each block is computed the same way on any thread, so the outputs must not change by a bit.
TEST_CASE("convolutions and GEMMs give bit-identical results on one thread and on two") {
  Generator g(5);
  const Tensor x = randn({3, 14, 14, 64}, {}, &g);
  const Tensor w1 = randn({100, 1, 1, 64}, {}, &g), b1 = randn({100}, {}, &g);
  const Tensor w3 = randn({50, 3, 3, 64}, {}, &g), b3 = randn({50}, {}, &g);
  const Tensor ws = randn({36, 3, 3, 64}, {}, &g);
  const Tensor a = randn({500, 64}, {}, &g), lw = randn({40, 64}, {}, &g), lb = randn({40}, {}, &g);
  auto run = [&] {
    return std::vector<std::vector<float>>{conv2d(x, w1, b1).tolist<float>(), conv2d(x, w3, b3, 1, 1).tolist<float>(),
                                           conv2d(x, ws, Tensor(), 2, 1).tolist<float>(),
                                           linear(a, lw, lb).tolist<float>()};
  };
  const int saved = get_num_threads();
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) {
    CAPTURE(i);
    CHECK(one[i] == two[i]);
  }
}
