// CUDA scaled dot-product attention, forward and backward, composed from batched cuBLAS GEMMs
// over all (batch, head) pairs and row kernels for the masked softmax — the same algorithm as the
// CPU backend (backend/cpu/attention.hpp): the forward saves the row log-sum-exp, the backward
// recomputes the probabilities from it and uses rowsum(dO * O) for the softmax Jacobian. The
// [B*H, L, S] score matrix lives in device memory for the duration of a call (a fused
// flash-attention kernel that never materializes it is future work). Dropout keeps element
// (bh, i, j) when the Philox draw at bh*L*S + i*S + j passes, as on the CPU, so both backends drop
// the same elements. f16/bf16 inputs are computed in f32 and rounded once, as on the CPU.
#pragma once

#include "gemm.cuh"
#include "reduce.cuh"

namespace wanwu::cuda {

// Row-major C[b] ([M, N], contiguous, batch stride M*N) = alpha A[b] B[b], with A and B given by
// (row stride, column stride, batch stride); one of the strides of each must be 1. Empty shapes
// are the CPU's: nothing to write, or (K = 0, an empty sum) zeros; cuBLAS would reject their zero
// leading dimensions (keys or values of length 0, a head dimension of 0).
inline void rm_gemm(int dev, DType dt, bool tf32, int64_t batch, int64_t M, int64_t N, int64_t K, const void* a,
                    int64_t ars, int64_t acs, int64_t abs, const void* b, int64_t brs, int64_t bcs, int64_t bbs,
                    void* c, double alpha) {
  if (batch == 0 || M == 0 || N == 0) return;
  if (K == 0) {
    WANWU_CUDA_CHECK(cudaMemsetAsync(c, 0, static_cast<size_t>(batch * M * N) * itemsize(dt), stream(dev)));
    return;
  }
  const double beta = 0.0;
  BlasOperand A, B;
  const bool ok = row_major_operand(b, K, N, brs, bcs, bbs, A) && row_major_operand(a, M, K, ars, acs, abs, B);
  WANWU_CHECK(ok, "attention: internal error: operand layout not representable for cuBLAS");
  blas_gemm(dev, dt, N, M, K, batch, A, B, c, alpha, beta, tf32);
}

// A [B, H, rows, cols] tensor as a batch of B*H row-major matrices: contiguous along cols and one
// uniform stride between heads (a copy otherwise).
struct HeadBatch {
  Tensor t;
  int64_t ld = 0, bs = 0;
  HeadBatch(const Tensor& x, DType dt) {
    t = x.dtype() == dt ? x : cast(x, dt);
    auto usable = [](const Tensor& u) {
      const bool unit_cols = u.size(3) == 1 || u.stride(3) == 1;
      const bool uniform = u.size(1) == 1 || u.size(0) == 1 || u.stride(0) == u.stride(1) * u.size(1);
      // a row stride past INT_MAX does not fit cuBLAS's int leading dimension (f64, the fallback)
      const bool rows_ok = u.size(2) == 1 || (u.stride(2) >= u.size(3) && u.stride(2) <= INT32_MAX);
      return unit_cols && uniform && rows_ok;
    };
    if (!usable(t)) {
      Tensor c = empty(t.shape(), t.dtype(), t.device().index);
      copy(c, t);
      t = c;
    }
    ld = t.size(2) > 1 ? t.stride(2) : t.size(3);
    bs = t.size(1) > 1 ? t.stride(1) : (t.size(0) > 1 ? t.stride(0) : 0);
  }
};

struct MaskInfo {
  const void* p = nullptr;
  bool is_bool = false;
  int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
};

template <class T>
__device__ T mask_term(const MaskInfo& m, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (!m.p) return T(0);
  const int64_t off = b * m.s0 + h * m.s1 + i * m.s2 + j * m.s3;
  if (m.is_bool) return static_cast<const bool*>(m.p)[off] ? T(0) : -std::numeric_limits<T>::infinity();
  return static_cast<const T*>(m.p)[off];
}

__device__ inline bool dropout_keep(const AttentionParams& p, int64_t e) {
  RandomParams rp;
  rp.kind = RandomKind::bernoulli;
  rp.a = 1.0 - p.dropout_p;
  rp.seed = p.seed;
  rp.offset = p.offset_shift ? p.offset + static_cast<uint64_t>(*p.offset_shift) : p.offset;  // a graph replay's draw
  return random_value(rp, e, false) != 0.0;
}

// In place on the scaled scores of row (bh, i): + mask, causal, softmax, lse, dropout.
template <class T>
__global__ void attention_softmax_kernel(T* sc, T* lse, MaskInfo mask, AttentionParams p, int64_t H, int64_t L,
                                         int64_t S) {
  const int64_t row = blockIdx.x, bh = row / L, i = row % L, b = bh / H, h = bh % H;
  T* r = sc + row * S;
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
    T v = r[j] + mask_term<T>(mask, b, h, i, j);
    if (p.causal && j > i) v = -std::numeric_limits<T>::infinity();
    r[j] = v;
    mx = v > mx ? v : mx;
  }
  mx = block_reduce(mx, [](T a, T c) { return a > c ? a : c; });
  T s = 0;
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
    const T e = fm::exp(r[j] - mx);  // a fully masked row gives NaN, as PyTorch's math path
    r[j] = e;
    s += e;
  }
  s = block_reduce(s, [](T a, T c) { return a + c; });
  const T inv = T(1) / s;
  const T keep_scale = p.dropout_p > 0.0 ? T(1.0 / (1.0 - p.dropout_p)) : T(1);
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
    T v = r[j] * inv;
    if (p.dropout_p > 0.0) v = dropout_keep(p, row * S + j) ? v * keep_scale : T(0);
    r[j] = v;
  }
  if (threadIdx.x == 0) lse[row] = mx + fm::log(s);
}

