// CPU 2-D convolution, NHWC (DESIGN D4), forward and both backwards.
//
// - 1x1, stride 1, no padding, one group: the whole batch is one GEMM ([N*H*W, C] x [O, C]^T),
//   because NHWC makes the activations a row-major matrix already.
// - General case: im2col of a tile of output pixels into a bounded buffer (at most
//   kColBytes), then one GEMM per tile and group; the weight [O, kH, kW, C/g] is already the
//   [O, K] matrix that multiplies a column row in (kh, kw, c) order.
// - Depthwise (groups == C): a direct kernel vectorized over channels, which are contiguous.
// Batches with at least as many images as threads run one image per thread (single-threaded
// GEMMs, no synchronization); smaller batches run images in turn with OpenBLAS's threads.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "blas.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

struct ConvGeom {
  int64_t N, H, W, C, O, KH, KW, Ho, Wo, G, Cg, Og, K;
  Conv2dParams p;
  ConvGeom(const Shape& x, const Shape& w, const Shape& out, const Conv2dParams& prm)
      : N(x[0]), H(x[1]), W(x[2]), C(x[3]), O(w[0]), KH(w[1]), KW(w[2]), Ho(out[1]), Wo(out[2]), G(prm.groups),
        Cg(x[3] / prm.groups), Og(w[0] / prm.groups), K(w[1] * w[2] * (x[3] / prm.groups)), p(prm) {}
  bool pointwise() const {
    return KH == 1 && KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 && p.pad_left == 0 &&
           p.pad_bottom == 0 && p.pad_right == 0 && G == 1;
  }
  bool depthwise() const { return G == C && G > 1 && Cg == 1; }
  int64_t in_row(int64_t oh, int64_t kh) const { return oh * p.stride_h - p.pad_top + kh * p.dilation_h; }
  int64_t in_col(int64_t ow, int64_t kw) const { return ow * p.stride_w - p.pad_left + kw * p.dilation_w; }
};

inline constexpr size_t kColBytes = size_t(8) << 20;

// Output pixels per im2col tile: bounded buffer, at least one output row.
inline int64_t conv_tile_rows(const ConvGeom& g, size_t elem) {
  const int64_t per_row = std::max<int64_t>(1, g.K * static_cast<int64_t>(elem));
  const int64_t rows = static_cast<int64_t>(kColBytes) / per_row;
  return std::clamp<int64_t>(rows, std::min<int64_t>(g.Wo, g.Ho * g.Wo), g.Ho * g.Wo);
}

// col[r - r0][(kh, kw, c)] = x[n][ih][iw][group * Cg + c] (0 outside the image)
template <class T>
void im2col(const T* x, const ConvGeom& g, int64_t group, int64_t r0, int64_t r1, T* col) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t oh = r / g.Wo, ow = r % g.Wo;
    T* dst = col + (r - r0) * g.K;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = g.in_row(oh, kh);
      for (int64_t kw = 0; kw < g.KW; ++kw, dst += g.Cg) {
        const int64_t iw = g.in_col(ow, kw);
        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) std::memset(dst, 0, sizeof(T) * g.Cg);
        else std::memcpy(dst, x + (ih * g.W + iw) * g.C + group * g.Cg, sizeof(T) * g.Cg);
      }
    }
  }
}

// x[n][ih][iw][group * Cg + c] += col[r - r0][(kh, kw, c)]
template <class T>
void col2im_add(const T* col, const ConvGeom& g, int64_t group, int64_t r0, int64_t r1, T* x) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t oh = r / g.Wo, ow = r % g.Wo;
    const T* src = col + (r - r0) * g.K;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = g.in_row(oh, kh);
      for (int64_t kw = 0; kw < g.KW; ++kw, src += g.Cg) {
        const int64_t iw = g.in_col(ow, kw);
        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
        T* dst = x + (ih * g.W + iw) * g.C + group * g.Cg;
#pragma omp simd
        for (int64_t c = 0; c < g.Cg; ++c) dst[c] += src[c];
      }
    }
  }
}

