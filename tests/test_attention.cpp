// scaled_dot_product_attention: gradient checks (plain, bool and float masks, causal, dropout
// with a fixed generator, strided q/k/v), agreement with the composed definition
// softmax(q k^T * scale + mask) v, dropout determinism and rate, and errors. Values against
// PyTorch are in tests/parity (test_parity_ops).
#include <cmath>

#include "harness.hpp"

using namespace wanwu;
using wt::gradcheck;
using wt::spread;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: attention") {
  const Tensor q = spread({2, 2, 3, 4}), k = spread({2, 2, 5, 4}, -2, 2, 3), v = spread({2, 2, 5, 3}, -2, 2, 4);
  gradcheck([](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }, {q, k, v});
  AttentionOptions bo;
  bo.mask = tensor({{true, false, true, true, false}, {true, true, false, true, true}, {false, true, true, true, true}});
  gradcheck([&](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], bo); }, {q, k, v});
  AttentionOptions fo;
  fo.mask = spread({2, 1, 3, 5}, -1, 1, 11);
  fo.scale = 0.7;
  gradcheck([&](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], fo); }, {q, k, v});
  AttentionOptions co;
  co.causal = Causal::yes;
  const Tensor kc = spread({2, 2, 3, 4}, -2, 2, 3), vc = spread({2, 2, 3, 3}, -2, 2, 4);
  gradcheck([&](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], co); }, {q, kc, vc});
  // dropout: a fresh generator with the same seed makes every evaluation use the same mask
  gradcheck(
      [](const V& x) {
        Generator g(42);
        AttentionOptions o;
        o.dropout_p = 0.3;
        o.generator = &g;
        return scaled_dot_product_attention(x[0], x[1], x[2], o);
      },
      {q, k, v});
  // q, k, v as permuted views of one projection, as in a transformer block
  gradcheck(
      [](const V& x) {
        const Tensor qkv = x[0].reshape({2, 3, 3, 2, 4}).permute({2, 0, 3, 1, 4});  // [3, B, H, L, D]
        return scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);
      },
      {spread({2, 3, 24})});
}

TEST_CASE("attention equals its composed definition in f32") {
  Generator g(1);
  const Tensor q = randn({2, 4, 9, 16}, {}, &g), k = randn({2, 4, 11, 16}, {}, &g), v = randn({2, 4, 11, 8}, {}, &g);
  const Tensor mask = randn({9, 11}, {}, &g);
  AttentionOptions o;
  o.mask = mask;
  const Tensor ref = matmul(softmax(matmul(q, k.mT()) * 0.25 + mask, -1), v);
  wt::check_close(scaled_dot_product_attention(q, k, v, o), ref, 1e-5, 1e-5);
}

TEST_CASE("attention dropout: same seed, same result; the drop rate and scaling are right") {
  const Tensor q = zeros({1, 1, 64, 8}), k = zeros({1, 1, 64, 8});
  const Tensor v = ones({1, 1, 64, 1});
  AttentionOptions o;
  o.dropout_p = 0.25;
  Generator g1(9), g2(9);
  o.generator = &g1;
  const Tensor a = scaled_dot_product_attention(q, k, v, o);
  o.generator = &g2;
  const Tensor b = scaled_dot_product_attention(q, k, v, o);
  CHECK(a.tolist<float>() == b.tolist<float>());
  // uniform attention 1/64 on ones, kept with p 0.75 and scaled by 4/3: mean output ~ 1
  const double m = a.mean().item<double>();
  CHECK(std::fabs(m - 1.0) < 0.05);
  CHECK(a.max().item<double>() > a.min().item<double>());  // some rows lost more than others
}

TEST_CASE("attention errors") {
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({2, 3, 4}), zeros({2, 3, 4}), zeros({2, 3, 4})),
                       doctest::Contains("scaled_dot_product_attention"), ShapeError);
  CHECK_THROWS_AS(scaled_dot_product_attention(zeros({1, 1, 2, 4}), zeros({1, 1, 3, 5}), zeros({1, 1, 3, 4})), ShapeError);
  AttentionOptions o;
  o.mask = zeros({3, 3});
  CHECK_THROWS_AS(scaled_dot_product_attention(zeros({1, 1, 2, 4}), zeros({1, 1, 3, 4}), zeros({1, 1, 3, 4}), o), ShapeError);
  o.mask = zeros({2, 3}, DType::i64);
  CHECK_THROWS_AS(scaled_dot_product_attention(zeros({1, 1, 2, 4}), zeros({1, 1, 3, 4}), zeros({1, 1, 3, 4}), o), DTypeError);
  AttentionOptions d;
  d.dropout_p = 1.0;
  CHECK_THROWS_AS(scaled_dot_product_attention(zeros({1, 1, 2, 4}), zeros({1, 1, 3, 4}), zeros({1, 1, 3, 4}), d), ValueError);
}
