// Copies and conversions: contiguous, clone, to(dtype/device), copy_, fill_, item, tolist.
// All are differentiable where PyTorch's are (a cast between floating dtypes passes the gradient
// back in the input's dtype; a device move passes it back to the input's device).
#pragma once

#include "../autograd/node.hpp"
#include "factory.hpp"
#include "forward.hpp"

namespace wanwu {

namespace detail {
// An op's operand other than its input, by the name its error message gives (weight, bias, mask).
struct NamedOperand {
  const char* name;
  const Tensor& t;
};
// Every defined operand must be on the input's device: the kernels read them all through its
// backend, and a host pointer in a CUDA kernel is an illegal address that poisons the context.
inline void check_operand_devices(const char* op, const Tensor& x, std::initializer_list<NamedOperand> operands) {
  for (const NamedOperand& o : operands)
    WANWU_CHECK_T(DeviceError, !o.t.defined() || o.t.device() == x.device(), op, ": the input is on ", x.device(),
                  " but its ", o.name, " is on ", o.t.device());
}

// A contiguous copy with the same shape, dtype conversion included, on t's device. No autograd.
inline Tensor copy_as(const Tensor& t, DType dt) {
  Tensor out = empty_tensor(t.shape(), dt, t.device());
  backend_for(t.device()).copy(out, t);
  return out;
}

// Moves a tensor's values to another device (contiguous result, same dtype). No autograd.
// Uploads return once the host may write the source again, as PyTorch's; NonBlocking::yes from
// pinned memory returns at once (the loader's batches, which nothing writes after collation).
inline Tensor move_to_device(const Tensor& t, Device d, NonBlocking nb = NonBlocking::no) {
  if (t.device() == d) return t;
  Tensor src = t.is_contiguous() ? t : copy_as(t, t.dtype());
  Tensor out = empty_tensor(t.shape(), t.dtype(), d);
  if (src.device().is_cpu()) {
    if (nb == NonBlocking::yes && is_pinned(src)) backend_for(d).copy_from_host_async(out, src);
    else backend_for(d).copy_from_host(out, src.data_ptr());
  } else if (d.is_cpu()) {
    backend_for(src.device()).copy_to_host(out.data_ptr(), src);
  } else {  // device to device through the host
    Tensor host = empty_tensor(t.shape(), t.dtype(), Device::cpu());
    backend_for(src.device()).copy_to_host(host.data_ptr(), src);
    backend_for(d).copy_from_host(out, host.data_ptr());
  }
  return out;
}
}  // namespace detail

// A copy of a CPU tensor in pinned memory (itself when it already is), so that its upload to a
// CUDA device can run asynchronously (to(device, NonBlocking::yes)); PyTorch's
// Tensor.pin_memory(). Needs the CUDA backend and a device (DeviceError otherwise). No autograd,
// like PyTorch's.
inline Tensor pin_memory(const Tensor& t) {
  WANWU_CHECK_T(DeviceError, t.device().is_cpu(), "pin_memory: expected a CPU tensor, got one on ", t.device());
  if (is_pinned(t)) return t;
  Tensor out = empty_pinned(t.shape(), t.dtype());
  backend_for(Device::cpu()).copy(out, t);
  return out;
}

inline Tensor Tensor::clone() const {
  Tensor out = detail::copy_as(*this, dtype());
  if (autograd::any_requires_grad({*this}))
    autograd::record("clone", {*this}, {out}, [](const Grads& g) { return std::vector<Tensor>{g[0]}; });
  return out;
}

inline Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

inline Tensor Tensor::to(Device device, DType dt, NonBlocking nb) const {
  if (device == this->device() && dt == dtype()) return *this;
  Tensor out = dt == dtype() ? *this : detail::copy_as(*this, dt);
  out = detail::move_to_device(out, device, nb);
  if (is_floating(dt) && autograd::any_requires_grad({*this})) {
    const DType in_dt = dtype();
    const Device in_dev = this->device();
    autograd::record("to", {*this}, {out}, [in_dt, in_dev](const Grads& g) {
      return std::vector<Tensor>{g[0].to(in_dev, in_dt)};
    });
  }
  return out;
}
inline Tensor Tensor::to(DType dt) const { return to(device(), dt); }
inline Tensor Tensor::to(Device d, NonBlocking nb) const { return to(d, dtype(), nb); }

inline Tensor& Tensor::copy_(const Tensor& src, NonBlocking nb) {
  autograd::check_inplace(*this, "copy_");
  const Shape bshape = broadcast_shapes(src.shape(), shape(), "copy_");
  WANWU_CHECK_SHAPE(bshape == shape(), "copy_: source of shape ", src.shape(), " cannot be broadcast to ", shape());
  Tensor s = src;
  if (s.device() != device())
    s = detail::move_to_device(s.dtype() == dtype() ? s : detail::copy_as(s, dtype()), device(), nb);
  if (s.storage() == storage() && !(s.storage_offset() == storage_offset() && s.strides() == strides()))
    s = detail::copy_as(s, s.dtype());  // overlapping source: read from a copy
  const bool record = autograd::any_requires_grad({*this, src});
  {
    const Shape& target = shape();
    Strides st;
    st.resize(target.size());
    for (int i = 0; i < target.size(); ++i) {  // broadcast view of s onto target
      const int j = s.dim() - target.size() + i;
      st[i] = (j < 0 || s.shape()[j] == 1) ? 0 : s.strides()[j];
    }
    Tensor sb(std::make_shared<TensorImpl>(s.storage(), s.storage_offset(), target, st, s.dtype()));
    backend_for(device()).copy(*this, sb);
  }
  bump_version();
  if (record) {
    const Shape src_shape = src.shape();
    const DType src_dt = src.dtype();
    const Device src_dev = src.device();
    const bool src_float = src.is_floating_point();
    autograd::record("copy_", {*this, src_float ? src : Tensor()}, {*this},
                     [src_shape, src_dt, src_dev](const Grads& g) {
                       std::vector<Tensor> r(2);
                       if (g.needs_input_grad(0)) r[0] = zeros_like(g[0]);
                       if (g.needs_input_grad(1)) r[1] = sum_to(g[0], src_shape).to(src_dev, src_dt);
                       return r;
                     });
  }
  return *this;
}

inline Tensor& Tensor::fill_(Scalar value) {
  autograd::check_inplace(*this, "fill_");
  backend_for(device()).fill(*this, value);
  bump_version();
  if (autograd::any_requires_grad({*this}))  // a non-leaf overwritten: no gradient flows back
    autograd::record("fill_", {*this}, {*this}, [](const Grads& g) { return std::vector<Tensor>{zeros_like(g[0])}; });
  return *this;
}

template <class T>
T Tensor::item() const {
  WANWU_CHECK_SHAPE(numel() == 1, "item(): tensor with ", numel(), " elements (shape ", shape(),
                    ") cannot be converted to a scalar");
  Tensor c = detail::move_to_device(*this, Device::cpu());
  T v{};
  dispatch_dtype(c.dtype(), [&](auto tag) {
    using S = typename decltype(tag)::type;
    v = convert<T>(*static_cast<const S*>(c.data_ptr()));
  });
  return v;
}

inline Scalar Tensor::item() const {
  if (is_floating_point()) return Scalar(item<double>());
  if (dtype() == DType::boolean) return Scalar(item<bool>());
  return Scalar(item<int64_t>());
}

template <class T>
std::vector<T> Tensor::tolist() const {
  Tensor c = detail::move_to_device(*this, Device::cpu());
  c = detail::copy_as(c, dtype_of_v<T>);  // contiguous, converted
  const T* p = static_cast<const T*>(c.data_ptr());
  return std::vector<T>(p, p + c.numel());
}

}  // namespace wanwu