// Runs body(n, col_buffer) for every image: one image per thread when the batch is large enough.
template <class T, class Body>
void for_each_image(const ConvGeom& g, size_t col_elems, Body&& body) {
  const int nt = max_threads();
  if (g.N >= nt && nt > 1) {
    parallel_for(g.N, 1, [&](int64_t b, int64_t e) {
      std::vector<T> col(col_elems);
      for (int64_t n = b; n < e; ++n) body(n, col.data());
    });
  } else {
    std::vector<T> col(col_elems);
    for (int64_t n = 0; n < g.N; ++n) body(n, col.data());
  }
}

// ---------------------------------------------------------------- depthwise (groups == C)

// Weight [O, kH, kW, 1] -> [kH, kW, O] so that the channel loop is contiguous.
template <class T>
std::vector<T> depthwise_taps(const T* w, const ConvGeom& g) {
  std::vector<T> t(static_cast<size_t>(g.KH * g.KW * g.O));
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t k = 0; k < g.KH * g.KW; ++k) t[k * g.O + o] = w[o * g.KH * g.KW + k];
  return t;
}

template <class T>
void depthwise_forward(T* out, const T* x, const T* w, const T* bias, const ConvGeom& g) {
  const auto taps = depthwise_taps(w, g);
  const int64_t m = g.O / g.C;  // channel multiplier
  parallel_for(g.N * g.Ho, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / g.Ho, oh = t % g.Ho;
      const T* xn = x + n * g.H * g.W * g.C;
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        T* o = out + ((n * g.Ho + oh) * g.Wo + ow) * g.O;
        for (int64_t c = 0; c < g.O; ++c) o[c] = bias ? bias[c] : T(0);
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          const int64_t ih = g.in_row(oh, kh);
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t iw = g.in_col(ow, kw);
            if (iw < 0 || iw >= g.W) continue;
            const T* xp = xn + (ih * g.W + iw) * g.C;
            const T* tp = taps.data() + (kh * g.KW + kw) * g.O;
            if (m == 1) {
#pragma omp simd
              for (int64_t c = 0; c < g.O; ++c) o[c] += xp[c] * tp[c];
            } else {
              for (int64_t c = 0; c < g.O; ++c) o[c] += xp[c / m] * tp[c];
            }
          }
        }
      }
    }
  });
}

template <class T>
void depthwise_backward_input(T* gx, const T* gy, const T* w, const ConvGeom& g) {
  const auto taps = depthwise_taps(w, g);
  const int64_t m = g.O / g.C;
  parallel_for(g.N * g.H, 1, [&](int64_t b, int64_t e) {
    std::vector<T> acc(static_cast<size_t>(g.C));
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / g.H, ih = t % g.H;
      for (int64_t iw = 0; iw < g.W; ++iw) {
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          const int64_t num_h = ih + g.p.pad_top - kh * g.p.dilation_h;
          if (num_h < 0 || num_h % g.p.stride_h) continue;
          const int64_t oh = num_h / g.p.stride_h;
          if (oh >= g.Ho) continue;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t num_w = iw + g.p.pad_left - kw * g.p.dilation_w;
            if (num_w < 0 || num_w % g.p.stride_w) continue;
            const int64_t ow = num_w / g.p.stride_w;
            if (ow >= g.Wo) continue;
            const T* gp = gy + ((n * g.Ho + oh) * g.Wo + ow) * g.O;
            const T* tp = taps.data() + (kh * g.KW + kw) * g.O;
            if (m == 1) {
#pragma omp simd
              for (int64_t c = 0; c < g.C; ++c) acc[c] += gp[c] * tp[c];
            } else {
              for (int64_t o = 0; o < g.O; ++o) acc[o / m] += gp[o] * tp[o];
            }
          }
        }
        std::memcpy(gx + ((n * g.H + ih) * g.W + iw) * g.C, acc.data(), sizeof(T) * g.C);
      }
    }
  });
}

