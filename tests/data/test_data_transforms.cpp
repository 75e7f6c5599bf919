// Transforms and the pixel kernels under them: hand-computed Pillow results (checked against
// PIL by hand once; tests/data/torchvision_reference.py checks whole images), a plain scalar
// transcription of Pillow's resampler against the vectorised one, torchvision's geometry rules
// (round-half-even offsets, zero padding, RandomResizedCrop's fallback), the random streams'
// determinism, and the errors that bad arguments give.
#include "harness.hpp"

#include <wanwu/data/data.hpp>

#include "data_test_util.hpp"

using namespace wanwu;
using namespace wanwu::data;

namespace {

Image from_u8(int64_t h, int64_t w, int64_t c, const std::vector<uint8_t>& v) {
  REQUIRE(static_cast<int64_t>(v.size()) == h * w * c);
  Image img(h, w, c, PixelType::u8);
  std::memcpy(img.u8(), v.data(), v.size());
  return img;
}
std::vector<uint8_t> u8_of(const Image& img) { return {img.u8(), img.u8() + img.numel()}; }
std::vector<float> f32_of(const Image& img) { return {img.f32(), img.f32() + img.numel()}; }

// Pillow's ImagingResample for 8-bit images and the bilinear filter, transcribed loop for loop
// (one pixel at a time, horizontal pass into a full temporary, then vertical).
std::vector<uint8_t> pillow_resize_reference(const Image& src, int64_t oh, int64_t ow) {
  const int64_t C = src.channels();
  auto coeffs = [](int64_t in, int64_t out, std::vector<int>& bounds, std::vector<int>& kk) {
    const double scale = double(in) / double(out), fscale = std::max(scale, 1.0), support = fscale;
    const int ksize = int(std::ceil(support)) * 2 + 1;
    bounds.assign(size_t(out) * 2, 0);
    kk.assign(size_t(out) * ksize, 0);
    for (int64_t xx = 0; xx < out; ++xx) {
      const double center = (double(xx) + 0.5) * scale;
      int xmin = std::max(0, int(center - support + 0.5));
      const int xmax = std::min(int(in), int(center + support + 0.5)) - xmin;
      std::vector<double> k(static_cast<size_t>(xmax));
      double ww = 0;
      for (int x = 0; x < xmax; ++x) {
        volatile double t = (double(x + xmin) - center + 0.5) / fscale;  // no fused multiply-add
        const double a = std::fabs(t);
        k[x] = a < 1.0 ? 1.0 - a : 0.0;
        ww += k[x];
      }
      for (int x = 0; x < xmax; ++x) {
        const double v = (ww != 0.0 ? k[x] / ww : k[x]) * double(1 << 22);
        kk[xx * ksize + x] = v < 0 ? int(-0.5 + v) : int(0.5 + v);
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    return ksize;
  };
  auto clip = [](int s) { return uint8_t(std::clamp(s >> 22, 0, 255)); };
  const int64_t ih = src.height(), iw = src.width();
  std::vector<uint8_t> tmp(size_t(ih * ow * C));
  std::vector<int> b, k;
  int ks = coeffs(iw, ow, b, k);
  for (int64_t y = 0; y < ih; ++y)
    for (int64_t xx = 0; xx < ow; ++xx)
      for (int64_t c = 0; c < C; ++c) {
        int s = 1 << 21;
        for (int x = 0; x < b[xx * 2 + 1]; ++x) s += src.u8()[(y * iw + b[xx * 2] + x) * C + c] * k[xx * ks + x];
        tmp[(y * ow + xx) * C + c] = ow == iw ? src.u8()[(y * iw + xx) * C + c] : clip(s);
      }
  std::vector<uint8_t> out(size_t(oh * ow * C));
  ks = coeffs(ih, oh, b, k);
  for (int64_t yy = 0; yy < oh; ++yy)
    for (int64_t x = 0; x < ow * C; ++x) {
      int s = 1 << 21;
      for (int y = 0; y < b[yy * 2 + 1]; ++y) s += tmp[(b[yy * 2] + y) * ow * C + x] * k[yy * ks + y];
      out[yy * ow * C + x] = oh == ih ? tmp[yy * ow * C + x] : clip(s);
    }
  return out;
}

}  // namespace

TEST_CASE("resize: Pillow's antialiased bilinear, hand-computed") {
  // Shrinking [0 100 200 255] to 2 pixels: support 2, weights 3/7 3/7 1/7 -> 71.4 and
  // 1/7 3/7 3/7 over 100 200 255 -> 209.3 (PIL gives 71 209).
  CHECK(u8_of(resize(from_u8(1, 4, 1, {0, 100, 200, 255}), 1, 2)) == std::vector<uint8_t>{71, 209});
  // Enlarging [10 50] to 4: triangle weights 1 | 3/4 1/4 | 1/4 3/4 | 1 -> 10 20 40 50.
  CHECK(u8_of(resize(from_u8(1, 2, 1, {10, 50}), 1, 4)) == std::vector<uint8_t>{10, 20, 40, 50});
  // Vertical works the same way, per channel.
  CHECK(u8_of(resize(from_u8(2, 1, 3, {10, 0, 255, 50, 100, 255}), 4, 1)) ==
        std::vector<uint8_t>{10, 0, 255, 20, 25, 255, 40, 75, 255, 50, 100, 255});
  // A constant image stays constant at any size.
  Image flat(37, 23, 3, PixelType::u8);
  std::memset(flat.u8(), 173, flat.nbytes());
  for (const Image& r : {resize(flat, 11, 50), resize(flat, 80, 9)})
    for (int64_t i = 0; i < r.numel(); ++i) REQUIRE(r.u8()[i] == 173);
}

TEST_CASE("resize: the vectorised resampler equals a plain transcription of Pillow's") {
  SampleRng rng(3, RngPurpose::user, 0, 0);
  for (int it = 0; it < 60; ++it) {
    const int64_t h = rng.randint(1, 70), w = rng.randint(1, 70), c = it % 3 == 0 ? 1 : 3;
    const int64_t oh = rng.randint(1, 90), ow = rng.randint(1, 90);
    const Image img = dt::random_image(h, w, c, static_cast<uint64_t>(it));
    CAPTURE(img.describe());
    CAPTURE(oh);
    CAPTURE(ow);
    REQUIRE(u8_of(resize(img, oh, ow)) == pillow_resize_reference(img, oh, ow));
  }
  // resized_crop = crop then resize
  const Image img = dt::random_image(50, 60, 3, 99);
  const CropBox box{7, 11, 31, 40};
  CHECK(u8_of(resized_crop(img, box, 17, 23)) == u8_of(resize(crop(img, box), 17, 23)));
}

TEST_CASE("Resize: shorter side as torchvision computes it") {
  CHECK(resize_shorter_side_size(375, 500, 256) == std::pair<int64_t, int64_t>{256, 341});  // int(341.33)
  CHECK(resize_shorter_side_size(500, 375, 256) == std::pair<int64_t, int64_t>{341, 256});
  CHECK(resize_shorter_side_size(300, 300, 224) == std::pair<int64_t, int64_t>{224, 224});
  CHECK(resize_shorter_side_size(100, 1000, 50, 300) == std::pair<int64_t, int64_t>{30, 300});  // int(300*50/500)
  SampleRng rng(0, RngPurpose::augment, 0, 0);
  const Image img = dt::photo_like(75, 100);
  CHECK(Resize(60).apply(img, rng).width() == 80);
  CHECK(Resize(30, 20).apply(img, rng).height() == 30);
  // The same size returns the image unchanged (torchvision returns it as is).
  CHECK(u8_of(Resize(75).apply(img, rng)) == u8_of(img));
  CHECK_THROWS_AS(Resize(0), ValueError);
  CHECK_THROWS_AS(Resize::with_max_size(256, 256), ValueError);
  Image f = to_float(img);
  CHECK_THROWS_AS(Resize(10).apply(f, rng), DTypeError);
  // An elongated image would grow past kMaxResizePixels: a 1100x1 strip at Resize(256) is
  // 281600x256 = 72 M pixels (64 Mi allowed), refused before anything is allocated; 1000x1 gives
  // 256000x256 = 62.5 M and is resized.
  const Image strip(1, 1100, 3, PixelType::u8);
  try {
    (void)Resize(256).apply(strip, rng);
    FAIL("a 1100x1 image was resized to 281600x256");
  } catch (const ImageTooLargeError& e) {
    CHECK(std::string(e.what()).find("281600x256 = 72089600 pixels, over the limit of 67108864") != std::string::npos);
  }
  const Image ok = Resize(256).apply(Image(1, 1000, 3, PixelType::u8), rng);
  CHECK(ok.width() == 256000);
  CHECK(ok.height() == 256);
}

TEST_CASE("crop and center_crop: torchvision's rounding and zero padding") {
  const Image img = from_u8(5, 5, 1, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                      15, 16, 17, 18, 19, 20, 21, 22, 23, 24});
  // (5 - 2) / 2 = 1.5 rounds to 2 (half to even)
  CHECK(u8_of(center_crop(img, 2, 2)) == std::vector<uint8_t>{12, 13, 17, 18});
  // (5 - 4) / 2 = 0.5 rounds to 0
  CHECK(u8_of(center_crop(img, 1, 4)) == std::vector<uint8_t>{10, 11, 12, 13});
  // Larger than the image: padded left/top by (7-5)//2 = 1, right/bottom by (7-5+1)//2 = 1.
  const Image p = center_crop(img, 7, 6);
  CHECK(p.height() == 7);
  CHECK(p.width() == 6);
  // Row 0 is padding; rows 1..5 are the image rows with one padding column on the right
  // (left (6-5)//2 = 0, right (6-5+1)//2 = 1); row 6 is padding.
  std::vector<uint8_t> want(42, 0);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 5; ++x) want[(y + 1) * 6 + x] = static_cast<uint8_t>(y * 5 + x);
  CHECK(u8_of(p) == want);
  // crop outside the image fills zeros
  CHECK(u8_of(crop(img, {-1, 3, 2, 3})) == std::vector<uint8_t>{0, 0, 0, 3, 4, 0});
  CHECK_THROWS_AS(center_crop(img, 0, 2), ValueError);
  CHECK_THROWS_AS(resized_crop(img, {3, 3, 3, 1}, 2, 2), ValueError);
}

