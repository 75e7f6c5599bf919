// Elementwise ops with NumPy broadcasting and PyTorch type promotion: arithmetic, math
// functions, comparisons, logical ops, where, clamp, pow, maximum/minimum, in-place variants and
// the C++ operators. Each op: check and promote, one backend call, and (when an input requires
// grad) a backward written with these same ops — sum_to undoes broadcasting.
//
// Scalars are "wrapped numbers": 0-dim tensors that promote like Python scalars, so
// `half_t * 0.5` stays f16 and `int_t / 2` becomes f32, as in PyTorch.
#pragma once

#include <limits>
#include <optional>

#include "../autograd/node.hpp"
#include "../core/autocast_state.hpp"
#include "copy.hpp"
#include "factory.hpp"
#include "forward.hpp"

namespace wanwu {

namespace detail {

inline Tensor wrap_scalar(Scalar s, Device d) {
  const DType dt = s.is_floating() ? DType::f64 : s.is_integral() ? DType::i64 : DType::boolean;
  Tensor t = scalar_tensor(s, TensorOptions(dt).device(d));
  t.impl()->is_wrapped_number = true;
  return t;
}

inline DType result_type(std::initializer_list<const Tensor*> ts) {
  ResultTypeState st;
  for (const Tensor* t : ts) {
    if (t->impl()->is_wrapped_number) st.add_scalar(t->dtype() == DType::f64 ? default_float_dtype() : t->dtype());
    else st.add_tensor(t->dtype(), t->dim() == 0);
  }
  return st.result();
}

// The device an op runs on: operands must agree, except that 0-dim CPU tensors (and wrapped
// numbers) may join tensors on any device, as in PyTorch.
inline Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  std::optional<Device> dev;
  for (const Tensor* t : ts) {
    if (t->dim() == 0 && t->device().is_cpu()) continue;
    if (!dev) dev = t->device();
    WANWU_CHECK_T(DeviceError, *dev == t->device(), op, ": expected all tensors on the same device, got ", *dev,
                  " and ", t->device());
  }
  return dev.value_or((*ts.begin())->device());
}

// t converted to dtype `dt` on device `d` (no autograd).
inline Tensor as_operand(const Tensor& t, DType dt, Device d) {
  Tensor r = t.dtype() == dt ? t : copy_as(t, dt);
  return r.device() == d ? r : move_to_device(r, d);
}

// A broadcast view with stride 0 in expanded dims (no autograd, no checks beyond the shape).
inline Tensor broadcast_raw(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Strides st;
  st.resize(shape.size());
  for (int i = 0; i < shape.size(); ++i) {
    const int j = t.dim() - shape.size() + i;
    st[i] = (j < 0 || t.shape()[j] == 1) ? 0 : t.strides()[j];
  }
  return Tensor(std::make_shared<TensorImpl>(t.storage(), t.storage_offset(), shape, st, t.dtype()));
}

inline void check_op_dtype(OpDTypes accepted, DType dt, const char* op) {
  if (accepted == OpDTypes::floating)
    WANWU_CHECK_DTYPE(is_floating(dt), op, ": dtype ", dt, " is not supported (floating types only)");
  if (accepted == OpDTypes::numeric) WANWU_CHECK_DTYPE(dt != DType::boolean, op, ": dtype bool is not supported");
}

// out = op(a, b) computed in dtype `compute` (no autograd). `out` may be given (in-place).
inline Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b, DType compute, const OpParams& p = {},
                         Tensor out = Tensor()) {
  const char* name = op_name(op);
  const OpTraits tr = op_traits(op);
  check_op_dtype(tr.dtypes, compute, name);
  const Device dev = out.defined() ? out.device() : common_device(name, {&a, &b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  if (!out.defined()) out = empty_tensor(shape, tr.out == OpOut::boolean ? DType::boolean : compute, dev);
  WANWU_CHECK_SHAPE(out.shape() == shape, name, ": result of shape ", shape, " does not fit the output of shape ",
                    out.shape());
  backend_for(dev).binary(op, p, out, broadcast_raw(as_operand(a, compute, dev), shape),
                          broadcast_raw(as_operand(b, compute, dev), shape));
  return out;
}

// out = op(x) (no autograd). Floating-only ops promote integer inputs to the default float.
inline Tensor unary_raw(UnaryOp op, const Tensor& x, const OpParams& p = {}, Tensor out = Tensor()) {
  const OpTraits tr = op_traits(op);
  DType dt = x.dtype();
  if (tr.dtypes == OpDTypes::floating && !is_floating(dt)) dt = default_float_dtype();
  check_op_dtype(tr.dtypes, dt, op_name(op));
  const Tensor in = dt == x.dtype() ? x : copy_as(x, dt);
  if (!out.defined()) out = empty_tensor(x.shape(), tr.out == OpOut::boolean ? DType::boolean : dt, x.device());
  backend_for(x.device()).unary(op, p, out, in);
  return out;
}

inline Tensor wrap_for(Scalar s, const Tensor& like) { return wrap_scalar(s, like.device()); }

}  // namespace detail

// ---------------------------------------------------------------- arithmetic

inline Tensor add(const Tensor& a, const Tensor& b, Scalar alpha = 1) {
  const DType dt = detail::result_type({&a, &b});
  const bool plain = alpha.to_double() == 1.0;
  WANWU_CHECK_DTYPE(plain || dt != DType::boolean, "add: alpha is not supported for bool tensors");
  Tensor out = plain ? detail::binary_raw(BinaryOp::add, a, b, dt)
                     : detail::binary_raw(BinaryOp::add_scaled, a, b, dt, {alpha.to_double(), 0.0});
  if (is_floating(dt) && autograd::any_requires_grad({a, b})) {
    const Shape sa = a.shape(), sb = b.shape();
    const double al = alpha.to_double();
    autograd::record("add", {a, b}, {out}, [sa, sb, al](const Grads& g) {
      std::vector<Tensor> r(2);
      if (g.needs_input_grad(0)) r[0] = sum_to(g[0], sa);
      if (g.needs_input_grad(1)) r[1] = sum_to(al == 1.0 ? g[0] : mul(g[0], al), sb);
      return r;
    });
  }
  return out;
}
inline Tensor sub(const Tensor& a, const Tensor& b, Scalar alpha = 1) {
  const DType dt = detail::result_type({&a, &b});
  WANWU_CHECK_DTYPE(dt != DType::boolean, "sub: subtraction of bool tensors is not supported; use logical_xor");
  const bool plain = alpha.to_double() == 1.0;
  Tensor out = plain ? detail::binary_raw(BinaryOp::sub, a, b, dt)
                     : detail::binary_raw(BinaryOp::add_scaled, a, b, dt, {-alpha.to_double(), 0.0});
  if (is_floating(dt) && autograd::any_requires_grad({a, b})) {
    const Shape sa = a.shape(), sb = b.shape();
    const double al = alpha.to_double();
    autograd::record("sub", {a, b}, {out}, [sa, sb, al](const Grads& g) {
      std::vector<Tensor> r(2);
      if (g.needs_input_grad(0)) r[0] = sum_to(g[0], sa);
      if (g.needs_input_grad(1)) r[1] = sum_to(mul(g[0], -al), sb);
      return r;
    });
  }
  return out;
}
inline Tensor mul(const Tensor& a, const Tensor& b) {
  const DType dt = detail::result_type({&a, &b});
  Tensor out = detail::binary_raw(BinaryOp::mul, a, b, dt);
  if (is_floating(dt) && autograd::any_requires_grad({a, b})) {
    const Shape sa = a.shape(), sb = b.shape();
    // Save each input only if the other's gradient needs it.
    SavedTensor s_a = b.defined() && b.requires_grad() ? SavedTensor(a) : SavedTensor();
    SavedTensor s_b = a.requires_grad() ? SavedTensor(b) : SavedTensor();
    autograd::record("mul", {a, b}, {out}, [sa, sb, s_a, s_b](const Grads& g) {
      std::vector<Tensor> r(2);
      if (g.needs_input_grad(0)) r[0] = sum_to(mul(g[0], s_b.get()), sa);
      if (g.needs_input_grad(1)) r[1] = sum_to(mul(g[0], s_a.get()), sb);
      return r;
    });
  }
  return out;
}
inline Tensor div(const Tensor& a, const Tensor& b) {
  DType dt = detail::result_type({&a, &b});
  if (!is_floating(dt)) dt = default_float_dtype();  // true division
  Tensor out = detail::binary_raw(BinaryOp::div, a, b, dt);
  if (autograd::any_requires_grad({a, b})) {
    const Shape sa = a.shape(), sb = b.shape();
    SavedTensor s_b(b), s_out = b.requires_grad() ? SavedTensor(out) : SavedTensor();
    autograd::record("div", {a, b}, {out}, [sa, sb, s_b, s_out](const Grads& g) {
      std::vector<Tensor> r(2);
      const Tensor gb = div(g[0], s_b.get());
      if (g.needs_input_grad(0)) r[0] = sum_to(gb, sa);
      if (g.needs_input_grad(1)) r[1] = sum_to(mul(gb, s_out.get()).neg(), sb);
      return r;
    });
  }
  return out;
}

inline Tensor add(const Tensor& a, Scalar b) { return add(a, detail::wrap_for(b, a)); }
inline Tensor sub(const Tensor& a, Scalar b) { return sub(a, detail::wrap_for(b, a)); }
inline Tensor mul(const Tensor& a, Scalar b) { return mul(a, detail::wrap_for(b, a)); }
inline Tensor div(const Tensor& a, Scalar b) { return div(a, detail::wrap_for(b, a)); }

// ---------------------------------------------------------------- unary math

namespace detail {
// A unary op whose backward is `backward(g, x, y)`.
template <class Backward>
Tensor unary_op(UnaryOp op, const Tensor& x, Backward backward, const OpParams& p = {}) {
  Tensor y = unary_raw(op, x, p);
  if (y.is_floating_point() && autograd::any_requires_grad({x})) {
    SavedTensor sx(x), sy(y);
    autograd::record(op_name(op), {x}, {y},
                     [sx, sy, backward](const Grads& g) { return std::vector<Tensor>{backward(g[0], sx, sy)}; });
  }
  return y;
}
using ST = const SavedTensor&;
}  // namespace detail

inline Tensor neg(const Tensor& x) {
  return detail::unary_op(UnaryOp::neg, x, [](const Tensor& g, detail::ST, detail::ST) { return g.neg(); });
}
inline Tensor abs(const Tensor& x) {
  return detail::unary_op(UnaryOp::abs, x,
                          [](const Tensor& g, detail::ST x, detail::ST) { return mul(g, x.get().sign()); });
}
inline Tensor sign(const Tensor& x) {
  return detail::unary_op(UnaryOp::sign, x, [](const Tensor& g, detail::ST, detail::ST) { return zeros_like(g); });
}
inline Tensor square(const Tensor& x) {
  return detail::unary_op(UnaryOp::square, x,
                          [](const Tensor& g, detail::ST x, detail::ST) { return mul(mul(g, x.get()), 2.0); });
}
inline Tensor exp(const Tensor& x_in) {
  const Tensor x = amp::full_precision(x_in);
  return detail::unary_op(UnaryOp::exp, x, [](const Tensor& g, detail::ST, detail::ST y) { return mul(g, y.get()); });
}
inline Tensor log(const Tensor& x_in) {
  const Tensor x = amp::full_precision(x_in);
  return detail::unary_op(UnaryOp::log, x, [](const Tensor& g, detail::ST x, detail::ST) { return div(g, x.get()); });
}
inline Tensor log1p(const Tensor& x_in) {
  const Tensor x = amp::full_precision(x_in);
  return detail::unary_op(UnaryOp::log1p, x,
                          [](const Tensor& g, detail::ST x, detail::ST) { return div(g, add(x.get(), 1.0)); });
}
inline Tensor expm1(const Tensor& x_in) {
  const Tensor x = amp::full_precision(x_in);
  return detail::unary_op(UnaryOp::expm1, x,
                          [](const Tensor& g, detail::ST, detail::ST y) { return mul(g, add(y.get(), 1.0)); });
}
inline Tensor sqrt(const Tensor& x) {
  return detail::unary_op(UnaryOp::sqrt, x,
                          [](const Tensor& g, detail::ST, detail::ST y) { return div(g, mul(y.get(), 2.0)); });
}
inline Tensor rsqrt(const Tensor& x_in) {
  const Tensor x = amp::full_precision(x_in);
  return detail::unary_op(UnaryOp::rsqrt, x, [](const Tensor& g, detail::ST, detail::ST y) {
    const Tensor yv = y.get();
    return mul(mul(g, mul(mul(yv, yv), yv)), -0.5);
  });
}
inline Tensor reciprocal(const Tensor& x_in) {
  const Tensor x = amp::full_precision(x_in);
  return detail::unary_op(UnaryOp::reciprocal, x, [](const Tensor& g, detail::ST, detail::ST y) {
    return mul(g, mul(y.get(), y.get())).neg();
  });
}
inline Tensor sin(const Tensor& x) {
  return detail::unary_op(UnaryOp::sin, x,
                          [](const Tensor& g, detail::ST x, detail::ST) { return mul(g, detail::unary_raw(UnaryOp::cos, x.get())); });
}
inline Tensor cos(const Tensor& x) {
  return detail::unary_op(UnaryOp::cos, x, [](const Tensor& g, detail::ST x, detail::ST) {
    return mul(g, detail::unary_raw(UnaryOp::sin, x.get())).neg();
  });
}
inline Tensor erf(const Tensor& x) {
  return detail::unary_op(UnaryOp::erf, x, [](const Tensor& g, detail::ST x, detail::ST) {
    const Tensor xv = x.get();
    return mul(g, mul(mul(xv, xv).neg().exp(), 1.1283791670955125739));  // 2/sqrt(pi)
  });
}
namespace detail {
inline Tensor piecewise_constant(UnaryOp op, const Tensor& x) {
  return unary_op(op, x, [](const Tensor& g, ST, ST) { return zeros_like(g); });
}
}  // namespace detail
inline Tensor floor(const Tensor& x) { return detail::piecewise_constant(UnaryOp::floor, x); }
inline Tensor ceil(const Tensor& x) { return detail::piecewise_constant(UnaryOp::ceil, x); }
inline Tensor round(const Tensor& x) { return detail::piecewise_constant(UnaryOp::round, x); }
inline Tensor trunc(const Tensor& x) { return detail::piecewise_constant(UnaryOp::trunc, x); }

inline Tensor pow(const Tensor& x_in, Scalar exponent) {
  const Tensor x = amp::full_precision(x_in);
  const double e = exponent.to_double();
  if (!is_floating(x.dtype()) && !exponent.is_floating()) {  // integer power of an integer tensor
    WANWU_CHECK_VALUE(exponent.to_int() >= 0, "pow: integers to negative integer powers are not allowed");
    Tensor r = ones_like(x);
    for (int64_t i = 0; i < exponent.to_int(); ++i) r = detail::binary_raw(BinaryOp::mul, r, x, x.dtype());
    return r;
  }
  return detail::unary_op(
      UnaryOp::pow_scalar, x,
      [e](const Tensor& g, detail::ST x, detail::ST) {
        if (e == 0.0) return zeros_like(g);
        return mul(mul(g, pow(x.get(), e - 1.0)), e);
      },
      {e, 0.0});
}

inline Tensor pow(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = amp::full_precision(a_in), b = amp::full_precision(b_in);
  DType dt = detail::result_type({&a, &b});
  WANWU_CHECK_DTYPE(is_floating(dt), "pow: tensor exponents need a floating dtype, got ", a.dtype(), " and ",
                    b.dtype());
  Tensor out = detail::binary_raw(BinaryOp::pow, a, b, dt);
  if (autograd::any_requires_grad({a, b})) {
    const Shape sa = a.shape(), sb = b.shape();
    SavedTensor s_a(a), s_b(b), s_out(out);
    autograd::record("pow", {a, b}, {out}, [sa, sb, s_a, s_b, s_out](const Grads& g) {
      std::vector<Tensor> r(2);
      const Tensor av = s_a.get(), bv = s_b.get();
      if (g.needs_input_grad(0)) r[0] = sum_to(mul(mul(g[0], bv), pow(av, sub(bv, 1.0))), sa);
      if (g.needs_input_grad(1)) {
        // d/db a^b = a^b log a, taken as 0 where a == 0 and b >= 0 (PyTorch's convention)
        const Tensor zero_base = detail::binary_raw(BinaryOp::logical_and, eq(av, detail::wrap_for(0, av)),
                                                    detail::binary_raw(BinaryOp::ge, bv, detail::wrap_for(0, bv), bv.dtype()),
                                                    DType::boolean);
        const Tensor d = where(zero_base, zeros_like(s_out.get()), mul(s_out.get(), log(av)));
        r[1] = sum_to(mul(g[0], d), sb);
      }
      return r;
    });
  }
  return out;
}
inline Tensor pow(Scalar base, const Tensor& exponent) { return pow(detail::wrap_for(base, exponent), exponent); }

// ---------------------------------------------------------------- comparisons, logical

namespace detail {
inline Tensor compare(BinaryOp op, const Tensor& a, const Tensor& b) {
  return binary_raw(op, a, b, result_type({&a, &b}));
}
}  // namespace detail
inline Tensor eq(const Tensor& a, const Tensor& b) { return detail::compare(BinaryOp::eq, a, b); }
inline Tensor ne(const Tensor& a, const Tensor& b) { return detail::compare(BinaryOp::ne, a, b); }
inline Tensor lt(const Tensor& a, const Tensor& b) { return detail::compare(BinaryOp::lt, a, b); }
inline Tensor le(const Tensor& a, const Tensor& b) { return detail::compare(BinaryOp::le, a, b); }
inline Tensor gt(const Tensor& a, const Tensor& b) { return detail::compare(BinaryOp::gt, a, b); }
inline Tensor ge(const Tensor& a, const Tensor& b) { return detail::compare(BinaryOp::ge, a, b); }
inline Tensor eq(const Tensor& a, Scalar b) { return eq(a, detail::wrap_for(b, a)); }
inline Tensor ne(const Tensor& a, Scalar b) { return ne(a, detail::wrap_for(b, a)); }
inline Tensor lt(const Tensor& a, Scalar b) { return lt(a, detail::wrap_for(b, a)); }
inline Tensor le(const Tensor& a, Scalar b) { return le(a, detail::wrap_for(b, a)); }
inline Tensor gt(const Tensor& a, Scalar b) { return gt(a, detail::wrap_for(b, a)); }
inline Tensor ge(const Tensor& a, Scalar b) { return ge(a, detail::wrap_for(b, a)); }
inline Tensor logical_and(const Tensor& a, const Tensor& b) { return detail::compare(BinaryOp::logical_and, a, b); }
inline Tensor logical_or(const Tensor& a, const Tensor& b) { return detail::compare(BinaryOp::logical_or, a, b); }
inline Tensor logical_not(const Tensor& x) { return detail::unary_raw(UnaryOp::logical_not, x); }
inline Tensor isnan(const Tensor& x) {
  return is_floating(x.dtype()) ? detail::unary_raw(UnaryOp::isnan, x) : zeros(x.shape(), TensorOptions(DType::boolean).device(x.device()));
}
inline Tensor isfinite(const Tensor& x) {
  return is_floating(x.dtype()) ? detail::unary_raw(UnaryOp::isfinite, x) : ones(x.shape(), TensorOptions(DType::boolean).device(x.device()));
}
// True if a and b have the same shape and |a - b| <= atol + rtol * |b| everywhere (NaN unequal).
inline bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8) {
  if (a.shape() != b.shape()) return false;
  NoGradGuard ng;
  const Tensor af = a.to(DType::f64), bf = b.to(DType::f64);
  const Tensor diff = abs(sub(af, bf));
  const Tensor tol = add(mul(abs(bf), rtol), atol);
  const Tensor close = logical_or(eq(af, bf), le(diff, tol));  // equal infinities are close
  return close.to(DType::i64).sum().item<int64_t>() == a.numel();
}

