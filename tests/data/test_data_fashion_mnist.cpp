// Fashion-MNIST from Debian's dataset-fashion-mnist, the built-in default: sizes, classes and the
// published statistics of the set (6,000 training and 1,000 test images per class; training
// pixel mean 0.2860 and standard deviation 0.3530 after ToTensor, as quoted with the dataset).
// Exits 77 (skipped) when the package is not installed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <wanwu/wanwu.hpp>
#include <wanwu/data/data.hpp>

using namespace wanwu;
using namespace wanwu::data;

TEST_CASE("Fashion-MNIST: sizes, classes, per-class counts, pixel statistics") {
  const auto train = fashion_mnist(Split::train);
  const auto test = fashion_mnist(Split::test);
  CHECK(train->size() == 60000);
  CHECK(test->size() == 10000);
  CHECK(train->rows() == 28);
  CHECK(train->cols() == 28);
  CHECK(train->classes() == fashion_mnist_classes());
  CHECK(class_counts(*train) == std::vector<int64_t>(10, 6000));
  CHECK(class_counts(*test) == std::vector<int64_t>(10, 1000));
  double sum = 0, sum2 = 0;
  for (int64_t i = 0; i < train->size(); ++i) {
    const Image img = train->load(i);
    for (int64_t k = 0; k < img.numel(); ++k) {
      const double v = img.u8()[k] / 255.0;
      sum += v;
      sum2 += v * v;
    }
  }
  const double n = 60000.0 * 784.0, mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
  MESSAGE("mean " << mean << ", std " << sd);
  CHECK(std::abs(mean - 0.2860) < 5e-4);
  CHECK(std::abs(sd - 0.3530) < 5e-4);
  // Balanced classes: inverse-frequency weights are all 1.
  {
    const auto w = class_weights(*train).tolist<double>();
    for (double x : w) CHECK(x == doctest::Approx(1.0));
  }
  // Through the loader as 3-channel 32x32 inputs for an ImageNet-style model.
  const auto rgb = fashion_mnist(Split::test, default_fashion_mnist_dir(), ColorMode::rgb);
  LoaderOptions o;
  o.batch_size = 256;
  o.num_workers = 2;
  const DataLoader loader(rgb, std::make_shared<Compose>(Compose().add(Resize(32, 32)).add(ToTensor())), o);
  auto epoch = loader.epoch(0);
  const auto b = epoch.next();
  REQUIRE(b.has_value());
  CHECK(b->images.shape() == Shape{256, 32, 32, 3});
}

int main(int argc, char** argv) {
  const std::string dir = default_fashion_mnist_dir();
  if (!std::filesystem::exists(std::filesystem::path(dir) / "train-images-idx3-ubyte.gz")) {
    std::printf("SKIPPED: Fashion-MNIST not found in %s (install Debian's dataset-fashion-mnist; "
                "scripts/setup-deps.sh does)\n", dir.c_str());
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
