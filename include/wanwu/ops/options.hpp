// Small option types shared by the vision and transformer ops: train/eval mode, loss reduction,
// (height, width) pairs and padding specs. They are enum classes and value types rather than bool
// flags and bare ints, so a call site reads `max_pool2d(x, 3, 2, 1, CeilMode::yes)` and cannot
// swap two arguments silently.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "../core/error.hpp"

namespace wanwu {

enum class Mode : uint8_t { train, eval };
enum class Reduction : uint8_t { none, mean, sum };
enum class CeilMode : uint8_t { no, yes };
enum class CountIncludePad : uint8_t { no, yes };
enum class Causal : uint8_t { no, yes };

// A (height, width) pair; one integer means both.
struct Pair2 {
  int64_t h = 0, w = 0;
  Pair2(int64_t v) : h(v), w(v) {}  // NOLINT: implicit, like PyTorch's int-or-tuple
  Pair2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  Pair2(std::initializer_list<int64_t> v) {  // NOLINT
    WANWU_CHECK_VALUE(v.size() == 1 || v.size() == 2, "expected 1 or 2 values for a (height, width) pair, got ",
                      v.size());
    h = *v.begin();
    w = v.size() == 2 ? *(v.begin() + 1) : h;
  }
};

// Convolution padding: explicit (height, width), PyTorch's "same" / "valid", or explicit per
// side (top, bottom, left, right) — TensorFlow's SAME padding, which ported weights need, is
// asymmetric for stride 2.
struct Padding2d {
  enum class Kind : uint8_t { explicit_pad, same, valid, per_side };
  Kind kind = Kind::explicit_pad;
  Pair2 pad = 0;
  int64_t top = 0, bottom = 0, left = 0, right = 0;  // Kind::per_side
  static Padding2d sides(int64_t top, int64_t bottom, int64_t left, int64_t right) {
    Padding2d p(0);
    p.kind = Kind::per_side;
    p.top = top;
    p.bottom = bottom;
    p.left = left;
    p.right = right;
    return p;
  }
  Padding2d(int64_t p) : pad(p) {}  // NOLINT
  Padding2d(Pair2 p) : pad(p) {}    // NOLINT
  Padding2d(int64_t h, int64_t w) : pad(h, w) {}
  static Padding2d same() {
    Padding2d p(0);
    p.kind = Kind::same;
    return p;
  }
  static Padding2d valid() {
    Padding2d p(0);
    p.kind = Kind::valid;
    return p;
  }
};

}  // namespace wanwu
