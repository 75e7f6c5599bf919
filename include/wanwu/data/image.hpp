// Image: the pixel buffer that flows through the data pipeline, from the decoder through the
// transforms to the collate step. Height x width x channels, channels last (DESIGN D4): u8 as
// decoded, f32 after ToTensor/Normalize.
//
// It is a plain owning buffer rather than a Tensor because the pipeline runs per sample on
// worker threads: no autograd metadata, no device, no shared ownership. Transforms take and
// return Images by value, so an in-place step (flip, colour jitter) reuses the buffer it was
// handed and a resize can recycle the capacity of the image it replaces. The buffer is left
// uninitialised on allocation because every producer overwrites all of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "../core/error.hpp"

namespace wanwu::data {

// An image larger than a limit allows: a header that declares more pixels than the decoder may
// allocate (over DecodeOptions::max_pixels, or beyond what stb_image can address), or a resize
// whose output would pass kMaxResizePixels (image_ops.hpp). A subclass of IOError so that
// existing handlers (the DataLoader's bad-sample policy) still catch it, and separate so that a
// caller can tell "too big" (an HTTP 413) from "not an image / corrupt" without parsing the message.
class ImageTooLargeError : public IOError {
 public:
  using IOError::IOError;
};

namespace detail {
using ::wanwu::detail::str;  // message building, shared with the core
}  // namespace detail

enum class PixelType : uint8_t { u8, f32 };

inline const char* pixel_type_name(PixelType t) { return t == PixelType::u8 ? "u8" : "f32"; }
inline size_t pixel_type_size(PixelType t) { return t == PixelType::u8 ? 1 : 4; }

class Image {
 public:
  Image() = default;
  Image(int64_t height, int64_t width, int64_t channels, PixelType type) { reset(height, width, channels, type); }

  Image(const Image& o) : h_(o.h_), w_(o.w_), c_(o.c_), type_(o.type_) {
    allocate(o.nbytes());
    if (o.nbytes()) std::memcpy(buf_.get(), o.buf_.get(), o.nbytes());
  }
  Image& operator=(const Image& o) {
    if (this != &o) {
      reset(o.h_, o.w_, o.c_, o.type_);
      if (o.nbytes()) std::memcpy(buf_.get(), o.buf_.get(), o.nbytes());
    }
    return *this;
  }
  Image(Image&& o) noexcept { swap(o); }
  Image& operator=(Image&& o) noexcept {
    swap(o);
    return *this;
  }

  // Gives the image a new shape; keeps the allocation when it is large enough. Contents are
  // unspecified afterwards.
  void reset(int64_t height, int64_t width, int64_t channels, PixelType type) {
    WANWU_CHECK_VALUE(height >= 0 && width >= 0 && channels >= 0, "Image: negative size ", height, "x", width,
                      "x", channels);
    h_ = height;
    w_ = width;
    c_ = channels;
    type_ = type;
    allocate(nbytes());
  }

  int64_t height() const { return h_; }
  int64_t width() const { return w_; }
  int64_t channels() const { return c_; }
  PixelType type() const { return type_; }
  int64_t numel() const { return h_ * w_ * c_; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * pixel_type_size(type_); }
  bool empty() const { return numel() == 0; }
  int64_t row_elems() const { return w_ * c_; }

  uint8_t* u8() {
    check_type(PixelType::u8);
    return reinterpret_cast<uint8_t*>(buf_.get());
  }
  const uint8_t* u8() const {
    check_type(PixelType::u8);
    return reinterpret_cast<const uint8_t*>(buf_.get());
  }
  float* f32() {
    check_type(PixelType::f32);
    return reinterpret_cast<float*>(buf_.get());
  }
  const float* f32() const {
    check_type(PixelType::f32);
    return reinterpret_cast<const float*>(buf_.get());
  }
  void* bytes() { return buf_.get(); }
  const void* bytes() const { return buf_.get(); }

  // "[224, 224, 3] u8", for error messages.
  std::string describe() const {
    return detail::str("[", h_, ", ", w_, ", ", c_, "] ", pixel_type_name(type_));
  }

  void swap(Image& o) noexcept {
    std::swap(h_, o.h_);
    std::swap(w_, o.w_);
    std::swap(c_, o.c_);
    std::swap(type_, o.type_);
    std::swap(buf_, o.buf_);
    std::swap(capacity_, o.capacity_);
  }

 private:
  void check_type(PixelType t) const {
    WANWU_CHECK_T(DTypeError, type_ == t, "Image: pixels are ", pixel_type_name(type_), ", not ",
                  pixel_type_name(t));
  }
  void allocate(size_t n) {
    if (n <= capacity_) return;
    // 64-byte aligned: whole cache lines, full-width vector loads.
    buf_.reset(static_cast<std::byte*>(::operator new[](n, std::align_val_t(64))));
    capacity_ = n;
  }
  struct AlignedDelete {
    void operator()(std::byte* p) const noexcept { ::operator delete[](p, std::align_val_t(64)); }
  };

  int64_t h_ = 0, w_ = 0, c_ = 0;
  PixelType type_ = PixelType::u8;
  std::unique_ptr<std::byte[], AlignedDelete> buf_;
  size_t capacity_ = 0;
};

}  // namespace wanwu::data
