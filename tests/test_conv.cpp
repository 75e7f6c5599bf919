// conv2d: gradient checks for every option (stride, dilation, groups, depthwise with multiplier,
// "same"/"valid" padding, 1x1, bias, batched and single images), f32/f16/bf16 against f64,
// the tiled im2col path on a large image, and argument errors. Values against PyTorch are in
// tests/parity (test_parity_ops).
#include <thread>

#include "harness.hpp"
#include "wanwu/backend/cpu/conv_implicit.hpp"  // conv_implicit_applies: which shapes take that path
#include "wanwu/backend/cpu/winograd.hpp"        // winograd_applies: which shapes take that path

using namespace wanwu;
using wt::gradcheck;
using wt::spread;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: conv2d options") {
  // x [N, H, W, C], w [O, kH, kW, C/groups]
  gradcheck([](const V& v) { return conv2d(v[0], v[1], v[2], 1, 1); },
            {spread({2, 5, 4, 3}), spread({4, 3, 3, 3}, -1, 1, 3), spread({4}, -1, 1, 4)});
  gradcheck([](const V& v) { return conv2d(v[0], v[1], Tensor(), 2, 0); },
            {spread({1, 7, 6, 2}), spread({3, 3, 3, 2}, -1, 1, 3)});
  gradcheck([](const V& v) { return conv2d(v[0], v[1], Tensor(), 1, 2, 2); },
            {spread({2, 6, 6, 2}), spread({2, 3, 3, 2}, -1, 1, 3)});
  gradcheck([](const V& v) { return conv2d(v[0], v[1], v[2], 1, 1, 1, 2); },
            {spread({2, 4, 4, 4}), spread({6, 3, 3, 2}, -1, 1, 3), spread({6}, -1, 1, 4)});
  gradcheck([](const V& v) { return conv2d(v[0], v[1], v[2], 2, 1, 1, 3); },  // depthwise
            {spread({2, 5, 5, 3}), spread({3, 3, 3, 1}, -1, 1, 3), spread({3}, -1, 1, 4)});
  gradcheck([](const V& v) { return conv2d(v[0], v[1], Tensor(), 1, 1, 1, 2); },  // depthwise multiplier 2
            {spread({1, 4, 4, 2}), spread({4, 3, 3, 1}, -1, 1, 3)});
  gradcheck([](const V& v) { return conv2d(v[0], v[1], Tensor(), 1, Padding2d::same()); },  // even kernel
            {spread({1, 5, 5, 2}), spread({2, 4, 4, 2}, -1, 1, 3)});
  gradcheck([](const V& v) { return conv2d(v[0], v[1], v[2], 1, Padding2d::valid()); },  // 1x1 pointwise
            {spread({2, 3, 3, 4}), spread({5, 1, 1, 4}, -1, 1, 3), spread({5}, -1, 1, 4)});
  gradcheck([](const V& v) { return conv2d(v[0], v[1], Tensor(), {2, 1}, {0, 1}); },  // rectangular
            {spread({2, 5, 4, 2}), spread({3, 1, 3, 2}, -1, 1, 3)});
  gradcheck([](const V& v) { return conv2d(v[0].transpose(1, 2), v[1], Tensor(), 1, 1); },  // strided input
            {spread({1, 4, 3, 2}), spread({2, 3, 3, 2}, -1, 1, 3)});
}

TEST_CASE("conv2d in f32, f16 and bf16 follows f64, including the tiled im2col path") {
  // 130x130 with a 3x3 kernel and 16 channels: more output pixels than one im2col tile holds
  Generator g(3);
  const Tensor x = randn({2, 130, 130, 16}, DType::f64, &g), w = randn({8, 3, 3, 16}, DType::f64, &g) * 0.2;
  const Tensor b = randn({8}, DType::f64, &g);
  const Tensor ref = conv2d(x, w, b, 1, 1);
  wt::check_close(conv2d(x.to(DType::f32), w.to(DType::f32), b.to(DType::f32), 1, 1), ref, 1e-4, 1e-4);
  const Tensor xs = x.narrow(1, 0, 20).narrow(2, 0, 20);
  const Tensor ref_s = conv2d(xs, w, b, 2, 1);
  wt::check_close(conv2d(xs.to(DType::f16), w.to(DType::f16), b.to(DType::f16), 2, 1).to(DType::f64), ref_s, 1e-2, 2e-2);
  wt::check_close(conv2d(xs.to(DType::bf16), w.to(DType::bf16), b.to(DType::bf16), 2, 1).to(DType::f64), ref_s, 4e-2, 1e-1);
  // the depthwise kernel on a batch larger than the thread count
  const Tensor wd = randn({16, 3, 3, 1}, DType::f64, &g);
  wt::check_close(conv2d(xs.to(DType::f32), wd.to(DType::f32), Tensor(), 1, 1, 1, 16), conv2d(xs, wd, Tensor(), 1, 1, 1, 16),
                  1e-5, 1e-5);
}

