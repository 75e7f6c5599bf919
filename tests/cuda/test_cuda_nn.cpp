// Parity of GEMM (cuBLASLt / cuBLAS), softmax, layer and batch norm, the optimizer steps and the
// indexing kernels (index_select, gather, scatter_add, index_add through autograd) and the losses
// built on them.
#include "parity.hpp"

using namespace wanwu;
using cp::kCuda;
using namespace wanwu::optim;

TEST_CASE("matmul: shapes, transposed and sliced operands, batch broadcast, forward and backward") {
  for (DType dt : cp::kFloatTypes) {
    const Tensor a = cp::rnd({17, 33}, -1, 1, 1), b = cp::rnd({33, 9}, -1, 1, 2);
    cp::parity("mm", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b}, dt);
    cp::parity("a @ b.T", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1].t()); },
               {a, cp::rnd({9, 33}, -1, 1, 3)}, dt);
    cp::parity("a.T @ b", [](const std::vector<Tensor>& in) { return matmul(in[0].t(), in[1]); },
               {cp::rnd({33, 17}, -1, 1, 4), b}, dt);
    cp::parity("sliced columns", [](const std::vector<Tensor>& in) { return matmul(in[0].slice(1, 0, 66, 2), in[1]); },
               {cp::rnd({17, 66}, -1, 1, 5), b}, dt);
    cp::parity("batched", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
               {cp::rnd({3, 4, 17, 8}, -1, 1, 6), cp::rnd({3, 4, 8, 5}, -1, 1, 7)}, dt);
    cp::parity("batch broadcast", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
               {cp::rnd({5, 17, 8}, -1, 1, 8), cp::rnd({8, 6}, -1, 1, 9)}, dt);
    cp::parity("linear", [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
               {cp::rnd({2, 7, 24}, -1, 1, 10), cp::rnd({12, 24}, -1, 1, 11), cp::rnd({12}, -1, 1, 12)}, dt);
    cp::parity("vector", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
               {cp::rnd({33}, -1, 1, 13), b}, dt);
  }
  // a larger product: tensor-core paths of cuBLASLt
  cp::parity("256^3 bf16", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
             {cp::rnd({256, 256}, -1, 1, 14), cp::rnd({256, 256}, -1, 1, 15)}, DType::bf16, false);
  cp::parity("256^3 f32", [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
             {cp::rnd({256, 256}, -1, 1, 14), cp::rnd({256, 256}, -1, 1, 15)}, DType::f32, false);
}

TEST_CASE("softmax and log_softmax on the last and on a middle axis") {
  for (DType dt : cp::kFloatTypes) {
    const Tensor x = cp::rnd({4, 7, 300}, -5, 5, 20);
    cp::parity("softmax last", [](const std::vector<Tensor>& in) { return softmax(in[0], -1); }, {x}, dt);
    cp::parity("log_softmax last", [](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); }, {x}, dt);
    cp::parity("softmax middle", [](const std::vector<Tensor>& in) { return softmax(in[0], 1); }, {x}, dt);
    cp::parity("log_softmax first", [](const std::vector<Tensor>& in) { return log_softmax(in[0], 0); }, {x}, dt);
    cp::parity("softmax of a permuted view", [](const std::vector<Tensor>& in) { return softmax(in[0].transpose(1, 2), -1); },
               {x}, dt);
    // every register width of the warp-per-row kernel (rows up to 32, 64, ..., 1024 long), both
    // sides of each boundary, and the block-per-row kernel beyond
    for (int64_t D : {1, 31, 32, 33, 64, 100, 128, 197, 256, 257, 512, 700, 1024, 1025, 3000}) {
      CAPTURE(D);
      const Tensor r = cp::rnd({3, 5, D}, -6, 6, 30 + D);
      cp::parity("softmax rows", [](const std::vector<Tensor>& in) { return softmax(in[0], -1); }, {r}, dt);
      cp::parity("log_softmax rows", [](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); }, {r}, dt);
    }
    // a warp owns up to four short rows at once: row counts that span several blocks and end in
    // a warp with fewer live rows than it owns
    for (int64_t R : {69, 262}) {
      for (int64_t D : {20, 100, 197, 300}) {
        CAPTURE(R);
        CAPTURE(D);
        const Tensor r = cp::rnd({R, D}, -6, 6, 90 + R + D);
        cp::parity("softmax short rows", [](const std::vector<Tensor>& in) { return softmax(in[0], -1); }, {r}, dt);
        cp::parity("log_softmax short rows", [](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); },
                   {r}, dt);
      }
    }
  }
}

