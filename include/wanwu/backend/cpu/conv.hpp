// CPU 2-D convolution, NHWC (DESIGN D4), forward and both backwards.
//
// - 1x1, stride 1, no padding, one group: the whole batch is one GEMM ([N*H*W, C] x [O, C]^T),
//   because NHWC makes the activations a row-major matrix already. The forward and input
//   gradient run gemm_narrow.hpp's kernel (the weight packed once, the activations read in
//   place) unless the weight is too large for it and the rows many; a long weight gradient
//   splits its inner dimension and sums the parts (see kWeightGradSplitRows).
// - Forward of any other ungrouped, undilated convolution (strided 3x3 and 1x1, the 7x7 stem):
//   an implicit GEMM (conv_implicit.hpp) that reads the input's KH contiguous runs per output
//   pixel in place, with no column matrix.
// - General case (groups, dilation; both gradients): im2col of a tile of output pixels into a
//   bounded buffer (at most kColBytes), then one GEMM per tile and group; the weight
//   [O, kH, kW, C/g] is already the [O, K] matrix that multiplies a column row in (kh, kw, c) order.
// - 3x3, stride 1, one group, f32, 64+ channels each way and enough output tiles: Winograd
//   F(4x4, 3x3) or F(2x2, 3x3) (winograd.hpp), 4x or 2.25x fewer multiplications, for the forward
//   pass and the input gradient; the weight gradient stays on im2col.
// - Depthwise (groups == C): direct register-blocked kernels (depthwise.hpp).
// With autograd off, the packed and transformed weights are kept across calls (weight_cache.hpp).
// Batches with at least as many images as threads are split into whole images per thread
// (single-threaded GEMMs, no synchronization); smaller batches run with OpenBLAS's threads.
// Column tiles span the images of a part, so 7x7 and 14x14 maps still give GEMMs of 256+ rows.
#pragma once

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "blas.hpp"
#include "conv_geom.hpp"
#include "conv_implicit.hpp"
#include "depthwise.hpp"
#include "gemm_narrow.hpp"
#include "parallel.hpp"
#include "scratch.hpp"
#include "weight_cache.hpp"
#include "winograd.hpp"

namespace wanwu::cpu {

// An im2col tile aims at ~1 MiB (it stays in L2 between im2col and the GEMM that reads it) but
// keeps at least `min_rows` rows so the GEMM stays efficient. Tiles are rows of the batch's
// [N * Ho * Wo, K] column matrix and span images: at 7x7 or 14x14 a tile per image would give
// GEMMs of 49 or 196 rows, each repacking the whole weight matrix (forward, input gradient) or
// reading and writing the whole weight-gradient accumulator (weight gradient, where 512 rows is
// the floor: its GEMM's inner dimension is the tile).
inline constexpr size_t kColBytes = size_t(1) << 20;

inline int64_t conv_tile_rows(const ConvGeom& g, size_t elem, int64_t min_rows = 256) {
  const int64_t per_row = std::max<int64_t>(1, g.K * static_cast<int64_t>(elem));
  return std::max<int64_t>(min_rows, static_cast<int64_t>(kColBytes) / per_row);
}

// col[r - r0][(kh, kw, c)] = x[n][ih][iw][group * Cg + c] (0 outside the image). With one group
// and dilation 1 the KW taps of a kernel row are one contiguous run of KW * C values, copied at
// once (the 7x7 stem with C = 3 would otherwise do 49 tiny copies per output pixel).
template <class T>
void im2col(const T* x, const ConvGeom& g, int64_t group, int64_t r0, int64_t r1, T* col) {
  const bool runs = g.G == 1 && g.p.dilation_w == 1;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t oh = r / g.Wo, ow = r % g.Wo;
    T* dst = col + (r - r0) * g.K;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = g.in_row(oh, kh);
      if (ih < 0 || ih >= g.H) {
        std::memset(dst, 0, sizeof(T) * g.KW * g.Cg);
        dst += g.KW * g.Cg;
        continue;
      }
      const T* xrow = x + ih * g.W * g.C + group * g.Cg;
      if (runs) {
        const int64_t iw0 = g.in_col(ow, 0);
        const int64_t a = std::clamp<int64_t>(-iw0, 0, g.KW), bnd = std::clamp<int64_t>(g.W - iw0, a, g.KW);
        if (a > 0) std::memset(dst, 0, sizeof(T) * a * g.C);
        if (bnd > a) std::memcpy(dst + a * g.C, xrow + (iw0 + a) * g.C, sizeof(T) * (bnd - a) * g.C);
        if (bnd < g.KW) std::memset(dst + bnd * g.C, 0, sizeof(T) * (g.KW - bnd) * g.C);
        dst += g.KW * g.C;
        continue;
      }
      for (int64_t kw = 0; kw < g.KW; ++kw, dst += g.Cg) {
        const int64_t iw = g.in_col(ow, kw);
        if (iw < 0 || iw >= g.W) std::memset(dst, 0, sizeof(T) * g.Cg);
        else std::memcpy(dst, xrow + iw * g.C, sizeof(T) * g.Cg);
      }
    }
  }
}