template <class T>
void depthwise_backward_weight(T* gw, const T* gy, const T* x, const ConvGeom& g) {
  const int64_t m = g.O / g.C, taps = g.KH * g.KW;
  const int chunks = parallel_chunks(g.N * g.Ho, 1);
  std::vector<std::vector<T>> partial(static_cast<size_t>(chunks), std::vector<T>(static_cast<size_t>(taps * g.O)));
  const int64_t per = (g.N * g.Ho + chunks - 1) / chunks;
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t ci = cb; ci < ce; ++ci) {
      T* acc = partial[ci].data();  // [kh, kw, O]
      for (int64_t t = ci * per; t < std::min(g.N * g.Ho, (ci + 1) * per); ++t) {
        const int64_t n = t / g.Ho, oh = t % g.Ho;
        for (int64_t ow = 0; ow < g.Wo; ++ow) {
          const T* gp = gy + ((n * g.Ho + oh) * g.Wo + ow) * g.O;
          for (int64_t kh = 0; kh < g.KH; ++kh) {
            const int64_t ih = g.in_row(oh, kh);
            if (ih < 0 || ih >= g.H) continue;
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const int64_t iw = g.in_col(ow, kw);
              if (iw < 0 || iw >= g.W) continue;
              const T* xp = x + ((n * g.H + ih) * g.W + iw) * g.C;
              T* ap = acc + (kh * g.KW + kw) * g.O;
              if (m == 1) {
#pragma omp simd
                for (int64_t c = 0; c < g.O; ++c) ap[c] += gp[c] * xp[c];
              } else {
                for (int64_t o = 0; o < g.O; ++o) ap[o] += gp[o] * xp[o / m];
              }
            }
          }
        }
      }
    }
  });
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t k = 0; k < taps; ++k) {
      T s = 0;
      for (const auto& part : partial) s += part[k * g.O + o];
      gw[o * taps + k] = s;
    }
}

// ---------------------------------------------------------------- general (GEMM) path

template <class T>
void conv_forward_typed(T* out, const T* x, const T* w, const T* bias, const ConvGeom& g) {
  if (g.depthwise()) return depthwise_forward(out, x, w, bias, g);
  const int64_t P = g.Ho * g.Wo;
  auto fill_bias = [&](T* dst, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * g.O, bias, sizeof(T) * g.O);
  };
  const T beta = bias ? T(1) : T(0);
  if (g.pointwise()) {  // the batch is one [N*H*W, C] matrix
    const int64_t rows = g.N * P;
    if (bias) {
      parallel_for(rows, 4096, [&](int64_t b, int64_t e) { fill_bias(out + b * g.O, e - b); });
    }
    blas_gemm<T>(false, true, rows, g.O, g.C, T(1), x, g.C, w, g.C, beta, out, g.O);
    return;
  }
  const int64_t tile = conv_tile_rows(g, sizeof(T));
  for_each_image<T>(g, static_cast<size_t>(tile * g.K), [&](int64_t n, T* col) {
    const T* xn = x + n * g.H * g.W * g.C;
    T* on = out + n * P * g.O;
    for (int64_t r0 = 0; r0 < P; r0 += tile) {
      const int64_t r1 = std::min(P, r0 + tile), R = r1 - r0;
      if (bias) fill_bias(on + r0 * g.O, R);
      for (int64_t grp = 0; grp < g.G; ++grp) {
        im2col(xn, g, grp, r0, r1, col);
        blas_gemm<T>(false, true, R, g.Og, g.K, T(1), col, g.K, w + grp * g.Og * g.K, g.K, beta,
                     on + r0 * g.O + grp * g.Og, g.O);
      }
    }
  });
}

