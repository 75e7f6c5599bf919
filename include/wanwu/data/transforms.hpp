// Transforms: torchvision's training and evaluation transforms, as objects that map an Image to
// an Image with their randomness drawn from the sample's own stream (random.hpp).
//
// Each random transform separates *sampling* its parameters (`sample`, public: the parity tests
// compare its distribution with torchvision's `get_params`) from *applying* them (the
// deterministic kernels of image_ops.hpp), and samples with torchvision's algorithm: the same
// 10 attempts and fallback in RandomResizedCrop and RandomErasing, the same float32 uniforms, the
// same random order of ColorJitter's four adjustments. So a recipe written for torchvision means
// the same here, and a sample's augmentation depends only on (seed, epoch, index).
//
// Transforms are immutable after construction and shared between the loader's worker threads;
// a virtual call per image per transform is the only indirection (the kernels loop over raw
// rows). Compose runs ToTensor followed by Normalize as one table lookup.
//
// Presets: `train_transform(AugmentPreset::default_)` is the fine-tuning recipe
// RandomResizedCrop(224) + RandomHorizontalFlip + ColorJitter(0.2, 0.2, 0.2) + ToTensor +
// Normalize(ImageNet); `strong` uses ColorJitter(0.4, 0.4, 0.4, 0.1) and adds RandomErasing(0.25);
// `none` is the evaluation transform Resize(256) + CenterCrop(224) + ToTensor + Normalize.
#pragma once

#include <array>
#include <cmath>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "image_ops.hpp"
#include "random.hpp"

namespace wanwu::data {

class Transform {
 public:
  virtual ~Transform() = default;
  // Takes the image by value so in-place steps reuse its buffer.
  virtual Image apply(Image img, SampleRng& rng) const = 0;
  virtual std::string describe() const = 0;
};
using TransformPtr = std::shared_ptr<const Transform>;

// A closed interval of parameter values, (min, max).
struct Range {
  double lo = 0.0, hi = 0.0;
};

namespace detail {
inline std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
inline void check_range(const Range& r, const char* op, const char* what, bool positive) {
  WANWU_CHECK_VALUE(std::isfinite(r.lo) && std::isfinite(r.hi) && r.lo <= r.hi, op, ": ", what,
                    " must be (min, max) with min <= max, got (", r.lo, ", ", r.hi, ")");
  WANWU_CHECK_VALUE(!positive || r.lo > 0.0, op, ": ", what, " must be positive, got (", r.lo, ", ", r.hi, ")");
}
}  // namespace detail

// Resize: the shorter side to `size` (keeping the aspect ratio, torchvision's int() rounding of
// the longer side; optionally capped by max_size), or to exactly height x width. Bilinear with
// PIL's antialiasing.
class Resize final : public Transform {
 public:
  explicit Resize(int64_t size) : size_(size) {
    WANWU_CHECK_VALUE(size > 0, "Resize: size must be positive, got ", size);
  }
  Resize(int64_t height, int64_t width) : height_(height), width_(width) {
    WANWU_CHECK_VALUE(height > 0 && width > 0, "Resize: size must be positive, got ", height, "x", width);
  }
  // The shorter side to `size`, unless the longer would then exceed max_size (torchvision's
  // Resize(size, max_size=...)).
  static Resize with_max_size(int64_t size, int64_t max_size) {
    Resize r(size);
    WANWU_CHECK_VALUE(max_size > size, "Resize: max_size = ", max_size,
                      " must be strictly greater than the requested size for the smaller edge, ", size);
    r.max_size_ = max_size;
    return r;
  }
  std::pair<int64_t, int64_t> output_size(int64_t h, int64_t w) const {
    if (size_ > 0) return resize_shorter_side_size(h, w, size_, max_size_);
    return {height_, width_};
  }
  Image apply(Image img, SampleRng&) const override {
    detail::check_u8(img, "Resize");
    const auto [oh, ow] = output_size(img.height(), img.width());
    if (oh == img.height() && ow == img.width()) return img;  // torchvision returns the image as is
    return resize(img, oh, ow);
  }
  std::string describe() const override {
    if (size_ > 0)
      return detail::str("Resize(size=", size_, max_size_ ? detail::str(", max_size=", max_size_) : "",
                         ", bilinear, antialias)");
    return detail::str("Resize(size=(", height_, ", ", width_, "), bilinear, antialias)");
  }

