// CUDA runtime layer of the CUDA backend: error checking, per-device state (one non-blocking
// compute stream and the library handles bound to it), the launch geometry, and the device-side
// load/convert helpers every kernel uses.
//
// All work of a device runs on its one stream, so the stream-ordered allocator (allocator.cuh)
// can free a block as soon as the host lets go of it: every kernel that read it was enqueued
// before the free. Handles and streams are created lazily, once per device, and deliberately
// never destroyed: tensors held in static objects are freed during exit, after the CUDA runtime
// may already be gone, and a leaked handle at exit costs nothing.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <initializer_list>
#include <cstdint>
#include <mutex>
#include <type_traits>

// The CUDA unit never calls the CPU backend. Declaring cpu_backend() as defined elsewhere keeps
// the compilers from warning that backend.hpp's inline declaration has no definition here.
#if !defined(WANWU_CPU_BACKEND_EXTERN)
#define WANWU_CPU_BACKEND_EXTERN
#endif
#include <wanwu/backend/backend.hpp>

// Throws wanwu::DeviceError naming the failed call and CUDA's description of the error.
#define WANWU_CUDA_CHECK(call)                                                                            \
  do {                                                                                                    \
    const cudaError_t wanwu_err_ = (call);                                                                \
    if (wanwu_err_ != cudaSuccess) [[unlikely]]                                                           \
      throw ::wanwu::DeviceError(::wanwu::detail::str("CUDA error in ", #call, " (", __FILE__, ":", __LINE__, \
                                                      "): ", cudaGetErrorString(wanwu_err_)));             \
  } while (0)

