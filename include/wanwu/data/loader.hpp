// DataLoader: worker threads that load, decode, augment and collate batches ahead of the
// training loop, so that the model never waits for input.
//
// Shape of the design:
//   - The epoch's index list comes from the sampler at the start of the epoch; batch b is
//     positions [b*B, (b+1)*B) of it. Each worker takes the next batch number and builds the
//     whole batch (PyTorch's DataLoader does the same), writing each sample straight into its
//     slot of one [N, H, W, C] tensor: no per-sample tensors, one memcpy per sample.
//   - The determinism rule: the random stream of the sample at position k of epoch e is
//     SampleRng(seed, augment, e, k). Batch contents depend on (seed, epoch, position) only,
//     so any number of workers - zero included, which loads on the calling thread - yields the
//     same batches in the same order, bit for bit.
//   - A bounded prefetch window: workers start batch b only while b < consumed + prefetch, so
//     memory stays bounded however slow the consumer is; batches are handed out in order.
//   - Shutdown: leaving the loop over an epoch (break, exception, return) destroys the epoch
//     object, which tells the workers to stop between samples and joins them.
//   - Bad samples (IOError from reading or decoding): BadSamplePolicy::error stops the epoch
//     with an IOError naming the file; ::skip drops the sample from its batch (the batch is
//     smaller, a batch with nothing left is not yielded), warns once per file, and counts.
//     Other errors (a transform misconfigured, samples of different sizes) always propagate.
//
// Pinned host memory for faster host-to-GPU copies needs an allocator from the CUDA backend;
// batches are ordinary CPU tensors until the backend provides one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "../wanwu.hpp"
#include "collate.hpp"
#include "datasets.hpp"
#include "samplers.hpp"
#include "transforms.hpp"

namespace wanwu::data {

enum class Shuffle : uint8_t { no, yes };
enum class DropLast : uint8_t { no, yes };
enum class BadSamplePolicy : uint8_t { error, skip };
enum class PinMemory : uint8_t { no, yes };

struct LoaderOptions {
  int64_t batch_size = 32;
  int num_workers = 4;       // 0: load on the thread that iterates
  int prefetch_batches = 0;  // batches in progress or ready ahead of the consumer; 0: 2 per worker
  Shuffle shuffle = Shuffle::yes;
  DropLast drop_last = DropLast::no;
  uint64_t seed = 0;
  BadSamplePolicy bad_samples = BadSamplePolicy::error;
  std::shared_ptr<const Sampler> sampler;  // when set, replaces `shuffle`
  std::function<void(const std::string&)> on_warning;  // skipped files; default: a line on stderr
  // Batches in pinned host memory, so that .to(cuda, NonBlocking::yes) uploads without waiting (on
  // the device's copy stream, overlapping the previous step's kernels). Ignored without a CUDA
  // device, as PyTorch's pin_memory=True is; is_pinned(batch.images) tells.
  PinMemory pin_memory = PinMemory::no;
};

struct Batch {
  Tensor images;                 // [N, H, W, C]: f32 (u8 when the transform ends in u8)
  Tensor labels;                 // [N] i64
  std::vector<int64_t> indices;  // dataset index of each row
  int64_t epoch = 0;
  int64_t number = 0;   // position of the batch in its epoch
  int64_t skipped = 0;  // samples dropped from this batch (BadSamplePolicy::skip)
};

namespace detail {

// Rethrows the current exception with `context` in front of its message, keeping its type.
[[noreturn]] inline void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const IOError& e) {
    throw IOError(context + e.what());
  } catch (const ValueError& e) {
    throw ValueError(context + e.what());
  } catch (const ShapeError& e) {
    throw ShapeError(context + e.what());
  } catch (const DTypeError& e) {
    throw DTypeError(context + e.what());
  } catch (const IndexError& e) {
    throw IndexError(context + e.what());
  } catch (const OutOfMemoryError& e) {
    throw OutOfMemoryError(context + e.what());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(context + e.what());
  }
}

// What outlives one epoch: warned-about files and the skip count.
struct LoaderShared {
  std::mutex mu;
  std::unordered_set<int64_t> warned;
  std::atomic<int64_t> skipped_total{0};
};

struct EpochState {
  std::shared_ptr<const Dataset> dataset;
  TransformPtr transform;
  LoaderOptions opt;
  std::shared_ptr<LoaderShared> shared;
  int64_t epoch = 0;
  std::vector<int64_t> order;
  int64_t num_batches = 0;
  int prefetch = 1;

  std::mutex mu;
  std::condition_variable work_cv, ready_cv;
  int64_t next_batch = 0;  // next batch number a worker takes
  int64_t consumed = 0;    // batches handed to the consumer
  std::atomic<bool> stop{false};
  std::map<int64_t, std::pair<std::optional<Batch>, std::exception_ptr>> ready;
  std::atomic<int64_t> skipped{0};
  std::vector<std::thread> workers;

