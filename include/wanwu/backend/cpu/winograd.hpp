// Winograd F(2x2, 3x3) for 3x3, stride-1, undilated, ungrouped f32 convolutions (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016), NHWC.
//
// Why: the im2col + sgemm path already runs ResNet-50's convolutions at ~95% of OpenBLAS's sgemm
// rate, so the only way to go faster is fewer multiplications. F(2x2, 3x3) computes a 2x2 output
// tile from a 4x4 input tile with 16 multiplications per (input, output) channel pair instead of
// 36: 2.25x fewer. The 16 products over all channel pairs are 16 independent GEMMs,
// V[k] [tiles, C] x U[k] [C, O] = M[k] [tiles, O], with
//   U = G g G^T   (weights, 3x3 -> 4x4),  V = B^T d B  (input tile, 4x4),  Y = A^T M A  (4x4 -> 2x2).
// NHWC keeps channels contiguous, so each transform is a vector loop over channels, and V and M
// rows are contiguous GEMM operands. Tiles are processed in blocks (across images, so that a 7x7
// map at batch 16 still gives the GEMMs enough rows) whose V and M stay within a few MiB.
//
// The transforms' coefficients are 0, +-1 and 1/2, so the result differs from direct convolution
// by rounding only (a few ulp of the largest partial sum); f64 keeps the direct path, which the
// gradient checks use.
//
// The gradient with respect to the input of such a convolution is itself one: gy correlated with
// the kernel rotated by 180 degrees and its channel axes swapped, padding 2 - p. The weight
// transform reads the kernel rotated, and the GEMMs read U untransposed, so the backward pass runs
// the same code with no rearranged copy of the weights. The weight gradient stays on im2col.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../../core/allocator.hpp"
#include "blas.hpp"
#include "conv_geom.hpp"
#include "gemm_narrow.hpp"
#include "parallel.hpp"
#include "scratch.hpp"

namespace wanwu::cpu {

// Where F(2x2, 3x3) pays, measured on ResNet-50's 3x3 convolutions (2-core AVX2 machine, OpenBLAS):
// - channels: with 64 in and out, the 16 GEMMs have K = 64 and run far below the rate of im2col's
//   K = 576 GEMM, which eats the saving (0.5x at 56x56 and batch 1, 1.1x at batch 4); from 128 on
//   Winograd wins (1.4x to 1.7x);
// - tiles in the batch: the weight transform writes 16 C O values per call and GEMMs of a few
//   dozen rows run slowly, so 7x7 maps need several images (512 channels: 0.6x at batch 1, 1.0x
//   at 4, 1.5x at 16), while 14x14 at batch 1 (49 tiles) already gains 1.36x.
inline constexpr int64_t kWinogradMinChannels = 128;
inline constexpr int64_t kWinogradMinTiles = 48;

inline bool winograd_applies(const ConvGeom& g) {
  const Conv2dParams& p = g.p;
  const int64_t tiles = g.N * ((g.Ho + 1) / 2) * ((g.Wo + 1) / 2);
  return g.KH == 3 && g.KW == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1 &&
         g.G == 1 && g.C >= kWinogradMinChannels && g.O >= kWinogradMinChannels && p.pad_top <= 2 &&
         p.pad_left <= 2 && tiles >= kWinogradMinTiles;
}

// The 16 matrices of U, V and M each live in one buffer, a plane per k. Planes whose size is a
// multiple of 4 KiB would put the 16 streams a transform reads or writes at once in the same few
// L1 sets; padding each plane by one cache line spreads them.
inline int64_t winograd_plane(int64_t elems) { return (elems + 15) / 16 * 16 + 16; }

// U[k][o][c] = (G g G^T)[k] for g = w[o][:, :][c], G = [[1,0,0], [1/2,1/2,1/2], [1/2,-1/2,1/2], [0,0,1]];
// plane stride `ku`. Stored [o][c] so that both the reads of w and the writes of U run along c.
// The forward pass's GEMMs read it transposed ([C, O]); the input gradient's read it as it is, with
// the kernel rotated (`rotate`: g[i][j] = w[o][2-i][2-j][c]), o the computed convolution's input.
enum class WinogradKernel : uint8_t { as_is, rotated };

inline void winograd_weights(const float* w, int64_t O, int64_t C, int64_t ku, float* U, WinogradKernel kernel) {
  const bool rot = kernel == WinogradKernel::rotated;
  parallel_for(O, 4, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const float* wo = w + o * 9 * C;
      float* u = U + o * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        float g[3][3], t[4][3];
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) g[i][j] = wo[(rot ? 8 - (i * 3 + j) : i * 3 + j) * C + c];
        for (int j = 0; j < 3; ++j) {
          t[0][j] = g[0][j];
          t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
          t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
          t[3][j] = g[2][j];
        }
        for (int i = 0; i < 4; ++i) {
          u[(i * 4 + 0) * ku + c] = t[i][0];
          u[(i * 4 + 1) * ku + c] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
          u[(i * 4 + 2) * ku + c] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
          u[(i * 4 + 3) * ku + c] = t[i][2];
        }
      }
    }
  });
}

