// The CUDA emulator's host side (see emu_device.hpp): the fiber scheduler that runs a launch's
// threads, and the CUDA runtime, cuBLAS(Lt) and cuDNN entry points the CUDA backend calls, with
// "device memory" in the host's heap. The libraries are answered by plain reference loops in
// double precision (products rounded once to the output's type), so what the emulated parity
// suite checks is wanwu's own side of each call: descriptors, strides, transposes, batch strides,
// epilogues, workspaces and fallbacks. cuDNN's graph API answers NOT_SUPPORTED, which sends
// f16/bf16 convolutions down the legacy path, as on a GPU where no graph plan qualifies.
#include <sys/mman.h>
#include <ucontext.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "emu_device.hpp"
#include "emu_profile.hpp"

// Under AddressSanitizer (the emulated suite's memcheck) every switch between the scheduler's
// stack and a fiber's is announced, so ASan tracks which stack is live.
#if defined(__SANITIZE_ADDRESS__)
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
}
#define WANWU_EMU_START_SWITCH(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define WANWU_EMU_FINISH_SWITCH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
// a reused fiber stack still carries the poisoned redzones of the frames of the thread before
#define WANWU_EMU_UNPOISON(p, n) __asan_unpoison_memory_region(p, n)
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, size_t size);
#else
#define WANWU_EMU_UNPOISON(p, n) ((void)0)
#define WANWU_EMU_START_SWITCH(save, bottom, size) ((void)0)
#define WANWU_EMU_FINISH_SWITCH(save, bottom, size) ((void)0)
#endif

// Switching fibers: on x86-64 a few instructions that save the callee-saved registers and the
// floating-point control words on the old stack and restore them from the new one (glibc's
// swapcontext makes a sigprocmask system call per switch, and AddressSanitizer intercepts it to
// clear the shadow of the whole new stack: a block of 256 threads at a shuffle switched 5,000
// times); ucontext elsewhere.
#if defined(__x86_64__)
#define WANWU_EMU_ASM_SWITCH 1
extern "C" void wanwu_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl wanwu_emu_switch
  .type wanwu_emu_switch, @function
wanwu_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size wanwu_emu_switch, .-wanwu_emu_switch
)");
#endif

namespace wanwu::emu {
namespace {

constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 64 * 1024;
constexpr size_t kGuard = 4096;  // the lowest page of each fiber's stack: an overflow faults

struct Warp {
  unsigned exists = 0, alive = 0;  // lane masks
  int arrived = 0;
  const char* site = nullptr;  // the shuffle the arrived lanes wait at, and its mask
  unsigned mask = 0;
  unsigned gen = 0;
  uint64_t slot[32] = {};
};

struct Fiber {
  bool dirty = true;  // its stack slot may hold poisoned redzones anywhere (new, or abandoned mid-kernel)
#if WANWU_EMU_ASM_SWITCH
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  void* fake_stack = nullptr;  // ASan's, while the fiber is switched out
  uint3 idx;
  int linear = 0;
  bool done = false;
};

struct Block {
  dim3 grid, dim;
  uint3 idx;
  int n = 0, alive = 0, arrived = 0;
  unsigned gen = 0;
  const char* site = nullptr;  // the __syncthreads the arrived threads wait at
  uint64_t events = 0;  // barriers released and threads finished: progress, for deadlock detection
  int current = -1;
  Warp warps[kMaxThreads / 32];
  Fiber fibers[kMaxThreads];
  char* stacks = nullptr;
#if WANWU_EMU_ASM_SWITCH
  void* sched_sp = nullptr;
#else
  ucontext_t sched;
#endif
  void* sched_fake_stack = nullptr;
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
  const std::function<void()>* body = nullptr;
  std::exception_ptr error;
};

thread_local Block* g_block = nullptr;
thread_local cudaError_t g_last_error = cudaSuccess;

Block& block() {
  if (!g_block) throw std::logic_error("CUDA emulator: a device function was called outside a kernel");
  return *g_block;
}
Fiber& fiber() { return block().fibers[block().current]; }

[[noreturn]] void fail(const std::string& what) {
  const Block& b = block();
  const Fiber& f = b.fibers[b.current];
  throw std::logic_error("CUDA emulator: " + what + " (block " + std::to_string(b.idx.x) + "," +
                         std::to_string(b.idx.y) + "," + std::to_string(b.idx.z) + ", thread " +
                         std::to_string(f.idx.x) + "," + std::to_string(f.idx.y) + "," + std::to_string(f.idx.z) + ")");
}

void yield() {
  Block& b = block();
  Fiber& f = b.fibers[b.current];
  WANWU_EMU_START_SWITCH(&f.fake_stack, b.sched_bottom, b.sched_size);
#if WANWU_EMU_ASM_SWITCH
  wanwu_emu_switch(&f.sp, b.sched_sp);
#else
  swapcontext(&f.ctx, &b.sched);
#endif
  WANWU_EMU_FINISH_SWITCH(f.fake_stack, &b.sched_bottom, &b.sched_size);
}

void fiber_entry() {
  Block& b = *g_block;
  WANWU_EMU_FINISH_SWITCH(nullptr, &b.sched_bottom, &b.sched_size);
  Fiber& f = b.fibers[b.current];
  try {
    (*b.body)();
  } catch (...) {
    if (!b.error) b.error = std::current_exception();
  }
  f.done = true;
  --b.alive;
  b.warps[f.linear / 32].alive &= ~(1u << (f.linear % 32));
  ++b.events;
  // a barrier the rest of the block waits at completes without the thread that left
  if (b.arrived > 0 && b.arrived == b.alive) {
    b.arrived = 0;
    ++b.gen;
  }
  WANWU_EMU_START_SWITCH(nullptr, b.sched_bottom, b.sched_size);  // this fiber's stack is done with
#if WANWU_EMU_ASM_SWITCH
  wanwu_emu_switch(&f.sp, b.sched_sp);  // never resumed
  __builtin_unreachable();
#endif
}  // (ucontext) returns to the scheduler through uc_link

#if WANWU_EMU_ASM_SWITCH
// A fresh fiber's stack as wanwu_emu_switch leaves a suspended one: the control words, six
// registers, then fiber_entry as the return address, with the stack aligned as at a call.
void* fresh_stack(char* base, size_t size, bool& dirty) {
  // A fiber that ran to its end returned from every frame but fiber_entry's, so only the stack's
  // top holds poisoned redzones; one abandoned mid-kernel (a thread threw) may have left them
  // anywhere. Unpoisoning 64 KB of shadow for every CUDA thread was most of the emulator's time.
  // The lowest page is the guard (below).
  constexpr size_t kTop = 4096;
  if (dirty) WANWU_EMU_UNPOISON(base + kGuard, size - kGuard);
  else WANWU_EMU_UNPOISON(base + size - kTop, kTop);
  dirty = false;
  auto* top = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(base + size)) & ~uintptr_t(15));
  *--top = 0;  // fiber_entry's own return address: it never returns
  *--top = reinterpret_cast<uint64_t>(&fiber_entry);
  for (int r = 0; r < 6; ++r) *--top = 0;  // rbp rbx r12 r13 r14 r15
  uint32_t mxcsr = 0;
  uint16_t fpucw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  *--top = uint64_t(mxcsr) | (uint64_t(fpucw) << 32);
  return top;
}
#endif

