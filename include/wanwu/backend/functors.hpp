// Per-element math, written once as `WANWU_HD` functors and run by both backends (DESIGN §6).
// The X-macro tables at the bottom are the single list of elementwise ops: each line names the
// op, its functor, the dtypes it accepts and what it outputs. The op enums and both backends'
// dispatch switches are generated from these tables, so a new elementwise op is one functor and
// one table line.
//
// Functors take the compute type C (float for f16/bf16/f32, double for f64, the integer type for
// integers) and an `OpParams` with the op's scalar arguments (slope, bounds, exponent, …).
#pragma once

#include <math.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "../core/macros.hpp"

namespace wanwu {

// n / d and n % d for 0 <= n < 2^31 and 1 <= d < 2^31 by a multiply-high, an add and a shift
// (Granlund and Montgomery's method, in the form of PyTorch's IntDivider; s is the smallest shift
// with 2^s >= d, m = floor(2^32 (2^s - d) / d) + 1). CUDA kernels that need each element's channel
// (i % C of a contiguous [M, C] tensor) pay a few instructions instead of a 64-bit division, which
// the GPU runs as a software routine of dozens of instructions: enough to make a memory-bound
// pass over 16-bit activations compute-bound.
struct FastDivmod {
  uint32_t d = 1, m = 1, s = 0;
  FastDivmod() = default;
  WANWU_HD explicit FastDivmod(uint32_t divisor) : d(divisor) {
    while ((uint64_t(1) << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  WANWU_HD uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t t = __umulhi(n, m);
#else
    const uint32_t t = static_cast<uint32_t>((uint64_t(n) * m) >> 32);
#endif
    return (t + n) >> s;
  }
  WANWU_HD uint32_t mod(uint32_t n) const { return n - div(n) * d; }
};

struct OpParams {
  double a = 0.0;
  double b = 0.0;
};

// Math functions that resolve to the C library on the host and CUDA's math API on the device.
namespace fm {

// e^x in f32 from float arithmetic only, so that a loop of it vectorizes on the host: a call to the
// C library's expf does not, and SiLU, sigmoid and softmax over a vector spend most of their time
// in it (EfficientNet-B0 eval: 38% of the forward pass). Cody-Waite reduction x = n ln2 + r with
// |r| <= ln2/2, Cephes' degree-6 minimax polynomial for e^r (within 1 ulp, tests/test_elementwise),
// and 2^n applied as two exact power-of-two factors so that results down to the subnormal range and
// up to overflow (inf above 88.72) come out right; NaN propagates. CUDA keeps its own expf.
WANWU_HD WANWU_ALWAYS_INLINE float exp_f32(float x) {
  float xc = x < -104.0f ? -104.0f : x;  // e^-104 rounds to 0; comparisons keep NaN
  xc = xc > 89.0f ? 89.0f : xc;          // e^89 overflows to inf
  // n = round(x / ln2) by the 1.5 * 2^23 trick (round to nearest, vectorizes)
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;  // ln2 split in two: the first part is exact in n * hi
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  // 2^n = 2^a 2^b, a = n / 2 rounded toward zero, so that both fit a float's exponent (n in [-150, 129])
  const int ni = static_cast<int>(n == n ? n : 0.0f);
  const int a = ni / 2, b = ni - a;
  const float sa = __builtin_bit_cast(float, (a + 127) << 23), sb = __builtin_bit_cast(float, (b + 127) << 23);
  return er * sa * sb;
}

// erfc(x) in f32 from float arithmetic only, for GELU, which otherwise spends most of a ViT MLP's
// elementwise time in the C library's erfcf (one call per element, about 8x slower than this
// vectorized form). For a = |x|: erfc(a) = e^{-a^2} (1 + p(q)) / (1 + 2a) with q = (a-2)/(a+2)
// mapping [0, inf) onto [-1, 1) (Juffa's substitution; p is a degree-9 relative-minimax fit, 1.3e-8,
// made for this file with mpmath), a^2 split exactly into hi + lo so that e^{-a^2} keeps its
// precision where it is tiny, and erfc(-a) = 2 - erfc(a), which never cancels. Within 5 ulp over
// the whole range (tests/test_elementwise); NaN propagates; inf gives 0 and -inf 2.
WANWU_HD WANWU_ALWAYS_INLINE float erfc_f32(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float a = ax > 10.1f ? 10.1f : ax;  // erfc(10.06) underflows to 0; keeps p in its range
  const float q = (a - 2.0f) / (a + 2.0f);
  float p = -4.01088560e-4f;
  p = p * q + -1.23080343e-3f;
  p = p * q + 1.31361373e-3f;
  p = p * q + 8.63239635e-3f;
  p = p * q + -8.05975124e-3f;
  p = p * q + -5.42044826e-2f;
  p = p * q + 1.64055318e-1f;
  p = p * q + -1.66031405e-1f;
  p = p * q + -9.27639753e-2f;
  p = p * q + 2.76978403e-1f;
  const float g = (1.0f + p) / (1.0f + 2.0f * a);
  const float hi = a * a;  // a^2 = hi + lo exactly, by Veltkamp's split of a into 12-bit halves
  const float c = a * 4097.0f;
  const float ah = c - (c - a), al = a - ah;
  const float lo = ((ah * ah - hi) + 2.0f * ah * al) + al * al;
  const float r = g * exp_f32(-hi) * (1.0f - lo);
  return x < 0.0f ? 2.0f - r : r;
}

#define WANWU_FM_UNARY(name, f32fn, f64fn)                          \
  WANWU_HD inline float name(float x) { return ::f32fn(x); }        \
  WANWU_HD inline double name(double x) { return ::f64fn(x); }
#if defined(__CUDA_ARCH__)
WANWU_FM_UNARY(exp, expf, exp)
WANWU_FM_UNARY(erfc, erfcf, erfc)
#else
WANWU_ALWAYS_INLINE float exp(float x) { return exp_f32(x); }
inline double exp(double x) { return ::exp(x); }
WANWU_ALWAYS_INLINE float erfc(float x) { return erfc_f32(x); }
inline double erfc(double x) { return ::erfc(x); }
#endif
WANWU_FM_UNARY(log, logf, log)
WANWU_FM_UNARY(sqrt, sqrtf, sqrt)
WANWU_FM_UNARY(tanh, tanhf, tanh)
WANWU_FM_UNARY(erf, erff, erf)
WANWU_FM_UNARY(log1p, log1pf, log1p)
WANWU_FM_UNARY(expm1, expm1f, expm1)
WANWU_FM_UNARY(sin, sinf, sin)
WANWU_FM_UNARY(cos, cosf, cos)
WANWU_FM_UNARY(floor, floorf, floor)
WANWU_FM_UNARY(ceil, ceilf, ceil)
WANWU_FM_UNARY(trunc, truncf, trunc)
WANWU_FM_UNARY(nearbyint, nearbyintf, nearbyint)
WANWU_FM_UNARY(fabs, fabsf, fabs)
#undef WANWU_FM_UNARY
WANWU_HD inline float pow(float x, float y) { return ::powf(x, y); }
WANWU_HD inline double pow(double x, double y) { return ::pow(x, y); }
template <class C>
WANWU_HD inline bool isnan(C x) {
  return x != x;
}
}  // namespace fm

// ---- unary ----
#define WANWU_FUNCTOR_CTOR(Name) \
  WANWU_HD explicit Name(const OpParams& = {}) {}
#define WANWU_FUNCTOR_CTOR_P(Name) \
  OpParams p;                      \
  WANWU_HD explicit Name(const OpParams& params = {}) : p(params) {}

struct NegF {
  WANWU_FUNCTOR_CTOR(NegF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return -x; }
};
struct AbsF {
  WANWU_FUNCTOR_CTOR(AbsF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return x < C(0) ? C(-x) : x; }
};
struct SignF {
  WANWU_FUNCTOR_CTOR(SignF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return C((C(0) < x) - (x < C(0))); }
};
struct SquareF {
  WANWU_FUNCTOR_CTOR(SquareF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return x * x; }
};
struct ExpF {
  WANWU_FUNCTOR_CTOR(ExpF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::exp(x); }
};
struct LogF {
  WANWU_FUNCTOR_CTOR(LogF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::log(x); }
};
struct Log1pF {
  WANWU_FUNCTOR_CTOR(Log1pF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::log1p(x); }
};
struct Expm1F {
  WANWU_FUNCTOR_CTOR(Expm1F)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::expm1(x); }
};
struct SqrtF {
  WANWU_FUNCTOR_CTOR(SqrtF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::sqrt(x); }
};
struct RsqrtF {
  WANWU_FUNCTOR_CTOR(RsqrtF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return C(1) / fm::sqrt(x); }
};
struct ReciprocalF {
  WANWU_FUNCTOR_CTOR(ReciprocalF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return C(1) / x; }
};
struct SinF {
  WANWU_FUNCTOR_CTOR(SinF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::sin(x); }
};
struct CosF {
  WANWU_FUNCTOR_CTOR(CosF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::cos(x); }
};
struct FloorF {
  WANWU_FUNCTOR_CTOR(FloorF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::floor(x); }
};
struct CeilF {
  WANWU_FUNCTOR_CTOR(CeilF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::ceil(x); }
};
struct RoundF {  // half to even, like torch.round
  WANWU_FUNCTOR_CTOR(RoundF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::nearbyint(x); }
};
struct TruncF {
  WANWU_FUNCTOR_CTOR(TruncF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::trunc(x); }
};
struct ErfF {
  WANWU_FUNCTOR_CTOR(ErfF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::erf(x); }
};
struct PowScalarF {  // x ** p.a
  WANWU_FUNCTOR_CTOR_P(PowScalarF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const {
    if (p.a == 2.0) return x * x;
    if (p.a == 1.0) return x;
    if (p.a == 0.5) return fm::sqrt(x);
    if (p.a == -1.0) return C(1) / x;
    return fm::pow(x, C(p.a));
  }
};
struct ClampF {  // into [p.a, p.b]; NaN stays NaN
  WANWU_FUNCTOR_CTOR_P(ClampF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const {
    if (fm::isnan(x)) return x;
    const C lo = C(p.a), hi = C(p.b);
    return x < lo ? lo : (x > hi ? hi : x);
  }
};
struct IsNanF {
  WANWU_FUNCTOR_CTOR(IsNanF)
  template <class C> WANWU_HD_INLINE bool operator()(C x) const { return fm::isnan(x); }
};
struct IsFiniteF {
  WANWU_FUNCTOR_CTOR(IsFiniteF)
  template <class C> WANWU_HD_INLINE bool operator()(C x) const { return x - x == C(0); }  // false for Inf, NaN
};
struct LogicalNotF {
  WANWU_FUNCTOR_CTOR(LogicalNotF)
  template <class C> WANWU_HD_INLINE bool operator()(C x) const { return x == C(0); }
};

// activations (forward)
struct ReluF {
  WANWU_FUNCTOR_CTOR(ReluF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return x > C(0) ? x : (fm::isnan(x) ? x : C(0)); }
};
struct Relu6F {
  WANWU_FUNCTOR_CTOR(Relu6F)
  template <class C> WANWU_HD_INLINE C operator()(C x) const {
    return fm::isnan(x) ? x : (x < C(0) ? C(0) : (x > C(6) ? C(6) : x));
  }
};
struct LeakyReluF {  // slope p.a
  WANWU_FUNCTOR_CTOR_P(LeakyReluF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return x > C(0) ? x : x * C(p.a); }
};
struct SigmoidF {
  WANWU_FUNCTOR_CTOR(SigmoidF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return C(1) / (C(1) + fm::exp(-x)); }
};
struct TanhF {
  WANWU_FUNCTOR_CTOR(TanhF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return fm::tanh(x); }
};
struct SiluF {
  WANWU_FUNCTOR_CTOR(SiluF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return x / (C(1) + fm::exp(-x)); }
};
// GELU: x * Phi(x). Phi is written with erfc and the tanh form with a sigmoid,
// 0.5 (1 + tanh u) = 1 / (1 + e^{-2u}), so neither cancels for negative x.
struct GeluF {
  WANWU_FUNCTOR_CTOR(GeluF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const {
    return C(0.5) * x * fm::erfc(-x * C(0.70710678118654752440));
  }
};
struct GeluTanhF {  // PyTorch's approximate="tanh"
  WANWU_FUNCTOR_CTOR(GeluTanhF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const {
    const C u = C(0.79788456080286535588) * (x + C(0.044715) * x * x * x);  // sqrt(2/pi) (x + c x^3)
    return x / (C(1) + fm::exp(C(-2) * u));
  }
};
struct HardswishF {
  WANWU_FUNCTOR_CTOR(HardswishF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const {
    const C r = x + C(3);
    return x * (r < C(0) ? C(0) : (r > C(6) ? C(6) : r)) / C(6);
  }
};
struct HardsigmoidF {
  WANWU_FUNCTOR_CTOR(HardsigmoidF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const {
    const C r = x + C(3);
    return (r < C(0) ? C(0) : (r > C(6) ? C(6) : r)) / C(6);
  }
};
struct SoftplusF {  // beta p.a, threshold p.b
  WANWU_FUNCTOR_CTOR_P(SoftplusF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const {
    const C bx = x * C(p.a);
    return bx > C(p.b) ? x : fm::log1p(fm::exp(bx)) / C(p.a);
  }
};

// ---- binary ----
struct AddF {
  WANWU_FUNCTOR_CTOR(AddF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const { return x + y; }
};
struct AddReluF {  // relu(x + y): a residual block's join in one pass (NaN propagates, as ReluF)
  WANWU_FUNCTOR_CTOR(AddReluF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const {
    const C s = x + y;
    return s > C(0) ? s : (fm::isnan(s) ? s : C(0));
  }
};
struct AddScaledF {  // x + p.a * y (PyTorch's add/sub with alpha)
  WANWU_FUNCTOR_CTOR_P(AddScaledF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const { return x + C(p.a) * y; }
};
struct SubF {
  WANWU_FUNCTOR_CTOR(SubF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const { return x - y; }
};
struct MulF {
  WANWU_FUNCTOR_CTOR(MulF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const {
    if constexpr (std::is_same_v<C, bool>) return x && y;
    else return x * y;
  }
};
struct DivF {
  WANWU_FUNCTOR_CTOR(DivF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const { return x / y; }
};
struct MaximumF {  // NaN-propagating
  WANWU_FUNCTOR_CTOR(MaximumF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const {
    if (fm::isnan(x)) return x;
    if (fm::isnan(y)) return y;
    return x > y ? x : y;
  }
};
struct MinimumF {
  WANWU_FUNCTOR_CTOR(MinimumF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const {
    if (fm::isnan(x)) return x;
    if (fm::isnan(y)) return y;
    return x < y ? x : y;
  }
};
struct PowF {
  WANWU_FUNCTOR_CTOR(PowF)
  template <class C> WANWU_HD_INLINE C operator()(C x, C y) const { return fm::pow(x, y); }
};
struct EqF {
  WANWU_FUNCTOR_CTOR(EqF)
  template <class C> WANWU_HD_INLINE bool operator()(C x, C y) const { return x == y; }
};
struct NeF {
  WANWU_FUNCTOR_CTOR(NeF)
  template <class C> WANWU_HD_INLINE bool operator()(C x, C y) const { return x != y; }
};
struct LtF {
  WANWU_FUNCTOR_CTOR(LtF)
  template <class C> WANWU_HD_INLINE bool operator()(C x, C y) const { return x < y; }
};
struct LeF {
  WANWU_FUNCTOR_CTOR(LeF)
  template <class C> WANWU_HD_INLINE bool operator()(C x, C y) const { return x <= y; }
};
struct GtF {
  WANWU_FUNCTOR_CTOR(GtF)
  template <class C> WANWU_HD_INLINE bool operator()(C x, C y) const { return x > y; }
};
struct GeF {
  WANWU_FUNCTOR_CTOR(GeF)
  template <class C> WANWU_HD_INLINE bool operator()(C x, C y) const { return x >= y; }
};
struct LogicalAndF {
  WANWU_FUNCTOR_CTOR(LogicalAndF)
  template <class C> WANWU_HD_INLINE bool operator()(C x, C y) const { return x != C(0) && y != C(0); }
};
struct LogicalOrF {
  WANWU_FUNCTOR_CTOR(LogicalOrF)
  template <class C> WANWU_HD_INLINE bool operator()(C x, C y) const { return x != C(0) || y != C(0); }
};

// The activations a convolution block ends with (nn::conv_bn_act, batch_norm_act). Batch norm's
// kernels apply them in the pass that writes the output; with_activation hands such a kernel the
// activation's functor (IdentityF for none), so each backend instantiates its pass once per
// activation from this one switch.
enum class Activation : uint8_t { none, relu, relu6, silu };
struct IdentityF {
  WANWU_FUNCTOR_CTOR(IdentityF)
  template <class C> WANWU_HD_INLINE C operator()(C x) const { return x; }
};
template <class F>
decltype(auto) with_activation(Activation act, F&& f) {
  switch (act) {
    case Activation::relu: return f(ReluF(OpParams{}));
    case Activation::relu6: return f(Relu6F(OpParams{}));
    case Activation::silu: return f(SiluF(OpParams{}));
    case Activation::none: break;
  }
  return f(IdentityF(OpParams{}));
}

// Activation backward, (grad, x) -> grad_in unless noted (grad, y) with y the forward output.
struct ReluBackwardF {  // (g, y)
  WANWU_FUNCTOR_CTOR(ReluBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C y) const { return y > C(0) ? g : C(0); }
};
struct Relu6BackwardF {  // hardtanh(0, 6): gradient inside the open interval
  WANWU_FUNCTOR_CTOR(Relu6BackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const { return x > C(0) && x < C(6) ? g : C(0); }
};
struct LeakyReluBackwardF {
  WANWU_FUNCTOR_CTOR_P(LeakyReluBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const { return x > C(0) ? g : g * C(p.a); }
};
struct SigmoidBackwardF {  // (g, y)
  WANWU_FUNCTOR_CTOR(SigmoidBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C y) const { return g * y * (C(1) - y); }
};
struct TanhBackwardF {  // (g, y)
  WANWU_FUNCTOR_CTOR(TanhBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C y) const { return g * (C(1) - y * y); }
};
struct SiluBackwardF {
  WANWU_FUNCTOR_CTOR(SiluBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const {
    const C s = C(1) / (C(1) + fm::exp(-x));
    return g * s * (C(1) + x * (C(1) - s));
  }
};
struct GeluBackwardF {
  WANWU_FUNCTOR_CTOR(GeluBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const {
    const C cdf = C(0.5) * fm::erfc(-x * C(0.70710678118654752440));
    const C pdf = fm::exp(C(-0.5) * x * x) * C(0.39894228040143267794);  // 1/sqrt(2 pi)
    return g * (cdf + x * pdf);
  }
};
struct GeluTanhBackwardF {
  WANWU_FUNCTOR_CTOR(GeluTanhBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const {
    const C k = C(0.79788456080286535588), c = C(0.044715);
    const C s = C(1) / (C(1) + fm::exp(C(-2) * k * (x + c * x * x * x)));  // 0.5 (1 + tanh u)
    const C du = k * (C(1) + C(3) * c * x * x);
    return g * (s + C(2) * x * s * (C(1) - s) * du);
  }
};
struct HardswishBackwardF {
  WANWU_FUNCTOR_CTOR(HardswishBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const {
    if (x < C(-3)) return C(0);
    if (x <= C(3)) return g * (x / C(3) + C(0.5));
    return g;
  }
};
struct HardsigmoidBackwardF {
  WANWU_FUNCTOR_CTOR(HardsigmoidBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const { return x > C(-3) && x < C(3) ? g / C(6) : C(0); }
};
struct SoftplusBackwardF {  // beta p.a, threshold p.b
  WANWU_FUNCTOR_CTOR_P(SoftplusBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const {
    const C bx = x * C(p.a);
    if (bx > C(p.b)) return g;
    const C z = fm::exp(bx);
    return g * z / (z + C(1));
  }
};
struct ClampBackwardF {  // gradient where p.a <= x <= p.b
  WANWU_FUNCTOR_CTOR_P(ClampBackwardF)
  template <class C> WANWU_HD_INLINE C operator()(C g, C x) const { return x >= C(p.a) && x <= C(p.b) ? g : C(0); }
};

#undef WANWU_FUNCTOR_CTOR
#undef WANWU_FUNCTOR_CTOR_P

// Which dtypes an op accepts. `numeric` excludes bool; `floating` is f32/f64/f16/bf16.
enum class OpDTypes : uint8_t { all, numeric, floating };
// What an op outputs: the input dtype, or bool.
enum class OpOut : uint8_t { same, boolean };

// X(Name, Functor, OpDTypes, OpOut)
#define WANWU_UNARY_OPS(X)                              \
  X(neg, NegF, numeric, same)                           \
  X(abs, AbsF, numeric, same)                           \
  X(sign, SignF, numeric, same)                         \
  X(square, SquareF, numeric, same)                     \
  X(exp, ExpF, floating, same)                          \
  X(log, LogF, floating, same)                          \
  X(log1p, Log1pF, floating, same)                      \
  X(expm1, Expm1F, floating, same)                      \
  X(sqrt, SqrtF, floating, same)                        \
  X(rsqrt, RsqrtF, floating, same)                      \
  X(reciprocal, ReciprocalF, floating, same)            \
  X(sin, SinF, floating, same)                          \
  X(cos, CosF, floating, same)                          \
  X(floor, FloorF, floating, same)                      \
  X(ceil, CeilF, floating, same)                        \
  X(round, RoundF, floating, same)                      \
  X(trunc, TruncF, floating, same)                      \
  X(erf, ErfF, floating, same)                          \
  X(pow_scalar, PowScalarF, floating, same)             \
  X(clamp, ClampF, numeric, same)                       \
  X(isnan, IsNanF, floating, boolean)                   \
  X(isfinite, IsFiniteF, floating, boolean)             \
  X(logical_not, LogicalNotF, all, boolean)             \
  X(relu, ReluF, numeric, same)                         \
  X(relu6, Relu6F, floating, same)                      \
  X(leaky_relu, LeakyReluF, floating, same)             \
  X(sigmoid, SigmoidF, floating, same)                  \
  X(tanh, TanhF, floating, same)                        \
  X(silu, SiluF, floating, same)                        \
  X(gelu, GeluF, floating, same)                        \
  X(gelu_tanh, GeluTanhF, floating, same)               \
  X(hardswish, HardswishF, floating, same)              \
  X(hardsigmoid, HardsigmoidF, floating, same)          \
  X(softplus, SoftplusF, floating, same)

#define WANWU_BINARY_OPS(X)                                 \
  X(add, AddF, all, same)                                   \
  X(add_scaled, AddScaledF, numeric, same)                  \
  X(add_relu, AddReluF, floating, same)                     \
  X(sub, SubF, numeric, same)                               \
  X(mul, MulF, all, same)                                   \
  X(div, DivF, floating, same)                              \
  X(maximum, MaximumF, all, same)                           \
  X(minimum, MinimumF, all, same)                           \
  X(pow, PowF, floating, same)                              \
  X(eq, EqF, all, boolean)                                  \
  X(ne, NeF, all, boolean)                                  \
  X(lt, LtF, all, boolean)                                  \
  X(le, LeF, all, boolean)                                  \
  X(gt, GtF, all, boolean)                                  \
  X(ge, GeF, all, boolean)                                  \
  X(logical_and, LogicalAndF, all, boolean)                 \
  X(logical_or, LogicalOrF, all, boolean)                   \
  X(relu_backward, ReluBackwardF, floating, same)           \
  X(relu6_backward, Relu6BackwardF, floating, same)         \
  X(leaky_relu_backward, LeakyReluBackwardF, floating, same) \
  X(sigmoid_backward, SigmoidBackwardF, floating, same)     \
  X(tanh_backward, TanhBackwardF, floating, same)           \
  X(silu_backward, SiluBackwardF, floating, same)           \
  X(gelu_backward, GeluBackwardF, floating, same)           \
  X(gelu_tanh_backward, GeluTanhBackwardF, floating, same)  \
  X(hardswish_backward, HardswishBackwardF, floating, same) \
  X(hardsigmoid_backward, HardsigmoidBackwardF, floating, same) \
  X(softplus_backward, SoftplusBackwardF, floating, same)   \
  X(clamp_backward, ClampBackwardF, floating, same)

#define WANWU_OP_ENUM_ENTRY(name, F, dt, out) name,
enum class UnaryOp : uint8_t { WANWU_UNARY_OPS(WANWU_OP_ENUM_ENTRY) };
enum class BinaryOp : uint8_t { WANWU_BINARY_OPS(WANWU_OP_ENUM_ENTRY) };
#undef WANWU_OP_ENUM_ENTRY

#define WANWU_OP_NAME_CASE(name, F, dt, out) \
  case Op::name: return #name;
inline const char* op_name(UnaryOp op) {
  using Op = UnaryOp;
  switch (op) { WANWU_UNARY_OPS(WANWU_OP_NAME_CASE) }
  return "?";
}
inline const char* op_name(BinaryOp op) {
  using Op = BinaryOp;
  switch (op) { WANWU_BINARY_OPS(WANWU_OP_NAME_CASE) }
  return "?";
}
#undef WANWU_OP_NAME_CASE

#define WANWU_OP_TRAITS_CASE(name, F, dt, out) \
  case Op::name: return {OpDTypes::dt, OpOut::out};
struct OpTraits {
  OpDTypes dtypes;
  OpOut out;
};
inline OpTraits op_traits(UnaryOp op) {
  using Op = UnaryOp;
  switch (op) { WANWU_UNARY_OPS(WANWU_OP_TRAITS_CASE) }
  return {OpDTypes::all, OpOut::same};
}
inline OpTraits op_traits(BinaryOp op) {
  using Op = BinaryOp;
  switch (op) { WANWU_BINARY_OPS(WANWU_OP_TRAITS_CASE) }
  return {OpDTypes::all, OpOut::same};
}
#undef WANWU_OP_TRAITS_CASE

// Reductions: sum and prod accumulate in acc_t (f32 for f16/bf16/f32, f64, i64 for integers) and
// output i64 for integer inputs; mean is floating only; max/min propagate NaN; any/all give bool.
enum class ReduceOp : uint8_t { sum, mean, prod, max, min, any, all };
enum class ArgReduceOp : uint8_t { argmax, argmin };

inline const char* op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::mean: return "mean";
    case ReduceOp::prod: return "prod";
    case ReduceOp::max: return "amax";
    case ReduceOp::min: return "amin";
    case ReduceOp::any: return "any";
    case ReduceOp::all: return "all";
  }
  return "?";
}

}  // namespace wanwu

namespace wanwu {

// ---- optimizer steps, element by element (both backends run these) ----

struct SgdStepParams {
  double lr = 0.0, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  bool init_buffer = false;  // first step: the momentum buffer becomes the gradient
  // Inside a CUDA graph (core/capture.hpp): device address of the doubles that replace the
  // fields above at each replay, in sgd_live_store's order; a kernel applies them once with
  // with_live. Null outside a capture, and always on the CPU.
  const double* live = nullptr;
  // A gated step (GradScaler with ScalerSync::device): the address, on the step's device, of an
  // f32 flag; where it is nonzero the kernel leaves every tensor as it is. The device decides, so
  // the host need not read the flag. Null: the step runs.
  const float* skip = nullptr;
};
inline constexpr size_t kSgdLive = 4;
WANWU_HD inline void sgd_live_store(const SgdStepParams& s, double* v) {
  v[0] = s.lr, v[1] = s.momentum, v[2] = s.dampening, v[3] = s.weight_decay;
}
WANWU_HD inline SgdStepParams with_live(SgdStepParams s) {
  if (s.live) s.lr = s.live[0], s.momentum = s.live[1], s.dampening = s.live[2], s.weight_decay = s.live[3];
  return s;
}

// PyTorch's SGD: d = g + wd * p; buf = momentum * buf + (1 - dampening) * d (or d on the first
// step); d = nesterov ? d + momentum * buf : buf; p -= lr * d.
template <class C>
WANWU_HD inline void sgd_update(C& p, C g, C& buf, const SgdStepParams& s) {
  C d = g;
  if (s.weight_decay != 0.0) d = d + C(s.weight_decay) * p;
  if (s.momentum != 0.0) {
    buf = s.init_buffer ? d : buf * C(s.momentum) + C(1.0 - s.dampening) * d;
    d = s.nesterov ? d + C(s.momentum) * buf : buf;
  }
  p = p - C(s.lr) * d;
}

struct AdamStepParams {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = false;  // AdamW: p *= 1 - lr * wd, no decay in the gradient
  bool amsgrad = false;
  double step_size = 0.0;              // lr / (1 - beta1^step)
  double bias_correction2_sqrt = 1.0;  // sqrt(1 - beta2^step)
  double step = 0.0;                   // the step count the two above were computed from
  const double* live = nullptr;        // as SgdStepParams::live, in adam_live_store's order
  const float* skip = nullptr;         // as SgdStepParams::skip
  // With skip: the address of the f32 count of this optimizer's steps that the device skipped
  // since the host last counted (optim/adam.hpp). The bias corrections are then those of step
  // `step - *skipped`, computed on the device, since the host's count includes steps it never saw
  // skipped.
  const float* skipped = nullptr;
};
inline constexpr size_t kAdamLive = 8;
WANWU_HD inline void adam_live_store(const AdamStepParams& s, double* v) {
  v[0] = s.lr, v[1] = s.beta1, v[2] = s.beta2, v[3] = s.eps, v[4] = s.weight_decay, v[5] = s.step_size;
  v[6] = s.bias_correction2_sqrt, v[7] = s.step;
}
// lr / (1 - beta1^t) and sqrt(1 - beta2^t) in double, as torch.optim.Adam computes them on the host.
WANWU_HD inline void adam_bias_corrections(AdamStepParams& s, double t) {
  s.step = t;
  s.step_size = s.lr / (1.0 - fm::pow(s.beta1, t));
  s.bias_correction2_sqrt = fm::sqrt(1.0 - fm::pow(s.beta2, t));
}
WANWU_HD inline AdamStepParams with_live(AdamStepParams s) {
  if (s.live) {
    s.lr = s.live[0], s.beta1 = s.live[1], s.beta2 = s.live[2], s.eps = s.live[3], s.weight_decay = s.live[4];
    s.step_size = s.live[5], s.bias_correction2_sqrt = s.live[6], s.step = s.live[7];
  }
  if (s.skipped) adam_bias_corrections(s, s.step - static_cast<double>(*s.skipped));
  return s;
}
// Whether a gated step was skipped on its device (read once per block or per call).
template <class P>
WANWU_HD inline bool step_skipped(const P& s) {
  return s.skip != nullptr && *s.skip != 0.0f;
}

// PyTorch's Adam / AdamW (single-tensor path), in its order of operations.
template <class C>
WANWU_HD inline void adam_update(C& p, C g, C& m, C& v, C& vmax, const AdamStepParams& s) {
  if (s.decoupled) p = p * C(1.0 - s.lr * s.weight_decay);
  else if (s.weight_decay != 0.0) g = g + C(s.weight_decay) * p;
  m = m * C(s.beta1) + C(1.0 - s.beta1) * g;
  v = v * C(s.beta2) + C(1.0 - s.beta2) * g * g;
  C denom_src = v;
  if (s.amsgrad) {
    vmax = vmax > v ? vmax : v;
    denom_src = vmax;
  }
  const C denom = fm::sqrt(denom_src) / C(s.bias_correction2_sqrt) + C(s.eps);
  p = p - C(s.step_size) * (m / denom);
}

// ---- dynamic loss scaling on the device (GradScaler with ScalerSync::device) ----

struct AmpScaleParams {
  double growth_factor = 2.0, backoff_factor = 0.5;
  int32_t growth_interval = 2000;
};
// torch's _amp_update_scale_: after a step with an inf/NaN gradient the scale backs off and the
// count of clean steps restarts; after growth_interval clean steps it grows (unless that
// overflows f32). Products in double, rounded once to f32, as the host's GradScaler.
WANWU_HD inline void amp_update_scale(float& scale, int32_t& growth_tracker, float found_inf,
                                      const AmpScaleParams& p) {
  if (found_inf != 0.0f) {
    scale = static_cast<float>(static_cast<double>(scale) * p.backoff_factor);
    growth_tracker = 0;
    return;
  }
  const int32_t clean = growth_tracker + 1;
  if (clean == p.growth_interval) {
    const float grown = static_cast<float>(static_cast<double>(scale) * p.growth_factor);
    if (IsFiniteF()(grown)) scale = grown;
    growth_tracker = 0;
  } else {
    growth_tracker = clean;
  }
}

// ---- gradient norms (clip_grad_norm_), element by element (both backends run these) ----

// Each element adds |x|^p to the sum, in f64 (x * x for p = 2, |x| for p = 1, so the common norms
// need no pow); the max norm keeps the largest |x|, and NaN wins so that a NaN gradient gives a
// NaN norm, as torch's vector_norm does.
enum class NormKind : uint8_t { sum_abs, sum_square, sum_pow, max_abs };
struct NormParams {
  NormKind kind = NormKind::sum_square;
  double p = 2.0;
  static NormParams of_order(double p) {
    NormParams s;
    s.p = p;
    s.kind = p == 1.0 ? NormKind::sum_abs : p == 2.0 ? NormKind::sum_square
             : p == std::numeric_limits<double>::infinity() ? NormKind::max_abs : NormKind::sum_pow;
    return s;
  }
};
WANWU_HD inline double norm_term(double x, const NormParams& s) {
  const double a = x < 0 ? -x : x;
  switch (s.kind) {
    case NormKind::sum_square: return x * x;
    case NormKind::sum_pow: return fm::pow(a, s.p);
    default: return a;
  }
}
WANWU_HD inline double norm_combine(double acc, double t, const NormParams& s) {
  if (s.kind != NormKind::max_abs) return acc + t;
  return acc > t || acc != acc ? acc : t;
}

}  // namespace wanwu
