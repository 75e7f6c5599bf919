// The CUDA emulator's own semantics, checked with small kernels written here: a parity case passes
// on the emulator only if barriers, shuffles, shared memory and launch errors mean what they mean
// on a GPU, and a kernel that diverges around a barrier or a shuffle must stop with an error.
#include <doctest/doctest.h>

#include <numeric>
#include <stdexcept>
#include <vector>

#include "emu_device.hpp"

namespace {

// A block's sum through shared memory and __syncthreads: the classic tree, which reads a stale
// partial if a barrier does not wait for every thread.
__global__ void block_sum_kernel(const int* in, int* out) {
  __shared__ int sh[256];
  const int t = static_cast<int>(threadIdx.x);
  sh[t] = in[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (t < s) sh[t] += sh[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = sh[0];
}

__global__ void warp_sum_kernel(const double* in, double* out) {
  double v = in[threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[threadIdx.x] = v;
}

__global__ void shuffle_after_exit_kernel(int* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void divergent_barrier_kernel(int* out) {
  // lane 0 waits at a barrier while the rest of its warp waits at a shuffle that needs lane 0
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
  }
}

__global__ void two_barriers_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void index_kernel(unsigned* out) {
  const unsigned t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  const unsigned b = blockIdx.y * gridDim.x + blockIdx.x;
  out[b * blockDim.x * blockDim.y * blockDim.z + t] = b * 1000 + t;
}

__global__ void neighbour_kernel(int* out) {
  // reads what the next thread wrote, without a barrier between: a race on a GPU
  __shared__ int sh[64];
  sh[threadIdx.x] = static_cast<int>(threadIdx.x);
  out[blockIdx.x * 64 + threadIdx.x] = sh[(threadIdx.x + 1) % 64];
}

__global__ void mixed_mask_kernel(int* out) {
  out[threadIdx.x] = __shfl_xor_sync(threadIdx.x < 16 ? 0x0000ffffu : 0xffffffffu, 1, 1);
}

// Device memory for a kernel's arguments: a host pointer is refused as on a GPU.
template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  size_t n;
  explicit DeviceBuffer(const std::vector<T>& host) : n(host.size()) {
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemcpy(p, host.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~DeviceBuffer() { (void)cudaFree(p); }
  std::vector<T> host() const {
    std::vector<T> v(n);
    REQUIRE(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
};

}  // namespace

TEST_CASE("CUDA emulator: block barriers, shared memory and warp shuffles have CUDA's meaning") {
  std::vector<int> in_h(4 * 256);
  std::iota(in_h.begin(), in_h.end(), 1);
  DeviceBuffer<int> in(in_h), sums(std::vector<int>(4, -1));
  ::wanwu::emu::launch(4, 256)([&](auto... a) { block_sum_kernel(a...); })(in.p, sums.p);
  const auto s = sums.host();
  for (int b = 0; b < 4; ++b) {
    const int first = b * 256 + 1, last = b * 256 + 256;
    CHECK(s[b] == (first + last) * 256 / 2);
  }

  std::vector<double> v_h(32);
  for (int i = 0; i < 32; ++i) v_h[i] = 0.5 * i;
  DeviceBuffer<double> v(v_h), w(std::vector<double>(32, 0.0));
  ::wanwu::emu::launch(1, 32)([&](auto... a) { warp_sum_kernel(a...); })(v.p, w.p);
  for (double x : w.host()) CHECK(x == 0.5 * 31 * 32 / 2);  // every lane holds the whole sum

  // thread and block indices over 3-D blocks and a 2-D grid
  DeviceBuffer<unsigned> ids(std::vector<unsigned>(6 * 4 * 3 * 2, 0));
  ::wanwu::emu::launch(dim3(3, 2), dim3(4, 3, 2))([&](auto... a) { index_kernel(a...); })(ids.p);
  const auto id = ids.host();
  for (unsigned b = 0; b < 6; ++b)
    for (unsigned t = 0; t < 24; ++t) CHECK(id[b * 24 + t] == b * 1000 + t);

  // a missing barrier shows: even blocks run their threads first to last, odd ones last to first,
  // so the neighbour's value is there in one order and stale in the other
  DeviceBuffer<int> race(std::vector<int>(2 * 64, -1));
  ::wanwu::emu::launch(2, 64)([&](auto... a) { neighbour_kernel(a...); })(race.p);
  const auto r = race.host();
  int agree = 0;
  for (int t = 0; t < 64; ++t) agree += r[t] == r[64 + t];
  CHECK(agree < 64);
}

TEST_CASE("CUDA emulator: a bad configuration is a launch error; divergence around a shuffle or barrier throws") {
  (void)cudaGetLastError();
  DeviceBuffer<int> out(std::vector<int>(64, 0));
  ::wanwu::emu::launch(1, 2048)([&](auto... a) { shuffle_after_exit_kernel(a...); })(out.p);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess);  // read once, as CUDA's
  ::wanwu::emu::launch(dim3(1, 70000), 32)([&](auto... a) { shuffle_after_exit_kernel(a...); })(out.p);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);

  CHECK_THROWS_WITH_AS(::wanwu::emu::launch(1, 32)([&](auto... a) { shuffle_after_exit_kernel(a...); })(out.p),
                       doctest::Contains("names a lane that has exited"), std::logic_error);
  CHECK_THROWS_WITH_AS(::wanwu::emu::launch(1, 32)([&](auto... a) { divergent_barrier_kernel(a...); })(out.p),
                       doctest::Contains("deadlock"), std::logic_error);
  CHECK_THROWS_WITH_AS(::wanwu::emu::launch(1, 64)([&](auto... a) { two_barriers_kernel(a...); })(out.p),
                       doctest::Contains("two different __syncthreads"), std::logic_error);
  CHECK_THROWS_WITH_AS(::wanwu::emu::launch(1, 32)([&](auto... a) { mixed_mask_kernel(a...); })(out.p),
                       doctest::Contains("different masks"), std::logic_error);
  // a host pointer handed to a kernel, or copied from as if it were the device's
  std::vector<int> host(64, 0);
  CHECK_THROWS_WITH_AS(::wanwu::emu::launch(1, 32)([&](auto... a) { index_kernel(a...); })(
                           reinterpret_cast<unsigned*>(host.data())),
                       doctest::Contains("neither device nor pinned memory"), std::logic_error);
  CHECK(cudaMemcpy(host.data(), host.data() + 32, 16, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  (void)cudaGetLastError();
  // the emulator is usable after a kernel that threw
  DeviceBuffer<double> v(std::vector<double>(32, 1.0)), w(std::vector<double>(32, 0.0));
  ::wanwu::emu::launch(1, 32)([&](auto... a) { warp_sum_kernel(a...); })(v.p, w.p);
  CHECK(w.host()[7] == 32.0);
}