Block& block_for_thread() {
  thread_local Block* b = [] {
    auto* p = new Block;
    void* mem = mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) throw std::runtime_error("CUDA emulator: cannot map the fibers' stacks");
    p->stacks = static_cast<char*>(mem);
    for (int t = 0; t < kMaxThreads; ++t)
      if (mprotect(p->stacks + static_cast<size_t>(t) * kStackBytes, kGuard, PROT_NONE) != 0)
        throw std::runtime_error("CUDA emulator: cannot protect a fiber stack's guard page");
    return p;
  }();
  return *b;
}

void run_block(Block& b) {
  b.alive = b.n;
  b.arrived = 0;
  b.error = nullptr;
  for (auto& w : b.warps) w = Warp{};
  for (int t = 0; t < b.n; ++t) {
    Fiber& f = b.fibers[t];
    f.linear = t;
    f.idx = uint3{static_cast<unsigned>(t % b.dim.x), static_cast<unsigned>(t / b.dim.x % b.dim.y),
                  static_cast<unsigned>(t / (b.dim.x * b.dim.y))};
    f.done = false;
    b.warps[t / 32].exists |= 1u << (t % 32);
#if WANWU_EMU_ASM_SWITCH
    f.sp = fresh_stack(b.stacks + static_cast<size_t>(t) * kStackBytes, kStackBytes, f.dirty);
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = b.stacks + static_cast<size_t>(t) * kStackBytes;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &b.sched;
    makecontext(&f.ctx, fiber_entry, 0);
#endif
  }
  for (auto& w : b.warps) w.alive = w.exists;
  int remaining = b.n;
  bool first = true;
  // Odd blocks run their threads last to first: a kernel that reads what another thread wrote
  // without a barrier between gets the value in one order and not in the other.
  const bool reverse = (b.idx.x + b.idx.y + b.idx.z) % 2 == 1;
  while (remaining > 0) {
    const uint64_t before = b.events;
    for (int i = 0; i < b.n; ++i) {
      const int t = reverse ? b.n - 1 - i : i;
      if (b.fibers[t].done) continue;
      b.current = t;
      WANWU_EMU_START_SWITCH(&b.sched_fake_stack, b.stacks + static_cast<size_t>(t) * kStackBytes, kStackBytes);
#if WANWU_EMU_ASM_SWITCH
      wanwu_emu_switch(&b.sched_sp, b.fibers[t].sp);
#else
      swapcontext(&b.sched, &b.fibers[t].ctx);
#endif
      WANWU_EMU_FINISH_SWITCH(b.sched_fake_stack, nullptr, nullptr);
      if (b.fibers[t].done) --remaining;
    }
    // a thread that threw ends the kernel, as a fault ends one on a GPU; the block's other
    // fibers are abandoned where they wait (their stacks are reinitialized by the next launch)
    if (b.error) break;
    if (!first && remaining > 0 && b.events == before) {
      b.current = -1;
      for (int t = 0; t < b.n; ++t) b.fibers[t].dirty = b.fibers[t].dirty || !b.fibers[t].done;
      throw std::logic_error("CUDA emulator: deadlock in block " + std::to_string(b.idx.x) + "," +
                             std::to_string(b.idx.y) + "," + std::to_string(b.idx.z) +
                             ": threads wait at a __syncthreads or warp shuffle that the others never reach");
    }
    first = false;
  }
  b.current = -1;
  for (int t = 0; t < b.n; ++t) b.fibers[t].dirty = b.fibers[t].dirty || !b.fibers[t].done;
  if (b.error) std::rethrow_exception(b.error);
}

}  // namespace

namespace {
std::mutex g_prof_mu;
std::atomic<bool> g_prof_on{false};
std::map<std::string, ProfileRow> g_prof;
}  // namespace

bool profiling() { return g_prof_on.load(std::memory_order_relaxed); }
void profile_record(const char* name, uint64_t threads, uint64_t bytes) {
  if (!profiling()) return;
  std::lock_guard<std::mutex> lock(g_prof_mu);
  ProfileRow& r = g_prof[name];
  r.name = name;
  r.calls += 1;
  r.threads += threads;
  r.bytes += bytes;
}
void profile_start() {
  std::lock_guard<std::mutex> lock(g_prof_mu);
  g_prof.clear();
  g_prof_on = true;
}
std::vector<ProfileRow> profile_stop() {
  std::lock_guard<std::mutex> lock(g_prof_mu);
  g_prof_on = false;
  std::vector<ProfileRow> rows;
  for (auto& [k, r] : g_prof) rows.push_back(r);
  std::sort(rows.begin(), rows.end(), [](const ProfileRow& a, const ProfileRow& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.name < b.name;
  });
  return rows;
}

bool launch_config_ok(const LaunchConfig& c) {
  const uint64_t threads = uint64_t(c.block.x) * c.block.y * c.block.z;
  if (threads == 0 || threads > kMaxThreads || c.block.z > 64 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 ||
      c.grid.x > 0x7fffffffu || c.grid.y > 65535 || c.grid.z > 65535 || c.smem > 48 * 1024) {
    g_last_error = cudaErrorInvalidConfiguration;
    return false;
  }
  return true;
}

void run_kernel(const LaunchConfig& c, const std::function<void()>& body) {
  const uint64_t threads = uint64_t(c.block.x) * c.block.y * c.block.z;
  if (!launch_config_ok(c)) return;
  if (g_block) throw std::logic_error("CUDA emulator: a kernel launched from inside a kernel");
  if (c.name) profile_record(c.name, threads * c.grid.x * c.grid.y * c.grid.z, c.bytes);
  Block& b = block_for_thread();
  b.grid = c.grid;
  b.dim = c.block;
  b.n = static_cast<int>(threads);
  b.body = &body;
  g_block = &b;
  try {
    for (unsigned z = 0; z < c.grid.z; ++z)
      for (unsigned y = 0; y < c.grid.y; ++y)
        for (unsigned x = 0; x < c.grid.x; ++x) {
          b.idx = uint3{x, y, z};
          run_block(b);
        }
  } catch (...) {
    g_block = nullptr;
    throw;
  }
  g_block = nullptr;
}