TEST_CASE("layer_norm forward and backward, with and without affine parameters") {
  for (DType dt : cp::kFloatTypes) {
    const Tensor x = cp::rnd({6, 5, 96}, -3, 3, 21), w = cp::rnd({96}, 0.5, 1.5, 22), b = cp::rnd({96}, -1, 1, 23);
    cp::parity("layer_norm affine", [](const std::vector<Tensor>& in) { return layer_norm(in[0], {96}, in[1], in[2]); },
               {x, w, b}, dt);
    cp::parity("layer_norm plain", [](const std::vector<Tensor>& in) { return layer_norm(in[0], {5, 96}); }, {x}, dt);
    // a large mean: the variance must not cancel (the offset is in the data, rounded to dt)
    cp::parity("layer_norm offset", [](const std::vector<Tensor>& in) { return layer_norm(in[0], {96}, in[1]); },
               {x + 100.0, w}, dt, true, dt == DType::f32 ? cp::Tol{1e-3, 1e-4} : cp::tol_for(dt));
    // every register width of the vector forward (up to 16 vectors of 16 bytes per lane: 4096
    // values in 16-bit types, 2048 in f32) and input gradient (up to 8: 2048 and 1024), their
    // boundaries, rows no vector splits (33, 769), and block rows beyond
    for (int64_t M : {1, 32, 33, 100, 256, 300, 512, 768, 769, 1024, 1100, 1280, 2048, 2056}) {
      CAPTURE(M);
      const Tensor r = cp::rnd({7, M}, -3, 3, 50 + M), rw = cp::rnd({M}, 0.5, 1.5, 51), rb = cp::rnd({M}, -1, 1, 52);
      cp::parity("layer_norm rows", [M](const std::vector<Tensor>& in) { return layer_norm(in[0], {M}, in[1], in[2]); },
                 {r, rw, rb}, dt);
    }
    // a weight and bias one element into their storage (not 16-byte aligned): the vector forward
    // reads them in 16-byte loads, so such views must take the element-wise kernel
    const Tensor w1 = cp::rnd({97}, 0.5, 1.5, 24), b1 = cp::rnd({97}, -1, 1, 25);
    cp::parity("layer_norm, parameters not 16-byte aligned", [](const std::vector<Tensor>& in) {
      return layer_norm(in[0], {96}, in[1].narrow(0, 1, 96), in[2].narrow(0, 1, 96));
    }, {x, w1, b1}, dt);
    // f16/bf16 activations with f32 weight and bias (a model's parameters under autocast)
    cp::parity("layer_norm, parameters in f32", [](const std::vector<Tensor>& in) {
      const DType pd = in[0].dtype() == DType::f64 ? DType::f64 : DType::f32;
      return layer_norm(in[0], {96}, in[1].to(pd), in[2].to(pd));
    }, {x, w, b}, dt);
    // ... at widths where a lane holds several vectors (768, 1280, 2048: the f32 parameters of a
    // vector are two 16-byte loads at 16-bit activations), rows no vector splits (100) and block rows
    for (int64_t M : {100, 768, 1280, 2048, 2056}) {
      CAPTURE(M);
      const Tensor r = cp::rnd({7, M}, -3, 3, 60 + M), rw = cp::rnd({M}, 0.5, 1.5, 61), rb = cp::rnd({M}, -1, 1, 62);
      cp::parity("layer_norm rows, parameters in f32", [M](const std::vector<Tensor>& in) {
        const DType pd = in[0].dtype() == DType::f64 ? DType::f64 : DType::f32;
        return layer_norm(in[0], {M}, in[1].to(pd), in[2].to(pd));
      }, {r, rw, rb}, dt);
    }
    // the activation one element into its storage (contiguous, not 16-byte aligned) with aligned
    // parameters: the element-wise kernels, forward and input gradient
    cp::parity("layer_norm, input not 16-byte aligned", [](const std::vector<Tensor>& in) {
      const int64_t n = in[0].numel();
      const Tensor shifted = cat({in[0].flatten(), in[0].flatten()}).slice(0, 1, n + 1).view(in[0].shape());
      REQUIRE(shifted.is_contiguous());
      return layer_norm(shifted, {96}, in[1], in[2]);
    }, {x, w, b}, dt);
    cp::parity("layer_norm, bias without weight", [](const std::vector<Tensor>& in) {
      return layer_norm(in[0], {96}, Tensor(), in[1]);
    }, {x, b}, dt);
  }
}

