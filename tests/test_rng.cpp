// Philox 4x32-10 against the Random123 known-answer vectors; seeded reproducibility, thread-count
// independence and distribution checks for rand, randn, randint and bernoulli.
#include <cmath>

#include "harness.hpp"

using namespace wanwu;

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
  const auto a = philox4x32_10(0, 0, 0, 0, 0, 0);
  CHECK(a.v[0] == 0x6627e8d5u);
  CHECK(a.v[1] == 0xe169c58du);
  CHECK(a.v[2] == 0xbc57ac4cu);
  CHECK(a.v[3] == 0x9b00dbd8u);
  const auto b = philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  CHECK(b.v[0] == 0x408f276du);
  CHECK(b.v[1] == 0x41c83b0eu);
  CHECK(b.v[2] == 0xa20bc7c6u);
  CHECK(b.v[3] == 0x6d5451fdu);
  const auto c = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  CHECK(c.v[0] == 0xd16cfe09u);
  CHECK(c.v[1] == 0x94fdccebu);
  CHECK(c.v[2] == 0x5001e420u);
  CHECK(c.v[3] == 0x24126ea1u);
}

TEST_CASE("same seed, same numbers; consecutive draws differ") {
  Generator g1(99), g2(99);
  const auto a = rand({1000}, {}, &g1).tolist<float>();
  const auto b = rand({1000}, {}, &g2).tolist<float>();
  CHECK(a == b);
  const auto c = rand({1000}, {}, &g1).tolist<float>();
  CHECK(a != c);
  manual_seed(5);
  const auto d = randn({10}).tolist<float>();
  manual_seed(5);
  CHECK(randn({10}).tolist<float>() == d);
  // the state can be saved and restored
  Generator g3(7);
  rand({5}, {}, &g3);
  const Generator saved = g3;
  const auto e = rand({5}, {}, &g3).tolist<float>();
  Generator g4 = saved;
  CHECK(rand({5}, {}, &g4).tolist<float>() == e);
}

TEST_CASE("random tensors do not depend on the number of threads") {
  Generator g1(3), g2(3);
  const auto a = randn({100000}, {}, &g1).tolist<float>();
  set_num_threads(1);
  const auto b = randn({100000}, {}, &g2).tolist<float>();
  set_num_threads(2);
  CHECK(a == b);
}

TEST_CASE("distributions have the right moments") {
  Generator g(11);
  const int64_t n = 400000;
  // uniform [0, 1): mean 1/2, var 1/12
  const Tensor u = rand({n}, DType::f64, &g);
  CHECK(u.min().item<double>() >= 0.0);
  CHECK(u.max().item<double>() < 1.0);
  const double se = std::sqrt(1.0 / 12.0 / n);
  CHECK(std::fabs(u.mean().item<double>() - 0.5) < 5 * se);
  CHECK(std::fabs(var(u).item<double>() - 1.0 / 12.0) < 0.002);
  // normal, f32 and f64 paths
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dt);
    const Tensor z = normal({n}, 3.0, 2.0, dt, &g);
    CHECK(std::fabs(z.to(DType::f64).mean().item<double>() - 3.0) < 5 * 2.0 / std::sqrt(n));
    CHECK(std::fabs(stddev(z.to(DType::f64), {}).item<double>() - 2.0) < 0.02);
    // fraction within one sigma: 0.6827
    const double within = lt(abs(z.to(DType::f64) - 3.0), 2.0).to(DType::f64).mean().item<double>();
    CHECK(std::fabs(within - 0.682689) < 0.005);
  }
  // randint: every value in range, each about equally often (chi-square, 9 dof, p > 1e-4)
  const Tensor r = randint(-3, 7, {n}, std::nullopt, &g);
  CHECK(r.dtype() == DType::i64);
  CHECK(r.min().item<int64_t>() == -3);
  CHECK(r.max().item<int64_t>() == 6);
  const auto counts = one_hot(r + 3, 10).sum({0}).tolist<double>();
  double chi2 = 0;
  for (double c : counts) chi2 += (c - n / 10.0) * (c - n / 10.0) / (n / 10.0);
  CHECK(chi2 < 33.7);
  // bernoulli
  const Tensor bt = bernoulli({n}, 0.3, DType::f32, &g);
  CHECK(std::fabs(bt.mean().item<double>() - 0.3) < 5 * std::sqrt(0.3 * 0.7 / n));
  // a wide randint range uses 64-bit draws
  const Tensor w = randint(0, int64_t(1) << 40, {1000}, std::nullopt, &g);
  CHECK(w.max().item<int64_t>() > (int64_t(1) << 38));
}

TEST_CASE("random factories reject bad arguments") {
  CHECK_THROWS_AS(randint(5, 5, {3}), ValueError);
  CHECK_THROWS_AS(bernoulli({3}, 1.5), ValueError);
  CHECK_THROWS_AS(rand({3}, DType::i64), DTypeError);
  CHECK_THROWS_AS(normal({3}, 0.0, -1.0), ValueError);
}

// The bookkeeping a CUDA graph's replays rely on (core/capture.hpp), on host values alone: the
// recording draws nothing, and each replay advances the generator by what the recorded step drew
// and reports how far past the capture's start the replay's draws begin.
TEST_CASE("GraphCapture: a capture draws nothing; each replay's shift is where its eager twin would draw") {
  Generator gen(17), other(3);
  gen.reserve(10);  // the step starts at offset 10
  GraphCapture cap(Device::cpu(), zeros({int64_t(GraphCapture::kMaxLive)}, DType::f64));
  const double* base = static_cast<const double*>(cap.live_buffer().data_ptr());
  int refreshed = 0;
  const double* lr = cap.live_values(2, [&](double* v) { v[0] = 0.5 + refreshed, v[1] = -1, ++refreshed; }, "test");
  CHECK(lr == base);
  CHECK(cap.rng_shift(gen) == base + 2);
  gen.reserve(4);  // the recorded step's draws: 4 + 3 blocks
  CHECK(cap.rng_shift(gen) == base + 2);  // one slot per generator
  gen.reserve(3);
  CHECK(cap.rng_shift(other) == base + 3);
  cap.finish();
  CHECK(gen.offset() == 10);  // rolled back
  CHECK(other.offset() == 0);
  const std::vector<double> v1 = cap.refresh();
  CHECK(v1 == std::vector<double>{0.5, -1, 0, 0});  // replay 1 draws from 10, as the first eager step
  CHECK(gen.offset() == 17);
  const std::vector<double> v2 = cap.refresh();
  CHECK(v2 == std::vector<double>{1.5, -1, 7, 0});  // replay 2 from 17 = 10 + 7
  CHECK(gen.offset() == 24);
  gen.reserve(5);  // an eager draw between replays moves the next replay's draws along
  CHECK(cap.refresh()[2] == 19);
  gen.manual_seed(18);
  CHECK_THROWS_WITH_AS(cap.refresh(), doctest::Contains("was reseeded after the capture"), ValueError);
  CHECK_THROWS_WITH_AS(cap.live_values(GraphCapture::kMaxLive, [](double*) {}, "Adam"),
                       doctest::Contains("Adam: a graph holds at most 480 per-replay values"), ValueError);
}
