// Typed, strided element access for host code: `auto a = t.accessor<float, 2>(); a[i][j] = 1;`.
// Bounds are not checked per element (that is what makes loops over an accessor fast); the
// checks happen once, when the accessor is made (dtype, device, rank).
#pragma once

#include <cstdint>

namespace wanwu {

template <class T, int N>
class TensorAccessor {
 public:
  TensorAccessor(T* data, const int64_t* sizes, const int64_t* strides)
      : data_(data), sizes_(sizes), strides_(strides) {}
  TensorAccessor<T, N - 1> operator[](int64_t i) const {
    return TensorAccessor<T, N - 1>(data_ + i * strides_[0], sizes_ + 1, strides_ + 1);
  }
  int64_t size(int d) const { return sizes_[d]; }
  int64_t stride(int d) const { return strides_[d]; }
  T* data() const { return data_; }

 private:
  T* data_;
  const int64_t* sizes_;
  const int64_t* strides_;
};

template <class T>
class TensorAccessor<T, 1> {
 public:
  TensorAccessor(T* data, const int64_t* sizes, const int64_t* strides)
      : data_(data), sizes_(sizes), strides_(strides) {}
  T& operator[](int64_t i) const { return data_[i * strides_[0]]; }
  int64_t size(int d) const { return sizes_[d]; }
  int64_t stride(int d) const { return strides_[d]; }
  T* data() const { return data_; }

 private:
  T* data_;
  const int64_t* sizes_;
  const int64_t* strides_;
};

// Owns copies of the sizes and strides so it stays valid however the Tensor handle is used.
template <class T, int N>
class Accessor {
 public:
  Accessor(T* data, const int64_t* sizes, const int64_t* strides) : data_(data) {
    for (int i = 0; i < N; ++i) {
      sizes_[i] = sizes[i];
      strides_[i] = strides[i];
    }
  }
  Accessor(const Accessor& o) : Accessor(o.data_, o.sizes_, o.strides_) {}
  auto operator[](int64_t i) const { return TensorAccessor<T, N>(data_, sizes_, strides_)[i]; }
  int64_t size(int d) const { return sizes_[d]; }
  T* data() const { return data_; }

 private:
  T* data_;
  int64_t sizes_[N];
  int64_t strides_[N];
};

}  // namespace wanwu
