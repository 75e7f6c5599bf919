// The CUDA runtime layer: device discovery, host <-> device copies of every dtype, the caching
// allocator's statistics and reuse, stream ordering, and typed errors.
#include <cuda_runtime_api.h>

#include <cmath>
#include <thread>

#include "parity.hpp"

using namespace wanwu;
using cp::kCuda;

TEST_CASE("the CUDA backend is registered and sees a device") {
  CHECK(has_backend(DeviceType::cuda));
  CHECK(cuda_is_available());
  CHECK(backend_for(kCuda).device_count() >= 1);
  CHECK_THROWS_AS(empty({2}, TensorOptions(Device::cuda(999))), DeviceError);
}

TEST_CASE("host <-> device copies round-trip every dtype, contiguous and strided") {
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
    CAPTURE(dt);
    const Tensor h = cp::rnd({3, 5, 7}, -50, 50).to(dt);
    const Tensor d = h.to(kCuda);
    CHECK(d.device() == kCuda);
    cp::compare_exact("round trip", d.cpu(), h);
    // strided device tensors: permute, slice, expand
    cp::compare_exact("permute", d.permute({2, 0, 1}).contiguous().cpu(), h.permute({2, 0, 1}).contiguous());
    cp::compare_exact("slice", d.slice(2, 1, 6, 2).contiguous().cpu(), h.slice(2, 1, 6, 2).contiguous());
    cp::compare_exact("expand", d.slice(0, 0, 1).expand({4, 5, 7}).contiguous().cpu(),
                      h.slice(0, 0, 1).expand({4, 5, 7}).contiguous());
  }
}

TEST_CASE("device-side casts between every pair of dtypes match the CPU") {
  const std::vector<DType> all = {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8,
                                  DType::boolean};
  const Tensor base = floor(cp::rnd({4, 6}, 0, 200));
  for (DType from : all)
    for (DType to : all) {
      CAPTURE(from);
      CAPTURE(to);
      const Tensor h = base.to(from);
      cp::compare_exact("cast", h.to(kCuda).to(to).cpu(), h.to(to));
      cp::compare_exact("strided cast", h.to(kCuda).t().to(to).cpu(), h.t().to(to));
    }
}

TEST_CASE("the caching allocator tracks current and peak memory and reuses freed blocks") {
  backend_for(kCuda).synchronize(0);
  const MemoryStats s0 = memory_stats(kCuda);
  reset_peak_memory_stats(kCuda);
  {
    const Tensor a = empty({1 << 20}, TensorOptions(DType::f32).device(kCuda));  // 4 MiB
    const MemoryStats s1 = memory_stats(kCuda);
    CHECK(s1.allocated >= s0.allocated + (size_t(4) << 20));
    CHECK(s1.peak_allocated >= s1.allocated);
    CHECK(s1.reserved >= s1.allocated);
  }
  const MemoryStats s2 = memory_stats(kCuda);
  CHECK(s2.allocated == s0.allocated);
  CHECK(s2.peak_allocated >= s0.allocated + (size_t(4) << 20));
  // a training-like loop: the same sizes every step; nothing may accumulate
  const Tensor x = cp::rnd({256, 256}).to(kCuda);
  for (int step = 0; step < 1000; ++step) {
    const Tensor y = relu(x * 2.0 + 1.0).sum({1});
    (void)y;
  }
  backend_for(kCuda).synchronize(0);
  const MemoryStats s3 = memory_stats(kCuda);
  CHECK(s3.allocated == s2.allocated + x.nbytes());
  CHECK(s3.reserved <= s2.reserved + (size_t(64) << 20));  // the pool reused its blocks
}

TEST_CASE("work on the stream is ordered: a chain of in-place updates gives the serial result") {
  Tensor d = zeros({1000}, TensorOptions(DType::f32).device(kCuda));
  for (int i = 0; i < 200; ++i) d.add_(1.0);
  const auto v = cp::host_values(d);
  for (double x : v) REQUIRE(x == 200.0);
}

