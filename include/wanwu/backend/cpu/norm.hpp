// CPU normalization kernels: batch norm (statistics per channel, the innermost NHWC axis) and
// layer norm (statistics per row), forward and fused backward.
//
// Batch norm reads x as [M, C]: one pass accumulates per-channel sums of (x - x[0]) and its
// square (the shift by the first row keeps E[x^2] - E[x]^2 from cancelling), in T over blocks
// of 16 rows and in double across blocks; a second pass writes y = (x - mean) * scale + bias.
// The backward is two passes as well: the per-channel sums of dy and dy * (x - mean), then dx.
// Rows are split across threads with per-thread partial sums, so results do not depend on
// scheduling.
#pragma once

#include <cmath>
#include <vector>

#include "../../core/macros.hpp"
#include "../bn_running.hpp"
#include "parallel.hpp"

namespace wanwu::cpu {

// Per-thread partial sums over row chunks of an [M, C] matrix: f(row_begin, row_end, acc...).
struct RowChunks {
  int chunks;
  int64_t per;
  RowChunks(int64_t M, int64_t C) {
    chunks = parallel_chunks(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)));
    per = (M + chunks - 1) / chunks;
  }
};

// Calls row(m) for every row m of an [M, C] tensor, rows split over the threads in chunks of about
// 16K elements: the per-element passes of batch norm, after the per-channel sums are known.
template <class F>
void for_each_row(int64_t M, int64_t C, F&& row) {
  parallel_for(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)), [&](int64_t mb, int64_t me) {
    for (int64_t m = mb; m < me; ++m) row(m);
  });
}

// Per-channel sums of two per-element values over the rows, one partial sum per thread chunk:
// row(m, b1, b2) adds row m's values into b1[c], b2[c]. Values are accumulated in T over blocks
// of kSumBlockRows rows, then the block sums in double: double accumulators per element cost
// two conversions and twice the vector width, which made these passes compute-bound once the
// tensor sits in L3, while 16-term sums in f32 lose no more than the f32 inputs hold.
constexpr int64_t kSumBlockRows = 16;

template <class T, class Row>
void channel_sums2(const RowChunks& rc, int64_t M, int64_t C, double* s1, double* s2, Row&& row) {
  parallel_for(rc.chunks, 1, [&](int64_t cb, int64_t ce) {
    std::vector<T> b1(static_cast<size_t>(C)), b2(static_cast<size_t>(C));
    for (int64_t ci = cb; ci < ce; ++ci) {
      double* a1 = s1 + ci * C;
      double* a2 = s2 + ci * C;
      const int64_t me = std::min(M, (ci + 1) * rc.per);
      for (int64_t m0 = ci * rc.per; m0 < me; m0 += kSumBlockRows) {
        std::fill(b1.begin(), b1.end(), T(0));
        std::fill(b2.begin(), b2.end(), T(0));
        for (int64_t m = m0; m < std::min(me, m0 + kSumBlockRows); ++m) row(m, b1.data(), b2.data());
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          a1[c] += static_cast<double>(b1[c]);
          a2[c] += static_cast<double>(b2[c]);
        }
      }
    }
  });
}