  // Builds batch b; nullopt when told to stop.
  std::optional<Batch> build(int64_t b) {
    const int64_t n = static_cast<int64_t>(order.size());
    const int64_t first = b * opt.batch_size, last = std::min(n, first + opt.batch_size);
    Batch batch;
    batch.epoch = epoch;
    batch.number = b;
    const bool pin = opt.pin_memory == PinMemory::yes && pinned_memory_available();
    std::vector<int64_t> labels;
    int64_t filled = 0;
    size_t sample_bytes = 0;
    Image shape_of_first;
    for (int64_t k = first; k < last; ++k) {
      if (stop.load(std::memory_order_relaxed)) return std::nullopt;
      const int64_t idx = order[k];
      Image img;
      try {
        img = dataset->load(idx);
      } catch (const IOError& e) {
        if (opt.bad_samples == BadSamplePolicy::error)
          throw IOError(str("DataLoader: sample ", idx, " (epoch ", epoch, ", batch ", b, "): ", e.what()));
        skip(idx, e.what());
        ++batch.skipped;
        continue;
      }
      try {
        if (transform) {
          SampleRng rng(opt.seed, RngPurpose::augment, static_cast<uint64_t>(epoch), static_cast<uint64_t>(k));
          img = transform->apply(std::move(img), rng);
        }
        if (!batch.images.defined()) {
          const Shape shape{last - first, img.height(), img.width(), img.channels()};
          batch.images = pin ? empty_pinned(shape, image_dtype(img.type())) : empty(shape, image_dtype(img.type()));
          sample_bytes = img.nbytes();
          shape_of_first = Image(img.height(), img.width(), img.channels(), img.type());
        } else if (img.height() != shape_of_first.height() || img.width() != shape_of_first.width() ||
                   img.channels() != shape_of_first.channels() || img.type() != shape_of_first.type()) {
          throw ValueError(str("cannot collate an image of ", img.describe(), " into a batch of ",
                               shape_of_first.describe(),
                               " images; end the transform with a fixed-size crop or resize"));
        }
      } catch (...) {
        rethrow_with_context(str("DataLoader: sample ", idx, " (", dataset->source(idx), "): "));
      }
      std::memcpy(static_cast<std::byte*>(batch.images.data_ptr()) + filled * sample_bytes, img.bytes(), sample_bytes);
      labels.push_back(dataset->label(idx));
      batch.indices.push_back(idx);
      ++filled;
    }
    if (filled == 0) return batch;  // every sample skipped: an empty batch, not yielded
    if (filled < last - first) batch.images = batch.images.narrow(0, 0, filled);
    batch.labels = from_vector(labels, Shape{filled});
    if (pin) batch.labels = pin_memory(batch.labels);
    return batch;
  }

  void skip(int64_t idx, const std::string& why) {
    skipped.fetch_add(1);
    shared->skipped_total.fetch_add(1);
    bool first_time;
    {
      std::lock_guard<std::mutex> l(shared->mu);
      first_time = shared->warned.insert(idx).second;
    }
    if (!first_time) return;
    const std::string msg = str("DataLoader: skipping sample ", idx, ": ", why);
    std::lock_guard<std::mutex> l(shared->mu);  // one warning at a time
    if (opt.on_warning) opt.on_warning(msg);
    else std::cerr << "warning: " << msg << "\n";
  }

  void worker_loop() {
    for (;;) {
      int64_t b;
      {
        std::unique_lock<std::mutex> l(mu);
        work_cv.wait(l, [&] { return stop || next_batch >= num_batches || next_batch < consumed + prefetch; });
        if (stop || next_batch >= num_batches) return;
        b = next_batch++;
      }
      std::optional<Batch> batch;
      std::exception_ptr error;
      try {
        batch = build(b);
        if (!batch) return;  // stopping
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> l(mu);
        ready.emplace(b, std::make_pair(std::move(batch), error));
      }
      ready_cv.notify_all();
    }
  }

  // The next batch in order; nullopt at the end of the epoch.
  std::optional<Batch> next() {
    for (;;) {
      std::optional<Batch> batch;
      std::exception_ptr error;
      if (workers.empty()) {
        if (consumed >= num_batches) return std::nullopt;
        const int64_t b = consumed++;
        try {
          batch = build(b);
        } catch (...) {
          consumed = num_batches;  // the epoch ends with the error
          throw;
        }
      } else {
        std::unique_lock<std::mutex> l(mu);
        if (consumed >= num_batches) return std::nullopt;
        ready_cv.wait(l, [&] { return ready.count(consumed) > 0; });
        auto node = ready.extract(consumed);
        ++consumed;
        batch = std::move(node.mapped().first);
        error = node.mapped().second;
        l.unlock();
        work_cv.notify_all();
      }
      if (error) {
        shutdown();
        consumed = num_batches;  // the epoch ends with the error
        std::rethrow_exception(error);
      }
      if (batch && batch->images.defined()) return batch;
    }
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> l(mu);
      stop = true;
    }
    work_cv.notify_all();
    for (auto& t : workers)
      if (t.joinable()) t.join();
  }
};

}  // namespace detail

