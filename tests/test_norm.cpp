// batch_norm (train and eval, NHWC and [N, C]), batch_norm_act, layer_norm, group_norm: gradient
// checks, the running-statistics update against a hand computation, the fused batch norm +
// activation against the two ops and the memory it keeps, robustness to a large mean, errors.
#include "harness.hpp"

using namespace wanwu;
using wt::gradcheck;
using wt::spread;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: batch_norm, layer_norm, group_norm") {
  const Tensor x = spread({2, 3, 4, 5});
  gradcheck([](const V& v) { return batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], Mode::train); },
            {x, spread({5}, 0.5, 2, 3), spread({5}, -1, 1, 4)});
  gradcheck([](const V& v) { return batch_norm(v[0], Tensor(), Tensor(), Tensor(), Tensor(), Mode::train); },
            {spread({6, 3})});
  gradcheck(
      [](const V& v) {
        return batch_norm(v[0], tensor({0.1, -0.2, 0.3, 0.0, 1.0}, DType::f64),
                          tensor({1.5, 0.5, 2.0, 1.0, 0.7}, DType::f64), v[1], v[2], Mode::eval);
      },
      {x, spread({5}, 0.5, 2, 3), spread({5}, -1, 1, 4)});
  gradcheck([](const V& v) { return layer_norm(v[0], {5}, v[1], v[2]); },
            {x, spread({5}, 0.5, 2, 3), spread({5}, -1, 1, 4)});
  gradcheck([](const V& v) { return layer_norm(v[0], {4, 5}); }, {x});
  gradcheck([](const V& v) { return group_norm(v[0], 2, v[1], v[2]); },
            {spread({2, 3, 2, 6}), spread({6}, 0.5, 2, 3), spread({6}, -1, 1, 4)});
}

TEST_CASE("batch_norm training: batch statistics, running estimates with momentum and Bessel's correction") {
  // channel 0: 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased 14/3); channel 1: all 5
  const Tensor x = tensor({{1.0, 5.0}, {2.0, 5.0}, {3.0, 5.0}, {6.0, 5.0}}, DType::f64);
  Tensor rm = tensor({0.0, 1.0}, DType::f64), rv = tensor({1.0, 1.0}, DType::f64);
  const Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), Mode::train, 0.1, 1e-5);
  const double s = std::sqrt(3.5 + 1e-5);
  wt::check_close(y.select(1, 0), {-2 / s, -1 / s, 0, 3 / s}, 1e-12, 1e-12);
  wt::check_close(y.select(1, 1), {0, 0, 0, 0}, 0, 1e-12);
  wt::check_close(rm, {0.3, 0.9 + 0.5}, 1e-12, 0);
  wt::check_close(rv, {0.9 + 0.1 * 14.0 / 3.0, 0.9}, 1e-12, 0);
  // eval uses the running statistics
  const Tensor ye = batch_norm(x, rm, rv, Tensor(), Tensor(), Mode::eval, 0.1, 0.0);
  wt::check_close(ye.select(1, 1), std::vector<double>(4, (5.0 - 1.4) / std::sqrt(0.9)), 1e-12, 0);
}

