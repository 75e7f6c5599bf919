// DataLoader: the same batches bit for bit whatever the number of workers, every sample exactly
// once per epoch, per-epoch shuffles from the seed, drop_last, the bounded prefetch window, clean
// shutdown when the consumer leaves mid-epoch, the bad-sample policies on a folder with a
// truncated JPEG and a text file named .jpg, class frequencies under a class-balanced sampler,
// and errors that name the sample.
#include "harness.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <wanwu/data/data.hpp>

#include "data_test_util.hpp"

using namespace wanwu;
using namespace wanwu::data;

namespace {

// Images generated from the index (sizes vary, so transforms have real work), labels index % 5;
// optionally slow, counting loads.
class SyntheticDataset final : public Dataset {
 public:
  explicit SyntheticDataset(int64_t n, int load_ms = 0, std::vector<int64_t> labels = {})
      : n_(n), load_ms_(load_ms), labels_(std::move(labels)) {
    for (int c = 0; c < 5; ++c) classes_.push_back(std::to_string(c));
  }
  int64_t size() const override { return n_; }
  int64_t label(int64_t i) const override {
    check_index(i, "SyntheticDataset::label");
    return labels_.empty() ? i % 5 : labels_[static_cast<size_t>(i)];
  }
  Image load(int64_t i) const override {
    check_index(i, "SyntheticDataset::load");
    loads.fetch_add(1);
    if (load_ms_) std::this_thread::sleep_for(std::chrono::milliseconds(load_ms_));
    return dt::photo_like(30 + i % 7, 40 + i % 11, 3, static_cast<uint64_t>(i));
  }
  std::string source(int64_t i) const override { return "synthetic#" + std::to_string(i); }
  const std::vector<std::string>& classes() const override { return classes_; }
  mutable std::atomic<int64_t> loads{0};

 private:
  int64_t n_;
  int load_ms_;
  std::vector<int64_t> labels_;
  std::vector<std::string> classes_;
};

TransformPtr small_train_transform() {
  return std::make_shared<Compose>(Compose()
                                       .add(RandomResizedCrop(16))
                                       .add(RandomHorizontalFlip())
                                       .add(ColorJitter(0.3, 0.3, 0.3, 0.05))
                                       .add(ToTensor())
                                       .add(Normalize(imagenet_mean(), imagenet_std()))
                                       .add(RandomErasing(0.5)));
}

struct EpochRecord {
  std::vector<std::vector<float>> images;
  std::vector<std::vector<int64_t>> labels, indices;
};

EpochRecord run_epoch(const DataLoader& loader, int64_t epoch) {
  EpochRecord r;
  for (Batch& b : loader.epoch(epoch)) {
    r.images.push_back(b.images.tolist<float>());
    r.labels.push_back(b.labels.tolist<int64_t>());
    r.indices.push_back(b.indices);
  }
  return r;
}

}  // namespace

TEST_CASE("batches are identical for 0, 1, 2 and 5 workers") {
  auto ds = std::make_shared<SyntheticDataset>(53);
  LoaderOptions o;
  o.batch_size = 8;
  o.seed = 1234;
  std::vector<EpochRecord> runs;
  for (int workers : {0, 1, 2, 5}) {
    o.num_workers = workers;
    o.prefetch_batches = workers == 2 ? 1 : 0;  // a tight window too
    const DataLoader loader(ds, small_train_transform(), o);
    runs.push_back(run_epoch(loader, 3));
  }
  REQUIRE(runs[0].images.size() == 7);  // ceil(53 / 8)
  for (size_t k = 1; k < runs.size(); ++k) {
    CAPTURE(k);
    CHECK(runs[k].indices == runs[0].indices);
    CHECK(runs[k].labels == runs[0].labels);
    CHECK(runs[k].images == runs[0].images);
  }
}

TEST_CASE("pin_memory: pinned batches where a CUDA device exists, the same batches in ordinary memory elsewhere") {
  auto ds = std::make_shared<SyntheticDataset>(21);
  LoaderOptions o;
  o.batch_size = 8;
  o.num_workers = 2;
  const EpochRecord plain = run_epoch(DataLoader(ds, small_train_transform(), o), 0);
  o.pin_memory = PinMemory::yes;
  const DataLoader pinned(ds, small_train_transform(), o);
  for (Batch& b : pinned.epoch(0)) {
    CHECK(is_pinned(b.images) == pinned_memory_available());
    CHECK(is_pinned(b.labels) == pinned_memory_available());
  }
  const EpochRecord p = run_epoch(pinned, 0);
  CHECK(p.images == plain.images);
  CHECK(p.labels == plain.labels);
}

