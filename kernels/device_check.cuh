// Bad values found on the device, reported without a host sync per op.
//
// An index out of bounds or a class target out of range is only known once a kernel reads it. A
// check that waited for the kernel after every op (as index ops once did) would put a host sync
// in the middle of every training step, at the loss: the host could no longer queue the backward
// while the forward runs (DESIGN §5: no host sync in the step loop). So a kernel that meets a bad
// value skips it (a NaN loss row, an unwritten output element: never a wild read or write),
// records the first one in the device's error record, and the backend raises it as IndexError
// at its next sync point: a read from the device (item, tolist, to(cpu)) or synchronize().
// PyTorch reports the same errors with a device-side assert that poisons the CUDA context; here
// the error names the op and the value, the record is cleared, and the device keeps working.
// The first error wins: values found while one is pending are dropped; each error is raised once,
// on the thread whose read finds it.
#pragma once

#include <optional>
#include <string>

#include "runtime.cuh"

namespace wanwu::cuda {

enum class CheckedOp : unsigned { index_select = 1, index_add, gather, scatter_add, cross_entropy };

// Where a kernel reports a bad value: the op, the bound it broke (a dimension's size, the number
// of classes) and one more figure for the message (the dimension; ignore_index).
struct CheckSite {
  DeviceErrorRecord* record;
  CheckedOp op;
  int64_t bound, extra;
  __device__ void report(int64_t value) const {
    if (atomicCAS(&record->claimed, 0u, 1u) != 0u) return;  // an earlier error is pending
    record->site = static_cast<unsigned>(op);
    record->value = value;
    record->bound = bound;
    record->extra = extra;
  }
};
inline CheckSite check_site(int dev, CheckedOp op, int64_t bound, int64_t extra) {
  return {context(dev).errors, op, bound, extra};
}

inline const char* checked_op_name(unsigned site) {
  switch (static_cast<CheckedOp>(site)) {
    case CheckedOp::index_select: return "index_select";
    case CheckedOp::index_add: return "index_add";
    case CheckedOp::gather: return "gather";
    case CheckedOp::scatter_add: return "scatter_add";
    case CheckedOp::cross_entropy: return "cross_entropy";
  }
  return "a validating kernel";
}

// Waits for the device's queue (and so for a copy the caller queued before) and returns the
// pending error's message, if any, after clearing it. The record is copied on the stream, into
// pinned memory, so it costs no wait of its own and holds every kernel queued before this call and
// none after; the lock keeps a second reader's copy behind the first one's clear.
inline std::optional<std::string> take_device_error(int dev) {
  DeviceContext& c = context(dev);
  DeviceErrorRecord r{};
  {
    std::lock_guard<std::mutex> lock(c.errors_mu);
    WANWU_CUDA_CHECK(cudaMemcpyAsync(c.errors_host, c.errors, sizeof r, cudaMemcpyDeviceToHost, c.stream));
    WANWU_CUDA_CHECK(cudaStreamSynchronize(c.stream));
    r = *c.errors_host;
    if (r.claimed == 0) return std::nullopt;
    WANWU_CUDA_CHECK(cudaMemsetAsync(c.errors, 0, sizeof r, c.stream));
  }
  const std::string where =
      detail::str(" (found on cuda:", dev, " by the kernel; reported at the first read from the device after it)");
  if (static_cast<CheckedOp>(r.site) == CheckedOp::cross_entropy)
    return bad_class_target_message("cross_entropy", r.value, r.bound, r.extra) + where;
  return detail::str(checked_op_name(r.site), ": index ", r.value, " is out of bounds for dimension ", r.extra,
                     " with size ", r.bound, where);
}

}  // namespace wanwu::cuda