// V[k][t - t0][c] = (B^T d B)[k] for the 4x4 input tile d of tile t, B^T = [[1,0,-1,0], [0,1,1,0],
// [0,-1,1,0], [0,1,0,-1]]. Pixels outside the image read as 0 (`zeros` holds C zeros).
inline void winograd_input(const float* x, const ConvGeom& g, int64_t tiles_w, int64_t tiles_img, int64_t t0,
                           int64_t t1, const float* zeros, int64_t ks, float* V) {
  const int64_t C = g.C, TB = t1 - t0;
  parallel_for(TB, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = t0 + b; t < t0 + e; ++t) {
      const int64_t n = t / tiles_img, r = t % tiles_img;
      const int64_t ih0 = (r / tiles_w) * 2 - g.p.pad_top, iw0 = (r % tiles_w) * 2 - g.p.pad_left;
      const float* d[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const int64_t ih = ih0 + i, iw = iw0 + j;
          d[i][j] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x + ((n * g.H + ih) * g.W + iw) * C : zeros;
        }
      float* v = V + (t - t0) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        float s[4][4];
        for (int j = 0; j < 4; ++j) {  // rows: B^T d
          s[0][j] = d[0][j][c] - d[2][j][c];
          s[1][j] = d[1][j][c] + d[2][j][c];
          s[2][j] = d[2][j][c] - d[1][j][c];
          s[3][j] = d[1][j][c] - d[3][j][c];
        }
        for (int i = 0; i < 4; ++i) {  // columns: (B^T d) B
          v[(i * 4 + 0) * ks + c] = s[i][0] - s[i][2];
          v[(i * 4 + 1) * ks + c] = s[i][1] + s[i][2];
          v[(i * 4 + 2) * ks + c] = s[i][2] - s[i][1];
          v[(i * 4 + 3) * ks + c] = s[i][1] - s[i][3];
        }
      }
    }
  });
}

// out[n][oh][ow][o] = (A^T M A) (+ bias) for tile t, A^T = [[1,1,1,0], [0,1,-1,-1]]; the parts of
// a tile beyond the output's edge are dropped.
inline void winograd_output(const float* M, int64_t ks, const float* bias, const ConvGeom& g, int64_t tiles_w,
                            int64_t tiles_img, int64_t t0, int64_t t1, float* out) {
  const int64_t O = g.O, TB = t1 - t0;
  parallel_for(TB, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = t0 + b; t < t0 + e; ++t) {
      const int64_t n = t / tiles_img, r = t % tiles_img;
      const int64_t oh0 = (r / tiles_w) * 2, ow0 = (r % tiles_w) * 2;
      const float* m = M + (t - t0) * O;
      float* y[2][2];
      bool in[2][2];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          in[i][j] = oh0 + i < g.Ho && ow0 + j < g.Wo;
          y[i][j] = out + ((n * g.Ho + oh0 + i) * g.Wo + ow0 + j) * O;
        }
      // A^T M A for output channels [0, O); FULL: the whole 2x2 tile lies inside the output.
      auto tile = [&](auto full) {
#pragma omp simd
        for (int64_t o = 0; o < O; ++o) {
          float s[2][4];
          for (int j = 0; j < 4; ++j) {
            const float m0 = m[(0 * 4 + j) * ks + o], m1 = m[(1 * 4 + j) * ks + o], m2 = m[(2 * 4 + j) * ks + o],
                        m3 = m[(3 * 4 + j) * ks + o];
            s[0][j] = m0 + m1 + m2;
            s[1][j] = m1 - m2 - m3;
          }
          const float bo = bias ? bias[o] : 0.0f;
          y[0][0][o] = s[0][0] + s[0][1] + s[0][2] + bo;
          if (full || in[0][1]) y[0][1][o] = s[0][1] - s[0][2] - s[0][3] + bo;
          if (full || in[1][0]) y[1][0][o] = s[1][0] + s[1][1] + s[1][2] + bo;
          if (full) y[1][1][o] = s[1][1] - s[1][2] - s[1][3] + bo;
        }
      };
      if (in[1][1]) tile(std::true_type{});
      else tile(std::false_type{});
    }
  });
}

