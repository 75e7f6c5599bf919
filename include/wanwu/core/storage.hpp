// A block of device memory shared by a tensor and all its views. It carries the version counter
// that autograd uses to reject a backward pass through a tensor modified in place (DESIGN D7):
// views share the storage, so they share the counter, as in PyTorch. Storage either owns its
// memory (returned to its allocator) or wraps external memory with a deleter (an mmap'd weights
// file, a caller's buffer).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <utility>

#include "allocator.hpp"
#include "device.hpp"

namespace wanwu {

class Storage {
 public:
  Storage(size_t nbytes, Device device, Allocator* alloc)
      : data_(alloc->allocate(nbytes)), nbytes_(nbytes), device_(device), alloc_(alloc) {}
  // Wraps memory the caller owns; `deleter` (may be empty) runs when the last user lets go.
  Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter)
      : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}
  ~Storage() {
    if (alloc_) alloc_->deallocate(data_, nbytes_);
    else if (deleter_) deleter_(data_);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // The allocator the memory came from (nullptr for wrapped memory): tells pinned host memory apart.
  Allocator* allocator() const { return alloc_; }

  uint32_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Allocator* alloc_ = nullptr;
  std::function<void(void*)> deleter_;
  std::atomic<uint32_t> version_{0};
};

namespace detail {
// While this thread records a graph (core/capture.hpp): every storage the recorded work changes in
// place, so that each replay marks it changed again. A cache keyed by versions (the folded
// conv-bn weights of eval mode) must see a replayed optimizer step as the change it is.
inline std::vector<std::weak_ptr<Storage>>*& capture_write_log() {
  thread_local std::vector<std::weak_ptr<Storage>>* log = nullptr;
  return log;
}
}  // namespace detail

}  // namespace wanwu