TEST_CASE("batch_norm training updates running statistics in another dtype or layout, in place") {
  // the channels of the case above, in f32: mean (3, 5), unbiased variance (14/3, 0)
  const Tensor x = tensor({{1.0, 5.0}, {2.0, 5.0}, {3.0, 5.0}, {6.0, 5.0}}, DType::f32);
  // bf16 buffers (a model converted whole): updated in f32, then rounded to bf16
  Tensor rm = tensor({0.0, 1.0}, DType::bf16), rv = tensor({1.0, 1.0}, DType::bf16);
  const uint32_t vm = rm.version(), vv = rv.version();
  (void)batch_norm(x, rm, rv, Tensor(), Tensor(), Mode::train, 0.1, 1e-5);
  CHECK(rm.dtype() == DType::bf16);
  // 0.3, 1.4, 0.9 + 1.4 / 3 = 1.3667 and 0.9 are not bf16 values; the nearest are 0.30078125, 1.3984375,
  // 1.3671875 and 0.8984375
  wt::check_close(rm, {0.30078125, 1.3984375}, 0, 0);
  wt::check_close(rv, {1.3671875, 0.8984375}, 0, 0);
  CHECK(rm.version() > vm);
  CHECK(rv.version() > vv);
  // f32 buffers that are strided views (a column of a [2, 2] table): the other column is untouched
  Tensor table = tensor({{0.0, 7.0}, {1.0, 7.0}}, DType::f32);
  Tensor col = table.select(1, 0);
  REQUIRE(!col.is_contiguous());
  Tensor rv32 = ones({2}, DType::f32);
  (void)batch_norm(x, col, rv32, Tensor(), Tensor(), Mode::train, 0.25, 1e-5);
  wt::check_close(table, {0.75, 7.0, 0.75 + 1.25, 7.0}, 1e-7, 0);
  wt::check_close(rv32, {0.75 + 0.25 * 14.0 / 3.0, 0.75}, 1e-7, 0);
  // a backend takes running statistics only in the statistics' dtype, contiguous: a bf16 buffer
  // handed to it directly is refused with the requirement, not read as f32
  Tensor y2 = empty_like(x), m2 = empty({2}, DType::f32), s2 = empty({2}, DType::f32);
  CHECK_THROWS_WITH_AS(cpu_backend().batch_norm_forward(y2, m2, s2, x, Tensor(), Tensor(), 1e-5, Activation::none,
                                                        Tensor(), BatchNormRunning{rm, Tensor(), 0.1}),
                       doctest::Contains("running statistic must be a contiguous f32 tensor of shape [2]"), DTypeError);
  CHECK_THROWS_AS(cpu_backend().batch_norm_forward(y2, m2, s2, x, Tensor(), Tensor(), 1e-5, Activation::none,
                                                   Tensor(), BatchNormRunning{Tensor(), col, 0.1}),
                  DTypeError);
  // untracked statistics: nothing to update, the output is the same
  const Tensor y = batch_norm(x, Tensor(), rv32, Tensor(), Tensor(), Mode::train);
  wt::check_close(y, batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), Mode::train), 0, 0);
}

TEST_CASE("normalization stays accurate when the mean dwarfs the spread") {
  // f32 activations around 1e4 with unit spread: E[x^2] - E[x]^2 in f32 would lose everything
  Generator g(5);
  const Tensor x64 = randn({64, 8}, DType::f64, &g) + 1e4;
  const Tensor x = x64.to(DType::f32);
  const Tensor ref = batch_norm(x.to(DType::f64), Tensor(), Tensor(), Tensor(), Tensor(), Mode::train);
  wt::check_close(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), Mode::train), ref, 1e-4, 1e-4);
  const Tensor ln_ref = layer_norm(x.to(DType::f64).t().contiguous(), {64});
  wt::check_close(layer_norm(x.t().contiguous(), {64}), ln_ref, 1e-4, 1e-4);
  // and in 16-bit floats, computed in f32
  const Tensor h = randn({16, 4}, DType::f32, &g);
  wt::check_close(layer_norm(h.to(DType::bf16), {4}).to(DType::f32), layer_norm(h, {4}), 3e-2, 3e-2);
}

