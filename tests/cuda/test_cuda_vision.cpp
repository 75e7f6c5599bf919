// Parity of the vision and transformer kernels: conv2d through cuDNN (and the direct kernels for
// f64 and asymmetric padding), pooling, bilinear resizing and scaled dot-product attention, each
// forward and backward, convolutions in benchmark mode too; plus a small conv net's training step
// on both devices.
#include "parity.hpp"

using namespace wanwu;
using cp::kCuda;

TEST_CASE("conv2d: 3x3, strided, dilated, grouped, depthwise, 1x1, same-padding; forward and backward") {
  struct C {
    const char* name;
    Shape x, w;
    Pair2 stride;
    Padding2d pad;
    Pair2 dil;
    int64_t groups;
    bool bias;
  };
  const std::vector<C> cases = {
      {"3x3 pad 1", {2, 9, 8, 6}, {5, 3, 3, 6}, 1, Padding2d(1), 1, 1, true},
      {"3x3 stride 2", {2, 11, 10, 4}, {8, 3, 3, 4}, 2, Padding2d(1), 1, 1, false},
      {"5x3 dilated", {1, 12, 12, 3}, {4, 5, 3, 3}, 1, Padding2d(2, 1), 2, 1, true},
      {"grouped", {2, 7, 7, 8}, {6, 3, 3, 4}, 1, Padding2d(1), 1, 2, true},
      {"depthwise", {2, 9, 9, 8}, {8, 3, 3, 1}, 2, Padding2d(1), 1, 8, true},
      {"1x1", {3, 5, 6, 16}, {12, 1, 1, 16}, 1, Padding2d(0), 1, 1, true},
      {"same, even kernel", {1, 8, 7, 3}, {4, 4, 2, 3}, 1, Padding2d::same(), 1, 1, true},
      {"7x7 stride 2 stem", {1, 32, 32, 3}, {8, 7, 7, 3}, 2, Padding2d(3), 1, 1, false},
      // empty inputs with non-empty outputs, the bias alone (cuDNN's descriptors take no 0)
      {"no input channels", {2, 5, 5, 0}, {4, 3, 3, 0}, 1, Padding2d(1), 1, 1, true},
      {"an empty side padded", {2, 0, 3, 4}, {5, 1, 1, 4}, 1, Padding2d(1), 1, 1, true},
  };
  for (const C& c : cases)
    for (DType dt : cp::kFloatTypes) {
      std::vector<Tensor> in = {cp::rnd(c.x, -1, 1, 50), cp::rnd(c.w, -0.5, 0.5, 51)};
      if (c.bias) in.push_back(cp::rnd({c.w[0]}, -1, 1, 52));
      cp::parity(c.name, [&](const std::vector<Tensor>& t) {
        return conv2d(t[0], t[1], c.bias ? t[2] : Tensor(), c.stride, c.pad, c.dil, c.groups);
      }, in, dt);
    }
}

// Under the tf32 precision cuDNN may run f32 convolutions on TF32 kernels (10-bit mantissas):
// forward and gradients within TF32's error, each pass's plan cached apart from the full-f32 one
// of the same shape, which must still compute in f32 afterwards. Whether TF32 kernels were picked
// is cuDNN's choice; the message shows the two errors.
TEST_CASE("conv2d under the tf32 precision: f32 convolutions within TF32's error, cached apart from full f32") {
  const std::vector<Tensor> in = {cp::rnd({8, 16, 16, 64}, -1, 1, 53), cp::rnd({64, 3, 3, 64}, -0.5, 0.5, 54)};
  auto f = [](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], Tensor(), 1, 1); };
  {
    MatmulPrecisionGuard tf32(MatmulPrecision::tf32);
    cp::parity("conv2d 3x3 64->64, tf32", f, in, DType::f32, true, cp::Tol{5e-3, 2e-3});
  }
  cp::parity("conv2d 3x3 64->64, full f32 after tf32", f, in, DType::f32);
  const Tensor ref = f({in[0].to(DType::f64), in[1].to(DType::f64)});
  double tf32_err = 0, f32_err = 0;
  {
    MatmulPrecisionGuard tf32(MatmulPrecision::tf32);
    tf32_err = (f({in[0].to(kCuda), in[1].to(kCuda)}).cpu().to(DType::f64) - ref).abs().max().item<double>();
  }
  f32_err = (f({in[0].to(kCuda), in[1].to(kCuda)}).cpu().to(DType::f64) - ref).abs().max().item<double>();
  MESSAGE("conv2d 3x3 64->64 max abs error: tf32 " << tf32_err << ", f32 " << f32_err);
}