 private:
  int64_t size_ = 0, max_size_ = 0;
  int64_t height_ = 0, width_ = 0;
};

class CenterCrop final : public Transform {
 public:
  explicit CenterCrop(int64_t size) : CenterCrop(size, size) {}
  CenterCrop(int64_t height, int64_t width) : height_(height), width_(width) {
    WANWU_CHECK_VALUE(height > 0 && width > 0, "CenterCrop: size must be positive, got ", height, "x", width);
  }
  Image apply(Image img, SampleRng&) const override {
    if (img.height() == height_ && img.width() == width_) return img;
    return center_crop(img, height_, width_);
  }
  std::string describe() const override { return detail::str("CenterCrop(size=(", height_, ", ", width_, "))"); }

 private:
  int64_t height_, width_;
};

// torchvision.transforms.RandomResizedCrop: a crop of random area (scale x the image area) and
// aspect ratio (log-uniform in `ratio`), resized to the output size.
class RandomResizedCrop final : public Transform {
 public:
  explicit RandomResizedCrop(int64_t size, Range scale = {0.08, 1.0}, Range ratio = {3.0 / 4.0, 4.0 / 3.0})
      : RandomResizedCrop(size, size, scale, ratio) {}
  RandomResizedCrop(int64_t height, int64_t width, Range scale, Range ratio)
      : height_(height), width_(width), scale_(scale), ratio_(ratio) {
    WANWU_CHECK_VALUE(height > 0 && width > 0, "RandomResizedCrop: size must be positive, got ", height, "x", width);
    detail::check_range(scale, "RandomResizedCrop", "scale", true);
    detail::check_range(ratio, "RandomResizedCrop", "ratio", true);
  }

  // torchvision's get_params(img, scale, ratio) for an image of height x width: up to 10
  // attempts at a box that fits, then the central crop clamped to the ratio range.
  CropBox sample(int64_t height, int64_t width, SampleRng& rng) const {
    WANWU_CHECK_VALUE(height > 0 && width > 0, "RandomResizedCrop: empty image ", height, "x", width);
    const double area = static_cast<double>(height * width);
    // torch.log(torch.tensor(ratio)) is float32, as are the uniforms and exp.
    const float log_lo = std::log(static_cast<float>(ratio_.lo)), log_hi = std::log(static_cast<float>(ratio_.hi));
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target_area =
          area * static_cast<double>(rng.uniform_f32(static_cast<float>(scale_.lo), static_cast<float>(scale_.hi)));
      const double aspect = static_cast<double>(std::exp(rng.uniform_f32(log_lo, log_hi)));
      const int64_t w = detail::py_round(std::sqrt(target_area * aspect));
      const int64_t h = detail::py_round(std::sqrt(target_area / aspect));
      if (0 < w && w <= width && 0 < h && h <= height) {
        const int64_t i = rng.randint(0, height - h + 1);
        const int64_t j = rng.randint(0, width - w + 1);
        return {i, j, h, w};
      }
    }
    const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
    int64_t w = width, h = height;
    if (in_ratio < ratio_.lo) {
      h = detail::py_round(static_cast<double>(w) / ratio_.lo);
    } else if (in_ratio > ratio_.hi) {
      w = detail::py_round(static_cast<double>(h) * ratio_.hi);
    }
    return {(height - h) / 2, (width - w) / 2, h, w};
  }