TEST_CASE("every sample exactly once per epoch; shuffles per epoch and seed; drop_last") {
  auto ds = std::make_shared<SyntheticDataset>(50);
  LoaderOptions o;
  o.batch_size = 16;
  o.num_workers = 3;
  o.seed = 7;
  const DataLoader loader(ds, std::make_shared<Compose>(Compose().add(CenterCrop(8)).add(ToTensor())), o);
  CHECK(loader.batches_per_epoch() == 4);
  std::vector<int64_t> first_order;
  for (int64_t e = 0; e < 3; ++e) {
    std::vector<int64_t> seen;
    int64_t batches = 0;
    for (Batch& b : loader.epoch(e)) {
      ++batches;
      CHECK(b.epoch == e);
      CHECK(b.images.shape() == Shape{static_cast<int64_t>(b.indices.size()), 8, 8, 3});
      CHECK(b.images.dtype() == DType::f32);
      const auto labels = b.labels.tolist<int64_t>();
      for (size_t i = 0; i < b.indices.size(); ++i) CHECK(labels[i] == b.indices[i] % 5);
      seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    }
    CHECK(batches == 4);
    std::vector<int64_t> s = seen;
    std::sort(s.begin(), s.end());
    std::vector<int64_t> all(50);
    std::iota(all.begin(), all.end(), int64_t(0));
    CHECK(s == all);
    if (e == 0) first_order = seen;
    else CHECK(seen != first_order);
  }
  // The pixels of a sample are its own: a centre crop of sample i, / 255.
  {
    auto ep = loader.epoch(0);
    const Batch b = *ep.next();
    const Image want = to_float(center_crop(ds->load(b.indices[2]), 8, 8));
    const auto got = b.images.select(0, 2).tolist<float>();
    CHECK(got == std::vector<float>(want.f32(), want.f32() + want.numel()));
  }
  // Same seed, same order; another seed, another.
  const auto crop8 = std::make_shared<Compose>(Compose().add(CenterCrop(8)));
  const DataLoader again(ds, crop8, o);
  CHECK(run_epoch(again, 0).indices == run_epoch(loader, 0).indices);
  LoaderOptions o2 = o;
  o2.seed = 8;
  CHECK(run_epoch(DataLoader(ds, crop8, o2), 0).indices != run_epoch(loader, 0).indices);
  // drop_last: 50 // 16 = 3 full batches, 48 distinct samples.
  LoaderOptions od = o;
  od.drop_last = DropLast::yes;
  const auto rec = run_epoch(DataLoader(ds, crop8, od), 0);
  CHECK(rec.indices.size() == 3);
  std::vector<int64_t> flat;
  for (const auto& v : rec.indices) {
    CHECK(v.size() == 16);
    flat.insert(flat.end(), v.begin(), v.end());
  }
  std::sort(flat.begin(), flat.end());
  CHECK(std::adjacent_find(flat.begin(), flat.end()) == flat.end());
  // No shuffle: dataset order.
  LoaderOptions os = o;
  os.shuffle = Shuffle::no;
  const auto seq = run_epoch(DataLoader(ds, crop8, os), 0);
  CHECK(seq.indices[1] == std::vector<int64_t>{16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31});
  CHECK(seq.indices[3].size() == 2);
  // Without a transform the batch is the raw u8 images, which must share one size.
  CHECK_THROWS_WITH_AS(run_epoch(DataLoader(ds, nullptr, os), 0), doctest::Contains("synthetic#1"), ValueError);
}

