// CUDA GEMM: out[b] = alpha * a[b] @ b[b] + beta * out[b] through cuBLASLt (f32 with full f32
// math, f16 and bf16 with f32 accumulation) and cuBLAS for f64, batched with strides.
//
// wanwu's matrices are row-major; cuBLAS's are column-major. A row-major [R, C] matrix whose
// column stride is 1 is a column-major [C, R] matrix with ld = row stride, so out^T = b^T a^T is
// computed without any copy, and an operand whose *row* stride is 1 (a transposed view, the
// common `x @ w.T` of a linear layer) is read as a transposed operand instead. Only operands with
// neither unit stride (rare: a strided slice) are copied to contiguous memory first. A batch
// stride of 0 (broadcast) is passed through as such.
//
// gemm_bias_act (linear's forward) runs the bias and the activation in cuBLASLt's epilogue. In
// cuBLAS's terms out^T is C [m = N, n = M], so linear's bias [N] is one value per row of C: the
// vector the BIAS epilogues broadcast over C's columns, and over the batch (bias batch stride 0).
// f64, and any product cuBLASLt declines with that epilogue, runs the plain GEMM and then one
// elementwise pass with the functors the CPU applies.
//
// f32 products use TF32 tensor cores when the calling thread's float32_matmul_precision() is tf32
// (core/matmul_precision.hpp); the setting is read here, on the op's thread, and passed down.
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
// terms (i.e. transposed in cuBLAS's terms). Returns false when it needs a contiguous copy, also
// for a leading dimension past INT_MAX, which cuBLAS's int arguments (f64, and the fallback when
// cuBLASLt declines) cannot carry.
inline bool row_major_operand(const void* p, int64_t rows, int64_t cols, int64_t sr, int64_t sc, int64_t sb,
                              BlasOperand& o) {
  if (cols == 1) sc = 1;
  // one row: its row stride is never used; read it untransposed when its elements are adjacent,
  // else transposed with the column stride as the leading dimension (a [1, D] slice of K^T whose
  // keys are strided, D = 1)
  if (rows == 1) sr = sc == 1 ? cols : 1;
  o.p = p;
  o.stride = sb;
  if (sr > INT32_MAX || sc > INT32_MAX) return false;
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

// What cuBLASLt's epilogue adds to the product: bias (m values of C's dtype, one per row of C;
// null: none), then the activation.
struct BlasEpilogue {
  const void* bias = nullptr;
  GemmEpilogue act = GemmEpilogue::none;
  bool empty() const { return bias == nullptr && act == GemmEpilogue::none; }
};

// The alignment to promise cuBLASLt for an operand: its pointer's and, across a batch, its batch
// stride's in bytes, up to 256. Unless told, cuBLASLt assumes 256 and may pick a kernel that
// cannot run on a view a few elements into its storage (PyTorch's _getAlignment sets these
// preferences, capped at 16; the allocator's 256-byte blocks keep the default's choice of kernels).
inline uint32_t blas_alignment(const void* p, int64_t stride, int64_t batch, size_t elsize) {
  return alignment_of({address(p), batch > 1 ? static_cast<uintptr_t>(stride) * elsize : 0}, 256);
}

inline cublasLtEpilogue_t lt_epilogue(const BlasEpilogue& ep) {
  const bool b = ep.bias != nullptr;
  switch (ep.act) {
    case GemmEpilogue::none: return b ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    case GemmEpilogue::relu: return b ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case GemmEpilogue::gelu_tanh: return b ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

// Column-major C[m, n] (ld = m, batch stride m * n) = alpha op(A)[m, k] op(B)[k, n] + beta C, then
// `ep`. tf32: f32 products may round their inputs to TF32. Returns false when the epilogue was not
// applied (f64, or cuBLASLt found no kernel with it): C then holds the plain product and the
// caller applies the epilogue itself.
inline bool blas_gemm(int dev, DType dt, int64_t m, int64_t n, int64_t k, int64_t batch, const BlasOperand& A,
                      const BlasOperand& B, void* C, double alpha, double beta, bool tf32 = false,
                      const BlasEpilogue& ep = {}) {
  DeviceContext& ctx = context(dev);
  const cudaDataType_t t = cuda_dtype(dt);
  if (dt == DType::f64) {
    WANWU_CUBLAS_CHECK(cublasDgemmStridedBatched(
        ctx.cublas, A.op, B.op, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha,
        static_cast<const double*>(A.p), static_cast<int>(A.ld), A.stride, static_cast<const double*>(B.p),
        static_cast<int>(B.ld), B.stride, &beta, static_cast<double*>(C), static_cast<int>(m), m * n,
        static_cast<int>(batch)));
    return ep.empty();
  }
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  const cublasComputeType_t compute = tf32 && dt == DType::f32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // cuBLASLt first: its heuristics pick the Hopper kernels; cuBLAS's GemmEx is the fallback for
  // layouts Lt declines (odd leading dimensions with 16-bit types).
  std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>, LtDeleter> desc;
  {
    cublasLtMatmulDesc_t d = nullptr;
    WANWU_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d, compute, CUDA_R_32F));
    desc.reset(d);
  }
  WANWU_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_TRANSA, &A.op, sizeof A.op));
  WANWU_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_TRANSB, &B.op, sizeof B.op));
  if (!ep.empty()) {
    const cublasLtEpilogue_t e = lt_epilogue(ep);
    WANWU_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    // Set before the heuristic: it picks kernels by the bias pointer's alignment. The bias's dtype
    // defaults to D's and its batch stride to 0 (the same bias for every batch entry).
    if (ep.bias)
      WANWU_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ep.bias,
                                                        sizeof ep.bias));
  }
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
  const size_t es = itemsize(dt);
  const uint32_t align[4] = {blas_alignment(A.p, A.stride, batch, es), blas_alignment(B.p, B.stride, batch, es),
                             blas_alignment(C, m * n, batch, es), blas_alignment(C, m * n, batch, es)};
  const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i)
    WANWU_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.get(), align_attr[i], &align[i], sizeof align[i]));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(ctx.cublaslt, desc.get(), la.get(), lb.get(), lc.get(),
                                                           lc.get(), pref.get(), 1, &heur, &found);
  if (hs == CUBLAS_STATUS_SUCCESS && found > 0) {
    const cublasStatus_t st = cublasLtMatmul(ctx.cublaslt, desc.get(), &fa, A.p, la.get(), B.p, lb.get(), &fb, C,
                                             lc.get(), C, lc.get(), &heur.algo, ws, ws_bytes, ctx.stream);
    if (st == CUBLAS_STATUS_SUCCESS) return true;
  }
  WANWU_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx.cublas, A.op, B.op, static_cast<int>(m), static_cast<int>(n),
                                                static_cast<int>(k), &fa, A.p, t, static_cast<int>(A.ld), A.stride,
                                                B.p, t, static_cast<int>(B.ld), B.stride, &fb, C, t,
                                                static_cast<int>(m), m * n, static_cast<int>(batch), compute,
                                                CUBLAS_GEMM_DEFAULT));
  return ep.empty();
}