const uint3& thread_idx() { return fiber().idx; }
const uint3& block_idx() { return block().idx; }
const dim3& block_dim() { return block().dim; }
const dim3& grid_dim() { return block().grid; }
int lane_id() { return fiber().linear % 32; }

namespace {
bool same_site(const char* a, const char* b) { return a == b || std::strcmp(a, b) == 0; }
}  // namespace

void sync_block(const char* site) {
  Block& b = block();
  const unsigned g = b.gen;
  if (b.arrived == 0) b.site = site;
  else if (!same_site(b.site, site))
    fail(std::string("threads of a block wait at two different __syncthreads (") + b.site + " and " + site + ")");
  if (++b.arrived == b.alive) {
    b.arrived = 0;
    ++b.gen;
    ++b.events;
    return;
  }
  while (b.gen == g) yield();
}

namespace {
void sync_warp(Warp& w, unsigned required) {
  Block& b = block();
  const unsigned g = w.gen;
  if (++w.arrived == std::popcount(required)) {
    w.arrived = 0;
    ++w.gen;
    ++b.events;
    return;
  }
  while (w.gen == g) yield();
}
}  // namespace

uint64_t warp_exchange(unsigned mask, uint64_t mine, int src, const char* site) {
  Block& b = block();
  const Fiber& f = fiber();
  const int lane = f.linear % 32;
  Warp& w = b.warps[f.linear / 32];
  if (!(mask >> lane & 1u)) fail("a warp shuffle called by a lane outside its mask");
  const unsigned required = mask & w.exists;
  if (required != mask) fail("a warp shuffle's mask names lanes past the end of the block");
  if ((required & w.alive) != required) fail("a warp shuffle's mask names a lane that has exited");
  if (w.arrived == 0) {
    w.site = site;
    w.mask = mask;
  } else if (!same_site(w.site, site)) {
    fail(std::string("lanes of a warp shuffle at two different calls (") + w.site + " and " + site + ")");
  } else if (w.mask != mask) {
    fail("lanes of a warp shuffle pass different masks");
  }
  w.slot[lane] = mine;
  sync_warp(w, required);
  if (!(required >> src & 1u)) fail("a warp shuffle reads a lane outside its mask");
  const uint64_t got = w.slot[src];
  sync_warp(w, required);
  return got;
}

}  // namespace wanwu::emu

// ---------------------------------------------------------------------------------------------
// CUDA runtime: one device, every stream synchronous, memory in the host's heap.
namespace {

std::mutex g_mem_mu;
std::map<void*, size_t> g_live;  // device allocations and their sizes
size_t g_live_bytes = 0;
std::map<void*, size_t> g_pinned;  // cudaHostAlloc's blocks

// 256-byte aligned like cudaMalloc's blocks, but exactly n bytes long: under AddressSanitizer a
// kernel that reads or writes past a tensor's end is reported (the memcheck of the emulated run),
// where a GPU's allocator granule would have hidden it.
void* emu_alloc(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, 256, std::max<size_t>(n, 1)) != 0) return nullptr;
  std::lock_guard<std::mutex> lock(g_mem_mu);
  g_live[p] = std::max<size_t>(n, 1);
  g_live_bytes += std::max<size_t>(n, 1);
  return p;
}
cudaError_t emu_free(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    auto it = g_live.find(p);
    if (it == g_live.end()) return cudaErrorInvalidValue;
    g_live_bytes -= it->second;
    g_live.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}

// Whether p lies in (or just past the end of) a block of `m`.
bool within(const std::map<void*, size_t>& m, const void* p) {
  auto it = m.upper_bound(const_cast<void*>(p));
  if (it == m.begin()) return false;
  --it;
  return static_cast<const char*>(p) <= static_cast<const char*>(it->first) + it->second;
}
bool is_device(const void* p) {
  std::lock_guard<std::mutex> lock(g_mem_mu);
  return within(g_live, p);
}

struct EmuEvent {
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
};
thread_local int g_device = 0;
int g_pool_dummy = 0;

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) wanwu::emu::g_last_error = e;
  return e;
}

// Stream capture: one stream recorded at a time (wanwu records one device's stream). Work sent to
// it is kept, in order, for the graph's replays; the calls CUDA refuses on a capturing thread (a
// wait, cudaMalloc outside the relaxed mode) invalidate the capture, as on a GPU, so that the
// capture's end reports it.
struct EmuGraph {
  std::vector<std::function<void()>> ops;
};
struct Capture {
  cudaStream_t stream = nullptr;
  std::thread::id thread;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  EmuGraph* graph = nullptr;
  cudaError_t invalid = cudaSuccess;
};
std::mutex g_capture_mu;
Capture g_capture;
thread_local cudaStreamCaptureMode t_capture_mode = cudaStreamCaptureModeGlobal;

bool capturing_stream(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_capture_mu);
  return g_capture.graph && g_capture.stream == s;
}
// For a call CUDA prohibits on a thread that is capturing in the global or thread-local mode.
cudaError_t unsafe_call() {
  std::lock_guard<std::mutex> lock(g_capture_mu);
  if (!g_capture.graph || g_capture.thread != std::this_thread::get_id() ||
      g_capture.mode == cudaStreamCaptureModeRelaxed || t_capture_mode == cudaStreamCaptureModeRelaxed)
    return cudaSuccess;
  g_capture.invalid = cudaErrorStreamCaptureUnsupported;
  return set_error(cudaErrorStreamCaptureUnsupported);
}
// A wait for, or query of, the stream being captured: illegal in every mode.
cudaError_t sync_call(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_capture_mu);
  if (!g_capture.graph || (s != g_capture.stream && g_capture.thread != std::this_thread::get_id()))
    return cudaSuccess;
  if (s != g_capture.stream && g_capture.mode == cudaStreamCaptureModeRelaxed) return cudaSuccess;
  g_capture.invalid = cudaErrorStreamCaptureUnsupported;
  return set_error(cudaErrorStreamCaptureUnsupported);
}

}  // namespace

namespace wanwu::emu {
bool record(cudaStream_t stream, std::function<void()> op, const char* what) {
  std::lock_guard<std::mutex> lock(g_capture_mu);
  if (!g_capture.graph) return false;
  if (g_capture.stream != stream) {
    if (g_capture.thread == std::this_thread::get_id())
      throw std::logic_error(std::string("CUDA emulator: ") + what +
                             " was sent to another stream during a capture: on a GPU it would run now, once, not "
                             "at each replay of the graph");
    return false;
  }
  g_capture.graph->ops.push_back(std::move(op));
  return true;
}
}  // namespace wanwu::emu

