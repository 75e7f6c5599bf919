// Helpers shared by the data pipeline tests: a scratch directory per test program, image
// writers (stb_image_write for JPEG/PNG/BMP/TGA, hand-built PNGs for 16-bit and crafted
// headers, a hand-built GIF), synthetic images, and the corpus of malformed files that the
// decoder must reject with a clear error. Depends only on the data headers that decode, so the
// AddressSanitizer test can use it without the rest of the library.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <wanwu/data/decode.hpp>
#include <wanwu/data/random.hpp>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace dt {

namespace fs = std::filesystem;
using wanwu::data::Image;
using wanwu::data::PixelType;

#ifndef WANWU_DATA_TEST_DIR
#define WANWU_DATA_TEST_DIR "data_test_tmp"
#endif

// A fresh directory under the build tree for one test.
inline fs::path scratch_dir(const std::string& name) {
  const fs::path p = fs::path(WANWU_DATA_TEST_DIR) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

inline void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
inline void write_text(const fs::path& p, const std::string& s) {
  write_bytes(p, std::vector<uint8_t>(s.begin(), s.end()));
}
inline std::vector<uint8_t> read_bytes(const fs::path& p) { return wanwu::data::read_file_bytes(p.string()); }

// A smooth, photo-like u8 image (gradients, a disc, mild noise): compresses and decodes like a
// photograph rather than like noise or a flat colour.
inline Image photo_like(int64_t h, int64_t w, int64_t c = 3, uint64_t seed = 1) {
  Image img(h, w, c, PixelType::u8);
  wanwu::data::SampleRng rng(seed, wanwu::data::RngPurpose::user, 0, 0);
  uint8_t* p = img.u8();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const double fy = static_cast<double>(y) / static_cast<double>(h),
                   fx = static_cast<double>(x) / static_cast<double>(w);
      const double disc = (fx - 0.6) * (fx - 0.6) + (fy - 0.4) * (fy - 0.4) < 0.05 ? 60.0 : 0.0;
      for (int64_t k = 0; k < c; ++k) {
        double v = 40.0 + 150.0 * (k == 0 ? fx : k == 1 ? fy : 1.0 - fx * fy) + disc + 12.0 * (rng.uniform() - 0.5);
        p[(y * w + x) * c + k] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
      }
    }
  return img;
}

// Uniformly random pixels.
inline Image random_image(int64_t h, int64_t w, int64_t c, uint64_t seed) {
  Image img(h, w, c, PixelType::u8);
  wanwu::data::SampleRng rng(seed, wanwu::data::RngPurpose::user, 1, 0);
  for (int64_t i = 0; i < img.numel(); ++i) img.u8()[i] = static_cast<uint8_t>(rng.next_u32() >> 24);
  return img;
}

inline void append_to(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

inline std::vector<uint8_t> encode_jpeg(const Image& img, int quality = 90) {
  std::vector<uint8_t> out;
  stbi_write_jpg_to_func(append_to, &out, static_cast<int>(img.width()), static_cast<int>(img.height()),
                         static_cast<int>(img.channels()), img.u8(), quality);
  return out;
}
inline std::vector<uint8_t> encode_png(const Image& img) {
  std::vector<uint8_t> out;
  stbi_write_png_to_func(append_to, &out, static_cast<int>(img.width()), static_cast<int>(img.height()),
                         static_cast<int>(img.channels()), img.u8(), static_cast<int>(img.width() * img.channels()));
  return out;
}
inline std::vector<uint8_t> encode_bmp(const Image& img) {
  std::vector<uint8_t> out;
  stbi_write_bmp_to_func(append_to, &out, static_cast<int>(img.width()), static_cast<int>(img.height()),
                         static_cast<int>(img.channels()), img.u8());
  return out;
}
inline std::vector<uint8_t> encode_tga(const Image& img) {
  std::vector<uint8_t> out;
  stbi_write_tga_to_func(append_to, &out, static_cast<int>(img.width()), static_cast<int>(img.height()),
                         static_cast<int>(img.channels()), img.u8());
  return out;
}
inline std::vector<uint8_t> encode_ppm(const Image& img) {
  const std::string header = "P6\n" + std::to_string(img.width()) + " " + std::to_string(img.height()) + "\n255\n";
  std::vector<uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), img.u8(), img.u8() + img.nbytes());
  return out;
}

// ---- hand-built PNG: any bit depth, any (even lying) header ----

