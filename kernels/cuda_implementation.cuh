// The CUDA backend's one translation unit (DESIGN D1): a program that wants CUDA compiles a
// one-line .cu that includes this header (CMake's wanwu_enable_cuda(target) generates it). It
// defines every kernel and registers the backend for DeviceType::cuda at static initialization,
// so `Device::cuda(0)` works in every other translation unit of the program.
//
// Including it in more than one translation unit of a program would register the backend twice
// (harmless) but compile every kernel twice (slow); that is why it is a separate header, not part
// of wanwu.hpp.
#pragma once

#include "cuda_backend.cuh"

namespace wanwu::cuda::detail {
// The backend object is reached through cuda_backend(); registering it touches no CUDA API, so a
// machine without a driver or GPU still starts (cuda_is_available() is then false).
inline const bool registered = register_backend(DeviceType::cuda, &cuda_backend());
}  // namespace wanwu::cuda::detail
