// Memory allocators. Every storage comes from an `Allocator`, one per device type, which keeps
// current and peak statistics (the benchmarks report peak memory from them). The CPU allocator
// caches freed blocks by size class: a training step frees and re-allocates the same sizes every
// step, and a fresh 64 MB block costs 16,384 page faults on first touch — more than the add that
// fills it. Blocks are 64-byte aligned (AVX-512 loads, cache lines); blocks of 4 MiB and more are
// 2 MiB aligned and advised as huge pages.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "error.hpp"

namespace wanwu {

struct MemoryStats {
  size_t allocated = 0;       // bytes held by live storages (after size-class rounding)
  size_t peak_allocated = 0;  // high-water mark of `allocated` since the last reset_peak()
  size_t reserved = 0;        // allocated + cached: what the allocator holds from the system
  size_t peak_reserved = 0;
  uint64_t allocations = 0;  // calls to allocate()
  uint64_t cache_hits = 0;   // of which served from the cache
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns at least nbytes (nullptr for 0); throws OutOfMemoryError.
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) noexcept = 0;
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void empty_cache() = 0;  // return cached blocks to the system
};

class CpuCachingAllocator final : public Allocator {
 public:
  static constexpr size_t kHugeThreshold = size_t(4) << 20;
  static constexpr size_t kHugeAlign = size_t(2) << 20;

  explicit CpuCachingAllocator(size_t cache_limit) : cache_limit_(cache_limit) {}
  ~CpuCachingAllocator() override { release_all(); }

  // Size classes: multiples of 64 up to 4 KiB, then four classes per power of two (<= 25%
  // waste), multiples of 2 MiB from 4 MiB on.
  static size_t round_size(size_t n) {
    if (n <= 4096) return (n + 63) & ~size_t(63);
    if (n >= kHugeThreshold) return (n + kHugeAlign - 1) & ~(kHugeAlign - 1);
    size_t p = 4096;
    while (p * 2 < n) p *= 2;  // p < n <= 2p
    const size_t q = p / 4;
    return (n + q - 1) / q * q;
  }

  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    const size_t sz = round_size(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.allocations;
      auto it = free_.find(sz);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= sz;
        ++stats_.cache_hits;
        note_alloc(sz, false);
        return p;
      }
    }
    void* p = system_alloc(sz);
    if (!p) {  // give the cache back and retry once before failing
      empty_cache();
      p = system_alloc(sz);
    }
    if (!p) throw OutOfMemoryError(detail::str("CPU allocator: out of memory allocating ", nbytes, " bytes"));
    std::lock_guard<std::mutex> lock(mu_);
    note_alloc(sz, true);
    return p;
  }

  void deallocate(void* p, size_t nbytes) noexcept override {
    if (!p) return;
    const size_t sz = round_size(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.allocated -= sz;
      if (cached_ + sz <= cache_limit_) {
        try {
          free_[sz].push_back(p);
          cached_ += sz;
          return;
        } catch (...) {  // no memory for the free list: hand the block back instead
        }
      }
      stats_.reserved -= sz;
    }
    std::free(p);
  }

  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated = stats_.allocated;
    stats_.peak_reserved = stats_.reserved;
  }
  void empty_cache() override { release_all(); }
  size_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }
  void set_cache_limit(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cache_limit_ = bytes;
    }
    if (cached_bytes() > bytes) release_all();
  }

 private:
  static void* system_alloc(size_t sz) {
    const size_t align = sz >= kHugeThreshold ? kHugeAlign : 64;
    void* p = std::aligned_alloc(align, sz);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p && sz >= kHugeThreshold) madvise(p, sz, MADV_HUGEPAGE);
#endif
    return p;
  }
  void note_alloc(size_t sz, bool fresh) {
    stats_.allocated += sz;
    if (fresh) stats_.reserved += sz;
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
    if (stats_.reserved > stats_.peak_reserved) stats_.peak_reserved = stats_.reserved;
  }
  void release_all() {
    std::unordered_map<size_t, std::vector<void*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks.swap(free_);
      stats_.reserved -= cached_;
      cached_ = 0;
    }
    for (auto& [sz, v] : blocks)
      for (void* p : v) std::free(p);
  }

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
  size_t cache_limit_;
  MemoryStats stats_;
};

// The process's CPU allocator. The cache holds at most a quarter of physical memory (8 GiB cap).
inline CpuCachingAllocator& cpu_allocator() {
  static CpuCachingAllocator alloc([] {
    size_t limit = size_t(2) << 30;
#if defined(__linux__)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) limit = static_cast<size_t>(pages) * static_cast<size_t>(page) / 4;
#endif
    return limit < (size_t(8) << 30) ? limit : (size_t(8) << 30);
  }());
  return alloc;
}

}  // namespace wanwu
