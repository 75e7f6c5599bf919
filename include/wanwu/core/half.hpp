// 16-bit floating-point storage types: IEEE binary16 (`Half`) and bfloat16 (`BFloat16`).
// They are storage formats: arithmetic converts to float, computes, and rounds back, which is
// what both backends do (DESIGN D3: accumulate in f32). Conversions round to nearest even,
// keep NaN a (quiet) NaN, map overflow to infinity and handle subnormals exactly; they are plain
// bit manipulation so the same code runs on host and device and is checked on all 65,536 bit
// patterns by the tests.
#pragma once

#include <cstdint>
#include <cstring>

#include "macros.hpp"

namespace wanwu {

namespace detail {

WANWU_HD inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
WANWU_HD inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// float -> binary16, round to nearest even.
WANWU_HD inline uint16_t f32_to_f16_bits(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // Inf or NaN; NaN keeps its top payload bits and is made quiet
    return static_cast<uint16_t>(sign | (ax > 0x7F800000u ? 0x7E00u | ((ax >> 13) & 0x3FFu) : 0x7C00u));
  }
  if (ax >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 2^16: overflow
  if (ax < 0x38800000u) {                                               // below 2^-14: subnormal
    if (ax < 0x33000000u) return static_cast<uint16_t>(sign);           // below 2^-25: to zero
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t h = ((((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3FFu));
  const uint32_t rem = ax & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry may round up to Inf
  return static_cast<uint16_t>(sign | h);
}

WANWU_HD inline float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1Fu;
  uint32_t m = h & 0x3FFu;
  if (e == 0x1Fu) return f32_from_bits(sign | 0x7F800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return f32_from_bits(sign);
    e = 1;
    while (!(m & 0x400u)) {  // normalize the subnormal
      m <<= 1;
      --e;
    }
    m &= 0x3FFu;
  }
  return f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

// float -> bfloat16, round to nearest even; NaN stays a quiet NaN.
WANWU_HD inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

WANWU_HD inline float bf16_bits_to_f32(uint16_t b) { return f32_from_bits(static_cast<uint32_t>(b) << 16); }

}  // namespace detail

struct Half {
  uint16_t bits = 0;
  Half() = default;
  WANWU_HD Half(float f) : bits(detail::f32_to_f16_bits(f)) {}  // NOLINT: implicit like float
  WANWU_HD static Half from_bits(uint16_t b) {
    Half h;
    h.bits = b;
    return h;
  }
  WANWU_HD operator float() const { return detail::f16_bits_to_f32(bits); }
};

struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  WANWU_HD BFloat16(float f) : bits(detail::f32_to_bf16_bits(f)) {}  // NOLINT
  WANWU_HD static BFloat16 from_bits(uint16_t b) {
    BFloat16 h;
    h.bits = b;
    return h;
  }
  WANWU_HD operator float() const { return detail::bf16_bits_to_f32(bits); }
};

}  // namespace wanwu
