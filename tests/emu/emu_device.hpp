// The CUDA emulator's device side: what a kernel in kernels/*.cuh sees when g++ compiles it for
// the CPU instead of nvcc for a GPU. Most machines that build wanwu have no GPU, so the CUDA
// kernels' own code (index math, vector packs and their tails, warp reductions, block barriers,
// the deferred error records) would otherwise run only when a GPU is lent. Here every CUDA thread
// is a fiber: a block's threads run on one OS thread and switch only at __syncthreads and warp
// shuffles, so barriers and shuffles have CUDA's meaning, and a kernel that diverges around one
// (a lane that leaves a shuffle's mask, a barrier not every thread reaches) stops with an error
// instead of a silent wrong answer. Launches run to completion before they return (one stream
// order for all), or, on a stream being captured into a graph, at each replay of the graph. rewrite_kernels.py turns `k<<<g, b, s, st>>>(args)` into `launch_named("k", g, b, s, st)(calls k)(args)`.
// What a GPU adds and this cannot show: timing, memory-model races between blocks, and the
// libraries (emu_runtime.cpp answers cuBLAS(Lt) and cuDNN calls with reference loops).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __grid_constant__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// A block's threads share one OS thread and run one block at a time: per-thread statics are the
// block's shared memory.
#define __shared__ static thread_local
#define __grid_constant__

namespace wanwu::emu {

struct LaunchConfig {
  dim3 grid, block;
  size_t smem = 0;
  cudaStream_t stream = nullptr;
  const char* name = nullptr;  // the kernel's, for the launch profile (emu_profile.hpp)
  uint64_t bytes = 0;          // what its pointer arguments reach, for the profile
};

// Runs `body` once per thread of every block of `c`, blocks in order; sets the launch error
// (cudaGetLastError) for a configuration CUDA would refuse, as a real launch does.
void run_kernel(const LaunchConfig& c, const std::function<void()>& body);
// Stream capture (CUDA graphs): when `stream` is being recorded, keeps `op` for the graph's
// replays and returns true; otherwise returns false and the caller runs the work now. Throws when
// the capturing thread sends work to another stream (it would run now on a GPU, not at replay).
bool record(cudaStream_t stream, std::function<void()> op, const char* what);
// Whether CUDA would refuse `c` (sets the launch error as run_kernel does).
bool launch_config_ok(const LaunchConfig& c);

const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
// `site` names the call (file:line): CUDA requires every thread of a block at the same
// __syncthreads, and every lane of a shuffle's mask at the same shuffle, so a barrier or exchange
// completed by threads from two different sites is an error.
void sync_block(const char* site);
// Exchanges 8 bytes among the lanes of the caller's warp named by `mask`: `slot` is what this lane
// gives; returns what lane `src` gave.
uint64_t warp_exchange(unsigned mask, uint64_t slot, int src, const char* site);
int lane_id();
// Throws unless p is null or points into device (or pinned host) memory: a kernel handed a host
// pointer faults on a GPU but would read the host's heap here.
void check_kernel_pointer(const void* p, int index);
// Whether the launch profile is on, and the bytes from p to the end of its device block (0 for
// null or any other address).
bool profiling();
uint64_t pointer_extent(const void* p);

template <class T>
void check_kernel_argument(const T& v, int index) {
  if constexpr (std::is_pointer_v<T> && !std::is_function_v<std::remove_pointer_t<T>>)
    check_kernel_pointer(static_cast<const void*>(v), index);
}

template <class T>
uint64_t argument_extent(const T& v) {
  if constexpr (std::is_pointer_v<T> && !std::is_function_v<std::remove_pointer_t<T>>)
    return pointer_extent(static_cast<const void*>(v));
  return 0;
}

template <class F>
struct Launch {
  LaunchConfig c;
  F call;  // calls the kernel with a thread's copies of the arguments
  template <class... A>
  void operator()(A&&... a) const {
    // CUDA copies the arguments into the kernel's parameter space once; each thread's call then
    // copies them into its own parameters (a thread may change them).
    const std::tuple<std::decay_t<A>...> args(std::forward<A>(a)...);
    int index = 0;
    std::apply([&index](const auto&... x) { (check_kernel_argument(x, index++), ...); }, args);
    LaunchConfig cfg = c;
    if (profiling())
      std::apply([&cfg](const auto&... x) { ((cfg.bytes += argument_extent(x)), ...); }, args);
    if (launch_config_ok(cfg) &&
        record(cfg.stream, [cfg, call = call, args] { run_kernel(cfg, [&] { std::apply(call, args); }); },
               cfg.name ? cfg.name : "a kernel"))
      return;
    run_kernel(cfg, [&] { std::apply(call, args); });
  }
};

struct LaunchAt {
  LaunchConfig c;
  template <class F>
  Launch<F> operator()(F call) const {
    return Launch<F>{c, std::move(call)};
  }
};

inline LaunchAt launch(dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) {
  return LaunchAt{LaunchConfig{grid, block, smem, stream}};
}
inline LaunchAt launch_named(const char* name, dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) {
  return LaunchAt{LaunchConfig{grid, block, smem, stream, name}};
}

}  // namespace wanwu::emu

