// CUDA graphs (DESIGN §5): a fixed-shape training step recorded once with stream capture and
// replayed as one launch, so that its hundreds of kernel launches cost the host one call and the
// GPU no gaps between them. The device-independent half (live values, generator offsets) is
// core/capture.hpp; the user's handle is backend/step_graph.hpp; the memory is graph_pool.cuh.
//
// The capture uses the thread-local mode: CUDA itself then refuses the calling thread's calls that
// cannot be recorded, behind wanwu's own checks (refuse_in_capture), which name the operation.
#pragma once

#include <memory>
#include <vector>

#include "allocator.cuh"

namespace wanwu::cuda {

// What a replay writes before it launches: the live values of core/capture.hpp, passed by value
// in the kernel's arguments (under the 4 KB they have long been limited to), so that the host may
// refill its copy for the next replay at once.
struct LiveValues {
  int n;
  double v[GraphCapture::kMaxLive];
};
__global__ void write_live_kernel(double* dst, const __grid_constant__ LiveValues values) {
  for (int i = threadIdx.x; i < values.n; i += blockDim.x) dst[i] = values.v[i];
}

class CudaGraph final : public DeviceGraph {
 public:
  using Held = std::vector<std::pair<GraphPool*, void*>>;
  CudaGraph(int device, cudaGraphExec_t exec, GraphPool* pool, Held held, double* live)
      : device_(device), exec_(exec), pool_(pool), held_(std::move(held)), live_(live) {}
  ~CudaGraph() override {
    if (cudaGraphExecDestroy(exec_) != cudaSuccess) (void)cudaGetLastError();  // device-independent call
    allocator(device_).release_graph(pool_, held_);
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void replay(const std::vector<double>& live) override {
    refuse_in_capture(device_, "StepGraph::replay");
    WANWU_CHECK_VALUE(live.size() <= GraphCapture::kMaxLive, "StepGraph::replay: ", live.size(),
                      " live values, at most ", GraphCapture::kMaxLive);
    DeviceGuard g(device_);
    const cudaStream_t s = stream(device_);
    if (!live.empty()) {
      LiveValues values{};
      values.n = static_cast<int>(live.size());
      std::copy(live.begin(), live.end(), values.v);
      write_live_kernel<<<1, kThreads, 0, s>>>(live_, values);
      WANWU_CUDA_LAUNCH_CHECK();
    }
    WANWU_CUDA_CHECK(cudaGraphLaunch(exec_, s));
  }

 private:
  int device_;
  cudaGraphExec_t exec_;
  GraphPool* pool_;
  Held held_;
  double* live_;
};

inline void begin_capture(int device) {
  WANWU_CHECK_T(DeviceError, !capturing(device), "StepGraph::capture: cuda:", device,
                " is already being recorded into a graph");
  DeviceGuard g(device);
  const cudaStream_t s = stream(device);
  allocator(device).begin_capture();
  const cudaError_t err = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) {
    auto [pool, held] = allocator(device).end_capture();
    allocator(device).release_graph(pool, held);
    WANWU_CUDA_CHECK(err);
  }
}

// Ends the recording; on failure (an unrecordable call invalidated it) throws with CUDA's reason.
inline std::unique_ptr<DeviceGraph> end_capture(int device, const Tensor& live) {
  DeviceGuard g(device);
  cudaGraph_t graph = nullptr;
  const cudaError_t err = cudaStreamEndCapture(stream(device), &graph);
  auto [pool, held] = allocator(device).end_capture();
  cudaGraphExec_t exec = nullptr;
  cudaError_t inst = err;
  if (err == cudaSuccess) {
    // A library may allocate with cudaMallocAsync on the captured stream (cuBLAS's workspace since
    // CUDA 12.2) and free it after the capture: auto-free lets the graph launch again (PyTorch's
    // CUDAGraph instantiates with the same flag).
    inst = cudaGraphInstantiate(&exec, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch);
    (void)cudaGraphDestroy(graph);  // the executable graph is independent of it
  }
  if (inst != cudaSuccess) {
    (void)cudaGetLastError();
    allocator(device).release_graph(pool, held);
    throw DeviceError(detail::str("StepGraph::capture: CUDA could not ", err != cudaSuccess ? "record" : "instantiate",
                                  " the step on cuda:", device, ": ", cudaGetErrorString(inst),
                                  " (a call in the step that cannot be recorded invalidates the capture)"));
  }
  return std::make_unique<CudaGraph>(device, exec, pool, std::move(held), static_cast<double*>(live.data_ptr()));
}

// After the step threw: the recording is dropped.
inline void abort_capture(int device) noexcept {
  const DeviceGuardNoThrow g(device);
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(context(device).stream, &graph) == cudaSuccess && graph) (void)cudaGraphDestroy(graph);
  (void)cudaGetLastError();
  auto [pool, held] = allocator(device).end_capture();
  if (pool) allocator(device).release_graph(pool, held);
}

}  // namespace wanwu::cuda