TEST_CASE("batch_norm in f32 over many rows equals the f64 computation: outputs and every gradient") {
  // 30001 rows: the per-channel sums run over many partial blocks in f32 (and the odd last one)
  // and over both threads' chunks; an offset of 50 makes an inexact mean show in the output.
  Generator g(11);
  const Tensor x64 = randn({30001, 5}, DType::f64, &g) * 2.0 + 50.0;
  const Tensor dy64 = randn({30001, 5}, DType::f64, &g);
  const Tensor w64 = tensor({0.5, 1.0, 2.0, -1.0, 3.0}, DType::f64), b64 = tensor({0.0, 1.0, -2.0, 0.5, 0.1}, DType::f64);
  auto run = [&](DType dt) {
    Tensor x = x64.to(DType::f32).to(dt).clone().requires_grad_();
    Tensor w = w64.to(dt).clone().requires_grad_(), b = b64.to(dt).clone().requires_grad_();
    const Tensor y = batch_norm(x, Tensor(), Tensor(), w, b, Mode::train);
    y.backward(dy64.to(DType::f32).to(dt));
    return V{y.detach().to(DType::f64), x.grad().to(DType::f64), w.grad().to(DType::f64), b.grad().to(DType::f64)};
  };
  const V ref = run(DType::f64), got = run(DType::f32);
  wt::check_close(got[0], ref[0], 1e-5, 1e-5);
  wt::check_close(got[1], ref[1], 1e-5, 1e-6);  // dx: a difference of terms of O(|w| |dy| / std)
  wt::check_close(got[2], ref[2], 1e-5, 1e-3);
  wt::check_close(got[3], ref[3], 1e-5, 1e-3);
}
TEST_CASE("layer_norm on wide rows (the vector lanes and their remainder) equals its composition from primitives") {
  // Rows of 100 and 37: three full 32-float lane blocks plus a remainder, and one block plus a
  // remainder. The reference is layer norm written out with mean/var/sqrt in f64 and
  // differentiated by autograd, so it shares no code with the fused kernels.
  Generator g(11);
  for (const int64_t M : {int64_t(100), int64_t(37)}) {
    CAPTURE(M);
    const Tensor x64 = randn({6, M}, DType::f64, &g) * 3.0 + 2.0;
    const Tensor w64 = randn({M}, DType::f64, &g), b64 = randn({M}, DType::f64, &g);
    const Tensor dy64 = randn({6, M}, DType::f64, &g);
    Tensor xr = x64.clone().requires_grad_(), wr = w64.clone().requires_grad_(), br = b64.clone().requires_grad_();
    const Tensor mu = mean(xr, {-1}, KeepDim::yes);
    const Tensor var_b = var(xr, {-1}, 0, KeepDim::yes);
    const Tensor ref = (xr - mu) / sqrt(var_b + 1e-5) * wr + br;
    ref.backward(dy64);
    Tensor x = x64.to(DType::f32).requires_grad_(), w = w64.to(DType::f32).requires_grad_(),
           b = b64.to(DType::f32).requires_grad_();
    const Tensor y = layer_norm(x, {M}, w, b);
    y.backward(dy64.to(DType::f32));
    wt::check_close(y, ref, 1e-4, 1e-4);
    wt::check_close(x.grad(), xr.grad(), 1e-4, 1e-4);
    wt::check_close(w.grad(), wr.grad(), 1e-4, 1e-4);
    wt::check_close(b.grad(), br.grad(), 1e-4, 1e-4);
  }
}

TEST_CASE("gradcheck: batch_norm_act with each activation, with and without affine parameters") {
  for (Activation act : {Activation::relu, Activation::relu6, Activation::silu}) {
    CAPTURE(static_cast<int>(act));
    // weight up to 4 and bias up to 3 put some outputs above 6, so relu6's upper cut is crossed
    gradcheck([act](const V& v) { return batch_norm_act(v[0], Tensor(), Tensor(), v[1], v[2], Mode::train, act); },
              {spread({2, 3, 4, 5}), spread({5}, 0.5, 4, 3), spread({5}, -1, 3, 4)});
    gradcheck(
        [act](const V& v) { return batch_norm_act(v[0], Tensor(), Tensor(), Tensor(), Tensor(), Mode::train, act); },
        {spread({6, 3})});
  }
}