namespace wanwu::emu {
uint64_t pointer_extent(const void* p) {
  if (!p) return 0;
  std::lock_guard<std::mutex> lock(g_mem_mu);
  auto it = g_live.upper_bound(const_cast<void*>(p));
  if (it == g_live.begin()) return 0;
  --it;
  const char *b = static_cast<const char*>(it->first), *q = static_cast<const char*>(p);
  return q < b + it->second ? static_cast<uint64_t>(b + it->second - q) : 0;
}
// A library or runtime call in the profile, with the bytes its pointers reach.
void profile_call(const char* name, std::initializer_list<const void*> ptrs) {
  if (!profiling()) return;
  uint64_t bytes = 0;
  for (const void* p : ptrs) bytes += pointer_extent(p);
  profile_record(name, 0, bytes);
}
void check_kernel_pointer(const void* p, int index) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(g_mem_mu);
  if (within(g_live, p) || within(g_pinned, p)) return;  // pinned host memory is mapped (UVA)
  throw std::logic_error("CUDA emulator: kernel argument " + std::to_string(index) +
                         " points to neither device nor pinned memory: a GPU would fault on it");
}
}  // namespace wanwu::emu

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = g_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  g_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "wanwu CUDA emulator");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 4;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsPerMultiProcessor = 2048;
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->regsPerBlock = 65536;
  p->totalGlobalMem = size_t(8) << 30;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->l2CacheSize = 4 << 20;
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
  const cudaError_t e = wanwu::emu::g_last_error;
  wanwu::emu::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return wanwu::emu::g_last_error; }
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
    default: return "unknown error (CUDA emulator)";
  }
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  std::lock_guard<std::mutex> lock(g_capture_mu);
  if (g_capture.graph) return set_error(cudaErrorIllegalState);
  g_capture = Capture{s, std::this_thread::get_id(), mode, new EmuGraph, cudaSuccess};
  t_capture_mode = mode;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  std::lock_guard<std::mutex> lock(g_capture_mu);
  if (!g_capture.graph || g_capture.stream != s) return set_error(cudaErrorIllegalState);
  const cudaError_t invalid = g_capture.invalid;
  EmuGraph* g = g_capture.graph;
  g_capture = Capture{};
  t_capture_mode = cudaStreamCaptureModeGlobal;
  if (invalid != cudaSuccess) {
    delete g;
    *graph = nullptr;
    return set_error(cudaErrorStreamCaptureInvalidated);
  }
  *graph = reinterpret_cast<cudaGraph_t>(g);
  return cudaSuccess;
}
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  std::swap(*mode, t_capture_mode);
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!graph) return set_error(cudaErrorInvalidValue);
  *exec = reinterpret_cast<cudaGraphExec_t>(new EmuGraph(*reinterpret_cast<EmuGraph*>(graph)));
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete reinterpret_cast<EmuGraph*>(graph);
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete reinterpret_cast<EmuGraph*>(exec);
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return set_error(cudaErrorInvalidValue);
  if (capturing_stream(s)) return set_error(cudaErrorStreamCaptureUnsupported);  // wanwu never nests graphs
  wanwu::emu::profile_record("cudaGraphLaunch", 0, 0);
  for (const auto& op : reinterpret_cast<EmuGraph*>(exec)->ops) op();
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t n) {
  if (const cudaError_t e = unsafe_call()) return e;
  *p = emu_alloc(n);
  return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
// wanwu's allocator serves a capture from the graph's own pool (kernels/graph_pool.cuh): a stream
// allocation on the captured stream would be a graph memory node, which it never means to make.
cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t s) {
  if (capturing_stream(s)) throw std::logic_error("CUDA emulator: cudaMallocAsync on a stream being captured");
  void* q = emu_alloc(n);
  if (!q) return set_error(cudaErrorMemoryAllocation);
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (const cudaError_t e = unsafe_call()) return e;
  return set_error(emu_free(p));
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (capturing_stream(s)) throw std::logic_error("CUDA emulator: cudaFreeAsync on a stream being captured");
  return set_error(emu_free(p));
}
cudaError_t cudaHostAlloc(void** p, size_t n, unsigned int) {
  if (const cudaError_t e = unsafe_call()) return e;
  if (posix_memalign(p, 256, std::max<size_t>(n, 1)) != 0) return set_error(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(g_mem_mu);
  g_pinned[*p] = std::max<size_t>(n, 1);
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (g_pinned.erase(p) == 0) return set_error(cudaErrorInvalidValue);
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  *a = cudaPointerAttributes{};
  std::lock_guard<std::mutex> lock(g_mem_mu);
  a->type = within(g_live, p)     ? cudaMemoryTypeDevice
            : within(g_pinned, p) ? cudaMemoryTypeHost
                                  : cudaMemoryTypeUnregistered;
  a->device = 0;
  a->devicePointer = a->type == cudaMemoryTypeUnregistered ? nullptr : const_cast<void*>(p);
  a->hostPointer = a->type == cudaMemoryTypeHost ? const_cast<void*>(p) : nullptr;
  return cudaSuccess;
}
// The direction must match where the pointers are, as on a GPU, where a host address handed over
// as device memory faults: here the copy would succeed and hide it.
namespace {
cudaError_t copy_now(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  if (n == 0) return cudaSuccess;
  const bool dd = is_device(dst), sd = is_device(src);
  const bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToDevice && dd && !sd) ||
                  (kind == cudaMemcpyDeviceToHost && !dd && sd) || (kind == cudaMemcpyDeviceToDevice && dd && sd) ||
                  (kind == cudaMemcpyHostToHost && !dd && !sd);
  if (!ok) return set_error(cudaErrorInvalidValue);
  wanwu::emu::profile_record(dd && sd ? "cudaMemcpy D2D" : dd ? "cudaMemcpy H2D" : sd ? "cudaMemcpy D2H" : "cudaMemcpy H2H",
                             0, dd && sd ? 2 * n : n);
  std::memmove(dst, src, n);
  return cudaSuccess;
}
void set_now(void* p, int v, size_t n) {
  wanwu::emu::profile_record("cudaMemset", 0, n);
  if (n) std::memset(p, v, n);
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  if (const cudaError_t e = unsafe_call()) return e;
  return copy_now(dst, src, n, kind);
}
// Recorded, a copy reads its source when the graph runs, as a memcpy node does.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind k, cudaStream_t s) {
  if (wanwu::emu::record(s, [=] { (void)copy_now(dst, src, n, k); }, "cudaMemcpyAsync")) return cudaSuccess;
  return copy_now(dst, src, n, k);
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
  if (const cudaError_t e = unsafe_call()) return e;
  set_now(p, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s) {
  if (!wanwu::emu::record(s, [=] { set_now(p, v, n); }, "cudaMemsetAsync")) set_now(p, v, n);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int) {
  *pool = reinterpret_cast<cudaMemPool_t>(&g_pool_dummy);
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t, cudaMemPoolAttr attr, void* value) {
  std::lock_guard<std::mutex> lock(g_mem_mu);
  if (attr == cudaMemPoolAttrReleaseThreshold || attr == cudaMemPoolAttrReservedMemCurrent ||
      attr == cudaMemPoolAttrReservedMemHigh || attr == cudaMemPoolAttrUsedMemCurrent ||
      attr == cudaMemPoolAttrUsedMemHigh)
    *static_cast<uint64_t*>(value) = g_live_bytes;
  return cudaSuccess;
}
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t) { return cudaSuccess; }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  *s = reinterpret_cast<cudaStream_t>(new int(0));
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) { return sync_call(s); }
cudaError_t cudaStreamQuery(cudaStream_t s) { return sync_call(s); }
// Waiting on an event recorded outside the capture would tie the graph to work outside it.
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t, unsigned int) {
  if (!capturing_stream(s)) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_capture_mu);
  g_capture.invalid = cudaErrorStreamCaptureIsolation;
  return set_error(cudaErrorStreamCaptureIsolation);
}
cudaError_t cudaDeviceSynchronize(void) { return unsafe_call(); }

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = reinterpret_cast<cudaEvent_t>(new EmuEvent);
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<EmuEvent*>(e);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  auto* ev = reinterpret_cast<EmuEvent*>(e);
  if (!wanwu::emu::record(s, [ev] { ev->t = std::chrono::steady_clock::now(); }, "cudaEventRecord"))
    ev->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return unsafe_call(); }
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(reinterpret_cast<EmuEvent*>(b)->t -
                                                 reinterpret_cast<EmuEvent*>(a)->t)
            .count();
  return cudaSuccess;
}

}  // extern "C"

