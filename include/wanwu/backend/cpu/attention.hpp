// CPU scaled dot-product attention, forward and backward, one (batch, head) at a time: each
// thread holds one [L, S] score block (two in the backward), never the whole [B, H, L, S]
// tensor. GEMMs read q/k/v in place through their strides (ViT's q, k, v are permuted views of
// one projection). The forward saves the row log-sum-exp; the backward recomputes the
// probabilities from it instead of storing them, and uses rowsum(dO * O) for the softmax
// Jacobian (as flash attention does). Dropout keeps element (bh, i, j) when a Philox draw at that
// position passes, so forward and backward agree without storing a mask, on every backend.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../../core/rng.hpp"
#include "../functors.hpp"
#include "blas.hpp"
#include "parallel.hpp"
#include "scratch.hpp"

namespace wanwu::cpu {

struct AttentionGeom {
  int64_t B, H, L, S, D, Dv;
  AttentionGeom(const Tensor& q, const Tensor& k, const Tensor& v)
      : B(q.size(0)), H(q.size(1)), L(q.size(2)), S(k.size(2)), D(q.size(3)), Dv(v.size(3)) {}
};

// Base pointer and row stride of head (b, h) of a [B, H, rows, cols] tensor with unit column stride.
template <class T>
struct HeadView {
  const T* p;
  int64_t ld;
  HeadView(const Tensor& t, int64_t b, int64_t h)
      : p(static_cast<const T*>(t.data_ptr()) + b * t.stride(0) + h * t.stride(1)), ld(t.stride(2)) {}
};

// scores (already scaled) += mask, or -inf where a bool mask is false / above the causal diagonal.
template <class T>
void apply_mask(T* scores, const Tensor& mask, const AttentionGeom& g, int64_t b, int64_t h, bool causal) {
  if (mask.defined()) {
    const int64_t s0 = mask.stride(0), s1 = mask.stride(1), s2 = mask.stride(2), s3 = mask.stride(3);
    const char* base = static_cast<const char*>(mask.data_ptr());
    if (mask.dtype() == DType::boolean) {
      const bool* m = reinterpret_cast<const bool*>(base) + b * s0 + h * s1;
      for (int64_t i = 0; i < g.L; ++i)
        for (int64_t j = 0; j < g.S; ++j)
          if (!m[i * s2 + j * s3]) scores[i * g.S + j] = -std::numeric_limits<T>::infinity();
    } else {
      const T* m = reinterpret_cast<const T*>(base) + b * s0 + h * s1;
      for (int64_t i = 0; i < g.L; ++i)
        for (int64_t j = 0; j < g.S; ++j) scores[i * g.S + j] += m[i * s2 + j * s3];
    }
  }
  if (causal)
    for (int64_t i = 0; i < g.L; ++i)
      for (int64_t j = i + 1; j < g.S; ++j) scores[i * g.S + j] = -std::numeric_limits<T>::infinity();
}

// Multiplies probabilities by the dropout mask / (1 - p) for head bh.
template <class T>
void apply_dropout(T* probs, const AttentionGeom& g, int64_t bh, const AttentionParams& p) {
  if (p.dropout_p <= 0.0) return;
  RandomParams rp;
  rp.kind = RandomKind::bernoulli;
  rp.a = 1.0 - p.dropout_p;
  rp.seed = p.seed;
  rp.offset = p.offset;
  const T scale = static_cast<T>(1.0 / (1.0 - p.dropout_p));
  const int64_t base = bh * g.L * g.S;
  for (int64_t e = 0; e < g.L * g.S; ++e)
    probs[e] = random_value(rp, base + e, false) != 0.0 ? probs[e] * scale : T(0);
}

template <class T, class A>
void attention_forward_typed(T* out, A* lse, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                             const AttentionParams& p) {
  const AttentionGeom g(q, k, v);
  // A score block per chunk of heads, taken before the threads start (see for_each_tile in conv.hpp)
  const int64_t BH = g.B * g.H, chunks = parallel_chunks(BH, 1), per = (BH + chunks - 1) / chunks;
  const Scratch<T> blocks(chunks * g.L * g.S);
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t ci = cb; ci < ce; ++ci)
    for (int64_t bh = ci * per; bh < std::min(BH, (ci + 1) * per); ++bh) {
      T* const sc = blocks.data() + ci * g.L * g.S;
      const int64_t b = bh / g.H, h = bh % g.H;
      const HeadView<T> Q(q, b, h), K(k, b, h), V(v, b, h);
      blas_gemm<T>(false, true, g.L, g.S, g.D, static_cast<T>(p.scale), Q.p, Q.ld, K.p, K.ld, T(0), sc, g.S);
      apply_mask(sc, mask, g, b, h, p.causal);
      for (int64_t i = 0; i < g.L; ++i) {
        T* row = sc + i * g.S;
        T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < g.S; ++j) mx = std::max(mx, row[j]);
        // fm::exp vectorizes in f32 (the C library's expf does not: ViT-B/16 at batch 16 takes
        // 90 million of these per forward pass). A fully masked row gives NaN, as PyTorch's math path.
#pragma omp simd
        for (int64_t j = 0; j < g.S; ++j) row[j] = fm::exp(row[j] - mx);
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < g.S; ++j) s += static_cast<double>(row[j]);
        const T inv = static_cast<T>(1.0 / s);
#pragma omp simd
        for (int64_t j = 0; j < g.S; ++j) row[j] *= inv;
        lse[bh * g.L + i] = static_cast<A>(static_cast<double>(mx) + std::log(s));
      }
      apply_dropout(sc, g, bh, p);
      blas_gemm<T>(false, false, g.L, g.Dv, g.S, T(1), sc, g.S, V.p, V.ld, T(0), out + bh * g.L * g.Dv, g.Dv);
    }
  });
}