// ---------------------------------------------------------------- selection

inline Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  WANWU_CHECK_DTYPE(cond.dtype() == DType::boolean, "where: condition must be bool, got ", cond.dtype());
  const DType dt = detail::result_type({&a, &b});
  const Device dev = detail::common_device("where", {&cond, &a, &b});
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty_tensor(shape, dt, dev);
  backend_for(dev).where(out, detail::broadcast_raw(detail::as_operand(cond, DType::boolean, dev), shape),
                         detail::broadcast_raw(detail::as_operand(a, dt, dev), shape),
                         detail::broadcast_raw(detail::as_operand(b, dt, dev), shape));
  if (is_floating(dt) && autograd::any_requires_grad({a, b})) {
    const Shape sa = a.shape(), sb = b.shape();
    SavedTensor sc(cond);
    autograd::record("where", {a, b}, {out}, [sa, sb, sc](const Grads& g) {
      std::vector<Tensor> r(2);
      const Tensor z = zeros(Shape{}, options_of(g[0]));
      if (g.needs_input_grad(0)) r[0] = sum_to(where(sc.get(), g[0], z), sa);
      if (g.needs_input_grad(1)) r[1] = sum_to(where(sc.get(), z, g[0]), sb);
      return r;
    });
  }
  return out;
}
inline Tensor where(const Tensor& cond, const Tensor& a, Scalar b) { return where(cond, a, detail::wrap_for(b, a)); }
inline Tensor where(const Tensor& cond, Scalar a, const Tensor& b) { return where(cond, detail::wrap_for(a, b), b); }

