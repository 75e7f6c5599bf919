// The tensor handle (DESIGN D2). A `Tensor` is a reference-counted pointer to a `TensorImpl`:
// {storage, element offset, shape, strides, dtype, autograd meta}; the device is the storage's.
// Copying a Tensor copies the handle, as in PyTorch; views share storage and differ only in
// offset/shape/strides. This header declares the whole method surface; the methods that are ops
// are defined next to their op in include/wanwu/ops/, so one family's forward, backward and
// member sugar sit together.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "accessor.hpp"
#include "device.hpp"
#include "dims.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "scalar.hpp"
#include "storage.hpp"

namespace wanwu {

class Node;
class Tensor;
struct AutogradMeta;

enum class KeepDim : bool { no = false, yes = true };
enum class RetainGraph : bool { no = false, yes = true };
// A host-to-device copy from pinned memory that returns before the copy is done (PyTorch's
// non_blocking=True): the source must not be written until the device has read it.
enum class NonBlocking : bool { no = false, yes = true };

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Strides strides;  // in elements
  DType dtype = DType::f32;
  bool is_view = false;  // shares storage with a tensor it was derived from
  // A C++ number wrapped as a 0-dim tensor for a binary op: promotes like a scalar (DType docs).
  bool is_wrapped_number = false;
  std::unique_ptr<AutogradMeta> autograd;

  TensorImpl() = default;
  TensorImpl(std::shared_ptr<Storage> s, int64_t off, Shape sh, Strides st, DType dt)
      : storage(std::move(s)), offset(off), shape(sh), strides(st), dtype(dt) {}
  ~TensorImpl();
};

// What factories take: dtype, device, requires_grad. Converts implicitly from a DType or a Device
// so `zeros({2, 3}, DType::f64)` and `ones({4}, Device::cuda())` read naturally.
struct TensorOptions {
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu();
  bool requires_grad_ = false;

