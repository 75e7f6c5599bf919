// Dynamic batching for `wanwu serve`: HTTP handler threads decode and preprocess their images in
// parallel and hand them to one inference thread, which runs them through the model as one batch.
//
// Why this shape: a forward pass over 32 images costs far less than 32 passes over one (the
// per-op overhead and the weight reads are shared), so under load, batching is where throughput
// comes from. One inference thread owns the model, so the model needs no locking and its device
// (CPU threads or one CUDA stream) is never contended. It waits for more requests only while it
// can expect some: at most --max-delay-ms after the oldest waiting one, and not at all when no
// other handler is still decoding, so a lone request does not pay the delay.
//
// The inference thread is the one that loaded the model (it constructs the batcher and calls
// run()), not a thread of its own. The CPU backend's parallel loops are OpenMP, and each thread
// that starts parallel regions gets a pool of worker threads of its own; with a second pool,
// libgomp counts more pool threads than CPUs and stops spinning between parallel regions, so
// every region of a forward pass wakes its workers from sleep. Measured with ResNet-50 at batch 4
// on 2 threads, a forward pass on a second thread against the loading thread: ~800 context
// switches a second against 20, 1.82-1.86 busy cores against 1.97-1.99, 7-12% slower.
//
// Memory: a request's pending slot lives on its handler's stack and the queue is a fixed ring of
// pointers, so submitting allocates nothing; the inference thread copies inputs into one batch
// buffer allocated at start-up. The forward pass creates its activations through the tensor
// allocator, which caches freed blocks by size class: the blocks of one pass serve the next pass
// of the same batch size. So that every pass is one the cache has seen, a batch of n images runs
// as chunks of fixed sizes (max_batch, then powers of two: 13 = 8 + 4 + 1), and the inference
// thread runs each chunk size once at start-up. After that, no forward pass takes tensor memory
// from the system (GET /metrics shows the count; the load test holds it constant). Chunks cost
// nothing in compute, unlike padding a batch up to a fixed size. What still allocates per request,
// on the handler threads, is the request body and the decoded and preprocessed image.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "common.hpp"
#include "serve_metrics.hpp"

namespace wanwu::cli {

class Batcher {
 public:
  using Clock = std::chrono::steady_clock;

  // One request waiting for its answer. Owned by the handler thread, which blocks in wait() until
  // the inference thread has filled `probs` (or `error`), so the pointers stay valid throughout.
  struct Slot {
    const data::Image* input = nullptr;  // preprocessed, f32 [size, size, channels]
    float* probs = nullptr;              // [classes], filled by the inference thread
    Clock::time_point enqueued;
    bool done = false;
    std::string error;  // set instead of probs when the forward pass failed
    std::condition_variable cv;
  };

  Batcher(models::Classifier& model, Device device, int64_t size, int64_t channels, int64_t max_batch,
          std::chrono::microseconds max_delay, int64_t queue_capacity, ServeMetrics& metrics)
      : model_(model),
        device_(device),
        classes_(model.num_classes()),
        max_batch_(max_batch),
        max_delay_(max_delay),
        ring_(static_cast<size_t>(queue_capacity), nullptr),
        metrics_(metrics) {
    input_ = zeros({max_batch, size, size, channels}, DType::f32);
    taken_.reserve(static_cast<size_t>(max_batch));
    probs_.resize(static_cast<size_t>(max_batch * classes_));
    warm_up();  // a model that cannot run fails here, before the server listens
  }

