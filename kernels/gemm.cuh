// CUDA GEMM: out[b] = alpha * a[b] @ b[b] + beta * out[b] through cuBLASLt (f32 with full f32
// math, f16 and bf16 with f32 accumulation) and cuBLAS for f64, batched with strides.
//
// wanwu's matrices are row-major; cuBLAS's are column-major. A row-major [R, C] matrix whose
// column stride is 1 is a column-major [C, R] matrix with ld = row stride, so out^T = b^T a^T is
// computed without any copy, and an operand whose *row* stride is 1 (a transposed view, the
// common `x @ w.T` of a linear layer) is read as a transposed operand instead. Only operands with
// neither unit stride (rare: a strided slice) are copied to contiguous memory first. A batch
// stride of 0 (broadcast) is passed through as such.
#pragma once

#include "elementwise.cuh"

namespace wanwu::cuda {

// One operand as cuBLAS sees it: stored column-major with leading dimension ld, used as-is or
// transposed, `stride` elements between batch entries.
struct BlasOperand {
  const void* p = nullptr;
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t ld = 1, stride = 0;
};

// A row-major [rows, cols] matrix with strides (sr, sc), to be used untransposed in row-major
// terms (i.e. transposed in cuBLAS's terms). Returns false when it needs a contiguous copy.
inline bool row_major_operand(const void* p, int64_t rows, int64_t cols, int64_t sr, int64_t sc, int64_t sb,
                              BlasOperand& o) {
  if (cols == 1) sc = 1;
  if (rows == 1) sr = cols;
  o.p = p;
  o.stride = sb;
  if (sc == 1 && sr >= (cols > 1 ? cols : 1)) {
    o.op = CUBLAS_OP_N;
    o.ld = sr;
    return true;
  }
  if (sr == 1 && sc >= (rows > 1 ? rows : 1)) {
    o.op = CUBLAS_OP_T;
    o.ld = sc;
    return true;
  }
  return false;
}

inline cudaDataType_t cuda_dtype(DType d) {
  switch (d) {
    case DType::f32: return CUDA_R_32F;
    case DType::f64: return CUDA_R_64F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: break;
  }
  throw DTypeError(detail::str("gemm: dtype ", d, " is not supported on CUDA (floating types only)"));
}

// The per-device cuBLASLt workspace; allocated once, reused by every call (stream-ordered).
inline void* gemm_workspace(int dev, size_t& bytes) {
  static std::array<Tensor*, kMaxDevices> ws{};
  static std::mutex mu;
  bytes = size_t(32) << 20;
  std::lock_guard<std::mutex> lock(mu);
  if (!ws[dev]) ws[dev] = new Tensor(empty({static_cast<int64_t>(bytes)}, DType::u8, dev));  // kept for the process
  return ws[dev]->data_ptr();
}

struct LtDeleter {
  void operator()(cublasLtMatmulDesc_t d) const { cublasLtMatmulDescDestroy(d); }
  void operator()(cublasLtMatrixLayout_t l) const { cublasLtMatrixLayoutDestroy(l); }
  void operator()(cublasLtMatmulPreference_t p) const { cublasLtMatmulPreferenceDestroy(p); }
};

inline cublasLtMatrixLayout_t lt_layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                        int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  WANWU_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t bc = static_cast<int32_t>(batch);
    WANWU_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
    WANWU_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                        sizeof stride));
  }
  return l;
}

