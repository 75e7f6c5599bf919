// CPU depthwise convolution (groups == C), NHWC: the convolution of EfficientNet's MBConv blocks.
// It does little arithmetic per byte, so the kernels are about keeping data in registers:
//  - forward: 4 output pixels x one channel vector of accumulators stay in registers across all
//    kernel taps; each tap loads the weight vector once for the 4 pixels; interior pixels skip
//    bounds checks;
//  - backward input: the same blocking as a gather over the taps that reach each input pixel;
//    input columns are visited by residue modulo the stride, so that each residue's taps reach
//    consecutive output columns and interior pixels need no checks;
//  - backward weight: per tap, a dot product over the output row, 4 accumulators deep, into
//    per-thread partial sums.
// Channels that do not fill a vector, and channel multipliers > 1, take scalar loops.
#pragma once

#include <algorithm>
#include <vector>

#include "conv_geom.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace wanwu::cpu {

// Weight [O, kH, kW, 1] -> [kH, kW, O] so that channels are contiguous per tap.
template <class T>
std::vector<T> depthwise_taps(const T* w, const ConvGeom& g) {
  std::vector<T> t(static_cast<size_t>(g.KH * g.KW * g.O));
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t k = 0; k < g.KH * g.KW; ++k) t[k * g.O + o] = w[o * g.KH * g.KW + k];
  return t;
}

// Output columns whose every kernel tap lands inside the input: [lo, hi).
inline std::pair<int64_t, int64_t> interior_cols(const ConvGeom& g) {
  const int64_t s = g.p.stride_w, pl = g.p.pad_left, span = (g.KW - 1) * g.p.dilation_w;
  int64_t lo = (pl + s - 1) / s;                      // ow * s - pl >= 0
  int64_t hi = g.W - 1 - span + pl >= 0 ? (g.W - 1 - span + pl) / s + 1 : 0;  // ow*s - pl + span <= W-1
  lo = std::min(lo, g.Wo);
  hi = std::clamp<int64_t>(hi, lo, g.Wo);
  return {lo, hi};
}

// One output pixel, scalar over channels [c0, c1), with bounds checks.
template <class T>
void dw_pixel_scalar(T* o, const T* xn, const T* taps, const T* bias, const ConvGeom& g, int64_t oh, int64_t ow,
                     int64_t c0, int64_t c1) {
  const int64_t m = g.O / g.C;
  for (int64_t c = c0; c < c1; ++c) o[c] = bias ? bias[c] : T(0);
  for (int64_t kh = 0; kh < g.KH; ++kh) {
    const int64_t ih = g.in_row(oh, kh);
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const int64_t iw = g.in_col(ow, kw);
      if (iw < 0 || iw >= g.W) continue;
      const T* xp = xn + (ih * g.W + iw) * g.C;
      const T* tp = taps + (kh * g.KW + kw) * g.O;
      for (int64_t c = c0; c < c1; ++c) o[c] += xp[c / m] * tp[c];
    }
  }
}

template <class T>
void depthwise_forward(T* out, const T* x, const T* w, const T* bias, const ConvGeom& g) {
  using S = Simd<T>;
  using V = typename S::V;
  const auto taps_v = depthwise_taps(w, g);
  const T* taps = taps_v.data();
  const int64_t m = g.O / g.C;
  const int64_t cv = m == 1 ? g.C / S::L * S::L : 0;  // channels handled by vectors
  const auto [lo, hi] = interior_cols(g);
  const int64_t s = g.p.stride_w, d = g.p.dilation_w, C = g.C;
  parallel_for(g.N * g.Ho, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / g.Ho, oh = t % g.Ho;
      const T* xn = x + n * g.H * g.W * C;
      T* orow = out + (n * g.Ho + oh) * g.Wo * g.O;
      int64_t kh0 = 0, kh1 = g.KH;  // taps inside the image vertically
      while (kh0 < g.KH && g.in_row(oh, kh0) < 0) ++kh0;
      while (kh1 > kh0 && g.in_row(oh, kh1 - 1) >= g.H) --kh1;
      // pixels outer, channel vectors inner: a pixel's cache lines are used whole, once
      auto one = [&](int64_t col, int64_t c0) {  // border pixel
        V a = bias ? S::load(bias + c0) : S::zero();
        for (int64_t kh = kh0; kh < kh1; ++kh) {
          const T* xrow = xn + g.in_row(oh, kh) * g.W * C + c0;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t iw = g.in_col(col, kw);
            if (iw < 0 || iw >= g.W) continue;
            a += S::load(xrow + iw * C) * S::load(taps + (kh * g.KW + kw) * C + c0);
          }
        }
        S::store(orow + col * g.O + c0, a);
      };
      int64_t ow = 0;
      for (; ow < lo; ++ow)
        for (int64_t c0 = 0; c0 < cv; c0 += S::L) one(ow, c0);
      for (; ow + 4 <= hi; ow += 4) {
        const int64_t iw0 = ow * s - g.p.pad_left;
        for (int64_t c0 = 0; c0 < cv; c0 += S::L) {
          const V bv = bias ? S::load(bias + c0) : S::zero();
          V a0 = bv, a1 = bv, a2 = bv, a3 = bv;
          for (int64_t kh = kh0; kh < kh1; ++kh) {
            const T* xp = xn + (g.in_row(oh, kh) * g.W + iw0) * C + c0;
            const T* tp = taps + kh * g.KW * C + c0;
            for (int64_t kw = 0; kw < g.KW; ++kw, xp += d * C, tp += C) {
              const V wv = S::load(tp);
              a0 += S::load(xp) * wv;
              a1 += S::load(xp + s * C) * wv;
              a2 += S::load(xp + 2 * s * C) * wv;
              a3 += S::load(xp + 3 * s * C) * wv;
            }
          }
          T* op = orow + ow * g.O + c0;
          S::store(op, a0);
          S::store(op + g.O, a1);
          S::store(op + 2 * g.O, a2);
          S::store(op + 3 * g.O, a3);
        }
      }
      for (; ow < g.Wo; ++ow)
        for (int64_t c0 = 0; c0 < cv; c0 += S::L) one(ow, c0);
      if (cv < g.O)
        for (int64_t ow = 0; ow < g.Wo; ++ow) dw_pixel_scalar(orow + ow * g.O, xn, taps, bias, g, oh, ow, cv, g.O);
    }
  });
}

