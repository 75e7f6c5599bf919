// Image decoding: file bytes -> u8 HWC Image, with stb_image (JPEG baseline and progressive, PNG
// including 16-bit, BMP, GIF's first frame, TGA, binary PNM).
//
// Training data is hostile in bulk: one truncated JPEG in a million must not kill a run, and a
// crafted header must not make the decoder allocate terabytes. So decoding reads the header first
// (stbi_info), rejects images over a pixel limit before anything is allocated, and turns every
// failure into an IOError that names the file and what was wrong with it. The caller (the
// DataLoader's bad-sample policy) decides whether that stops the run.
//
// Colour follows PIL's Image.convert("RGB"), which is what torchvision's loaders do: grey is
// replicated, and the alpha channel is discarded by default (AlphaMode::over_black composites
// over black instead). 16-bit PNGs keep their high byte. The format is recognised from the
// bytes (magic numbers), not the file name; TGA, which has no magic number, only from a .tga name.
//
// stb_image is compiled privately (static functions) into each translation unit that includes
// this header: nothing to link, and no clash with another copy of stb_image in other translation
// units. A translation unit that includes this header must not include stb_image.h itself. The
// format-specific entry points (stbi__png_info, stbi__jpeg_load, ...) are called directly, so
// that an error reports the sniffed format's own complaint; they have been stable for years.
#pragma once

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#if defined(__SSSE3__)
#include <tmmintrin.h>
#endif

#include "image.hpp"

#if defined(STBI_INCLUDE_STB_IMAGE_H)
#error "wanwu/data/decode.hpp compiles stb_image itself; do not include stb_image.h in the same translation unit"
#endif

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_TGA
#define STBI_ONLY_PNM
// stb_image's asserts guard its own invariants, as in a release build: a library must not abort
// on a corrupt file.
#define STBI_ASSERT(x) ((void)0)
// Every block stb allocates starts zeroed. stb 2.27 mallocs its JPEG decoder state and leaves the
// Huffman tables a file never defines as they were: a scan that names such a table decoded with
// whatever the heap held, and indexed its symbol array at -16 (a fuzz run in the test suite; the
// input alone did not reproduce it, as the heap's contents differed). Zeroed, an undefined table
// matches no code and the scan fails as corrupt. Large blocks come from the kernel already zero.
#define STBI_MALLOC(sz) calloc(1, sz)
#define STBI_REALLOC(p, newsz) realloc(p, newsz)
#define STBI_FREE(p) free(p)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#endif
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#elif __has_include(<stb_image.h>)
#include <stb_image.h>
#else
#error "wanwu/data needs stb_image.h (Debian/Ubuntu: apt-get install libstb-dev)"
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#undef STB_IMAGE_IMPLEMENTATION

namespace wanwu::data {

enum class ImageFormat : uint8_t { jpeg, png, bmp, gif, tga, pnm, unknown };

inline const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::jpeg: return "JPEG";
    case ImageFormat::png: return "PNG";
    case ImageFormat::bmp: return "BMP";
    case ImageFormat::gif: return "GIF";
    case ImageFormat::tga: return "TGA";
    case ImageFormat::pnm: return "PNM";
    case ImageFormat::unknown: break;
  }
  return "unknown";
}

enum class ColorMode : uint8_t { rgb, gray };             // 3 channels (PIL "RGB") or 1 (PIL "L")
enum class AlphaMode : uint8_t { discard, over_black };  // PIL's convert drops alpha

struct DecodeOptions {
  ColorMode color = ColorMode::rgb;
  AlphaMode alpha = AlphaMode::discard;
  // Images declaring more pixels than this are rejected before any allocation (64 Mi pixels:
  // 192 MiB of RGB; larger than any photo a classifier is trained on, smaller than a decompression
  // bomb).
  int64_t max_pixels = int64_t(64) << 20;
};


struct ImageInfo {
  ImageFormat format = ImageFormat::unknown;
  int64_t width = 0, height = 0;
  int64_t channels = 0;  // as stored: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
};

namespace detail {

inline bool ends_with_ci(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  if (s.size() < n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - n + i])) != suffix[i]) return false;
  return true;
}

inline std::string first_bytes_hex(const uint8_t* data, size_t size) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(size, 8); ++i) {
    if (i) s += ' ';
    s += hex[data[i] >> 4];
    s += hex[data[i] & 15];
  }
  return s;
}

