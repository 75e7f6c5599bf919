// How a CUDA convolution chooses cuDNN's algorithm for a shape it has not run before, PyTorch's
// torch.backends.cudnn.benchmark: `heuristic` (the default) takes the first configuration in
// cuDNN's ranking that qualifies (fits the workspace limit, accumulates in f32, runs); `benchmark`
// times the first ten in the ranking within the workspace limit (PyTorch's benchmark_limit) on the
// call's own buffers and keeps the fastest. Either
// choice is made once per (device, pass, dtype, shape, mode) and cached, so benchmark mode costs
// one slower first step and pays off when a training run repeats its shapes. The CPU ignores it.
//
// Like float32_matmul_precision() the setting is per thread, read when the convolution runs: set
// it on the thread that runs forward and backward (ConvAlgorithmSearchGuard scopes it).
#pragma once

#include <cstdint>

#include "thread_setting.hpp"

namespace wanwu {

enum class ConvAlgorithmSearch : uint8_t { heuristic, benchmark };

inline ConvAlgorithmSearch& conv_algorithm_search_slot() {
  thread_local ConvAlgorithmSearch s = ConvAlgorithmSearch::heuristic;
  return s;
}

inline ConvAlgorithmSearch conv_algorithm_search() { return conv_algorithm_search_slot(); }
inline void set_conv_algorithm_search(ConvAlgorithmSearch s) { conv_algorithm_search_slot() = s; }

// Sets the search for a scope and restores the previous one.
using ConvAlgorithmSearchGuard = ThreadSettingGuard<ConvAlgorithmSearch, conv_algorithm_search_slot>;

}  // namespace wanwu
