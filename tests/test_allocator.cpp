// The CPU caching allocator: size classes, reuse, statistics, alignment, cache limit.
#include <cstdint>

#include "harness.hpp"

using namespace wanwu;

TEST_CASE("size classes bound the waste") {
  for (size_t n : {1ul, 63ul, 64ul, 65ul, 4096ul, 4097ul, 10000ul, 1ul << 20, (1ul << 20) + 1, 3000000ul, 5000000ul,
                   (64ul << 20) + 3}) {
    const size_t r = CpuCachingAllocator::round_size(n);
    CAPTURE(n);
    CHECK(r >= n);
    CHECK(r % 64 == 0);
    CHECK(static_cast<double>(r) <= 1.25 * static_cast<double>(n) + 64 * 1024 * 32.0);  // <= 25% (or 2 MiB)
    CHECK(CpuCachingAllocator::round_size(r) == r);
  }
}

TEST_CASE("freed blocks are reused, statistics track current and peak") {
  CpuCachingAllocator a(size_t(1) << 30);
  void* p = a.allocate(1000);
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  CHECK(a.stats().allocated == 1024);
  a.deallocate(p, 1000);
  CHECK(a.stats().allocated == 0);
  CHECK(a.cached_bytes() == 1024);
  void* q = a.allocate(1010);  // same size class
  CHECK(q == p);
  CHECK(a.stats().cache_hits == 1);
  void* big = a.allocate(size_t(8) << 20);
  CHECK(reinterpret_cast<uintptr_t>(big) % (2 << 20) == 0);  // huge-page aligned
  CHECK(a.stats().peak_allocated == 1024 + (size_t(8) << 20));
  a.deallocate(big, size_t(8) << 20);
  a.deallocate(q, 1010);
  CHECK(a.stats().allocated == 0);
  CHECK(a.stats().peak_allocated == 1024 + (size_t(8) << 20));
  a.reset_peak();
  CHECK(a.stats().peak_allocated == 0);
  a.empty_cache();
  CHECK(a.cached_bytes() == 0);
  CHECK(a.stats().reserved == 0);
  CHECK(a.allocate(0) == nullptr);
}

TEST_CASE("the cache limit is respected") {
  CpuCachingAllocator a(4096);
  void* p1 = a.allocate(4096);
  void* p2 = a.allocate(4096);
  a.deallocate(p1, 4096);
  a.deallocate(p2, 4096);  // over the limit: returned to the system
  CHECK(a.cached_bytes() == 4096);
  CHECK(a.stats().reserved == 4096);
}

TEST_CASE("tensors come from the process allocator and give their memory back") {
  const size_t before = cpu_allocator().stats().allocated;
  {
    const Tensor t = empty({1000, 1000});
    CHECK(cpu_allocator().stats().allocated >= before + 4000000);
    CHECK(memory_stats(Device::cpu()).allocated >= before + 4000000);
  }
  CHECK(cpu_allocator().stats().allocated == before);
  // steady state: a loop of same-sized ops stops asking the system for memory
  Tensor x = ones({256, 256});
  for (int i = 0; i < 3; ++i) x = x * 1.0;
  const auto s0 = cpu_allocator().stats();
  for (int i = 0; i < 10; ++i) x = x * 1.0;
  const auto s1 = cpu_allocator().stats();
  CHECK(s1.reserved == s0.reserved);
  CHECK(s1.cache_hits - s0.cache_hits >= 10);
}

TEST_CASE("pinned host memory: pinned tensors where a CUDA device exists, a clear error elsewhere") {
  const Tensor t = arange(0, 24, 1, TensorOptions(DType::f32)).reshape({2, 3, 4});
  CHECK_FALSE(is_pinned(t));
  if (pinned_memory_available()) {
    const Tensor p = pin_memory(t);
    CHECK(is_pinned(p));
    CHECK(p.tolist<float>() == t.tolist<float>());
    CHECK(is_pinned(empty_pinned({5}, DType::i64)));
  } else {
    CHECK_THROWS_WITH_AS(pin_memory(t), doctest::Contains("pinned host memory needs the CUDA backend"), DeviceError);
    CHECK_THROWS_AS(empty_pinned({5}, DType::f32), DeviceError);
  }
}
