// Random numbers: Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011), a counter-based generator. Element i of a random tensor is a pure function of
// (seed, offset, i), so the CPU and CUDA backends produce the same numbers for the same seed
// (DESIGN D8), any number of threads gives the same result, and a run is reproducible.
//
// A `Generator` holds (seed, offset). Each random op reserves a range of counters by advancing
// the offset by the number of 128-bit Philox blocks it uses, so consecutive ops never reuse a
// counter. The per-element mapping from blocks to values lives in `random_value` below and is
// shared by both backends.
#pragma once

#include <cmath>
#include <cstdint>
#include <mutex>

#include "macros.hpp"

namespace wanwu {

struct Philox4x32 {
  uint32_t v[4];
};

WANWU_HD inline Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                         uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(M0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(M1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  return {{c0, c1, c2, c3}};
}

// The 128-bit block number `block` (counter) under key `seed`.
WANWU_HD inline Philox4x32 philox_block(uint64_t seed, uint64_t block) {
  return philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// 24 random bits -> float in [0, 1); 53 bits -> double in [0, 1).
WANWU_HD inline float uniform_f32(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }
WANWU_HD inline double uniform_f64(uint32_t hi, uint32_t lo) {
  const uint64_t x = (static_cast<uint64_t>(hi) << 32 | lo) >> 11;
  return static_cast<double>(x) * (1.0 / 9007199254740992.0);
}

enum class RandomKind : uint8_t { uniform, normal, bernoulli, randint };

// Parameters of one random op: uniform in [a, b); normal with mean a, std b; bernoulli with
// probability a; randint in [lo, hi).
struct RandomParams {
  RandomKind kind = RandomKind::uniform;
  double a = 0.0, b = 1.0;
  int64_t lo = 0, hi = 2;
  uint64_t seed = 0;
  uint64_t offset = 0;  // first Philox block of this op
  // Inside a CUDA graph (core/capture.hpp): device address of a shift the kernel adds to `offset`
  // at each replay. Null outside a capture, and always on the CPU.
  const double* offset_shift = nullptr;
};

// How many Philox blocks an op of n elements uses (wide: 64-bit values, two per block).
WANWU_HD inline uint64_t random_blocks(int64_t n, bool wide) {
  const uint64_t per = wide ? 2u : 4u;
  return (static_cast<uint64_t>(n) + per - 1) / per;
}

// Element i of a random op as a double (or an integer for randint). `wide` selects 53-bit
// uniforms (f64 output, randint ranges above 2^32). The same function runs on both backends.
WANWU_HD inline double random_value(const RandomParams& p, int64_t i, bool wide) {
  const uint64_t ui = static_cast<uint64_t>(i);
  if (!wide) {
    const Philox4x32 r = philox_block(p.seed, p.offset + ui / 4);
    const int lane = static_cast<int>(ui % 4);
    switch (p.kind) {
      case RandomKind::uniform: return p.a + (p.b - p.a) * uniform_f32(r.v[lane]);
      case RandomKind::bernoulli: return uniform_f32(r.v[lane]) < p.a ? 1.0 : 0.0;
      case RandomKind::randint: {
        const uint64_t range = static_cast<uint64_t>(p.hi - p.lo);
        return static_cast<double>(p.lo + static_cast<int64_t>((static_cast<uint64_t>(r.v[lane]) * range) >> 32));
      }
      case RandomKind::normal: {  // Box-Muller on lanes (0,1) and (2,3): cos for even, sin for odd
        const int pair = lane / 2;
        const float u1 = 1.0f - uniform_f32(r.v[2 * pair]);  // (0, 1]: log is finite
        const float u2 = uniform_f32(r.v[2 * pair + 1]);
        const float rad = sqrtf(-2.0f * logf(u1));
        const float th = 6.2831853071795864769f * u2;
        return p.a + p.b * static_cast<double>((lane & 1) ? rad * sinf(th) : rad * cosf(th));
      }
    }
    return 0.0;
  }
  const Philox4x32 r = philox_block(p.seed, p.offset + ui / 2);
  const int lane = static_cast<int>(ui % 2);
  switch (p.kind) {
    case RandomKind::uniform: return p.a + (p.b - p.a) * uniform_f64(r.v[2 * lane], r.v[2 * lane + 1]);
    case RandomKind::bernoulli: return uniform_f64(r.v[2 * lane], r.v[2 * lane + 1]) < p.a ? 1.0 : 0.0;
    case RandomKind::randint: {
      const uint64_t range = static_cast<uint64_t>(p.hi - p.lo);
      const uint64_t x = static_cast<uint64_t>(r.v[2 * lane]) << 32 | r.v[2 * lane + 1];
      return static_cast<double>(p.lo + static_cast<int64_t>(x % range));
    }
    case RandomKind::normal: {
      const double u1 = 1.0 - uniform_f64(r.v[0], r.v[1]);
      const double u2 = uniform_f64(r.v[2], r.v[3]);
      const double rad = sqrt(-2.0 * log(u1));
      const double th = 6.283185307179586476925 * u2;
      return p.a + p.b * ((lane & 1) ? rad * sin(th) : rad * cos(th));
    }
  }
  return 0.0;
}

// Exact 64-bit randint (random_value returns a double, exact only below 2^53).
WANWU_HD inline int64_t random_int(const RandomParams& p, int64_t i, bool wide) {
  const uint64_t ui = static_cast<uint64_t>(i);
  const uint64_t range = static_cast<uint64_t>(p.hi - p.lo);
  if (!wide) {
    const Philox4x32 r = philox_block(p.seed, p.offset + ui / 4);
    return p.lo + static_cast<int64_t>((static_cast<uint64_t>(r.v[ui % 4]) * range) >> 32);
  }
  const Philox4x32 r = philox_block(p.seed, p.offset + ui / 2);
  const uint64_t x = static_cast<uint64_t>(r.v[2 * (ui % 2)]) << 32 | r.v[2 * (ui % 2) + 1];
  return p.lo + static_cast<int64_t>(x % range);
}

// A seeded source of counter ranges. Thread-safe; copyable state for checkpoints.
class Generator {
 public:
  explicit Generator(uint64_t seed = 67280421310721ull) : seed_(seed) {}
  Generator(const Generator& o) : seed_(o.seed()), offset_(o.offset()) {}
  Generator& operator=(const Generator& o) {
    if (this != &o) set_state(o.seed(), o.offset());
    return *this;
  }

  void manual_seed(uint64_t seed) { set_state(seed, 0); }
  uint64_t seed() const {
    std::lock_guard<std::mutex> l(mu_);
    return seed_;
  }
  uint64_t offset() const {
    std::lock_guard<std::mutex> l(mu_);
    return offset_;
  }
  void set_state(uint64_t seed, uint64_t offset) {
    std::lock_guard<std::mutex> l(mu_);
    seed_ = seed;
    offset_ = offset;
  }
  // Reserves `blocks` Philox blocks; returns (seed, first block).
  std::pair<uint64_t, uint64_t> reserve(uint64_t blocks) {
    std::lock_guard<std::mutex> l(mu_);
    const uint64_t first = offset_;
    offset_ += blocks;
    return {seed_, first};
  }
  // A 64-bit draw for host-side decisions (augmentation parameters, shuffles).
  uint64_t next_u64() {
    auto [s, o] = reserve(1);
    const Philox4x32 r = philox_block(s, o);
    return static_cast<uint64_t>(r.v[0]) << 32 | r.v[1];
  }
  double next_double() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  mutable std::mutex mu_;
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The generator random ops use when none is passed.
inline Generator& default_generator() {
  static Generator g;
  return g;
}
inline void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace wanwu
