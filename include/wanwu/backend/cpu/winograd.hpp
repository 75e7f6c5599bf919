// Winograd F(4x4, 3x3) and F(2x2, 3x3) for 3x3, stride-1, undilated, ungrouped f32 convolutions
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), NHWC.
//
// Why: the im2col + GEMM path already runs ResNet-50's convolutions near the GEMM rate, so the
// only way to go faster is fewer multiplications. F(m x m, 3x3) computes an m x m output tile
// from an A x A input tile (A = m + 2) with A^2 multiplications per (input, output) channel pair
// instead of 9 m^2: 2.25x fewer for m = 2, 4x fewer for m = 4. The A^2 products over all channel
// pairs are A^2 independent GEMMs, V[k] [tiles, C] x U[k] [C, O] = M[k] [tiles, O], with
//   U = G g G^T   (weights, 3x3 -> AxA),  V = B^T d B  (input tile, AxA),  Y = A^T M A  (AxA -> mxm).
// NHWC keeps channels contiguous, so each transform is a vector loop over channels, and V and M
// rows are contiguous GEMM operands. Tiles are processed in blocks (across images, so that a 7x7
// map at batch 16 still gives the GEMMs enough rows) whose V and M stay within a few MiB. The
// weights are transformed straight into the GEMM kernel's packed form.
//
// Accuracy: F(2x2, 3x3)'s coefficients are 0, +-1 and 1/2, so it differs from direct convolution
// by rounding only; F(4x4, 3x3)'s (interpolation points 0, +-1, +-2) reach 8 and 1/24, which costs
// a few more ulp of the largest partial sum (measured against f64 in test_conv: within 2e-4 on
// unit-variance data, as for F(2x2, 3x3)). f64 keeps the direct path, which the gradient checks use.
//
// The gradient with respect to the input of such a convolution is itself one: gy correlated with
// the kernel rotated by 180 degrees and its channel axes swapped, padding 2 - p. The weight
// transform reads the kernel rotated, so the backward pass runs the same code with no rearranged
// copy of the weights. The weight gradient stays on im2col.
#pragma once

#include <algorithm>
#include <optional>
#include <type_traits>
#include <vector>

#include "../../core/allocator.hpp"
#include "blas.hpp"
#include "conv_geom.hpp"
#include "gemm_narrow.hpp"
#include "parallel.hpp"
#include "scratch.hpp"
#include "weight_cache.hpp"