// out[n][oh][ow][o] = b[o] + sum over (kh, kw, c) of x[n][ih][iw][c] w[o][kh][kw][c]: the definition,
// one multiply-add at a time in f64 (one group, dilation 1).
std::vector<double> direct_conv(const Tensor& x, const Tensor& w, const Tensor& b, int64_t sh, int64_t sw, int64_t pt,
                                int64_t pl, int64_t Ho, int64_t Wo) {
  const auto xv = wt::values(x), wv = wt::values(w);
  const auto bv = b.defined() ? wt::values(b) : std::vector<double>();
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t O = w.size(0), KH = w.size(1), KW = w.size(2);
  std::vector<double> out(static_cast<size_t>(N * Ho * Wo * O));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        for (int64_t o = 0; o < O; ++o) {
          double acc = bv.empty() ? 0.0 : bv[o];
          for (int64_t kh = 0; kh < KH; ++kh)
            for (int64_t kw = 0; kw < KW; ++kw) {
              const int64_t ih = oh * sh - pt + kh, iw = ow * sw - pl + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              for (int64_t c = 0; c < C; ++c)
                acc += xv[((n * H + ih) * W + iw) * C + c] * wv[((o * KH + kh) * KW + kw) * C + c];
            }
          out[((n * Ho + oh) * Wo + ow) * O + o] = acc;
        }
  return out;
}

TEST_CASE("conv2d's implicit-GEMM forward (no im2col copy) equals the direct convolution") {
  // The forward of every ungrouped, undilated convolution that is neither 1x1 stride 1 nor
  // Winograd: a 7x7 stride-2 stem with 3 channels, strided 3x3 and 1x1, per-side and asymmetric
  // padding, unequal strides, output channels that leave the last panel (two SIMD vectors: 16 or
  // 32 f32 columns, 8 or 16 f64) partial, fewer
  // output rows than kNarrowFewRows (the threads split the panels) and many (they split the rows,
  // in blocks that span output rows and images), with and without bias, in f64 and f32; the
  // padded copy made for all images at once and, for large images, for one image at a time.
  struct Case {
    Shape x, w;
    Pair2 stride;
    Padding2d pad;
    bool bias;
  };
  const Case cases[] = {
      {{2, 23, 21, 3}, {20, 7, 7, 3}, 2, 3, true},
      {{3, 14, 14, 40}, {37, 3, 3, 40}, 2, 1, false},
      {{1, 9, 9, 24}, {16, 3, 3, 24}, 2, 1, true},  // 25 rows
      {{2, 12, 10, 16}, {33, 1, 1, 16}, 2, 0, true},
      {{2, 11, 13, 8}, {18, 2, 4, 8}, {2, 1}, Padding2d::sides(0, 1, 2, 1), true},
      {{1, 10, 9, 5}, {7, 4, 4, 5}, 1, Padding2d::same(), false},  // stride 1, even kernel: pad 1 / 2
      {{2, 30, 30, 6}, {10, 3, 3, 6}, 1, 1, true},                 // stride 1, too few channels for Winograd
      {{3, 200, 200, 16}, {8, 3, 3, 16}, 2, 1, true},  // f64 images over half of kConvPadBytes: one per copy
      {{2, 9, 9, 512}, {24, 3, 3, 512}, 2, 1, false},    // K = 4608: f32's one running sum per output
  };
  Generator g(31);
  for (const Case& c : cases) {
    CAPTURE(c.x);
    CAPTURE(c.w);
    const Tensor x = randn(c.x, DType::f64, &g), w = randn(c.w, DType::f64, &g) * 0.2;
    const Tensor b = c.bias ? randn({c.w[0]}, DType::f64, &g) : Tensor();
    const Tensor y = conv2d(x, w, b, c.stride, c.pad);
    // the padding the op resolved, read back from the output shape and the definition
    const int64_t sh = c.stride.h, sw = c.stride.w;
    int64_t pt = 0, pl = 0;
    if (c.pad.kind == Padding2d::Kind::per_side) {
      pt = c.pad.top;
      pl = c.pad.left;
    } else if (c.pad.kind == Padding2d::Kind::same) {
      pt = (c.w[1] - 1) / 2;
      pl = (c.w[2] - 1) / 2;
    } else {
      pt = c.pad.pad.h;
      pl = c.pad.pad.w;
    }
    const std::vector<double> ref = direct_conv(x, w, b, sh, sw, pt, pl, y.size(1), y.size(2));
    wt::check_close(y, ref, 1e-12, 1e-12);
    const Tensor yf = conv2d(x.to(DType::f32), w.to(DType::f32), b.defined() ? b.to(DType::f32) : Tensor(), c.stride, c.pad);
    wt::check_close(yf, ref, 1e-4, 1e-4);
    Conv2dParams p;
    p.stride_h = sh;
    p.stride_w = sw;
    p.pad_top = p.pad_bottom = pt;  // which path: padding does not matter to it
    p.pad_left = p.pad_right = pl;
    const cpu::ConvGeom geom(x.shape(), w.shape(), y.shape(), p);
    CHECK(cpu::conv_implicit_applies<float>(geom));
    CHECK_FALSE(cpu::winograd_applies(geom));
  }
  // no input channels: the output is the bias (the im2col path takes it)
  wt::check_close(conv2d(zeros({2, 4, 4, 0}), zeros({3, 3, 3, 0}), tensor({1.0, 2.0, 3.0}), 1, 1),
                  ones({2, 4, 4, 1}) * tensor({1.0, 2.0, 3.0}), 0, 0);
}

