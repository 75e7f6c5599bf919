// Parity of the fused kernels: cross_entropy's one-pass forward and backward (warp and block rows),
// linear's cuBLASLt bias / activation epilogue and its f64 fallback, the multi-tensor optimizer
// steps, and the TF32 matmul precision.
#include "parity.hpp"

using namespace wanwu;
using cp::kCuda;

namespace {

// Class indices in [0, C) with every `every`-th row (from row 1) set to ignore_index.
// t's values on the device in a view one element into a larger buffer: not 16-byte aligned, so the
// multi-tensor kernels move its chunks one value at a time instead of in vectors.
Tensor misaligned_on_device(const Tensor& t) {
  Tensor big = empty({t.numel() + 1}, TensorOptions(t.dtype()).device(kCuda));
  Tensor v = big.narrow(0, 1, t.numel());
  v.copy_(t);
  return v;
}

Tensor class_targets(int64_t N, int64_t C, int64_t ignore_index, int64_t every, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> t = randint(0, C, {N}, TensorOptions(DType::i64), &g).tolist<int64_t>();
  if (every > 0)
    for (int64_t i = 1; i < N; i += every) t[i] = ignore_index;
  return from_vector(t, {N}, TensorOptions(DType::i64));
}

double max_abs_diff(const Tensor& got, const Tensor& ref, double& ref_max) {
  const auto g = cp::host_values(got), r = cp::host_values(ref);
  double d = 0;
  ref_max = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    d = std::max(d, std::fabs(g[i] - r[i]));
    ref_max = std::max(ref_max, std::fabs(r[i]));
  }
  return d;
}

}  // namespace

TEST_CASE("fused cross_entropy: weights, label smoothing, ignore_index and every reduction, warp and block rows") {
  struct Case {
    int64_t N, C, ignore_index, ignore_every;
  };
  // C = 10 and 300: a warp per row (the smallest and the largest register width); C = 1000 and
  // 2000: a block per row; one row of 3 classes; and an ignore_index that is a real class
  const std::vector<Case> cases = {
      {37, 10, -100, 5}, {23, 300, 2, 3}, {19, 1000, -100, 4}, {9, 2000, -100, 2}, {1, 3, -100, 0}};
  for (DType dt : cp::kFloatTypes) {
    for (const Case& k : cases) {
      CAPTURE(k.N);
      CAPTURE(k.C);
      const Tensor logits = cp::rnd({k.N, k.C}, -4, 4, 60 + k.C);
      const Tensor target = class_targets(k.N, k.C, k.ignore_index, k.ignore_every, 61 + k.C);
      const Tensor weight = cp::rnd({k.C}, 0.2, 2.0, 62 + k.C);
      for (bool weighted : {false, true}) {
        for (double smoothing : {0.0, 0.1}) {
          for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean}) {
            CAPTURE(weighted);
            CAPTURE(smoothing);
            CAPTURE(static_cast<int>(r));
            CrossEntropyOptions o;
            o.ignore_index = k.ignore_index;
            o.reduction = r;
            o.label_smoothing = smoothing;
            cp::parity("cross_entropy", [&](const std::vector<Tensor>& in) {
              CrossEntropyOptions oo = o;
              if (weighted) oo.weight = in[2];
              return cross_entropy(in[0], in[1], oo);
            }, {logits, target, weight}, dt);
          }
        }
      }
    }
  }
}

TEST_CASE("fused cross_entropy: every row ignored") {
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor logits = cp::rnd({6, 40}, -3, 3, 70);
    const Tensor ignored = from_vector(std::vector<int64_t>(6, -100), {6}, TensorOptions(DType::i64));
    CrossEntropyOptions o;
    o.reduction = Reduction::sum;
    cp::parity("cross_entropy all ignored",
               [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], o); }, {logits, ignored}, dt);
  }
}

