// The decode and augmentation path under AddressSanitizer (this program is compiled with
// -fsanitize=address; any out-of-bounds access, use after free or leak aborts it and fails the
// test). Inputs: the malformed corpus, thousands of deterministic mutations of valid files of
// every format (byte flips, truncations, insertions, duplicated runs), and the pixel kernels on
// random sizes, boxes and channel counts - including the vectorised resampler's edge cases.
// Every rejected input must be an IOError; nothing else may escape.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <wanwu/data/decode.hpp>
#include <wanwu/data/transforms.hpp>

#include "data_test_util.hpp"

using namespace wanwu;
using namespace wanwu::data;

namespace {

// Applies the training and evaluation presets to a decoded image (small output sizes: the point
// is the memory accesses, not the pixels).
void augment(const Image& img, uint64_t seed) {
  PresetOptions o;
  o.size = 32;
  o.resize = 40;
  for (const Compose& tf : {train_transform(AugmentPreset::default_, o), train_transform(AugmentPreset::strong, o),
                            eval_transform(o)}) {
    SampleRng rng(seed, RngPurpose::augment, 0, 0);
    const Image out = tf.apply(img, rng);
    CHECK(out.height() == 32);
    CHECK(out.width() == 32);
  }
}

std::vector<uint8_t> mutate(const std::vector<uint8_t>& seed_file, SampleRng& rng) {
  std::vector<uint8_t> b = seed_file;
  switch (rng.randint(0, 4)) {
    case 0: {  // flip a few bytes, mostly after the magic so the format is still recognised
      const int64_t k = rng.randint(1, 9);
      for (int64_t i = 0; i < k; ++i)
        b[static_cast<size_t>(rng.randint(std::min<int64_t>(4, b.size() - 1), b.size()))] =
            static_cast<uint8_t>(rng.next_u32());
      break;
    }
    case 1:  // truncate
      b.resize(static_cast<size_t>(rng.randint(1, b.size())));
      break;
    case 2: {  // insert random bytes
      const auto at = static_cast<size_t>(rng.randint(4, b.size()));
      std::vector<uint8_t> junk(static_cast<size_t>(rng.randint(1, 64)));
      for (auto& j : junk) j = static_cast<uint8_t>(rng.next_u32());
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), junk.begin(), junk.end());
      break;
    }
    default: {  // duplicate a run (repeats chunks, markers, table entries)
      const auto from = static_cast<size_t>(rng.randint(0, b.size()));
      const auto len = static_cast<size_t>(rng.randint(1, std::min<int64_t>(256, b.size() - from) + 1));
      const std::vector<uint8_t> run(b.begin() + static_cast<std::ptrdiff_t>(from),
                                     b.begin() + static_cast<std::ptrdiff_t>(from + len));
      const auto at = static_cast<size_t>(rng.randint(0, b.size()));
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), run.begin(), run.end());
      break;
    }
  }
  return b;
}

}  // namespace

TEST_CASE("malformed corpus: IOErrors, no memory errors") {
  const auto corpus = dt::write_malformed_corpus(dt::scratch_dir("asan_malformed"));
  for (const auto& bad : corpus) {
    CAPTURE(bad.path.string());
    CHECK_THROWS_AS(decode_image(bad.path.string()), IOError);
  }
}

TEST_CASE("valid files of every format decode and augment") {
  const auto dir = dt::scratch_dir("asan_valid");
  for (const auto& [name, bytes] : dt::valid_seed_files()) {
    CAPTURE(name);
    dt::write_bytes(dir / name, bytes);
    const Image img = decode_image((dir / name).string());
    CHECK(img.channels() == 3);
    augment(img, 1);
  }
}

TEST_CASE("mutated files: decoded or refused with an IOError") {
  DecodeOptions opt;
  opt.max_pixels = 1 << 20;  // keeps lying headers cheap
  int64_t decoded = 0, refused = 0;
  SampleRng rng(2024, RngPurpose::user, 0, 0);
  for (const auto& [name, seed_file] : dt::valid_seed_files()) {
    for (int i = 0; i < 2500; ++i) {
      const auto bytes = mutate(seed_file, rng);
      CAPTURE(name);
      CAPTURE(i);
      try {
        const Image img = decode_image_memory(bytes.data(), bytes.size(), name, opt);
        CHECK(img.height() * img.width() <= opt.max_pixels);
        ++decoded;
        if (i % 8 == 0) augment(img, static_cast<uint64_t>(i));
      } catch (const IOError&) {
        ++refused;
      }
    }
  }
  MESSAGE("mutants decoded: " << decoded << ", refused: " << refused);
  CHECK(decoded > 0);
  CHECK(refused > 0);
}

TEST_CASE("pixel kernels on random sizes, boxes and channel counts") {
  SampleRng rng(7, RngPurpose::user, 0, 0);
  for (int it = 0; it < 300; ++it) {
    const int64_t h = rng.randint(1, 90), w = rng.randint(1, 90);
    const int64_t c = std::array<int64_t, 4>{1, 3, 2, 4}[static_cast<size_t>(rng.randint(0, 4))];
    const Image img = dt::random_image(h, w, c, static_cast<uint64_t>(it));
    CAPTURE(img.describe());
    // resize / resized_crop to sizes around and across the source (both directions, the
    // eight-row blocks and their remainders, the 16-wide vertical chunks and their tails)
    const int64_t oh = rng.randint(1, 70), ow = rng.randint(1, 70);
    CHECK(resize(img, oh, ow).numel() == oh * ow * c);
    const int64_t top = rng.randint(0, h), left = rng.randint(0, w);
    const CropBox box{top, left, rng.randint(1, h - top + 1), rng.randint(1, w - left + 1)};
    CHECK(resized_crop(img, box, oh, ow).height() == oh);
    // crops that leave the image (zero padding), centre crops larger and smaller than it
    CHECK(crop(img, {rng.randint(-20, h + 20), rng.randint(-20, w + 20), rng.randint(1, 40), rng.randint(1, 40)})
              .channels() == c);
    CHECK(center_crop(img, rng.randint(1, 120), rng.randint(1, 120)).channels() == c);
    Image f = img;
    hflip_(f);
    if (c == 1 || c == 3) {
      Image j = img;
      adjust_brightness_(j, 1.3);
      adjust_contrast_(j, 0.7);
      adjust_saturation_(j, 1.6);
      adjust_hue_(j, -0.2);
      CHECK(to_grayscale(j, 3).channels() == 3);
    }
    Image n = normalize(img, std::vector<double>(static_cast<size_t>(c), 0.5),
                        std::vector<double>(static_cast<size_t>(c), 0.25));
    const int64_t eh = rng.randint(0, h + 1), ew = rng.randint(0, w + 1);
    erase_(n, {rng.randint(0, h - eh + 1), rng.randint(0, w - ew + 1), eh, ew}, EraseValue::random_normal(), &rng);
  }
}
