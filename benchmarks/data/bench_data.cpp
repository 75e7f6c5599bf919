// Data pipeline benchmarks (Google Benchmark): JPEG files -> decode -> augmentation -> collated
// [32, 224, 224, 3] f32 batches, the work a training input pipeline does per image.
//
//   BM_decode                 decode only (file read + decode)
//   BM_augment_default        the default training preset alone, on decoded images
//   BM_pipeline_default       decode + the default training preset (RandomResizedCrop(224),
//                             flip, ColorJitter(0.2, 0.2, 0.2), ToTensor, Normalize) + collate,
//                             on the calling thread: images per second per core
//   BM_pipeline_eval          decode + Resize(256) + CenterCrop(224) + Normalize + collate
//   BM_pipeline_strong        decode + the strong preset (ColorJitter with hue, RandomErasing)
//   BM_loader_default/<w>     the same through DataLoader with w worker threads (the consumer
//                             only receives batches); images/s and images/s per worker
//
// Images: the JPEG files in $WANWU_BENCH_IMAGES (benchmarks/data/compare_torchvision.py writes
// them from photographs and runs torchvision + PIL on the same files), else 64 photo-like
// 500x375 JPEGs generated here with stb_image_write. Rates are items_per_second (images).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <wanwu/wanwu.hpp>
#include <wanwu/data/data.hpp>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

using namespace wanwu;
using namespace wanwu::data;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kBatch = 32;

// Not inlined: GCC 12 inlines it into stb_image_write and then warns about a vector insert it
// cannot size (-Wstringop-overflow, a false positive).
[[gnu::noinline]] void write_to_vector(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

// Smooth gradients, a few discs and texture noise: entropy between a flat image and noise, like
// a photograph, so the JPEG decoder does representative work.
std::vector<uint8_t> synthetic_jpeg(int w, int h, uint64_t seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  SampleRng rng(seed, RngPurpose::user, 0, 0);
  const double cx = rng.uniform(), cy = rng.uniform(), r2 = 0.02 + 0.05 * rng.uniform();
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double fx = double(x) / w, fy = double(y) / h;
      const bool in = (fx - cx) * (fx - cx) + (fy - cy) * (fy - cy) < r2;
      for (int c = 0; c < 3; ++c) {
        const double base = 30 + 180 * (c == 0 ? fx : c == 1 ? fy : 0.5 + 0.5 * std::sin(9 * fx * fy));
        const double v = base + (in ? 50 : 0) + 25 * (rng.uniform() - 0.5);
        px[static_cast<size_t>((y * w + x) * 3 + c)] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
      }
    }
  std::vector<uint8_t> out;
  stbi_write_jpg_to_func(write_to_vector, &out, w, h, 3, px.data(), 90);
  return out;
}

struct Files {
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> bytes;
  std::string origin;
};

const Files& files() {
  static const Files f = [] {
    Files r;
    fs::path dir;
    if (const char* env = std::getenv("WANWU_BENCH_IMAGES")) {
      dir = env;
      r.origin = dir.string();
    } else {
      dir = fs::temp_directory_path() / "wanwu_bench_data_images";
      fs::create_directories(dir);
      for (int i = 0; i < 64; ++i) {
        const fs::path p = dir / ("synthetic_" + std::to_string(i) + ".jpg");
        if (!fs::exists(p)) {
          const auto b = synthetic_jpeg(i % 2 ? 375 : 500, i % 2 ? 500 : 375, static_cast<uint64_t>(i));
          std::ofstream(p, std::ios::binary)
              .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
        }
      }
      r.origin = "synthetic 500x375 JPEGs in " + dir.string();
    }
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".jpg") r.paths.push_back(e.path().string());
    std::sort(r.paths.begin(), r.paths.end());
    if (r.paths.empty()) throw IOError("bench_data: no .jpg files in " + dir.string());
    for (const auto& p : r.paths) r.bytes.push_back(read_file_bytes(p));
    return r;
  }();
  return f;
}