TEST_CASE("hflip mirrors each row, any channel count and type") {
  Image a = from_u8(2, 3, 2, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  hflip_(a);
  CHECK(u8_of(a) == std::vector<uint8_t>{5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8});
  Image f = to_float(from_u8(1, 2, 3, {0, 51, 255, 255, 0, 0}));
  hflip_(f);
  CHECK(f32_of(f) == std::vector<float>{1.0f, 0.0f, 0.0f, 0.0f, 0.2f, 1.0f});
}

TEST_CASE("colour adjustments: Pillow's ImageEnhance and torchvision's hue, hand-computed") {
  // Brightness: 0.5 * 101 = 50.5 -> 50; 1.5 * 101 = 151.5 -> 151; 1.5 * 200 = 300 -> 255.
  Image b = from_u8(1, 1, 3, {101, 200, 0});
  adjust_brightness_(b, 0.5);
  CHECK(u8_of(b) == std::vector<uint8_t>{50, 100, 0});
  b = from_u8(1, 1, 3, {101, 200, 0});
  adjust_brightness_(b, 1.5);
  CHECK(u8_of(b) == std::vector<uint8_t>{151, 255, 0});
  // Contrast: mean grey 150; 150 + 0.5 * (100 - 150) = 125, 150 + 0.5 * 50 = 175.
  Image c = from_u8(1, 2, 3, {100, 100, 100, 200, 200, 200});
  CHECK(pil_mean_gray(c) == 150);
  adjust_contrast_(c, 0.5);
  CHECK(u8_of(c) == std::vector<uint8_t>{125, 125, 125, 175, 175, 175});
  // Saturation 0 is PIL's greyscale: pure red -> L = 76.
  Image s = from_u8(1, 1, 3, {255, 0, 0});
  adjust_saturation_(s, 0.0);
  CHECK(u8_of(s) == std::vector<uint8_t>{76, 76, 76});
  // Saturation 2 on (100, 50, 50): L = (100*19595 + 50*38470 + 50*7471 + 32768) >> 16 = 65;
  // 65 + 2 * 35 = 135, 65 - 2 * 15 = 35.
  s = from_u8(1, 1, 3, {100, 50, 50});
  adjust_saturation_(s, 2.0);
  CHECK(u8_of(s) == std::vector<uint8_t>{135, 35, 35});
  // Hue: red (H 0) shifted by uint8(85) is pure green; by uint8(-85) = 171 it is (6, 0, 255).
  Image h = from_u8(1, 1, 3, {255, 0, 0});
  adjust_hue_(h, 1.0 / 3.0);
  CHECK(u8_of(h) == std::vector<uint8_t>{0, 255, 0});
  h = from_u8(1, 1, 3, {255, 0, 0});
  adjust_hue_(h, -1.0 / 3.0);
  CHECK(u8_of(h) == std::vector<uint8_t>{6, 0, 255});
  // Grey images: saturation and hue leave them alone, brightness applies.
  Image g = from_u8(1, 2, 1, {40, 90});
  adjust_saturation_(g, 0.3);
  adjust_hue_(g, 0.4);
  CHECK(u8_of(g) == std::vector<uint8_t>{40, 90});
  CHECK(u8_of(to_grayscale(from_u8(1, 1, 3, {255, 0, 0}), 3)) == std::vector<uint8_t>{76, 76, 76});

  Image bad = from_u8(1, 1, 3, {1, 2, 3});
  CHECK_THROWS_AS(adjust_brightness_(bad, -0.1), ValueError);
  CHECK_THROWS_AS(adjust_hue_(bad, 0.6), ValueError);
  Image f = to_float(bad);
  CHECK_THROWS_AS(adjust_contrast_(f, 1.2), DTypeError);
  Image four(2, 2, 4, PixelType::u8);
  CHECK_THROWS_AS(adjust_saturation_(four, 1.2), ValueError);
}

TEST_CASE("colour kernels equal Pillow's per-value formulas at every size (vector bodies and tails)") {
  for (int64_t w : {1, 5, 15, 16, 17, 33, 100}) {
    const Image img = dt::random_image(3, w, 3, static_cast<uint64_t>(w));
    CAPTURE(w);
    const int64_t n = 3 * w;
    // mean grey: int(mean of L + 0.5), L = (19595 r + 38470 g + 7471 b + 32768) >> 16
    int64_t sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* p = img.u8() + 3 * i;
      sum += (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
    }
    const int mean = static_cast<int>(double(sum) / double(n) + 0.5);
    CHECK(pil_mean_gray(img) == mean);
    // blends: float32 a + alpha * (b - a), clipped, truncated
    const auto blend = [](int a, int b, float alpha) {
      volatile float prod = alpha * float(b - a);  // rounded before the add
      const float v = float(a) + prod;
      return uint8_t(v <= 0 ? 0 : v >= 255 ? 255 : int(v));
    };
    for (float alpha : {0.0f, 0.37f, 1.0f, 1.63f}) {
      Image b = img, c = img, s = img;
      adjust_brightness_(b, alpha);
      adjust_contrast_(c, alpha);
      adjust_saturation_(s, alpha);
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* p = img.u8() + 3 * i;
        const int y = (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
        for (int k = 0; k < 3; ++k) {
          REQUIRE(b.u8()[3 * i + k] == blend(0, p[k], alpha));
          REQUIRE(c.u8()[3 * i + k] == blend(mean, p[k], alpha));
          REQUIRE(s.u8()[3 * i + k] == blend(y, p[k], alpha));
        }
      }
    }
  }
}

TEST_CASE("ToTensor and Normalize: float32 arithmetic, fused or not") {
  const Image img = from_u8(1, 2, 3, {0, 128, 255, 10, 20, 30});
  const Image f = to_float(img);
  CHECK(f32_of(f) == std::vector<float>{0.0f, 128.0f / 255.0f, 1.0f, 10.0f / 255.0f, 20.0f / 255.0f, 30.0f / 255.0f});
  const std::vector<double> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  const Image n = normalize(f, mean, std);
  CHECK(n.f32()[1] == (128.0f / 255.0f - 0.456f) / 0.224f);
  CHECK(n.f32()[5] == (30.0f / 255.0f - 0.406f) / 0.225f);
  // Compose fuses ToTensor + Normalize into a lookup; the floats are the same.
  SampleRng rng(0, RngPurpose::augment, 0, 0);
  const Image big = dt::random_image(31, 29, 3, 5);
  const Image fused = Compose().add(ToTensor()).add(Normalize(mean, std)).apply(big, rng);
  const Image split = Normalize(mean, std).apply(ToTensor().apply(big, rng), rng);
  CHECK(f32_of(fused) == f32_of(split));
  CHECK_THROWS_AS(Normalize({0.5, 0.5}, {0.5}), ValueError);
  CHECK_THROWS_AS(Normalize({0.5}, {0.0}), ValueError);
  CHECK_THROWS_AS(normalize(big, {0.1, 0.2}, {1.0, 1.0}), ValueError);
}

TEST_CASE("RandomResizedCrop: boxes inside the image, torchvision's fallback") {
  const RandomResizedCrop rrc(224);
  for (int64_t i = 0; i < 2000; ++i) {
    SampleRng rng(5, RngPurpose::augment, 0, static_cast<uint64_t>(i));
    const CropBox b = rrc.sample(375, 500, rng);
    REQUIRE(b.height > 0);
    REQUIRE(b.width > 0);
    REQUIRE(b.top >= 0);
    REQUIRE(b.left >= 0);
    REQUIRE(b.top + b.height <= 375);
    REQUIRE(b.left + b.width <= 500);
    const double area = double(b.height * b.width) / (375.0 * 500.0);
    const double ratio = double(b.width) / double(b.height);
    // rounding w and h to integers moves area and ratio slightly past the sampled range
    REQUIRE(area > 0.075);
    REQUIRE(area < 1.0001);
    REQUIRE(ratio > 0.74);
    REQUIRE(ratio < 1.35);
  }
  // A 10x1000 strip: no box with ratio <= 4/3 has 8% of the area, so all 10 attempts fail and
  // the fallback crops h = 10, w = round(10 * 4/3) = 13 from the centre: left (1000 - 13) // 2.
  SampleRng rng(1, RngPurpose::augment, 0, 0);
  CHECK(rrc.sample(10, 1000, rng) == CropBox{0, 493, 10, 13});
  // ...and the transposed strip: w = 10, h = round(10 / (3/4)) = 13.
  CHECK(rrc.sample(1000, 10, rng) == CropBox{493, 0, 13, 10});
  const Image out = rrc.apply(dt::photo_like(60, 80), rng);
  CHECK(out.height() == 224);
  CHECK(out.width() == 224);
  CHECK_THROWS_AS(RandomResizedCrop(224, {0.5, 0.2}), ValueError);
  CHECK_THROWS_AS(RandomResizedCrop(224, {0.0, 1.0}), ValueError);
  CHECK_THROWS_AS(RandomResizedCrop(224, {0.08, 1.0}, {-1.0, 2.0}), ValueError);
}

TEST_CASE("ColorJitter: ranges, random order, no draws for disabled adjustments") {
  const ColorJitter cj(0.4, 0.3, 0.2, 0.1);
  std::array<int, 24> order_counts{};
  for (int64_t i = 0; i < 2400; ++i) {
    SampleRng rng(9, RngPurpose::augment, 0, static_cast<uint64_t>(i));
    const auto p = cj.sample(rng);
    REQUIRE(p.brightness.has_value());
    REQUIRE(*p.brightness >= 0.6);
    REQUIRE(*p.brightness <= 1.4);
    REQUIRE(*p.contrast >= 0.7);
    REQUIRE(*p.contrast <= 1.3);
    REQUIRE(*p.saturation >= 0.8);
    REQUIRE(*p.saturation <= 1.2);
    REQUIRE(*p.hue >= -0.1);
    REQUIRE(*p.hue <= 0.1);
    std::array<int, 4> sorted = p.order;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(sorted == std::array<int, 4>{0, 1, 2, 3});
    // Lehmer code of the permutation -> 0..23
    int code = 0;
    for (int a = 0; a < 4; ++a) {
      int smaller = 0;
      for (int b2 = a + 1; b2 < 4; ++b2) smaller += p.order[b2] < p.order[a];
      code = code * (4 - a) + smaller;
    }
    ++order_counts[static_cast<size_t>(code)];
  }
  // Each of the 24 orders has probability 1/24: 100 expected; 5 standard deviations is 49.
  for (int k : order_counts) CHECK(std::abs(k - 100) < 49);
  const ColorJitter b_only(0.2);
  SampleRng rng(1, RngPurpose::augment, 0, 0);
  const auto p = b_only.sample(rng);
  CHECK(p.brightness.has_value());
  CHECK_FALSE(p.contrast.has_value());
  CHECK_FALSE(p.saturation.has_value());
  CHECK_FALSE(p.hue.has_value());
  // Applying fixed parameters is applying the functional ops in that order.
  ColorJitter::Params fixed;
  fixed.order = {3, 1, 0, 2};
  fixed.brightness = 1.2;
  fixed.contrast = 0.8;
  fixed.saturation = 1.5;
  fixed.hue = -0.05;
  Image a = dt::photo_like(20, 30), e = a;
  ColorJitter::apply_params(a, fixed);
  adjust_hue_(e, -0.05);
  adjust_contrast_(e, 0.8);
  adjust_brightness_(e, 1.2);
  adjust_saturation_(e, 1.5);
  CHECK(u8_of(a) == u8_of(e));
  CHECK_THROWS_AS(ColorJitter(0.1, 0.1, 0.1, 0.6), ValueError);
  CHECK_THROWS_AS(ColorJitter(-0.1), ValueError);
  CHECK_THROWS_AS(ColorJitter::with_ranges(Range{0.5, 0.4}, std::nullopt, std::nullopt, std::nullopt), ValueError);
  const auto ranged = ColorJitter::with_ranges(Range{0.5, 0.6}, std::nullopt, Range{1.0, 1.0}, std::nullopt);
  CHECK(ranged.describe() == "ColorJitter(brightness=(0.5, 0.6), contrast=None, saturation=None, hue=None)");
}

TEST_CASE("RandomHorizontalFlip and RandomErasing") {
  const RandomHorizontalFlip flip(0.3);
  int flips = 0;
  for (int64_t i = 0; i < 10000; ++i) {
    SampleRng rng(2, RngPurpose::augment, 0, static_cast<uint64_t>(i));
    flips += flip.sample(rng);
  }
  // Binomial(10000, 0.3): sd 45.8; 5 sd = 229.
  CHECK(std::abs(flips - 3000) < 229);
  CHECK_THROWS_AS(RandomHorizontalFlip(1.5), ValueError);

  const RandomErasing er(1.0);
  int erased = 0;
  for (int64_t i = 0; i < 2000; ++i) {
    SampleRng rng(3, RngPurpose::augment, 0, static_cast<uint64_t>(i));
    const auto box = er.sample(224, 224, rng);
    if (!box) continue;
    ++erased;
    REQUIRE(box->height < 224);
    REQUIRE(box->width < 224);
    REQUIRE(box->top + box->height <= 224);
    REQUIRE(box->left + box->width <= 224);
    const double area = double(box->height * box->width) / (224.0 * 224.0);
    REQUIRE(area > 0.015);
    REQUIRE(area < 0.35);
  }
  CHECK(erased > 1900);  // a fitting box is found within 10 attempts almost always
  // The erased box holds the value; everything else is untouched.
  Image img = to_float(dt::photo_like(40, 50));
  const Image before = img;
  SampleRng rng(4, RngPurpose::augment, 0, 0);
  const RandomErasing er2(1.0, {0.1, 0.2}, {0.5, 2.0}, EraseValue::constant({-1.0, -2.0, -3.0}));
  SampleRng probe = rng;
  const auto box = er2.sample(40, 50, probe);
  REQUIRE(box.has_value());
  img = er2.apply(std::move(img), rng);
  for (int64_t y = 0; y < 40; ++y)
    for (int64_t x = 0; x < 50; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        const bool inside = y >= box->top && y < box->top + box->height && x >= box->left && x < box->left + box->width;
        const float v = img.f32()[(y * 50 + x) * 3 + c];
        if (inside) REQUIRE(v == float(-1.0 - double(c)));
        else REQUIRE(v == before.f32()[(y * 50 + x) * 3 + c]);
      }
  CHECK_THROWS_AS(RandomErasing(0.5, {0.5, 1.5}), ValueError);
  // Random values: standard normal noise inside the box.
  Image noisy = to_float(dt::photo_like(64, 64));
  erase_(noisy, {0, 0, 64, 64}, EraseValue::random_normal(), &rng);
  double m = 0, m2 = 0;
  for (int64_t i = 0; i < noisy.numel(); ++i) {
    m += noisy.f32()[i];
    m2 += double(noisy.f32()[i]) * noisy.f32()[i];
  }
  m /= double(noisy.numel());
  m2 /= double(noisy.numel());
  CHECK(std::abs(m) < 0.05);         // 12288 values: sd of the mean 0.009
  CHECK(std::abs(m2 - 1.0) < 0.07);  // sd of the second moment sqrt(2/12288) = 0.013
}

TEST_CASE("presets and determinism per (seed, epoch, index)") {
  const Image img = dt::photo_like(300, 400);
  for (AugmentPreset p : {AugmentPreset::none, AugmentPreset::default_, AugmentPreset::strong}) {
    const Compose tf = train_transform(p);
    const Image a = tf(img, 1, 0, 5), b = tf(img, 1, 0, 5);
    REQUIRE(a.type() == PixelType::f32);
    REQUIRE(a.height() == 224);
    REQUIRE(a.width() == 224);
    REQUIRE(a.channels() == 3);
    CHECK(f32_of(a) == f32_of(b));
    if (p != AugmentPreset::none) {
      CHECK(f32_of(tf(img, 1, 0, 6)) != f32_of(a));
      CHECK(f32_of(tf(img, 1, 1, 5)) != f32_of(a));
      CHECK(f32_of(tf(img, 2, 0, 5)) != f32_of(a));
    }
  }
  CHECK(parse_augment_preset("default") == AugmentPreset::default_);
  CHECK(parse_augment_preset("strong") == AugmentPreset::strong);
  CHECK(parse_augment_preset("none") == AugmentPreset::none);
  CHECK_THROWS_WITH_AS(parse_augment_preset("heavy"), doctest::Contains("expected none, default or strong"),
                       ValueError);
  CHECK(augment_preset_name(AugmentPreset::default_) == std::string("default"));
  CHECK(train_transform(AugmentPreset::default_).describe() ==
        "Compose(RandomResizedCrop(size=(224, 224), scale=(0.08, 1), ratio=(0.75, 1.33333), bilinear, antialias), "
        "RandomHorizontalFlip(p=0.5), ColorJitter(brightness=(0.8, 1.2), contrast=(0.8, 1.2), "
        "saturation=(0.8, 1.2), hue=None), ToTensor(), Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, "
        "0.225]))");
  CHECK(eval_transform().describe() ==
        "Compose(Resize(size=256, bilinear, antialias), CenterCrop(size=(224, 224)), ToTensor(), "
        "Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))");
  // Evaluation equals the functional steps.
  const Image e = eval_transform()(img, 0, 0, 0);
  const Image manual = normalize(center_crop(resize(img, 256, 341), 224, 224), imagenet_mean(), imagenet_std());
  CHECK(f32_of(e) == f32_of(manual));
}

TEST_CASE("Image and Tensor conversions, collate") {
  const Image img = dt::random_image(4, 5, 3, 8);
  const Tensor t = image_to_tensor(img);
  CHECK(t.shape() == Shape{4, 5, 3});
  CHECK(t.dtype() == DType::u8);
  CHECK(u8_of(tensor_to_image(t)) == u8_of(img));
  // A permuted (non-contiguous) tensor converts by value.
  const Tensor p = t.permute({1, 0, 2});
  const Image ip = tensor_to_image(p);
  CHECK(ip.height() == 5);
  CHECK(ip.u8()[(2 * 4 + 1) * 3 + 2] == img.u8()[(1 * 5 + 2) * 3 + 2]);
  const Tensor batch = collate({img, img});
  CHECK(batch.shape() == Shape{2, 4, 5, 3});
  CHECK(batch.select(0, 1).tolist<int>() == t.tolist<int>());
  CHECK_THROWS_AS(collate({img, dt::random_image(4, 6, 3, 1)}), ShapeError);
  CHECK_THROWS_AS(tensor_to_image(zeros({2, 2, 2, 2})), ShapeError);
}