TEST_CASE("the prefetch window bounds the work ahead of the consumer") {
  auto ds = std::make_shared<SyntheticDataset>(400, 1);
  LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = 4;
  o.prefetch_batches = 3;
  const DataLoader loader(ds, std::make_shared<Compose>(Compose().add(CenterCrop(8))), o);
  auto epoch = loader.epoch(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Nothing consumed: at most 3 batches (12 samples) may have been loaded.
  CHECK(ds->loads.load() <= 12);
  CHECK(ds->loads.load() >= 4);
  REQUIRE(epoch.next().has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(ds->loads.load() <= 16);
}

TEST_CASE("leaving an epoch early stops and joins the workers promptly") {
  auto ds = std::make_shared<SyntheticDataset>(2000, 5);
  LoaderOptions o;
  o.batch_size = 16;
  o.num_workers = 4;
  const DataLoader loader(ds, std::make_shared<Compose>(Compose().add(CenterCrop(8))), o);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t got = 0;
  for (Batch& b : loader.epoch(0)) {
    got += b.indices.size() > 0;
    if (got == 2) break;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(got == 2);
  // 2 batches at 16 * 5 ms over 4 workers take ~0.1 s; stopping waits for at most one sample per
  // worker. A loader that finished the epoch (2000 * 5 ms / 4) would take 2.5 s.
  CHECK(secs < 1.5);
  const int64_t loads_at_exit = ds->loads.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(ds->loads.load() == loads_at_exit);  // nobody is still working
  // The loader is reusable after an abandoned epoch.
  CHECK(run_epoch(loader, 1).indices.size() == 125);
}

TEST_CASE("bad samples: skip warns once per file and counts, error names the file") {
  const auto root = dt::scratch_dir("loader_bad");
  for (int i = 0; i < 10; ++i)
    dt::write_bytes(root / "cls" / ("good_" + std::to_string(i) + ".jpg"),
                    dt::encode_jpeg(dt::photo_like(40, 48, 3, i)));
  const auto jpg = dt::encode_jpeg(dt::photo_like(40, 48, 3, 99));
  dt::write_bytes(root / "cls" / "truncated.jpg", std::vector<uint8_t>(jpg.begin(), jpg.begin() + jpg.size() / 2));
  dt::write_text(root / "cls" / "text.jpg", "this is a text file, not a JPEG\n");
  auto ds = std::make_shared<ImageFolder>(root.string());
  REQUIRE(ds->size() == 12);

  LoaderOptions o;
  o.batch_size = 5;
  o.num_workers = 2;
  o.bad_samples = BadSamplePolicy::skip;
  std::mutex mu;
  std::vector<std::string> warnings;
  o.on_warning = [&](const std::string& w) {
    std::lock_guard<std::mutex> l(mu);
    warnings.push_back(w);
  };
  const DataLoader loader(
      ds, std::make_shared<Compose>(eval_transform(PresetOptions{24, 32, imagenet_mean(), imagenet_std()})), o);
  for (int64_t e = 0; e < 2; ++e) {
    int64_t rows = 0, skipped = 0;
    auto epoch = loader.epoch(e);
    for (Batch& b : epoch) {
      rows += b.images.size(0);
      skipped += b.skipped;
      for (int64_t idx : b.indices) CHECK(ds->source(idx).find("good_") != std::string::npos);
    }
    CHECK(rows == 10);
    CHECK(skipped == 2);
    CHECK(epoch.skipped() == 2);
  }
  CHECK(loader.skipped_total() == 4);
  REQUIRE(warnings.size() == 2);  // once per file, not once per epoch
  const std::string all = warnings[0] + warnings[1];
  CHECK(all.find("truncated.jpg") != std::string::npos);
  CHECK(all.find("text.jpg: not a supported image") != std::string::npos);

  for (int workers : {0, 2}) {
    CAPTURE(workers);
    LoaderOptions so = o;
    so.bad_samples = BadSamplePolicy::error;
    so.num_workers = workers;
    const DataLoader l(
        ds, std::make_shared<Compose>(eval_transform(PresetOptions{24, 32, imagenet_mean(), imagenet_std()})), so);
    bool threw = false;
    try {
      for (Batch& b : l.epoch(0)) (void)b;
    } catch (const IOError& e) {
      threw = true;
      const std::string msg = e.what();
      CHECK((msg.find("truncated.jpg") != std::string::npos || msg.find("text.jpg") != std::string::npos));
      CHECK(msg.find("DataLoader: sample") != std::string::npos);
    }
    CHECK(threw);
  }
}

TEST_CASE("a class-balanced sampler through the loader equalises class frequencies") {
  // Labels 0 for 80%, 1 for 15%, 2 for 5% of 400 samples.
  std::vector<int64_t> labels(400, 0);
  for (int i = 320; i < 380; ++i) labels[i] = 1;
  for (int i = 380; i < 400; ++i) labels[i] = 2;
  auto ds = std::make_shared<SyntheticDataset>(400, 0, labels);
  LoaderOptions o;
  o.batch_size = 50;
  o.num_workers = 2;
  o.sampler = std::make_shared<ClassBalancedSampler>(labels, 6000);
  const DataLoader loader(ds, std::make_shared<Compose>(Compose().add(CenterCrop(4))), o);
  CHECK(loader.samples_per_epoch() == 6000);
  std::vector<int64_t> drawn;
  for (Batch& b : loader.epoch(0)) {
    const auto l = b.labels.tolist<int64_t>();
    drawn.insert(drawn.end(), l.begin(), l.end());
  }
  REQUIRE(drawn.size() == 6000);
  // Binomial(6000, 1/3): sd 36.5; 5 sd = 183.
  for (int64_t c : class_counts(drawn, 3)) CHECK(std::abs(c - 2000) < 183);
}

TEST_CASE("loader arguments are checked") {
  auto ds = std::make_shared<SyntheticDataset>(10);
  LoaderOptions o;
  o.batch_size = 0;
  CHECK_THROWS_AS(DataLoader(ds, nullptr, o), ValueError);
  o.batch_size = 2;
  o.num_workers = -1;
  CHECK_THROWS_AS(DataLoader(ds, nullptr, o), ValueError);
  o.num_workers = 1;
  CHECK_THROWS_AS(DataLoader(nullptr, nullptr, o), ValueError);
  o.sampler = std::make_shared<SequentialSampler>(11);
  CHECK_THROWS_WITH_AS(DataLoader(ds, nullptr, o).epoch(0), doctest::Contains("index 10"), IndexError);
}