inline Tensor maximum(const Tensor& a, const Tensor& b);
inline Tensor minimum(const Tensor& a, const Tensor& b);
namespace detail {
// PyTorch's formula: the gradient goes to the larger (smaller) input, split in half on ties.
inline Tensor extreme2(BinaryOp op, const Tensor& a, const Tensor& b) {
  const DType dt = result_type({&a, &b});
  Tensor out = binary_raw(op, a, b, dt);
  if (is_floating(dt) && autograd::any_requires_grad({a, b})) {
    const Shape sa = a.shape(), sb = b.shape();
    SavedTensor s_a(a), s_b(b);
    const bool is_max = op == BinaryOp::maximum;
    autograd::record(op_name(op), {a, b}, {out}, [sa, sb, s_a, s_b, is_max](const Grads& g) {
      const Tensor av = s_a.get(), bv = s_b.get();
      const Tensor half = where(eq(av, bv), mul(g[0], 0.5), g[0]);
      const Tensor z = zeros(Shape{}, options_of(g[0]));
      std::vector<Tensor> r(2);
      if (g.needs_input_grad(0)) r[0] = sum_to(where(is_max ? lt(av, bv) : gt(av, bv), z, half), sa);
      if (g.needs_input_grad(1)) r[1] = sum_to(where(is_max ? gt(av, bv) : lt(av, bv), z, half), sb);
      return r;
    });
  }
  return out;
}
}  // namespace detail
inline Tensor maximum(const Tensor& a, const Tensor& b) { return detail::extreme2(BinaryOp::maximum, a, b); }
inline Tensor minimum(const Tensor& a, const Tensor& b) { return detail::extreme2(BinaryOp::minimum, a, b); }

