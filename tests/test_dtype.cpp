// dtypes: f16/bf16 conversion over every bit pattern against independent rules, PyTorch's type
// promotion table, result types of mixed tensor/scalar ops, dtype names and parsing.
#include <cmath>
#include <cstring>
#include <limits>

#include "harness.hpp"

using namespace wanwu;

namespace {
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// binary16 value from its fields, computed with ldexp (no bit tricks).
double f16_reference(uint16_t h) {
  const int sign = (h >> 15) & 1, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  double v;
  if (e == 0x1F) v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0) v = std::ldexp(static_cast<double>(m), -24);
  else v = std::ldexp(static_cast<double>(1024 + m), e - 25);
  return sign ? -v : v;
}
}  // namespace

TEST_CASE("f16 -> f32 matches the field formula for all 65,536 bit patterns") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float got = Half::from_bits(static_cast<uint16_t>(h));
    const double want = f16_reference(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(static_cast<double>(got) == want);
      REQUIRE(std::signbit(got) == std::signbit(want));  // -0 stays -0
    }
  }
}

TEST_CASE("f32 -> f16 round-trips every f16 value and rounds midpoints to even") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Half::from_bits(static_cast<uint16_t>(h));
    const uint16_t back = Half(f).bits;
    if (std::isnan(f)) {
      REQUIRE(std::isnan(static_cast<float>(Half::from_bits(back))));
      REQUIRE((back & 0x0200) != 0);  // quiet
      continue;
    }
    REQUIRE(back == h);
  }
  // Midpoints between adjacent positive f16 values (subnormals, normals, and max -> inf).
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    const double lo = f16_reference(static_cast<uint16_t>(h));
    const double hi = h + 1 < 0x7C00 ? f16_reference(static_cast<uint16_t>(h + 1)) : 65536.0;  // 2^16: overflow
    const float mid = static_cast<float>((lo + hi) / 2);  // exact in f32
    REQUIRE(static_cast<double>(mid) == (lo + hi) / 2);
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    CHECK(Half(mid).bits == even);
    CHECK(Half(std::nextafter(mid, 1e30f)).bits == h + 1);
    CHECK(Half(std::nextafter(mid, 0.0f)).bits == h);
    CHECK(Half(-mid).bits == (even | 0x8000));
  }
  CHECK(Half(1e10f).bits == 0x7C00);
  CHECK(Half(-1e10f).bits == 0xFC00);
  CHECK(Half(std::numeric_limits<float>::infinity()).bits == 0x7C00);
  CHECK(Half(1e-10f).bits == 0x0000);
  CHECK(Half(-1e-10f).bits == 0x8000);
}

TEST_CASE("f32 -> f16 agrees with the compiler's _Float16 on 2 million random floats") {
  Generator g(42);
  for (int i = 0; i < 2000000; ++i) {
    const uint64_t r = g.next_u64();
    // bias toward the f16 range: exponents near 0 are the interesting ones
    uint32_t u = static_cast<uint32_t>(r);
    if (i % 2) u = (u & 0x807FFFFFu) | ((96u + static_cast<uint32_t>(r >> 40) % 64u) << 23);
    const float f = float_of(u);
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    const uint16_t got = Half(f).bits;
    if (std::isnan(f)) {
      REQUIRE(std::isnan(static_cast<float>(Half::from_bits(got))));
    } else if (got != ref_bits) {
      FAIL("f32 bits " << std::hex << u << ": wanwu " << got << ", _Float16 " << ref_bits);
    }
  }
}

TEST_CASE("bf16 <-> f32: exact widening, round-to-nearest-even narrowing, NaN and Inf") {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = BFloat16::from_bits(static_cast<uint16_t>(b));
    REQUIRE(bits_of(f) == (b << 16));
    if (!std::isnan(f)) REQUIRE(BFloat16(f).bits == b);
    else REQUIRE(std::isnan(static_cast<float>(BFloat16(f))));
  }
  // Random floats: the nearer of the two neighbouring bf16 values, ties to even (computed in
  // double); values past the largest finite bf16 + half an ulp become infinity.
  Generator g(7);
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t u = static_cast<uint32_t>(g.next_u64());
    const float f = float_of(u);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(static_cast<float>(BFloat16(f))));
      continue;
    }
    const uint32_t lo_bits = u & 0xFFFF0000u;
    const double v = std::fabs(static_cast<double>(f));
    const double lo = std::fabs(static_cast<double>(float_of(lo_bits)));
    const uint32_t mag_hi = (lo_bits & 0x7FFF0000u) + 0x10000u;
    const double hi = mag_hi >= 0x7F800000u ? std::ldexp(1.0, 128) : static_cast<double>(float_of(mag_hi));
    uint32_t want_mag;
    if (v - lo < hi - v) want_mag = lo_bits & 0x7FFF0000u;
    else if (v - lo > hi - v) want_mag = mag_hi;
    else want_mag = ((lo_bits >> 16) & 1) ? mag_hi : (lo_bits & 0x7FFF0000u);
    if (std::isinf(f)) want_mag = 0x7F800000u;
    const uint16_t want = static_cast<uint16_t>(((u & 0x80000000u) | std::min(want_mag, 0x7F800000u)) >> 16);
    if (BFloat16(f).bits != want) FAIL("f32 bits " << std::hex << u << ": got " << BFloat16(f).bits << " want " << want);
  }
}