TEST_CASE("the GEMM kernel's register block ends short at every row count, on both thread splits") {
  // gemm_narrow's register block is kNarrowRows rows (6, or 12 with AVX-512); the last block of a
  // thread's rows has whatever is left. Output rows 1 to kNarrowRows + 1 (the threads split the
  // column panels) and kNarrowFewRows to kNarrowFewRows + kNarrowRows (they split the rows) leave
  // every remainder, through the 1x1 kernel and the implicit GEMM (a 3x3 stride-2 convolution
  // over one image row), each against its own reference; 37 output channels leave a partial panel.
  const int64_t R = cpu::kNarrowRows, C = 5, O = 37;
  Generator g(47);
  std::vector<int64_t> rows;
  for (int64_t m = 1; m <= R + 1; ++m) rows.push_back(m);
  for (int64_t m = cpu::kNarrowFewRows; m <= cpu::kNarrowFewRows + R; ++m) rows.push_back(m);
  for (const int64_t m : rows) {
    CAPTURE(m);
    const Tensor x = randn({1, 1, m, C}, DType::f64, &g), w = randn({O, 1, 1, C}, DType::f64, &g);
    const Tensor b = randn({O}, DType::f64, &g);
    wt::check_close(conv2d(x, w, b).reshape({m, O}), matmul(x.reshape({m, C}), w.reshape({O, C}).mT()) + b, 1e-12,
                    1e-12);
    const Tensor x2 = randn({1, 1, 2 * m, C}, DType::f64, &g), w3 = randn({O, 3, 3, C}, DType::f64, &g);
    const Tensor y = conv2d(x2, w3, b, 2, 1);
    REQUIRE(y.size(2) == m);
    wt::check_close(y, direct_conv(x2, w3, b, 2, 2, 1, 1, 1, m), 1e-12, 1e-12);
    wt::check_close(conv2d(x2.to(DType::f32), w3.to(DType::f32), b.to(DType::f32), 2, 1),
                    direct_conv(x2, w3, b, 2, 2, 1, 1, 1, m), 1e-4, 1e-4);
  }
}