// P = exp(scores + mask - lse) in place; Z = dropout(P) into z when dropout is on.
template <class T>
__global__ void attention_probs_kernel(T* sc, T* z, const T* lse, MaskInfo mask, AttentionParams p, int64_t H,
                                       int64_t L, int64_t S) {
  const int64_t row = blockIdx.x, bh = row / L, i = row % L, b = bh / H, h = bh % H;
  const T l = lse[row];
  const T keep_scale = p.dropout_p > 0.0 ? T(1.0 / (1.0 - p.dropout_p)) : T(1);
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
    T v = sc[row * S + j] + mask_term<T>(mask, b, h, i, j);
    v = (p.causal && j > i) ? T(0) : fm::exp(v - l);
    sc[row * S + j] = v;
    if (z) z[row * S + j] = dropout_keep(p, row * S + j) ? v * keep_scale : T(0);
  }
}

// dS = P * (dropout'(dZ) - rowsum(dO * O)), in place on P.
template <class T>
__global__ void attention_dscores_kernel(T* prob, const T* dz, const T* dout, const T* out, AttentionParams p,
                                         int64_t S, int64_t Dv) {
  const int64_t row = blockIdx.x;
  T d = 0;
  for (int64_t k = threadIdx.x; k < Dv; k += blockDim.x) d += dout[row * Dv + k] * out[row * Dv + k];
  d = block_reduce(d, [](T a, T c) { return a + c; });
  const T keep_scale = p.dropout_p > 0.0 ? T(1.0 / (1.0 - p.dropout_p)) : T(1);
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
    T g = dz[row * S + j];
    if (p.dropout_p > 0.0) g = dropout_keep(p, row * S + j) ? g * keep_scale : T(0);
    prob[row * S + j] = prob[row * S + j] * (g - d);
  }
}

inline MaskInfo mask_info(const Tensor& mask) {
  MaskInfo m;
  if (!mask.defined()) return m;
  m.p = mask.data_ptr();
  m.is_bool = mask.dtype() == DType::boolean;
  m.s0 = mask.size(0) > 1 ? mask.stride(0) : 0;
  m.s1 = mask.size(1) > 1 ? mask.stride(1) : 0;
  m.s2 = mask.size(2) > 1 ? mask.stride(2) : 0;
  m.s3 = mask.size(3) > 1 ? mask.stride(3) : 0;
  return m;
}

inline DType attention_compute_dtype(DType d) { return d == DType::f64 ? DType::f64 : DType::f32; }

inline void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& mask, const AttentionParams& p) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3), S = k.size(2), Dv = v.size(3);
  const int64_t BH = B * H;
  if (BH == 0 || L == 0) return;
  WANWU_CHECK_SHAPE(BH * L < (int64_t(1) << 31), "attention: ", BH * L,
                    " query rows (batch x heads x length) exceed the CUDA kernels' 2^31 - 1 blocks");
  const int dev = out.device().index;
  const DType ct = attention_compute_dtype(q.dtype());
  const bool tf32 = tf32_enabled(q.dtype());  // f16/bf16 inputs computed in f32 stay in full f32
  const HeadBatch Q(q, ct), K(k, ct), V(v, ct);
  const Tensor m = mask.defined() && mask.dtype() != DType::boolean ? cast(mask, ct) : mask;
  const Tensor o = out.dtype() == ct ? out : empty(out.shape(), ct, dev);
  const Tensor l = lse.dtype() == ct ? lse : empty(lse.shape(), ct, dev);
  Tensor sc = empty({BH, L, S}, ct, dev);
  // scores = scale * Q K^T: K^T is K read with swapped strides
  rm_gemm(dev, ct, tf32, BH, L, S, D, Q.t.data_ptr(), Q.ld, 1, Q.bs, K.t.data_ptr(), 1, K.ld, K.bs, sc.data_ptr(),
          p.scale);
  dispatch_floating(ct, "attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      attention_softmax_kernel<T><<<static_cast<unsigned>(BH * L), kThreads, 0, stream(dev)>>>(
          ptr<T>(sc), ptr<T>(l), mask_info(m), p, H, L, S);
    }
  });
  WANWU_CUDA_LAUNCH_CHECK();
  rm_gemm(dev, ct, tf32, BH, L, Dv, S, sc.data_ptr(), S, 1, L * S, V.t.data_ptr(), V.ld, 1, V.bs, o.data_ptr(), 1.0);
  if (!o.is_same(out)) copy(out, o);
  if (!l.is_same(lse)) copy(lse, l);
}