namespace detail {
// Clamp bounds as OpParams, limited to what the dtype can hold (a bound outside it is no bound).
inline OpParams clamp_params(DType dt, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  double lo_v = -std::numeric_limits<double>::infinity(), hi_v = std::numeric_limits<double>::infinity();
  if (lo) lo_v = lo->to_double();
  if (hi) hi_v = hi->to_double();
  if (!is_floating(dt)) {
    const double tmin = dt == DType::i32 ? -2147483648.0 : dt == DType::u8 ? 0.0 : -9.2233720368547748e18;
    const double tmax = dt == DType::i32 ? 2147483647.0 : dt == DType::u8 ? 255.0 : 9.2233720368547748e18;
    lo_v = std::clamp(lo_v, tmin, tmax);
    hi_v = std::clamp(hi_v, tmin, tmax);
  }
  return {lo_v, hi_v};
}
}  // namespace detail

// Clamps into [min, max]; either bound may be absent. NaN stays NaN. Gradient passes where
// min <= x <= max.
inline Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max) {
  WANWU_CHECK_VALUE(min || max, "clamp: at least one of min and max must be given");
  const OpParams p = detail::clamp_params(x.dtype(), min, max);
  return detail::unary_op(
      UnaryOp::clamp, x,
      [p](const Tensor& g, detail::ST x, detail::ST) {
        return detail::binary_raw(BinaryOp::clamp_backward, g, x.get(), g.dtype(), p);
      },
      p);
}
inline Tensor clamp_min(const Tensor& x, Scalar min) { return clamp(x, min, std::nullopt); }
inline Tensor clamp_max(const Tensor& x, Scalar max) { return clamp(x, std::nullopt, max); }