TEST_CASE("conv2d in benchmark mode: the fastest timed cuDNN candidate, forward and backward, legacy and graph paths") {
  // Shapes no other case runs, so every pass times its candidates here (f32: the legacy API's
  // algorithms; f16/bf16: graph-API plans), and one that the heuristic plans also ran: the two
  // modes' choices are cached apart and each call computes with its own.
  struct C {
    const char* name;
    Shape x, w;
    int64_t stride, pad;
  };
  const std::vector<C> cases = {
      {"benchmark 3x3", {4, 14, 14, 32}, {64, 3, 3, 32}, 1, 1},
      {"benchmark 1x1 stride 2", {4, 15, 15, 48}, {32, 1, 1, 48}, 2, 0},
      {"benchmark 3x3 pad 1 (also run by the heuristic case)", {2, 9, 8, 6}, {5, 3, 3, 6}, 1, 1},
  };
  ConvAlgorithmSearchGuard guard(ConvAlgorithmSearch::benchmark);
  for (const C& c : cases)
    for (DType dt : cp::kFloatTypes) {
      const std::vector<Tensor> in = {cp::rnd(c.x, -1, 1, 60), cp::rnd(c.w, -0.5, 0.5, 61)};
      cp::parity(c.name, [&](const std::vector<Tensor>& t) {
        return conv2d(t[0], t[1], Tensor(), c.stride, c.pad);
      }, in, dt);
    }
  CHECK(conv_algorithm_search() == ConvAlgorithmSearch::benchmark);
}

// The device's max-pool backward gathers each input's gradient in f32 (f64 for f64), adding in
// output order as the CPU's scatter does, and rounds once: the same bits as the CPU in every dtype
// (16-bit atomics would round at every addition where windows overlap).
TEST_CASE("max_pool2d backward gives the CPU's bits in every dtype") {
  for (DType dt : cp::kFloatTypes) {
    CAPTURE(dt);
    const Tensor x = cp::rnd({3, 13, 12, 8}, -2, 2, 63).to(dt);
    const Tensor xr = round(cp::rnd({3, 13, 12, 8}, -2, 2, 64)).to(dt);  // many tied maxima
    for (const Tensor& in : {x, xr}) {
      const auto h = max_pool2d_with_indices(in, 3, 2, 1);
      const auto d = max_pool2d_with_indices(in.to(cp::kCuda), 3, 2, 1);
      cp::compare_exact("max_pool indices", d.indices.cpu(), h.indices);
      const Tensor gy = cp::rnd(h.values.shape(), -1, 1, 65).to(dt);
      const Tensor xh = in.detach().requires_grad_(), xd = in.to(cp::kCuda).requires_grad_();
      max_pool2d(xh, 3, 2, 1).backward(gy);
      max_pool2d(xd, 3, 2, 1).backward(gy.to(cp::kCuda));
      cp::compare_exact("max_pool backward", xd.grad().cpu(), xh.grad());
    }
  }
}

