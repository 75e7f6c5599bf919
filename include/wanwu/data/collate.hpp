// Between the per-sample world of Images and the batched world of Tensors: converting one image
// to an [H, W, C] tensor and back, and collating samples of one shape into an [N, H, W, C] batch
// (DESIGN D4: channels last, so a sample is a contiguous slab of the batch and collating is one
// memcpy per sample, with no transposition).
#pragma once

#include <cstring>
#include <vector>

#include "../wanwu.hpp"
#include "image.hpp"

namespace wanwu::data {

inline DType image_dtype(PixelType t) { return t == PixelType::u8 ? DType::u8 : DType::f32; }

// A copy of the image as a CPU tensor [H, W, C] (u8 or f32).
inline Tensor image_to_tensor(const Image& img) {
  Tensor t = empty({img.height(), img.width(), img.channels()}, image_dtype(img.type()));
  if (img.nbytes()) std::memcpy(t.data_ptr(), img.bytes(), img.nbytes());
  return t;
}

// A copy of an [H, W, C] or [H, W] tensor (u8 or f32, any device and layout) as an Image.
inline Image tensor_to_image(const Tensor& t) {
  WANWU_CHECK_SHAPE(t.dim() == 3 || t.dim() == 2, "tensor_to_image: expected [H, W, C] or [H, W], got shape ",
                    t.shape());
  WANWU_CHECK_DTYPE(t.dtype() == DType::u8 || t.dtype() == DType::f32,
                    "tensor_to_image: expected a u8 or f32 tensor, got ", t.dtype());
  const Tensor c = t.cpu().contiguous();
  Image img(c.size(0), c.size(1), c.dim() == 3 ? c.size(2) : 1,
            c.dtype() == DType::u8 ? PixelType::u8 : PixelType::f32);
  if (img.nbytes()) std::memcpy(img.bytes(), c.data_ptr(), img.nbytes());
  return img;
}

// Stacks images of one shape and type into [N, H, W, C].
inline Tensor collate(const std::vector<Image>& images) {
  WANWU_CHECK_VALUE(!images.empty(), "collate: no images");
  const Image& first = images.front();
  Tensor out = empty({static_cast<int64_t>(images.size()), first.height(), first.width(), first.channels()},
                     image_dtype(first.type()));
  auto* dst = static_cast<std::byte*>(out.data_ptr());
  for (size_t i = 0; i < images.size(); ++i) {
    const Image& img = images[i];
    WANWU_CHECK_SHAPE(img.height() == first.height() && img.width() == first.width() &&
                          img.channels() == first.channels() && img.type() == first.type(),
                      "collate: image ", i, " is ", img.describe(), " but image 0 is ", first.describe(),
                      "; every sample of a batch needs the same size (end the transform with a crop)");
    std::memcpy(dst + i * first.nbytes(), img.bytes(), first.nbytes());
  }
  return out;
}

}  // namespace wanwu::data
