// Forward declarations of the free-function ops that other op families use in their backward
// formulas. Defaults are given at the definitions (a later declaration may add them).
#pragma once

#include <optional>
#include <vector>

#include "../core/tensor.hpp"

namespace wanwu {

inline Tensor sum_to(const Tensor& x, const Shape& shape);
inline Tensor sum(const Tensor& x, const Dims& dims, KeepDim keepdim);
inline Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
inline Tensor mul(const Tensor& a, const Tensor& b);
inline Tensor mul(const Tensor& a, Scalar b);
inline Tensor div(const Tensor& a, const Tensor& b);
inline Tensor eq(const Tensor& a, const Tensor& b);
inline Tensor zeros_like(const Tensor& t);

}  // namespace wanwu