inline void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}
inline void png_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put_be32(png, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  png.insert(png.end(), td.begin(), td.end());
  put_be32(png, static_cast<uint32_t>(crc32(0, td.data(), static_cast<uInt>(td.size()))));
}
// color_type: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA. `raw` holds the unfiltered scanlines of the
// true size; `declared_w/h` go into IHDR (they may lie).
inline std::vector<uint8_t> build_png(uint32_t declared_w, uint32_t declared_h, int bit_depth, int color_type,
                                      const std::vector<uint8_t>& raw, size_t row_bytes) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, declared_w);
  put_be32(ihdr, declared_h);
  ihdr.insert(ihdr.end(), {static_cast<uint8_t>(bit_depth), static_cast<uint8_t>(color_type), 0, 0, 0});
  png_chunk(png, "IHDR", ihdr);
  std::vector<uint8_t> filtered;
  for (size_t r = 0; row_bytes && r < raw.size() / row_bytes; ++r) {
    filtered.push_back(0);  // filter: none
    filtered.insert(filtered.end(), raw.begin() + r * row_bytes, raw.begin() + (r + 1) * row_bytes);
  }
  uLongf n = compressBound(static_cast<uLong>(filtered.size()));
  std::vector<uint8_t> z(n);
  compress(z.data(), &n, filtered.data(), static_cast<uLong>(filtered.size()));
  z.resize(n);
  png_chunk(png, "IDAT", z);
  png_chunk(png, "IEND", {});
  return png;
}

// A 2x2 GIF89a with a four-colour palette (red, green, blue, white), pixels 0 1 / 2 3, LZW coded
// by hand: minimum code size 2, codes clear(4) 0 1 2 3 end(5), 3 bits each.
inline std::vector<uint8_t> tiny_gif() {
  return {'G', 'I', 'F', '8', '9', 'a', 2, 0, 2, 0, 0x81, 0, 0,  // screen 2x2, global table of 4
          255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255,        // palette
          ',', 0, 0, 0, 0, 2, 0, 2, 0, 0,                        // image descriptor
          2, 3, 0x44, 0x34, 0x05, 0,                             // LZW data
          ';'};
}

// ---- the malformed corpus ----

struct BadFile {
  fs::path path;
  std::string expect;  // a phrase the error message must contain (besides the path)
};