// A bad index or class target is found by the kernel that reads it and raised at the next read
// from the device (kernels/device_check.cuh): the op itself does not wait for the GPU.
TEST_CASE("bad indices and targets on the device raise IndexError at the next read, once, and the device keeps working") {
  const Tensor x = cp::rnd({5, 3}).to(kCuda);
  const Tensor bad = from_vector(std::vector<double>{0, 7}, {2}, DType::i64).to(kCuda);
  Tensor r;
  CHECK_NOTHROW(r = index_select(x, 0, bad));
  CHECK_THROWS_WITH_AS(r.cpu(), doctest::Contains("index_select: index 7 is out of bounds for dimension 0 with size 5"),
                       IndexError);
  CHECK_NOTHROW(r.cpu());  // reported once: the record was cleared
  const Tensor good = from_vector(std::vector<double>{4, 0}, {2}, DType::i64).to(kCuda);
  cp::compare_exact("after the error", index_select(x, 0, good).cpu(), index_select(x.cpu(), 0, good.cpu()));

  // gather, raised by synchronize(); then scatter_add with a negative index, through item()
  const Tensor gi = from_vector(std::vector<double>{0, 1, 3, 2, 0}, {5, 1}, DType::i64).to(kCuda);
  CHECK_NOTHROW((void)gather(x, 1, gi));
  CHECK_THROWS_WITH_AS(backend_for(kCuda).synchronize(0),
                       doctest::Contains("gather: index 3 is out of bounds for dimension 1 with size 3"), IndexError);
  const Tensor si = from_vector(std::vector<double>{1, -2}, {2}, DType::i64).to(kCuda);
  const Tensor acc = zeros({4}, TensorOptions(DType::f32).device(kCuda));
  CHECK_NOTHROW((void)scatter_add(acc, 0, si, ones({2}, TensorOptions(DType::f32).device(kCuda))));
  CHECK_THROWS_WITH_AS((void)acc.sum().item<double>(),
                       doctest::Contains("scatter_add: index -2 is out of bounds for dimension 0 with size 4"),
                       IndexError);

  // class targets: the warp kernel (6 classes) and the block kernel (1000); row 1 is out of range,
  // row 2 ignored. The bad row's loss and gradient are NaN, the others are the CPU's.
  for (int64_t C : {int64_t(6), int64_t(1000)}) {
    CAPTURE(C);
    for (double bad_target : {static_cast<double>(C), -5.0}) {
      CAPTURE(bad_target);
      const Tensor xh = cp::rnd({4, C});
      const Tensor xd = xh.to(kCuda).requires_grad_();
      const Tensor th = from_vector(std::vector<double>{1, bad_target, -100, 0}, {4}, DType::i64);
      CrossEntropyOptions o;
      o.reduction = Reduction::none;
      Tensor loss;
      CHECK_NOTHROW(loss = cross_entropy(xd, th.to(kCuda), o));
      const std::string msg = "cross_entropy: target " + std::to_string(static_cast<int64_t>(bad_target)) +
                              " is out of bounds for " + std::to_string(C) + " classes (valid: 0.." +
                              std::to_string(C - 1) + ", or ignore_index -100)";
      CHECK_THROWS_WITH_AS(loss.cpu(), doctest::Contains(msg.c_str()), IndexError);
      const std::vector<double> l = cp::host_values(loss);
      CHECK(std::isnan(l[1]));
      CHECK(l[2] == 0.0);
      const Tensor ok = from_vector(std::vector<double>{1, 0, -100, 0}, {4}, DType::i64);
      const std::vector<double> ref = cp::host_values(cross_entropy(xh, ok, o));
      CHECK(l[0] == doctest::Approx(ref[0]).epsilon(1e-5));
      CHECK(l[3] == doctest::Approx(ref[3]).epsilon(1e-5));
      (loss * from_vector(std::vector<double>{1, 0, 1, 1}, {4}).to(kCuda)).sum().backward();
      const std::vector<double> g = cp::host_values(xd.grad());
      for (int64_t c = 0; c < C; ++c) {
        CHECK(std::isfinite(g[static_cast<size_t>(c)]));
        CHECK(std::isnan(g[static_cast<size_t>(C + c)]));
        CHECK(g[static_cast<size_t>(2 * C + c)] == 0.0);
      }
    }
  }
  // the backward profiler's waits leave the error pending for the program's next read
  {
    const Tensor xd = cp::rnd({4, 6}).to(kCuda).requires_grad_();
    const Tensor bad_t = from_vector(std::vector<double>{1, 9, 2, 0}, {4}, DType::i64).to(kCuda);
    Tensor loss;
    {
      autograd::BackwardProfile prof;
      loss = cross_entropy(xd, bad_t);
      loss.backward();
      CHECK_FALSE(prof.ops().empty());
    }
    CHECK_THROWS_WITH_AS(loss.cpu(), doctest::Contains("cross_entropy: target 9 is out of bounds"), IndexError);
  }
  // GradScaler: an error pending from another op is raised by the unscale's read, after the
  // gradients (finite here) were divided; a step() after the caller catches it must neither divide
  // them again nor apply them
  {
    const Tensor w = cp::rnd({6, 5}).to(kCuda).requires_grad_();
    const Tensor before = w.detach().cpu();
    optim::SGDOptions so;
    so.lr = 0.1;
    optim::SGD opt({w}, so);
    amp::GradScaler scaler;  // scale 2^16: the division is exact
    const Tensor in = cp::rnd({4, 6}).to(kCuda);
    const Tensor t = from_vector(std::vector<double>{1, 4, 2, 0}, {4}, DType::i64).to(kCuda);
    scaler.scale(cross_entropy(matmul(in, w), t)).backward();
    const Tensor scaled = w.grad().cpu();
    (void)index_select(in, 0, from_vector(std::vector<double>{0, 4}, {2}, DType::i64).to(kCuda));  // bad index
    CHECK_THROWS_WITH_AS(scaler.step(opt), doctest::Contains("index_select: index 4"), IndexError);
    CHECK_FALSE(scaler.step(opt));
    scaler.update();
    cp::compare_exact("weights after the skipped step", w.detach().cpu(), before);
    cp::compare_exact("gradients divided once", w.grad().cpu(), scaled * (1.0 / 65536.0));
  }
  // with no classes every target that is not ignored is out of range
  {
    Tensor l;
    CHECK_NOTHROW(l = cross_entropy(zeros({2, 0}, TensorOptions(DType::f32).device(kCuda)),
                                    from_vector(std::vector<double>{-100, 0}, {2}, DType::i64).to(kCuda)));
    CHECK_THROWS_WITH_AS(l.cpu(), doctest::Contains("cross_entropy: target 0 is out of bounds for 0 classes"),
                         IndexError);
  }
  // and the device still computes
  const Tensor xh = cp::rnd({8, 10});
  const Tensor th = from_vector(std::vector<double>{0, 1, 2, 3, 4, 5, 6, 9}, {8}, DType::i64);
  CHECK(cross_entropy(xh.to(kCuda), th.to(kCuda)).item<double>() ==
        doctest::Approx(cross_entropy(xh, th).item<double>()).epsilon(1e-5));
}

