// The CPU caching allocator: size classes, reuse, statistics, alignment, cache limit, and the
// segment pool for large blocks (best fit, split, merge of free neighbours) against a model of
// which bytes are live.
#include <cstdint>
#include <cstring>
#include <map>
#include <random>

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
  CHECK(reinterpret_cast<uintptr_t>(big) % (2 << 20) == 0);  // the start of a segment: huge-page aligned
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

TEST_CASE("large blocks are cut from one segment, best fit, and merge with free neighbours") {
  constexpr size_t MiB = size_t(1) << 20;
  CpuCachingAllocator a(size_t(1) << 30);
  char* x = static_cast<char*>(a.allocate(8 * MiB));
  char* y = static_cast<char*>(a.allocate(8 * MiB));
  char* z = static_cast<char*>(a.allocate(8 * MiB - 100));  // rounds to 8 MiB
  CHECK(a.stats().reserved == CpuCachingAllocator::kSegmentMin);  // one 64 MiB segment holds all three
  CHECK(y == x + 8 * MiB);
  CHECK(z == y + 8 * MiB);
  a.deallocate(x, 8 * MiB);
  a.deallocate(y, 8 * MiB);
  // free: [x, x + 16 MiB) merged, and the 40 MiB after z; 12 MiB fits the 16 MiB block best
  char* w = static_cast<char*>(a.allocate(12 * MiB));
  CHECK(w == x);
  char* v = static_cast<char*>(a.allocate(4 * MiB));  // the 4 MiB left of that block
  CHECK(v == x + 12 * MiB);
  CHECK(a.stats().reserved == CpuCachingAllocator::kSegmentMin);
  CHECK(a.stats().allocated == 24 * MiB);
  CHECK(a.cached_bytes() == 40 * MiB);
  // larger than a segment: a segment of its own, rounded to 2 MiB
  void* huge = a.allocate(100 * MiB + 1);
  CHECK(a.stats().reserved == CpuCachingAllocator::kSegmentMin + 102 * MiB);
  a.deallocate(huge, 100 * MiB + 1);
  for (auto [p, n] : {std::pair<char*, size_t>{w, 12 * MiB}, {v, 4 * MiB}, {z, 8 * MiB - 100}}) a.deallocate(p, n);
  CHECK(a.stats().allocated == 0);
  CHECK(a.cached_bytes() == a.stats().reserved);  // every segment whole again
  a.empty_cache();
  CHECK(a.stats().reserved == 0);
  CHECK(a.cached_bytes() == 0);
}

TEST_CASE("a segment left idle above the cache limit goes back to the system") {
  CpuCachingAllocator a(4096);
  void* p = a.allocate(size_t(3) << 20);
  CHECK(a.stats().reserved == CpuCachingAllocator::kSegmentMin);
  a.deallocate(p, size_t(3) << 20);
  CHECK(a.stats().reserved == 0);
  CHECK(a.cached_bytes() == 0);
}

TEST_CASE("random large allocations never overlap, keep their bytes, and reach a steady state") {
  // A model of the live blocks checks that no two overlap and that each keeps the pattern written
  // into it; a repeated sequence of mixed sizes stops asking the system for memory after its
  // first pass, and freeing everything leaves every segment whole.
  constexpr size_t MiB = size_t(1) << 20;
  CpuCachingAllocator a(size_t(1) << 30);
  std::mt19937 rng(3);
  std::vector<std::pair<size_t, bool>> program;  // (size, allocate) or a free of a random live block
  for (int i = 0; i < 400; ++i) program.push_back({MiB + rng() % (12 * MiB), rng() % 2 != 0});
  std::map<char*, std::pair<size_t, unsigned char>> live;
  auto run = [&] {
    std::mt19937 pick(5);
    for (auto [n, alloc] : program) {
      if (alloc || live.empty()) {
        char* p = static_cast<char*>(a.allocate(n));
        REQUIRE(reinterpret_cast<uintptr_t>(p) % 64 == 0);
        auto next = live.lower_bound(p);
        if (next != live.end()) REQUIRE(p + n <= next->first);
        if (next != live.begin()) REQUIRE(std::prev(next)->first + std::prev(next)->second.first <= p);
        const auto tag = static_cast<unsigned char>(pick());
        std::memset(p, tag, n);
        live[p] = {n, tag};
      } else {
        auto it = std::next(live.begin(), static_cast<long>(pick() % live.size()));
        const auto [n2, tag] = it->second;
        REQUIRE(static_cast<unsigned char>(it->first[0]) == tag);
        REQUIRE(static_cast<unsigned char>(it->first[n2 - 1]) == tag);
        a.deallocate(it->first, n2);
        live.erase(it);
      }
    }
    for (auto& [p, e] : live) a.deallocate(p, e.first);
    live.clear();
  };
  run();
  const MemoryStats s0 = a.stats();
  CHECK(a.cached_bytes() == s0.reserved);
  run();
  const MemoryStats s1 = a.stats();
  CHECK(s1.reserved == s0.reserved);
  CHECK(s1.allocations - s0.allocations == s1.cache_hits - s0.cache_hits);  // no system allocation
  CHECK(s0.peak_reserved < 2 * s0.peak_allocated + CpuCachingAllocator::kSegmentMin);
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
