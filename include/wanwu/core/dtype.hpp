// Element types. The dtype is a runtime property of each tensor (DESIGN D2) because mixed
// precision changes it at run time; kernels are templates over the C++ scalar type and are
// reached through one `switch` at the backend boundary (`dispatch_dtype`). This header also holds
// PyTorch's type-promotion rules, so `int_tensor + 2.5` and `half_tensor * float_tensor` give the
// dtypes a PyTorch user expects.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>

#include "error.hpp"
#include "half.hpp"

namespace wanwu {

enum class DType : uint8_t { f32, f64, f16, bf16, i32, i64, u8, boolean };
inline constexpr int kNumDTypes = 8;

inline constexpr const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::boolean: return "bool";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, DType d) { return os << dtype_name(d); }

inline DType parse_dtype(std::string_view s) {
  for (int i = 0; i < kNumDTypes; ++i)
    if (s == dtype_name(static_cast<DType>(i))) return static_cast<DType>(i);
  if (s == "float32" || s == "float") return DType::f32;
  if (s == "float64" || s == "double") return DType::f64;
  if (s == "float16" || s == "half" || s == "fp16") return DType::f16;
  if (s == "bfloat16") return DType::bf16;
  if (s == "int32") return DType::i32;
  if (s == "int64" || s == "long") return DType::i64;
  if (s == "uint8") return DType::u8;
  throw DTypeError(detail::str("unknown dtype '", s, "' (expected f32, f64, f16, bf16, i32, i64, u8 or bool)"));
}

inline constexpr size_t itemsize(DType d) {
  switch (d) {
    case DType::f64:
    case DType::i64: return 8;
    case DType::f32:
    case DType::i32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
    case DType::u8:
    case DType::boolean: return 1;
  }
  return 0;
}
inline constexpr bool is_floating(DType d) {
  return d == DType::f32 || d == DType::f64 || d == DType::f16 || d == DType::bf16;
}
inline constexpr bool is_integral(DType d) { return d == DType::i32 || d == DType::i64 || d == DType::u8; }

// C++ type <-> DType.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::boolean; };
template <class T> inline constexpr DType dtype_of_v = dtype_of<T>::value;

// The type arithmetic on T is carried out in: f32 for the 16-bit floats (DESIGN D3).
template <class T> struct compute_type { using type = T; };
template <> struct compute_type<Half> { using type = float; };
template <> struct compute_type<BFloat16> { using type = float; };
template <class T> using compute_t = typename compute_type<T>::type;

// The type sums and means accumulate in: f32 for floats below f64, i64 for integers.
template <class T> struct acc_type { using type = float; };
template <> struct acc_type<double> { using type = double; };
template <> struct acc_type<int32_t> { using type = int64_t; };
template <> struct acc_type<int64_t> { using type = int64_t; };
template <> struct acc_type<uint8_t> { using type = int64_t; };
template <> struct acc_type<bool> { using type = int64_t; };
template <class T> using acc_t = typename acc_type<T>::type;

template <class T> struct TypeTag { using type = T; };

// Calls f(TypeTag<T>{}) with the C++ type of `d`. The one place a dtype becomes a type.
template <class F>
decltype(auto) dispatch_dtype(DType d, F&& f) {
  switch (d) {
    case DType::f32: return f(TypeTag<float>{});
    case DType::f64: return f(TypeTag<double>{});
    case DType::f16: return f(TypeTag<Half>{});
    case DType::bf16: return f(TypeTag<BFloat16>{});
    case DType::i32: return f(TypeTag<int32_t>{});
    case DType::i64: return f(TypeTag<int64_t>{});
    case DType::u8: return f(TypeTag<uint8_t>{});
    case DType::boolean: return f(TypeTag<bool>{});
  }
  throw DTypeError("dispatch_dtype: invalid dtype value");
}

// As dispatch_dtype, restricted to floating types; `op` names the caller in the error.
template <class F>
decltype(auto) dispatch_floating(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::f32: return f(TypeTag<float>{});
    case DType::f64: return f(TypeTag<double>{});
    case DType::f16: return f(TypeTag<Half>{});
    case DType::bf16: return f(TypeTag<BFloat16>{});
    default: break;
  }
  throw DTypeError(detail::str(op, ": dtype ", d, " is not supported (floating types only)"));
}

// ---- type promotion (PyTorch's rules) ----

// promote_types: the smallest dtype both a and b convert to without losing their category.
inline constexpr DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (a == DType::boolean) return b;
  if (b == DType::boolean) return a;
  const bool fa = is_floating(a), fb = is_floating(b);
  if (fa && fb) {
    if (a == DType::f64 || b == DType::f64) return DType::f64;
    return DType::f32;  // f16+bf16, f16+f32, bf16+f32
  }
  if (fa) return a;  // integer + float -> the float
  if (fb) return b;
  // both integral: u8 < i32 < i64 (u8 + i32 -> i32)
  if (a == DType::i64 || b == DType::i64) return DType::i64;
  return DType::i32;
}

enum class DTypeCategory : uint8_t { boolean = 0, integral = 1, floating = 2 };
inline constexpr DTypeCategory category(DType d) {
  return is_floating(d) ? DTypeCategory::floating : d == DType::boolean ? DTypeCategory::boolean : DTypeCategory::integral;
}

inline constexpr DType default_float_dtype() { return DType::f32; }

// Accumulates operands for result_type: dimensioned tensors outrank 0-dim tensors, which outrank
// wrapped scalars; a lower rank only matters if its category (bool < int < float) is higher.
struct ResultTypeState {
  DType dim_result = DType::boolean, zero_dim_result = DType::boolean, scalar_result = DType::boolean;
  bool has_dim = false, has_zero_dim = false, has_scalar = false;

  void add_tensor(DType d, bool zero_dim) {
    if (zero_dim) {
      zero_dim_result = has_zero_dim ? promote_types(zero_dim_result, d) : d;
      has_zero_dim = true;
    } else {
      dim_result = has_dim ? promote_types(dim_result, d) : d;
      has_dim = true;
    }
  }
  // A scalar's dtype is bool, i64 or the default float (f32).
  void add_scalar(DType d) {
    scalar_result = has_scalar ? promote_types(scalar_result, d) : d;
    has_scalar = true;
  }
  DType result() const {
    DType r = DType::boolean;
    bool have = false;
    auto combine = [&](bool present, DType d) {
      if (!present) return;
      if (!have) {
        r = d;
        have = true;
      } else if (static_cast<int>(category(d)) > static_cast<int>(category(r))) {
        // lower-priority operand of a higher category: its dtype (for scalars: the default)
        r = promote_types(r, d);
      }
    };
    combine(has_dim, dim_result);
    combine(has_zero_dim, zero_dim_result);
    combine(has_scalar, scalar_result);
    return r;
  }
};

}  // namespace wanwu

namespace wanwu {

// Value conversion between element types, through the source's compute type; 16-bit floats
// round to nearest even; anything -> bool is "!= 0". Shared by both backends.
template <class To, class From>
WANWU_HD inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<To, bool>) {
    return static_cast<compute_t<From>>(v) != compute_t<From>(0);
  } else if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(static_cast<compute_t<From>>(v)));
  } else {
    return static_cast<To>(static_cast<compute_t<From>>(v));
  }
}

}  // namespace wanwu
