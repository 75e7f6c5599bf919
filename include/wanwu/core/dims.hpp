// Shapes, strides and axis lists. `Dims` is a fixed-capacity vector of up to 8 int64 values, so
// tensor metadata never touches the heap; tensors have at most kMaxDims dimensions (vision and
// transformer code needs 5 at most). Helpers for numel, contiguous strides, negative-axis
// normalization and broadcasting live here because every op needs them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "error.hpp"

namespace wanwu {

inline constexpr int kMaxDims = 8;

class Dims {
 public:
  Dims() = default;
  Dims(std::initializer_list<int64_t> v) { assign(v.begin(), v.end()); }
  template <class It>
  Dims(It first, It last) {
    assign(first, last);
  }
  explicit Dims(const std::vector<int64_t>& v) { assign(v.begin(), v.end()); }
  // n copies of value
  static Dims filled(int n, int64_t value) {
    Dims d;
    for (int i = 0; i < n; ++i) d.push_back(value);
    return d;
  }

  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t& operator[](int i) { return d_[i]; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t* begin() { return d_; }
  int64_t* end() { return d_ + n_; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  const int64_t* data() const { return d_; }
  int64_t back() const { return d_[n_ - 1]; }
  int64_t front() const { return d_[0]; }

  void push_back(int64_t v) {
    WANWU_CHECK_SHAPE(n_ < kMaxDims, "tensors have at most ", kMaxDims, " dimensions");
    d_[n_++] = v;
  }
  void pop_back() { --n_; }
  void insert(int pos, int64_t v) {
    WANWU_CHECK_SHAPE(n_ < kMaxDims, "tensors have at most ", kMaxDims, " dimensions");
    for (int i = n_; i > pos; --i) d_[i] = d_[i - 1];
    d_[pos] = v;
    ++n_;
  }
  void erase(int pos) {
    for (int i = pos; i + 1 < n_; ++i) d_[i] = d_[i + 1];
    --n_;
  }
  void resize(int n, int64_t v = 0) {
    WANWU_CHECK_SHAPE(n >= 0 && n <= kMaxDims, "tensors have at most ", kMaxDims, " dimensions, got ", n);
    for (int i = n_; i < n; ++i) d_[i] = v;
    n_ = n;
  }
  bool operator==(const Dims& o) const { return n_ == o.n_ && std::equal(d_, d_ + n_, o.d_); }
  bool operator!=(const Dims& o) const { return !(*this == o); }

  std::vector<int64_t> vec() const { return {d_, d_ + n_}; }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < n_; ++i) s += (i ? ", " : "") + std::to_string(d_[i]);
    return s + "]";
  }

 private:
  template <class It>
  void assign(It first, It last) {
    n_ = 0;
    for (; first != last; ++first) push_back(static_cast<int64_t>(*first));
  }
  int64_t d_[kMaxDims] = {};
  int n_ = 0;
};

using Shape = Dims;
using Strides = Dims;

inline std::ostream& operator<<(std::ostream& os, const Dims& d) { return os << d.str(); }

inline int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}

inline Strides contiguous_strides(const Shape& s) {
  Strides st;
  st.resize(s.size());
  int64_t acc = 1;
  for (int i = s.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

// Maps a possibly negative axis into [0, ndim); `op` names the caller in the error.
inline int normalize_dim(int64_t dim, int ndim, const char* op) {
  const int n = std::max(ndim, 1);  // a 0-dim tensor accepts dim 0 and -1, as PyTorch
  WANWU_CHECK_INDEX(dim >= -n && dim < n, op, ": dimension ", dim, " out of range for a tensor with ", ndim,
                    " dimensions (expected in [", -n, ", ", n - 1, "])");
  return static_cast<int>(dim < 0 ? dim + n : dim);
}

// Normalizes an axis list; an empty list means "all axes". Rejects repeats.
inline Dims normalize_dims(const Dims& dims, int ndim, const char* op) {
  Dims out;
  if (dims.empty()) {
    for (int i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  if (ndim == 0) {  // a 0-dim tensor has nothing to reduce; dims 0 and -1 are accepted
    for (int64_t d : dims) normalize_dim(d, 0, op);
    return out;
  }
  bool seen[kMaxDims] = {};
  for (int64_t d : dims) {
    const int a = normalize_dim(d, ndim, op);
    WANWU_CHECK_INDEX(!seen[a], op, ": dimension ", a, " appears more than once in ", dims.str());
    seen[a] = true;
    out.push_back(a);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// NumPy/PyTorch broadcasting: align trailing dims; sizes must match or be 1.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int n = std::max(a.size(), b.size());
  Shape out;
  out.resize(n);
  for (int i = 0; i < n; ++i) {
    const int ia = a.size() - n + i, ib = b.size() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    WANWU_CHECK_SHAPE(da == db || da == 1 || db == 1, op, ": shapes ", a.str(), " and ", b.str(),
                      " cannot be broadcast (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace wanwu