TEST_CASE("batch_norm_act equals batch_norm followed by the activation: outputs, gradients, running statistics") {
  Generator g(11);
  const Tensor x0 = randn({3, 4, 5, 6}, DType::f64, &g), gy = randn({3, 4, 5, 6}, DType::f64, &g);
  const Tensor w0 = rand({6}, DType::f64, &g) + 0.5, b0 = randn({6}, DType::f64, &g);
  for (Activation act : {Activation::none, Activation::relu, Activation::relu6, Activation::silu}) {
    CAPTURE(static_cast<int>(act));
    for (Mode mode : {Mode::train, Mode::eval}) {
      CAPTURE(static_cast<int>(mode));
      auto run = [&](bool fused) {
        Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
        Tensor b = b0.clone().requires_grad_(true);
        Tensor rm = tensor({0.1, -0.2, 0.3, 0.0, 1.0, 0.5}, DType::f64);
        Tensor rv = tensor({1.5, 0.5, 2.0, 1.0, 0.7, 1.1}, DType::f64);
        const Tensor y = fused ? batch_norm_act(x, rm, rv, w, b, mode, act, 0.1, 1e-5)
                               : activate(batch_norm(x, rm, rv, w, b, mode, 0.1, 1e-5), act);
        (y * gy).sum().backward();
        return std::vector<Tensor>{y.detach(), x.grad(), w.grad(), b.grad(), rm, rv};
      };
      const auto f = run(true), u = run(false);
      for (size_t i = 0; i < f.size(); ++i) {
        CAPTURE(i);
        wt::check_close(f[i], u[i], 1e-12, 1e-12);
      }
    }
  }
}

// A residual block's end as one op: act(batch_norm(x) + r) against the three separate ops, with
// the residual's gradient, in both modes; the residual in the middle of a graph (r computed from
// another leaf) so its gradient flows on.
TEST_CASE("batch_norm_act with a residual equals batch_norm, add and the activation") {
  Generator g(13);
  const Tensor x0 = randn({3, 4, 5, 6}, DType::f64, &g), gy = randn({3, 4, 5, 6}, DType::f64, &g);
  const Tensor r0 = randn({3, 4, 5, 6}, DType::f64, &g);
  const Tensor w0 = rand({6}, DType::f64, &g) + 0.5, b0 = randn({6}, DType::f64, &g);
  for (Activation act : {Activation::none, Activation::relu}) {
    CAPTURE(static_cast<int>(act));
    for (Mode mode : {Mode::train, Mode::eval}) {
      CAPTURE(static_cast<int>(mode));
      auto run = [&](bool fused) {
        Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
        Tensor b = b0.clone().requires_grad_(true), r_leaf = r0.clone().requires_grad_(true);
        Tensor rm = tensor({0.1, -0.2, 0.3, 0.0, 1.0, 0.5}, DType::f64);
        Tensor rv = tensor({1.5, 0.5, 2.0, 1.0, 0.7, 1.1}, DType::f64);
        const Tensor r = r_leaf * 2.0;
        const Tensor y = fused ? batch_norm_act(x, rm, rv, w, b, mode, act, 0.1, 1e-5, r)
                               : activate(batch_norm(x, rm, rv, w, b, mode, 0.1, 1e-5) + r, act);
        (y * gy).sum().backward();
        return std::vector<Tensor>{y.detach(), x.grad(), w.grad(), b.grad(), r_leaf.grad(), rm, rv};
      };
      const auto f = run(true), u = run(false);
      for (size_t i = 0; i < f.size(); ++i) {
        CAPTURE(i);
        wt::check_close(f[i], u[i], 1e-12, 1e-12);
      }
    }
  }
  // the residual's gradient alone (input, weight and bias need none): the masked gradient is all
  // the backward writes
  auto residual_grad = [&](bool fused) {
    const Tensor r_leaf = r0.clone().requires_grad_(true);
    const Tensor y = fused ? batch_norm_act(x0, Tensor(), Tensor(), w0, b0, Mode::train, Activation::relu, 0.1, 1e-5,
                                            r_leaf)
                           : activate(batch_norm(x0, Tensor(), Tensor(), w0, b0, Mode::train) + r_leaf,
                                      Activation::relu);
    (y * gy).sum().backward();
    return r_leaf.grad();
  };
  const Tensor rg = residual_grad(true);
  wt::check_close(rg, residual_grad(false), 0, 0);
  CHECK(eq(rg, 0.0).sum().item<int64_t>() > 0);  // the mask zeroed some
  gradcheck([](const V& v) {
    return batch_norm_act(v[0], Tensor(), Tensor(), v[1], v[2], Mode::train, Activation::relu, 0.1, 1e-5, v[3]);
  }, {spread({2, 3, 4, 5}), spread({5}, 0.5, 4, 3), spread({5}, -1, 3, 4), spread({2, 3, 4, 5}, -2, 2, 5)});
  // bad residuals name what is wrong
  const Tensor x = randn({2, 3, 6}, DType::f32, &g);
  CHECK_THROWS_WITH_AS(batch_norm_act(x, Tensor(), Tensor(), Tensor(), Tensor(), Mode::train, Activation::relu, 0.1,
                                      1e-5, randn({2, 3, 5}, DType::f32, &g)),
                       doctest::Contains("the residual must match the input [2, 3, 6]"), ShapeError);
  CHECK_THROWS_WITH_AS(batch_norm_act(x, Tensor(), Tensor(), Tensor(), Tensor(), Mode::train, Activation::silu, 0.1,
                                      1e-5, randn({2, 3, 6}, DType::f32, &g)),
                       doctest::Contains("before ReLU or no activation only"), ValueError);
}

