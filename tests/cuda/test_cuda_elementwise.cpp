// Parity of the elementwise, reduction and random kernels: every op of the functor tables in
// every dtype it accepts, broadcast and strided operands, reductions over any axes (including
// the split path for long reductions), argmax/argmin with ties and NaN, and the Philox streams.
#include "parity.hpp"

using namespace wanwu;
using cp::kCuda;

TEST_CASE("unary ops and activations, forward and backward") {
  struct U {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    bool positive;
  };
  const std::vector<U> ops = {
      {"neg", [](const Tensor& x) { return -x; }, false}, {"abs", [](const Tensor& x) { return abs(x); }, false},
      {"square", [](const Tensor& x) { return square(x); }, false},
      {"exp", [](const Tensor& x) { return exp(x); }, false}, {"log", [](const Tensor& x) { return log(x); }, true},
      {"log1p", [](const Tensor& x) { return log1p(x); }, true},
      {"expm1", [](const Tensor& x) { return expm1(x); }, false},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, true}, {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, true},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, true},
      {"sin", [](const Tensor& x) { return sin(x); }, false}, {"cos", [](const Tensor& x) { return cos(x); }, false},
      {"erf", [](const Tensor& x) { return erf(x); }, false},
      {"pow 3", [](const Tensor& x) { return pow(x, 3); }, false},
      {"pow -1.5", [](const Tensor& x) { return pow(x, -1.5); }, true},
      {"clamp", [](const Tensor& x) { return clamp(x, -1.0, 1.5); }, false},
      {"relu", [](const Tensor& x) { return relu(x); }, false}, {"relu6", [](const Tensor& x) { return relu6(x * 4.0); }, false},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, false}, {"tanh", [](const Tensor& x) { return tanh(x); }, false},
      {"silu", [](const Tensor& x) { return silu(x); }, false}, {"gelu", [](const Tensor& x) { return gelu(x); }, false},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, GeluApproximate::tanh); }, false},
      {"hardswish", [](const Tensor& x) { return hardswish(x * 2.0); }, false},
      {"hardsigmoid", [](const Tensor& x) { return hardsigmoid(x * 2.0); }, false},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 3.0); }, false},
  };
  for (const U& u : ops)
    for (DType dt : cp::kFloatTypes) {
      const Tensor x = u.positive ? cp::rnd({7, 33}, 0.1, 3.0) : cp::rnd({7, 33}, -3.0, 3.0);
      cp::parity(u.name, [&](const std::vector<Tensor>& in) { return u.f(in[0]); }, {x}, dt);
      // a transposed (non-contiguous) input
      cp::parity(std::string(u.name) + " strided", [&](const std::vector<Tensor>& in) { return u.f(in[0].t()); }, {x},
                 dt);
    }
}

TEST_CASE("rounding, sign and predicates") {
  Tensor x = cp::rnd({50}, -4, 4);
  x = where(lt(abs(x), 0.3), full({50}, NAN), x);  // a few NaNs for isnan/isfinite
  for (DType dt : cp::kFloatTypes) {
    const Tensor h = x.to(dt), d = h.to(kCuda);
    cp::compare_exact("floor", floor(d).cpu(), floor(h));
    cp::compare_exact("ceil", ceil(d).cpu(), ceil(h));
    cp::compare_exact("round", round(d).cpu(), round(h));
    cp::compare_exact("trunc", trunc(d).cpu(), trunc(h));
    cp::compare_exact("sign", sign(d).cpu(), sign(h));
    cp::compare_exact("isnan", isnan(d).cpu(), isnan(h));
    cp::compare_exact("isfinite", isfinite(d).cpu(), isfinite(h));
  }
}

TEST_CASE("binary ops with broadcasting, forward and backward") {
  struct B {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> f;
  };
  const std::vector<B> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"add_relu", [](const Tensor& a, const Tensor& b) { return add_relu(a, b); }},  // fused when shapes match
      {"sub alpha", [](const Tensor& a, const Tensor& b) { return sub(a, b, 0.5); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return a / (abs(b) + 0.5); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(abs(a) + 0.5, b); }},
  };
  for (const B& op : ops)
    for (DType dt : cp::kFloatTypes) {
      const Tensor a = cp::rnd({4, 1, 6}, -2, 2, 3), b = cp::rnd({5, 1}, -2, 2, 4);
      cp::parity(op.name, [&](const std::vector<Tensor>& in) { return op.f(in[0], in[1]); }, {a, b}, dt);
      cp::parity(std::string(op.name) + " scalar", [&](const std::vector<Tensor>& in) { return op.f(in[0], in[0] * 0.5 + 0.25); },
                 {a}, dt);
    }
}