// y = act(batch norm of x + res); res may be null; the running statistics (null: not tracked)
// updated in place.
template <class T, class S, class Act>
void batch_norm_forward_typed(T* y, S* mean_out, S* invstd_out, const T* x, const T* w, const T* b, const T* res,
                              int64_t M, int64_t C, double eps, Act act, const RunningStats<S>& run) {
  const RowChunks rc(M, C);
  std::vector<double> s1(static_cast<size_t>(rc.chunks * C), 0.0), s2(static_cast<size_t>(rc.chunks * C), 0.0);
  const T* shift = x;  // first row
  channel_sums2<T>(rc, M, C, s1.data(), s2.data(), [&](int64_t m, T* a1, T* a2) {
    const T* xr = x + m * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const T d = xr[c] - shift[c];
      a1[c] += d;
      a2[c] += d * d;
    }
  });
  // y = ((x - mean_hi) - mean_lo) * scale + bias: the mean split into two T values keeps the
  // subtraction exact when |mean| >> std (x - mean_hi is exact by Sterbenz's lemma).
  std::vector<T> scale(static_cast<size_t>(C)), bias(static_cast<size_t>(C));
  std::vector<T> mhi(static_cast<size_t>(C)), mlo(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    double t1 = 0, t2 = 0;
    for (int ci = 0; ci < rc.chunks; ++ci) {
      t1 += s1[ci * C + c];
      t2 += s2[ci * C + c];
    }
    const double dm = t1 / static_cast<double>(M);
    const double var = std::max(0.0, t2 / static_cast<double>(M) - dm * dm);
    const double mean = static_cast<double>(shift[c]) + dm;
    mean_out[c] = static_cast<S>(mean);
    invstd_out[c] = static_cast<S>(1.0 / std::sqrt(var + eps));
    run.update(c, mean, var, M);
    const double sc = (w ? static_cast<double>(w[c]) : 1.0) / std::sqrt(var + eps);
    scale[c] = static_cast<T>(sc);
    bias[c] = static_cast<T>(b ? static_cast<double>(b[c]) : 0.0);
    mhi[c] = static_cast<T>(mean);
    mlo[c] = static_cast<T>(mean - static_cast<double>(mhi[c]));
  }
  for_each_row(M, C, [&](int64_t m) {
    const T* xr = x + m * C;
    T* yr = y + m * C;
    if (res) {
      const T* rr = res + m * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = act(((xr[c] - mhi[c]) - mlo[c]) * scale[c] + bias[c] + rr[c]);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = act(((xr[c] - mhi[c]) - mlo[c]) * scale[c] + bias[c]);
    }
  });
}

// The batch norm backward over [M, C] with the gradient at its output read through gy(i), i the
// flat index: the plain gradient, or the gradient masked by the ReLU that followed.
template <class T, class S, class GradAt>
void batch_norm_backward_rows(T* gx, T* gw, T* gb, const T* x, const T* w, const S* mean, const S* invstd, int64_t M,
                              int64_t C, GradAt gy) {
  const RowChunks rc(M, C);
  std::vector<double> sdy(static_cast<size_t>(rc.chunks * C), 0.0), sdyx(static_cast<size_t>(rc.chunks * C), 0.0);
  std::vector<T> mean_t(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) mean_t[c] = static_cast<T>(mean[c]);
  channel_sums2<T>(rc, M, C, sdy.data(), sdyx.data(), [&](int64_t m, T* a1, T* a2) {
    const T* xr = x + m * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const T g = gy(m * C + c);
      a1[c] += g;
      a2[c] += g * (xr[c] - mean_t[c]);
    }
  });
  std::vector<T> k1(static_cast<size_t>(C)), k2(static_cast<size_t>(C)), k3(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    double t1 = 0, t2 = 0;
    for (int ci = 0; ci < rc.chunks; ++ci) {
      t1 += sdy[ci * C + c];
      t2 += sdyx[ci * C + c];
    }
    const double is = static_cast<double>(invstd[c]);
    if (gb) gb[c] = static_cast<T>(t1);
    if (gw) gw[c] = static_cast<T>(t2 * is);
    // dx = w * invstd * (dy - mean(dy) - (x - mean) * invstd^2 * mean(dy * (x - mean)))
    const double wc = w ? static_cast<double>(w[c]) : 1.0;
    const double inv_m = 1.0 / static_cast<double>(M);
    k1[c] = static_cast<T>(wc * is);                             // times dy
    k2[c] = static_cast<T>(wc * is * is * is * t2 * inv_m);      // times (x - mean)
    k3[c] = static_cast<T>(wc * is * t1 * inv_m);                // constant
  }
  if (!gx) return;
  for_each_row(M, C, [&](int64_t m) {
    const T* xr = x + m * C;
    T* dr = gx + m * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) dr[c] = gy(m * C + c) * k1[c] - (xr[c] - mean_t[c]) * k2[c] - k3[c];
  });
}