TEST_CASE("max, average and adaptive pooling; bilinear resize; forward and backward") {
  for (DType dt : cp::kFloatTypes) {
    const Tensor x = cp::rnd({2, 9, 11, 5}, -2, 2, 60);
    cp::parity("max_pool 3x3 s2 p1", [](const std::vector<Tensor>& in) { return max_pool2d(in[0], 3, 2, 1); }, {x}, dt);
    cp::parity("max_pool 2x2 ceil dilated", [](const std::vector<Tensor>& in) {
      return max_pool2d(in[0], 2, 2, 0, 2, CeilMode::yes);
    }, {x}, dt);
    // dilated windows whose taps step over a narrow input: -inf with index -1, which the backward
    // skips (in the second, every window of the 1x1 input is empty)
    cp::parity("max_pool dilated past a narrow input", [](const std::vector<Tensor>& in) {
      return max_pool2d(in[0], {1, 2}, 1, {0, 2}, {1, 3});
    }, {cp::rnd({2, 3, 2, 5}, -2, 2, 61)}, dt);
    cp::parity("max_pool dilated past a 1x1 input", [](const std::vector<Tensor>& in) {
      return max_pool2d(in[0], 2, 1, 2, 3);
    }, {cp::rnd({2, 1, 1, 5}, -2, 2, 62)}, dt);
    cp::parity("avg_pool 3x3 s2 p1", [](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 3, 2, 1); }, {x}, dt);
    cp::parity("avg_pool no pad count, ceil", [](const std::vector<Tensor>& in) {
      return avg_pool2d(in[0], 3, 2, 1, CeilMode::yes, CountIncludePad::no);
    }, {x}, dt);
    cp::parity("avg_pool divisor", [](const std::vector<Tensor>& in) {
      return avg_pool2d(in[0], 2, 1, 0, CeilMode::no, CountIncludePad::yes, 3);
    }, {x}, dt);
    cp::parity("adaptive 1x1", [](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 1); }, {x}, dt);
    cp::parity("adaptive 4x3", [](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], {4, 3}); }, {x}, dt);
    cp::parity("bilinear up", [](const std::vector<Tensor>& in) { return interpolate_bilinear(in[0], {17, 23}); }, {x}, dt);
    cp::parity("bilinear down aligned", [](const std::vector<Tensor>& in) {
      return interpolate_bilinear(in[0], {4, 5}, AlignCorners::yes);
    }, {x}, dt);
    cp::parity("bicubic up", [](const std::vector<Tensor>& in) { return interpolate_bicubic(in[0], {17, 23}); }, {x}, dt);
    cp::parity("bicubic down aligned", [](const std::vector<Tensor>& in) {
      return interpolate_bicubic(in[0], {4, 5}, AlignCorners::yes);
    }, {x}, dt);
  }
}

