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

#include "runtime.cuh"

namespace wanwu::cuda {

enum class CheckedOp : unsigned { index_select = 1, index_add, gather, scatter_add, cross_entropy };

// extra: the dimension for the index ops, ignore_index for cross_entropy.
__device__ inline void report_device_error(DeviceErrorRecord* r, CheckedOp op, int64_t value, int64_t bound,
                                           int64_t extra) {
  if (atomicCAS(&r->claimed, 0u, 1u) != 0u) return;
  r->site = static_cast<unsigned>(op);
  r->value = value;
  r->bound = bound;
  r->extra = extra;
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

// Waits for the device's queue, then throws the pending error, if any, after clearing it. The
// record is read with a copy on the stream, so it holds every kernel queued before this call
// and none queued after.
inline void raise_device_errors(int dev) {
  DeviceContext& c = context(dev);
  DeviceErrorRecord r{};
  {
    std::lock_guard<std::mutex> lock(c.errors_mu);
    WANWU_CUDA_CHECK(cudaMemcpyAsync(&r, c.errors, sizeof r, cudaMemcpyDeviceToHost, c.stream));
    WANWU_CUDA_CHECK(cudaStreamSynchronize(c.stream));
    if (r.claimed == 0) return;
    WANWU_CUDA_CHECK(cudaMemsetAsync(c.errors, 0, sizeof r, c.stream));
  }
  const std::string where = detail::str(" (found on cuda:", dev, " by the kernel; reported at the first read from the device after it)");
  if (static_cast<CheckedOp>(r.site) == CheckedOp::cross_entropy)
    throw IndexError(detail::str("cross_entropy: target ", r.value, " is out of bounds for ", r.bound,
                                 " classes (valid: 0..", r.bound - 1, ", or ignore_index ", r.extra, ")", where));
  throw IndexError(detail::str(checked_op_name(r.site), ": index ", r.value, " is out of bounds for dimension ", r.extra,
                               " with size ", r.bound, where));
}

}  // namespace wanwu::cuda
