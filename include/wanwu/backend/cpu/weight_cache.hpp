// Convolution weights in the form a CPU kernel consumes them (packed for gemm_narrow.hpp's kernel,
// or Winograd-transformed and packed), kept across calls for weights that nothing differentiates.
//
// Why: at inference the same (batch-norm-folded) weights run every call, and preparing them costs
// as much as a small batch's GEMMs: at batch 1, packing ResNet-50's 1x1 weights and transforming
// its 3x3 ones took about a tenth of the forward pass (F(2x2, 3x3) on a 14x14 map with 256
// channels writes 4 MB of transformed weights for 0.1 GFLOP of GEMMs).
//
// A prepared form is keyed by the weight's storage, offset and version (the counter that every
// in-place op and optimizer step bumps, which the batch-norm fold of nn/layers.hpp relies on as
// well) and by which form it is. Only calls made with autograd off (inference, validation) keep
// forms: a training step's weights change every step, and keeping theirs would only hold a
// second copy of each. Forms of weights whose storage died go at the next insertion, and the
// least recently used past a budget. A kernel holds its form by shared_ptr while it runs, so
// another thread dropping it meanwhile frees nothing under it.
//
// Buffers come from the system, not the tensor allocator: forms live across calls, and cut from
// the segments that a forward pass's activations come and go in they split them, so that the
// second call of a ResNet-50 forward at batch 16 found no room and took 128 MiB of fresh segments
// (page faults that made it 1.45x slower than the calls after it).
#pragma once

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

#include "../../autograd/grad_mode.hpp"
#include "../../core/allocator.hpp"
#include "../../core/tensor.hpp"
#include "scratch.hpp"

namespace wanwu::cpu {

// A 64-byte aligned float buffer from the system, returned when the last holder lets go.
class PreparedBuffer {
 public:
  explicit PreparedBuffer(int64_t n) : bytes_((static_cast<size_t>(n) * sizeof(float) + 63) & ~size_t(63)) {
    p_ = static_cast<float*>(std::aligned_alloc(64, bytes_ ? bytes_ : 64));
    if (!p_) throw OutOfMemoryError(detail::str("CPU prepared weights: out of memory allocating ", bytes_, " bytes"));
  }
  ~PreparedBuffer() { std::free(p_); }
  PreparedBuffer(const PreparedBuffer&) = delete;
  PreparedBuffer& operator=(const PreparedBuffer&) = delete;
  float* data() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_;
  float* p_;
};

// What a prepared form is: the kernel's form tag and the numbers that shape it.
using PreparedForm = std::array<int64_t, 5>;
enum class PreparedKind : int64_t { narrow_packed = 1, winograd_packed = 2 };

class PreparedWeights {
 public:
  explicit PreparedWeights(size_t budget) : budget_(budget) {}

  // Whether w's prepared forms may be kept: an f32 weight, in a call made with autograd off.
  static bool cacheable(const Tensor& w) {
    return w.defined() && w.dtype() == DType::f32 && !GradMode::is_enabled();
  }

  // The form `form` of w (`elems` floats), built by fill(float* dst) when absent or stale.
  template <class Fill>
  std::shared_ptr<const PreparedBuffer> get(const Tensor& w, const PreparedForm& form, int64_t elems, Fill&& fill) {
    const Storage* s = w.storage().get();
    const int64_t offset = w.storage_offset();
    const uint32_t version = w.version();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < entries_.size(); ++i) {
        Entry& e = entries_[i];
        if (e.raw != s || e.offset != offset || e.form != form) continue;
        const std::shared_ptr<Storage> alive = e.storage.lock();
        if (alive.get() == s && e.version == version) {
          e.used = ++tick_;
          ++hits_;
          return e.data;
        }
        drop(i);  // stale: the weight changed, or its storage died and another took its address
        break;
      }
    }
    auto data = std::make_shared<PreparedBuffer>(elems);
    fill(data->data());
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = entries_.size(); i-- > 0;)
      if (entries_[i].storage.expired()) drop(i);
    entries_.push_back(Entry{w.storage(), s, offset, version, form, data, ++tick_});
    bytes_ += data->bytes();
    while (bytes_ > budget_ && entries_.size() > 1) {  // the least recently used, never the new one
      size_t lru = 0;
      for (size_t i = 1; i + 1 < entries_.size(); ++i)
        if (entries_[i].used < entries_[lru].used) lru = i;
      drop(lru);
    }
    return data;
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.clear();
    bytes_ = 0;
  }
  size_t bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }
  size_t entries() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }
  uint64_t hits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return hits_;
  }

 private:
  struct Entry {
    std::weak_ptr<Storage> storage;
    const Storage* raw;
    int64_t offset;
    uint32_t version;
    PreparedForm form;
    std::shared_ptr<const PreparedBuffer> data;
    uint64_t used;
  };
  void drop(size_t i) {  // under mu_
    bytes_ -= entries_[i].data->bytes();
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  mutable std::mutex mu_;
  std::vector<Entry> entries_;
  size_t budget_;
  size_t bytes_ = 0;
  uint64_t tick_ = 0, hits_ = 0;
};

// The process's cache of prepared convolution weights: 512 MiB holds every form ResNet-50 takes
// at any batch size (about 200 MB with both Winograd tiles).
inline PreparedWeights& prepared_weights() {
  static PreparedWeights cache(size_t(512) << 20);
  return cache;
}

// A weight's prepared form for one call: kept in prepared_weights() when `wkey` (the weight
// tensor) may be cached and T is f32, else built into scratch for this call alone.
template <class T>
class PreparedOrScratch {
 public:
  template <class Fill>
  PreparedOrScratch(const Tensor* wkey, const PreparedForm& form, int64_t elems, Fill&& fill) {
    if constexpr (std::is_same_v<T, float>) {
      if (wkey && PreparedWeights::cacheable(*wkey)) {
        kept_ = prepared_weights().get(*wkey, form, elems, fill);
        data_ = kept_->data();
        return;
      }
    }
    scratch_.emplace(elems);
    fill(scratch_->data());
    data_ = scratch_->data();
  }
  const T* data() const { return data_; }

 private:
  std::shared_ptr<const PreparedBuffer> kept_;
  std::optional<Scratch<T>> scratch_;
  const T* data_ = nullptr;
};

}  // namespace wanwu::cpu