namespace wanwu::cpu {

// Which tile pays, measured on ResNet-50's 3x3 convolutions (2-core AVX2 machine):
// - F(4x4, 3x3) needs 36 products per 16 outputs where F(2x2, 3x3) needs 16 per 4 (2.25 against
//   4 per output), but writes 36 C O transformed weights per call instead of 16, and its GEMMs
//   have a quarter of the rows. With enough tiles (48+) it wins at every channel count from 64:
//   forward at batch 16 1.6x (64 channels, 56x56), 1.7x (128, 28x28), 1.2x (256, 14x14; 512,
//   7x7) faster than F(2x2, 3x3), and at 64 channels 1.6-2.3x faster than im2col at batch 1 and
//   16. With 16 tiles (14x14 at batch 1) it is 1.5x slower than F(2x2, 3x3).
// - F(2x2, 3x3) below that: with 64 channels its GEMMs' K = 64 ran below the rate of im2col's
//   K = 576 GEMM (0.5x at 56x56 and batch 1); from 128 it gains 1.4x to 1.7x over im2col. It
//   too needs 48+ tiles: 7x7 maps at 512 channels ran 0.6x at batch 1, 1.0x at 4, 1.5x at 16.
inline constexpr int64_t kWinogradMinTiles = 48;
inline constexpr int64_t kWinograd4MinChannels = 64;
inline constexpr int64_t kWinograd2MinChannels = 128;
inline constexpr int64_t kWinogradPackedMaxBytes = int64_t(2) << 20;

// The output tile side for the convolution g: 4 for F(4x4, 3x3), 2 for F(2x2, 3x3), 0 when
// Winograd does not apply (not 3x3 stride 1 undilated ungrouped, padding over 2) or does not pay.
inline int winograd_tile(const ConvGeom& g) {
  const Conv2dParams& p = g.p;
  const bool shape = g.KH == 3 && g.KW == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 &&
                     p.dilation_w == 1 && g.G == 1 && p.pad_top <= 2 && p.pad_left <= 2;
  if (!shape) return 0;
  const int64_t channels = std::min(g.C, g.O);
  auto tiles = [&](int64_t m) { return g.N * ((g.Ho + m - 1) / m) * ((g.Wo + m - 1) / m); };
  if (channels >= kWinograd4MinChannels && tiles(4) >= kWinogradMinTiles) return 4;
  if (channels >= kWinograd2MinChannels && tiles(2) >= kWinogradMinTiles) return 2;
  return 0;
}

inline bool winograd_applies(const ConvGeom& g) { return winograd_tile(g) != 0; }

// The 1-D transforms of F(m, 3) with m = Mt (2 or 4) outputs from Mt + 2 inputs: u = G g for a
// kernel row, t = B^T d for an input row, o = A^T p for a row of products. The 2-D transforms
// apply them along both axes. Written out, so that zero coefficients cost nothing.
template <int Mt>
struct WinogradTransforms;

template <>
struct WinogradTransforms<2> {  // points 0, 1, -1, infinity
  static constexpr int A = 4;
  template <class F>
  WANWU_ALWAYS_INLINE static void weight(const F* g, F* u) {
    u[0] = g[0];
    u[1] = 0.5f * (g[0] + g[1] + g[2]);
    u[2] = 0.5f * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  }
  template <class F>
  WANWU_ALWAYS_INLINE static void input(const F* d, F* t) {
    t[0] = d[0] - d[2];
    t[1] = d[1] + d[2];
    t[2] = d[2] - d[1];
    t[3] = d[1] - d[3];
  }
  template <class F>
  WANWU_ALWAYS_INLINE static void output(const F* p, F* o) {
    o[0] = p[0] + p[1] + p[2];
    o[1] = p[1] - p[2] - p[3];
  }
};

template <>
struct WinogradTransforms<4> {  // points 0, 1, -1, 2, -2, infinity
  static constexpr int A = 6;
  template <class F>
  WANWU_ALWAYS_INLINE static void weight(const F* g, F* u) {
    const F s = g[0] + g[2], e = g[0] * (1.0f / 24) + g[2] * (1.0f / 6);
    u[0] = 0.25f * g[0];
    u[1] = (s + g[1]) * (-1.0f / 6);
    u[2] = (s - g[1]) * (-1.0f / 6);
    u[3] = e + g[1] * (1.0f / 12);
    u[4] = e - g[1] * (1.0f / 12);
    u[5] = g[2];
  }
  template <class F>
  WANWU_ALWAYS_INLINE static void input(const F* d, F* t) {
    const F a = d[4] - 4.0f * d[2], b = d[3] - 4.0f * d[1], c = d[4] - d[2], e = 2.0f * (d[3] - d[1]);
    t[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    t[1] = a + b;
    t[2] = a - b;
    t[3] = c + e;
    t[4] = c - e;
    t[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
  }
  template <class F>
  WANWU_ALWAYS_INLINE static void output(const F* p, F* o) {
    const F a = p[1] + p[2], b = p[1] - p[2], c = p[3] + p[4], e = p[3] - p[4];
    o[0] = p[0] + a + c;
    o[1] = b + 2.0f * e;
    o[2] = a + 4.0f * c;
    o[3] = b + 8.0f * e + p[5];
  }
};

// The A * A matrices of U, V and M each live in one buffer, a plane per k. Planes whose size is a
// multiple of 4 KiB would put the streams a transform reads or writes at once in the same few L1
// sets; padding each plane by one cache line spreads them.
inline int64_t winograd_plane(int64_t elems) { return (elems + 15) / 16 * 16 + 16; }

// The input gradient's transform reads the kernel rotated: g[i][j] = w[..][2-i][2-j][..].
enum class WinogradKernel : uint8_t { as_is, rotated };

// u[i * A + j] = (G g G^T)[i][j] for one 3x3 kernel g.
template <int Mt, class F>
WANWU_ALWAYS_INLINE void winograd_kernel_tile(const F (&g)[3][3], F* u) {
  using Tr = WinogradTransforms<Mt>;
  constexpr int A = Tr::A;
  F t[3][A], col[3], r[A];
  for (int i = 0; i < 3; ++i) Tr::weight(g[i], t[i]);  // along each kernel row: g G^T
  for (int j = 0; j < A; ++j) {                        // down each column: G (g G^T)
    for (int i = 0; i < 3; ++i) col[i] = t[i][j];
    Tr::weight(col, r);
    for (int i = 0; i < A; ++i) u[i * A + j] = r[i];
  }
}

// U[k][o][c] = (G g G^T)[k] for g = w[o][:, :][c]; plane stride `ku`. Stored [o][c] so that both
// the reads of w and the writes of U run along c: the fallback GEMMs (OpenBLAS) read it transposed
// in the forward pass and as it is for the input gradient, with the kernel rotated (`rotate`:
// g[i][j] = w[o][2-i][2-j][c]), o the computed convolution's input.
template <int Mt>
void winograd_weights(const float* w, int64_t O, int64_t C, int64_t ku, float* U, WinogradKernel kernel) {
  constexpr int A2 = WinogradTransforms<Mt>::A * WinogradTransforms<Mt>::A;
  const bool rot = kernel == WinogradKernel::rotated;
  parallel_for(O, 4, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const float* wo = w + o * 9 * C;
      float* u = U + o * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        float g[3][3], t[A2];
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) g[i][j] = wo[(rot ? 8 - (i * 3 + j) : i * 3 + j) * C + c];
        winograd_kernel_tile<Mt>(g, t);
        for (int k = 0; k < A2; ++k) u[k * ku + c] = t[k];
      }
    }
  });
}