  Image apply(Image img, SampleRng& rng) const override {
    detail::check_u8(img, "RandomResizedCrop");
    const CropBox box = sample(img.height(), img.width(), rng);
    return resized_crop(img, box, height_, width_);
  }
  std::string describe() const override {
    return detail::str("RandomResizedCrop(size=(", height_, ", ", width_, "), scale=(", detail::fmt(scale_.lo), ", ",
                       detail::fmt(scale_.hi), "), ratio=(", detail::fmt(ratio_.lo), ", ", detail::fmt(ratio_.hi),
                       "), bilinear, antialias)");
  }

 private:
  int64_t height_, width_;
  Range scale_, ratio_;
};

class RandomHorizontalFlip final : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5) : p_(p) {
    WANWU_CHECK_VALUE(p >= 0.0 && p <= 1.0, "RandomHorizontalFlip: p must be in [0, 1], got ", p);
  }
  bool sample(SampleRng& rng) const { return rng.bernoulli_f32(p_); }
  Image apply(Image img, SampleRng& rng) const override {
    if (sample(rng)) hflip_(img);
    return img;
  }
  std::string describe() const override { return detail::str("RandomHorizontalFlip(p=", detail::fmt(p_), ")"); }

 private:
  double p_;
};

// torchvision.transforms.ColorJitter: brightness, contrast and saturation factors uniform in
// [max(0, 1 - v), 1 + v], a hue shift uniform in [-h, h] (h <= 0.5), applied in a random order.
// A zero amount disables that adjustment (no random number is drawn for it).
class ColorJitter final : public Transform {
 public:
  struct Params {
    std::array<int, 4> order{0, 1, 2, 3};  // 0 brightness, 1 contrast, 2 saturation, 3 hue
    std::optional<double> brightness, contrast, saturation, hue;
  };

  explicit ColorJitter(double brightness = 0.0, double contrast = 0.0, double saturation = 0.0, double hue = 0.0)
      : brightness_(factor_range(brightness, "brightness")),
        contrast_(factor_range(contrast, "contrast")),
        saturation_(factor_range(saturation, "saturation")) {
    WANWU_CHECK_VALUE(hue >= 0.0 && hue <= 0.5, "ColorJitter: hue must be in [0, 0.5], got ", hue);
    if (hue > 0.0) hue_ = Range{-hue, hue};
  }
  // Explicit (min, max) ranges, as torchvision's tuple form; std::nullopt disables one.
  static ColorJitter with_ranges(std::optional<Range> brightness, std::optional<Range> contrast,
                                 std::optional<Range> saturation, std::optional<Range> hue) {
    ColorJitter j;
    const auto check = [](const std::optional<Range>& r, const char* what, double lo, double hi) {
      if (!r) return;
      detail::check_range(*r, "ColorJitter", what, false);
      WANWU_CHECK_VALUE(r->lo >= lo && r->hi <= hi, "ColorJitter: ", what, " values should be between (", lo, ", ",
                        hi, "), got (", r->lo, ", ", r->hi, ")");
    };
    check(brightness, "brightness", 0.0, HUGE_VAL);
    check(contrast, "contrast", 0.0, HUGE_VAL);
    check(saturation, "saturation", 0.0, HUGE_VAL);
    check(hue, "hue", -0.5, 0.5);
    const auto keep = [](const std::optional<Range>& r, double center) -> std::optional<Range> {
      if (r && r->lo == center && r->hi == center) return std::nullopt;
      return r;
    };
    j.brightness_ = keep(brightness, 1.0);
    j.contrast_ = keep(contrast, 1.0);
    j.saturation_ = keep(saturation, 1.0);
    j.hue_ = keep(hue, 0.0);
    return j;
  }

