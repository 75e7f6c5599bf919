// A number passed where a tensor could go (`x * 0.5`, `full({2}, 3)`). It remembers whether it
// was a bool, an integer or a floating value, because PyTorch's promotion treats `int_t + 2`
// and `int_t + 2.0` differently, and a Python-style scalar never widens a tensor's dtype within
// its category (`half_t * 0.5` stays f16).
#pragma once

#include <cstdint>
#include <ostream>
#include <type_traits>

#include "dtype.hpp"

namespace wanwu {

class Scalar {
 public:
  enum class Kind : uint8_t { boolean, integral, floating };

  Scalar() : kind_(Kind::integral), i_(0), d_(0) {}
  template <class T>
    requires std::is_arithmetic_v<T>
  Scalar(T v) {  // NOLINT: implicit on purpose, like PyTorch's Scalar
    if constexpr (std::is_same_v<T, bool>) {
      kind_ = Kind::boolean;
      i_ = v;
      d_ = v;
    } else if constexpr (std::is_integral_v<T>) {
      kind_ = Kind::integral;
      i_ = static_cast<int64_t>(v);
      d_ = static_cast<double>(v);
    } else {
      kind_ = Kind::floating;
      d_ = static_cast<double>(v);
      i_ = static_cast<int64_t>(v);
    }
  }
  Scalar(Half v) : Scalar(static_cast<float>(v)) {}      // NOLINT
  Scalar(BFloat16 v) : Scalar(static_cast<float>(v)) {}  // NOLINT

  Kind kind() const { return kind_; }
  bool is_floating() const { return kind_ == Kind::floating; }
  bool is_integral() const { return kind_ == Kind::integral; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  double to_double() const { return d_; }
  int64_t to_int() const { return kind_ == Kind::floating ? static_cast<int64_t>(d_) : i_; }

  // The dtype a wrapped number has in promotion: bool, i64 or the default float.
  DType dtype() const {
    return kind_ == Kind::floating ? default_float_dtype() : kind_ == Kind::integral ? DType::i64 : DType::boolean;
  }

  template <class T>
  T to() const {
    if constexpr (std::is_same_v<T, bool>) return kind_ == Kind::floating ? d_ != 0.0 : i_ != 0;
    else if constexpr (std::is_integral_v<T>) return static_cast<T>(to_int());
    else return static_cast<T>(static_cast<compute_t<T>>(d_));
  }

 private:
  Kind kind_;
  int64_t i_;
  double d_;
};

inline std::ostream& operator<<(std::ostream& os, const Scalar& s) {
  if (s.is_floating()) return os << s.to_double();
  if (s.is_bool()) return os << (s.to_int() ? "true" : "false");
  return os << s.to_int();
}

}  // namespace wanwu