TEST_CASE("the convolution algorithm search is per thread, scoped by its guard, and leaves results alone") {
  const Tensor x = randn({2, 9, 9, 8}), w = randn({16, 3, 3, 8});
  const Tensor heuristic = conv2d(x, w, Tensor(), 1, 1);
  CHECK(conv_algorithm_search() == ConvAlgorithmSearch::heuristic);
  {
    ConvAlgorithmSearchGuard g(ConvAlgorithmSearch::benchmark);
    CHECK(conv_algorithm_search() == ConvAlgorithmSearch::benchmark);
    std::thread([] { CHECK(conv_algorithm_search() == ConvAlgorithmSearch::heuristic); }).join();
    wt::check_close(conv2d(x, w, Tensor(), 1, 1), heuristic, 0, 0);  // the CPU has one algorithm per shape
  }
  CHECK(conv_algorithm_search() == ConvAlgorithmSearch::heuristic);
}

TEST_CASE("conv2d output shapes") {
  CHECK(conv2d(zeros({2, 224, 224, 3}), zeros({64, 7, 7, 3}), Tensor(), 2, 3).shape() == Shape{2, 112, 112, 64});
  CHECK(conv2d(zeros({1, 56, 56, 64}), zeros({64, 3, 3, 64}), Tensor(), 1, 1).shape() == Shape{1, 56, 56, 64});
  CHECK(conv2d(zeros({1, 56, 56, 64}), zeros({128, 1, 1, 64}), Tensor(), 2).shape() == Shape{1, 28, 28, 128});
  CHECK(conv2d(zeros({1, 10, 9, 4}), zeros({4, 4, 4, 1}), Tensor(), 1, Padding2d::same(), 1, 4).shape() == Shape{1, 10, 9, 4});
  CHECK(conv2d(zeros({1, 10, 9, 4}), zeros({4, 3, 3, 4}), Tensor(), 1, Padding2d::valid(), 2).shape() == Shape{1, 6, 5, 4});
}

TEST_CASE("conv2d argument errors name the op and the shapes") {
  const Tensor x = zeros({1, 8, 8, 4});
  CHECK_THROWS_WITH_AS(conv2d(zeros({8, 8, 4}), zeros({2, 3, 3, 4})), doctest::Contains("conv2d"), ShapeError);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({2, 3, 3, 3})), doctest::Contains("input channels"), ShapeError);
  CHECK_THROWS_AS(conv2d(x, zeros({3, 3, 3, 2}), Tensor(), 1, 0, 1, 2), ShapeError);  // 3 outputs, 2 groups
  CHECK_THROWS_AS(conv2d(x, zeros({2, 3, 3, 4}), Tensor(), 1, 0, 1, 3), ShapeError);  // 3 does not divide 4
  CHECK_THROWS_AS(conv2d(x, zeros({2, 3, 3, 4}), Tensor(), 1, -1), ValueError);
  CHECK_THROWS_AS(conv2d(x, zeros({2, 3, 3, 4}), Tensor(), 2, Padding2d::same()), ValueError);
  CHECK_THROWS_AS(conv2d(x, zeros({2, 9, 9, 4})), ShapeError);  // kernel larger than the input
  CHECK_THROWS_AS(conv2d(x, zeros({2, 3, 3, 4}, DType::f64)), DTypeError);
  CHECK_THROWS_AS(conv2d(x, zeros({2, 3, 3, 4}), zeros({3})), ShapeError);
  CHECK_THROWS_AS(conv2d(x, zeros({2, 3, 3, 4}), Tensor(), 0), ValueError);
}

TEST_CASE("conv2d's column tiles span images: a batch equals its images one at a time, forward and both gradients") {
  // 8 images of 9x10 (90 output rows each) with K = 3 * 3 * 128: a thread's part holds whole
  // images and its tiles of 256 rows (512 for the weight gradient) cross image boundaries, one
  // inside an image. Each image alone has no boundary to cross, so it is the reference; a
  // stride-2 convolution with two groups and odd padding takes the same tiled path.
  struct Case {
    int64_t stride, pad, groups;
  };
  for (const Case c : {Case{1, 1, 1}, Case{2, 1, 2}, Case{1, 0, 1}}) {
    CAPTURE(c.stride);
    CAPTURE(c.groups);
    Generator g(21);
    const Tensor x = randn({8, 9, 10, 128}, DType::f32, &g);
    const Tensor w = randn({16, 3, 3, 128 / c.groups}, DType::f32, &g) * 0.05;
    const Tensor xb = x.clone().requires_grad_(), wb = w.clone().requires_grad_();
    const Tensor yb = conv2d(xb, wb, Tensor(), c.stride, c.pad, 1, c.groups);
    const Tensor dy = randn(yb.shape(), DType::f32, &g);
    yb.backward(dy);
    Tensor gw_sum = zeros(w.shape());
    for (int64_t n = 0; n < 8; ++n) {
      const Tensor xn = x.narrow(0, n, 1).clone().requires_grad_(), wn = w.clone().requires_grad_();
      const Tensor yn = conv2d(xn, wn, Tensor(), c.stride, c.pad, 1, c.groups);
      yn.backward(dy.narrow(0, n, 1).contiguous());
      wt::check_close(yb.narrow(0, n, 1), yn, 1e-5, 1e-5);
      wt::check_close(xb.grad().narrow(0, n, 1), xn.grad(), 1e-5, 1e-5);
      gw_sum = gw_sum + wn.grad();
    }
    wt::check_close(wb.grad(), gw_sum, 1e-4, 1e-4);
  }
}