// The convolution g describes (input g.C channels, output g.O), with its weights in `w`: as the
// forward pass stores them ([g.O, 3, 3, g.C], kernel as_is) or as the forward pass of the
// convolution whose input gradient this is stores them ([g.C, 3, 3, g.O], kernel rotated).
inline void winograd_conv(float* out, const float* x, const float* w, WinogradKernel kernel, const float* bias,
                          const ConvGeom& g) {
  const int64_t C = g.C, O = g.O;
  const bool fwd = kernel == WinogradKernel::as_is;
  const int64_t tiles_h = (g.Ho + 1) / 2, tiles_w = (g.Wo + 1) / 2, tiles_img = tiles_h * tiles_w;
  const int64_t T = g.N * tiles_img;
  // A block's V and M together within ~4 MiB (L2 and L3 of these machines), at least 96 rows per GEMM.
  const int64_t TB = std::min<int64_t>(T, std::max<int64_t>(96, (int64_t(4) << 20) / (16 * 4 * (C + O))));
  const int64_t ku = winograd_plane(O * C), kv = winograd_plane(TB * C), km = winograd_plane(TB * O);
  const Scratch<float> U(16 * ku), V(16 * kv), M(16 * km);  // not zero-filled: every element is written first
  const std::vector<float> zeros(static_cast<size_t>(C), 0.0f);
  if (fwd) winograd_weights(w, O, C, ku, U.data(), kernel);  // U[k] [O][C]
  else winograd_weights(w, C, O, ku, U.data(), kernel);      // U[k] [C][O]
  // The 16 U[k] packed for gemm_narrow when they fit its limit (every ResNet-50 shape does).
  const bool packed = gemm_narrow_fits<float>(O, C);
  const int64_t kp = packed ? gemm_narrow_packed_size<float>(C, O) : 0;
  const Scratch<float> Up(16 * kp);
  if (packed) {
    parallel_for(16, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) gemm_narrow_pack(U.data() + k * ku, fwd ? C : O, fwd, C, O, Up.data() + k * kp);
    });
  }
  for (int64_t t0 = 0; t0 < T; t0 += TB) {
    const int64_t t1 = std::min(T, t0 + TB), R = t1 - t0;
    winograd_input(x, g, tiles_w, tiles_img, t0, t1, zeros.data(), kv, V.data());
    // 16 GEMMs, one per thread at a time (both the packed-weight kernel and OpenBLAS run
    // single-threaded inside a parallel region): with as few as 96 rows each, that beats
    // splitting every GEMM across the threads.
    parallel_for(16, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        if (packed) {
          gemm_narrow_packed<float>(R, O, C, V.data() + k * kv, C, Up.data() + k * kp, false, M.data() + k * km, O);
          continue;
        }
        blas_gemm<float>(false, fwd, R, O, C, 1.0f, V.data() + k * kv, C, U.data() + k * ku, fwd ? C : O, 0.0f,
                         M.data() + k * km, O);
      }
    });
    winograd_output(M.data(), km, bias, g, tiles_w, tiles_img, t0, t1, out);
  }
}

inline void winograd_forward(float* out, const float* x, const float* w, const float* bias, const ConvGeom& g) {
  winograd_conv(out, x, w, WinogradKernel::as_is, bias, g);
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
  winograd_conv(gx, gy, w, WinogradKernel::rotated, nullptr, winograd_input_grad_geom(g));
}

}  // namespace wanwu::cpu