// Eval mode is one pass, act(x * scale + shift + residual), with scale and shift worked out in the
// statistics' dtype: gradients by finite differences (through x, the weight, the bias and the
// residual), and 16-bit input rounded once, on the way out. Composed of bf16 ops it rounded the
// coefficients, the product, the sum and the residual add, and erred by many ulps of the output
// wherever x * scale and the shift nearly cancel.
TEST_CASE("batch_norm in eval mode: gradients, and 16-bit input rounded once") {
  const Tensor rm = tensor({0.3, -0.2, 2.5, 0.0, 1.0}, DType::f64), rv = tensor({1.5, 0.5, 2.0, 1.0, 0.7}, DType::f64);
  for (Activation act : {Activation::none, Activation::relu, Activation::relu6, Activation::silu}) {
    CAPTURE(static_cast<int>(act));
    gradcheck([&](const V& v) { return batch_norm_act(v[0], rm, rv, v[1], v[2], Mode::eval, act, 0.1, 1e-5); },
              {spread({2, 3, 4, 5}), spread({5}, 0.5, 4, 3), spread({5}, -1, 3, 4)});
  }
  gradcheck([&](const V& v) {
    return batch_norm_act(v[0], rm, rv, v[1], v[2], Mode::eval, Activation::relu, 0.1, 1e-5, v[3]);
  }, {spread({2, 3, 4, 5}), spread({5}, 0.5, 4, 3), spread({5}, -1, 3, 4), spread({2, 3, 4, 5}, -2, 2, 5)});
  gradcheck([&](const V& v) { return batch_norm(v[0], rm, rv, Tensor(), Tensor(), Mode::eval); }, {spread({6, 5})});

  wt::for_each_device([](Device dev) {
    Generator g(21);
    const int64_t C = 24;
    // the mean sits inside the data, so x * scale and the shift cancel for many elements
    const Tensor x64 = uniform({16, 9, C}, 2.0, 8.0, DType::f64, &g), r64 = uniform({16, 9, C}, -1.0, 1.0, DType::f64, &g);
    const Tensor w64 = uniform({C}, 0.5, 1.5, DType::f64, &g), b64 = uniform({C}, -1.0, 1.0, DType::f64, &g);
    const Tensor rm32 = full({C}, 5.0, TensorOptions(DType::f32)), rv32 = uniform({C}, 1.0, 3.0, DType::f32, &g);
    for (DType dt : {DType::bf16, DType::f16}) {
      CAPTURE(dt);
      // the reference sees what the op sees: x and the residual in dt, f32 parameters and statistics
      const Tensor x = x64.to(dt), r = r64.to(dt), w = w64.to(DType::f32), b = b64.to(DType::f32);
      const Tensor scale = w.to(DType::f64) / sqrt(rv32.to(DType::f64) + 1e-5);
      const Tensor ref = relu(x.to(DType::f64) * scale + (b.to(DType::f64) - rm32.to(DType::f64) * scale) +
                              r.to(DType::f64));
      const Tensor y = batch_norm_act(x.to(dev), rm32.to(dev), rv32.to(dev), w.to(dev), b.to(dev), Mode::eval,
                                      Activation::relu, 0.1, 1e-5, r.to(dev));
      REQUIRE(y.dtype() == dt);
      // one rounding: at most half an ulp of the result (2^-8 of it for bf16's 8-bit significand,
      // 2^-11 for f16's 11) plus f32's own error on terms that reach about 10
      const double half_ulp = dt == DType::bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
      const auto got = wt::values(y.cpu().to(DType::f64)), want = wt::values(ref);
      int64_t bad = 0;
      for (size_t i = 0; i < got.size(); ++i)
        if (std::fabs(got[i] - want[i]) > half_ulp * std::fabs(want[i]) + 1e-5) ++bad;
      CHECK(bad == 0);
    }
  });
}