TEST_CASE("batch_norm in training and eval mode, forward, backward and running statistics") {
  for (DType dt : cp::kFloatTypes) {
    CAPTURE(dt);
    const Tensor x = cp::rnd({4, 5, 6, 24}, -2, 3, 24), w = cp::rnd({24}, 0.5, 1.5, 25), b = cp::rnd({24}, -1, 1, 26);
    const DType st = dt == DType::f64 ? DType::f64 : DType::f32;
    Tensor rm_c = zeros({24}, st), rv_c = ones({24}, st);
    Tensor rm_d = rm_c.to(kCuda), rv_d = rv_c.to(kCuda);
    int call = 0;
    cp::parity("batch_norm train", [&](const std::vector<Tensor>& in) {
      const bool dev = in[0].device().is_cuda();
      ++call;
      return batch_norm(in[0], dev ? rm_d : rm_c, dev ? rv_d : rv_c, in[1], in[2], Mode::train, 0.1, 1e-5);
    }, {x, w, b}, dt);
    cp::compare("running mean", rm_d, rm_c, cp::tol_for(dt));
    cp::compare("running var", rv_d, rv_c, cp::tol_for(dt));
    cp::parity("batch_norm eval", [&](const std::vector<Tensor>& in) {
      const bool dev = in[0].device().is_cuda();
      return batch_norm(in[0], dev ? rm_d : rm_c, dev ? rv_d : rv_c, in[1], in[2], Mode::eval, 0.1, 1e-5);
    }, {x, w, b}, dt);
    for (Activation act : {Activation::relu, Activation::relu6, Activation::silu}) {
      CAPTURE(static_cast<int>(act));
      cp::parity("batch_norm_act train", [&](const std::vector<Tensor>& in) {
        const bool dev = in[0].device().is_cuda();
        return batch_norm_act(in[0], dev ? rm_d : rm_c, dev ? rv_d : rv_c, in[1], in[2], Mode::train, act, 0.1,
                              1e-5);
      }, {x, w, b}, dt);
    }
    // a residual block's end: relu(batch_norm(x) + r) in the batch norm's output pass
    const Tensor r = cp::rnd({4, 5, 6, 24}, -1, 1, 28);
    for (Activation act : {Activation::none, Activation::relu})
      for (Mode mode : {Mode::train, Mode::eval}) {
        CAPTURE(static_cast<int>(act));
        CAPTURE(static_cast<int>(mode));
        cp::parity("batch_norm_act with a residual", [&](const std::vector<Tensor>& in) {
          const bool dev = in[0].device().is_cuda(), ev = mode == Mode::eval;  // eval reads the running stats
          return batch_norm_act(in[0], ev ? (dev ? rm_d : rm_c) : Tensor(), ev ? (dev ? rv_d : rv_c) : Tensor(), in[1],
                                in[2], mode, act, 0.1, 1e-5, in[3]);
        }, {x, w, b, r}, dt);
      }
    // Under autocast a f16/bf16 activation meets the model's f32 weight and bias: the kernels must
    // read them as f32 and write their gradients as f32.
    for (Activation act : {Activation::none, Activation::relu, Activation::silu}) {
      CAPTURE(static_cast<int>(act));
      cp::parity("batch_norm train, parameters in f32", [&](const std::vector<Tensor>& in) {
        const DType pd = in[0].dtype() == DType::f64 ? DType::f64 : DType::f32;
        return batch_norm_act(in[0], Tensor(), Tensor(), in[1].to(pd), in[2].to(pd), Mode::train, act);
      }, {x, w, b}, dt);
    }
    cp::parity("batch_norm train, parameters in f32, residual and ReLU", [&](const std::vector<Tensor>& in) {
      const DType pd = in[0].dtype() == DType::f64 ? DType::f64 : DType::f32;
      return batch_norm_act(in[0], Tensor(), Tensor(), in[1].to(pd), in[2].to(pd), Mode::train, Activation::relu, 0.1,
                            1e-5, in[3]);
    }, {x, w, b, r}, dt);
    // the parameters' gradients alone (the input needs none: the backward makes no input gradient)
    cp::parity("batch_norm_act train, no input gradient", [&](const std::vector<Tensor>& in) {
      return batch_norm_act(in[0].detach(), Tensor(), Tensor(), in[1], in[2], Mode::train, Activation::relu, 0.1, 1e-5);
    }, {x, w, b}, dt);
    // the residual's gradient alone: the sums pass writes the masked gradient, no other pass runs
    cp::parity("batch_norm_act train, the residual's gradient alone", [&](const std::vector<Tensor>& in) {
      return batch_norm_act(in[0].detach(), Tensor(), Tensor(), in[1].detach(), in[2].detach(), Mode::train,
                            Activation::relu, 0.1, 1e-5, in[3]);
    }, {x, w, b, r}, dt);
    cp::parity("batch_norm 2-D no affine", [&](const std::vector<Tensor>& in) {
      return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), Mode::train);
    }, {cp::rnd({64, 10}, 5, 9, 27)}, dt);
  }
}