class DataLoader {
 public:
  // One epoch's worker threads; iterate it (range-for) or call next(). Destroying it stops and
  // joins the workers, so leaving the loop early is a clean shutdown.
  class Epoch {
   public:
    class iterator {
     public:
      using value_type = Batch;
      using difference_type = std::ptrdiff_t;
      iterator() = default;
      explicit iterator(Epoch* e) : epoch_(e) { advance(); }
      Batch& operator*() { return *current_; }
      Batch* operator->() { return &*current_; }
      iterator& operator++() {
        advance();
        return *this;
      }
      bool operator==(const iterator& o) const { return done() == o.done(); }

     private:
      bool done() const { return !current_.has_value(); }
      void advance() { current_ = epoch_->next(); }
      Epoch* epoch_ = nullptr;
      std::optional<Batch> current_;
    };

    explicit Epoch(std::unique_ptr<detail::EpochState> s) : state_(std::move(s)) {}
    Epoch(Epoch&&) noexcept = default;
    Epoch& operator=(Epoch&&) noexcept = default;
    ~Epoch() {
      if (state_) state_->shutdown();
    }

    std::optional<Batch> next() { return state_->next(); }
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }
    int64_t num_batches() const { return state_->num_batches; }
    int64_t skipped() const { return state_->skipped.load(); }

   private:
    std::unique_ptr<detail::EpochState> state_;
  };

  DataLoader(std::shared_ptr<const Dataset> dataset, TransformPtr transform, LoaderOptions options = {})
      : dataset_(std::move(dataset)), transform_(std::move(transform)), opt_(std::move(options)),
        shared_(std::make_shared<detail::LoaderShared>()) {
    WANWU_CHECK_VALUE(dataset_ != nullptr, "DataLoader: no dataset");
    WANWU_CHECK_VALUE(opt_.batch_size > 0, "DataLoader: batch_size must be positive, got ", opt_.batch_size);
    WANWU_CHECK_VALUE(opt_.num_workers >= 0, "DataLoader: num_workers must be non-negative, got ", opt_.num_workers);
    WANWU_CHECK_VALUE(opt_.prefetch_batches >= 0, "DataLoader: prefetch_batches must be non-negative, got ",
                      opt_.prefetch_batches);
    if (!opt_.sampler) {
      WANWU_CHECK_VALUE(dataset_->size() > 0, "DataLoader: the dataset is empty");
      if (opt_.shuffle == Shuffle::yes) opt_.sampler = std::make_shared<RandomSampler>(dataset_->size());
      else opt_.sampler = std::make_shared<SequentialSampler>(dataset_->size());
    }
  }

  // Starts the workers for epoch `e`; the order and augmentation are those of (seed, e).
  Epoch epoch(int64_t e) const {
    WANWU_CHECK_VALUE(e >= 0, "DataLoader::epoch: epoch must be non-negative, got ", e);
    auto s = std::make_unique<detail::EpochState>();
    s->dataset = dataset_;
    s->transform = transform_;
    s->opt = opt_;
    s->shared = shared_;
    s->epoch = e;
    s->order = opt_.sampler->indices(opt_.seed, e);
    for (int64_t idx : s->order)
      WANWU_CHECK_INDEX(idx >= 0 && idx < dataset_->size(), "DataLoader: the sampler gave index ", idx,
                        " for a dataset of ", dataset_->size(), " samples");
    s->num_batches = batches_for(static_cast<int64_t>(s->order.size()));
    s->prefetch = opt_.prefetch_batches > 0 ? opt_.prefetch_batches : 2 * std::max(1, opt_.num_workers);
    detail::EpochState* raw = s.get();
    try {
      for (int w = 0; w < opt_.num_workers; ++w) raw->workers.emplace_back([raw] { raw->worker_loop(); });
    } catch (...) {
      raw->shutdown();  // join the threads that did start
      throw;
    }
    return Epoch(std::move(s));
  }

  int64_t samples_per_epoch() const { return opt_.sampler->size(); }
  int64_t batches_per_epoch() const { return batches_for(samples_per_epoch()); }
  int64_t skipped_total() const { return shared_->skipped_total.load(); }
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return opt_; }

 private:
  int64_t batches_for(int64_t n) const {
    return opt_.drop_last == DropLast::yes ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
  }

  std::shared_ptr<const Dataset> dataset_;
  TransformPtr transform_;
  LoaderOptions opt_;
  std::shared_ptr<detail::LoaderShared> shared_;
};

}  // namespace wanwu::data
