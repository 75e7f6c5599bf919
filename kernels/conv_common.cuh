// What the two cuDNN paths of the CUDA convolution share (conv.cuh: the legacy API, with the
// direct kernels; conv_graph.cuh: graph-API plans for f16/bf16): a convolution's geometry, the
// pass, cuDNN's name for a dtype, the workspace, which comes from the stream-ordered allocator,
// and the timing of candidate algorithms for benchmark mode.
#pragma once

#include <cstdint>

#include "allocator.cuh"

namespace wanwu::cuda {

struct ConvGeom {
  int64_t N, H, W, C, O, KH, KW, Ho, Wo, G, Cg, Og;
  Conv2dParams p;
  ConvGeom(const Shape& x, const Shape& w, const Shape& out, const Conv2dParams& prm)
      : N(x[0]), H(x[1]), W(x[2]), C(x[3]), O(w[0]), KH(w[1]), KW(w[2]), Ho(out[1]), Wo(out[2]), G(prm.groups),
        Cg(x[3] / prm.groups), Og(w[0] / prm.groups), p(prm) {}
  bool symmetric() const { return p.pad_top == p.pad_bottom && p.pad_left == p.pad_right; }
};

enum class ConvPass : uint8_t { forward, backward_input, backward_weight };

inline cudnnDataType_t cudnn_dtype(DType d) {
  switch (d) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_DOUBLE;
  }
}

inline constexpr size_t kCudnnMaxWorkspace = size_t(1) << 30;

// cuDNN's workspace for one call (undefined when it needs none).
inline Tensor cudnn_workspace(size_t bytes, int dev) {
  return bytes > 0 ? empty({static_cast<int64_t>(bytes)}, DType::u8, dev) : Tensor();
}

// Benchmark mode (core/conv_algorithm.hpp) times at most this many of cuDNN's candidates per
// shape and pass, its first-ranked ones: PyTorch's torch.backends.cudnn.benchmark_limit default.
inline constexpr int kConvBenchmarkLimit = 10;

// Mean milliseconds of `reps` runs of run() (a cudnnStatus_t) on the device's stream after one
// untimed run, or -1 when a run fails (the candidate is skipped). Waits for the device, which
// benchmark mode does once per shape.
template <class Run>
float time_conv_candidate(int dev, Run&& run, int reps = 3) {
  if (run() != CUDNN_STATUS_SUCCESS) return -1.f;
  struct Events {
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
    }
  } ev;
  WANWU_CUDA_CHECK(cudaEventCreate(&ev.start));
  WANWU_CUDA_CHECK(cudaEventCreate(&ev.stop));
  const cudaStream_t s = stream(dev);
  WANWU_CUDA_CHECK(cudaEventRecord(ev.start, s));
  for (int i = 0; i < reps; ++i)
    if (run() != CUDNN_STATUS_SUCCESS) return -1.f;
  WANWU_CUDA_CHECK(cudaEventRecord(ev.stop, s));
  WANWU_CUDA_CHECK(cudaEventSynchronize(ev.stop));
  float ms = 0.f;
  WANWU_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.start, ev.stop));
  return ms / static_cast<float>(reps);
}

}  // namespace wanwu::cuda