// ---------------------------------------------------------------------------------------------
// cuBLAS and cuBLASLt: column-major reference products.
namespace {

double load(const void* p, int64_t i, cudaDataType_t t) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_64F: return static_cast<const double*>(p)[i];
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(p)[i]);
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: throw std::logic_error("CUDA emulator: a GEMM operand of an unsupported data type");
  }
}
void store(void* p, int64_t i, cudaDataType_t t, double v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = static_cast<float>(v); return;
    case CUDA_R_64F: static_cast<double*>(p)[i] = v; return;
    case CUDA_R_16F: static_cast<__half*>(p)[i] = __float2half_rn(static_cast<float>(v)); return;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v)); return;
    default: throw std::logic_error("CUDA emulator: a GEMM result of an unsupported data type");
  }
}
// TF32 keeps 10 of f32's 23 mantissa bits (round to nearest even).
double to_tf32(double v) {
  uint32_t b = std::bit_cast<uint32_t>(static_cast<float>(v));
  if ((b & 0x7f800000u) != 0x7f800000u) b = (b + 0xfffu + ((b >> 13) & 1u)) & ~0x1fffu;
  return std::bit_cast<float>(b);
}

struct Operand {
  const void* p;
  cudaDataType_t t;
  bool trans;
  int64_t ld, stride;
  double at(int64_t r, int64_t c, int64_t b) const {  // element (r, c) of op(X)
    return load(p, b * stride + (trans ? c + r * ld : r + c * ld), t);
  }
};

enum class Act { none, relu, gelu };

// C[m, n] (column-major, ldc, batch stride sc) = alpha op(A) op(B) + beta C, then bias[row] and act.
void ref_gemm(int64_t m, int64_t n, int64_t k, int64_t batch, const Operand& A, const Operand& B, void* C,
              cudaDataType_t ct, int64_t ldc, int64_t sc, double alpha, double beta, bool tf32,
              const void* bias, Act act) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) {
        double acc = 0;
        for (int64_t l = 0; l < k; ++l) {
          double x = A.at(i, l, b), y = B.at(l, j, b);
          if (tf32) x = to_tf32(x), y = to_tf32(y);
          acc += x * y;
        }
        const int64_t ci = b * sc + i + j * ldc;
        double v = alpha * acc;
        if (beta != 0) v += beta * load(C, ci, ct);  // beta 0: C is not read (it may hold NaN)
        if (bias) v += load(bias, i, ct);
        if (act == Act::relu) v = v > 0 || std::isnan(v) ? v : 0.0;
        if (act == Act::gelu) v = 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        store(C, ci, ct, v);
      }
}

// cuBLAS's argument checks: leading dimensions at least the stored operands' row counts.
bool blas_sizes_ok(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb, int ldc,
                   int batch) {
  return m >= 0 && n >= 0 && k >= 0 && batch >= 0 && ldc >= std::max(1, m) &&
         lda >= std::max(1, ta == CUBLAS_OP_N ? m : k) && ldb >= std::max(1, tb == CUBLAS_OP_N ? k : n);
}

struct LtDesc {
  cublasComputeType_t compute;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
};
struct LtPreference {
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D: cuBLASLt assumes 256 unless told
};
struct LtLayout {
  cudaDataType_t t;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
  int64_t stride = 0;
};

}  // namespace

struct cublasContext {
  cudaStream_t stream = nullptr;
};
struct cublasLtContext {};