template <class T>
void depthwise_backward_input(T* gx, const T* gy, const T* w, const ConvGeom& g) {
  using S = Simd<T>;
  using V = typename S::V;
  const auto taps_v = depthwise_taps(w, g);
  const T* taps = taps_v.data();
  const int64_t m = g.O / g.C, C = g.C;
  const int64_t cv = m == 1 ? C / S::L * S::L : 0;
  const int64_t sw = g.p.stride_w, dw = g.p.dilation_w, pl = g.p.pad_left;
  auto valid_col = [&](int64_t iw, int64_t kw, int64_t& ow) {
    const int64_t num = iw + pl - kw * dw;
    if (num < 0 || num % sw) return false;
    ow = num / sw;
    return ow < g.Wo;
  };
  parallel_for(g.N * g.H, 1, [&](int64_t b, int64_t e) {
    std::vector<int64_t> khs, ohs, kws, base;  // taps reaching row ih; per residue, kw and ow offset
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / g.H, ih = t % g.H;
      khs.clear();
      ohs.clear();
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t num = ih + g.p.pad_top - kh * g.p.dilation_h;
        if (num < 0 || num % g.p.stride_h || num / g.p.stride_h >= g.Ho) continue;
        khs.push_back(kh);
        ohs.push_back(num / g.p.stride_h);
      }
      T* gxrow = gx + (n * g.H + ih) * g.W * C;
      auto one = [&](int64_t iw) {  // checked gather for one input pixel, every channel vector
        for (int64_t c0 = 0; c0 < cv; c0 += S::L) {
          V a = S::zero();
          for (size_t k = 0; k < khs.size(); ++k) {
            const T* gyrow = gy + (n * g.Ho + ohs[k]) * g.Wo * g.O + c0;
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              int64_t ow;
              if (!valid_col(iw, kw, ow)) continue;
              a += S::load(gyrow + ow * g.O) * S::load(taps + (khs[k] * g.KW + kw) * C + c0);
            }
          }
          S::store(gxrow + iw * C + c0, a);
        }
      };
      // Input columns iw = rho + j * sw share the taps kw with (rho + pl - kw * dw) % sw == 0,
      // reaching output columns base[kw] + j: consecutive j read consecutive output pixels.
      for (int64_t rho = 0; rho < std::min(sw, g.W) && cv > 0; ++rho) {
        kws.clear();
        base.clear();
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t num = rho + pl - kw * dw;
          if (((num % sw) + sw) % sw) continue;
          kws.push_back(kw);
          base.push_back(num >= 0 ? num / sw : -((-num) / sw));
        }
        const int64_t J = (g.W - 1 - rho) / sw + 1;
        int64_t jlo = J, jhi = J;
        if (!kws.empty()) {
          const int64_t bmin = *std::min_element(base.begin(), base.end());
          const int64_t bmax = *std::max_element(base.begin(), base.end());
          jlo = std::clamp<int64_t>(-bmin, 0, J);
          jhi = std::clamp<int64_t>(g.Wo - bmax, jlo, J);
        }
        int64_t j = 0;
        for (; j < jlo; ++j) one(rho + j * sw);
        for (; j + 4 <= jhi; j += 4) {
          for (int64_t c0 = 0; c0 < cv; c0 += S::L) {
            V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
            for (size_t k = 0; k < khs.size(); ++k) {
              const T* gyrow = gy + (n * g.Ho + ohs[k]) * g.Wo * g.O + c0;
              const T* trow = taps + khs[k] * g.KW * C + c0;
              for (size_t q = 0; q < kws.size(); ++q) {
                const V wv = S::load(trow + kws[q] * C);
                const T* gp = gyrow + (base[q] + j) * g.O;
                a0 += S::load(gp) * wv;
                a1 += S::load(gp + g.O) * wv;
                a2 += S::load(gp + 2 * g.O) * wv;
                a3 += S::load(gp + 3 * g.O) * wv;
              }
            }
            T* dst = gxrow + (rho + j * sw) * C + c0;
            S::store(dst, a0);
            S::store(dst + sw * C, a1);
            S::store(dst + 2 * sw * C, a2);
            S::store(dst + 3 * sw * C, a3);
          }
        }
        for (; j < J; ++j) one(rho + j * sw);
      }
      if (cv < C) {  // remaining channels (and multipliers), scalar
        for (int64_t iw = 0; iw < g.W; ++iw) {
          T* dst = gxrow + iw * C;
          for (int64_t c = cv; c < C; ++c) dst[c] = T(0);
          for (size_t k = 0; k < khs.size(); ++k)
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              int64_t ow;
              if (!valid_col(iw, kw, ow)) continue;
              const T* gp = gy + ((n * g.Ho + ohs[k]) * g.Wo + ow) * g.O;
              const T* tp = taps + (khs[k] * g.KW + kw) * g.O;
              for (int64_t o = cv * m; o < g.O; ++o) dst[o / m] += gp[o] * tp[o];
            }
        }
      }
    }
  });
}

