// Thread parallelism for CPU kernels: OpenMP, one static split of a range per call, so results
// never depend on scheduling; or, for loops whose every index writes its own outputs with the
// same arithmetic on any thread, blocks handed out as threads come free (parallel_for_dynamic).
// OpenBLAS is the OpenMP build, so a GEMM called inside a parallel region runs on its calling
// thread instead of oversubscribing the cores. Exceptions thrown by
// a worker are carried out of the region and rethrown on the calling thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

#include "../../core/threads.hpp"

namespace wanwu::cpu {

inline int max_threads() {
#if defined(_OPENMP)
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

// Calls f(begin, end) on disjoint chunks covering [0, n); at most one chunk per thread, each
// at least `grain` long (so small ranges stay on the calling thread).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(grain, 1));
  const int nt = static_cast<int>(std::min<int64_t>(max_threads(), max_chunks));
  if (nt <= 1) {
    f(int64_t(0), n);
    return;
  }
#if defined(_OPENMP)
  std::exception_ptr error;
  std::mutex error_mu;
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    const int count = omp_get_num_threads();
    const int64_t chunk = (n + count - 1) / count;
    const int64_t b = tid * chunk, e = std::min(n, b + chunk);
    if (b < e) {
      try {
        f(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
#endif
}

// Calls f(begin, end) on the consecutive blocks of `block` indices covering [0, n), each taken by
// the next thread to come free. Only for loops where no result depends on which thread runs an
// index (the row blocks of a GEMM, each writing its own rows): results then stay independent of
// scheduling. Why: the two virtual cores of our machines run at different speeds from moment to
// moment, and a static split left the faster one waiting at the region's end, 8.6% of a
// ResNet-50 forward at batch 4 (its libgomp barrier in a profile).
template <class F>
void parallel_for_dynamic(int64_t n, int64_t block, F&& f) {
  if (n <= 0) return;
  block = std::max<int64_t>(block, 1);
  const int64_t blocks = (n + block - 1) / block;
  const int nt = static_cast<int>(std::min<int64_t>(max_threads(), blocks));
  if (nt <= 1) {
    f(int64_t(0), n);
    return;
  }
#if defined(_OPENMP)
  std::exception_ptr error;
  std::mutex error_mu;
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(nt)
  {
    try {
      for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < blocks;
           i = next.fetch_add(1, std::memory_order_relaxed))
        f(i * block, std::min(n, (i + 1) * block));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
      next.store(blocks, std::memory_order_relaxed);  // the others stop at their next block
    }
  }
  if (error) std::rethrow_exception(error);
#else
  f(int64_t(0), n);
#endif
}

// Number of chunks parallel_for would use for n elements: lets a kernel size per-thread buffers.
inline int parallel_chunks(int64_t n, int64_t grain) {
  const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(grain, 1));
  return static_cast<int>(std::min<int64_t>(max_threads(), max_chunks));
}

}  // namespace wanwu::cpu