// x[n][ih][iw][group * Cg + c] += col[r - r0][(kh, kw, c)]
template <class T>
void col2im_add(const T* col, const ConvGeom& g, int64_t group, int64_t r0, int64_t r1, T* x) {
  const bool runs = g.G == 1 && g.p.dilation_w == 1;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t oh = r / g.Wo, ow = r % g.Wo;
    const T* src = col + (r - r0) * g.K;
    for (int64_t kh = 0; kh < g.KH; ++kh, src += g.KW * g.Cg) {
      const int64_t ih = g.in_row(oh, kh);
      if (ih < 0 || ih >= g.H) continue;
      T* xrow = x + ih * g.W * g.C + group * g.Cg;
      if (runs) {
        const int64_t iw0 = g.in_col(ow, 0);
        const int64_t a = std::clamp<int64_t>(-iw0, 0, g.KW), bnd = std::clamp<int64_t>(g.W - iw0, a, g.KW);
        T* d = xrow + (iw0 + a) * g.C;
        const T* sp = src + a * g.C;
        const int64_t len = (bnd - a) * g.C;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) d[i] += sp[i];
        continue;
      }
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = g.in_col(ow, kw);
        if (iw < 0 || iw >= g.W) continue;
        T* d = xrow + iw * g.C;
        const T* sp = src + kw * g.Cg;
#pragma omp simd
        for (int64_t c = 0; c < g.Cg; ++c) d[c] += sp[c];
      }
    }
  }
}

// im2col / col2im_add over rows [r0, r1) of the whole batch, which may span images.
template <class T>
void im2col_rows(const T* x, const ConvGeom& g, int64_t group, int64_t r0, int64_t r1, T* col) {
  const int64_t P = g.Ho * g.Wo;
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / P, p0 = r % P, p1 = std::min(P, p0 + (r1 - r));
    im2col(x + n * g.H * g.W * g.C, g, group, p0, p1, col + (r - r0) * g.K);
    r += p1 - p0;
  }
}
template <class T>
void col2im_add_rows(const T* col, const ConvGeom& g, int64_t group, int64_t r0, int64_t r1, T* x) {
  const int64_t P = g.Ho * g.Wo;
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / P, p0 = r % P, p1 = std::min(P, p0 + (r1 - r));
    col2im_add(col + (r - r0) * g.K, g, group, p0, p1, x + n * g.H * g.W * g.C);
    r += p1 - p0;
  }
}

// A weight gradient is split into per-thread partial sums only when each thread's part has at
// least this many output rows (the GEMM's inner dimension): with fewer, the single-threaded GEMMs
// over a short inner dimension lose more than OpenBLAS's threading of one GEMM does. Measured on
// ResNet-50's shapes against one threaded GEMM: 196 rows per part 10-40% slower, 784 rows within
// noise, 3136 rows 20-40% faster, 12544 rows 1.3-1.8x faster.
inline constexpr int64_t kWeightGradSplitRows = 1024;