template <class T>
void depthwise_backward_weight(T* gw, const T* gy, const T* x, const ConvGeom& g) {
  using S = Simd<T>;
  using V = typename S::V;
  const int64_t m = g.O / g.C, taps = g.KH * g.KW, C = g.C;
  const int64_t cv = m == 1 ? C / S::L * S::L : 0;
  const int chunks = parallel_chunks(g.N * g.Ho, 1);
  std::vector<std::vector<T>> partial(static_cast<size_t>(chunks), std::vector<T>(static_cast<size_t>(taps * g.O)));
  const int64_t per = (g.N * g.Ho + chunks - 1) / chunks;
  const int64_t sw = g.p.stride_w, dw = g.p.dilation_w;
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t ci = cb; ci < ce; ++ci) {
      T* acc = partial[ci].data();  // [kh, kw, O]
      for (int64_t t = ci * per; t < std::min(g.N * g.Ho, (ci + 1) * per); ++t) {
        const int64_t n = t / g.Ho, oh = t % g.Ho;
        const T* gyrow = gy + (n * g.Ho + oh) * g.Wo * g.O;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          const int64_t ih = g.in_row(oh, kh);
          if (ih < 0 || ih >= g.H) continue;
          const T* xrow = x + (n * g.H + ih) * g.W * C;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            // output columns whose tap kw is inside the input: iw = ow * sw - pl + kw * dw
            const int64_t off = kw * dw - g.p.pad_left;
            const int64_t ow0 = off >= 0 ? 0 : (-off + sw - 1) / sw;
            const int64_t ow1 = std::clamp<int64_t>(g.W - 1 - off >= 0 ? (g.W - 1 - off) / sw + 1 : 0, ow0, g.Wo);
            T* ap = acc + (kh * g.KW + kw) * g.O;
            for (int64_t c0 = 0; c0 < cv; c0 += S::L) {
              V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
              int64_t ow = ow0;
              for (; ow + 4 <= ow1; ow += 4) {
                const T* gp = gyrow + ow * g.O + c0;
                const T* xp = xrow + (ow * sw + off) * C + c0;
                a0 += S::load(gp) * S::load(xp);
                a1 += S::load(gp + g.O) * S::load(xp + sw * C);
                a2 += S::load(gp + 2 * g.O) * S::load(xp + 2 * sw * C);
                a3 += S::load(gp + 3 * g.O) * S::load(xp + 3 * sw * C);
              }
              for (; ow < ow1; ++ow) a0 += S::load(gyrow + ow * g.O + c0) * S::load(xrow + (ow * sw + off) * C + c0);
              S::store(ap + c0, S::load(ap + c0) + ((a0 + a1) + (a2 + a3)));
            }
            for (int64_t ow = ow0; ow < ow1; ++ow) {  // remaining channels, scalar
              const T* gp = gyrow + ow * g.O;
              const T* xp = xrow + (ow * sw + off) * C;
              for (int64_t o = cv * m; o < g.O; ++o) ap[o] += gp[o] * xp[o / m];
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

}  // namespace wanwu::cpu