TEST_CASE("linear with a fused bias and activation epilogue, 2-D and 3-D input, and the f64 fallback") {
  const Tensor w = cp::rnd({12, 24}, -1, 1, 80), b = cp::rnd({12}, -1, 1, 81);
  for (DType dt : cp::kFloatTypes) {
    for (GemmEpilogue act : {GemmEpilogue::none, GemmEpilogue::relu, GemmEpilogue::gelu_tanh}) {
      for (bool with_bias : {false, true}) {
        for (const Shape& xs : {Shape{17, 24}, Shape{3, 5, 24}}) {
          CAPTURE(static_cast<int>(act));
          CAPTURE(with_bias);
          CAPTURE(xs);
          const Tensor x = cp::rnd(xs, -1, 1, 82);
          auto f = [&](const std::vector<Tensor>& in) {
            return linear(in[0], in[1], with_bias ? in[2] : Tensor(), act);
          };
          cp::parity("linear epilogue", f, {x, w, b}, dt);
          // without gradients GELU stays in the epilogue too (with them linear composes it); cuBLASLt
          // documents no accuracy for its GELU, which may use a faster tanh than the CPU's
          const bool f32_gelu = dt == DType::f32 && act == GemmEpilogue::gelu_tanh;
          cp::parity("linear epilogue, inference", f, {x, w, b}, dt, false,
                     f32_gelu ? cp::Tol{1e-3, 2e-4} : cp::tol_for(dt));
        }
      }
    }
  }
  // no input features: the output is the bias (cuBLAS is not called); no output features
  for (DType dt : cp::kFloatTypes) {
    cp::parity("linear, 0 input features", [](const std::vector<Tensor>& in) {
      return linear(in[0], in[1], in[2], GemmEpilogue::relu);
    }, {cp::rnd({5, 0}), cp::rnd({3, 0}), cp::rnd({3}, -1, 1, 83)}, dt);
    cp::parity("linear, 0 output features", [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); },
               {cp::rnd({5, 4}), cp::rnd({0, 4})}, dt);
  }
  // the backend call with a batch: one bias for every batch entry (cuBLASLt's bias batch stride 0)
  for (DType dt : cp::kFloatTypes) {
    for (GemmEpilogue act : {GemmEpilogue::none, GemmEpilogue::relu, GemmEpilogue::gelu_tanh}) {
      CAPTURE(dt);
      CAPTURE(static_cast<int>(act));
      // f64 references of the values the device sees
      const Tensor a = cp::rnd({3, 5, 9}, -1, 1, 83).to(dt).to(DType::f64);
      const Tensor bb = cp::rnd({3, 9, 7}, -1, 1, 84).to(dt).to(DType::f64);
      const Tensor bias = cp::rnd({7}, -1, 1, 85).to(dt).to(DType::f64);
      Tensor ref = empty({3, 5, 7}, TensorOptions(DType::f64));
      cpu_backend().gemm_bias_act(ref, a, bb, bias, act);
      Tensor got = empty({3, 5, 7}, TensorOptions(dt).device(kCuda));
      backend_for(kCuda).gemm_bias_act(got, a.to(dt).to(kCuda), bb.to(dt).to(kCuda), bias.to(dt).to(kCuda), act);
      const cp::Tol tol = dt == DType::f32 && act == GemmEpilogue::gelu_tanh ? cp::Tol{1e-3, 2e-4} : cp::tol_for(dt);
      cp::compare("batched gemm_bias_act", got, ref, tol);
      Tensor plain = empty({3, 5, 7}, TensorOptions(dt).device(kCuda));
      backend_for(kCuda).gemm_bias_act(plain, a.to(dt).to(kCuda), bb.to(dt).to(kCuda), Tensor(), act);
      Tensor plain_ref = empty({3, 5, 7}, TensorOptions(DType::f64));
      cpu_backend().gemm_bias_act(plain_ref, a, bb, Tensor(), act);
      cp::compare("batched gemm_bias_act without bias", plain, plain_ref, tol);
    }
  }
  // a NaN in the product stays NaN through the activation, as on the CPU and in torch.relu: at
  // sizes whose rows are 16-byte multiples in every dtype, so cuBLASLt's own epilogue runs
  for (DType dt : cp::kFloatTypes) {
    for (GemmEpilogue act : {GemmEpilogue::relu, GemmEpilogue::gelu_tanh}) {
      CAPTURE(dt);
      CAPTURE(static_cast<int>(act));
      Tensor a = cp::rnd({1, 16, 32}, -1, 1, 86).to(dt).to(DType::f64);
      a.narrow(1, 3, 1).fill_(std::numeric_limits<double>::quiet_NaN());
      const Tensor bb = cp::rnd({1, 32, 16}, -1, 1, 87).to(dt).to(DType::f64);
      const Tensor bias = cp::rnd({16}, -1, 1, 88).to(dt).to(DType::f64);
      Tensor ref = empty({1, 16, 16}, TensorOptions(DType::f64));
      cpu_backend().gemm_bias_act(ref, a, bb, bias, act);
      REQUIRE(std::isnan(ref.narrow(1, 3, 1).flatten().tolist<double>()[5]));
      Tensor got = empty({1, 16, 16}, TensorOptions(dt).device(kCuda));
      backend_for(kCuda).gemm_bias_act(got, a.to(dt).to(kCuda), bb.to(dt).to(kCuda), bias.to(dt).to(kCuda), act);
      const cp::Tol tol = dt == DType::f32 && act == GemmEpilogue::gelu_tanh ? cp::Tol{1e-3, 2e-4} : cp::tol_for(dt);
      cp::compare("gemm_bias_act with a NaN row", got, ref, tol);
    }
  }
}