  // torchvision's get_params: a random permutation of the four adjustments, then a factor for
  // each enabled one in the order brightness, contrast, saturation, hue.
  Params sample(SampleRng& rng) const {
    Params p;
    for (int i = 3; i > 0; --i) std::swap(p.order[i], p.order[rng.randint(0, i + 1)]);
    const auto draw = [&rng](const std::optional<Range>& r) -> std::optional<double> {
      if (!r) return std::nullopt;
      return static_cast<double>(rng.uniform_f32(static_cast<float>(r->lo), static_cast<float>(r->hi)));
    };
    p.brightness = draw(brightness_);
    p.contrast = draw(contrast_);
    p.saturation = draw(saturation_);
    p.hue = draw(hue_);
    return p;
  }

  static void apply_params(Image& img, const Params& p) {
    for (int fn : p.order) {
      if (fn == 0 && p.brightness) adjust_brightness_(img, *p.brightness);
      else if (fn == 1 && p.contrast) adjust_contrast_(img, *p.contrast);
      else if (fn == 2 && p.saturation) adjust_saturation_(img, *p.saturation);
      else if (fn == 3 && p.hue) adjust_hue_(img, *p.hue);
    }
  }

  Image apply(Image img, SampleRng& rng) const override {
    check_color_image(img, "ColorJitter");
    apply_params(img, sample(rng));
    return img;
  }
  std::string describe() const override {
    const auto r = [](const std::optional<Range>& x) {
      return x ? detail::str("(", detail::fmt(x->lo), ", ", detail::fmt(x->hi), ")") : std::string("None");
    };
    return detail::str("ColorJitter(brightness=", r(brightness_), ", contrast=", r(contrast_),
                       ", saturation=", r(saturation_), ", hue=", r(hue_), ")");
  }

 private:
  static std::optional<Range> factor_range(double v, const char* what) {
    WANWU_CHECK_VALUE(v >= 0.0 && std::isfinite(v), "ColorJitter: ", what, " must be non-negative, got ", v);
    if (v == 0.0) return std::nullopt;
    return Range{std::max(0.0, 1.0 - v), 1.0 + v};
  }
  std::optional<Range> brightness_, contrast_, saturation_, hue_;
};

// torchvision.transforms.RandomErasing: with probability p, a box of random area (scale x the
// image area) and aspect ratio (log-uniform in `ratio`) is overwritten; nothing happens when 10
// attempts find no box strictly smaller than the image.
class RandomErasing final : public Transform {
 public:
  explicit RandomErasing(double p = 0.5, Range scale = {0.02, 0.33}, Range ratio = {0.3, 3.3},
                         EraseValue value = EraseValue::constant({0.0}))
      : p_(p), scale_(scale), ratio_(ratio), value_(std::move(value)) {
    WANWU_CHECK_VALUE(p >= 0.0 && p <= 1.0, "RandomErasing: p must be in [0, 1], got ", p);
    detail::check_range(scale, "RandomErasing", "scale", false);
    WANWU_CHECK_VALUE(scale.lo >= 0.0 && scale.hi <= 1.0, "RandomErasing: scale should be between 0 and 1, got (",
                      scale.lo, ", ", scale.hi, ")");
    detail::check_range(ratio, "RandomErasing", "ratio", true);
    WANWU_CHECK_VALUE(value_.kind == EraseValue::Kind::random_normal || !value_.values.empty(),
                      "RandomErasing: a constant value needs at least one number");
  }

