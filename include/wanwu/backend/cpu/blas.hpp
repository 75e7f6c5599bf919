// CPU matrix multiply through OpenBLAS (DESIGN D11). Operands are passed to sgemm/dgemm in
// place whenever their last two dims are row- or column-major (a transposed view costs
// nothing); only other layouts are copied. f16/bf16 go through f32 buffers. Batches of small
// matrices run one matrix per thread (OpenBLAS's OpenMP build is then single-threaded inside
// the region); large matrices use OpenBLAS's own threads one after another.
#pragma once

#include <cblas.h>

#include <optional>
#include <vector>

#include "../backend.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

struct BlasMat {
  bool trans;  // stored column-major: element (i, j) at i + j * ld
  int64_t ld;
};

// How a rows x cols matrix with element strides (rs, cs) can be handed to BLAS, if at all.
inline std::optional<BlasMat> blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if ((cs == 1 || cols <= 1) && (rows <= 1 || rs >= std::max<int64_t>(cols, 1)))
    return BlasMat{false, rows <= 1 ? std::max<int64_t>(cols, 1) : rs};
  if ((rs == 1 || rows <= 1) && (cols <= 1 || cs >= std::max<int64_t>(rows, 1)))
    return BlasMat{true, cols <= 1 ? std::max<int64_t>(rows, 1) : cs};
  return std::nullopt;
}

template <class T>
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
               int64_t ldb, T beta, T* c, int64_t ldc) {
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, TA, TB, (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb,
                beta, c, (blasint)ldc);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb,
                beta, c, (blasint)ldc);
}

// out [B,M,N] contiguous; a [B,M,K], b [B,K,N] of type T (float or double), any strides.
template <class T>
void gemm_blas_typed(T* out, const Tensor& a, const Tensor& b, double alpha, double beta) {
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  const auto la = blas_layout(M, K, a.stride(1), a.stride(2));
  const auto lb = blas_layout(K, N, b.stride(1), b.stride(2));
  // Unsupported layouts were made contiguous by the caller.
  const T* pa = static_cast<const T*>(a.data_ptr());
  const T* pb = static_cast<const T*>(b.data_ptr());
  const int64_t sa = a.stride(0), sb = b.stride(0);
  auto one = [&](int64_t i) {
    T* c = out + i * M * N;
    if (K == 0) {
      for (int64_t j = 0; j < M * N; ++j) c[j] = beta == 0.0 ? T(0) : static_cast<T>(beta) * c[j];
      return;
    }
    blas_gemm<T>(la->trans, lb->trans, M, N, K, static_cast<T>(alpha), pa + i * sa, la->ld, pb + i * sb, lb->ld,
                 static_cast<T>(beta), c, std::max<int64_t>(N, 1));
  };
  if (M == 0 || N == 0) return;
  const double flops = 2.0 * static_cast<double>(M) * N * K;
  if (B > 1 && flops < 4.0e6) {
    parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < B; ++i) one(i);
  }
}

// A contiguous copy of t with dtype dt. It goes through the Backend interface, so this family
// does not compile its own copy of the conversion kernels.
inline Tensor contiguous_as(const Tensor& t, DType dt) {
  Tensor out = empty_tensor(t.shape(), dt, t.device());
  cpu_backend().copy(out, t);
  return out;
}

inline void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) {
  const DType dt = out.dtype();
  auto blas_ready = [](const Tensor& t) {
    return blas_layout(t.size(1), t.size(2), t.stride(1), t.stride(2)).has_value();
  };
  if (dt == DType::f32 || dt == DType::f64) {
    const Tensor ac = blas_ready(a) ? a : contiguous_as(a, dt);
    const Tensor bc = blas_ready(b) ? b : contiguous_as(b, dt);
    if (dt == DType::f32) gemm_blas_typed<float>(static_cast<float*>(out.data_ptr()), ac, bc, alpha, beta);
    else gemm_blas_typed<double>(static_cast<double*>(out.data_ptr()), ac, bc, alpha, beta);
    return;
  }
  WANWU_CHECK_DTYPE(dt == DType::f16 || dt == DType::bf16, "matmul: dtype ", dt,
                    " is not supported (floating types only)");
  // 16-bit floats: f32 math, one rounding at the end (what the CUDA path's f32 accumulation gives).
  const Tensor af = contiguous_as(a, DType::f32), bf = contiguous_as(b, DType::f32);
  Tensor of = beta == 0.0 ? empty_tensor(out.shape(), DType::f32, out.device()) : contiguous_as(out, DType::f32);
  gemm_blas_typed<float>(static_cast<float*>(of.data_ptr()), af, bf, alpha, beta);
  cpu_backend().copy(out, of);
}

}  // namespace wanwu::cpu