// ---------------------------------------------------------------- in place

namespace detail {
// Runs an in-place binary op self = op(self, other): self keeps its dtype and shape.
inline void binary_inplace(BinaryOp op, Tensor& self, const Tensor& other, const OpParams& p, const char* name) {
  autograd::check_inplace(self, name);
  const DType rt = result_type({&self, &other});
  WANWU_CHECK_DTYPE(static_cast<int>(category(rt)) <= static_cast<int>(category(self.dtype())), name,
                    ": result type ", rt, " can't be cast to the desired output type ", self.dtype());
  const Shape shape = broadcast_shapes(self.shape(), other.shape(), name);
  WANWU_CHECK_SHAPE(shape == self.shape(), name, ": output with shape ", self.shape(),
                    " doesn't match the broadcast shape ", shape);
  // An operand that overlaps self without being self (x[1:] += x[:-1]) is read from a copy.
  const bool overlaps = other.defined() && other.storage() == self.storage() &&
                        !(other.storage_offset() == self.storage_offset() && other.strides() == self.strides());
  const Tensor src = overlaps ? copy_as(other, other.dtype()) : other;
  if (rt == self.dtype()) {
    binary_raw(op, self, src, rt, p, self);
  } else {  // compute in the wider type, store back in self's dtype
    const Tensor tmp = binary_raw(op, self, src, rt, p);
    backend_for(self.device()).copy(self, tmp);
  }
  self.bump_version();
}
}  // namespace detail

