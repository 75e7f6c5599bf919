// CpuBackend: device facts, allocator, host copies, random fill; and cpu_backend() itself.
#pragma once

#include <cstring>

#include "../cpu_backend.hpp"
#include "../random.hpp"

namespace wanwu {

WANWU_CPU_METHOD DeviceType CpuBackend::device_type() const { return DeviceType::cpu; }
WANWU_CPU_METHOD int CpuBackend::device_count() const { return 1; }
WANWU_CPU_METHOD Allocator& CpuBackend::allocator(int) { return cpu_allocator(); }
WANWU_CPU_METHOD void CpuBackend::copy_to_host(void* host_dst, const Tensor& src) {
  std::memcpy(host_dst, src.data_ptr(), src.nbytes());
}
WANWU_CPU_METHOD void CpuBackend::copy_from_host(const Tensor& dst, const void* host_src) {
  std::memcpy(dst.data_ptr(), host_src, dst.nbytes());
}
WANWU_CPU_METHOD void CpuBackend::random(const Tensor& out, const RandomParams& p, bool wide) {
  cpu::random(out, p, wide);
}

// inline in header-only builds, one definition under WANWU_CPU_BACKEND_EXTERN (backend.hpp)
WANWU_CPU_METHOD Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace wanwu