TEST_CASE("scaled_dot_product_attention: plain, masked, causal, permuted and unbound inputs; forward and backward") {
  for (DType dt : cp::kFloatTypes) {
    const Tensor q = cp::rnd({2, 3, 7, 16}, -1, 1, 70), k = cp::rnd({2, 3, 9, 16}, -1, 1, 71),
                 v = cp::rnd({2, 3, 9, 8}, -1, 1, 72);
    cp::parity("attention", [](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1], in[2]);
    }, {q, k, v}, dt);
    cp::parity("attention causal", [](const std::vector<Tensor>& in) {
      AttentionOptions o;
      o.causal = Causal::yes;
      return scaled_dot_product_attention(in[0], in[1].slice(2, 0, 7), in[2].slice(2, 0, 7), o);
    }, {q, k, v}, dt);
    const Tensor bmask = gt(cp::rnd({2, 1, 7, 9}, 0, 1, 73), 0.2);
    cp::parity("attention bool mask", [&](const std::vector<Tensor>& in) {
      AttentionOptions o;
      o.mask = in[3];
      return scaled_dot_product_attention(in[0], in[1], in[2], o);
    }, {q, k, v, bmask}, dt);
    cp::parity("attention float mask", [&](const std::vector<Tensor>& in) {
      AttentionOptions o;
      o.mask = in[3];
      return scaled_dot_product_attention(in[0], in[1], in[2], o);
    }, {q, k, v, cp::rnd({7, 9}, -1, 1, 74)}, dt);
    // empty keys (S = 0: output 0), empty values (Dv = 0) and a head dimension of 0 (scores 0:
    // the mean of the values; scale given, 1 / sqrt(0) being infinite)
    cp::parity("attention, no keys", [](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1].slice(2, 0, 0), in[2].slice(2, 0, 0));
    }, {q, k, v}, dt);
    cp::parity("attention, empty values", [](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1], in[2].slice(3, 0, 0));
    }, {q, k, v}, dt);
    // head dimension 1 with keys and values strided (one element of each 16-wide row of k, of each
    // 8-wide row of v): a one-row GEMM operand read transposed with the column stride as its
    // leading dimension
    cp::parity("attention, head dimension 1, strided keys and values", [](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0].slice(3, 0, 1), in[1].slice(3, 0, 2).slice(3, 0, 1),
                                          in[2].slice(3, 0, 2).slice(3, 1, 2));
    }, {q, k, v}, dt);
    cp::parity("attention, head dimension 0", [](const std::vector<Tensor>& in) {
      AttentionOptions o;
      o.scale = 0.5;
      return scaled_dot_product_attention(in[0].slice(3, 0, 0), in[1].slice(3, 0, 0), in[2], o);
    }, {q, k, v}, dt);
    // ViT: q, k, v are permuted views of one [B, L, 3, H, D] projection
    cp::parity("attention on permuted views", [](const std::vector<Tensor>& in) {
      const Tensor qkv = in[0].view({2, 7, 3, 3, 16}).permute({2, 0, 3, 1, 4});
      return scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);
    }, {cp::rnd({2, 7, 144}, -1, 1, 75)}, dt);
    // nn::MultiheadAttention's packed path: unbind's one gradient buffer, with v left out of the
    // loss's path in the second case (its slice of the buffer is zeros)
    cp::parity("attention on unbound views", [](const std::vector<Tensor>& in) {
      const auto qkv = unbind(in[0].view({2, 7, 3, 3, 16}), 2);
      return scaled_dot_product_attention(qkv[0].permute({0, 2, 1, 3}), qkv[1].permute({0, 2, 1, 3}),
                                          qkv[2].permute({0, 2, 1, 3}));
    }, {cp::rnd({2, 7, 144}, -1, 1, 75)}, dt);
    cp::parity("unbind, a slice without a gradient", [](const std::vector<Tensor>& in) {
      const auto qkv = unbind(in[0].view({2, 7, 3, 48}), 2);
      return qkv[0] * qkv[1];
    }, {cp::rnd({2, 7, 144}, -1, 1, 77)}, dt);
  }
  // dropout: the same seed drops the same elements on both devices
  const Tensor q = cp::rnd({1, 2, 5, 8}, -1, 1, 76);
  Generator gc(11), gd(11);
  AttentionOptions oc, od;
  oc.dropout_p = od.dropout_p = 0.3;
  oc.generator = &gc;
  od.generator = &gd;
  cp::compare("attention dropout", scaled_dot_product_attention(q.to(kCuda), q.to(kCuda), q.to(kCuda), od),
              scaled_dot_product_attention(q, q, q, oc), {1e-5, 1e-6});
}

TEST_CASE("a small conv net: one SGD training step gives the same parameters on both devices") {
  auto step = [](Device dev) {
    Generator g(123);
    Tensor w1 = (randn({8, 3, 3, 3}, DType::f32, &g) * 0.3).to(dev).detach().requires_grad_(true);
    Tensor w2 = (randn({10, 8}, DType::f32, &g) * 0.3).to(dev).detach().requires_grad_(true);
    const Tensor x = randn({4, 12, 12, 3}, DType::f32, &g).to(dev);
    const Tensor y = from_vector(std::vector<double>{1, 7, 3, 9}, {4}, DType::i64).to(dev);
    Tensor h = relu(batch_norm(conv2d(x, w1, Tensor(), 1, 1), Tensor(), Tensor(), Tensor(), Tensor(), Mode::train));
    h = max_pool2d(h, 2);
    h = adaptive_avg_pool2d(h, 1).flatten(1);
    const Tensor loss = cross_entropy(linear(h, w2), y);
    loss.backward();
    return std::vector<Tensor>{loss.detach(), w1.grad(), w2.grad()};
  };
  const auto c = step(Device::cpu()), d = step(kCuda);
  cp::compare("loss", d[0], c[0], {1e-5, 1e-6});
  cp::compare("conv weight grad", d[1], c[1], {1e-4, 1e-5});
  cp::compare("linear weight grad", d[2], c[2], {1e-4, 1e-5});
}