// DESIGN §5: no host sync in the step loop. Behind a queue of matrix products, the loss (forward
// and backward) and the indexing ops must return while the device is still busy; an op that
// waited for the device (a host-side check of its targets or indices) would find it idle.
TEST_CASE("cross_entropy and the indexing ops return without waiting for the device") {
  const Tensor logits = cp::rnd({256, 1000}).to(kCuda).requires_grad_();
  const Tensor target = from_vector(std::vector<double>(256, 7.0), {256}, DType::i64).to(kCuda);
  const Tensor rows = from_vector(std::vector<double>{3, 1, 4, 1, 5}, {5}, DType::i64).to(kCuda);
  const auto ops = [&] {
    const Tensor loss = cross_entropy(logits, target);
    loss.backward();
    (void)index_select(logits.detach(), 0, rows);
    (void)gather(logits.detach(), 1, rows.unsqueeze(0));
    return loss;
  };
  // twice before timing anything (the second accumulates into logits.grad): CUDA loads a kernel
  // lazily at its first launch, and loading may synchronize the context
  (void)ops();
  (void)ops();
  const Tensor busy = cp::queue_busy_work(16);  // 2.2 TFLOP of f32: tens of ms
  const Tensor loss = ops();
  CHECK_FALSE(backend_for(kCuda).is_idle(0));
  backend_for(kCuda).synchronize(0);
  CHECK(backend_for(kCuda).is_idle(0));
  CHECK(std::isfinite(loss.item<double>()));
}