// A stride-1 convolution of x (f64) with weight w and bias b (may be undefined) in f32 follows f64:
// the output and the input gradient, 2e-4. Returns the geometry, for checks of the path taken.
cpu::ConvGeom check_f32_conv_follows_f64(const Tensor& x, const Tensor& w, const Tensor& b, int64_t pad,
                                         Generator& g, double tol = 2e-4) {
  EnableGradGuard grads;
  const Tensor xr = x.clone().requires_grad_();
  const Tensor ref = conv2d(xr, w, b, 1, pad);
  const Tensor xf = x.to(DType::f32).requires_grad_();
  const Tensor got = conv2d(xf, w.to(DType::f32), b.defined() ? b.to(DType::f32) : Tensor(), 1, pad);
  wt::check_close(got, ref, tol, tol);
  const Tensor dy = randn(ref.shape(), DType::f64, &g);
  ref.backward(dy);
  got.backward(dy.to(DType::f32));
  wt::check_close(xf.grad(), xr.grad(), tol, tol);
  Conv2dParams p;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = pad;
  return cpu::ConvGeom(x.shape(), w.shape(), ref.shape(), p);
}

TEST_CASE("conv2d f32 through Winograd F(4x4, 3x3) and F(2x2, 3x3) follows the f64 direct convolution") {
  // Shapes that take each Winograd tile (3x3, stride 1, one group; F(4x4) from 64 channels and 48
  // tiles of 4x4, F(2x2) from 128 channels and 48 tiles of 2x2): odd and even maps (partial tiles
  // at the right and bottom edges), padding 0, 1 and 2, a batch whose tiles span images, one block
  // and several blocks, channel counts that are not multiples of 8 or 16, with and without bias;
  // transformed weights too large for the packed kernel (740 x 740 channels) go to OpenBLAS.
  struct Case {
    Shape x;
    int64_t O, pad;
    bool bias;
    int tile;
  };
  const Case cases[] = {{{3, 9, 7, 128}, 128, 1, true, 2},   {{2, 11, 13, 130}, 136, 2, true, 2},
                        {{2, 16, 12, 128}, 144, 0, false, 2}, {{4, 7, 7, 256}, 256, 1, false, 2},
                        {{1, 40, 36, 128}, 128, 1, true, 4},  {{5, 13, 11, 66}, 70, 1, true, 4},
                        {{8, 30, 29, 64}, 72, 0, false, 4},   {{4, 14, 14, 96}, 80, 2, true, 4},
                        {{6, 10, 10, 740}, 740, 1, true, 4}};  // U over the packed kernel's limit: OpenBLAS
  Generator g(11);
  for (const Case& c : cases) {
    CAPTURE(c.x);
    const Tensor x = randn(c.x, DType::f64, &g), w = randn({c.O, 3, 3, c.x[3]}, DType::f64, &g) * 0.1;
    const Tensor b = c.bias ? randn({c.O}, DType::f64, &g) : Tensor();
    // the input gradient: Winograd on gy with the rotated kernel, against f64 im2col
    // Rounding grows with the largest partial sum, ~sqrt(C): past 256 channels 2e-4 * sqrt(C / 256).
    const double tol = 2e-4 * std::max(1.0, std::sqrt(static_cast<double>(c.x[3]) / 256.0));
    const cpu::ConvGeom geom = check_f32_conv_follows_f64(x, w, b, c.pad, g, tol);
    CHECK(cpu::winograd_tile(geom) == c.tile);
    CHECK(cpu::winograd_input_grad_applies(geom));
  }
  // Not taken: stride 2, few channels, few tiles (the im2col path, covered above); F(2x2, 3x3)
  // where 4x4 tiles are too few.
  Conv2dParams p;
  p.stride_h = p.stride_w = 2;
  CHECK_FALSE(cpu::winograd_applies(cpu::ConvGeom({4, 16, 16, 128}, {128, 3, 3, 128}, {4, 7, 7, 128}, p)));
  CHECK_FALSE(cpu::winograd_applies(cpu::ConvGeom({8, 16, 16, 32}, {128, 3, 3, 32}, {8, 14, 14, 128}, Conv2dParams{})));
  CHECK_FALSE(cpu::winograd_applies(cpu::ConvGeom({1, 16, 16, 64}, {64, 3, 3, 64}, {1, 14, 14, 64}, Conv2dParams{})));
  CHECK(cpu::winograd_tile(cpu::ConvGeom({1, 16, 16, 256}, {256, 3, 3, 256}, {1, 14, 14, 256}, Conv2dParams{})) == 2);
  CHECK_FALSE(cpu::winograd_applies(cpu::ConvGeom({1, 7, 7, 512}, {512, 3, 3, 512}, {1, 5, 5, 512}, Conv2dParams{})));
}