// relu_out, when not null, masks gy where it is <= 0 (the ReLU of batch_norm_act) as gy is read;
// with `masked` too, the masked gradient is written there first and read back.
template <class T, class S>
void batch_norm_backward_typed(T* gx, T* gw, T* gb, const T* gy, const T* x, const T* w, const S* mean,
                               const S* invstd, const T* relu_out, T* masked, int64_t M, int64_t C) {
  if (relu_out && masked) {
    for_each_row(M, C, [&](int64_t m) {
#pragma omp simd
      for (int64_t i = m * C; i < (m + 1) * C; ++i) masked[i] = ReluBackwardF()(gy[i], relu_out[i]);
    });
    return batch_norm_backward_rows<T, S>(gx, gw, gb, x, w, mean, invstd, M, C, [&](int64_t i) { return masked[i]; });
  }
  if (relu_out)
    return batch_norm_backward_rows<T, S>(gx, gw, gb, x, w, mean, invstd, M, C,
                                          [&](int64_t i) { return ReluBackwardF()(gy[i], relu_out[i]); });
  batch_norm_backward_rows<T, S>(gx, gw, gb, x, w, mean, invstd, M, C, [&](int64_t i) { return gy[i]; });
}

// gh = f(gy, x * scale + shift), per channel scale/shift: the activation's gradient at a batch
// norm's output, recomputed from the batch norm's input in the same pass that reads gy.
template <class T>
void batch_norm_act_grad_typed(T* gh, const T* gy, const T* x, const T* scale, const T* shift, int64_t M, int64_t C,
                               BinaryOp bwd) {
  auto run = [&](auto f) {
    for_each_row(M, C, [&](int64_t m) {
      const T* xr = x + m * C;
      const T* gr = gy + m * C;
      T* hr = gh + m * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) hr[c] = f(gr[c], xr[c] * scale[c] + shift[c]);
    });
  };
  switch (bwd) {
    case BinaryOp::silu_backward: return run(SiluBackwardF(OpParams{}));
    case BinaryOp::relu6_backward: return run(Relu6BackwardF(OpParams{}));
    default: throw ValueError(wanwu::detail::str("batch_norm_act backward: no fused gradient for ", op_name(bwd)));
  }
}

// y = act(x * scale + shift + res) per channel (res may be null): batch norm in eval mode.
template <class T, class Act>
void batch_norm_apply_typed(T* y, const T* x, const T* scale, const T* shift, const T* res, int64_t M, int64_t C,
                            Act act) {
  for_each_row(M, C, [&](int64_t m) {
    const T* xr = x + m * C;
    T* yr = y + m * C;
    if (res) {
      const T* rr = res + m * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = act(xr[c] * scale[c] + shift[c] + rr[c]);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = act(xr[c] * scale[c] + shift[c]);
    }
  });
}

// Sum of f(m) over m in [0, n) with 64 bytes x 2 of independent lanes: the vector loop keeps
// several accumulators in flight. With one, a row reduction is a chain of dependent adds and
// latency-bound (a 768-wide row: 96 adds of 3+ cycles each, longer than reading the row).
template <class T, class F>
WANWU_ALWAYS_INLINE T lane_sum(int64_t n, F f) {
  constexpr int L = 128 / static_cast<int>(sizeof(T));
  T acc[L] = {};
  int64_t m = 0;
  for (; m + L <= n; m += L) {
#pragma omp simd
    for (int j = 0; j < L; ++j) acc[j] += f(m + j);
  }
  T s = 0;
  for (; m < n; ++m) s += f(m);
  for (int j = 0; j < L; ++j) s += acc[j];
  return s;
}

// Two sums in one pass: f(m) sets (a, b) for element m.
template <class T, class F>
WANWU_ALWAYS_INLINE void lane_sum2(int64_t n, F f, T& sa, T& sb) {
  constexpr int L = 64 / static_cast<int>(sizeof(T));
  T acc_a[L] = {}, acc_b[L] = {};
  int64_t m = 0;
  for (; m + L <= n; m += L) {
#pragma omp simd
    for (int j = 0; j < L; ++j) {
      T a, b;
      f(m + j, a, b);
      acc_a[j] += a;
      acc_b[j] += b;
    }
  }
  sa = 0, sb = 0;
  for (; m < n; ++m) {
    T a, b;
    f(m, a, b);
    sa += a;
    sb += b;
  }
  for (int j = 0; j < L; ++j) sa += acc_a[j], sb += acc_b[j];
}