// Column-major C[m, n] (ld = m, batch stride m * n) = alpha op(A)[m, k] op(B)[k, n] + beta C.
inline void blas_gemm(int dev, DType dt, int64_t m, int64_t n, int64_t k, int64_t batch, const BlasOperand& A,
                      const BlasOperand& B, void* C, double alpha, double beta) {
  DeviceContext& ctx = context(dev);
  const cudaDataType_t t = cuda_dtype(dt);
  if (dt == DType::f64) {
    WANWU_CUBLAS_CHECK(cublasDgemmStridedBatched(
        ctx.cublas, A.op, B.op, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha,
        static_cast<const double*>(A.p), static_cast<int>(A.ld), A.stride, static_cast<const double*>(B.p),
        static_cast<int>(B.ld), B.stride, &beta, static_cast<double*>(C), static_cast<int>(m), m * n,
        static_cast<int>(batch)));
    return;
  }
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  // cuBLASLt first: its heuristics pick the Hopper kernels; cuBLAS's GemmEx is the fallback for
  // layouts Lt declines (odd leading dimensions with 16-bit types).
  std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>, LtDeleter> desc;
  {
    cublasLtMatmulDesc_t d = nullptr;
    WANWU_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    desc.reset(d);
  }
  WANWU_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_TRANSA, &A.op, sizeof A.op));
  WANWU_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_TRANSB, &B.op, sizeof B.op));
  const bool at = A.op == CUBLAS_OP_T, bt = B.op == CUBLAS_OP_T;
  std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>, LtDeleter> la(
      lt_layout(t, at ? k : m, at ? m : k, A.ld, batch, A.stride));
  std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>, LtDeleter> lb(
      lt_layout(t, bt ? n : k, bt ? k : n, B.ld, batch, B.stride));
  std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>, LtDeleter> lc(lt_layout(t, m, n, m, batch, m * n));
  size_t ws_bytes = 0;
  void* ws = gemm_workspace(dev, ws_bytes);
  std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, LtDeleter> pref;
  {
    cublasLtMatmulPreference_t p = nullptr;
    WANWU_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p));
    pref.reset(p);
  }
  WANWU_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                          &ws_bytes, sizeof ws_bytes));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(ctx.cublaslt, desc.get(), la.get(), lb.get(), lc.get(),
                                                           lc.get(), pref.get(), 1, &heur, &found);
  if (hs == CUBLAS_STATUS_SUCCESS && found > 0) {
    const cublasStatus_t st = cublasLtMatmul(ctx.cublaslt, desc.get(), &fa, A.p, la.get(), B.p, lb.get(), &fb, C,
                                             lc.get(), C, lc.get(), &heur.algo, ws, ws_bytes, ctx.stream);
    if (st == CUBLAS_STATUS_SUCCESS) return;
  }
  WANWU_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx.cublas, A.op, B.op, static_cast<int>(m), static_cast<int>(n),
                                                static_cast<int>(k), &fa, A.p, t, static_cast<int>(A.ld), A.stride,
                                                B.p, t, static_cast<int>(B.ld), B.stride, &fb, C, t,
                                                static_cast<int>(m), m * n, static_cast<int>(batch),
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <class T>
__global__ void scale_kernel(T* p, int64_t n, double s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = cv<T>(cv<compute_t<T>>(p[i]) * static_cast<compute_t<T>>(s));
}

inline void scale_inplace(const Tensor& t, double s) {
  if (t.numel() == 0 || s == 1.0) return;
  if (s == 0.0) return zero(t);
  dispatch_floating(t.dtype(), "scale", [&](auto tag) {
    using T = typename decltype(tag)::type;
    scale_kernel<T><<<blocks_for(t.numel()), kThreads, 0, stream(t.device().index)>>>(ptr<T>(t), t.numel(), s);
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

// Row-major out[b] (contiguous [B, M, N]) = alpha a[b] @ b[b] + beta out[b].
inline void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) {
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  if (B == 0 || M == 0 || N == 0) return;
  if (K == 0) return scale_inplace(out, beta);
  const int dev = out.device().index;
  WANWU_CHECK_SHAPE(M < (int64_t(1) << 31) && N < (int64_t(1) << 31) && K < (int64_t(1) << 31),
                    "gemm: dimensions ", a.shape(), " x ", b.shape(), " exceed cuBLAS's 32-bit sizes");
  Tensor ac = a, bc = b;
  BlasOperand A, Bo;
  // cuBLAS: C^T[N, M] = op(b^T)[N, K] op(a^T)[K, M]
  if (!row_major_operand(bc.data_ptr(), K, N, bc.stride(1), bc.stride(2), bc.stride(0), A)) {
    bc = contiguous(b);
    row_major_operand(bc.data_ptr(), K, N, N, 1, K * N, A);
  }
  if (!row_major_operand(ac.data_ptr(), M, K, ac.stride(1), ac.stride(2), ac.stride(0), Bo)) {
    ac = contiguous(a);
    row_major_operand(ac.data_ptr(), M, K, K, 1, M * K, Bo);
  }
  if (B == 1) A.stride = Bo.stride = 0;
  blas_gemm(dev, out.dtype(), N, M, K, B, A, Bo, out.data_ptr(), alpha, beta);
}

}  // namespace wanwu::cuda