// Sizes whose rows are whole 16-byte multiples in every dtype, which cuBLASLt's f16/bf16 epilogues
// accept (the odd sizes above may leave them to the GEMM-then-kernel fallback); a bias one element
// into its storage, which the heuristic declines, so the fallback runs; and TF32 products with the
// epilogue.
TEST_CASE("linear epilogue at aligned sizes, with a misaligned bias, and under TF32") {
  const Tensor x = cp::rnd({32, 64}, -1, 1, 86), w = cp::rnd({64, 64}, -0.3, 0.3, 87), b = cp::rnd({65}, -1, 1, 88);
  for (DType dt : cp::kFloatTypes) {
    for (GemmEpilogue act : {GemmEpilogue::none, GemmEpilogue::relu, GemmEpilogue::gelu_tanh}) {
      CAPTURE(static_cast<int>(act));
      const cp::Tol tol = dt == DType::f32 && act == GemmEpilogue::gelu_tanh ? cp::Tol{1e-3, 2e-4} : cp::tol_for(dt);
      for (bool grads : {true, false}) {
        CAPTURE(grads);
        cp::parity("linear epilogue, aligned", [&](const std::vector<Tensor>& in) {
          return linear(in[0], in[1], in[2].narrow(0, 0, 64), act);
        }, {x, w, b}, dt, grads, tol);
        cp::parity("linear epilogue, bias not 16-byte aligned", [&](const std::vector<Tensor>& in) {
          return linear(in[0], in[1], in[2].narrow(0, 1, 64), act);
        }, {x, w, b}, dt, grads, tol);
      }
    }
  }
  for (GemmEpilogue act : {GemmEpilogue::none, GemmEpilogue::relu, GemmEpilogue::gelu_tanh}) {
    CAPTURE(static_cast<int>(act));
    MatmulPrecisionGuard guard(MatmulPrecision::tf32);
    // TF32 rounds the inputs to 10-bit mantissas: about 1e-3 relative over 64 terms
    cp::parity("linear epilogue, TF32", [&](const std::vector<Tensor>& in) {
      return linear(in[0], in[1], in[2].narrow(0, 0, 64), act);
    }, {x, w, b}, DType::f32, true, cp::Tol{5e-3, 2e-3});
  }
}

// Every register width of the warp-per-row kernels (up to 16 values per lane: C = 50, 100, 200
// fill 2, 4 and 8) and classes on axis 1 of a [N, C, d] input (the op moves them last first).
TEST_CASE("fused cross_entropy: every warp row width, and classes on axis 1") {
  for (DType dt : cp::kFloatTypes) {
    for (int64_t C : {50, 100, 200}) {
      CAPTURE(C);
      const Tensor logits = cp::rnd({21, C}, -4, 4, 90 + C), weight = cp::rnd({C}, 0.2, 2.0, 91 + C);
      const Tensor target = class_targets(21, C, -100, 4, 92 + C);
      CrossEntropyOptions o;
      o.label_smoothing = 0.1;
      cp::parity("cross_entropy", [&](const std::vector<Tensor>& in) {
        CrossEntropyOptions oo = o;
        oo.weight = in[2];
        return cross_entropy(in[0], in[1], oo);
      }, {logits, target, weight}, dt);
    }
    const Tensor logits = cp::rnd({4, 7, 3}, -4, 4, 95);
    const Tensor target = class_targets(12, 7, -100, 5, 96).view({4, 3});
    for (Reduction r : {Reduction::none, Reduction::mean}) {
      CAPTURE(static_cast<int>(r));
      CrossEntropyOptions o;
      o.reduction = r;
      cp::parity("cross_entropy [N, C, d]",
                 [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], o); }, {logits, target}, dt);
    }
  }
}

