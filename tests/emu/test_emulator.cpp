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

}  // namespace

TEST_CASE("CUDA emulator: block barriers, shared memory and warp shuffles have CUDA's meaning") {
  std::vector<int> in(4 * 256);
  std::iota(in.begin(), in.end(), 1);
  std::vector<int> sums(4, -1);
  ::wanwu::emu::launch(4, 256)([&](auto... a) { block_sum_kernel(a...); })(in.data(), sums.data());
  for (int b = 0; b < 4; ++b) {
    const int first = b * 256 + 1, last = b * 256 + 256;
    CHECK(sums[b] == (first + last) * 256 / 2);
  }

  std::vector<double> v(32), w(32, 0.0);
  for (int i = 0; i < 32; ++i) v[i] = 0.5 * i;
  ::wanwu::emu::launch(1, 32)([&](auto... a) { warp_sum_kernel(a...); })(v.data(), w.data());
  for (double x : w) CHECK(x == 0.5 * 31 * 32 / 2);  // every lane holds the whole sum

  // thread and block indices over 3-D blocks and a 2-D grid
  std::vector<unsigned> ids(6 * 4 * 3 * 2, 0);
  ::wanwu::emu::launch(dim3(3, 2), dim3(4, 3, 2))([&](auto... a) { index_kernel(a...); })(ids.data());
  for (unsigned b = 0; b < 6; ++b)
    for (unsigned t = 0; t < 24; ++t) CHECK(ids[b * 24 + t] == b * 1000 + t);
}

TEST_CASE("CUDA emulator: a bad configuration is a launch error; divergence around a shuffle or barrier throws") {
  (void)cudaGetLastError();
  std::vector<int> out(64, 0);
  ::wanwu::emu::launch(1, 2048)([&](auto... a) { shuffle_after_exit_kernel(a...); })(out.data());
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess);  // read once, as CUDA's
  ::wanwu::emu::launch(dim3(1, 70000), 32)([&](auto... a) { shuffle_after_exit_kernel(a...); })(out.data());
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);

  CHECK_THROWS_WITH_AS(
      ::wanwu::emu::launch(1, 32)([&](auto... a) { shuffle_after_exit_kernel(a...); })(out.data()),
      doctest::Contains("names a lane that has exited"), std::logic_error);
  CHECK_THROWS_WITH_AS(::wanwu::emu::launch(1, 32)([&](auto... a) { divergent_barrier_kernel(a...); })(out.data()),
                       doctest::Contains("deadlock"), std::logic_error);
  CHECK_THROWS_WITH_AS(::wanwu::emu::launch(1, 64)([&](auto... a) { two_barriers_kernel(a...); })(out.data()),
                       doctest::Contains("two different __syncthreads"), std::logic_error);
  // the emulator is usable after a kernel that threw
  std::vector<double> v(32, 1.0), w(32, 0.0);
  ::wanwu::emu::launch(1, 32)([&](auto... a) { warp_sum_kernel(a...); })(v.data(), w.data());
  CHECK(w[7] == 32.0);
}
