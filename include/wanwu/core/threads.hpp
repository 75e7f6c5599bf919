// CPU thread count for wanwu's kernels and OpenBLAS (one OpenMP pool serves both). The default is
// OpenMP's: OMP_NUM_THREADS, else the number of cores.
#pragma once

#include <algorithm>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace wanwu {

inline void set_num_threads(int n) {
#if defined(_OPENMP)
  omp_set_num_threads(std::max(n, 1));
#else
  (void)n;
#endif
}

inline int get_num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace wanwu