#define threadIdx (::wanwu::emu::thread_idx())
#define blockIdx (::wanwu::emu::block_idx())
#define blockDim (::wanwu::emu::block_dim())
#define gridDim (::wanwu::emu::grid_dim())

#define WANWU_EMU_STR2(x) #x
#define WANWU_EMU_STR(x) WANWU_EMU_STR2(x)
#define WANWU_EMU_SITE __FILE__ ":" WANWU_EMU_STR(__LINE__)
#define __syncthreads() ::wanwu::emu::sync_block(WANWU_EMU_SITE)
#define __shfl_xor_sync(...) ::wanwu::emu::shfl_xor_sync(WANWU_EMU_SITE, __VA_ARGS__)

namespace wanwu::emu {
template <class T>
T shfl_xor_sync(const char* site, unsigned mask, T v, int lane_mask, int width = 32) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "__shfl_xor_sync: at most 8 bytes");
  uint64_t mine = 0;
  std::memcpy(&mine, &v, sizeof(T));
  const int lane = ::wanwu::emu::lane_id();
  int src = lane ^ lane_mask;
  if (src / width > lane / width) src = lane;  // a later group's lane: the caller's own value (CUDA)
  const uint64_t got = ::wanwu::emu::warp_exchange(mask, mine, src, site);
  T r;
  std::memcpy(&r, &got, sizeof(T));
  return r;
}
}  // namespace wanwu::emu

// Atomics: a block's threads never run at once and blocks run one after another, so a plain
// read-modify-write is atomic here.
template <class T>
inline T emu_atomic_add(T* a, T v) {
  const T old = *a;
  *a = old + v;
  return old;
}
inline float atomicAdd(float* a, float v) { return emu_atomic_add(a, v); }
inline double atomicAdd(double* a, double v) { return emu_atomic_add(a, v); }
inline int atomicAdd(int* a, int v) { return emu_atomic_add(a, v); }
inline unsigned atomicAdd(unsigned* a, unsigned v) { return emu_atomic_add(a, v); }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { return emu_atomic_add(a, v); }
inline __half atomicAdd(__half* a, __half v) {
  const __half old = *a;
  *a = __float2half_rn(__half2float(old) + __half2float(v));
  return old;
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* a, __nv_bfloat16 v) {
  const __nv_bfloat16 old = *a;
  *a = __float2bfloat16_rn(__bfloat162float(old) + __bfloat162float(v));
  return old;
}
inline unsigned atomicCAS(unsigned* a, unsigned compare, unsigned v) {
  const unsigned old = *a;
  if (old == compare) *a = v;
  return old;
}
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long compare, unsigned long long v) {
  const unsigned long long old = *a;
  if (old == compare) *a = v;
  return old;
}