  // The box to erase, or nothing (the coin said no, or no attempt fitted).
  std::optional<CropBox> sample(int64_t height, int64_t width, SampleRng& rng) const {
    if (!rng.bernoulli_f32(p_)) return std::nullopt;
    const double area = static_cast<double>(height * width);
    const float log_lo = std::log(static_cast<float>(ratio_.lo)), log_hi = std::log(static_cast<float>(ratio_.hi));
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double erase_area =
          area * static_cast<double>(rng.uniform_f32(static_cast<float>(scale_.lo), static_cast<float>(scale_.hi)));
      const double aspect = static_cast<double>(std::exp(rng.uniform_f32(log_lo, log_hi)));
      const int64_t h = detail::py_round(std::sqrt(erase_area * aspect));
      const int64_t w = detail::py_round(std::sqrt(erase_area / aspect));
      if (!(h < height && w < width)) continue;
      const int64_t i = rng.randint(0, height - h + 1);
      const int64_t j = rng.randint(0, width - w + 1);
      return CropBox{i, j, h, w};
    }
    return std::nullopt;
  }

  Image apply(Image img, SampleRng& rng) const override {
    if (const auto box = sample(img.height(), img.width(), rng)) erase_(img, *box, value_, &rng);
    return img;
  }
  std::string describe() const override {
    return detail::str("RandomErasing(p=", detail::fmt(p_), ", scale=(", detail::fmt(scale_.lo), ", ",
                       detail::fmt(scale_.hi), "), ratio=(", detail::fmt(ratio_.lo), ", ", detail::fmt(ratio_.hi),
                       "), value=", value_.kind == EraseValue::Kind::random_normal ? "random" : "constant", ")");
  }

 private:
  double p_;
  Range scale_, ratio_;
  EraseValue value_;
};

// Pillow's convert("L"), optionally back to 3 equal channels (torchvision's Grayscale).
class Grayscale final : public Transform {
 public:
  explicit Grayscale(int64_t num_output_channels = 1) : channels_(num_output_channels) {
    WANWU_CHECK_VALUE(channels_ == 1 || channels_ == 3, "Grayscale: num_output_channels must be 1 or 3, got ",
                      channels_);
  }
  Image apply(Image img, SampleRng&) const override {
    if (img.channels() == 1 && channels_ == 1) return img;
    return to_grayscale(img, channels_);
  }
  std::string describe() const override { return detail::str("Grayscale(num_output_channels=", channels_, ")"); }

 private:
  int64_t channels_;
};

// u8 -> f32 in [0, 1]. The layout stays HWC (DESIGN D4), unlike torchvision's CHW.
class ToTensor final : public Transform {
 public:
  Image apply(Image img, SampleRng&) const override { return to_float(std::move(img)); }
  std::string describe() const override { return "ToTensor()"; }
};

class Normalize final : public Transform {
 public:
  Normalize(std::vector<double> mean, std::vector<double> stddev) : mean_(std::move(mean)), std_(std::move(stddev)) {
    WANWU_CHECK_VALUE(!mean_.empty() && mean_.size() == std_.size(), "Normalize: mean (", mean_.size(),
                      " values) and std (", std_.size(), " values) must be non-empty and of equal length");
    for (double s : std_)
      WANWU_CHECK_VALUE(s != 0.0 && std::isfinite(s), "Normalize: std must be finite and nonzero, got ", s);
  }
  // On an f32 image; a u8 image is converted as by ToTensor first (Compose fuses the two).
  Image apply(Image img, SampleRng&) const override { return normalize(std::move(img), mean_, std_); }
  std::string describe() const override {
    std::string m, s;
    for (size_t i = 0; i < mean_.size(); ++i) {
      m += (i ? ", " : "") + detail::fmt(mean_[i]);
      s += (i ? ", " : "") + detail::fmt(std_[i]);
    }
    return "Normalize(mean=[" + m + "], std=[" + s + "])";
  }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& std() const { return std_; }

 private:
  std::vector<double> mean_, std_;
};

class Compose final : public Transform {
 public:
  Compose() = default;
  explicit Compose(std::vector<TransformPtr> steps) {
    for (auto& s : steps) then(std::move(s));
  }
  Compose& then(TransformPtr step) {
    WANWU_CHECK_VALUE(step != nullptr, "Compose: null transform at position ", steps_.size());
    steps_.push_back(std::move(step));
    return *this;
  }
  // Appends a copy of a concrete transform: Compose().add(Resize(256)).add(CenterCrop(224)).
  template <class T>
  Compose& add(T step) {
    return then(std::make_shared<const T>(std::move(step)));
  }

