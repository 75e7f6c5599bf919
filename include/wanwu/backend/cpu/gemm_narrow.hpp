// C[M, N] = A[M, K] B[K, N] for a tall A and a B that fits in the caches: the forward and input
// gradient of a 1x1 convolution, where A is the activations (N*H*W rows) and B the weight.
//
// OpenBLAS packs A (the whole activation tensor, each element used only 2N times) on every call
// and threads tall-skinny shapes poorly: 45-100 GFLOP/s on two cores for N or K of 64. Here B is
// packed once into panels of two SIMD vectors of columns, and A is read in place, kNarrowRows rows
// at a time; a kNarrowRows x (2 vectors) block of C lives in registers across the whole inner
// dimension (the register blocking of the classic AVX2 6x16 kernel, 12x32 with AVX-512), and the
// bias is added as the block is stored. Blocks of rows go to the threads as they come free, or
// column panels when the rows are few.
// Measured against OpenBLAS on ResNet-50's and EfficientNet-B0's 1x1 shapes: 100-178 GFLOP/s
// against 45-150 (fwd+bwd of the 64- to 256-wide convolutions: 1.2-2x faster).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "parallel.hpp"
#include "simd.hpp"

namespace wanwu::cpu {

// Up to here the kernel is ahead of OpenBLAS or level in the GEMM-only measurement. With B read
// from L3 for every block of rows, ResNet-50's last-stage 1x1 shapes (weights of 4 and 8 MiB) ran at
// 194-224 GFLOP/s against OpenBLAS's 162-205 (196 to 3136 rows, two threads); with the 2 MiB limit
// this had before, the 4 MiB ones went to OpenBLAS, and those convolutions ran at 148-162 GFLOP/s
// at batch 4. Larger weights stay with OpenBLAS, which blocks B for the caches.
inline constexpr int64_t kNarrowMaxBBytes = int64_t(16) << 20;

// Below this many rows the threads split C's column panels instead of its rows, and each panel of
// B is read once for all rows: B's size no longer matters. (ResNet-50's last stage at batch 1:
// 49 rows against 2-9 MiB weights, where OpenBLAS ran at 75-90 GFLOP/s.)
inline constexpr int64_t kNarrowFewRows = 128;

// Rows of C in the register block, by two SIMD vectors of columns: 6 x 2 accumulators fill AVX2's
// sixteen registers beside the two of B and the broadcast of A; AVX-512's 32 hold 12 x 2. With
// AVX-512, ResNet-50's eval forward at batch 4 took 133 ms with 6 rows, 125 with 8, 117 with 12
// and 120 with 14 (two cores, alternating runs).
inline constexpr int kNarrowRows = Simd<float>::L >= 16 ? 12 : 6;

// Whether a K x N matrix B is within kNarrowMaxBBytes: for GEMMs run one per thread.
template <class T>
bool gemm_narrow_fits(int64_t n, int64_t k) {
  return n * k * static_cast<int64_t>(sizeof(T)) <= kNarrowMaxBBytes;
}
// Whether gemm_narrow is the faster path for a GEMM of m rows: B fits, or the rows are few.
template <class T>
bool gemm_narrow_applies(int64_t m, int64_t n, int64_t k) {
  return m > 0 && (m < kNarrowFewRows || gemm_narrow_fits<T>(n, k));
}

// bp[(p * K + k) * W + j] = B(k, p * W + j), zero past N; B(k, n) = trans ? b[n * ldb + k] : b[k * ldb + n].
template <class T>
void gemm_narrow_pack(const T* b, int64_t ldb, bool trans, int64_t K, int64_t N, T* bp) {
  constexpr int W = 2 * Simd<T>::L;
  const int64_t panels = (N + W - 1) / W;
  parallel_for(panels, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const int64_t n0 = p * W;
      const int cols = static_cast<int>(std::min<int64_t>(W, N - n0));
      T* dst = bp + p * K * W;
      for (int64_t k = 0; k < K; ++k, dst += W) {
        if (!trans && cols == W) {
          std::memcpy(dst, b + k * ldb + n0, sizeof(T) * W);
          continue;
        }
        for (int j = 0; j < W; ++j) dst[j] = j < cols ? (trans ? b[(n0 + j) * ldb + k] : b[k * ldb + n0 + j]) : T(0);
      }
    }
  });
}

// c's rows [0, R) and columns [0, cols) (cols <= W) = the accumulators lo | hi (+ bias[0, cols)
// per column when given). The bias is added here rather than C filled with it first: that fill
// was a pass over the output (serial below its 4096-row grain) that the kernel then read back.
template <class T, int R>
WANWU_ALWAYS_INLINE void gemm_narrow_store(typename Simd<T>::V* lo, typename Simd<T>::V* hi, T* c, int64_t ldc,
                                           int cols, const T* bias) {
  using S = Simd<T>;
  constexpr int L = S::L, W = 2 * L;
  if (cols == W) {
    if (bias) {
      const typename S::V b0 = S::load(bias), b1 = S::load(bias + L);
      for (int i = 0; i < R; ++i) lo[i] += b0, hi[i] += b1;
    }
    for (int i = 0; i < R; ++i) {
      S::store(c + i * ldc, lo[i]);
      S::store(c + i * ldc + L, hi[i]);
    }
    return;
  }
  for (int i = 0; i < R; ++i) {
    alignas(64) T t[W];
    S::store(t, lo[i]);
    S::store(t + L, hi[i]);
    T* ci = c + i * ldc;
    for (int j = 0; j < cols; ++j) ci[j] = bias ? t[j] + bias[j] : t[j];
  }
}