template <class T, class A>
void attention_backward_typed(T* gq, T* gk, T* gv, const T* gout, const Tensor& q, const Tensor& k, const Tensor& v,
                              const T* out, const A* lse, const Tensor& mask, const AttentionParams& p) {
  const AttentionGeom g(q, k, v);
  // Per chunk of heads: P, dZ, the dropped-out P when there is dropout, and a row of sums; taken
  // before the threads start (see attention_forward_typed)
  const int64_t BH = g.B * g.H, chunks = parallel_chunks(BH, 1), per = (BH + chunks - 1) / chunks;
  const int64_t LS = g.L * g.S, each = (p.dropout_p > 0.0 ? 3 : 2) * LS + g.L;
  const Scratch<T> blocks(chunks * each);
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t ci = cb; ci < ce; ++ci)
    for (int64_t bh = ci * per; bh < std::min(BH, (ci + 1) * per); ++bh) {
      T* const prob = blocks.data() + ci * each;
      T* const dz = prob + LS;
      T* const drow = dz + LS;
      T* const z = drow + g.L;  // used only with dropout
      const int64_t b = bh / g.H, h = bh % g.H;
      const HeadView<T> Q(q, b, h), K(k, b, h), V(v, b, h);
      const T* dO = gout + bh * g.L * g.Dv;
      const T* O = out + bh * g.L * g.Dv;
      // P = exp(scale * Q K^T + mask - lse)
      blas_gemm<T>(false, true, g.L, g.S, g.D, static_cast<T>(p.scale), Q.p, Q.ld, K.p, K.ld, T(0), prob, g.S);
      apply_mask(prob, mask, g, b, h, p.causal);
      for (int64_t i = 0; i < g.L; ++i) {
        const T l = static_cast<T>(lse[bh * g.L + i]);
        T* row = prob + i * g.S;
#pragma omp simd
        for (int64_t j = 0; j < g.S; ++j) row[j] = fm::exp(row[j] - l);
      }
      // Z = dropout(P); dV = Z^T dO
      if (p.dropout_p > 0.0) {
        std::copy(prob, prob + g.L * g.S, z);
        apply_dropout(z, g, bh, p);
        blas_gemm<T>(true, false, g.S, g.Dv, g.L, T(1), z, g.S, dO, g.Dv, T(0), gv + bh * g.S * g.Dv, g.Dv);
      } else {
        blas_gemm<T>(true, false, g.S, g.Dv, g.L, T(1), prob, g.S, dO, g.Dv, T(0), gv + bh * g.S * g.Dv, g.Dv);
      }
      // dZ = dO V^T; dA = dropout'(dZ); dS = P * (dA - rowsum(dO * O))
      blas_gemm<T>(false, true, g.L, g.S, g.Dv, T(1), dO, g.Dv, V.p, V.ld, T(0), dz, g.S);
      if (p.dropout_p > 0.0) apply_dropout(dz, g, bh, p);
      for (int64_t i = 0; i < g.L; ++i) {
        double s = 0;
        for (int64_t d = 0; d < g.Dv; ++d) s += static_cast<double>(dO[i * g.Dv + d]) * static_cast<double>(O[i * g.Dv + d]);
        drow[i] = static_cast<T>(s);
      }
      for (int64_t i = 0; i < g.L; ++i) {
        T* pr = prob + i * g.S;
        const T* zr = dz + i * g.S;
        const T di = drow[i];
#pragma omp simd
        for (int64_t j = 0; j < g.S; ++j) pr[j] = pr[j] * (zr[j] - di);  // dS, in place
      }
      // dQ = scale dS K; dK = scale dS^T Q
      blas_gemm<T>(false, false, g.L, g.D, g.S, static_cast<T>(p.scale), prob, g.S, K.p, K.ld, T(0),
                   gq + bh * g.L * g.D, g.D);
      blas_gemm<T>(true, false, g.S, g.D, g.L, static_cast<T>(p.scale), prob, g.S, Q.p, Q.ld, T(0),
                   gk + bh * g.S * g.D, g.D);
    }
  });
}

}  // namespace wanwu::cpu
