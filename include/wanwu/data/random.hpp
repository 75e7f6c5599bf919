// Per-sample random streams for augmentation and sampling (DESIGN D8: Philox 4x32-10).
//
// The determinism rule of the data pipeline: every random decision about the k-th sample of
// epoch e is a pure function of (seed, e, k) - never of which worker thread handled it or when.
// A `SampleRng` is therefore not a shared generator but a counter-based stream addressed by
// (key, epoch, index): Philox's 128-bit counter holds (draw number, epoch, index), and the key
// is derived from the user's seed and a purpose (augmentation, shuffling, weighted sampling),
// so the streams of different purposes never overlap. Creating one costs nothing, so each sample
// gets its own. Epochs count modulo 2^32, indices use all 64 bits.
//
// The distributions mirror what torchvision's transforms draw with torch's generator:
// `uniform_f32` is `torch.empty(1).uniform_(a, b)` (float32), `randint` is `torch.randint`
// (an integer in [lo, hi)), `bernoulli_f32(p)` is `torch.rand(1) < p`. The numbers differ from
// torch's (a different generator), the algorithms that consume them do not.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/error.hpp"
#include "../core/rng.hpp"

namespace wanwu::data {

// What a stream is used for; each gets its own Philox key.
enum class RngPurpose : uint32_t { augment = 1, shuffle = 2, sample = 3, user = 4 };

// The Philox key for (seed, purpose): one Philox block of the seed, so nearby seeds give
// unrelated keys.
inline uint64_t derive_key(uint64_t seed, RngPurpose purpose) {
  const Philox4x32 r = philox4x32_10(static_cast<uint32_t>(purpose), 0x5EEDu, 0x0DA7Au, 0u,
                                     static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return static_cast<uint64_t>(r.v[0]) << 32 | r.v[1];
}

class SampleRng {
 public:
  SampleRng(uint64_t seed, RngPurpose purpose, uint64_t epoch, uint64_t index)
      : key_(derive_key(seed, purpose)), epoch_(epoch), index_(index) {}

  uint32_t next_u32() {
    if (lane_ == 4) refill();
    return block_.v[lane_++];
  }
  uint64_t next_u64() {
    const uint64_t hi = next_u32();
    return hi << 32 | next_u32();
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  // torch.empty(1, dtype=float32).uniform_(lo, hi): 24 random bits, float32 arithmetic.
  float uniform_f32(float lo, float hi) {
    const float u = static_cast<float>(next_u32() >> 8) * (1.0f / 16777216.0f);
    return u * (hi - lo) + lo;
  }
  // torch.rand(1) < p.
  bool bernoulli_f32(double p) { return static_cast<double>(uniform_f32(0.0f, 1.0f)) < p; }
  // An integer uniform in [lo, hi) (hi > lo), without modulo bias.
  int64_t randint(int64_t lo, int64_t hi) {
    WANWU_CHECK_VALUE(hi > lo, "SampleRng::randint: empty range [", lo, ", ", hi, ")");
    const uint64_t range = static_cast<uint64_t>(hi - lo);
    // Rejects the top sliver of 2^64 that is not a whole number of ranges, so that x % range is
    // exactly uniform.
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    for (;;) {
      const uint64_t x = next_u64();
      if (x < limit) return lo + static_cast<int64_t>(x % range);
    }
  }
  // Standard normal (Box-Muller).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }

 private:
  void refill() {
    block_ = philox4x32_10(counter_++, static_cast<uint32_t>(epoch_), static_cast<uint32_t>(index_),
                           static_cast<uint32_t>(index_ >> 32),
                           static_cast<uint32_t>(key_), static_cast<uint32_t>(key_ >> 32));
    lane_ = 0;
  }

  uint64_t key_;
  uint64_t epoch_, index_;
  uint32_t counter_ = 0;
  int lane_ = 4;
  Philox4x32 block_{};
};

}  // namespace wanwu::data