#define WANWU_CUBLAS_CHECK(call)                                                                          \
  do {                                                                                                    \
    const cublasStatus_t wanwu_st_ = (call);                                                              \
    if (wanwu_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                                  \
      throw ::wanwu::DeviceError(::wanwu::detail::str("cuBLAS error in ", #call, ": ",                    \
                                                      cublasGetStatusString(wanwu_st_)));                 \
  } while (0)

#define WANWU_CUDNN_CHECK(call)                                                                           \
  do {                                                                                                    \
    const cudnnStatus_t wanwu_st_ = (call);                                                               \
    if (wanwu_st_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                                                   \
      throw ::wanwu::DeviceError(::wanwu::detail::str("cuDNN error in ", #call, ": ",                     \
                                                      cudnnGetErrorString(wanwu_st_)));                   \
  } while (0)

// After a kernel launch: a bad configuration is reported here, not at the next sync.
#define WANWU_CUDA_LAUNCH_CHECK() WANWU_CUDA_CHECK(cudaGetLastError())

namespace wanwu::cuda {

inline constexpr int kMaxDevices = 16;

inline int device_count() {
  static const int n = [] {
    int c = 0;
    // No driver or no device is "zero devices", not an error: CPU-only machines run the tests.
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return c < kMaxDevices ? c : kMaxDevices;
  }();
  return n;
}

// Makes `index` the calling thread's current device for the guard's lifetime. CUDA's current
// device is per-thread runtime state; restoring it keeps wanwu from changing the caller's.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    WANWU_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != index) WANWU_CUDA_CHECK(cudaSetDevice(index));
    cur_ = index;
  }
  ~DeviceGuard() {
    if (prev_ != cur_) (void)cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0, cur_ = 0;
};

// DeviceGuard for code that must not throw (frees, destructors, unwinding): when the runtime
// cannot say which device is current (it is torn down during process exit) `ok()` is false and
// nothing is switched; the caller then leaves the memory to go with the process.
class DeviceGuardNoThrow {
 public:
  explicit DeviceGuardNoThrow(int index) noexcept : cur_(index) {
    ok_ = cudaGetDevice(&prev_) == cudaSuccess;
    if (!ok_) {
      (void)cudaGetLastError();
      prev_ = index;
    } else if (prev_ != index) {
      (void)cudaSetDevice(index);
    }
  }
  ~DeviceGuardNoThrow() {
    if (prev_ != cur_) (void)cudaSetDevice(prev_);
  }
  DeviceGuardNoThrow(const DeviceGuardNoThrow&) = delete;
  DeviceGuardNoThrow& operator=(const DeviceGuardNoThrow&) = delete;
  bool ok() const { return ok_; }

 private:
  int prev_ = 0, cur_ = 0;
  bool ok_ = false;
};

// The first bad value a validating kernel met (an index out of bounds, a class target out of
// range) since the host last looked; in device memory, read back at the backend's sync points
// (device_check.cuh). `claimed` is 0 while nothing is pending.
struct DeviceErrorRecord {
  unsigned int claimed;
  unsigned int site;  // a CheckedOp
  long long value, bound, extra;
};

// Everything a device's kernels need; created on first use of the device.
struct DeviceContext {
  int index = 0;
  cudaDeviceProp props{};
  cudaStream_t stream = nullptr;
  cudaStream_t copy_stream = nullptr;  // uploads from pinned host memory (pinned.cuh)
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t cublaslt = nullptr;
  cudnnHandle_t cudnn = nullptr;  // created on the first convolution (loads cuDNN's sub-libraries)
  std::once_flag cudnn_once;
  // Held across each convolution's cuDNN calls: cuDNN allows calls from several threads only on
  // different handles, and the graph plans are built bound to this one (cuBLAS's handle may be
  // shared; its calls never change the handle's settings).
  std::mutex cudnn_mu;
  DeviceErrorRecord* errors = nullptr;
  DeviceErrorRecord* errors_host = nullptr;  // pinned: the record's copy rides along with a read's
  // Held from a read of the record to its clear, so that a second reader's copy is queued after the
  // first one's clear and cannot clear an error that came after it.
  std::mutex errors_mu;
};

inline DeviceContext& context(int index) {
  static std::array<DeviceContext, kMaxDevices> ctx;
  static std::array<std::once_flag, kMaxDevices> once;
  WANWU_CHECK_T(DeviceError, index >= 0 && index < device_count(), "cuda:", index, " is not available (",
                device_count(), " CUDA device(s) found)");
  std::call_once(once[index], [index] {
    DeviceContext& c = ctx[index];
    DeviceGuard g(index);
    c.index = index;
    WANWU_CUDA_CHECK(cudaGetDeviceProperties(&c.props, index));
    WANWU_CUDA_CHECK(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking));
    WANWU_CUDA_CHECK(cudaStreamCreateWithFlags(&c.copy_stream, cudaStreamNonBlocking));
    WANWU_CUBLAS_CHECK(cublasCreate(&c.cublas));
    WANWU_CUBLAS_CHECK(cublasSetStream(c.cublas, c.stream));
    WANWU_CUBLAS_CHECK(cublasLtCreate(&c.cublaslt));
    WANWU_CUDA_CHECK(cudaMalloc(&c.errors, sizeof(DeviceErrorRecord)));
    // on the stream, not cudaMemset: the legacy default stream does not order a non-blocking one
    WANWU_CUDA_CHECK(cudaMemsetAsync(c.errors, 0, sizeof(DeviceErrorRecord), c.stream));
    WANWU_CUDA_CHECK(cudaHostAlloc(&c.errors_host, sizeof(DeviceErrorRecord), cudaHostAllocDefault));
  });
  return ctx[index];
}

inline cudaStream_t stream(int index) { return context(index).stream; }

// The largest power of two up to `cap` bytes that divides every address (or byte offset) given:
// the alignment cuBLASLt's and cuDNN's kernel choices depend on.
inline uint32_t alignment_of(std::initializer_list<uintptr_t> addresses, uint32_t cap = 16) {
  uintptr_t v = 0;
  for (uintptr_t a : addresses) v |= a;
  uint32_t a = cap;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}
inline uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

inline cudnnHandle_t cudnn_handle(int index) {
  DeviceContext& c = context(index);
  std::call_once(c.cudnn_once, [&c] {
    DeviceGuard g(c.index);
    WANWU_CUDNN_CHECK(cudnnCreate(&c.cudnn));
    WANWU_CUDNN_CHECK(cudnnSetStream(c.cudnn, c.stream));
  });
  return c.cudnn;
}

// ---- launch geometry ----
inline constexpr int kThreads = 256;

// Enough blocks to cover n with grid-stride loops, capped so huge tensors reuse threads.
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  const int64_t cap = int64_t(1) << 20;
  return static_cast<unsigned>(b < cap ? b : cap);
}

// Each element's channel (i % C) in elementwise passes over a contiguous [rows, C] tensor (batch
// norm's apply and gradient passes, a GEMM's bias): a FastDivmod (backend/functors.hpp) while the
// element count fits its 31 bits, the 64-bit remainder beyond; a 64-bit % is a software routine
// of dozens of instructions on the GPU. The branch is uniform over the grid.
struct ChannelOf {
  FastDivmod f;
  int64_t C;
  bool fast;
  ChannelOf(int64_t n, int64_t c)
      : f(c < (int64_t(1) << 31) ? static_cast<uint32_t>(c) : 1u), C(c), fast(n < (int64_t(1) << 31)) {}
  __device__ __forceinline__ int64_t operator()(int64_t i) const {
    return fast ? static_cast<int64_t>(f.mod(static_cast<uint32_t>(i))) : i % C;
  }
};