// Calls f(Simd<float>::V{}, i) for i = 0, L, 2L, ... while L lanes (8 or 16) fit in n, then f(0.0f, i)
// for the rest: a transform written once runs on vectors of L channels and on the remainder. (The
// compiler does not vectorize the 36-output kernel transform over channels by itself.)
template <class F>
WANWU_ALWAYS_INLINE void tile_run(int n, F&& f) {
  constexpr int L = Simd<float>::L;
  int i = 0;
  for (; i + L <= n; i += L) f(Simd<float>::V{}, i);
  for (; i < n; ++i) f(0.0f, i);
}
template <class F>
WANWU_ALWAYS_INLINE F lanes_load(const float* p) {
  if constexpr (std::is_same_v<F, float>) return *p;
  else return Simd<float>::load(p);
}
WANWU_ALWAYS_INLINE void lanes_store(float* p, float v) { *p = v; }
WANWU_ALWAYS_INLINE void lanes_store(float* p, Simd<float>::V v) { Simd<float>::store(p, v); }

// b[j][i] = a[i][j] for a [rows, cols] matrix, in 8 x 8 blocks: rows of a weight matrix are often
// a multiple of 2 KiB apart, so a larger block's lines would fall into too few L1 sets.
inline void transpose_matrix(const float* a, int64_t rows, int64_t cols, float* b) {
  constexpr int64_t BS = 8;
  parallel_for((cols + BS - 1) / BS, 4, [&](int64_t jb, int64_t je) {
    for (int64_t i0 = 0; i0 < rows; i0 += BS)
      for (int64_t j0 = jb * BS; j0 < std::min(cols, je * BS); j0 += BS) {
        if (i0 + BS <= rows && j0 + BS <= cols) {
          for (int64_t j = 0; j < BS; ++j)
            for (int64_t i = 0; i < BS; ++i) b[(j0 + j) * rows + i0 + i] = a[(i0 + i) * cols + j0 + j];
          continue;
        }
        for (int64_t j = j0; j < std::min(cols, j0 + BS); ++j)
          for (int64_t i = i0; i < std::min(rows, i0 + BS); ++i) b[j * rows + i] = a[i * cols + j];
      }
  });
}

// The A * A matrices U[k] as the GEMMs' B [C, O], written straight into gemm_narrow's packed
// form (plane stride `kp`): the transform, a transposition and the packing in one pass over the
// output, instead of writing U, reading it back and writing the packed copy (for 512 channels
// and F(4x4, 3x3), 38 MB each time). `w` is [O, 3, 3, C] for the forward pass (o_major) or the
// forward convolution's weight [C, 3, 3, O] for the input gradient (kernel rotated).
enum class WinogradLayout : uint8_t { o_major, c_major };