namespace detail {
// self = self + sign * alpha * other, the shared body of add_ and sub_.
inline Tensor& add_sub_inplace(Tensor& self, const Tensor& o, double alpha, double sign, const char* name) {
  const bool record = autograd::any_requires_grad({self, o});
  const double coef = sign * alpha;
  if (alpha == 1.0) binary_inplace(sign > 0 ? BinaryOp::add : BinaryOp::sub, self, o, {}, name);
  else binary_inplace(BinaryOp::add_scaled, self, o, {coef, 0.0}, name);
  if (record) {
    const Shape so = o.shape();
    autograd::record(name, {self, o}, {self}, [so, coef](const Grads& g) {
      std::vector<Tensor> r(2);
      if (g.needs_input_grad(0)) r[0] = g[0];
      if (g.needs_input_grad(1)) r[1] = wanwu::sum_to(coef == 1.0 ? g[0] : wanwu::mul(g[0], coef), so);
      return r;
    });
  }
  return self;
}
}  // namespace detail

inline Tensor& Tensor::add_(const Tensor& o, Scalar alpha) {
  return detail::add_sub_inplace(*this, o, alpha.to_double(), 1.0, "add_");
}
inline Tensor& Tensor::sub_(const Tensor& o, Scalar alpha) {
  WANWU_CHECK_DTYPE(dtype() != DType::boolean, "sub_: subtraction of bool tensors is not supported");
  return detail::add_sub_inplace(*this, o, alpha.to_double(), -1.0, "sub_");
}
inline Tensor& Tensor::add_(Scalar o) { return add_(detail::wrap_for(o, *this)); }
inline Tensor& Tensor::sub_(Scalar o) { return sub_(detail::wrap_for(o, *this)); }