// The batch in parts of whole images: one per thread when there are at least as many images as
// threads (single-threaded GEMMs, no synchronization; whole images, so that two threads never add
// into the same input rows), else one part run with OpenBLAS's threads. `min_rows` is the fewest
// output rows a part may have for the batch to be split at all.
struct ImageParts {
  int64_t per, count;  // images per part; parts, each holding at least one image
  explicit ImageParts(const ConvGeom& g, int64_t min_rows = 0) {
    const int nt = max_threads();
    const bool split = g.N >= nt && nt > 1 && g.N * g.Ho * g.Wo >= min_rows * nt;
    const int64_t chunks = split ? parallel_chunks(g.N, 1) : 1;
    per = (g.N + chunks - 1) / chunks;
    count = per > 0 ? (g.N + per - 1) / per : 0;
  }
};

// Calls body(part, part_first_row, r0, r1, col) for every tile of `tile` output rows of each
// part, in order within a part, with a column buffer for the tile.
template <class T, class Body>
void for_each_tile(const ConvGeom& g, const ImageParts& ip, int64_t tile, Body&& body) {
  const int64_t P = g.Ho * g.Wo;
  auto run = [&](int64_t pi, T* col) {
    const int64_t a = pi * ip.per * P, b = std::min(g.N, (pi + 1) * ip.per) * P;
    for (int64_t r0 = a; r0 < b; r0 += tile) body(pi, a, r0, std::min(b, r0 + tile), col);
  };
  // One buffer per part, taken before the threads start: buffers taken inside them would need one
  // or two cached blocks depending on how the threads happened to overlap, and `wanwu serve`
  // would find itself short of a block under load that its warm-up never needed.
  const int64_t col_elems = std::min(tile, ip.per * P) * g.K;
  const Scratch<T> cols(ip.count * col_elems);
  if (ip.count > 1) {
    parallel_for(ip.count, 1, [&](int64_t pb, int64_t pe) {
      for (int64_t pi = pb; pi < pe; ++pi) run(pi, cols.data() + pi * col_elems);
    });
  } else if (ip.count == 1) {
    run(0, cols.data());
  }
}

// gw[i] += the parts' partial buffers (each `size` long), in parallel over i.
template <class T>
void add_partials(T* gw, const T* partial, int64_t parts, int64_t size) {
  parallel_for(size, 16384, [&](int64_t b, int64_t e) {
    for (int64_t pi = 0; pi < parts; ++pi) {
      const T* src = partial + pi * size;
#pragma omp simd
      for (int64_t i = b; i < e; ++i) gw[i] += src[i];
    }
  });
}

// gw[O, C] = gy[M, O]^T x x[M, C], the inner dimension M split over the threads when each part
// keeps kWeightGradSplitRows rows; part 0 writes gw, the others scratch summed into it.
template <class T>
void gemm_weight_grad_split(int64_t M, int64_t O, int64_t C, const T* gy, const T* x, T* gw) {
  const int parts = parallel_chunks(M, kWeightGradSplitRows);
  if (parts <= 1) {
    blas_gemm<T>(true, false, O, C, M, T(1), gy, O, x, C, T(0), gw, C);
    return;
  }
  const int64_t per = (M + parts - 1) / parts, wsize = O * C;
  const Scratch<T> partial((parts - 1) * wsize);
  parallel_for(parts, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t pi = pb; pi < pe; ++pi) {
      const int64_t r0 = pi * per, r1 = std::min(M, r0 + per);
      T* acc = pi == 0 ? gw : partial.data() + (pi - 1) * wsize;
      blas_gemm<T>(true, false, O, C, r1 - r0, T(1), gy + r0 * O, O, x + r0 * C, C, T(0), acc, C);
    }
  });
  add_partials(gw, partial.data(), parts - 1, wsize);
}

// ---------------------------------------------------------------- general (GEMM) path