TEST_CASE("integer and boolean elementwise ops, comparisons and where") {
  const Tensor a = floor(cp::rnd({3, 8}, -20, 20, 5)), b = floor(cp::rnd({8}, -20, 20, 6));
  for (DType dt : {DType::i32, DType::i64, DType::u8, DType::f32, DType::bf16}) {
    CAPTURE(dt);
    const Tensor ha = (dt == DType::u8 ? abs(a) : a).to(dt), hb = (dt == DType::u8 ? abs(b) : b).to(dt);
    const Tensor da = ha.to(kCuda), db = hb.to(kCuda);
    cp::compare_exact("add", (da + db).cpu(), ha + hb);
    cp::compare_exact("mul", (da * db).cpu(), ha * hb);
    cp::compare_exact("maximum", maximum(da, db).cpu(), maximum(ha, hb));
    cp::compare_exact("eq", eq(da, db).cpu(), eq(ha, hb));
    cp::compare_exact("lt", lt(da, db).cpu(), lt(ha, hb));
    cp::compare_exact("ge", ge(da, db).cpu(), ge(ha, hb));
    cp::compare_exact("where", where(lt(da, db), da, db).cpu(), where(lt(ha, hb), ha, hb));
    cp::compare_exact("fill", full_like(da, 7).cpu(), full_like(ha, 7));
  }
  const Tensor p = gt(a, 0.0), q = lt(b, 5.0);
  cp::compare_exact("logical_and", logical_and(p.to(kCuda), q.to(kCuda)).cpu(), logical_and(p, q));
  cp::compare_exact("logical_or", logical_or(p.to(kCuda), q.to(kCuda)).cpu(), logical_or(p, q));
  cp::compare_exact("logical_not", logical_not(p.to(kCuda)).cpu(), logical_not(p));
}

// The dense path moves 16-byte packs of f16/bf16 values (and casts to and from them) when every
// pointer is aligned to its pack: lengths that leave a tail after the last pack (8 values per pack,
// 4 for casts between bf16 and f32, 2 for f64), views one element into their storage (misaligned:
// the scalar path), ops whose output dtype is not the input's (a comparison's bool, casts
// narrowing and widening), and the dtypes that keep the scalar path, each compared exactly with
// the CPU.
TEST_CASE("packed elementwise path: tails, misaligned views, boolean outputs and casts") {
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::u8, DType::i64}) {
    for (int64_t n : {1, 7, 8, 9, 17, 4099, 70001}) {
      for (int64_t off : {0, 1}) {
        CAPTURE(dt);
        CAPTURE(n);
        CAPTURE(off);
        // integers below 100: exact in every dtype here, and their sums too
        const Tensor base_a = floor(cp::rnd({n + 1}, 0, 100, 50 + n)).to(dt);
        const Tensor base_b = floor(cp::rnd({n + 1}, 0, 100, 51 + n)).to(dt);
        const Tensor ha = base_a.slice(0, off, off + n), hb = base_b.slice(0, off, off + n);
        const Tensor da = base_a.to(kCuda).slice(0, off, off + n), db = base_b.to(kCuda).slice(0, off, off + n);
        REQUIRE(da.is_contiguous());
        cp::compare_exact("add", (da + db).cpu(), ha + hb);
        cp::compare_exact("square", square(da).cpu(), square(ha));  // unary on the view itself
        cp::compare_exact("relu", relu(da - 50.0).cpu(), relu(ha - 50.0));
        cp::compare_exact("lt", lt(da, db).cpu(), lt(ha, hb));
        if (is_floating(dt)) cp::compare_exact("isfinite", isfinite(da / db).cpu(), isfinite(ha / hb));  // 0/0, x/0
        for (DType to : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::u8, DType::i32, DType::boolean})
          cp::compare_exact("cast", da.to(to).cpu(), ha.to(to));
        // in place on the view, the output one of the inputs (a thread reads and writes one pack)
        Tensor dc = base_a.to(kCuda).clone().slice(0, off, off + n), hc = base_a.clone().slice(0, off, off + n);
        dc.add_(db);
        hc.add_(hb);
        cp::compare_exact("add_ in place", dc.cpu(), hc);
      }
    }
  }
  // rounding casts of values that are not integers, at both alignments
  const Tensor x = cp::rnd({70001}, -3, 3, 52);
  for (int64_t off : {0, 1}) {
    const Tensor h = x.slice(0, off, 70000 + off), d = x.to(kCuda).slice(0, off, 70000 + off);
    for (DType to : {DType::bf16, DType::f16, DType::f64}) {
      CAPTURE(to);
      cp::compare_exact("rounding cast", d.to(to).cpu(), h.to(to));
      cp::compare_exact("widening back", d.to(to).to(DType::f32).cpu(), h.to(to).to(DType::f32));
    }
  }
}