// Formats we recognise but stb_image cannot decode: named in the error instead of "unknown".
inline const char* unsupported_format_name(const uint8_t* d, size_t n) {
  if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return "WebP";
  if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) return "TIFF";
  if (n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0) return "HEIF/AVIF";
  if (n >= 4 && std::memcmp(d, "8BPS", 4) == 0) return "PSD";
  if (n >= 12 && std::memcmp(d, "\0\0\0\x0cjP  ", 8) == 0) return "JPEG 2000";
  if (n >= 2 && d[0] == 'P' && (d[1] == '1' || d[1] == '2' || d[1] == '3' || d[1] == '4')) return "ASCII or 1-bit PNM";
  return nullptr;
}

inline std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r && *r ? r : "no detail from the decoder";
}

}  // namespace detail

// The format of an image from its first bytes (and, for TGA only, its name).
inline ImageFormat sniff_image_format(const uint8_t* data, size_t size, const std::string& name = "") {
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::jpeg;
  if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::png;
  if (size >= 6 && (std::memcmp(data, "GIF87a", 6) == 0 || std::memcmp(data, "GIF89a", 6) == 0))
    return ImageFormat::gif;
  if (size >= 2 && data[0] == 'B' && data[1] == 'M') return ImageFormat::bmp;
  if (size >= 3 && data[0] == 'P' && (data[1] == '5' || data[1] == '6') && std::isspace(data[2]))
    return ImageFormat::pnm;
  if (detail::ends_with_ci(name, ".tga")) return ImageFormat::tga;
  return ImageFormat::unknown;
}

// Reads a whole file; IOError naming it when it cannot be read.
inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IOError(detail::str(path, ": is a directory, not a file"));
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw IOError(detail::str(path, ": cannot open (", std::generic_category().message(errno), ")"));
  std::vector<uint8_t> bytes;
  const auto expected = std::filesystem::file_size(path, ec);
  if (!ec) bytes.reserve(static_cast<size_t>(expected));
  uint8_t chunk[65536];
  for (;;) {
    const size_t n = std::fread(chunk, 1, sizeof(chunk), f.get());
    bytes.insert(bytes.end(), chunk, chunk + n);
    if (n < sizeof(chunk)) break;
  }
  if (std::ferror(f.get()))
    throw IOError(detail::str(path, ": read error (", std::generic_category().message(errno), ")"));
  return bytes;
}