  TensorOptions() = default;
  TensorOptions(DType d) : dtype_(d) {}    // NOLINT
  TensorOptions(Device d) : device_(d) {}  // NOLINT
  TensorOptions dtype(DType d) const {
    auto o = *this;
    o.dtype_ = d;
    return o;
  }
  TensorOptions device(Device d) const {
    auto o = *this;
    o.device_ = d;
    return o;
  }
  TensorOptions requires_grad(bool r = true) const {
    auto o = *this;
    o.requires_grad_ = r;
    return o;
  }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- metadata ----
  const Shape& shape() const { return checked()->shape; }
  const Strides& strides() const { return checked()->strides; }
  int dim() const { return checked()->shape.size(); }
  int64_t size(int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }
  int64_t stride(int64_t d) const { return strides()[normalize_dim(d, dim(), "stride")]; }
  int64_t numel() const { return numel_of(shape()); }
  DType dtype() const { return checked()->dtype; }
  Device device() const { return checked()->storage->device(); }
  size_t itemsize() const { return wanwu::itemsize(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(); }
  int64_t storage_offset() const { return checked()->offset; }
  const std::shared_ptr<Storage>& storage() const { return checked()->storage; }
  bool is_floating_point() const { return is_floating(dtype()); }
  bool is_view() const { return checked()->is_view; }
  bool is_contiguous() const {
    const auto& s = shape();
    const auto& st = strides();
    int64_t expected = 1;
    for (int i = s.size() - 1; i >= 0; --i) {
      if (s[i] == 1) continue;
      if (st[i] != expected) return false;
      expected *= s[i];
    }
    return true;
  }
  uint32_t version() const { return storage()->version(); }
  void bump_version() const {
    storage()->bump_version();
    if (auto* log = detail::capture_write_log()) log->push_back(storage());
  }

  // ---- raw data (CPU) ----
  void* data_ptr() const {
    auto* i = checked();
    return static_cast<char*>(i->storage->data()) + i->offset * static_cast<int64_t>(wanwu::itemsize(i->dtype));
  }
  template <class T>
  T* data() const {
    WANWU_CHECK_DTYPE(dtype() == dtype_of_v<T>, "data<", dtype_name(dtype_of_v<T>), ">(): tensor has dtype ",
                      dtype());
    return static_cast<T*>(data_ptr());
  }
  template <class T, int N>
  Accessor<T, N> accessor() const {
    WANWU_CHECK_DTYPE(dtype() == dtype_of_v<T>, "accessor<", dtype_name(dtype_of_v<T>), ">(): tensor has dtype ",
                      dtype());
    WANWU_CHECK_T(DeviceError, device().is_cpu(), "accessor(): tensor is on ", device(), "; call .cpu() first");
    WANWU_CHECK_SHAPE(dim() == N, "accessor<T, ", N, ">(): tensor has ", dim(), " dimensions, shape ", shape());
    return Accessor<T, N>(static_cast<T*>(data_ptr()), shape().data(), strides().data());
  }
  // The value of a one-element tensor (any device).
  template <class T>
  T item() const;
  Scalar item() const;
  // All elements, converted to T, in row-major order (any device, any layout).
  template <class T>
  std::vector<T> tolist() const;

  // ---- autograd (autograd/*.hpp) ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool enabled = true);
  bool is_leaf() const;
  Tensor grad() const;               // undefined when no gradient has been accumulated
  void set_grad(const Tensor& g) const;  // replace (or clear, with an undefined tensor)
  const std::shared_ptr<Node>& grad_fn() const;
  uint32_t output_nr() const;
  void backward(const Tensor& gradient = Tensor(), RetainGraph retain = RetainGraph::no) const;
  Tensor detach() const;
  Tensor& detach_();
  void retain_grad() const;
  bool retains_grad() const;

  // ---- views (ops/view.hpp); results share storage ----
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;  // a view when strides allow, else a copy
  Tensor permute(const Dims& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-D tensor (1-D: itself)
  Tensor mT() const;  // transpose of the last two dims
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor operator[](int64_t index) const { return select(0, index); }
  Tensor expand(const Shape& shape) const;  // -1 keeps a size
  Tensor expand_as(const Tensor& other) const { return expand(other.shape()); }
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unflatten(int64_t dim, const Shape& sizes) const;
  Tensor as_strided(const Shape& shape, const Strides& strides, int64_t storage_offset) const;
  // Replaces this tensor's data (storage, layout, dtype) with other's, keeping the handle and its
  // autograd state: how a module moves its parameters to another device or dtype.
  void set_data(const Tensor& other) const {
    TensorImpl* i = checked();
    const TensorImpl* s = other.checked();
    i->storage = s->storage;
    i->offset = s->offset;
    i->shape = s->shape;
    i->strides = s->strides;
    i->dtype = s->dtype;
    i->is_view = false;
  }

  // ---- copies and conversions (ops/copy.hpp) ----
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device, NonBlocking nb = NonBlocking::no) const;
  Tensor to(Device device, DType dtype, NonBlocking nb = NonBlocking::no) const;
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor cuda(int index = 0) const { return to(Device::cuda(index)); }
  Tensor& copy_(const Tensor& src, NonBlocking nb = NonBlocking::no);  // broadcasts src; converts dtype and device
  Tensor& fill_(Scalar value);
  Tensor& zero_() { return fill_(0); }

  // ---- elementwise (ops/elementwise.hpp, ops/activation.hpp) ----
  Tensor add(const Tensor& o, Scalar alpha = 1) const;
  Tensor sub(const Tensor& o, Scalar alpha = 1) const;
  Tensor mul(const Tensor& o) const;
  Tensor div(const Tensor& o) const;
  Tensor pow(const Tensor& exponent) const;
  Tensor pow(Scalar exponent) const;
  Tensor neg() const;
  Tensor abs() const;
  Tensor sign() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor rsqrt() const;
  Tensor square() const;
  Tensor reciprocal() const;
  Tensor clamp(std::optional<Scalar> min, std::optional<Scalar> max) const;
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor& add_(const Tensor& o, Scalar alpha = 1);
  Tensor& add_(Scalar o);
  Tensor& sub_(const Tensor& o, Scalar alpha = 1);
  Tensor& sub_(Scalar o);
  Tensor& mul_(const Tensor& o);
  Tensor& mul_(Scalar o);
  Tensor& div_(const Tensor& o);
  Tensor& div_(Scalar o);
  Tensor& relu_();
  Tensor& clamp_(std::optional<Scalar> min, std::optional<Scalar> max);

  // ---- reductions (ops/reduce.hpp) ----
  Tensor sum() const;
  Tensor sum(const Dims& dims, KeepDim keepdim = KeepDim::no) const;
  Tensor mean() const;
  Tensor mean(const Dims& dims, KeepDim keepdim = KeepDim::no) const;
  Tensor max() const;
  Tensor min() const;
  Tensor argmax() const;
  Tensor argmax(int64_t dim, KeepDim keepdim = KeepDim::no) const;

  // ---- linear algebra (ops/linalg.hpp) ----
  Tensor matmul(const Tensor& o) const;

 private:
  TensorImpl* checked() const {
    WANWU_CHECK(impl_ != nullptr, "use of an undefined tensor (default-constructed or moved-from)");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

// Autograd state of a tensor; created on first need so plain tensors pay nothing.
struct AutogradMeta {
  bool requires_grad = false;
  bool retains_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;
  std::weak_ptr<Node> grad_accumulator;  // leaves: the node that accumulates into `grad`
};

inline TensorImpl::~TensorImpl() = default;

}  // namespace wanwu