TEST_CASE("reductions over any axes, contiguous and permuted, forward and backward") {
  const Tensor x = cp::rnd({6, 5, 4, 3}, -1, 1, 8);
  const std::vector<Dims> dim_sets = {{3}, {0}, {1, 2}, {0, 3}, {0, 1, 2, 3}};
  for (DType dt : cp::kFloatTypes)
    for (const Dims& dims : dim_sets) {
      CAPTURE(dims.size());
      cp::parity("sum", [&](const std::vector<Tensor>& in) { return sum(in[0], dims); }, {x}, dt);
      cp::parity("mean keepdim", [&](const std::vector<Tensor>& in) { return mean(in[0], dims, KeepDim::yes); }, {x}, dt);
      cp::parity("amax", [&](const std::vector<Tensor>& in) { return amax(in[0], dims); }, {x}, dt);
      cp::parity("amin permuted", [&](const std::vector<Tensor>& in) { return amin(in[0].permute({2, 0, 3, 1}), dims); },
                 {x}, dt);
      cp::parity("prod", [&](const std::vector<Tensor>& in) { return detail::reduce_raw(ReduceOp::prod, in[0] * 0.5 + 1.0, dims); }, {x}, dt,
                 false);
      cp::parity("var", [&](const std::vector<Tensor>& in) { return var(in[0], dims); }, {x}, dt);
    }
}

TEST_CASE("long reductions split over blocks, and integer / boolean reductions") {
  const Tensor big = cp::rnd({3, 300001}, 0, 1, 9);
  cp::parity("sum of long rows", [](const std::vector<Tensor>& in) { return sum(in[0], {1}); }, {big}, DType::f32, false,
             {1e-5, 1e-6});
  cp::parity("sum of everything", [](const std::vector<Tensor>& in) { return sum(in[0]); }, {big}, DType::f32, false,
             {1e-5, 1e-6});
  cp::parity("sum over the long axis 0", [](const std::vector<Tensor>& in) { return sum(in[0].t(), {0}); }, {big},
             DType::f32, false, {1e-5, 1e-6});
  const Tensor ints = floor(cp::rnd({40, 30}, -100, 100, 10)).to(DType::i32);
  cp::compare_exact("i32 sum", sum(ints.to(kCuda), {0}).cpu(), sum(ints, {0}));
  cp::compare_exact("i32 amax", amax(ints.to(kCuda), {1}).cpu(), amax(ints, {1}));
  const Tensor flags = gt(ints, 90);
  cp::compare_exact("any", any(flags.to(kCuda), {1}).cpu(), any(flags, {1}));
  cp::compare_exact("all", all(logical_not(flags).to(kCuda), {0}).cpu(), all(logical_not(flags), {0}));
  cp::compare_exact("bool sum", sum(flags.to(kCuda)).cpu(), sum(flags));
}

TEST_CASE("argmax / argmin: first extreme wins, NaN counts as the maximum") {
  Tensor x = round(cp::rnd({9, 700}, -3, 3, 11));  // many ties
  for (DType dt : cp::kFloatTypes) {
    CAPTURE(dt);
    const Tensor h = x.to(dt), d = h.to(kCuda);
    cp::compare_exact("argmax dim 1", argmax(d, 1).cpu(), argmax(h, 1));
    cp::compare_exact("argmin dim 0", argmin(d, 0).cpu(), argmin(h, 0));
    cp::compare_exact("argmax all", argmax(d).cpu(), argmax(h));
    const auto [vd, id] = max(d, 1);
    const auto [vh, ih] = max(h, 1);
    cp::compare_exact("max values", vd.cpu(), vh);
    cp::compare_exact("max indices", id.cpu(), ih);
  }
  std::vector<double> v(64, 1.0);
  v[10] = NAN;
  v[40] = NAN;
  v[5] = 9.0;
  const Tensor n = from_vector(v, {64}, DType::f32);
  cp::compare_exact("argmax with NaN", argmax(n.to(kCuda)).cpu(), argmax(n));
  cp::compare_exact("argmin with NaN", argmin(n.to(kCuda)).cpu(), argmin(n));
}

TEST_CASE("random numbers: the same seed gives the same tensor on both devices (Philox)") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    CAPTURE(dt);
    Generator gc(42), gd(42);
    cp::compare_exact("rand", rand({1001}, TensorOptions(dt).device(kCuda), &gd).cpu(), rand({1001}, dt, &gc));
    cp::compare("randn", randn({1001}, TensorOptions(dt).device(kCuda), &gd).cpu(), randn({1001}, dt, &gc),
                {2e-6, 2e-6});
    cp::compare_exact("bernoulli", bernoulli({999}, 0.3, TensorOptions(dt).device(kCuda), &gd).cpu(),
                      bernoulli({999}, 0.3, dt, &gc));
  }
  Generator gc(7), gd(7);
  cp::compare_exact("randint", randint(-5, 1000, {777}, TensorOptions(DType::i64).device(kCuda), &gd).cpu(),
                    randint(-5, 1000, {777}, TensorOptions(DType::i64), &gc));
  Generator hc(3), hd(3);
  const Tensor x = cp::rnd({64, 65});
  cp::compare("dropout", dropout(x.to(kCuda), 0.4, Mode::train, &hd).cpu(), dropout(x, 0.4, Mode::train, &hc),
              {1e-7, 0});
}