namespace detail {

// A binary PNM header read as stb_image reads it ("P5"/"P6", whitespace and # comments, width,
// height, maxval, one separator byte): the three numbers (each capped at 2^40, every digit
// consumed as stb does) and the offset where the pixels start.
struct PnmHeader {
  int64_t width = 0, height = 0, maxval = 0;
  size_t pixels_at = 0;
};
inline PnmHeader read_pnm_header(const uint8_t* d, size_t n) {
  size_t i = 2;
  auto eof = [&] { return i >= n; };
  auto get8 = [&]() -> int { return i < n ? d[i++] : 0; };
  int ch = get8();
  auto skip_space = [&] {
    for (;;) {
      while (!eof() && std::isspace(ch)) ch = get8();
      if (eof() || ch != '#') break;
      while (!eof() && ch != '\n' && ch != '\r') ch = get8();
    }
  };
  auto integer = [&] {
    constexpr int64_t kCap = int64_t(1) << 40;
    int64_t v = 0;
    while (!eof() && std::isdigit(ch)) {
      v = std::min(kCap, v * 10 + (ch - '0'));
      ch = get8();
    }
    return v;
  };
  PnmHeader h;
  skip_space();
  h.width = integer();
  skip_space();
  h.height = integer();
  skip_space();
  h.maxval = integer();
  h.pixels_at = i;
  return h;
}

// stb_image 2.27 reads a PNM header's numbers into an int without an overflow check (2.28 added
// one): a width, height or maxval past INT_MAX is undefined behaviour in its parser. Such a header
// is refused here, before stb reads it; stb refuses everything past its own limits (2^24 pixels a
// side, maxval 65535) itself.
inline void check_pnm_header(const uint8_t* d, size_t n, const std::string& name, const char* op) {
  const PnmHeader h = read_pnm_header(d, n);
  constexpr int64_t kIntMax = 2147483647;
  if (h.width > kIntMax || h.height > kIntMax)
    throw ImageTooLargeError(str(op, ": ", name, ": PNM header declares a size too large to decode (", h.width, " x ",
                                 h.height, ")"));
  if (h.maxval > kIntMax)
    throw IOError(str(op, ": ", name, ": corrupt PNM header (maxval ", h.maxval, ", at most 65535)"));
}

// Where a binary PNM's pixels end. stb 2.27's PNM loader ignores a short read of the pixels and
// returns the buffer with its tail never written, and the short read is not past the end of the
// stream, so the bounded reader cannot see it.
inline size_t pnm_end(const uint8_t* d, size_t n, int64_t w, int64_t h, int64_t c) {
  const PnmHeader hd = read_pnm_header(d, n);
  return hd.pixels_at + static_cast<size_t>(w * h * c * (hd.maxval > 255 ? 2 : 1));
}

// Rejects a JPEG whose Huffman table (DHT) declares more than 256 codes. stb_image 2.27 (Debian
// 12's libstb-dev) builds the table from the 16 code-length counts without checking their sum
// (2.28 added the check): up to 16 x 255 codes are written into arrays of 257 and 256 entries,
// from the header alone, before any pixel is decoded. The fuzz target found it in seconds
// (tests/fuzz). The walk follows stb's reading of the stream: bytes between segments are skipped
// one by one, 0xFF fill bytes before a marker too; a DHT segment's tables are read one after the
// other as stb reads them (counts, then that many symbols, while the declared length lasts);
// other segments are skipped by their length; after a scan header (SOS) the entropy-coded data
// runs to the first marker that is not a stuffed 0xFF00 or a restart (RSTn), as stb's bit reader
// stops there. Where stb would reject the stream anyway (a length under 2, tables that overrun
// their segment) the walk stops and leaves the error to stb; bytes past the end read as zero,
// as stb's do.
inline void check_jpeg_huffman_tables(const uint8_t* d, size_t n, const std::string& name, const char* op) {
  auto byte = [&](size_t i) -> size_t { return i < n ? d[i] : 0; };
  size_t p = 2;  // after SOI
  bool in_scan = false;
  while (p < n) {
    if (d[p] != 0xFF) {
      ++p;
      continue;
    }
    size_t q = p + 1;
    while (q < n && d[q] == 0xFF) ++q;
    if (q >= n) return;
    const unsigned marker = d[q];
    p = q + 1;  // after the marker
    if (in_scan && (marker == 0x00 || (marker >= 0xD0 && marker <= 0xD7))) continue;  // stuffing, restarts
    in_scan = false;
    if (marker == 0xD9) return;  // EOI
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length
    const size_t len = byte(p) << 8 | byte(p + 1);
    if (len < 2) return;
    if (marker == 0xC4) {
      int64_t left = static_cast<int64_t>(len) - 2;
      size_t r = p + 2;
      while (left > 0) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += byte(r + i);
        if (codes > 256)
          throw IOError(str(op, ": ", name, ": corrupt JPEG (a Huffman table declares ", codes,
                            " codes, at most 256 are possible)"));
        r += 17 + codes;
        left -= 17 + static_cast<int64_t>(codes);
      }
      if (left != 0) return;
      p = r;
      continue;
    }
    p += len;
    if (marker == 0xDA) in_scan = true;
  }
}

inline ImageInfo probe(const uint8_t* data, size_t size, const std::string& name, const char* op) {
  if (size == 0) throw IOError(str(op, ": ", name, ": file is empty (0 bytes)"));
  if (size > static_cast<size_t>(INT_MAX))
    throw IOError(str(op, ": ", name, ": file of ", size, " bytes is larger than the decoder handles (2 GiB)"));
  ImageInfo info;
  info.format = sniff_image_format(data, size, name);
  if (info.format == ImageFormat::unknown) {
    if (const char* other = unsupported_format_name(data, size))
      throw IOError(str(op, ": ", name, ": ", other,
                        " images are not supported (supported: JPEG, PNG, BMP, GIF, TGA, binary PNM)"));
    throw IOError(str(op, ": ", name, ": not a supported image (JPEG, PNG, BMP, GIF, TGA, binary PNM); first bytes: ",
                      first_bytes_hex(data, size)));
  }
  if (info.format == ImageFormat::jpeg) check_jpeg_huffman_tables(data, size, name, op);
  if (info.format == ImageFormat::pnm) check_pnm_header(data, size, name, op);
  // The format's own header parser, so that its failure reason is the one reported (the generic
  // stbi_info tries every format and reports the last one's complaint).
  int w = 0, h = 0, c = 0;
  stbi__context ctx;
  stbi__start_mem(&ctx, data, static_cast<int>(size));
  int ok = 0;
  switch (info.format) {
    case ImageFormat::jpeg: ok = stbi__jpeg_info(&ctx, &w, &h, &c); break;
    case ImageFormat::png: ok = stbi__png_info(&ctx, &w, &h, &c); break;
    case ImageFormat::bmp: ok = stbi__bmp_info(&ctx, &w, &h, &c); break;
    case ImageFormat::gif: ok = stbi__gif_info(&ctx, &w, &h, &c); break;
    case ImageFormat::tga: ok = stbi__tga_info(&ctx, &w, &h, &c); break;
    case ImageFormat::pnm: ok = stbi__pnm_info(&ctx, &w, &h, &c); break;
    case ImageFormat::unknown: break;
  }
  if (!ok) {
    if (stb_reason() == "too large")
      throw ImageTooLargeError(str(op, ": ", name, ": ", image_format_name(info.format),
                        " header declares a size too large to decode"));
    throw IOError(str(op, ": ", name, ": corrupt or truncated ", image_format_name(info.format), " header (",
                      stb_reason(), ")"));
  }
  info.width = w;
  info.height = h;
  info.channels = c;
  return info;
}