// The register block of the kernel: R rows by two SIMD vectors of C's columns, kept in registers
// across the whole inner dimension. step() adds one row of a packed panel of B times R values of
// A; gemm_narrow_block reads A as rows of a matrix, conv_implicit.hpp as runs of an input image.
template <class T, int R>
struct NarrowBlock {
  using S = Simd<T>;
  using V = typename S::V;
  static constexpr int L = S::L, W = 2 * L;
  V lo[R], hi[R];
  WANWU_ALWAYS_INLINE NarrowBlock() {
    for (int i = 0; i < R; ++i) lo[i] = hi[i] = S::zero();
  }
  // a(i): row i's value of A for this step; bk: the step's row of the panel (W values).
  template <class AOf>
  WANWU_ALWAYS_INLINE void step(const T* bk, AOf&& a) {
    const V b0 = S::load(bk), b1 = S::load(bk + L);
    for (int i = 0; i < R; ++i) {
      const T av = a(i);
      lo[i] += av * b0;
      hi[i] += av * b1;
    }
  }
  WANWU_ALWAYS_INLINE void store(T* c, int64_t ldc, int cols, const T* bias) {
    gemm_narrow_store<T, R>(lo, hi, c, ldc, cols, bias);
  }
};

// Rows [0, R) of C's columns [0, cols) from R rows of A (lda apart) and one packed panel of B.
template <class T, int R>
WANWU_ALWAYS_INLINE void gemm_narrow_block(const T* a, int64_t lda, const T* bp, int64_t K, T* c, int64_t ldc,
                                           int cols, const T* bias) {
  NarrowBlock<T, R> blk;
  for (int64_t k = 0; k < K; ++k) blk.step(bp + k * NarrowBlock<T, R>::W, [&](int i) { return a[i * lda + k]; });
  blk.store(c, ldc, cols, bias);
}

// Calls f(std::integral_constant<int, rows>{}) for 1 <= rows <= R: the register block's row count
// as a template argument, for the last block of rows.
template <int R, class F>
WANWU_ALWAYS_INLINE void with_rows(int rows, F&& f) {
  if constexpr (R > 1) {
    if (rows < R) return with_rows<R - 1>(rows, f);
  }
  f(std::integral_constant<int, R>{});
}

// One panel of a block of `rows` (<= kNarrowRows) rows of C.
template <class T>
WANWU_ALWAYS_INLINE void gemm_narrow_panel(int rows, const T* a, int64_t lda, const T* bpp, int64_t K, T* cp,
                                           int64_t ldc, int cols, const T* bias) {
  with_rows<kNarrowRows>(rows, [&](auto r) { gemm_narrow_block<T, decltype(r)::value>(a, lda, bpp, K, cp, ldc, cols, bias); });
}

// Every panel of a block of `rows` (<= kNarrowRows) rows of C.
template <class T>
void gemm_narrow_rows(int rows, const T* a, int64_t lda, const T* bp, int64_t K, int64_t N, T* c, int64_t ldc,
                      const T* bias) {
  constexpr int W = 2 * Simd<T>::L;
  const int64_t panels = (N + W - 1) / W;
  for (int64_t p = 0; p < panels; ++p) {
    const T* bpp = bp + p * K * W;
    const int cols = static_cast<int>(std::min<int64_t>(W, N - p * W));
    gemm_narrow_panel<T>(rows, a, lda, bpp, K, c + p * W, ldc, cols, bias ? bias + p * W : nullptr);
  }
}

// Elements of the packed form of a K x N matrix B.
template <class T>
int64_t gemm_narrow_packed_size(int64_t K, int64_t N) {
  constexpr int W = 2 * Simd<T>::L;
  return (N + W - 1) / W * K * W;
}

// The rows of C a thread takes at a time from gemm_narrow_packed's shared counter: a multiple of
// the register block, about sixteen per thread for the ResNet-50 shapes at batch 1 to 16, and never
// under 48 so that claiming one costs nothing beside its work.
inline int64_t gemm_narrow_row_block(int64_t M) {
  constexpr int64_t R = kNarrowRows;
  const int64_t target = M / (16 * std::max(1, max_threads()));
  return std::max<int64_t>(48, (target + R - 1) / R * R);
}

// c[m, n] = a[m, k] * B (+ bias[n] when given) with B packed by gemm_narrow_pack. Row blocks are
// handed to the threads as they come free, or with fewer than kNarrowFewRows rows the column
// panels, each run over all rows while it sits in L1/L2 (inside a parallel region, the calling
// thread does it all). Every element of C is one sum in a fixed order, whichever thread runs it.
template <class T>
void gemm_narrow_packed(int64_t M, int64_t N, int64_t K, const T* a, int64_t lda, const T* bp, const T* bias, T* c,
                        int64_t ldc) {
  constexpr int R = kNarrowRows;
  if (M < kNarrowFewRows) {
    constexpr int W = 2 * Simd<T>::L;
    parallel_for_dynamic((N + W - 1) / W, 1, [&](int64_t pb, int64_t pe) {
      for (int64_t p = pb; p < pe; ++p) {
        const int cols = static_cast<int>(std::min<int64_t>(W, N - p * W));
        for (int64_t r = 0; r < M; r += R) {
          const int rows = static_cast<int>(std::min<int64_t>(R, M - r));
          gemm_narrow_panel<T>(rows, a + r * lda, lda, bp + p * K * W, K, c + r * ldc + p * W, ldc, cols,
                               bias ? bias + p * W : nullptr);
        }
      }
    });
    return;
  }
  parallel_for_dynamic(M, gemm_narrow_row_block(M), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r += R) {
      const int rows = static_cast<int>(std::min<int64_t>(R, r1 - r));
      gemm_narrow_rows<T>(rows, a + r * lda, lda, bp, K, N, c + r * ldc, ldc, bias);
    }
  });
}

}  // namespace wanwu::cpu