TEST_CASE("multi-tensor SGD and Adam kernels: many tensors of mixed sizes and dtypes over several launches") {
  // 72 tensors: 40-odd non-empty f32 ones share a kernel, the rest split into bf16, f16 and f64
  // parameters, bf16 gradients of f32 parameters and entries without the optional state (whose
  // chunks of more than one round, 4097 and 100000 elements, must start each round from zero
  // state). Launches hold at most 48 tensors, so some groups take more than one. Every sixth
  // entry's device tensors are misaligned views, and the gradient alone of the entry after it: their
  // chunks take the one-value path, the others move 16-byte vectors.
  const std::vector<int64_t> sizes = {0, 1, 7, 4097, 100000, 4096, 33, 8193, 1000, 2, 12345, 513, 300};
  auto on_dev = [](int i, const Tensor& t) { return i % 6 == 1 ? misaligned_on_device(t) : t.to(kCuda); };
  auto grad_on_dev = [](int i, const Tensor& g) { return i % 6 == 1 || i % 6 == 2 ? misaligned_on_device(g) : g.to(kCuda); };
  const int count = 72;
  auto param_dtype = [](int i) {
    return i % 12 == 5 ? DType::bf16 : i % 12 == 7 ? DType::f16 : i % 12 == 11 ? DType::f64 : DType::f32;
  };
  auto grad_dtype = [&](int i) { return i % 12 == 9 ? DType::bf16 : param_dtype(i); };
  auto has_state = [](int i) { return i % 17 != 4; };
  auto tol = [](DType d) {
    return d == DType::f64 ? cp::Tol{1e-12, 1e-13} : d == DType::f32 ? cp::Tol{1e-5, 1e-6} : cp::Tol{1e-2, 1e-2};
  };
  auto grad = [&](int i, int step) {
    return cp::rnd({sizes[i % sizes.size()]}, -1, 1, 1000 + 100 * step + i).to(grad_dtype(i));
  };

  // SGD with momentum, nesterov and weight decay, then with dampening and no nesterov; entries
  // with and without a momentum buffer
  for (bool nesterov : {true, false}) {
    CAPTURE(nesterov);
    std::vector<Tensor> pc, pd, bc, bd;
    for (int i = 0; i < count; ++i) {
      const int64_t n = sizes[i % sizes.size()];
      pc.push_back(cp::rnd({n}, -1, 1, 900 + i).to(param_dtype(i)));
      pd.push_back(on_dev(i, pc.back()));
      bc.push_back(has_state(i) ? zeros({n}, TensorOptions(param_dtype(i))) : Tensor());
      bd.push_back(has_state(i) ? on_dev(i, bc.back()) : Tensor());
    }
    for (int step = 0; step < 3; ++step) {
      SgdStepParams s;
      s.lr = 0.1;
      s.momentum = 0.9;
      s.weight_decay = 1e-2;
      s.nesterov = nesterov;
      s.dampening = nesterov ? 0.0 : 0.1;
      s.init_buffer = step == 0;
      std::vector<SgdTensors> cpu_ts, dev_ts;
      for (int i = 0; i < count; ++i) {
        const Tensor g = grad(i, step);
        cpu_ts.push_back({pc[i], g, bc[i]});
        dev_ts.push_back({pd[i], grad_on_dev(i, g), bd[i]});
      }
      cpu_backend().sgd_step_multi(cpu_ts, s);
      backend_for(kCuda).sgd_step_multi(dev_ts, s);
    }
    for (int i = 0; i < count; ++i) {
      CAPTURE(i);
      cp::compare("sgd param", pd[i], pc[i], tol(param_dtype(i)));
      if (has_state(i)) cp::compare("sgd momentum buffer", bd[i], bc[i], tol(param_dtype(i)));
    }
  }

  for (bool amsgrad : {false, true}) {
    CAPTURE(amsgrad);
    std::vector<Tensor> pc, pd, mc, md, vc, vd, xc, xd;
    for (int i = 0; i < count; ++i) {
      const int64_t n = sizes[i % sizes.size()];
      const TensorOptions o(param_dtype(i));
      pc.push_back(cp::rnd({n}, -1, 1, 900 + i).to(param_dtype(i)));
      pd.push_back(on_dev(i, pc.back()));
      mc.push_back(zeros({n}, o));
      md.push_back(on_dev(i, mc.back()));
      vc.push_back(zeros({n}, o));
      vd.push_back(on_dev(i, vc.back()));
      xc.push_back(amsgrad && has_state(i) ? zeros({n}, o) : Tensor());
      xd.push_back(xc.back().defined() ? on_dev(i, xc.back()) : Tensor());
    }
    for (int step = 1; step <= 3; ++step) {
      AdamStepParams s;
      s.lr = 1e-2;
      s.weight_decay = 1e-2;
      s.decoupled = !amsgrad;
      s.amsgrad = amsgrad;
      s.step_size = s.lr / (1.0 - std::pow(s.beta1, step));
      s.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(s.beta2, step));
      std::vector<AdamTensors> cpu_ts, dev_ts;
      for (int i = 0; i < count; ++i) {
        const Tensor g = grad(i, step);
        cpu_ts.push_back({pc[i], g, mc[i], vc[i], xc[i]});
        dev_ts.push_back({pd[i], grad_on_dev(i, g), md[i], vd[i], xd[i]});
      }
      cpu_backend().adam_step_multi(cpu_ts, s);
      backend_for(kCuda).adam_step_multi(dev_ts, s);
    }
    for (int i = 0; i < count; ++i) {
      CAPTURE(i);
      const cp::Tol t = tol(param_dtype(i));
      cp::compare("adam param", pd[i], pc[i], t);
      cp::compare("adam exp_avg", md[i], mc[i], t);
      cp::compare("adam exp_avg_sq", vd[i], vc[i], t);
      if (xc[i].defined()) cp::compare("adam max_exp_avg_sq", xd[i], xc[i], t);
    }
  }
}