// The bytes of a file, handed to stb_image through its callback interface so that a read past
// the end is seen: stb's decoders pad a short input with zeros (a truncated BMP, GIF or PNG scan
// would decode as a partly black image), PIL reports "image file is truncated", and so do we.
struct BoundedReader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  bool overrun = false;

  static int read(void* user, char* out, int n) {
    auto* r = static_cast<BoundedReader*>(user);
    if (r->pos >= r->size) {
      r->overrun = true;
      return 0;
    }
    const size_t k = std::min(static_cast<size_t>(n), r->size - r->pos);
    std::memcpy(out, r->data + r->pos, k);
    r->pos += k;
    return static_cast<int>(k);
  }
  static void skip(void* user, int n) {
    auto* r = static_cast<BoundedReader*>(user);
    if (n < 0) {  // stb rewinds only within what it has read
      r->pos -= std::min(r->pos, static_cast<size_t>(-static_cast<int64_t>(n)));
      return;
    }
    if (static_cast<size_t>(n) > r->size - r->pos) {
      r->overrun = true;
      r->pos = r->size;
      return;
    }
    r->pos += static_cast<size_t>(n);
  }
  static int eof(void* user) {
    auto* r = static_cast<BoundedReader*>(user);
    return r->pos >= r->size;
  }
  static inline const stbi_io_callbacks callbacks{&BoundedReader::read, &BoundedReader::skip, &BoundedReader::eof};
};

// The sniffed format's stb loader (stbi_load would try every format in turn and report the last
// one's complaint), 16-bit results reduced to their high byte as stbi_load does.
// `comp` is set to the channels of the returned buffer. JPEGs are asked for four channels (alpha
// 255): stb_image vectorises its YCbCr -> RGB conversion only for that layout, and dropping the
// constant alpha afterwards costs less than its scalar three-channel loop.
inline stbi_uc* stb_load(ImageFormat format, BoundedReader& reader, int& w, int& h, int& comp) {
  stbi__context ctx;
  stbi__start_callbacks(&ctx, const_cast<stbi_io_callbacks*>(&BoundedReader::callbacks), &reader);
  stbi__result_info ri;
  std::memset(&ri, 0, sizeof(ri));
  ri.bits_per_channel = 8;
  ri.channel_order = STBI_ORDER_RGB;
  void* out = nullptr;
  switch (format) {
    case ImageFormat::jpeg:
      out = stbi__jpeg_load(&ctx, &w, &h, &comp, 4, &ri);
      comp = 4;
      break;
    case ImageFormat::png: out = stbi__png_load(&ctx, &w, &h, &comp, 0, &ri); break;
    case ImageFormat::bmp: out = stbi__bmp_load(&ctx, &w, &h, &comp, 0, &ri); break;
    case ImageFormat::gif: out = stbi__gif_load(&ctx, &w, &h, &comp, 0, &ri); break;
    case ImageFormat::tga: out = stbi__tga_load(&ctx, &w, &h, &comp, 0, &ri); break;
    case ImageFormat::pnm: out = stbi__pnm_load(&ctx, &w, &h, &comp, 0, &ri); break;
    case ImageFormat::unknown: break;
  }
  if (out && ri.bits_per_channel == 16) return stbi__convert_16_to_8(static_cast<stbi__uint16*>(out), w, h, comp);
  return static_cast<stbi_uc*>(out);
}