template <class T, class S>
void layer_norm_forward_typed(T* y, S* mean_out, S* rstd_out, const T* x, const T* w, const T* b, int64_t R,
                              int64_t M, double eps) {
  // Rows are short (a transformer's width) and in cache: two reductions for the statistics (the
  // mean of x - x[0], so that a large common offset does not cost precision, then squared
  // deviations from the mean — no cancellation), one pass for the output.
  parallel_for(R, std::max<int64_t>(1, 16384 / std::max<int64_t>(M, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const T* xr = x + r * M;
      const T x0 = xr[0];
      const T s = lane_sum<T>(M, [&](int64_t m) { return xr[m] - x0; });
      const T d = s / static_cast<T>(M);  // the mean is x0 + d; deviations are (x - x0) - d
      const T v = lane_sum<T>(M, [&](int64_t m) {
        const T e = (xr[m] - x0) - d;
        return e * e;
      });
      const T rstd = static_cast<T>(1.0 / std::sqrt(static_cast<double>(v) / static_cast<double>(M) + eps));
      mean_out[r] = static_cast<S>(static_cast<double>(x0) + static_cast<double>(d));
      rstd_out[r] = static_cast<S>(rstd);
      T* yr = y + r * M;
      if (w && b) {
#pragma omp simd
        for (int64_t m = 0; m < M; ++m) yr[m] = ((xr[m] - x0) - d) * rstd * w[m] + b[m];
      } else {
        for (int64_t m = 0; m < M; ++m) yr[m] = ((xr[m] - x0) - d) * rstd * (w ? w[m] : T(1)) + (b ? b[m] : T(0));
      }
    }
  });
}

template <class T, class S>
void layer_norm_backward_typed(T* gx, T* gw, T* gb, const T* gy, const T* x, const T* w, const S* mean,
                               const S* rstd, int64_t R, int64_t M) {
  const int chunks = parallel_chunks(R, std::max<int64_t>(1, 16384 / std::max<int64_t>(M, 1)));
  const int64_t per = (R + chunks - 1) / chunks;
  const bool want_wb = gw || gb;
  std::vector<T> pw(want_wb ? static_cast<size_t>(chunks * M) : 0, T(0));
  std::vector<T> pb(want_wb ? static_cast<size_t>(chunks * M) : 0, T(0));
  std::vector<T> ones;
  if (!w) ones.assign(static_cast<size_t>(M), T(1));
  const T* wv = w ? w : ones.data();
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t ci = cb; ci < ce; ++ci) {
      T* aw = want_wb ? pw.data() + ci * M : nullptr;
      T* ab = want_wb ? pb.data() + ci * M : nullptr;
      for (int64_t r = ci * per; r < std::min(R, (ci + 1) * per); ++r) {
        const T* xr = x + r * M;
        const T* gr = gy + r * M;
        const T mu = static_cast<T>(mean[r]), rs = static_cast<T>(rstd[r]);
        if (want_wb) {
#pragma omp simd
          for (int64_t m = 0; m < M; ++m) {
            aw[m] += gr[m] * ((xr[m] - mu) * rs);
            ab[m] += gr[m];
          }
        }
        if (!gx) continue;
        // sum(g) and sum(g * xhat) with g = dy * w
        T a, bsum;
        lane_sum2<T>(
            M,
            [&](int64_t m, T& ga, T& gb) {
              ga = gr[m] * wv[m];
              gb = ga * ((xr[m] - mu) * rs);
            },
            a, bsum);
        const T inv_m = T(1) / static_cast<T>(M);
        const T ka = a * inv_m, kb = bsum * inv_m;
        T* dr = gx + r * M;
#pragma omp simd
        for (int64_t m = 0; m < M; ++m) dr[m] = rs * (gr[m] * wv[m] - ka - (xr[m] - mu) * rs * kb);
      }
    }
  });
  if (!want_wb) return;
  for (int64_t m = 0; m < M; ++m) {
    T tw = 0, tb = 0;
    for (int ci = 0; ci < chunks; ++ci) {
      tw += pw[ci * M + m];
      tb += pb[ci * M + m];
    }
    if (gw) gw[m] = tw;
    if (gb) gb[m] = tb;
  }
}

}  // namespace wanwu::cpu