TEST_CASE("1x1 conv2d (packed-weight kernel, split weight gradient) equals the matrix products it stands for") {
  // A 1x1 stride-1 convolution is y = x[M, C] w[O, C]^T, dx = dy w, dw = dy^T x with M = N*H*W.
  // The first four shapes take the packed-weight kernel (gemm_narrow.hpp) for the forward and the
  // input gradient, with partial column panels (5, 24, 136 columns) and row blocks cut short at
  // the threads' boundaries (odd M), and, with M of 2,000 and more, a weight gradient whose inner
  // dimension is split into summed parts. A weight over the kernel's limit in f64 (256 x 8300,
  // 17 MB) with 150 rows takes one OpenBLAS GEMM; 25 and 49 rows (fewer than kNarrowFewRows) take the kernel
  // with the threads splitting column panels, the latter with a 4.5 MB weight and a partial last
  // panel. matmul is the reference (a separate code path: one OpenBLAS GEMM).
  struct Case {
    Shape x;
    int64_t O;
  };
  Generator g(5);
  for (const Case c : {Case{{3, 37, 41, 16}, 24}, Case{{1, 9, 15, 8}, 5}, Case{{2, 33, 32, 64}, 64},
                       Case{{1, 12, 11, 160}, 136}, Case{{1, 10, 15, 256}, 8300}, Case{{1, 5, 5, 16}, 8},
                       Case{{1, 7, 7, 512}, 1100}}) {
    CAPTURE(c.x);
    const int64_t M = c.x[0] * c.x[1] * c.x[2], C = c.x[3];
    const Tensor x = randn(c.x, DType::f64, &g).requires_grad_();
    const Tensor w = randn({c.O, 1, 1, C}, DType::f64, &g).requires_grad_();
    const Tensor b = randn({c.O}, DType::f64, &g).requires_grad_();
    const Tensor y = conv2d(x, w, b);
    const Tensor xm = x.detach().reshape({M, C}), wm = w.detach().reshape({c.O, C});
    wt::check_close(y.reshape({M, c.O}), matmul(xm, wm.mT()) + b.detach(), 1e-12, 1e-12);
    const Tensor dy = randn(y.shape(), DType::f64, &g);
    y.backward(dy);
    const Tensor dym = dy.reshape({M, c.O});
    wt::check_close(x.grad().reshape({M, C}), matmul(dym, wm), 1e-12, 1e-12);
    wt::check_close(w.grad().reshape({c.O, C}), matmul(dym.mT(), xm), 1e-11, 1e-11);
    // f32 through the same split follows f64
    const Tensor xf = x.detach().to(DType::f32).requires_grad_(), wf = w.detach().to(DType::f32).requires_grad_();
    const Tensor yf = conv2d(xf, wf, b.detach().to(DType::f32));
    yf.backward(dy.to(DType::f32));
    wt::check_close(yf, y, 1e-4, 1e-4);
    wt::check_close(wf.grad(), w.grad(), 1e-3, 1e-4);
  }
  // the paths named above: the f64 256 x 8300 weight over the limit, ResNet-50's last-stage 1x1
  // weights (4 and 8 MiB in f32) within it at batch 4 (196 rows)
  CHECK_FALSE(cpu::gemm_narrow_applies<double>(150, 8300, 256));
  CHECK(cpu::gemm_narrow_applies<float>(196, 2048, 512));
  CHECK(cpu::gemm_narrow_applies<float>(196, 2048, 1024));
}