  // The forward-pass sizes: a batch of n runs as chunk(n), then chunk(n - chunk(n)), ...
  int64_t chunk(int64_t n) const {
    if (n >= max_batch_) return max_batch_;
    int64_t c = 1;
    while (c * 2 <= n) c *= 2;
    return c;
  }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // A handler is about to decode an image: the inference thread may wait for it (see the top).
  void announce() {
    std::lock_guard<std::mutex> lk(mu_);
    ++decoding_;
  }
  // The announced image will not come (bad input).
  void withdraw() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      --decoding_;
    }
    work_.notify_one();
  }

  enum class Submit { queued, full, stopping };

  // Queues an announced, preprocessed image; `full` when the bounded queue is (the handler answers
  // 503), `stopping` after stop() began.
  Submit submit(Slot& slot) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      --decoding_;
      if (stopping_) return Submit::stopping;
      if (count_ == ring_.size()) return Submit::full;
      slot.enqueued = Clock::now();
      ring_[(head_ + count_) % ring_.size()] = &slot;
      ++count_;
      metrics_.queue_depth.store(static_cast<int64_t>(count_));
    }
    work_.notify_one();
    return Submit::queued;
  }

  void wait(Slot& slot) {
    std::unique_lock<std::mutex> lk(mu_);
    slot.cv.wait(lk, [&] { return slot.done; });
  }

  // Makes run() return once every queued request is answered. Safe from any thread; idempotent.
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    work_.notify_one();
  }

  // The inference loop, on the thread that constructed the batcher (see the top): runs batches
  // until stop() was called and the queue is empty.
  void run() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      work_.wait(lk, [&] { return count_ > 0 || stopping_; });
      if (count_ == 0) return;  // stopping, and nothing left
      const auto deadline = ring_[head_]->enqueued + max_delay_;
      work_.wait_until(lk, deadline, [&] {
        return count_ >= static_cast<size_t>(max_batch_) || decoding_ <= 0 || stopping_;
      });
      const size_t n = std::min(count_, static_cast<size_t>(max_batch_));
      taken_.clear();
      for (size_t i = 0; i < n; ++i) {
        taken_.push_back(ring_[head_]);
        head_ = (head_ + 1) % ring_.size();
      }
      count_ -= n;
      metrics_.queue_depth.store(static_cast<int64_t>(count_));
      lk.unlock();
      run_batch();
      lk.lock();
      for (Slot* s : taken_) s->done = true;
      for (Slot* s : taken_) s->cv.notify_one();
    }
  }

 private:
  // Every chunk size once, so that the allocator's cache holds the blocks each one needs (see the
  // top). The first pass does one-time work too (folding batch norms into convolutions, nn/conv_bn.hpp)
  // whose results stay allocated: they can take blocks that activations of the same size class had
  // freed earlier in that pass, so it is run once more among the others, after that work is done.
  void warm_up() {
    forward_chunk(0, max_batch_);
    for (int64_t c = max_batch_;; c = chunk(c - 1)) {
      forward_chunk(0, c);
      if (c == 1) break;
    }
  }

  // Images [offset, offset + n) of the batch buffer through the model, into probs_. The output
  // tensor is released before the next chunk, so that chunks reuse each other's blocks.
  void forward_chunk(int64_t offset, int64_t n) {
    const Tensor probs = eval_probs(model_, input_.slice(0, offset, offset + n), device_, n).contiguous();
    std::memcpy(probs_.data() + offset * classes_, probs.data<float>(), static_cast<size_t>(n * classes_) * 4);
  }

  // Runs outside the lock: handlers keep queueing while the model works.
  void run_batch() {
    const auto t0 = Clock::now();
    const auto n = static_cast<int64_t>(taken_.size());
    try {
      auto* dst = static_cast<std::byte*>(input_.data_ptr());
      const size_t per = taken_[0]->input->nbytes();
      for (int64_t i = 0; i < n; ++i) {
        const data::Image& img = *taken_[static_cast<size_t>(i)]->input;
        WANWU_CHECK_SHAPE(img.type() == data::PixelType::f32 && img.numel() == input_.numel() / max_batch_,
                          "serve: preprocessed image ", img.describe(), " does not fit the model input ",
                          input_.shape());
        std::memcpy(dst + static_cast<size_t>(i) * per, img.bytes(), per);
      }
      for (int64_t done = 0; done < n;) {
        const int64_t c = chunk(n - done);
        forward_chunk(done, c);
        done += c;
      }
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(taken_[static_cast<size_t>(i)]->probs, probs_.data() + i * classes_,
                    static_cast<size_t>(classes_) * 4);
    } catch (const std::exception& e) {
      for (Slot* s : taken_) s->error = e.what();
    }
    metrics_.batch_size.observe(static_cast<double>(n));
    metrics_.inference.observe(std::chrono::duration<double>(Clock::now() - t0).count());
  }

  models::Classifier& model_;
  Device device_;
  int64_t classes_;
  int64_t max_batch_;
  std::chrono::microseconds max_delay_;
  Tensor input_;               // [max_batch, size, size, C], reused by every batch
  std::vector<float> probs_;   // [max_batch, classes], the batch's answers
  std::vector<Slot*> ring_;    // the bounded queue
  size_t head_ = 0, count_ = 0;
  std::vector<Slot*> taken_;   // the batch being run; capacity max_batch, reused
  int64_t decoding_ = 0;       // handlers between announce() and submit()/withdraw()
  bool stopping_ = false;
  std::mutex mu_;
  std::condition_variable work_;
  ServeMetrics& metrics_;
};

}  // namespace wanwu::cli