// The eval node keeps its input only for what reads it in the backward (the scale's gradient,
// SiLU's or ReLU6's derivative): a frozen batch norm in a fine-tuned network must not hold every
// activation before it alive. The input is a temporary here, so what the graph keeps shows in the
// live bytes.
TEST_CASE("batch_norm in eval mode keeps its input for the backward only when a gradient reads it") {
  Generator g(14);
  const Tensor x0 = randn({8, 16, 16, 64}, DType::f32, &g).requires_grad_(true);  // 512 KiB
  const Tensor rm = zeros({64}), rv = ones({64});
  const Tensor w_frozen = ones({64}), b_frozen = zeros({64});
  const Tensor w = ones({64}).requires_grad_(true), b = zeros({64}).requires_grad_(true);
  const size_t xbytes = static_cast<size_t>(x0.numel()) * 4;
  auto kept = [&](const Tensor& wt, const Tensor& bt, Activation act) {
    const size_t base = cpu_allocator().stats().allocated;
    Tensor y;
    {
      const Tensor h = x0 * 2.0;
      y = batch_norm_act(h, rm, rv, wt, bt, Mode::eval, act);
    }
    return cpu_allocator().stats().allocated - base;  // y, and what the graph keeps
  };
  for (Activation act : {Activation::none, Activation::relu}) {
    CAPTURE(static_cast<int>(act));
    CHECK(kept(w_frozen, b_frozen, act) < xbytes + xbytes / 2);  // y and a few per-channel values
    CHECK(kept(w, b, act) >= 2 * xbytes);                        // the input too: the weight's gradient reads it
  }
  CHECK(kept(w_frozen, b_frozen, Activation::silu) >= 2 * xbytes);  // SiLU's derivative reads it
}

// Every per-channel tensor and the residual must be on the input's device (the kernels read them
// through it): a clear error, not a kernel reading another device's pointer.
TEST_CASE("batch_norm: parameters, statistics or residual on another device") {
  if (!cuda_is_available()) return;  // needs two devices
  Generator g(15);
  const Tensor x = randn({4, 3, 6}, DType::f32, &g).to(Device::cuda(0));
  const Tensor on_gpu = ones({6}).to(Device::cuda(0)), on_cpu = ones({6});
  for (Mode mode : {Mode::train, Mode::eval}) {
    CAPTURE(static_cast<int>(mode));
    CHECK_THROWS_WITH_AS(batch_norm(x, on_gpu, on_gpu, on_cpu, on_gpu, mode), doctest::Contains("weight is on cpu"),
                         DeviceError);
    CHECK_THROWS_WITH_AS(batch_norm(x, on_cpu, on_gpu, on_gpu, on_gpu, mode),
                         doctest::Contains("running_mean is on cpu"), DeviceError);
    CHECK_THROWS_WITH_AS(batch_norm_act(x, on_gpu, on_gpu, on_gpu, on_gpu, mode, Activation::relu, 0.1, 1e-5,
                                        ones({4, 3, 6})),
                         doctest::Contains("residual is on cpu"), DeviceError);
  }
}