  Image apply(Image img, SampleRng& rng) const override {
    for (size_t i = 0; i < steps_.size(); ++i) {
      if (img.type() == PixelType::u8 && i + 1 < steps_.size() &&
          dynamic_cast<const ToTensor*>(steps_[i].get()) != nullptr) {
        if (const auto* n = dynamic_cast<const Normalize*>(steps_[i + 1].get())) {
          img = normalize(std::move(img), n->mean(), n->std());  // same floats as the two steps
          ++i;
          continue;
        }
      }
      img = steps_[i]->apply(std::move(img), rng);
    }
    return img;
  }
  // The transform of sample `index` of epoch `epoch` under `seed`, as the DataLoader applies it.
  Image operator()(Image img, uint64_t seed, uint64_t epoch, uint64_t index) const {
    SampleRng rng(seed, RngPurpose::augment, epoch, index);
    return apply(std::move(img), rng);
  }
  std::string describe() const override {
    std::string s = "Compose(";
    for (size_t i = 0; i < steps_.size(); ++i) s += (i ? ", " : "") + steps_[i]->describe();
    return s + ")";
  }
  const std::vector<TransformPtr>& steps() const { return steps_; }

 private:
  std::vector<TransformPtr> steps_;
};

// ---- presets ----

inline const std::vector<double>& imagenet_mean() {
  static const std::vector<double> m{0.485, 0.456, 0.406};
  return m;
}
inline const std::vector<double>& imagenet_std() {
  static const std::vector<double> s{0.229, 0.224, 0.225};
  return s;
}

enum class AugmentPreset : uint8_t { none, default_, strong };

inline const char* augment_preset_name(AugmentPreset p) {
  switch (p) {
    case AugmentPreset::none: return "none";
    case AugmentPreset::default_: return "default";
    case AugmentPreset::strong: return "strong";
  }
  return "?";
}
inline AugmentPreset parse_augment_preset(std::string_view name) {
  if (name == "none") return AugmentPreset::none;
  if (name == "default") return AugmentPreset::default_;
  if (name == "strong") return AugmentPreset::strong;
  throw ValueError(detail::str("unknown augmentation preset '", name, "' (expected none, default or strong)"));
}

struct PresetOptions {
  int64_t size = 224;    // output side
  int64_t resize = 256;  // evaluation: shorter side before the centre crop
  std::vector<double> mean = imagenet_mean();
  std::vector<double> std = imagenet_std();
};

// Resize(resize) + CenterCrop(size) + ToTensor + Normalize.
inline Compose eval_transform(const PresetOptions& o = {}) {
  WANWU_CHECK_VALUE(o.size > 0 && o.resize >= o.size, "eval_transform: need 0 < size <= resize, got size ", o.size,
                    " and resize ", o.resize);
  return Compose().add(Resize(o.resize)).add(CenterCrop(o.size)).add(ToTensor()).add(Normalize(o.mean, o.std));
}

inline Compose train_transform(AugmentPreset preset, const PresetOptions& o = {}) {
  switch (preset) {
    case AugmentPreset::none: return eval_transform(o);
    case AugmentPreset::default_:
      return Compose()
          .add(RandomResizedCrop(o.size))
          .add(RandomHorizontalFlip())
          .add(ColorJitter(0.2, 0.2, 0.2))
          .add(ToTensor())
          .add(Normalize(o.mean, o.std));
    case AugmentPreset::strong:
      return Compose()
          .add(RandomResizedCrop(o.size))
          .add(RandomHorizontalFlip())
          .add(ColorJitter(0.4, 0.4, 0.4, 0.1))
          .add(ToTensor())
          .add(Normalize(o.mean, o.std))
          .add(RandomErasing(0.25));
  }
  throw ValueError("train_transform: unknown preset");
}

}  // namespace wanwu::data