TEST_CASE("pinned host memory: uploads run on the copy stream and are ordered before the kernels that read them") {
  REQUIRE(pinned_memory_available());
  const Tensor src = cp::rnd({64, 33, 17}, -5, 5);
  const Tensor p = pin_memory(src);
  CHECK(is_pinned(p));
  CHECK_FALSE(is_pinned(src));
  CHECK(pin_memory(p).data_ptr() == p.data_ptr());  // already pinned: itself
  cudaPointerAttributes attr{};
  REQUIRE(cudaPointerGetAttributes(&attr, p.data_ptr()) == cudaSuccess);
  CHECK(attr.type == cudaMemoryTypeHost);
  cp::compare_exact("pinned copy", p, src);
  // many uploads whose host tensors are dropped at once, each read by a kernel right away: the
  // pinned blocks must not be reused while their copies are in flight, and the kernels must see
  // the uploaded values
  std::vector<Tensor> on_device;
  std::vector<Tensor> expected;
  for (int i = 0; i < 40; ++i) {
    Tensor h = empty_pinned({256, 1024}, DType::f32);
    h.fill_(static_cast<double>(i));
    on_device.push_back(h.to(kCuda, NonBlocking::yes) * 2.0);
    expected.push_back(full({256, 1024}, 2.0 * i));
  }
  for (int i = 0; i < 40; ++i) cp::compare_exact("async upload", on_device[static_cast<size_t>(i)].cpu(), expected[static_cast<size_t>(i)]);
  backend_for(kCuda).synchronize(0);
  const MemoryStats s = backend_for(kCuda).pinned_host_allocator()->stats();
  CHECK(s.allocations >= 41);
  CHECK(s.cache_hits > 0);  // the loop reuses blocks once their uploads are done
  // A plain to() or copy_ from pinned memory returns once the host may write the source again, as
  // PyTorch's non_blocking=False: behind a queue of matrix products an asynchronous copy would
  // still be waiting when the host overwrites the source.
  {
    Tensor busy = cp::rnd({2048, 2048}, -1, 1).to(kCuda);
    for (int i = 0; i < 8; ++i) busy = matmul(busy, busy) * 1e-3;
    Tensor h = empty_pinned({512, 1024}, DType::f32);
    h.fill_(1.0);
    const Tensor d = h.to(kCuda);
    Tensor d2 = empty({512, 1024}, TensorOptions(DType::f32).device(kCuda));
    for (int i = 0; i < 8; ++i) busy = matmul(busy, busy) * 1e-3;
    d2.copy_(h);
    h.fill_(2.0);
    cp::compare_exact("to(cuda) from pinned memory, source overwritten after", d.cpu(), full({512, 1024}, 1.0));
    cp::compare_exact("copy_ from pinned memory, source overwritten after", d2.cpu(), full({512, 1024}, 1.0));
  }
}

// cuDNN forbids using one handle from two threads at once; the device's handle is shared, so each
// convolution holds it for its cuDNN calls. Four threads run forward and backward convolutions
// (bf16 through graph plans, f32 through the legacy API) at once and must get the values one
// thread gets.
TEST_CASE("convolutions from several host threads at once give the single-threaded results") {
  struct Job {
    Tensor x, w, gy;
    DType dt;
  };
  std::vector<Job> jobs;
  for (DType dt : {DType::bf16, DType::f32})
    for (int64_t c : {16, 32}) {
      Job j;
      j.dt = dt;
      j.x = cp::rnd({4, 14, 14, c}, -1, 1, 300 + c).to(dt).to(kCuda);
      j.w = cp::rnd({c, 3, 3, c}, -1, 1, 301 + c).to(dt).to(kCuda);
      j.gy = cp::rnd({4, 14, 14, c}, -1, 1, 302 + c).to(dt).to(kCuda);
      jobs.push_back(j);
    }
  auto run = [](const Job& j) {
    const Tensor x = j.x.detach().requires_grad_(), w = j.w.detach().requires_grad_();
    const Tensor y = conv2d(x, w, Tensor(), 1, 1);
    y.backward(j.gy);
    return std::vector<Tensor>{y.detach().cpu(), x.grad().cpu(), w.grad().cpu()};
  };
  std::vector<std::vector<Tensor>> serial;
  for (const Job& j : jobs) serial.push_back(run(j));
  std::vector<std::vector<std::vector<Tensor>>> got(jobs.size());
  std::vector<std::thread> threads;
  std::vector<std::string> errors(jobs.size());
  for (size_t t = 0; t < jobs.size(); ++t)
    threads.emplace_back([&, t] {
      try {
        for (int rep = 0; rep < 20; ++rep) got[t].push_back(run(jobs[t]));
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < jobs.size(); ++t) {
    CAPTURE(t);
    CHECK(errors[t] == "");
    for (const auto& r : got[t])
      for (size_t k = 0; k < r.size(); ++k)  // the filter gradient's algorithm may sum with atomics
        cp::compare("threaded conv2d result " + std::to_string(k), r[k], serial[t][k], cp::tol_for(jobs[t].dt));
  }
}