// Each group's [Og, K] weight block as a K' x N matrix B for gemm_narrow (B = w^T with `trans`,
// K' = K, N = Og; else B = w, K' = Og, N = K), packed once for all column tiles when the kernel
// applies (kept across calls when the weight may be cached).
template <class T>
struct PackedGroups {
  bool packed;
  int64_t size;
  std::optional<PreparedOrScratch<T>> buf;
  // `rows`: the most rows one GEMM will have (B of any size is packed for fewer than
  // kNarrowFewRows). `wkey`: the weight tensor, whose packed form may be kept across calls
  // (weight_cache.hpp).
  PackedGroups(const ConvGeom& g, const T* w, int64_t kk, int64_t n, bool trans, int64_t rows,
               const Tensor* wkey = nullptr)
      : packed(gemm_narrow_applies<T>(rows, n, kk)), size(packed ? gemm_narrow_packed_size<T>(kk, n) : 0) {
    if (!packed) return;
    const PreparedForm form{static_cast<int64_t>(PreparedKind::narrow_packed), kk, n, trans ? 1 : 0, g.G};
    buf.emplace(wkey, form, g.G * size, [&](T* dst) {
      for (int64_t grp = 0; grp < g.G; ++grp) gemm_narrow_pack(w + grp * g.Og * g.K, g.K, trans, kk, n, dst + grp * size);
    });
  }
  const T* group(int64_t grp) const { return buf->data() + grp * size; }
};

// `wkey`, when given, is the weight tensor: its packed or transformed forms may then be kept
// across calls (weight_cache.hpp).
template <class T>
void conv_forward_typed(T* out, const T* x, const T* w, const T* bias, const ConvGeom& g,
                        const Tensor* wkey = nullptr) {
  if (g.depthwise()) return depthwise_forward(out, x, w, bias, g);
  const int64_t P = g.Ho * g.Wo;
  auto fill_bias = [&](T* dst, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * g.O, bias, sizeof(T) * g.O);
  };
  const T beta = bias ? T(1) : T(0);
  if (g.pointwise()) {  // the batch is one [N*H*W, C] matrix
    const int64_t rows = g.N * P;
    const PackedGroups<T> wp(g, w, g.C, g.O, /*trans=*/true, rows, wkey);  // one group: B = w^T [C, O]
    if (wp.packed) return gemm_narrow_packed<T>(rows, g.O, g.C, x, g.C, wp.group(0), bias, out, g.O);
    if (bias) {
      parallel_for(rows, 4096, [&](int64_t b, int64_t e) { fill_bias(out + b * g.O, e - b); });
    }
    blas_gemm<T>(false, true, rows, g.O, g.C, T(1), x, g.C, w, g.C, beta, out, g.O);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (winograd_applies(g)) return winograd_forward(out, x, w, bias, g, wkey);
  }
  if (conv_implicit_applies<T>(g)) {
    const PackedGroups<T> wp(g, w, g.K, g.O, /*trans=*/true, g.N * P, wkey);  // B = w^T [K, O]
    return conv_implicit_forward(out, x, wp.group(0), bias, g);
  }
  // Each group's weight [Og, K], as B = w^T, packed once for all tiles.
  const ImageParts ip(g);
  const int64_t tile = conv_tile_rows(g, sizeof(T));
  const PackedGroups<T> wp(g, w, g.K, g.Og, /*trans=*/true, std::min(tile, ip.per * P), wkey);
  for_each_tile<T>(g, ip, tile, [&](int64_t, int64_t, int64_t r0, int64_t r1, T* col) {
    const int64_t R = r1 - r0;
    if (bias && !wp.packed) fill_bias(out + r0 * g.O, R);
    for (int64_t grp = 0; grp < g.G; ++grp) {
      im2col_rows(x, g, grp, r0, r1, col);
      T* dst = out + r0 * g.O + grp * g.Og;
      if (wp.packed) gemm_narrow_packed<T>(R, g.Og, g.K, col, g.K, wp.group(grp), bias ? bias + grp * g.Og : nullptr, dst, g.O);
      else blas_gemm<T>(false, true, R, g.Og, g.K, T(1), col, g.K, w + grp * g.Og * g.K, g.K, beta, dst, g.O);
    }
  });
}

