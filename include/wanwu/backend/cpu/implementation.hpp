// For programs built with WANWU_CPU_BACKEND_EXTERN: include this header in exactly one .cpp to
// compile the CPU kernels once, instead of in every translation unit. CMake's
// `wanwu::cpu_backend` library target does exactly that.
#pragma once

#if !defined(WANWU_CPU_BACKEND_EXTERN)
#error "implementation.hpp is for builds that define WANWU_CPU_BACKEND_EXTERN; without it, wanwu.hpp already defines the CPU backend"
#endif

#include "../../wanwu.hpp"
#include "cpu_backend.hpp"

namespace wanwu {
Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}
}  // namespace wanwu