template <int Mt>
void winograd_weights_packed(const float* w, int64_t O, int64_t C, WinogradLayout layout, WinogradKernel kernel,
                             int64_t kp, float* Up) {
  constexpr int A2 = WinogradTransforms<Mt>::A * WinogradTransforms<Mt>::A;
  constexpr int W = 2 * Simd<float>::L;
  const bool rot = kernel == WinogradKernel::rotated;
  const int64_t panels = (O + W - 1) / W;
  // The transform runs along o, L lanes at a time, and writes each packed row (2L o's) as it
  // comes; o_major weights are first transposed to [3, 3, C, O], which moves 9 C O values instead
  // of the 36 C O transformed ones. src(c, t) = w + c * cs + tap[t], tap t as read (rotated for
  // the input gradient).
  Scratch<float> wt(layout == WinogradLayout::o_major ? 9 * C * O : 0);
  int64_t cs = 9 * O, ts = O;  // c_major: [C, 3, 3, O]
  if (layout == WinogradLayout::o_major) {
    transpose_matrix(w, O, 9 * C, wt.data());  // [O, 9 C] -> [9 C, O]
    w = wt.data();
    cs = O, ts = C * O;
  }
  int64_t tap[9];
  for (int t = 0; t < 9; ++t) tap[t] = (rot ? 8 - t : t) * ts;
  // Panel by panel, so that each of the A * A planes is written sequentially.
  parallel_for(panels, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const int64_t o0 = p * W;
      const int cols = static_cast<int>(std::min<int64_t>(W, O - o0));
      for (int64_t c = 0; c < C; ++c) {
        float* dst = Up + (p * C + c) * W;
        if (cols < W) {  // the last panel's columns past O are zeros
          for (int k = 0; k < A2; ++k) std::fill_n(dst + k * kp + cols, W - cols, 0.0f);
        }
        const float* src = w + c * cs + o0;
        tile_run(cols, [&](auto vec, int j) {  // L o's (or one) at a time
          using F = decltype(vec);
          F g[3][3], u[A2];
          for (int t = 0; t < 9; ++t) g[t / 3][t % 3] = lanes_load<F>(src + tap[t] + j);
          winograd_kernel_tile<Mt>(g, u);
          for (int k = 0; k < A2; ++k) lanes_store(dst + k * kp + j, u[k]);
        });
      }
    }
  });
}

// V[k][t - t0][c] = (B^T d B)[k] for the A x A input tile d of tile t. Pixels outside the image
// read as 0 (`zeros` holds C zeros).
template <int Mt>
void winograd_input(const float* x, const ConvGeom& g, int64_t tiles_w, int64_t tiles_img, int64_t t0, int64_t t1,
                    const float* zeros, int64_t ks, float* V) {
  using Tr = WinogradTransforms<Mt>;
  constexpr int A = Tr::A;
  const int64_t C = g.C, TB = t1 - t0;
  parallel_for(TB, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = t0 + b; t < t0 + e; ++t) {
      const int64_t n = t / tiles_img, r = t % tiles_img;
      const int64_t ih0 = (r / tiles_w) * Mt - g.p.pad_top, iw0 = (r % tiles_w) * Mt - g.p.pad_left;
      const float* d[A][A];
      for (int i = 0; i < A; ++i)
        for (int j = 0; j < A; ++j) {
          const int64_t ih = ih0 + i, iw = iw0 + j;
          d[i][j] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x + ((n * g.H + ih) * g.W + iw) * C : zeros;
        }
      float* v = V + (t - t0) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        float s[A][A], col[A], row[A];
        for (int j = 0; j < A; ++j) {  // down each column: B^T d
          for (int i = 0; i < A; ++i) col[i] = d[i][j][c];
          Tr::input(col, row);
          for (int i = 0; i < A; ++i) s[i][j] = row[i];
        }
        for (int i = 0; i < A; ++i) {  // along each row: (B^T d) B
          Tr::input(s[i], row);
          for (int j = 0; j < A; ++j) v[(i * A + j) * ks + c] = row[j];
        }
      }
    }
  });
}