// stb's native channels -> the requested colour mode.
inline Image convert_channels(const uint8_t* px, int64_t w, int64_t h, int comp, const DecodeOptions& opt) {
  const int64_t n = w * h;
  const int64_t out_c = opt.color == ColorMode::rgb ? 3 : 1;
  Image img(h, w, out_c, PixelType::u8);
  uint8_t* o = img.u8();
  const bool over_black = opt.alpha == AlphaMode::over_black;
  auto premul = [](int v, int a) { return static_cast<uint8_t>((v * a + 127) / 255); };
  if (comp == 3 && out_c == 3) {
    std::memcpy(o, px, static_cast<size_t>(n * 3));
    return img;
  }
  if (comp == 4 && out_c == 3 && !over_black) {
    int64_t i = 0;
#if defined(__SSSE3__)
    // Four pixels per shuffle; each 16-byte store overlaps the next one's first 4 bytes, so stop
    // while a full store still fits.
    const __m128i drop_alpha = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    for (; i + 4 <= n && 3 * i + 16 <= 3 * n; i += 4)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 3 * i),
                       _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(px + 4 * i)), drop_alpha));
#endif
    for (; i < n; ++i) {
      o[3 * i] = px[4 * i];
      o[3 * i + 1] = px[4 * i + 1];
      o[3 * i + 2] = px[4 * i + 2];
    }
    return img;
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* p = px + i * comp;
    int r, g, b;
    if (comp <= 2) {
      r = g = b = p[0];
      if (comp == 2 && over_black) r = g = b = premul(p[0], p[1]);
    } else {
      r = p[0];
      g = p[1];
      b = p[2];
      if (comp == 4 && over_black) {
        r = premul(r, p[3]);
        g = premul(g, p[3]);
        b = premul(b, p[3]);
      }
    }
    if (out_c == 3) {
      o[3 * i] = static_cast<uint8_t>(r);
      o[3 * i + 1] = static_cast<uint8_t>(g);
      o[3 * i + 2] = static_cast<uint8_t>(b);
    } else {
      o[i] =
          comp <= 2 ? static_cast<uint8_t>(r) : static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
    }
  }
  return img;
}

}  // namespace detail

// Format, size and stored channels from the header alone.
inline ImageInfo image_info_memory(const uint8_t* data, size_t size, const std::string& name) {
  return detail::probe(data, size, name, "image_info");
}
inline ImageInfo image_info(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return detail::probe(bytes.data(), bytes.size(), path, "image_info");
}

// Decodes an image held in memory; `name` is what errors call it (usually its path).
inline Image decode_image_memory(const uint8_t* data, size_t size, const std::string& name,
                                 const DecodeOptions& opt = {}) {
  WANWU_CHECK_VALUE(opt.max_pixels > 0, "decode_image: max_pixels must be positive, got ", opt.max_pixels);
  WANWU_CHECK_VALUE(data != nullptr || size == 0, "decode_image: null data for ", name);
  const ImageInfo info = detail::probe(data, size, name, "decode_image");
  if (info.width <= 0 || info.height <= 0)
    throw IOError(detail::str("decode_image: ", name, ": ", image_format_name(info.format), " declares an empty size ",
                              info.width, "x", info.height));
  if (info.width * info.height > opt.max_pixels)
    throw ImageTooLargeError(detail::str("decode_image: ", name, ": ", image_format_name(info.format), " declares ", info.width,
                              "x", info.height, " = ", info.width * info.height, " pixels, over the limit of ",
                              opt.max_pixels, " (DecodeOptions::max_pixels)"));
  if (info.format == ImageFormat::pnm && size < detail::pnm_end(data, size, info.width, info.height, info.channels))
    throw IOError(detail::str("decode_image: ", name, ": truncated PNM (the file ends after ", size,
                              " bytes, inside the image data)"));
  int w = 0, h = 0, comp = 0;
  detail::BoundedReader reader{data, size};
  std::unique_ptr<stbi_uc, void (*)(void*)> px(detail::stb_load(info.format, reader, w, h, comp), &stbi_image_free);
  if (reader.overrun)
    throw IOError(detail::str("decode_image: ", name, ": truncated ", image_format_name(info.format),
                              " (the file ends after ", size, " bytes, inside the image data)"));
  if (!px)
    throw IOError(detail::str("decode_image: ", name, ": corrupt or truncated ", image_format_name(info.format), " (",
                              detail::stb_reason(), ")"));
  if (static_cast<int64_t>(w) * h > opt.max_pixels || comp < 1 || comp > 4)
    throw IOError(detail::str("decode_image: ", name, ": decoded ", w, "x", h, "x", comp,
                              " does not match its header"));
  return detail::convert_channels(px.get(), w, h, comp, opt);
}

// Decodes the image file at `path` into u8 HWC (3 channels, or 1 with ColorMode::gray).
inline Image decode_image(const std::string& path, const DecodeOptions& opt = {}) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image_memory(bytes.data(), bytes.size(), path, opt);
}

}  // namespace wanwu::data