template <class T>
void conv_backward_input_typed(T* gx, const T* gy, const T* w, const ConvGeom& g) {
  if (g.depthwise()) return depthwise_backward_input(gx, gy, w, g);
  const int64_t P = g.Ho * g.Wo;
  if (g.pointwise()) {  // [N*H*W, O] x [O, C]
    const PackedGroups<T> wp(g, w, g.O, g.C, /*trans=*/false, g.N * P);  // B = w [O, C]
    if (wp.packed) return gemm_narrow_packed<T>(g.N * P, g.C, g.O, gy, g.O, wp.group(0), nullptr, gx, g.C);
    blas_gemm<T>(false, false, g.N * P, g.C, g.O, T(1), gy, g.O, w, g.C, T(0), gx, g.C);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (winograd_input_grad_applies(g)) return winograd_backward_input(gx, gy, w, g);
  }
  std::memset(gx, 0, sizeof(T) * static_cast<size_t>(g.N * g.H * g.W * g.C));
  const ImageParts ip(g);
  const int64_t tile = conv_tile_rows(g, sizeof(T));
  const PackedGroups<T> wp(g, w, g.Og, g.K, /*trans=*/false, std::min(tile, ip.per * P));  // B = each group's weight [Og, K]
  for_each_tile<T>(g, ip, tile, [&](int64_t, int64_t, int64_t r0, int64_t r1, T* col) {
    for (int64_t grp = 0; grp < g.G; ++grp) {
      const T* src = gy + r0 * g.O + grp * g.Og;
      if (wp.packed) gemm_narrow_packed<T>(r1 - r0, g.K, g.Og, src, g.O, wp.group(grp), nullptr, col, g.K);
      else blas_gemm<T>(false, false, r1 - r0, g.K, g.Og, T(1), src, g.O, w + grp * g.Og * g.K, g.K, T(0), col, g.K);
      col2im_add_rows(col, g, grp, r0, r1, gx);
    }
  });
}

template <class T>
void conv_backward_weight_typed(T* gw, const T* gy, const T* x, const ConvGeom& g) {
  if (g.depthwise()) return depthwise_backward_weight(gw, gy, x, g);
  const int64_t P = g.Ho * g.Wo;
  if (g.pointwise()) {  // [O, N*H*W] x [N*H*W, C]
    gemm_weight_grad_split<T>(g.N * P, g.O, g.C, gy, x, gw);
    return;
  }
  const int64_t wsize = g.O * g.K;
  if (g.N * P == 0) {  // no output positions: the weight gets no gradient
    std::memset(gw, 0, sizeof(T) * static_cast<size_t>(wsize));
    return;
  }
  // Part 0 accumulates straight into gw, the others into scratch summed at the end; each part's
  // first GEMM per group overwrites (beta 0), so nothing is zero-filled.
  const ImageParts ip(g, kWeightGradSplitRows);
  const int64_t parts = ip.count;
  const Scratch<T> partial((parts - 1) * wsize);
  for_each_tile<T>(g, ip, conv_tile_rows(g, sizeof(T), 512), [&](int64_t pi, int64_t a, int64_t r0, int64_t r1, T* col) {
    T* acc = pi == 0 ? gw : partial.data() + (pi - 1) * wsize;
    const T beta = r0 == a ? T(0) : T(1);
    for (int64_t grp = 0; grp < g.G; ++grp) {
      im2col_rows(x, g, grp, r0, r1, col);
      blas_gemm<T>(true, false, g.Og, g.K, r1 - r0, T(1), gy + r0 * g.O + grp * g.Og, g.O, col, g.K, beta,
                   acc + grp * g.Og * g.K, g.K);
    }
  });
  if (parts > 1) add_partials(gw, partial.data(), parts - 1, wsize);
}

}  // namespace wanwu::cpu