inline Tensor& Tensor::mul_(const Tensor& o) {
  const bool record = autograd::any_requires_grad({*this, o});
  SavedTensor s_old = record && o.requires_grad() ? SavedTensor(clone().detach()) : SavedTensor();
  SavedTensor s_o = record && requires_grad() ? SavedTensor(o) : SavedTensor();
  detail::binary_inplace(BinaryOp::mul, *this, o, {}, "mul_");
  if (record) {
    const Shape so = o.shape();
    autograd::record("mul_", {*this, o}, {*this}, [so, s_old, s_o](const Grads& g) {
      std::vector<Tensor> r(2);
      if (g.needs_input_grad(0)) r[0] = wanwu::mul(g[0], s_o.get());
      if (g.needs_input_grad(1)) r[1] = wanwu::sum_to(wanwu::mul(g[0], s_old.get()), so);
      return r;
    });
  }
  return *this;
}
inline Tensor& Tensor::mul_(Scalar o) { return mul_(detail::wrap_for(o, *this)); }

inline Tensor& Tensor::div_(const Tensor& o) {
  WANWU_CHECK_DTYPE(is_floating_point(), "div_: in-place true division needs a floating tensor, got ", dtype());
  const bool record = autograd::any_requires_grad({*this, o});
  // d/do (self / o) needs the original self: keep a copy only when o wants a gradient.
  SavedTensor s_old = record && o.requires_grad() ? SavedTensor(clone().detach()) : SavedTensor();
  SavedTensor s_o = record ? SavedTensor(o) : SavedTensor();
  detail::binary_inplace(BinaryOp::div, *this, o, {}, "div_");
  if (record) {
    const Shape so = o.shape();
    autograd::record("div_", {*this, o}, {*this}, [so, s_o, s_old](const Grads& g) {
      std::vector<Tensor> r(2);
      const Tensor ov = s_o.get();
      if (g.needs_input_grad(0)) r[0] = wanwu::div(g[0], ov);
      if (g.needs_input_grad(1))
        r[1] = wanwu::sum_to(wanwu::div(wanwu::mul(g[0], s_old.get()), wanwu::mul(ov, ov)).neg(), so);
      return r;
    });
  }
  return *this;
}
inline Tensor& Tensor::div_(Scalar o) { return div_(detail::wrap_for(o, *this)); }

