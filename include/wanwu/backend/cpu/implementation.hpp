// For programs built with WANWU_CPU_BACKEND_EXTERN: include this header in exactly one .cpp to
// compile the CPU backend there. To spread the work over several TUs (and cores), include each
// of methods/*.hpp in its own .cpp instead — CMake's wanwu::cpu_backend does that.
#pragma once

#if !defined(WANWU_CPU_BACKEND_EXTERN)
#error "implementation.hpp is for builds that define WANWU_CPU_BACKEND_EXTERN; without it, wanwu.hpp already defines the CPU backend"
#endif

#include "../../wanwu.hpp"
#include "methods/binary.hpp"
#include "methods/copy.hpp"
#include "methods/core.hpp"
#include "methods/linalg_index.hpp"
#include "methods/reduce.hpp"
#include "methods/unary.hpp"
#include "methods/conv.hpp"
#include "methods/pool.hpp"
#include "methods/norm.hpp"
#include "methods/attention.hpp"
#include "methods/optim.hpp"
