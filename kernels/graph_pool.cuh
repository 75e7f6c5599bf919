// The memory side of CUDA graph capture (graph.cuh records and replays): which thread is
// recording on a device, and the pool that serves its allocations.
//
// A graph replays the addresses its capture was handed, so those blocks belong to the graph for
// its whole life: the capture's allocations come from a pool of its own (PyTorch's private graph
// pools), never from the stream-ordered pool the rest of the program shares. Within the capture,
// a freed block is reused by a later allocation of the same capture, which is safe because the
// graph runs its work in the capture's order. A block the program allocated before the capture
// and freed during it may still be read by the recorded work, so it is held until the graph is
// destroyed. The pool gives its blocks back once the graph is gone and no tensor holds them.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime.cuh"

namespace wanwu::cuda {

class GraphPool {
 public:
  explicit GraphPool(int device) : device_(device) {}
  GraphPool(const GraphPool&) = delete;
  GraphPool& operator=(const GraphPool&) = delete;

  static size_t round_size(size_t n) { return (n + 511) & ~size_t(511); }

  // Called by the capturing thread while its stream is being recorded: cudaMalloc is not a stream
  // operation, but it is one CUDA prohibits during a capture unless the thread relaxes the mode.
  void* allocate(size_t nbytes) {
    const size_t n = round_size(nbytes);
    auto it = free_.find(n);
    if (it != free_.end()) {
      void* p = it->second;
      free_.erase(it);
      ++live_;
      return p;
    }
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    WANWU_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, n);
    WANWU_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw OutOfMemoryError(detail::str("CUDA graph capture: out of memory allocating ", nbytes, " bytes on cuda:",
                                         device_, " for the graph's pool (", reserved_, " bytes in it)"));
    }
    WANWU_CUDA_CHECK(err);
    blocks_.emplace(p, n);
    reserved_ += n;
    ++live_;
    return p;
  }
  bool owns(void* p) const { return blocks_.count(p) > 0; }
  size_t reserved() const { return reserved_; }
  // A block a tensor let go of: free for the capture's later allocations, or, once the graph is
  // gone, for the driver. Returns whether the pool is now empty and released (the caller drops it).
  bool deallocate(void* p) noexcept {
    --live_;
    if (released_) {
      give_back(p);
      return live_ == 0;
    }
    free_.emplace(blocks_.at(p), p);
    return false;
  }
  // The graph was destroyed: free blocks go back now, live ones when their tensors let go.
  // Returns whether nothing is left.
  bool release() noexcept {
    released_ = true;
    for (auto& [n, p] : free_) give_back(p);
    free_.clear();
    return live_ == 0;
  }

 private:
  // cudaFree waits for the device, so no replay still reads the block.
  void give_back(void* p) noexcept {
    reserved_ -= blocks_.at(p);
    blocks_.erase(p);
    const DeviceGuardNoThrow g(device_);
    if (!g.ok()) return;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;  // another graph may be recording
    (void)cudaThreadExchangeStreamCaptureMode(&mode);
    if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
    (void)cudaThreadExchangeStreamCaptureMode(&mode);
  }

  int device_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> blocks_;
  size_t reserved_ = 0;
  int64_t live_ = 0;
  bool released_ = false;
};

// Who records on a device now. Guarded by the allocator's mutex (allocator.cuh), except `active`,
// which the host-read checks poll.
struct CaptureState {
  std::atomic<bool> active{false};
  std::thread::id thread;
  GraphPool* pool = nullptr;
  // Blocks from outside this capture freed during it, with their pool (null: the shared one):
  // held for the graph, which may read them (see the top).
  std::vector<std::pair<GraphPool*, void*>> held;
};

inline CaptureState& capture_state(int device) {
  static std::array<CaptureState, kMaxDevices> states;
  return states[device];
}

inline bool capturing(int device) { return capture_state(device).active.load(std::memory_order_acquire); }

// Operations that wait for the device or read from it cannot be recorded: in a graph they would
// wait for nothing and read what the device held at capture time. Throws naming the operation.
inline void refuse_in_capture(int device, const char* what) {
  if (!capturing(device)) return;
  throw DeviceError(detail::str(what, " on cuda:", device, " during a graph capture: the capture records the "
                                "device's work without running it, so a read from the device or a wait for it has "
                                "nothing to wait for. Keep host reads (item(), a printed loss, fp16 loss scaling's "
                                "inf check) and uploads out of the captured step (StepGraph::capture)"));
}

}  // namespace wanwu::cuda
