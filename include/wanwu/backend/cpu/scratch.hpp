// Scratch memory for CPU kernels (im2col tiles, per-thread partial sums, Winograd planes,
// attention score blocks), taken from the tensor allocator instead of a std::vector per call.
//
// The allocator's size-class cache hands a kernel the same blocks again on its next call, which a
// std::vector cannot: glibc maps a block of more than its mmap threshold afresh for every
// allocation and unmaps it on free, so a 10 MB buffer costs 2,500 page faults (and the kernel's
// page zeroing) each time it is created: 45,000 faults in every ResNet-50 training step at batch
// 16. Scratch is not zero-filled: kernels write every element before reading it, or say so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "../../core/allocator.hpp"

namespace wanwu::cpu {

// Buffers under kScratchCached bytes come from malloc instead: glibc serves those from its arenas,
// which reuse freed memory without new page faults, and keeping them out of the tensor allocator
// keeps its blocks (and `wanwu serve`'s no-allocation-under-load check) about tensors.
inline constexpr size_t kScratchCached = size_t(128) << 10;  // glibc's default mmap threshold

template <class T>
class Scratch {
 public:
  explicit Scratch(int64_t n) : n_(static_cast<size_t>(n > 0 ? n : 0)) {
    const size_t bytes = n_ * sizeof(T);
    if (bytes >= kScratchCached) {
      p_ = static_cast<T*>(cpu_allocator().allocate(bytes));
    } else if (bytes > 0) {
      p_ = static_cast<T*>(std::aligned_alloc(64, (bytes + 63) & ~size_t(63)));
      if (!p_) throw OutOfMemoryError(detail::str("CPU scratch: out of memory allocating ", bytes, " bytes"));
    }
  }
  ~Scratch() {
    const size_t bytes = n_ * sizeof(T);
    if (bytes >= kScratchCached) cpu_allocator().deallocate(p_, bytes);
    else std::free(p_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  T* data() const { return p_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) const { return p_[i]; }

 private:
  size_t n_;
  T* p_ = nullptr;
};

}  // namespace wanwu::cpu