template <class T>
void conv_backward_input_typed(T* gx, const T* gy, const T* w, const ConvGeom& g) {
  if (g.depthwise()) return depthwise_backward_input(gx, gy, w, g);
  const int64_t P = g.Ho * g.Wo;
  if (g.pointwise()) {  // [N*H*W, O] x [O, C]
    blas_gemm<T>(false, false, g.N * P, g.C, g.O, T(1), gy, g.O, w, g.C, T(0), gx, g.C);
    return;
  }
  std::memset(gx, 0, sizeof(T) * static_cast<size_t>(g.N * g.H * g.W * g.C));
  const int64_t tile = conv_tile_rows(g, sizeof(T));
  for_each_image<T>(g, static_cast<size_t>(tile * g.K), [&](int64_t n, T* col) {
    const T* gyn = gy + n * P * g.O;
    T* gxn = gx + n * g.H * g.W * g.C;
    for (int64_t r0 = 0; r0 < P; r0 += tile) {
      const int64_t r1 = std::min(P, r0 + tile), R = r1 - r0;
      for (int64_t grp = 0; grp < g.G; ++grp) {
        blas_gemm<T>(false, false, R, g.K, g.Og, T(1), gyn + r0 * g.O + grp * g.Og, g.O, w + grp * g.Og * g.K, g.K,
                     T(0), col, g.K);
        col2im_add(col, g, grp, r0, r1, gxn);
      }
    }
  });
}

template <class T>
void conv_backward_weight_typed(T* gw, const T* gy, const T* x, const ConvGeom& g) {
  if (g.depthwise()) return depthwise_backward_weight(gw, gy, x, g);
  const int64_t P = g.Ho * g.Wo;
  if (g.pointwise()) {  // [O, N*H*W] x [N*H*W, C]
    blas_gemm<T>(true, false, g.O, g.C, g.N * P, T(1), gy, g.O, x, g.C, T(0), gw, g.C);
    return;
  }
  const int64_t tile = conv_tile_rows(g, sizeof(T));
  const size_t wsize = static_cast<size_t>(g.O * g.K);
  const int nt = max_threads();
  const bool per_thread = g.N >= nt && nt > 1;
  const int parts = per_thread ? parallel_chunks(g.N, 1) : 1;
  std::vector<std::vector<T>> partial(static_cast<size_t>(parts), std::vector<T>(wsize, T(0)));
  auto accumulate = [&](int64_t n, T* col, T* acc) {
    const T* gyn = gy + n * P * g.O;
    const T* xn = x + n * g.H * g.W * g.C;
    for (int64_t r0 = 0; r0 < P; r0 += tile) {
      const int64_t r1 = std::min(P, r0 + tile), R = r1 - r0;
      for (int64_t grp = 0; grp < g.G; ++grp) {
        im2col(xn, g, grp, r0, r1, col);
        blas_gemm<T>(true, false, g.Og, g.K, R, T(1), gyn + r0 * g.O + grp * g.Og, g.O, col, g.K, T(1),
                     acc + grp * g.Og * g.K, g.K);
      }
    }
  };
  if (per_thread) {
    const int64_t per = (g.N + parts - 1) / parts;
    parallel_for(parts, 1, [&](int64_t pb, int64_t pe) {
      std::vector<T> col(static_cast<size_t>(tile * g.K));
      for (int64_t pi = pb; pi < pe; ++pi)
        for (int64_t n = pi * per; n < std::min(g.N, (pi + 1) * per); ++n) accumulate(n, col.data(), partial[pi].data());
    });
  } else {
    std::vector<T> col(static_cast<size_t>(tile * g.K));
    for (int64_t n = 0; n < g.N; ++n) accumulate(n, col.data(), partial[0].data());
  }
  for (size_t i = 0; i < wsize; ++i) {
    T s = 0;
    for (const auto& part : partial) s += part[i];
    gw[i] = s;
  }
}

}  // namespace wanwu::cpu