TEST_CASE("multi-tensor gradient passes: scale_multi's values and inf/NaN flag, norm_multi's norms, over several launches") {
  // 96 tensors in four dtypes: the 51 non-empty f32 ones (more than one launch's 48) span two
  // launches, so a norm's partial sums come from the blocks of several launches. Every fifth device
  // tensor is a misaligned view (one value at a time), the others move 16-byte vectors.
  const std::vector<int64_t> sizes = {0, 1, 7, 4097, 100000, 4096, 33, 8193, 1000, 2, 12345, 513};
  const DType dtypes[] = {DType::f32, DType::f32, DType::f32, DType::f32, DType::bf16, DType::f16, DType::f64};
  const int count = 96;
  auto make = [&](uint64_t seed) {
    std::vector<Tensor> c;
    for (int i = 0; i < count; ++i)
      c.push_back(cp::rnd({sizes[i % sizes.size()]}, -3, 3, seed + i).to(dtypes[i % 7]));
    return c;
  };
  auto to_dev = [](const std::vector<Tensor>& ts) {
    std::vector<Tensor> d;
    for (size_t i = 0; i < ts.size(); ++i) d.push_back(i % 5 == 3 ? misaligned_on_device(ts[i]) : ts[i].to(kCuda));
    return d;
  };
  const std::vector<Tensor> c = make(3000), d = to_dev(c);
  for (double p : {1.0, 2.0, 3.0, std::numeric_limits<double>::infinity()}) {
    CAPTURE(p);
    const NormParams np = NormParams::of_order(p);
    Tensor rc = empty({1}, TensorOptions(DType::f64)), rd = empty({1}, TensorOptions(DType::f64).device(kCuda));
    cpu_backend().norm_multi(c, np, rc);
    backend_for(kCuda).norm_multi(d, np, rd);
    const double want = rc.item<double>(), got = rd.item<double>();
    CHECK(got == doctest::Approx(want).epsilon(1e-12));
    backend_for(kCuda).norm_multi(d, np, rd);
    CHECK(rd.item<double>() == got);  // the same partial sums in the same order on every call
  }
  {  // no tensors, or only empty ones: 0
    Tensor rd = full({1}, 5.0, TensorOptions(DType::f64).device(kCuda));
    backend_for(kCuda).norm_multi({d[0]}, NormParams::of_order(2.0), rd);
    CHECK(rd.item<double>() == 0.0);
  }
  // scaling: the same compute-type products as the CPU, bit for bit; no flag
  {
    std::vector<Tensor> cc, dd;
    for (const Tensor& t : c) cc.push_back(t.clone());
    for (size_t i = 0; i < d.size(); ++i) dd.push_back(i % 5 == 3 ? misaligned_on_device(d[i]) : d[i].clone());
    Tensor fc = zeros({1}, TensorOptions(DType::f32)), fd = zeros({1}, TensorOptions(DType::f32).device(kCuda));
    cpu_backend().scale_multi(cc, 0.37, fc, Tensor());
    backend_for(kCuda).scale_multi(dd, 0.37, fd, Tensor());
    CHECK(fd.item<float>() == 0.0f);
    for (int i = 0; i < count; ++i) {
      CAPTURE(i);
      CHECK(cp::host_values(dd[i]) == cp::host_values(cc[i]));
    }
    // by a divisor read on the device (GradScaler's scale there): float(1 / 3.0), as a host factor
    const Tensor div = full({}, 3.0, TensorOptions(DType::f32).device(kCuda));
    backend_for(kCuda).scale_multi(dd, 0.0, fd, div);
    cpu_backend().scale_multi(cc, static_cast<double>(static_cast<float>(1.0 / 3.0)), fc, Tensor());
    for (int i = 0; i < count; ++i) {
      CAPTURE(i);
      CHECK(cp::host_values(dd[i]) == cp::host_values(cc[i]));
    }
  }
  // one non-finite element anywhere sets the flag: tensors of the first and the second f32 launch
  // (94 is in the second), a chunk's last element, each 2-byte dtype, f64; NaN makes the norms NaN,
  // the max norm too
  const std::vector<std::pair<int, int64_t>> spots = {{94, 12344}, {3, 4096}, {52, 99999}, {4, 4095}, {5, 6}, {6, 32}};
  for (const auto& [k, at] : spots) {
    CAPTURE(k);
    CAPTURE(at);
    std::vector<Tensor> u = to_dev(c);
    REQUIRE(at < u[k].numel());
    u[k].narrow(0, at, 1).fill_(std::numeric_limits<double>::quiet_NaN());
    Tensor fd = zeros({1}, TensorOptions(DType::f32).device(kCuda));
    backend_for(kCuda).scale_multi(u, 0.5, fd, Tensor());
    CHECK(fd.item<float>() == 1.0f);
    for (double p : {2.0, std::numeric_limits<double>::infinity()}) {
      Tensor rd = empty({1}, TensorOptions(DType::f64).device(kCuda));
      backend_for(kCuda).norm_multi(u, NormParams::of_order(p), rd);
      CHECK(std::isnan(rd.item<double>()));
    }
  }
  // the GradScaler and clip_grad_norm_ built on them, on device gradients
  {
    Tensor w = zeros({5000}, TensorOptions(DType::f32).device(kCuda)).requires_grad_();
    optim::SGDOptions o;
    o.lr = 1.0;
    optim::SGD sgd({w}, o);
    amp::GradScaler scaler;
    w.set_grad(full({5000}, 65536.0 * 0.25, TensorOptions(DType::f32).device(kCuda)));
    CHECK(scaler.step(sgd));
    CHECK(cp::host_values(w)[4999] == -0.25);
    scaler.update();
    w.grad().narrow(0, 4321, 1).fill_(std::numeric_limits<double>::infinity());
    CHECK_FALSE(scaler.step(sgd));
    scaler.update();
    CHECK(scaler.get_scale() == 32768.0);
    w.set_grad(full({5000}, 1.0, TensorOptions(DType::f32).device(kCuda)));
    CHECK(optim::clip_grad_norm_({w}, 1.0) == doctest::Approx(std::sqrt(5000.0)).epsilon(1e-12));
    CHECK(cp::host_values(w.grad())[17] == doctest::Approx(1.0 / std::sqrt(5000.0)).epsilon(1e-6));
  }
  // the same with the scale on the device: the kernels skip the inf step, nothing is read back
  {
    Tensor w = zeros({5000}, TensorOptions(DType::f32).device(kCuda)).requires_grad_();
    optim::SGDOptions o;
    o.lr = 1.0;
    optim::SGD sgd({w}, o);
    amp::GradScalerOptions so;
    so.sync = amp::ScalerSync::device;
    amp::GradScaler scaler(so);
    (scaler.scale((w * 0.25).sum())).backward();  // grad = 65536 * 0.25
    CHECK(scaler.step(sgd));
    scaler.update();
    CHECK(cp::host_values(w)[4999] == -0.25);
    w.grad().narrow(0, 4321, 1).fill_(std::numeric_limits<double>::infinity());
    CHECK(scaler.step(sgd));  // gated: the device decides
    scaler.update();
    CHECK(cp::host_values(w)[4999] == -0.25);  // skipped there
    CHECK(scaler.get_scale() == 32768.0);
  }
}

