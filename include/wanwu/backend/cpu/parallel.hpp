// Thread parallelism for CPU kernels: OpenMP, one static split of a range per call, so results
// never depend on scheduling. OpenBLAS is the OpenMP build, so a GEMM called inside a parallel
// region runs on its calling thread instead of oversubscribing the cores. Exceptions thrown by
// a worker are carried out of the region and rethrown on the calling thread.
#pragma once

#include <algorithm>
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

// Number of chunks parallel_for would use for n elements: lets a kernel size per-thread buffers.
inline int parallel_chunks(int64_t n, int64_t grain) {
  const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(grain, 1));
  return static_cast<int>(std::min<int64_t>(max_threads(), max_chunks));
}

}  // namespace wanwu::cpu