// out[n][oh][ow][o] = (A^T M A) (+ bias) for tile t; the parts of a tile beyond the output's edge
// are dropped.
template <int Mt>
void winograd_output(const float* M, int64_t ks, const float* bias, const ConvGeom& g, int64_t tiles_w,
                     int64_t tiles_img, int64_t t0, int64_t t1, float* out) {
  using Tr = WinogradTransforms<Mt>;
  constexpr int A = Tr::A;
  const int64_t O = g.O, TB = t1 - t0;
  parallel_for(TB, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = t0 + b; t < t0 + e; ++t) {
      const int64_t n = t / tiles_img, r = t % tiles_img;
      const int64_t oh0 = (r / tiles_w) * Mt, ow0 = (r % tiles_w) * Mt;
      const float* m = M + (t - t0) * O;
      const int rows = static_cast<int>(std::min<int64_t>(Mt, g.Ho - oh0));
      const int cols = static_cast<int>(std::min<int64_t>(Mt, g.Wo - ow0));
      float* y = out + ((n * g.Ho + oh0) * g.Wo + ow0) * O;
      // A^T M A for output channels [0, O); FULL: the whole tile lies inside the output.
      auto tile = [&](auto full) {
#pragma omp simd
        for (int64_t o = 0; o < O; ++o) {
          float s[Mt][A], col[A], res[Mt];
          for (int j = 0; j < A; ++j) {  // down each column: A^T M
            for (int i = 0; i < A; ++i) col[i] = m[(i * A + j) * ks + o];
            Tr::output(col, res);
            for (int i = 0; i < Mt; ++i) s[i][j] = res[i];
          }
          const float bo = bias ? bias[o] : 0.0f;
          for (int i = 0; i < Mt; ++i) {  // along each row: (A^T M) A
            Tr::output(s[i], res);
            for (int j = 0; j < Mt; ++j)
              if (full || (i < rows && j < cols)) y[(i * g.Wo + j) * O + o] = res[j] + bo;
          }
        }
      };
      if (rows == Mt && cols == Mt) tile(std::true_type{});
      else tile(std::false_type{});
    }
  });
}

// The convolution g describes (input g.C channels, output g.O), with its weights in `w`: as the
// forward pass stores them ([g.O, 3, 3, g.C], kernel as_is) or as the forward pass of the
// convolution whose input gradient this is stores them ([g.C, 3, 3, g.O], kernel rotated).
template <int Mt>
void winograd_conv(float* out, const float* x, const float* w, WinogradKernel kernel, const float* bias,
                   const ConvGeom& g, const Tensor* wkey) {
  constexpr int A2 = WinogradTransforms<Mt>::A * WinogradTransforms<Mt>::A;
  const int64_t C = g.C, O = g.O;
  const bool fwd = kernel == WinogradKernel::as_is;
  const int64_t tiles_h = (g.Ho + Mt - 1) / Mt, tiles_w = (g.Wo + Mt - 1) / Mt, tiles_img = tiles_h * tiles_w;
  const int64_t T = g.N * tiles_img;
  // A block's V and M together within ~4 MiB (L2 and L3 of these machines), at least 96 rows per GEMM.
  const int64_t TB = std::min<int64_t>(T, std::max<int64_t>(96, (int64_t(4) << 20) / (A2 * 4 * (C + O))));
  const int64_t ku = winograd_plane(O * C), kv = winograd_plane(TB * C), km = winograd_plane(TB * O);
  const Scratch<float> V(A2 * kv), M(A2 * km);  // not zero-filled: every element is written first
  const std::vector<float> zeros(static_cast<size_t>(C), 0.0f);
  // The U[k] in gemm_narrow's packed form up to 2 MiB each (every ResNet-50 shape: 1 MiB at
  // most), else as plain matrices for OpenBLAS. The A * A products of wider layers sum longer
  // rows of transformed values, whose rounding OpenBLAS's blocked sums keep within the tests'
  // bound (740 channels: the packed kernel's one running sum per output was 3x past it).
  const bool packed = O * C * static_cast<int64_t>(sizeof(float)) <= kWinogradPackedMaxBytes;
  const int64_t kp = packed ? winograd_plane(gemm_narrow_packed_size<float>(C, O)) : 0;
  const WinogradLayout layout = fwd ? WinogradLayout::o_major : WinogradLayout::c_major;
  const PreparedForm form{static_cast<int64_t>(PreparedKind::winograd_packed), Mt, C, O, fwd ? 0 : 1};
  std::optional<PreparedOrScratch<float>> Up;  // kept across calls when the weight may be cached
  const Scratch<float> U(packed ? 0 : A2 * ku);
  if (packed) {
    Up.emplace(wkey, form, A2 * kp, [&](float* dst) { winograd_weights_packed<Mt>(w, O, C, layout, kernel, kp, dst); });
  } else if (fwd) {
    winograd_weights<Mt>(w, O, C, ku, U.data(), kernel);  // U[k] [O][C]
  } else {
    winograd_weights<Mt>(w, C, O, ku, U.data(), kernel);  // U[k] [C][O]
  }
  const float* up = packed ? Up->data() : nullptr;
  for (int64_t t0 = 0; t0 < T; t0 += TB) {
    const int64_t t1 = std::min(T, t0 + TB), R = t1 - t0;
    winograd_input<Mt>(x, g, tiles_w, tiles_img, t0, t1, zeros.data(), kv, V.data());
    // A * A GEMMs, one per thread at a time (both the packed-weight kernel and OpenBLAS run
    // single-threaded inside a parallel region): with as few as 96 rows each, that beats
    // splitting every GEMM across the threads. Taken as threads come free: 36 or 16 equal GEMMs
    // split in halves left one thread waiting whenever the other ran slower.
    parallel_for_dynamic(A2, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        if (packed) {
          gemm_narrow_packed<float>(R, O, C, V.data() + k * kv, C, up + k * kp, nullptr, M.data() + k * km, O);
          continue;
        }
        blas_gemm<float>(false, fwd, R, O, C, 1.0f, V.data() + k * kv, C, U.data() + k * ku, fwd ? C : O, 0.0f,
                         M.data() + k * km, O);
      }
    });
    winograd_output<Mt>(M.data(), km, bias, g, tiles_w, tiles_img, t0, t1, out);
  }
}