TEST_CASE("amp_update_scale: torch's _amp_update_scale_ rules on the device, as on the CPU and by hand") {
  // (scale, tracker, found_inf) -> (scale, tracker) with growth 2, backoff 0.5, interval 3
  struct Case {
    float scale;
    int32_t tracker;
    float found;
    float want_scale;
    int32_t want_tracker;
  };
  const float big = std::numeric_limits<float>::max();
  const std::vector<Case> cases = {{1024.0f, 0, 0.0f, 1024.0f, 1}, {1024.0f, 2, 0.0f, 2048.0f, 0},
                                   {1024.0f, 2, 1.0f, 512.0f, 0},  {1024.0f, 1, 2.0f, 512.0f, 0},
                                   {big, 2, 0.0f, big, 0},          {3.0f, 1, 0.0f, 3.0f, 2}};
  AmpScaleParams p;
  p.growth_interval = 3;
  for (const Case& c : cases) {
    CAPTURE(c.scale);
    CAPTURE(c.tracker);
    CAPTURE(c.found);
    for (Device dev : {Device::cpu(), kCuda}) {
      Tensor scale = full({}, static_cast<double>(c.scale), TensorOptions(DType::f32).device(dev));
      Tensor tracker = full({}, static_cast<double>(c.tracker), TensorOptions(DType::i32).device(dev));
      Tensor found = full({1}, static_cast<double>(c.found), TensorOptions(DType::f32).device(dev));
      backend_for(dev).amp_update_scale(scale, tracker, found, p);
      CHECK(scale.item<float>() == c.want_scale);
      CHECK(tracker.item<int32_t>() == c.want_tracker);
    }
  }
}