// The same rule for the other ops whose kernels read operands through the input's backend.
TEST_CASE("layer_norm, conv2d, attention, the class losses and scatter_add: an operand on another device") {
  if (!cuda_is_available()) return;  // needs two devices
  const Device gpu = Device::cuda(0);
  const Tensor x = randn({2, 5, 6}).to(gpu);
  CHECK_THROWS_WITH_AS(layer_norm(x, {6}, ones({6}), zeros({6}).to(gpu)), doctest::Contains("weight is on cpu"),
                       DeviceError);
  CHECK_THROWS_WITH_AS(layer_norm(x, {6}, ones({6}).to(gpu), zeros({6})), doctest::Contains("bias is on cpu"),
                       DeviceError);
  const Tensor img = randn({1, 5, 5, 3}).to(gpu), w = randn({4, 3, 3, 3}).to(gpu);
  CHECK_THROWS_WITH_AS(conv2d(img, w, zeros({4})), doctest::Contains("bias is on cpu"), DeviceError);
  CHECK_THROWS_WITH_AS(conv2d(img, randn({4, 3, 3, 3})), doctest::Contains("weight is on cpu"), DeviceError);
  const Tensor q = randn({1, 2, 3, 4}).to(gpu);
  AttentionOptions o;
  o.mask = ones({3, 3}, DType::boolean);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, q, q, o), doctest::Contains("mask is on cpu"), DeviceError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, randn({1, 2, 3, 4}), q), doctest::Contains("key is on cpu"),
                       DeviceError);
  const Tensor logits = randn({4, 3}).to(gpu);
  const Tensor y = zeros({4}, DType::i64).to(gpu);
  CrossEntropyOptions ce;
  ce.weight = ones({3});
  CHECK_THROWS_WITH_AS(cross_entropy(logits, y, ce), doctest::Contains("weight is on cpu"), DeviceError);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({4}, DType::i64)), doctest::Contains("target is on cpu"),
                       DeviceError);
  CHECK_THROWS_WITH_AS(nll_loss(logits, y, ones({3})), doctest::Contains("weight is on cpu"), DeviceError);
  CHECK_THROWS_WITH_AS(scatter_add(zeros({2, 3}).to(gpu), 1, zeros({2, 2}, DType::i64).to(gpu), ones({2, 2})),
                       doctest::Contains("src is on cpu"), DeviceError);
  CHECK_THROWS_WITH_AS(scatter_add(zeros({2, 3}).to(gpu), 1, zeros({2, 2}, DType::i64), ones({2, 2}).to(gpu)),
                       doctest::Contains("index is on cpu"), DeviceError);
}

TEST_CASE("batch_norm_act keeps only the batch norm's input for the backward, batch_norm then silu keeps two") {
  // [8, 16, 16, 64] f32 is 512 KiB, a size class of its own: the difference in live bytes with the
  // graph alive is exactly the silu input that the separate ops save.
  Generator g(12);
  const Tensor x = randn({8, 16, 16, 64}, DType::f32, &g).requires_grad_(true);
  const Tensor w = ones({64}).requires_grad_(true), b = zeros({64}).requires_grad_(true);
  const size_t base = cpu_allocator().stats().allocated;
  size_t fused_bytes = 0, separate_bytes = 0;
  {
    const Tensor y = batch_norm_act(x, Tensor(), Tensor(), w, b, Mode::train, Activation::silu);
    fused_bytes = cpu_allocator().stats().allocated - base;
  }
  {
    const Tensor y = silu(batch_norm(x, Tensor(), Tensor(), w, b, Mode::train));
    separate_bytes = cpu_allocator().stats().allocated - base;
  }
  CHECK(separate_bytes - fused_bytes == x.numel() * sizeof(float));
  CHECK(fused_bytes >= x.numel() * sizeof(float));  // the output itself
}

TEST_CASE("normalization errors") {
  CHECK_THROWS_WITH_AS(batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), Mode::train),
                       doctest::Contains("more than 1 value per channel"), ShapeError);
  CHECK_THROWS_AS(batch_norm(zeros({4, 3}), zeros({2}), zeros({2}), Tensor(), Tensor(), Mode::eval), ShapeError);
  CHECK_THROWS_AS(batch_norm(zeros({4, 3}), Tensor(), Tensor(), Tensor(), Tensor(), Mode::eval), ValueError);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 3}), {4}), doctest::Contains("normalized_shape"), ShapeError);
  CHECK_THROWS_AS(layer_norm(zeros({2, 3}), {3}, zeros({4})), ShapeError);
  CHECK_THROWS_AS(group_norm(zeros({2, 4, 4, 6}), 4), ShapeError);
}