// Whether f32 products of the calling thread may use TF32 (read on the op's thread: the setting is
// thread-local).
inline bool tf32_enabled(DType dt) {
  return dt == DType::f32 && float32_matmul_precision() == MatmulPrecision::tf32;
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

// The epilogue cuBLASLt could not fuse: out[r, c] = act(out[r, c] + bias[c]) over contiguous
// [rows, N], with the activations' shared functors (the CPU's math).
template <class T, GemmEpilogue Act>
__global__ void bias_act_kernel(T* out, const T* bias, int64_t total, ChannelOf col) {
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    C v = cv<C>(out[i]);
    if (bias) v += cv<C>(bias[col(i)]);
    if constexpr (Act == GemmEpilogue::relu) v = ReluF()(v);
    else if constexpr (Act == GemmEpilogue::gelu_tanh) v = GeluTanhF()(v);
    out[i] = cv<T>(v);
  }
}

inline void bias_act_inplace(const Tensor& out, const Tensor& bias, GemmEpilogue act) {
  const int64_t total = out.numel(), N = out.size(out.dim() - 1);
  if (total == 0 || (!bias.defined() && act == GemmEpilogue::none)) return;
  const cudaStream_t s = stream(out.device().index);
  const ChannelOf col(total, N);
  dispatch_floating(out.dtype(), "linear epilogue", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* b = ptr_or_null<const T>(bias);
    switch (act) {
      case GemmEpilogue::none:
        bias_act_kernel<T, GemmEpilogue::none><<<blocks_for(total), kThreads, 0, s>>>(ptr<T>(out), b, total, col);
        break;
      case GemmEpilogue::relu:
        bias_act_kernel<T, GemmEpilogue::relu><<<blocks_for(total), kThreads, 0, s>>>(ptr<T>(out), b, total, col);
        break;
      case GemmEpilogue::gelu_tanh:
        bias_act_kernel<T, GemmEpilogue::gelu_tanh><<<blocks_for(total), kThreads, 0, s>>>(ptr<T>(out), b, total, col);
        break;
    }
  });
  WANWU_CUDA_LAUNCH_CHECK();
}