TEST_CASE("conv2d keeps the prepared forms of weights nothing differentiates, and follows in-place changes") {
  // Three paths that prepare their weight: Winograd F(4x4, 3x3), the packed 1x1 kernel, packed
  // im2col (3x3 stride 2). Each result is checked against the f64 direct convolution (never cached).
  Generator g(21);
  const Tensor x = randn({4, 16, 16, 64}, DType::f32, &g);
  struct Case {
    Shape w;
    int64_t stride, pad;
  };
  const Case cases[] = {{{64, 3, 3, 64}, 1, 1}, {{96, 1, 1, 64}, 1, 0}, {{32, 3, 3, 64}, 2, 1}};
  auto ref = [&](const Tensor& w, const Case& c) {
    return conv2d(x.to(DType::f64), w.to(DType::f64), Tensor(), c.stride, c.pad);
  };
  cpu::PreparedWeights& cache = cpu::prepared_weights();
  std::vector<Tensor> alive;  // each case's weight outlives the loop: the count below is about live forms
  for (const Case& c : cases) {
    CAPTURE(c.w);
    Tensor w = randn(c.w, DType::f32, &g) * 0.1;
    alive.push_back(w);
    NoGradGuard inference;  // forms are kept for calls made with autograd off
    const size_t entries0 = cache.entries();
    const uint64_t hits0 = cache.hits();
    const Tensor y1 = conv2d(x, w, Tensor(), c.stride, c.pad);
    wt::check_close(y1, ref(w, c), 2e-4, 2e-4);
    CHECK(cache.entries() == entries0 + 1);  // prepared once
    const Tensor y2 = conv2d(x, w, Tensor(), c.stride, c.pad);
    CHECK(cache.hits() == hits0 + 1);  // and reused
    wt::check_close(y2, y1, 0, 0);
    // An in-place change bumps the weight's version: the stale form is replaced, not used.
    w.mul_(-2.0);
    const Tensor y3 = conv2d(x, w, Tensor(), c.stride, c.pad);
    wt::check_close(y3, ref(w, c), 2e-4, 4e-4);
    CHECK(cache.entries() == entries0 + 1);
    // With autograd on (a training step), forms are prepared per call and never kept.
    {
      EnableGradGuard training;
      const Tensor w2 = w.detach().clone().requires_grad_();
      wt::check_close(conv2d(x, w2, Tensor(), c.stride, c.pad), y3, 0, 0);
      wt::check_close(conv2d(x, w2.detach().clone(), Tensor(), c.stride, c.pad), y3, 0, 0);
      CHECK(cache.entries() == entries0 + 1);
    }
  }
  // A 3x3 convolution at 7x7 and batch 1 (49 rows, below kNarrowFewRows) with a 4.7 MB weight:
  // packed im2col with the threads splitting column panels, forward and input gradient.
  const Tensor x7 = randn({1, 7, 7, 256}, DType::f64, &g), w7 = randn({520, 3, 3, 256}, DType::f64, &g) * 0.05;
  CHECK(cpu::winograd_tile(check_f32_conv_follows_f64(x7, w7, Tensor(), 1, g)) == 0);
  // Forms of weights that died are never served to a new weight at the same address, and go.
  NoGradGuard inference;
  const size_t entries1 = cache.entries();
  for (int i = 0; i < 3; ++i) {
    const Tensor w = randn({64, 3, 3, 64}, DType::f32, &g) * 0.1;
    wt::check_close(conv2d(x, w, Tensor(), 1, 1), conv2d(x.to(DType::f64), w.to(DType::f64), Tensor(), 1, 1), 2e-4, 2e-4);
  }
  CHECK(cache.entries() <= entries1 + 1);
}
