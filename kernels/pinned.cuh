// Pinned host memory and asynchronous uploads (the loader's batches on their way to the GPU).
//
// Pinned (page-locked) memory is what the copy engine reads by DMA: an upload from it neither
// stages through a driver buffer nor blocks the host. cudaHostAlloc is slow (it locks and maps
// every page), so freed blocks are cached by size class like the CPU allocator's, and a training
// loop that pins one batch shape per step allocates nothing after its first steps.
//
// An upload runs on the device's copy stream, after the compute stream's work so far (the
// destination was allocated stream-ordered there), and the compute stream waits for it through an
// event: kernels that read the batch start after the copy, while the copy itself overlaps the
// kernels still running from the previous step. The source storage is held until the copy's event
// has completed, so the host may drop the batch tensor at once; it must not write into it before
// then, which is why only to(device, NonBlocking::yes) takes this path (ops/copy.hpp).
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime.cuh"

namespace wanwu::cuda {

class PinnedHostAllocator final : public Allocator {
 public:
  // Same size classes as the CPU allocator: few distinct sizes, <= 25% waste.
  static size_t round_size(size_t n) { return CpuCachingAllocator::round_size(n); }

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
        ++stats_.cache_hits;
        note_alloc_locked(sz);
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t err = cudaHostAlloc(&p, sz, cudaHostAllocPortable);
    if (err == cudaErrorMemoryAllocation) {  // give the cache back and retry once
      (void)cudaGetLastError();
      empty_cache();
      err = cudaHostAlloc(&p, sz, cudaHostAllocPortable);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw OutOfMemoryError(detail::str("pinned host allocator: out of page-locked memory allocating ", nbytes,
                                         " bytes"));
    }
    WANWU_CUDA_CHECK(err);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.reserved += sz;
    if (stats_.reserved > stats_.peak_reserved) stats_.peak_reserved = stats_.reserved;
    note_alloc_locked(sz);
    return p;
  }

  void deallocate(void* p, size_t nbytes) noexcept override {
    if (!p) return;
    const size_t sz = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.allocated -= sz;
    try {
      free_[sz].push_back(p);
    } catch (...) {  // no memory for the free list: hand the block back instead
      stats_.reserved -= sz;
      (void)cudaFreeHost(p);
    }
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
  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [sz, blocks] : free_) {
      for (void* p : blocks) {
        (void)cudaFreeHost(p);
        stats_.reserved -= sz;
      }
      blocks.clear();
    }
  }

 private:
  void note_alloc_locked(size_t sz) {
    stats_.allocated += sz;
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
  }
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats stats_;
};

// Never freed: storages may outlive static destruction order (see runtime.cuh).
inline PinnedHostAllocator& pinned_allocator() {
  static PinnedHostAllocator* a = new PinnedHostAllocator();
  return *a;
}

// Uploads in flight per device: their completion events and the host storages they read.
class AsyncUploads {
 public:
  void upload(const Tensor& dst, const Tensor& host_src) {
    const int dev = dst.device().index;
    DeviceContext& ctx = context(dev);
    DeviceGuard g(dev);
    if (dst.nbytes() == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    reap_locked();
    cudaEvent_t allocated = event_locked(), copied = event_locked();
    WANWU_CUDA_CHECK(cudaEventRecord(allocated, ctx.stream));  // dst exists from here on
    WANWU_CUDA_CHECK(cudaStreamWaitEvent(ctx.copy_stream, allocated, 0));
    WANWU_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), host_src.data_ptr(), dst.nbytes(), cudaMemcpyHostToDevice,
                                     ctx.copy_stream));
    WANWU_CUDA_CHECK(cudaEventRecord(copied, ctx.copy_stream));
    WANWU_CUDA_CHECK(cudaStreamWaitEvent(ctx.stream, copied, 0));  // every later use of dst
    spare_.push_back(allocated);  // reusable once recorded again: only `copied` is polled
    pending_.push_back({copied, host_src.storage()});
  }
  // Releases the storages of finished uploads (called on every upload and synchronize).
  void reap() {
    std::lock_guard<std::mutex> lock(mu_);
    reap_locked();
  }
  size_t in_flight() {
    std::lock_guard<std::mutex> lock(mu_);
    reap_locked();
    return pending_.size();
  }

 private:
  struct Pending {
    cudaEvent_t done;
    std::shared_ptr<Storage> source;
  };
  cudaEvent_t event_locked() {
    if (!spare_.empty()) {
      cudaEvent_t e = spare_.back();
      spare_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    WANWU_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }
  void reap_locked() {
    while (!pending_.empty()) {
      const cudaError_t q = cudaEventQuery(pending_.front().done);
      if (q == cudaErrorNotReady) break;  // uploads finish in order on the copy stream
      (void)cudaGetLastError();
      spare_.push_back(pending_.front().done);
      pending_.pop_front();
    }
  }
  std::mutex mu_;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> spare_;
};

// One per device: events belong to the device they were created on.
inline AsyncUploads& async_uploads(int device) {
  static std::array<AsyncUploads*, kMaxDevices> u = [] {
    std::array<AsyncUploads*, kMaxDevices> a{};
    for (auto& p : a) p = new AsyncUploads();  // never freed: see runtime.cuh
    return a;
  }();
  return *u[static_cast<size_t>(device)];
}

}  // namespace wanwu::cuda