// A library call's work: now, or at each replay when its stream is being captured.
template <class F>
void run_on(cudaStream_t s, const char* what, F&& work) {
  if (!wanwu::emu::record(s, std::function<void()>(work), what)) work();
}

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  *h = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusString(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE (CUDA emulator)";
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const double* alpha, const double* A, int lda, long long sa,
                                         const double* B, int ldb, long long sb, const double* beta, double* C,
                                         int ldc, long long sc, int batch) {
  wanwu::emu::profile_call("cublasDgemmStridedBatched", {A, B, C});
  if (!blas_sizes_ok(ta, tb, m, n, k, lda, ldb, ldc, batch)) return CUBLAS_STATUS_INVALID_VALUE;
  run_on(h->stream, "cublasDgemmStridedBatched", [=, al = *alpha, be = *beta] {
    ref_gemm(m, n, k, batch, Operand{A, CUDA_R_64F, ta == CUBLAS_OP_T, lda, sa},
             Operand{B, CUDA_R_64F, tb == CUBLAS_OP_T, ldb, sb}, C, CUDA_R_64F, ldc, sc, al, be, false, nullptr,
             Act::none);
  });
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType_t at, int lda,
                                          long long sa, const void* B, cudaDataType_t bt, int ldb, long long sb,
                                          const void* beta, void* C, cudaDataType_t ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t) {
  wanwu::emu::profile_call("cublasGemmStridedBatchedEx", {A, B, C});
  if (!blas_sizes_ok(ta, tb, m, n, k, lda, ldb, ldc, batch)) return CUBLAS_STATUS_INVALID_VALUE;
  run_on(h->stream, "cublasGemmStridedBatchedEx",
         [=, al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta)] {
           ref_gemm(m, n, k, batch, Operand{A, at, ta == CUBLAS_OP_T, lda, sa},
                    Operand{B, bt, tb == CUBLAS_OP_T, ldb, sb}, C, ct, ldc, sc, al, be,
                    compute == CUBLAS_COMPUTE_32F_FAST_TF32, nullptr, Act::none);
         });
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  if (scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *d = reinterpret_cast<cublasLtMatmulDesc_t>(new LtDesc{compute});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete reinterpret_cast<LtDesc*>(d);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  LtDesc& x = *reinterpret_cast<LtDesc*>(d);
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
      if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&x.ta, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_TRANSB:
      if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&x.tb, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      if (size != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&x.epilogue, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      if (size != sizeof(void*)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&x.bias, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_INVALID_VALUE;  // an attribute wanwu does not set: a change to mirror here
  }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType t, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (ld < static_cast<int64_t>(std::max<uint64_t>(rows, 1))) return CUBLAS_STATUS_INVALID_VALUE;
  *l = reinterpret_cast<cublasLtMatrixLayout_t>(new LtLayout{t, rows, cols, ld});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete reinterpret_cast<LtLayout*>(l);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  LtLayout& x = *reinterpret_cast<LtLayout*>(l);
  if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && size == sizeof(int32_t)) {
    std::memcpy(&x.batch, buf, size);
    return CUBLAS_STATUS_SUCCESS;
  }
  if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET && size == sizeof(int64_t)) {
    std::memcpy(&x.stride, buf, size);
    return CUBLAS_STATUS_SUCCESS;
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  *p = reinterpret_cast<cublasLtMatmulPreference_t>(new LtPreference);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete reinterpret_cast<LtPreference*>(p);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
  LtPreference& x = *reinterpret_cast<LtPreference*>(p);
  const cublasLtMatmulPreferenceAttributes_t align[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i)
    if (attr == align[i]) {
      if (size != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&x.align[i], buf, size);
    }
  return CUBLAS_STATUS_SUCCESS;
}
// Finds no kernel for 16-bit operands whose leading dimensions are not 16-byte multiples (the
// layouts gemm.cuh sends to cublasGemmStridedBatchedEx instead), so that fallback and the
// epilogue wanwu then applies itself run too; the result carries the alignments it was promised.
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t Adesc,
                                              cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc,
                                              cublasLtMatrixLayout_t Ddesc, cublasLtMatmulPreference_t pref,
                                              int requested, cublasLtMatmulHeuristicResult_t* results,
                                              int* returned) {
  *returned = 0;
  for (cublasLtMatrixLayout_t l : {Adesc, Bdesc, Cdesc, Ddesc}) {
    const LtLayout& x = *reinterpret_cast<const LtLayout*>(l);
    if ((x.t == CUDA_R_16F || x.t == CUDA_R_16BF) && x.ld * 2 % 16 != 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (requested <= 0) return CUBLAS_STATUS_INVALID_VALUE;
  results[0] = cublasLtMatmulHeuristicResult_t{};
  const LtPreference& p = *reinterpret_cast<const LtPreference*>(pref);
  for (int i = 0; i < 4; ++i) results[0].algo.data[i] = p.align[i];
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc,
                              const void* beta, const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo, void* ws,
                              size_t ws_bytes, cudaStream_t stream) {
  wanwu::emu::profile_call("cublasLtMatmul", {A, B, C == D ? nullptr : C, D});
  const LtDesc& d = *reinterpret_cast<const LtDesc*>(desc);
  const LtLayout &la = *reinterpret_cast<const LtLayout*>(Adesc), &lb = *reinterpret_cast<const LtLayout*>(Bdesc);
  const LtLayout &lc = *reinterpret_cast<const LtLayout*>(Cdesc), &ld = *reinterpret_cast<const LtLayout*>(Ddesc);
  const bool at = d.ta == CUBLAS_OP_T, bt = d.tb == CUBLAS_OP_T;
  const int64_t m = static_cast<int64_t>(ld.rows), n = static_cast<int64_t>(ld.cols);
  const int64_t k = static_cast<int64_t>(at ? la.rows : la.cols);
  // the shapes must agree as cuBLASLt requires; wanwu passes C == D
  if ((at ? la.cols : la.rows) != ld.rows || (bt ? lb.cols : lb.rows) != static_cast<uint64_t>(k) ||
      (bt ? lb.rows : lb.cols) != ld.cols || lc.rows != ld.rows || lc.cols != ld.cols || C != D ||
      lc.ld != ld.ld || lc.stride != ld.stride || lc.t != ld.t ||
      la.batch != ld.batch || lb.batch != ld.batch || lc.batch != ld.batch || (ws_bytes > 0 && !ws))
    return CUBLAS_STATUS_INVALID_VALUE;
  // A kernel picked for an alignment the operands do not have may fault on a GPU; here the broken
  // promise is an error, not a silent fallback.
  if (algo) {
    const void* ptrs[4] = {A, B, C, D};
    const LtLayout* lays[4] = {&la, &lb, &lc, &ld};
    for (int i = 0; i < 4; ++i) {
      const uint64_t need = algo->data[i];
      const size_t es = lays[i]->t == CUDA_R_64F ? 8 : lays[i]->t == CUDA_R_32F ? 4 : 2;
      const uintptr_t addr = reinterpret_cast<uintptr_t>(ptrs[i]);
      const uintptr_t stride = lays[i]->batch > 1 ? static_cast<uintptr_t>(lays[i]->stride) * es : 0;
      if (need > 0 && ((addr | stride) % need) != 0)
        throw std::logic_error("CUDA emulator: cublasLtMatmul was promised " + std::to_string(need) +
                               "-byte alignment for operand " + "ABCD"[i] + " that it does not have");
    }
  }
  Act act = Act::none;
  bool bias = false;
  switch (d.epilogue) {
    case CUBLASLT_EPILOGUE_DEFAULT: break;
    case CUBLASLT_EPILOGUE_BIAS: bias = true; break;
    case CUBLASLT_EPILOGUE_RELU: act = Act::relu; break;
    case CUBLASLT_EPILOGUE_RELU_BIAS: act = Act::relu, bias = true; break;
    case CUBLASLT_EPILOGUE_GELU: act = Act::gelu; break;
    case CUBLASLT_EPILOGUE_GELU_BIAS: act = Act::gelu, bias = true; break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (bias && !d.bias) return CUBLAS_STATUS_INVALID_VALUE;
  run_on(stream, "cublasLtMatmul",
         [=, A_ = Operand{A, la.t, at, la.ld, la.stride}, B_ = Operand{B, lb.t, bt, lb.ld, lb.stride},
          batch = ld.batch, dt = ld.t, ldd = ld.ld, sd = ld.stride, al = *static_cast<const float*>(alpha),
          be = *static_cast<const float*>(beta), tf32 = d.compute == CUBLAS_COMPUTE_32F_FAST_TF32,
          bias_ptr = bias ? d.bias : nullptr] {
           ref_gemm(m, n, k, batch, A_, B_, D, dt, ldd, sd, al, be, tf32, bias_ptr, act);
         });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"

// ---------------------------------------------------------------------------------------------
// cuDNN: the legacy convolution API with NHWC reference loops; the graph (backend) API declines.
struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  cudnnDataType_t t = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
  cudnnDataType_t t = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnConvolutionStruct {
  int ph = 0, pw = 0, sh = 1, sw = 1, dh = 1, dw = 1, groups = 1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

constexpr size_t kConvWorkspace = 256;  // what the emulated algorithm asks for, so the plan's workspace is exercised

cudaDataType_t blas_type(cudnnDataType_t t) {
  switch (t) {
    case CUDNN_DATA_FLOAT: return CUDA_R_32F;
    case CUDNN_DATA_DOUBLE: return CUDA_R_64F;
    case CUDNN_DATA_HALF: return CUDA_R_16F;
    case CUDNN_DATA_BFLOAT16: return CUDA_R_16BF;
    default: throw std::logic_error("CUDA emulator: a cuDNN tensor of an unsupported data type");
  }
}

enum class ConvPass { forward, data, filter };

// NHWC x [N, H, W, C], filter [O, KH, KW, C / groups], y [N, Ho, Wo, O]. forward: y = alpha conv(x, w)
// + beta y; data: dx = alpha conv^T(dy, w) + beta dx; filter: dw = alpha sum(dy x) + beta dw.
cudnnStatus_t ref_conv(ConvPass pass, const cudnnTensorStruct& xd, const cudnnFilterStruct& wd,
                       const cudnnConvolutionStruct& cd, const cudnnTensorStruct& yd, const void* alpha_p,
                       const void* beta_p, void* x, void* w, void* y, int algo, void* ws, size_t ws_bytes,
                       bool check_only = false) {
  if (algo != 0) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!ws || ws_bytes < kConvWorkspace) return CUDNN_STATUS_BAD_PARAM;
  const int G = cd.groups, N = xd.n, H = xd.h, W = xd.w, C = xd.c, O = wd.k, KH = wd.h, KW = wd.w, Cg = wd.c;
  const int Ho = yd.h, Wo = yd.w;
  if (yd.n != N || yd.c != O || C != Cg * G || O % G != 0 || xd.t != wd.t || xd.t != yd.t) return CUDNN_STATUS_BAD_PARAM;
  if (Ho != (H + 2 * cd.ph - cd.dh * (KH - 1) - 1) / cd.sh + 1 || Wo != (W + 2 * cd.pw - cd.dw * (KW - 1) - 1) / cd.sw + 1)
    return CUDNN_STATUS_BAD_PARAM;
  if (check_only) return CUDNN_STATUS_SUCCESS;
  const cudaDataType_t t = blas_type(xd.t);
  const double alpha = t == CUDA_R_64F ? *static_cast<const double*>(alpha_p) : *static_cast<const float*>(alpha_p);
  const double beta = t == CUDA_R_64F ? *static_cast<const double*>(beta_p) : *static_cast<const float*>(beta_p);
  const int Og = O / G;
  void* out = pass == ConvPass::forward ? y : pass == ConvPass::data ? x : w;
  const int64_t nx = int64_t(N) * H * W * C, ny = int64_t(N) * Ho * Wo * O, nw = int64_t(O) * KH * KW * Cg;
  const int64_t out_n = pass == ConvPass::forward ? ny : pass == ConvPass::data ? nx : nw;
  // the operands in double first: the loops below then run at the CPU's pace, not the loads'
  // f32 under cuDNN's default math may run on TF32 tensor cores: its inputs rounded to TF32
  const bool tf32 = t == CUDA_R_32F && cd.math != CUDNN_FMA_MATH;
  auto widen = [t, tf32](const void* p, int64_t n) {
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = tf32 ? to_tf32(load(p, i, t)) : load(p, i, t);
    return v;
  };
  const std::vector<double> xv = pass == ConvPass::data ? std::vector<double>() : widen(x, nx);
  const std::vector<double> wv = pass == ConvPass::filter ? std::vector<double>() : widen(w, nw);
  const std::vector<double> yv = pass == ConvPass::forward ? std::vector<double>() : widen(y, ny);
  std::vector<double> acc(static_cast<size_t>(out_n), 0.0);
  for (int n = 0; n < N; ++n)
    for (int oh = 0; oh < Ho; ++oh)
      for (int ow = 0; ow < Wo; ++ow)
        for (int o = 0; o < O; ++o) {
          const int g = o / Og;
          const int64_t yi = ((int64_t(n) * Ho + oh) * Wo + ow) * O + o;
          for (int kh = 0; kh < KH; ++kh) {
            const int ih = oh * cd.sh - cd.ph + kh * cd.dh;
            if (ih < 0 || ih >= H) continue;
            for (int kw = 0; kw < KW; ++kw) {
              const int iw = ow * cd.sw - cd.pw + kw * cd.dw;
              if (iw < 0 || iw >= W) continue;
              const int64_t x0 = ((int64_t(n) * H + ih) * W + iw) * C + g * Cg;
              const int64_t w0 = ((int64_t(o) * KH + kh) * KW + kw) * Cg;
              if (pass == ConvPass::forward) {
                double s = 0;
                for (int c = 0; c < Cg; ++c) s += xv[x0 + c] * wv[w0 + c];
                acc[yi] += s;
              } else if (pass == ConvPass::data) {
                for (int c = 0; c < Cg; ++c) acc[x0 + c] += yv[yi] * wv[w0 + c];
              } else {
                for (int c = 0; c < Cg; ++c) acc[w0 + c] += yv[yi] * xv[x0 + c];
              }
            }
          }
        }
  for (int64_t i = 0; i < out_n; ++i) store(out, i, t, alpha * acc[i] + (beta != 0 ? beta * load(out, i, t) : 0.0));
  return CUDNN_STATUS_SUCCESS;
}

// A convolution now, or, on a stream being captured, checked now and run at each replay with
// the descriptors and scaling factors the call had (the caller may change or destroy them).
cudnnStatus_t conv_on(cudnnHandle_t h, const char* what, ConvPass pass, const cudnnTensorStruct& xd,
                      const cudnnFilterStruct& wd, const cudnnConvolutionStruct& cd, const cudnnTensorStruct& yd,
                      const void* alpha_p, const void* beta_p, void* x, void* w, void* y, int algo, void* ws,
                      size_t ws_bytes) {
  if (!capturing_stream(h->stream))
    return ref_conv(pass, xd, wd, cd, yd, alpha_p, beta_p, x, w, y, algo, ws, ws_bytes);
  const cudnnStatus_t st = ref_conv(pass, xd, wd, cd, yd, alpha_p, beta_p, x, w, y, algo, ws, ws_bytes, true);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  const size_t scale_bytes = xd.t == CUDNN_DATA_DOUBLE ? sizeof(double) : sizeof(float);
  std::array<unsigned char, sizeof(double)> alpha{}, beta{};
  std::memcpy(alpha.data(), alpha_p, scale_bytes);
  std::memcpy(beta.data(), beta_p, scale_bytes);
  wanwu::emu::record(h->stream, [=] {
    (void)ref_conv(pass, xd, wd, cd, yd, alpha.data(), beta.data(), x, w, y, algo, ws, ws_bytes);
  }, what);
  return CUDNN_STATUS_SUCCESS;
}

template <class Perf>
cudnnStatus_t ranked(const cudnnConvolutionStruct& cd, int requested, int* returned, Perf* perf) {
  // a first candidate cuDNN declines, then one that runs with a workspace: the choice's loop and
  // the plan's workspace both take part
  const int n = std::min(requested, 2);
  for (int i = 0; i < n; ++i) {
    perf[i] = Perf{};
    perf[i].algo = static_cast<decltype(perf[i].algo)>(i == 0 ? 1 : 0);
    perf[i].status = i == 0 ? CUDNN_STATUS_NOT_SUPPORTED : CUDNN_STATUS_SUCCESS;
    perf[i].memory = i == 0 ? 0 : kConvWorkspace;
    perf[i].mathType = cd.math;
  }
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
  *h = new cudnnContext;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}
const char* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    default: return "cuDNN error (CUDA emulator)";
  }
}
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  *d = new cudnnTensorStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n,
                                         int c, int h, int w) {
  if (f != CUDNN_TENSOR_NHWC || n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnTensorStruct{t, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  *d = new cudnnFilterStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k,
                                         int c, int h, int w) {
  if (f != CUDNN_TENSOR_NHWC || k <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnFilterStruct{t, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  *d = new cudnnConvolutionStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u, int v, int dh,
                                              int dw, cudnnConvolutionMode_t mode, cudnnDataType_t) {
  if (mode != CUDNN_CROSS_CORRELATION || ph < 0 || pw < 0 || u <= 0 || v <= 0 || dh <= 0 || dw <= 0)
    return CUDNN_STATUS_BAD_PARAM;
  d->ph = ph, d->pw = pw, d->sh = u, d->sw = v, d->dh = dh, d->dw = dw;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
  if (groups <= 0) return CUDNN_STATUS_BAD_PARAM;
  d->groups = groups;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  d->math = m;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                     const cudnnFilterDescriptor_t,
                                                     const cudnnConvolutionDescriptor_t c,
                                                     const cudnnTensorDescriptor_t, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perf) {
  return ranked(*c, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, const cudnnFilterDescriptor_t,
                                                          const cudnnTensorDescriptor_t,
                                                          const cudnnConvolutionDescriptor_t c,
                                                          const cudnnTensorDescriptor_t, const int requested,
                                                          int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  return ranked(*c, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                            const cudnnTensorDescriptor_t,
                                                            const cudnnConvolutionDescriptor_t c,
                                                            const cudnnFilterDescriptor_t, const int requested,
                                                            int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  return ranked(*c, requested, returned, perf);
}
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                      const void* x, const cudnnFilterDescriptor_t wd, const void* w,
                                      const cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t algo,
                                      void* ws, size_t ws_bytes, const void* beta,
                                      const cudnnTensorDescriptor_t yd, void* y) {
  wanwu::emu::profile_call("cudnnConvolutionForward", {x, w, y});
  return conv_on(h, "cudnnConvolutionForward", ConvPass::forward, *xd, *wd, *cd, *yd, alpha, beta,
                 const_cast<void*>(x), const_cast<void*>(w), y, static_cast<int>(algo), ws, ws_bytes);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, const cudnnFilterDescriptor_t wd,
                                           const void* w, const cudnnTensorDescriptor_t dyd, const void* dy,
                                           const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* ws, size_t ws_bytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxd, void* dx) {
  wanwu::emu::profile_call("cudnnConvolutionBackwardData", {w, dy, dx});
  return conv_on(h, "cudnnConvolutionBackwardData", ConvPass::data, *dxd, *wd, *cd, *dyd, alpha, beta, dx,
                 const_cast<void*>(w), const_cast<void*>(dy), static_cast<int>(algo), ws, ws_bytes);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                             const void* x, const cudnnTensorDescriptor_t dyd, const void* dy,
                                             const cudnnConvolutionDescriptor_t cd,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* ws, size_t ws_bytes,
                                             const void* beta, const cudnnFilterDescriptor_t dwd, void* dw) {
  wanwu::emu::profile_call("cudnnConvolutionBackwardFilter", {x, dy, dw});
  return conv_on(h, "cudnnConvolutionBackwardFilter", ConvPass::filter, *xd, *dwd, *cd, *dyd, alpha, beta,
                 const_cast<void*>(x), dw, const_cast<void*>(dy), static_cast<int>(algo), ws, ws_bytes);
}

// The graph API: no engine here, so every f16/bf16 convolution takes the legacy path above.
cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t, cudnnBackendDescriptor_t* d) {
  *d = nullptr;
  return CUDNN_STATUS_NOT_SUPPORTED;
}
cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t) { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t,
                                       cudnnBackendAttributeType_t, int64_t, const void*) {
  return CUDNN_STATUS_NOT_SUPPORTED;
}
cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const, cudnnBackendAttributeName_t,
                                       cudnnBackendAttributeType_t, int64_t, int64_t*, void*) {
  return CUDNN_STATUS_NOT_SUPPORTED;
}
cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t) { return CUDNN_STATUS_NOT_SUPPORTED; }
cudnnStatus_t cudnnBackendExecute(cudnnHandle_t, cudnnBackendDescriptor_t, cudnnBackendDescriptor_t) {
  return CUDNN_STATUS_NOT_SUPPORTED;
}

}  // extern "C"