// ---- packs: V values of T moved by one 16-byte access (or by one smaller access when V * sizeof(T)
// is less, and by several 16-byte ones when it is more: 8 f32 statistics beside 8 bf16 elements).
// Scalar loads of 2-byte elements move 64 bytes per warp instruction and leave HBM idle between
// them; 16-byte packs move 512. The pointer must be aligned to alignof(Pack<T, V>); callers check
// on the host (aligned_to) and fall back to V = 1. ----
template <class T, int V>
struct alignas(sizeof(T) * V < 16 ? sizeof(T) * V : 16) Pack {
  T v[V];
};

template <class T, int V>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
  Pack<T, V> r;
  if constexpr (sizeof(r) > 16) {
#pragma unroll
    for (int q = 0; q < int(sizeof(r) / 16); ++q) reinterpret_cast<uint4*>(&r)[q] = reinterpret_cast<const uint4*>(p)[q];
  } else {
    r = *reinterpret_cast<const Pack<T, V>*>(p);
  }
  return r;
}

template <class T, int V>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& v) {
  if constexpr (sizeof(v) > 16) {
#pragma unroll
    for (int q = 0; q < int(sizeof(v) / 16); ++q) reinterpret_cast<uint4*>(p)[q] = reinterpret_cast<const uint4*>(&v)[q];
  } else {
    *reinterpret_cast<Pack<T, V>*>(p) = v;
  }
}

// Whether every pointer (null ones aside) is a multiple of `bytes`.
inline bool aligned_to(uintptr_t bytes, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % bytes != 0) return false;
  return true;
}

// ---- device-side conversion: the hardware conversions for f16/bf16, the shared ones otherwise.
// The hardware conversions round to nearest even like the software ones in core/half.hpp.
template <class To, class From>
__device__ __forceinline__ To cv(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, Half>) {
    return cv<To>(__half2float(__ushort_as_half(v.bits)));
  } else if constexpr (std::is_same_v<From, BFloat16>) {
    return cv<To>(__bfloat162float(__ushort_as_bfloat16(v.bits)));
  } else if constexpr (std::is_same_v<To, Half>) {
    return Half::from_bits(__half_as_ushort(__float2half_rn(cv<float>(v))));
  } else if constexpr (std::is_same_v<To, BFloat16>) {
    return BFloat16::from_bits(__bfloat16_as_ushort(__float2bfloat16_rn(cv<float>(v))));
  } else {
    return convert<To>(v);
  }
}

// ---- strided indexing for up to kMaxDims dims and N operands sharing one shape ----
template <int N>
struct StridedIter {
  int nd = 0;
  int64_t size[kMaxDims] = {};           // innermost first
  int64_t stride[N][kMaxDims] = {};      // in elements
  bool contiguous = true;                // all operands dense and in order: index == offset

  __device__ __forceinline__ void offsets(int64_t i, int64_t* off) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = 0; d < nd; ++d) {
      const int64_t q = i / size[d], r = i - q * size[d];
      i = q;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][d];
    }
  }
};

// Builds the iterator over `shape` with each operand's strides, dropping size-1 dims and merging
// dims that are contiguous in every operand (a contiguous tensor becomes one dim).
template <int N>
StridedIter<N> make_iter(const Shape& shape, const std::array<const Strides*, N>& strides) {
  StridedIter<N> it;
  for (int d = shape.size() - 1; d >= 0; --d) {
    const int64_t sz = shape[d];
    if (sz == 1) continue;
    if (it.nd > 0) {
      bool merge = true;
      for (int k = 0; k < N; ++k)
        if ((*strides[k])[d] != it.stride[k][it.nd - 1] * it.size[it.nd - 1]) merge = false;
      if (merge) {
        it.size[it.nd - 1] *= sz;
        continue;
      }
    }
    it.size[it.nd] = sz;
    for (int k = 0; k < N; ++k) it.stride[k][it.nd] = (*strides[k])[d];
    ++it.nd;
  }
  it.contiguous = it.nd == 0 || (it.nd == 1 && [&] {
    for (int k = 0; k < N; ++k)
      if (it.stride[k][0] != 1) return false;
    return true;
  }());
  return it;
}

// ---- helpers on tensors ----
template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}
template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

}  // namespace wanwu::cuda