// The per-channel sums lay a block out as [rows][channel groups] threads and unroll over rows:
// channel counts that leave a block partly idle (3, and 300 = one full block and a partial one),
// many rows per thread (20000 rows of 64 channels) and row counts that leave a remainder after
// the unrolled trips. Every pass moves 16-byte packs of channels when C splits into them: 64 and
// 2056 do in every dtype (2056 = 257 packs of 8: more groups than a block's threads), 300 in f32
// and f64 but not in f16/bf16 (scalar), 3 in none. Each with the fused ReLU too (its mask is read
// inside both backward passes) and with the input one element into its storage (misaligned: the
// scalar passes).
TEST_CASE("batch_norm over many rows and channel counts that do not fill a block") {
  // {4096, 8}: one channel group per block in f16/bf16 (a block of 1 x 256 threads down the rows)
  const std::vector<Shape> shapes = {{8, 50, 50, 64}, {5003, 3}, {3, 17, 19, 300}, {37, 2056}, {4096, 8}};
  for (DType dt : cp::kFloatTypes) {
    for (const Shape& s : shapes) {
      CAPTURE(dt);
      CAPTURE(s);
      const int64_t C = s.back();
      const Tensor x = cp::rnd(s, 3, 7, 40), w = cp::rnd({C}, 0.5, 1.5, 41), b = cp::rnd({C}, -1, 1, 42);
      for (Activation act : {Activation::none, Activation::relu, Activation::relu6, Activation::silu}) {
        CAPTURE(static_cast<int>(act));
        cp::parity("batch_norm_act train", [&](const std::vector<Tensor>& in) {
          return batch_norm_act(in[0], Tensor(), Tensor(), in[1], in[2], Mode::train, act, 0.1, 1e-5);
        }, {x, w, b}, dt);
      }
      cp::parity("batch_norm_act train, input one element into its storage", [&](const std::vector<Tensor>& in) {
        const int64_t n = in[0].numel();
        const Tensor shifted = cat({in[0].flatten(), in[0].flatten()}).slice(0, 1, n + 1).view(in[0].shape());
        REQUIRE(shifted.is_contiguous());
        return batch_norm_act(shifted, Tensor(), Tensor(), in[1], in[2], Mode::train, Activation::relu, 0.1, 1e-5);
      }, {x, w, b}, dt);
      // a ResNet block's end, relu(batch_norm(x) + r), packed where C splits into packs and
      // element-wise where it does not, and with the residual one element into its storage
      const Tensor r = cp::rnd(s, -4, 1, 43);
      cp::parity("batch_norm_act train, residual", [&](const std::vector<Tensor>& in) {
        return batch_norm_act(in[0], Tensor(), Tensor(), in[1], in[2], Mode::train, Activation::relu, 0.1, 1e-5, in[3]);
      }, {x, w, b, r}, dt);
      cp::parity("batch_norm_act train, residual one element into its storage", [&](const std::vector<Tensor>& in) {
        const int64_t n = in[3].numel();
        const Tensor shifted = cat({in[3].flatten(), in[3].flatten()}).slice(0, 1, n + 1).view(in[3].shape());
        return batch_norm_act(in[0], Tensor(), Tensor(), in[1], in[2], Mode::train, Activation::relu, 0.1, 1e-5,
                              shifted);
      }, {x, w, b, r}, dt);
    }
  }
}