TEST_CASE("promote_types matches PyTorch's table") {
  const DType order[] = {DType::u8, DType::i32, DType::i64, DType::f16, DType::f32, DType::f64, DType::boolean, DType::bf16};
  using D = DType;
  // rows/cols in `order`; from torch.promote_types
  const DType table[8][8] = {
      {D::u8, D::i32, D::i64, D::f16, D::f32, D::f64, D::u8, D::bf16},
      {D::i32, D::i32, D::i64, D::f16, D::f32, D::f64, D::i32, D::bf16},
      {D::i64, D::i64, D::i64, D::f16, D::f32, D::f64, D::i64, D::bf16},
      {D::f16, D::f16, D::f16, D::f16, D::f32, D::f64, D::f16, D::f32},
      {D::f32, D::f32, D::f32, D::f32, D::f32, D::f64, D::f32, D::f32},
      {D::f64, D::f64, D::f64, D::f64, D::f64, D::f64, D::f64, D::f64},
      {D::u8, D::i32, D::i64, D::f16, D::f32, D::f64, D::boolean, D::bf16},
      {D::bf16, D::bf16, D::bf16, D::f32, D::f32, D::f64, D::bf16, D::bf16},
  };
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) {
      CAPTURE(order[i]);
      CAPTURE(order[j]);
      CHECK(promote_types(order[i], order[j]) == table[i][j]);
    }
}

TEST_CASE("result types of mixed ops follow PyTorch's scalar and 0-dim rules") {
  const Tensor i64 = tensor({1, 2, 3});
  const Tensor i32 = i64.to(DType::i32);
  const Tensor u8 = i64.to(DType::u8);
  const Tensor f16 = ones({3}, DType::f16);
  const Tensor bf16 = ones({3}, DType::bf16);
  const Tensor f32 = ones({3});
  const Tensor b = tensor({true, false, true});
  CHECK((i64 + 2.5).dtype() == DType::f32);  // float scalar promotes an int tensor to the default float
  CHECK((i64 + 2).dtype() == DType::i64);
  CHECK((i32 + 2).dtype() == DType::i32);   // int scalar never widens
  CHECK((u8 + (-1)).dtype() == DType::u8);
  CHECK((f16 * 0.5).dtype() == DType::f16);  // float scalar never widens a float tensor
  CHECK((i64 / 2).dtype() == DType::f32);    // true division
  CHECK((b + b).dtype() == DType::boolean);
  CHECK((b + 1).dtype() == DType::i64);
  CHECK((f16 + bf16).dtype() == DType::f32);
  CHECK((f16 + f32).dtype() == DType::f32);
  CHECK((i32 + scalar_tensor(1, DType::i64)).dtype() == DType::i32);   // 0-dim of the same category
  CHECK((f16 + scalar_tensor(1.0, DType::f32)).dtype() == DType::f16);
  CHECK((i64 + scalar_tensor(1.0, DType::f64)).dtype() == DType::f64);  // 0-dim of a higher category
  CHECK((scalar_tensor(1, DType::i32) + scalar_tensor(1, DType::i64)).dtype() == DType::i64);
  CHECK(exp(i64).dtype() == DType::f32);
  CHECK(neg(i32).dtype() == DType::i32);
  CHECK(eq(f16, f32).dtype() == DType::boolean);
  CHECK(sum(i32).dtype() == DType::i64);
  CHECK(sum(b).dtype() == DType::i64);
  CHECK(sum(f16).dtype() == DType::f16);
  CHECK_THROWS_AS(mean(i64), DTypeError);
  CHECK_THROWS_AS(neg(b), DTypeError);
  CHECK_THROWS_AS(b - b, DTypeError);
}

TEST_CASE("dtype names, parsing and sizes") {
  CHECK(std::string(dtype_name(DType::bf16)) == "bf16");
  CHECK(parse_dtype("float16") == DType::f16);
  CHECK(parse_dtype("bool") == DType::boolean);
  CHECK_THROWS_AS(parse_dtype("f8"), DTypeError);
  CHECK(itemsize(DType::f16) == 2);
  CHECK(itemsize(DType::i64) == 8);
  CHECK(itemsize(DType::boolean) == 1);
  CHECK(Device::parse("cuda:3") == Device::cuda(3));
  CHECK(Device::parse("cpu") == Device::cpu());
  CHECK_THROWS_AS(Device::parse("gpu"), ValueError);
  CHECK_THROWS_AS(Device::parse("cuda:x"), ValueError);
}

TEST_CASE("conversions between all dtypes through tensors") {
  const Tensor src = tensor({-2.75, -1.0, 0.0, 0.5, 3.0, 200.0}, DType::f64);
  CHECK(src.to(DType::i64).tolist<int64_t>() == std::vector<int64_t>{-2, -1, 0, 0, 3, 200});  // toward zero
  CHECK(src.to(DType::boolean).tolist<bool>() == std::vector<bool>{true, true, false, true, true, true});
  CHECK(src.to(DType::f16).tolist<double>() == std::vector<double>{-2.75, -1.0, 0.0, 0.5, 3.0, 200.0});
  CHECK(tensor({1.0f / 3.0f}).to(DType::bf16).item<float>() == BFloat16(1.0f / 3.0f));
  CHECK(tensor({300}).to(DType::u8).item<int64_t>() == 44);  // wraps like a C cast of an integer
}
