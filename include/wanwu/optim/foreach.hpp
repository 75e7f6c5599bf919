// Whole-model gradient passes: scale every gradient in place (checking for inf/NaN on the way)
// and the joint p-norm of many tensors. GradScaler's unscale_ and clip_grad_norm_ are built on
// them. They exist because a model has hundreds of parameters: an op per parameter costs a
// kernel launch each on a GPU, and reading a result per parameter would make the host wait for
// the GPU hundreds of times per step. Here each device gets one backend call (a few multi-tensor
// launches on CUDA, as torch's _foreach ops) and the host reads one value per device at the end.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../ops/factory.hpp"

namespace wanwu {
namespace detail {
// The tensors of one device, in the order given, each contiguous: a non-contiguous view is
// replaced by a contiguous copy, which write_back() copies into the view after an in-place pass.
struct DeviceGroup {
  Device device;
  std::vector<Tensor> work, views;  // views[i] defined where work[i] is a copy
  void write_back() {
    for (size_t i = 0; i < work.size(); ++i)
      if (views[i].defined()) views[i].copy_(work[i]);
  }
};

inline std::vector<DeviceGroup> group_by_device(const std::vector<Tensor>& ts, const char* op) {
  std::vector<DeviceGroup> groups;
  for (const Tensor& t : ts) {
    WANWU_CHECK_VALUE(t.defined(), op, ": tensor ", &t - ts.data(), " is undefined");
    WANWU_CHECK_DTYPE(is_floating(t.dtype()), op, ": needs floating-point tensors, tensor ", &t - ts.data(),
                      " of shape ", t.shape(), " is ", t.dtype());
    auto it = std::find_if(groups.begin(), groups.end(), [&](const DeviceGroup& g) { return g.device == t.device(); });
    if (it == groups.end()) it = groups.insert(groups.end(), DeviceGroup{t.device(), {}, {}});
    const bool dense = t.is_contiguous();
    it->work.push_back(dense ? t : t.contiguous());
    it->views.push_back(dense ? Tensor() : t);
  }
  return groups;
}
}  // namespace detail

namespace optim {

enum class CheckNonfinite : uint8_t { no, yes };

// One f32 flag of one element per device, left there: 1 where an inf or NaN was seen.
struct DeviceFlags {
  std::vector<std::pair<Device, Tensor>> flags;
  // The flag on `d`, or null.
  const Tensor* find(const Device& d) const {
    for (const auto& [dev, f] : flags)
      if (dev == d) return &f;
    return nullptr;
  }
  // Whether any flag is set: one read per device, after every device's work is queued.
  bool any() const {
    bool found = false;
    for (const auto& [d, f] : flags) found = f.item<float>() != 0.0f || found;
    return found;
  }
};

// scale_all_ and unscale_all_: one scale_multi per device, each device's flag left there.
inline DeviceFlags scale_by_device(const std::vector<Tensor>& ts, double factor, CheckNonfinite check,
                                   const Tensor& divisor) {
  NoGradGuard ng;
  DeviceFlags out;
  for (auto& g : detail::group_by_device(ts, "scale_all_")) {
    const Tensor flag = check == CheckNonfinite::yes ? zeros({1}, TensorOptions(DType::f32).device(g.device)) : Tensor();
    const Tensor div = !divisor.defined() || divisor.device() == g.device ? divisor : divisor.to(g.device);
    backend_for(g.device).scale_multi(g.work, factor, flag, div);
    g.write_back();
    if (flag.defined()) out.flags.emplace_back(g.device, flag);
  }
  return out;
}

// x *= factor for every tensor, in its dtype's compute type: f32 for f16/bf16, with the factor
// not rounded to the dtype first, as torch's foreach and unscale kernels (x.mul_(factor) rounds it
// to a bf16 tensor's dtype). With CheckNonfinite::yes, returns whether any element was inf or NaN
// before the multiplication (torch's _amp_foreach_non_finite_check_and_unscale_); otherwise
// false, with nothing read back.
inline bool scale_all_(const std::vector<Tensor>& ts, double factor, CheckNonfinite check = CheckNonfinite::no) {
  return scale_by_device(ts, factor, check, Tensor()).any();
}

// The check and the division of GradScaler's unscale with the scale kept on the device: every
// tensor is multiplied by float(1 / double(divisor)) (divisor: f32, one element; read on the
// device, and copied to each other device that holds tensors), and each device's inf/NaN flag is
// returned where it is, nothing read back.
inline DeviceFlags unscale_all_(const std::vector<Tensor>& ts, const Tensor& divisor) {
  WANWU_CHECK_VALUE(divisor.defined(), "unscale_all_: the divisor is undefined");
  WANWU_CHECK_DTYPE(divisor.dtype() == DType::f32 && divisor.numel() == 1,
                    "unscale_all_: the divisor must be one f32 element, got ", divisor.dtype(), " of shape ",
                    divisor.shape());
  return scale_by_device(ts, 1.0, CheckNonfinite::yes, divisor);
}

// The p-norm of all the tensors' elements together, as if concatenated: (sum |x|^p)^(1/p) for
// p > 0, max |x| for p = infinity; 0 for no elements. Computed in f64 whatever the tensors' dtype;
// NaN anywhere gives NaN, for the max norm too.
inline double total_norm(const std::vector<Tensor>& ts, double p) {
  WANWU_CHECK_VALUE(p > 0, "total_norm: the norm's order must be positive, got ", p);
  NoGradGuard ng;
  const NormParams np = NormParams::of_order(p);
  std::vector<Tensor> parts;
  for (auto& g : detail::group_by_device(ts, "total_norm")) {
    const Tensor out = empty({1}, TensorOptions(DType::f64).device(g.device));
    backend_for(g.device).norm_multi(g.work, np, out);
    parts.push_back(out);
  }
  double acc = 0.0;
  for (const Tensor& t : parts) acc = norm_combine(acc, t.item<double>(), np);
  switch (np.kind) {
    case NormKind::max_abs:
    case NormKind::sum_abs: return acc;
    case NormKind::sum_square: return std::sqrt(acc);
    default: return std::pow(acc, 1.0 / p);
  }
}

}  // namespace optim
}  // namespace wanwu