inline void attention_backward(const Tensor& gq, const Tensor& gk, const Tensor& gv, const Tensor& gout,
                               const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                               const Tensor& mask, const AttentionParams& p) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3), S = k.size(2), Dv = v.size(3);
  const int64_t BH = B * H;
  const int dev = q.device().index;
  if (BH == 0) return;
  WANWU_CHECK_SHAPE(BH * L < (int64_t(1) << 31), "attention backward: ", BH * L,
                    " query rows (batch x heads x length) exceed the CUDA kernels' 2^31 - 1 blocks");
  const DType ct = attention_compute_dtype(q.dtype());
  const bool tf32 = tf32_enabled(q.dtype());  // f16/bf16 inputs computed in f32 stay in full f32
  const HeadBatch Q(q, ct), K(k, ct), V(v, ct);
  const Tensor m = mask.defined() && mask.dtype() != DType::boolean ? cast(mask, ct) : mask;
  const Tensor dO = cast(contiguous(gout), ct), O = cast(contiguous(out), ct), l = cast(contiguous(lse), ct);
  auto buffer = [&](const Tensor& g) { return g.dtype() == ct && g.is_contiguous() ? g : empty(g.shape(), ct, dev); };
  const Tensor dq = buffer(gq), dk = buffer(gk), dv = buffer(gv);
  if (L == 0 || S == 0) {
    zero(dq);
    zero(dk);
    zero(dv);
  } else {
    Tensor prob = empty({BH, L, S}, ct, dev), dz = empty({BH, L, S}, ct, dev);
    Tensor z = p.dropout_p > 0.0 ? empty({BH, L, S}, ct, dev) : Tensor();
    rm_gemm(dev, ct, tf32, BH, L, S, D, Q.t.data_ptr(), Q.ld, 1, Q.bs, K.t.data_ptr(), 1, K.ld, K.bs, prob.data_ptr(),
            p.scale);
    dispatch_floating(ct, "attention backward", [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
        attention_probs_kernel<T><<<static_cast<unsigned>(BH * L), kThreads, 0, stream(dev)>>>(
            ptr<T>(prob), ptr_or_null<T>(z), ptr<const T>(l), mask_info(m), p, H, L, S);
      }
    });
    WANWU_CUDA_LAUNCH_CHECK();
    // dV = Z^T dO
    const Tensor& zz = z.defined() ? z : prob;
    rm_gemm(dev, ct, tf32, BH, S, Dv, L, zz.data_ptr(), 1, S, L * S, dO.data_ptr(), Dv, 1, L * Dv, dv.data_ptr(), 1.0);
    // dZ = dO V^T
    rm_gemm(dev, ct, tf32, BH, L, S, Dv, dO.data_ptr(), Dv, 1, L * Dv, V.t.data_ptr(), 1, V.ld, V.bs, dz.data_ptr(),
            1.0);
    dispatch_floating(ct, "attention backward", [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
        attention_dscores_kernel<T><<<static_cast<unsigned>(BH * L), kThreads, 0, stream(dev)>>>(
            ptr<T>(prob), ptr<const T>(dz), ptr<const T>(dO), ptr<const T>(O), p, S, Dv);
      }
    });
    WANWU_CUDA_LAUNCH_CHECK();
    // dQ = scale dS K; dK = scale dS^T Q
    rm_gemm(dev, ct, tf32, BH, L, D, S, prob.data_ptr(), S, 1, L * S, K.t.data_ptr(), K.ld, 1, K.bs, dq.data_ptr(),
            p.scale);
    rm_gemm(dev, ct, tf32, BH, S, D, L, prob.data_ptr(), 1, S, L * S, Q.t.data_ptr(), Q.ld, 1, Q.bs, dk.data_ptr(),
            p.scale);
  }
  if (!dq.is_same(gq)) copy(gq, dq);
  if (!dk.is_same(gk)) copy(gk, dk);
  if (!dv.is_same(gv)) copy(gv, dv);
}

}  // namespace wanwu::cuda