// a [B, M, K] and b [B, K, N] as cuBLAS's operands of C^T[N, M] = op(b^T)[N, K] op(a^T)[K, M];
// ac / bc keep alive the contiguous copies of operands cuBLAS cannot read in place.
inline void gemm_operands(const Tensor& a, const Tensor& b, Tensor& ac, Tensor& bc, BlasOperand& A, BlasOperand& Bo) {
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  ac = a;
  bc = b;
  if (!row_major_operand(bc.data_ptr(), K, N, bc.stride(1), bc.stride(2), bc.stride(0), A)) {
    bc = contiguous(b);
    row_major_operand(bc.data_ptr(), K, N, N, 1, K * N, A);
  }
  if (!row_major_operand(ac.data_ptr(), M, K, ac.stride(1), ac.stride(2), ac.stride(0), Bo)) {
    ac = contiguous(a);
    row_major_operand(ac.data_ptr(), M, K, K, 1, M * K, Bo);
  }
  if (B == 1) A.stride = Bo.stride = 0;
}

inline void check_gemm_sizes(const Tensor& a, const Tensor& b, int64_t B, int64_t M, int64_t N, int64_t K) {
  constexpr int64_t lim = int64_t(1) << 31;
  WANWU_CHECK_SHAPE(B < lim && M < lim && N < lim && K < lim, "gemm: dimensions ", a.shape(), " x ", b.shape(),
                    " exceed cuBLAS's 32-bit sizes (batch count included)");
}

// Row-major out[b] (contiguous [B, M, N]) = alpha a[b] @ b[b] + beta out[b].
inline void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) {
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  if (B == 0 || M == 0 || N == 0) return;
  if (K == 0) return scale_inplace(out, beta);
  check_gemm_sizes(a, b, B, M, N, K);
  Tensor ac, bc;
  BlasOperand A, Bo;
  gemm_operands(a, b, ac, bc, A, Bo);
  blas_gemm(out.device().index, out.dtype(), N, M, K, B, A, Bo, out.data_ptr(), alpha, beta, tf32_enabled(out.dtype()));
}

// Row-major out[b] = act(a[b] @ b[b] + bias), bias [N] (undefined: none) in out's dtype.
inline void gemm_bias_act(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias_in,
                          GemmEpilogue act) {
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  if (B == 0 || M == 0 || N == 0) return;
  Tensor bias = bias_in.defined() ? cast(bias_in, out.dtype()) : Tensor();  // contiguous, out's dtype
  if (bias.defined() && alignment_of({address(bias.data_ptr())}) < 16) {
    // cuBLASLt's alignment preferences do not cover the bias pointer, and a kernel that loads it
    // in 16-byte vectors would fault (a chunk of a packed in-projection bias, E not a multiple of
    // 4): a fresh allocation, 256-byte aligned, of N elements
    Tensor aligned = empty(bias.shape(), bias.dtype(), out.device().index);
    copy(aligned, bias);
    bias = aligned;
  }
  if (K == 0) {
    zero(out);
    return bias_act_inplace(out, bias, act);
  }
  check_gemm_sizes(a, b, B, M, N, K);
  Tensor ac, bc;
  BlasOperand A, Bo;
  gemm_operands(a, b, ac, bc, A, Bo);
  const BlasEpilogue ep{bias.defined() ? bias.data_ptr() : nullptr, act};
  if (!blas_gemm(out.device().index, out.dtype(), N, M, K, B, A, Bo, out.data_ptr(), 1.0, 0.0,
                 tf32_enabled(out.dtype()), ep))
    bias_act_inplace(out, bias, act);
}

}  // namespace wanwu::cuda
