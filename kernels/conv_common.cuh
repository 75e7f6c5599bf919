// What the two cuDNN paths of the CUDA convolution share (conv.cuh: the legacy API, with the
// direct kernels; conv_graph.cuh: graph-API plans for f16/bf16): a convolution's geometry, the
// pass, cuDNN's name for a dtype, the workspace, which comes from the stream-ordered allocator,
// and the choice of a shape's algorithm among cuDNN's candidates (timed in benchmark mode).
#pragma once

#include <cstdint>
#include <exception>

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
// untimed run, or -1 when a run fails (the candidate is skipped; the stream is drained first, so
// that the caller may destroy the failed candidate's plan with nothing of it still running).
// Waits for the device, which benchmark mode does once per shape.
// After a candidate that failed: drains the stream, so that the caller may destroy the candidate's
// plan with nothing of it still queued (a sticky error throws here), and drops a launch failure
// inside cuDNN that would otherwise surface at the next launch check.
inline void drain_failed_candidate(int dev) {
  refuse_in_capture(dev, "cuDNN's benchmark search (run the step once before capturing it)");
  WANWU_CUDA_CHECK(cudaStreamSynchronize(stream(dev)));
  (void)cudaGetLastError();
}

template <class Run>
float time_conv_candidate(int dev, Run&& run, int reps = 3) {
  refuse_in_capture(dev, "cuDNN's benchmark search (run the step once before capturing it)");
  const cudaStream_t s = stream(dev);
  auto failed = [&] {
    drain_failed_candidate(dev);
    return -1.f;
  };
  if (run() != CUDNN_STATUS_SUCCESS) return failed();
  struct Events {
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
    }
  } ev;
  WANWU_CUDA_CHECK(cudaEventCreate(&ev.start));
  WANWU_CUDA_CHECK(cudaEventCreate(&ev.stop));
  WANWU_CUDA_CHECK(cudaEventRecord(ev.start, s));
  for (int i = 0; i < reps; ++i)
    if (run() != CUDNN_STATUS_SUCCESS) return failed();
  WANWU_CUDA_CHECK(cudaEventRecord(ev.stop, s));
  WANWU_CUDA_CHECK(cudaEventSynchronize(ev.stop));
  float ms = 0.f;
  WANWU_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.start, ev.stop));
  return ms / static_cast<float>(reps);
}

// What choose_conv_candidate picked: the candidate's index in cuDNN's ranking (-1: none) and its
// workspace; `last` is the status of the last run (the failure to report when none ran).
struct ConvChoice {
  int64_t index = -1;
  size_t workspace = 0;
  cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
};

// The choice both cuDNN paths make for a shape they have not run: among cuDNN's ranked candidates
// 0..count-1, the first that qualifies and runs, or in benchmark mode the fastest of the first
// kConvBenchmarkLimit that qualify, timed. qualify(i, bytes) says whether candidate i can be used
// and sets the workspace it wants (at most kCudnnMaxWorkspace); run(i, workspace, bytes) runs it
// on the call's buffers. The call's output is left holding the chosen candidate's result. A
// candidate whose workspace cannot be allocated is skipped, as PyTorch does; if that leaves none,
// the out-of-memory error is thrown rather than a slow path taken.
template <class Qualify, class Run>
ConvChoice choose_conv_candidate(int dev, ConvAlgorithmSearch search, int64_t count, Qualify&& qualify, Run&& run) {
  const bool bench = search == ConvAlgorithmSearch::benchmark;
  ConvChoice c;
  std::exception_ptr oom;
  float best_ms = 0.f;
  int64_t last_ran = -1;
  int tried = 0;
  for (int64_t i = 0; i < count && (!bench || tried < kConvBenchmarkLimit); ++i) {
    size_t bytes = 0;
    if (!qualify(i, bytes)) continue;
    Tensor ws;
    try {
      ws = cudnn_workspace(bytes, dev);
    } catch (const OutOfMemoryError&) {
      oom = std::current_exception();
      continue;
    }
    void* wsp = ws.defined() ? ws.data_ptr() : nullptr;
    auto once = [&] { return c.last = run(i, wsp, bytes); };
    if (!bench) {
      if (once() != CUDNN_STATUS_SUCCESS) {
        drain_failed_candidate(dev);
        continue;
      }
      c.index = i;
      c.workspace = bytes;
      return c;
    }
    ++tried;
    last_ran = i;  // from here the output may hold this candidate's result, whole or (failed) partial
    const float ms = time_conv_candidate(dev, once);
    if (ms < 0.f) continue;
    if (c.index >= 0 && ms >= best_ms) continue;
    c.index = i;
    c.workspace = bytes;
    best_ms = ms;
  }
  if (c.index >= 0 && c.index != last_ran) {  // the output holds a later candidate's result
    const Tensor ws = cudnn_workspace(c.workspace, dev);
    c.last = run(c.index, ws.defined() ? ws.data_ptr() : nullptr, c.workspace);
    if (c.last != CUDNN_STATUS_SUCCESS) c.index = -1;
  }
  if (c.index < 0 && oom) std::rethrow_exception(oom);
  return c;
}

}  // namespace wanwu::cuda