// Writes every malformed file into `dir` and lists them with the phrase their error must carry.
inline std::vector<BadFile> write_malformed_corpus(const fs::path& dir) {
  std::vector<BadFile> out;
  const Image src = photo_like(48, 64, 3, 7);
  const auto jpg = encode_jpeg(src, 90), png = encode_png(src), bmp = encode_bmp(src), gif = tiny_gif();
  auto add = [&](const std::string& name, const std::vector<uint8_t>& bytes, const std::string& expect) {
    write_bytes(dir / name, bytes);
    out.push_back({dir / name, expect});
  };
  add("zero_bytes.jpg", {}, "empty");
  add("text.jpg", std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o', ',', ' ', 'n', 'o', 't', ' ', 'a', 'n', ' ', 'i',
                                       'm', 'a', 'g', 'e', '\n'},
      "not a supported image");
  // Truncations: inside the header, inside the entropy-coded data, just before the end marker.
  for (size_t len : {size_t(2), size_t(3), size_t(20), size_t(200), jpg.size() / 2, jpg.size() - 2})
    add("truncated_" + std::to_string(len) + ".jpg", std::vector<uint8_t>(jpg.begin(), jpg.begin() + len),
        len < 3 ? "not a supported image" : "truncated");
  for (size_t len : {size_t(8), size_t(12), size_t(30), png.size() / 2, png.size() - 20})
    add("truncated_" + std::to_string(len) + ".png", std::vector<uint8_t>(png.begin(), png.begin() + len),
        "truncated");
  add("truncated.bmp", std::vector<uint8_t>(bmp.begin(), bmp.begin() + bmp.size() / 2), "truncated");
  add("truncated.gif", std::vector<uint8_t>(gif.begin(), gif.begin() + 20), "truncated");
  // Wrong magic: a PNG and a JPEG with their first bytes damaged.
  {
    auto b = png;
    b[1] = 'X';
    add("wrong_magic.png", b, "not a supported image");
    auto j = jpg;
    j[2] = 0x00;
    add("wrong_magic.jpg", j, "not a supported image");
  }
  // Huge declared dimensions, each with a tiny payload.
  add("huge.png", build_png(100000, 100000, 8, 2, std::vector<uint8_t>(3 * 4, 0), 3 * 2), "too large");
  add("huge_side.png", build_png(20000000, 1, 8, 2, std::vector<uint8_t>(6, 0), 6), "too large");
  add("big.png", build_png(9000, 9000, 8, 0, std::vector<uint8_t>(9000 * 2, 0), 9000), "over the limit");
  {
    auto j = jpg;  // SOF0: FF C0, length(2), precision(1), height(2), width(2)
    for (size_t i = 0; i + 8 < j.size(); ++i)
      if (j[i] == 0xFF && j[i + 1] == 0xC0) {
        j[i + 5] = 0xFF;
        j[i + 6] = 0xDC;
        j[i + 7] = 0xFF;
        j[i + 8] = 0xDC;
        break;
      }
    add("huge.jpg", j, "over the limit");
  }
  {
    auto j = jpg;  // DHT: FF C4, length(2), class/id(1), 16 code-length counts: 16 x 32 = 512 codes
    for (size_t i = 0; i + 21 < j.size(); ++i)
      if (j[i] == 0xFF && j[i + 1] == 0xC4) {
        for (size_t k = 0; k < 16; ++k) j[i + 5 + k] = 32;
        break;
      }
    add("huffman_overflow.jpg", j, "Huffman table declares 512 codes");
  }
  {
    auto b = bmp;  // BITMAPINFOHEADER: width at 18, height at 22 (little-endian int32)
    const uint32_t big = 50000;
    for (int k = 0; k < 4; ++k) b[18 + k] = b[22 + k] = static_cast<uint8_t>(big >> (8 * k));
    add("huge.bmp", b, "over the limit");
  }
  {
    auto g = gif;  // logical screen width/height at 6 and 8
    g[6] = g[7] = g[8] = g[9] = 0xFF;
    add("huge.gif", g, "over the limit");
  }
  {
    // A PGM whose pixels stop short: 16x20 declared, 200 of 320 bytes there. stb would return it
    // with the rest of its buffer never written, and its last read ends before the end of the file
    // (it reads 128-byte blocks first), so the bounded reader alone does not see it.
    std::string s = "P5\n16 20\n255\n";
    s += std::string(200, 'x');
    add("short_pixels.pgm", std::vector<uint8_t>(s.begin(), s.end()), "truncated PNM");
  }
  {
    const std::string s = "P6\n100000 100000\n255\n";
    add("huge.ppm", std::vector<uint8_t>(s.begin(), s.end()), "over the limit");
  }
  // Damaged payloads: a PNG whose zlib stream header is zeroed, a TGA that is text.
  {
    auto b = png;
    for (size_t i = 8; i + 8 < b.size(); ++i)
      if (std::memcmp(&b[i], "IDAT", 4) == 0) {
        b[i + 4] = b[i + 5] = 0;
        break;
      }
    add("bad_zlib.png", b, "corrupt");
  }
  add("text.tga", std::vector<uint8_t>(40, 'x'), "TGA");
  add("webp_named.jpg", std::vector<uint8_t>{'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', ' '},
      "WebP");
  fs::create_directories(dir / "a_directory.jpg");
  out.push_back({dir / "a_directory.jpg", "is a directory"});
  out.push_back({dir / "does_not_exist.png", "cannot open"});
  return out;
}

// The valid seeds of the mutation corpus: one small file per format.
inline std::vector<std::pair<std::string, std::vector<uint8_t>>> valid_seed_files() {
  const Image src = photo_like(24, 32, 3, 11);
  const Image gray = photo_like(24, 32, 1, 12);
  std::vector<uint8_t> rgba_raw;
  for (int64_t i = 0; i < 24 * 32; ++i) {
    for (int k = 0; k < 3; ++k) rgba_raw.push_back(src.u8()[i * 3 + k]);
    rgba_raw.push_back(static_cast<uint8_t>(i * 7));
  }
  return {{"seed.jpg", encode_jpeg(src, 85)},
          {"seed_gray.jpg", encode_jpeg(gray, 85)},
          {"seed.png", encode_png(src)},
          {"seed_rgba.png", build_png(32, 24, 8, 6, rgba_raw, 32 * 4)},
          {"seed.bmp", encode_bmp(src)},
          {"seed.tga", encode_tga(src)},
          {"seed.ppm", encode_ppm(src)},
          {"seed.gif", tiny_gif()}};
}

}  // namespace dt