// Runs the convolution g with the tile winograd_tile(g) chose (g must be one it applies to).
// `wkey`: the weight tensor, whose transformed form may be kept across calls (weight_cache.hpp).
inline void winograd_conv_dispatch(float* out, const float* x, const float* w, WinogradKernel kernel, const float* bias,
                                   const ConvGeom& g, const Tensor* wkey) {
  if (winograd_tile(g) == 4) return winograd_conv<4>(out, x, w, kernel, bias, g, wkey);
  winograd_conv<2>(out, x, w, kernel, bias, g, wkey);
}

inline void winograd_forward(float* out, const float* x, const float* w, const float* bias, const ConvGeom& g,
                             const Tensor* wkey = nullptr) {
  winograd_conv_dispatch(out, x, w, WinogradKernel::as_is, bias, g, wkey);
}

// The input gradient of the convolution g as a convolution of gy: [N, Ho, Wo, O] in, [N, H, W, C]
// out, top/left padding 2 - p (bottom/right follow from the sizes).
inline ConvGeom winograd_input_grad_geom(const ConvGeom& g) {
  Conv2dParams q = g.p;
  q.pad_top = 2 - g.p.pad_top;
  q.pad_left = 2 - g.p.pad_left;
  q.pad_bottom = g.H - g.Ho + 2 - q.pad_top;
  q.pad_right = g.W - g.Wo + 2 - q.pad_left;
  return ConvGeom(Shape{g.N, g.Ho, g.Wo, g.O}, Shape{g.C, 3, 3, g.O}, Shape{g.N, g.H, g.W, g.C}, q);
}

inline bool winograd_input_grad_applies(const ConvGeom& g) {
  return winograd_applies(g) && winograd_applies(winograd_input_grad_geom(g));
}

// gx = the input gradient of the convolution g (weights w [O, 3, 3, C]) for output gradient gy.
inline void winograd_backward_input(float* gx, const float* gy, const float* w, const ConvGeom& g) {
  winograd_conv_dispatch(gx, gy, w, WinogradKernel::rotated, nullptr, winograd_input_grad_geom(g), nullptr);
}

}  // namespace wanwu::cpu
