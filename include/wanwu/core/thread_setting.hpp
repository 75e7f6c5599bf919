// The guard of a per-thread setting (the matmul precision, the convolution algorithm search): it
// sets the value for a scope and restores the previous one. Such settings are per thread, like the
// autocast state (DESIGN D12), and read when an op runs, so a server's inference thread or another
// trainer in the same process keeps its own.
#pragma once

namespace wanwu {

// Slot: the function returning the calling thread's value.
template <class T, T& (*Slot)()>
class ThreadSettingGuard {
 public:
  explicit ThreadSettingGuard(T value) : prev_(Slot()) { Slot() = value; }
  ~ThreadSettingGuard() { Slot() = prev_; }
  ThreadSettingGuard(const ThreadSettingGuard&) = delete;
  ThreadSettingGuard& operator=(const ThreadSettingGuard&) = delete;

 private:
  T prev_;
};

}  // namespace wanwu