// Decode + transform + collate of one batch on this thread, from the files (read from disk each
// time, as a loader does; the page cache keeps them in memory).
void run_batches(benchmark::State& state, const Compose& tf) {
  const Files& f = files();
  Tensor batch = empty({kBatch, 224, 224, 3}, DType::f32);
  int64_t next = 0, epoch_pos = 0;
  for (auto _ : state) {
    for (int64_t k = 0; k < kBatch; ++k, ++epoch_pos) {
      const std::string& path = f.paths[static_cast<size_t>(next++ % static_cast<int64_t>(f.paths.size()))];
      SampleRng rng(1, RngPurpose::augment, 0, static_cast<uint64_t>(epoch_pos));
      const Image out = tf.apply(decode_image(path), rng);
      std::memcpy(static_cast<float*>(batch.data_ptr()) + k * out.numel(), out.f32(), out.nbytes());
    }
    benchmark::DoNotOptimize(batch.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetLabel(f.origin);
}

void BM_decode(benchmark::State& state) {
  const Files& f = files();
  size_t i = 0;
  for (auto _ : state) {
    Image img = decode_image(f.paths[i++ % f.paths.size()]);
    benchmark::DoNotOptimize(img.bytes());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(f.origin);
}

void BM_pipeline_default(benchmark::State& state) { run_batches(state, train_transform(AugmentPreset::default_)); }
void BM_pipeline_eval(benchmark::State& state) { run_batches(state, eval_transform()); }
void BM_pipeline_strong(benchmark::State& state) { run_batches(state, train_transform(AugmentPreset::strong)); }

void BM_augment_default(benchmark::State& state) {
  // The augmentation alone on decoded images: where the time goes besides decoding.
  const Files& f = files();
  std::vector<Image> decoded;
  for (size_t i = 0; i < std::min<size_t>(16, f.bytes.size()); ++i)
    decoded.push_back(decode_image_memory(f.bytes[i].data(), f.bytes[i].size(), f.paths[i]));
  const Compose tf = train_transform(AugmentPreset::default_);
  uint64_t k = 0;
  for (auto _ : state) {
    state.PauseTiming();  // the transform consumes its input: copy outside the measurement
    Image in = decoded[k % decoded.size()];
    state.ResumeTiming();
    SampleRng rng(1, RngPurpose::augment, 0, k++);
    Image out = tf.apply(std::move(in), rng);
    benchmark::DoNotOptimize(out.bytes());
  }
  state.SetItemsProcessed(state.iterations());
}

// The files as a dataset (labels are irrelevant here).
class FileList final : public Dataset {
 public:
  explicit FileList(std::vector<std::string> paths) : paths_(std::move(paths)), classes_{"0"} {}
  int64_t size() const override { return static_cast<int64_t>(paths_.size()); }
  int64_t label(int64_t) const override { return 0; }
  Image load(int64_t i) const override { return decode_image(paths_[static_cast<size_t>(i)]); }
  std::string source(int64_t i) const override { return paths_[static_cast<size_t>(i)]; }
  const std::vector<std::string>& classes() const override { return classes_; }

 private:
  std::vector<std::string> paths_;
  std::vector<std::string> classes_;
};

void BM_loader_default(benchmark::State& state) {
  const Files& f = files();
  // Enough files for several batches per epoch: the list repeated to 8 batches.
  std::vector<std::string> paths;
  while (static_cast<int64_t>(paths.size()) < 8 * kBatch) paths.insert(paths.end(), f.paths.begin(), f.paths.end());
  paths.resize(8 * kBatch);
  LoaderOptions o;
  o.batch_size = kBatch;
  o.num_workers = static_cast<int>(state.range(0));
  o.drop_last = DropLast::yes;
  const DataLoader loader(std::make_shared<FileList>(paths),
                          std::make_shared<Compose>(train_transform(AugmentPreset::default_)), o);
  int64_t images = 0, epoch = 0;
  // One epoch first: the batch tensors' pages are faulted in once, then the allocator recycles them.
  for (Batch& b : loader.epoch(epoch++)) benchmark::DoNotOptimize(b.images.data_ptr());
  for (auto _ : state) {
    for (Batch& b : loader.epoch(epoch++)) {
      images += b.images.size(0);
      benchmark::DoNotOptimize(b.images.data_ptr());
    }
  }
  state.SetItemsProcessed(images);
  state.counters["per_worker"] = benchmark::Counter(static_cast<double>(images) / std::max<int64_t>(1, state.range(0)),
                                                    benchmark::Counter::kIsRate);
  state.SetLabel(f.origin);
}

}  // namespace

BENCHMARK(BM_decode)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_augment_default)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pipeline_default)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pipeline_eval)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pipeline_strong)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_loader_default)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_MAIN();
