// Where a tensor's memory lives. The device is a property of each tensor, never a process-wide
// switch (DESIGN D5), so one program can hold CPU and CUDA tensors side by side.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "error.hpp"

namespace wanwu {

enum class DeviceType : uint8_t { cpu = 0, cuda = 1 };
inline constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}  // NOLINT: implicit is handy
  static constexpr Device cpu() { return {DeviceType::cpu, 0}; }
  static constexpr Device cuda(int i = 0) { return {DeviceType::cuda, i}; }

  constexpr bool is_cpu() const { return type == DeviceType::cpu; }
  constexpr bool is_cuda() const { return type == DeviceType::cuda; }
  constexpr bool operator==(const Device&) const = default;

  std::string str() const { return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index); }

  // "cpu", "cuda", "cuda:1".
  static Device parse(std::string_view s) {
    if (s == "cpu") return cpu();
    if (s == "cuda") return cuda(0);
    if (s.substr(0, 5) == "cuda:" && s.size() > 5) {
      int idx = 0;
      for (char c : s.substr(5)) {
        if (c < '0' || c > '9') idx = -1;
        if (idx < 0) break;
        idx = idx * 10 + (c - '0');
      }
      if (idx >= 0) return cuda(idx);
    }
    throw ValueError(detail::str("unknown device '", s, "' (expected cpu, cuda or cuda:N)"));
  }
};

inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

}  // namespace wanwu
