// The CUDA caching allocator: stream-ordered allocation (cudaMallocAsync) from the device's
// default memory pool with the release threshold raised to "never", so freed blocks stay in the
// pool and the next step's allocations of the same sizes are served without a driver call or a
// device sync — the caching PyTorch's allocator does by hand. Allocation and free are ordered on
// the device's compute stream (runtime.cuh), where every kernel runs, so a block freed by the host
// is reused only after the kernels that read it.
//
// While a thread records a CUDA graph on the device, its allocations come from that graph's own
// pool instead (graph_pool.cuh), and frees of the shared pool's blocks are held for the graph.
//
// Statistics follow wanwu's Allocator interface: `allocated` counts live storages (sizes rounded
// to the pool's 512-byte granularity), `reserved` is what the pools hold from the driver.
#pragma once

#include <algorithm>
#include <atomic>
#include <mutex>

#include "graph_pool.cuh"

namespace wanwu::cuda {

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device) : device_(device) {}

  static size_t round_size(size_t n) { return (n + 511) & ~size_t(511); }

  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    DeviceContext& ctx = context(device_);
    init_pool();
    if (capturing(device_)) {
      std::lock_guard<std::mutex> lock(mu_);
      CaptureState& cs = capture_state(device_);
      if (cs.pool) {
        // Work another thread would enqueue now would land in the graph, not run.
        WANWU_CHECK_T(DeviceError, cs.thread == std::this_thread::get_id(), "CUDA allocator: a thread allocated ",
                      nbytes, " bytes on cuda:", device_, " while another thread records a graph there");
        void* p = cs.pool->allocate(nbytes);
        count_allocation_locked(nbytes);
        return p;
      }
    }
    DeviceGuard g(device_);
    void* p = nullptr;
    cudaError_t err = cudaMallocAsync(&p, nbytes, ctx.stream);
    if (err == cudaErrorMemoryAllocation) {  // give cached blocks back and retry once
      (void)cudaGetLastError();
      empty_cache();
      err = cudaMallocAsync(&p, nbytes, ctx.stream);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw OutOfMemoryError(detail::str("CUDA allocator: out of memory allocating ", nbytes, " bytes on cuda:",
                                         device_, " (", stats().allocated, " bytes in use)"));
    }
    WANWU_CUDA_CHECK(err);
    std::lock_guard<std::mutex> lock(mu_);
    count_allocation_locked(nbytes);
    return p;
  }

  void deallocate(void* p, size_t nbytes) noexcept override {
    if (!p) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.allocated -= round_size(nbytes);
      GraphPool* pool = nullptr;
      for (GraphPool* g : pools_)
        if (g->owns(p)) pool = g;
      CaptureState& cs = capture_state(device_);
      if (cs.active.load(std::memory_order_relaxed) && (pool == nullptr || pool != cs.pool)) {
        try {
          cs.held.emplace_back(pool, p);
        } catch (...) {  // no memory to note it: leak the block rather than free what the graph may read
        }
        return;
      }
      if (pool) {
        pool_deallocate_locked(pool, p);
        return;
      }
    }
    // noexcept: during process exit the runtime may already be torn down; the memory goes with it.
    const DeviceGuardNoThrow g(device_);
    if (!g.ok()) return;
    if (cudaFreeAsync(p, context_stream()) != cudaSuccess) (void)cudaGetLastError();
  }

  // Graph capture (graph.cuh): the calling thread's allocations on this device come from a new
  // pool of the graph's until end_capture, which returns it with the blocks held for the graph.
  void begin_capture() {
    init_pool();
    std::lock_guard<std::mutex> lock(mu_);
    CaptureState& cs = capture_state(device_);
    pools_.push_back(new GraphPool(device_));
    cs.pool = pools_.back();
    cs.thread = std::this_thread::get_id();
    cs.held.clear();
    cs.active.store(true, std::memory_order_release);
  }
  std::pair<GraphPool*, std::vector<std::pair<GraphPool*, void*>>> end_capture() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    CaptureState& cs = capture_state(device_);
    cs.active.store(false, std::memory_order_release);
    GraphPool* pool = cs.pool;
    cs.pool = nullptr;
    return {pool, std::move(cs.held)};
  }
  // The graph is gone (or its capture failed): its pool's free blocks go back, and the blocks held
  // for it return to the shared pool, ordered after any replay still queued.
  void release_graph(GraphPool* pool, const std::vector<std::pair<GraphPool*, void*>>& held) noexcept {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [owner, p] : held)
        if (owner) pool_deallocate_locked(owner, p);
      auto it = std::find(pools_.begin(), pools_.end(), pool);
      if (it != pools_.end() && pool->release()) {
        delete pool;
        pools_.erase(it);
      }
      update_reserved_locked();
    }
    const DeviceGuardNoThrow g(device_);
    if (!g.ok()) return;
    for (const auto& [owner, p] : held)
      if (!owner && cudaFreeAsync(p, context_stream()) != cudaSuccess) (void)cudaGetLastError();
  }

  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    MemoryStats s = stats_;
    return s;
  }
  void reset_peak() override {
    init_pool();  // pool_ is read only after its call_once: another thread may be creating it
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated = stats_.allocated;
    update_reserved_locked();
    stats_.peak_reserved = stats_.reserved;
  }
  // Returns unused pool memory to the driver (after the stream's pending frees have run).
  void empty_cache() override {
    refuse_in_capture(device_, "CUDA allocator: empty_cache");
    init_pool();
    DeviceGuard g(device_);
    WANWU_CUDA_CHECK(cudaStreamSynchronize(context(device_).stream));
    WANWU_CUDA_CHECK(cudaMemPoolTrimTo(pool_, 0));
    std::lock_guard<std::mutex> lock(mu_);
    update_reserved_locked();
  }

 private:
  cudaStream_t context_stream() const { return context(device_).stream; }

  void init_pool() {
    std::call_once(pool_once_, [this] {
      DeviceGuard g(device_);
      WANWU_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device_));
      uint64_t threshold = UINT64_MAX;  // keep freed memory cached in the pool
      WANWU_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold));
    });
  }
  void pool_deallocate_locked(GraphPool* pool, void* p) noexcept {
    if (pool->deallocate(p)) {
      pools_.erase(std::find(pools_.begin(), pools_.end(), pool));
      delete pool;
    }
    update_reserved_locked();
  }
  void count_allocation_locked(size_t nbytes) {
    ++stats_.allocations;
    stats_.allocated += round_size(nbytes);
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
    update_reserved_locked();
  }
  void update_reserved_locked() {
    uint64_t reserved = 0;
    if (pool_ && cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess) {
      stats_.reserved = static_cast<size_t>(reserved);
      for (const GraphPool* g : pools_) stats_.reserved += g->reserved();
      if (stats_.reserved > stats_.peak_reserved) stats_.peak_reserved = stats_.reserved;
    }
  }

  int device_;
  std::once_flag pool_once_;
  cudaMemPool_t pool_ = nullptr;
  mutable std::mutex mu_;
  MemoryStats stats_;
  std::vector<GraphPool*> pools_;  // one per live graph (or capture), until its blocks are all back
};

inline CudaAllocator& allocator(int device) {
  static std::array<CudaAllocator*, kMaxDevices> allocs = [] {
    std::array<CudaAllocator*, kMaxDevices> a{};
    for (int i = 0; i < kMaxDevices; ++i) a[i] = new CudaAllocator(i);  // never freed: see runtime.cuh
    return a;
  }();
  WANWU_CHECK_T(DeviceError, device >= 0 && device < device_count(), "cuda:", device, " is not available");
  return *allocs[device];
}

// A new contiguous tensor on a CUDA device (the backend cannot call empty_tensor: that goes
// through the backend registry, and this header must not depend on the CPU backend being built).
inline Tensor empty(const Shape& shape, DType dtype, int device) {
  int64_t n = numel_of(shape);
  auto storage = std::make_shared<Storage>(static_cast<size_t>(n) * itemsize(dtype), Device::cuda(device),
                                           &allocator(device));
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), 0, shape, contiguous_strides(shape), dtype));
}

}  // namespace wanwu::cuda