TEST_CASE("TF32 matmul precision: f32 products round to TF32 inside the guard only") {
  Generator g(90);
  const Tensor a = randn({512, 512}, TensorOptions(DType::f32), &g);
  const Tensor b = randn({512, 512}, TensorOptions(DType::f32), &g);
  const Tensor ref = matmul(a.to(DType::f64), b.to(DType::f64));
  const Tensor ad = a.to(kCuda), bd = b.to(kCuda);
  REQUIRE(float32_matmul_precision() == MatmulPrecision::highest);
  double scale = 0, tf32_err = 0;
  {
    MatmulPrecisionGuard guard(MatmulPrecision::tf32);
    CHECK(float32_matmul_precision() == MatmulPrecision::tf32);
    tf32_err = max_abs_diff(matmul(ad, bd), ref, scale);
    MESSAGE("tf32 relative error " << tf32_err / scale);
    CHECK(tf32_err <= 5e-3 * scale);
  }
  CHECK(float32_matmul_precision() == MatmulPrecision::highest);
  const double err = max_abs_diff(matmul(ad, bd), ref, scale);
  MESSAGE("f32 relative error " << err / scale);
  CHECK(err <= 1e-5 * scale);
  // the setting takes effect: TF32's 10-bit mantissa is orders of magnitude coarser than f32's
  CHECK(tf32_err > 10 * err);
}