TEST_CASE("fused optimizer steps: SGD (momentum, nesterov, weight decay) and Adam / AdamW (amsgrad)") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dt);
    const Tensor p0 = cp::rnd({1000}, -1, 1, 30).to(dt);
    auto run = [&](Device dev, int kind) {
      Tensor p = p0.clone().to(dev).detach().requires_grad_(true);  // clone: the CPU run must not update p0
      std::unique_ptr<Optimizer> opt;
      if (kind == 0) {
        SGDOptions o;
        o.lr = 0.1;
        o.momentum = 0.9;
        o.weight_decay = 1e-2;
        o.nesterov = Nesterov::yes;
        opt = std::make_unique<SGD>(std::vector<Tensor>{p}, o);
      } else {
        AdamOptions o;
        o.lr = 1e-2;
        o.weight_decay = 1e-2;
        o.amsgrad = kind == 2 ? AmsGrad::yes : AmsGrad::no;
        if (kind == 1) opt = std::make_unique<Adam>(std::vector<Tensor>{p}, o);
        else opt = std::make_unique<AdamW>(std::vector<Tensor>{p}, o);
      }
      for (int step = 0; step < 5; ++step) {
        opt->zero_grad();
        (square(p - 0.3) * (1.0 + step)).sum().backward();
        opt->step();
      }
      return p.detach();
    };
    for (int kind = 0; kind < 3; ++kind) {
      CAPTURE(kind);
      cp::compare("optimizer trajectory", run(kCuda, kind), run(Device::cpu(), kind),
                  dt == DType::f64 ? cp::Tol{1e-12, 1e-12} : cp::Tol{1e-5, 1e-6});
    }
  }
}

TEST_CASE("index_select, gather, scatter_add, one_hot and cross_entropy, forward and backward") {
  const Tensor idx = from_vector(std::vector<double>{3, 0, 3, 1, 4}, {5}, DType::i64);
  Generator g(5);
  const Tensor gidx = randint(0, 6, {4, 3, 5}, TensorOptions(DType::i64), &g);
  for (DType dt : cp::kFloatTypes) {
    const Tensor x = cp::rnd({5, 6, 5}, -1, 1, 40);
    cp::parity("index_select dim 0 (repeats)", [&](const std::vector<Tensor>& in) { return index_select(in[0], 0, in[1]); },
               {x, idx}, dt);
    cp::parity("index_select dim 2", [&](const std::vector<Tensor>& in) { return index_select(in[0], 2, in[1]); },
               {x, idx}, dt);
    cp::parity("gather dim 1", [&](const std::vector<Tensor>& in) { return gather(in[0].slice(0, 0, 4), 1, in[1]); },
               {x, gidx}, dt);
    cp::parity("scatter_add dim 1", [&](const std::vector<Tensor>& in) {
      return scatter_add(in[0], 1, in[1], in[2]);
    }, {cp::rnd({4, 6, 5}, -1, 1, 41), gidx, cp::rnd({4, 3, 5}, -1, 1, 42)}, dt);
    const Tensor logits = cp::rnd({16, 10}, -3, 3, 43);
    const Tensor target = randint(0, 10, {16}, TensorOptions(DType::i64), &g);
    CrossEntropyOptions o;
    o.label_smoothing = 0.1;
    cp::parity("cross_entropy", [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], o); },
               {logits, target}, dt);
  }
  cp::compare_exact("one_hot", one_hot(idx.to(kCuda), 6).cpu(), one_hot(idx, 6));
  const Tensor ints = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2}, DType::i32);
  const Tensor i2 = from_vector(std::vector<double>{2, 2, 0}, {3}, DType::i64);
  cp::compare_exact("index_select i32", index_select(ints.to(kCuda), 0, i2.to(kCuda)).cpu(), index_select(ints, 0, i2));
}
