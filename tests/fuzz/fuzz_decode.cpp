// libFuzzer target for the path every untrusted upload takes in `wanwu serve`: the bytes are
// decoded by data::decode_image_memory (header and pixel limit checked before any allocation) and
// run through the evaluation transform the server applies (Resize 256, CenterCrop 224, ToTensor,
// Normalize). Built with clang's -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt),
// so an out-of-bounds access, a leak or undefined behaviour anywhere on that path is a crash.
//
// What must hold for every input, as the server relies on it:
// - a rejected input is an IOError (ImageTooLargeError for too many pixels): the server answers
//   those with 422/413; any other exception escaping here aborts the run;
// - an accepted input becomes a 224x224x3 f32 image of finite values (the server checks the
//   shape and would answer 500; NaN or infinity would reach the model).
// Each input is also decoded under a .tga name, which is the only way the TGA decoder is reached
// (TGA has no magic number), with alpha composited over black instead of dropped.
//
// The pixel limit is 4 Mi pixels instead of the server's 64 Mi: the same check, and headers that
// declare a large image still pass it while each run stays fast enough to explore.
#include <cmath>
#include <cstdint>
#include <cstdio>

#include <wanwu/data/decode.hpp>
#include <wanwu/data/transforms.hpp>

namespace {

using namespace wanwu;
using namespace wanwu::data;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_decode: %s\n", what);
  __builtin_trap();
}

void one(const uint8_t* data, size_t size, const char* name, AlphaMode alpha) {
  static const Compose transform = eval_transform();
  DecodeOptions opt;
  opt.max_pixels = int64_t(4) << 20;
  opt.alpha = alpha;
  Image out;
  try {
    Image img = decode_image_memory(data, size, name, opt);
    require(img.type() == PixelType::u8 && img.channels() == 3 && img.height() > 0 && img.width() > 0,
            "decode_image_memory returned something other than a non-empty u8 RGB image");
    require(img.height() * img.width() <= opt.max_pixels, "an image over max_pixels was decoded");
    SampleRng rng(0, RngPurpose::augment, 0, 0);
    out = transform.apply(std::move(img), rng);
  } catch (const IOError&) {
    return;  // rejected as the server expects: 413 or 422
  }
  require(out.type() == PixelType::f32 && out.height() == 224 && out.width() == 224 && out.channels() == 3,
          "the eval transform did not give a 224x224x3 f32 image");
  const float* p = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i) require(std::isfinite(p[i]), "the preprocessed image has a non-finite value");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  one(data, size, "the upload", AlphaMode::discard);
  one(data, size, "upload.tga", AlphaMode::over_black);
  return 0;
}