inline Tensor& Tensor::clamp_(std::optional<Scalar> min, std::optional<Scalar> max) {
  WANWU_CHECK_VALUE(min || max, "clamp_: at least one of min and max must be given");
  autograd::check_inplace(*this, "clamp_");
  const bool record = autograd::any_requires_grad({*this});
  SavedTensor s_old = record ? SavedTensor(clone().detach()) : SavedTensor();
  const OpParams p = detail::clamp_params(dtype(), min, max);
  detail::unary_raw(UnaryOp::clamp, *this, p, *this);
  bump_version();
  if (record) {
    autograd::record("clamp_", {*this}, {*this}, [p, s_old](const Grads& g) {
      return std::vector<Tensor>{detail::binary_raw(BinaryOp::clamp_backward, g[0], s_old.get(), g[0].dtype(), p)};
    });
  }
  return *this;
}

// ---------------------------------------------------------------- members and operators

inline Tensor Tensor::add(const Tensor& o, Scalar alpha) const { return wanwu::add(*this, o, alpha); }
inline Tensor Tensor::sub(const Tensor& o, Scalar alpha) const { return wanwu::sub(*this, o, alpha); }
inline Tensor Tensor::mul(const Tensor& o) const { return wanwu::mul(*this, o); }
inline Tensor Tensor::div(const Tensor& o) const { return wanwu::div(*this, o); }
inline Tensor Tensor::pow(const Tensor& e) const { return wanwu::pow(*this, e); }
inline Tensor Tensor::pow(Scalar e) const { return wanwu::pow(*this, e); }
inline Tensor Tensor::neg() const { return wanwu::neg(*this); }
inline Tensor Tensor::abs() const { return wanwu::abs(*this); }
inline Tensor Tensor::sign() const { return wanwu::sign(*this); }
inline Tensor Tensor::exp() const { return wanwu::exp(*this); }
inline Tensor Tensor::log() const { return wanwu::log(*this); }
inline Tensor Tensor::sqrt() const { return wanwu::sqrt(*this); }
inline Tensor Tensor::rsqrt() const { return wanwu::rsqrt(*this); }
inline Tensor Tensor::square() const { return wanwu::square(*this); }
inline Tensor Tensor::reciprocal() const { return wanwu::reciprocal(*this); }
inline Tensor Tensor::clamp(std::optional<Scalar> min, std::optional<Scalar> max) const {
  return wanwu::clamp(*this, min, max);
}

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, Scalar b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, Scalar b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, Scalar b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, Scalar b) { return div(a, b); }
inline Tensor operator+(Scalar a, const Tensor& b) { return add(detail::wrap_for(a, b), b); }
inline Tensor operator-(Scalar a, const Tensor& b) { return sub(detail::wrap_for(a, b), b); }
inline Tensor operator*(Scalar a, const Tensor& b) { return mul(detail::wrap_for(a, b), b); }
inline Tensor operator/(Scalar a, const Tensor& b) { return div(detail::wrap_for(a, b), b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor& operator+=(Tensor& a, const Tensor& b) { return a.add_(b); }
inline Tensor& operator-=(Tensor& a, const Tensor& b) { return a.sub_(b); }
inline Tensor& operator*=(Tensor& a, const Tensor& b) { return a.mul_(b); }
inline Tensor& operator/=(Tensor& a, const Tensor& b) { return a.div_(b); }
inline Tensor& operator+=(Tensor& a, Scalar b) { return a.add_(b); }
inline Tensor& operator-=(Tensor& a, Scalar b) { return a.sub_(b); }
inline Tensor& operator*=(Tensor& a, Scalar b) { return a.mul_(b); }
inline Tensor& operator/=(Tensor& a, Scalar b) { return a.div_(b); }

}  // namespace wanwu
