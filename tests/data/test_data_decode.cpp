// Decoding: every supported format round-trips exact pixels (lossless formats) or close ones
// (JPEG); grey, grey+alpha, RGBA and 16-bit PNGs convert as PIL's convert("RGB") does; and every
// file of the malformed corpus is refused with an IOError that names the file and the problem.
#include "harness.hpp"

#include <wanwu/data/data.hpp>

#include "data_test_util.hpp"

using namespace wanwu;
using namespace wanwu::data;

namespace {

void check_same_pixels(const Image& got, const Image& want) {
  REQUIRE(got.height() == want.height());
  REQUIRE(got.width() == want.width());
  REQUIRE(got.channels() == want.channels());
  int64_t diff = 0;
  for (int64_t i = 0; i < got.numel(); ++i) diff += got.u8()[i] != want.u8()[i];
  CHECK(diff == 0);
}

double mean_abs_diff(const Image& a, const Image& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += std::abs(int(a.u8()[i]) - int(b.u8()[i]));
  return s / static_cast<double>(a.numel());
}

}  // namespace

TEST_CASE("lossless formats round-trip exactly") {
  const auto dir = dt::scratch_dir("decode_roundtrip");
  const Image rgb = dt::random_image(13, 17, 3, 1);
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> files = {
      {"a.png", dt::encode_png(rgb)}, {"a.bmp", dt::encode_bmp(rgb)}, {"a.tga", dt::encode_tga(rgb)},
      {"a.ppm", dt::encode_ppm(rgb)}};
  for (const auto& [name, bytes] : files) {
    CAPTURE(name);
    dt::write_bytes(dir / name, bytes);
    const Image img = decode_image((dir / name).string());
    check_same_pixels(img, rgb);
    const ImageInfo info = image_info((dir / name).string());
    CHECK(info.width == 17);
    CHECK(info.height == 13);
  }
  CHECK(image_info((dir / "a.png").string()).format == ImageFormat::png);
  CHECK(image_info((dir / "a.bmp").string()).format == ImageFormat::bmp);
  CHECK(image_info((dir / "a.ppm").string()).format == ImageFormat::pnm);
  // The format comes from the bytes: a PNG named .jpg decodes as PNG.
  dt::write_bytes(dir / "png_named.jpg", dt::encode_png(rgb));
  check_same_pixels(decode_image((dir / "png_named.jpg").string()), rgb);
}

TEST_CASE("grey and alpha convert like PIL's convert('RGB')") {
  const auto dir = dt::scratch_dir("decode_channels");
  // Grey PNG: replicated into three equal channels; ColorMode::gray keeps one.
  const Image gray = dt::random_image(5, 7, 1, 2);
  dt::write_bytes(dir / "g.png", dt::encode_png(gray));
  const Image g3 = decode_image((dir / "g.png").string());
  REQUIRE(g3.channels() == 3);
  for (int64_t i = 0; i < 35; ++i)
    for (int k = 0; k < 3; ++k) CHECK(g3.u8()[i * 3 + k] == gray.u8()[i]);
  DecodeOptions gopt;
  gopt.color = ColorMode::gray;
  check_same_pixels(decode_image((dir / "g.png").string(), gopt), gray);

  // RGBA: alpha is discarded by default; over black, c * a / 255 rounded.
  // Pixels (r, g, b, a): (200, 100, 50, 128), (255, 255, 255, 0), (10, 20, 30, 255).
  const std::vector<uint8_t> rgba = {200, 100, 50, 128, 255, 255, 255, 0, 10, 20, 30, 255};
  dt::write_bytes(dir / "rgba.png", dt::build_png(3, 1, 8, 6, rgba, 12));
  const Image d = decode_image((dir / "rgba.png").string());
  const std::vector<uint8_t> dropped = {200, 100, 50, 255, 255, 255, 10, 20, 30};
  CHECK(std::vector<uint8_t>(d.u8(), d.u8() + 9) == dropped);
  DecodeOptions ob;
  ob.alpha = AlphaMode::over_black;
  const Image o = decode_image((dir / "rgba.png").string(), ob);
  // 200*128/255 = 100.4 -> 100, 100*128/255 = 50.2 -> 50, 50*128/255 = 25.1 -> 25
  const std::vector<uint8_t> over = {100, 50, 25, 0, 0, 0, 10, 20, 30};
  CHECK(std::vector<uint8_t>(o.u8(), o.u8() + 9) == over);
  // Grey with alpha: (90, 255) and (90, 0).
  dt::write_bytes(dir / "ga.png", dt::build_png(2, 1, 8, 4, {90, 255, 90, 0}, 4));
  const Image ga = decode_image((dir / "ga.png").string());
  CHECK(std::vector<uint8_t>(ga.u8(), ga.u8() + 6) == std::vector<uint8_t>{90, 90, 90, 90, 90, 90});
  const Image gao = decode_image((dir / "ga.png").string(), ob);
  CHECK(std::vector<uint8_t>(gao.u8(), gao.u8() + 6) == std::vector<uint8_t>{90, 90, 90, 0, 0, 0});
  // RGB to grey uses PIL's luma: pure red -> (255 * 19595 + 32768) >> 16 = 76.
  dt::write_bytes(dir / "red.png", dt::build_png(1, 1, 8, 2, {255, 0, 0}, 3));
  CHECK(decode_image((dir / "red.png").string(), gopt).u8()[0] == 76);
}

TEST_CASE("16-bit PNGs keep the high byte") {
  const auto dir = dt::scratch_dir("decode_16bit");
  // Two RGB pixels, big-endian 16-bit samples.
  const std::vector<uint8_t> raw = {0x12, 0x34, 0xAB, 0xCD, 0xFF, 0xFF, 0x00, 0x01, 0x80, 0x00, 0x7F, 0xFF};
  dt::write_bytes(dir / "rgb16.png", dt::build_png(2, 1, 16, 2, raw, 12));
  const Image img = decode_image((dir / "rgb16.png").string());
  CHECK(std::vector<uint8_t>(img.u8(), img.u8() + 6) == std::vector<uint8_t>{0x12, 0xAB, 0xFF, 0x00, 0x80, 0x7F});
}

TEST_CASE("GIF: the first frame through its palette") {
  const auto dir = dt::scratch_dir("decode_gif");
  dt::write_bytes(dir / "t.gif", dt::tiny_gif());
  const Image img = decode_image((dir / "t.gif").string());
  REQUIRE(img.height() == 2);
  REQUIRE(img.width() == 2);
  // red green / blue white
  CHECK(std::vector<uint8_t>(img.u8(), img.u8() + 12) ==
        std::vector<uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255});
}

TEST_CASE("JPEG decodes close to the encoded pixels") {
  const auto dir = dt::scratch_dir("decode_jpeg");
  const Image src = dt::photo_like(120, 160, 3, 3);
  dt::write_bytes(dir / "q95.jpg", dt::encode_jpeg(src, 95));
  const Image img = decode_image((dir / "q95.jpg").string());
  REQUIRE(img.height() == 120);
  REQUIRE(img.width() == 160);
  // Quality 95 with 4:2:0 chroma on smooth content: a few levels of error on average.
  CHECK(mean_abs_diff(img, src) < 3.0);
  // A grey JPEG decodes into three equal channels.
  const Image g = dt::photo_like(40, 50, 1, 4);
  dt::write_bytes(dir / "g.jpg", dt::encode_jpeg(g, 95));
  const Image gd = decode_image((dir / "g.jpg").string());
  REQUIRE(gd.channels() == 3);
  double d = 0;
  for (int64_t i = 0; i < 40 * 50; ++i) {
    CHECK(gd.u8()[3 * i] == gd.u8()[3 * i + 2]);
    d += std::abs(int(gd.u8()[3 * i]) - int(g.u8()[i]));
  }
  CHECK(d / 2000.0 < 3.0);
}

TEST_CASE("every malformed file raises an IOError naming the file and the problem") {
  const auto dir = dt::scratch_dir("decode_malformed");
  const auto corpus = dt::write_malformed_corpus(dir);
  REQUIRE(corpus.size() == 31);
  for (const auto& bad : corpus) {
    CAPTURE(bad.path.string());
    bool threw = false;
    try {
      decode_image(bad.path.string());
    } catch (const IOError& e) {
      threw = true;
      const std::string msg = e.what();
      CAPTURE(msg);
      CHECK(msg.find(bad.path.string()) != std::string::npos);
      CHECK(msg.find(bad.expect) != std::string::npos);
    }
    CHECK(threw);
  }
}

TEST_CASE("the JPEG Huffman-table check reads segments as the decoder does") {
  // The check rejects a DHT declaring more than 256 codes (the malformed corpus has one). It must
  // not read other segments' payloads as markers: an APP1 segment whose bytes contain FF C4 and
  // counts summing past 256, placed before the real tables, and another after the scan's entropy-
  // coded data in front of EOI, leave a valid JPEG that decodes to the same pixels.
  const Image src = dt::photo_like(24, 32, 3, 5);
  const auto jpg = dt::encode_jpeg(src, 90);
  REQUIRE(jpg.size() > 4);
  std::vector<uint8_t> app = {0xFF, 0xE1, 0x00, 0x16, 0xFF, 0xC4, 0x00, 0x13};
  for (int k = 0; k < 16; ++k) app.push_back(0xFF);
  REQUIRE(app.size() == 2 + 0x16);
  std::vector<uint8_t> j(jpg.begin(), jpg.begin() + 2);  // SOI
  j.insert(j.end(), app.begin(), app.end());
  j.insert(j.end(), jpg.begin() + 2, jpg.end() - 2);  // up to EOI
  j.insert(j.end(), app.begin(), app.end());
  j.insert(j.end(), jpg.end() - 2, jpg.end());
  const Image a = decode_image_memory(jpg.data(), jpg.size(), "plain.jpg");
  const Image b = decode_image_memory(j.data(), j.size(), "with_app1.jpg");
  REQUIRE(a.nbytes() == b.nbytes());
  CHECK(std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0);
}

TEST_CASE("the pixel limit is checked before decoding") {
  const auto dir = dt::scratch_dir("decode_limit");
  dt::write_bytes(dir / "p.png", dt::encode_png(dt::photo_like(100, 100)));
  DecodeOptions small;
  small.max_pixels = 9999;
  CHECK_THROWS_WITH_AS(decode_image((dir / "p.png").string(), small), doctest::Contains("100x100 = 10000 pixels"),
                       IOError);
  small.max_pixels = 10000;
  CHECK(decode_image((dir / "p.png").string(), small).height() == 100);
  small.max_pixels = 0;
  CHECK_THROWS_AS(decode_image((dir / "p.png").string(), small), ValueError);
}

TEST_CASE("images too large to decode are an ImageTooLargeError, told apart from corrupt ones") {
  // A valid PNG whose IHDR is patched to declare 100000x100000 (stb_image ignores the CRC): the
  // header alone must reject it, whatever the pixel limit.
  std::vector<uint8_t> bomb = dt::encode_png(dt::photo_like(8, 8));
  for (int i = 0; i < 2; ++i) {
    const uint32_t v = 100000;
    bomb[16 + 4 * i] = static_cast<uint8_t>(v >> 24);
    bomb[17 + 4 * i] = static_cast<uint8_t>(v >> 16);
    bomb[18 + 4 * i] = static_cast<uint8_t>(v >> 8);
    bomb[19 + 4 * i] = static_cast<uint8_t>(v);
  }
  DecodeOptions huge;
  huge.max_pixels = int64_t(1) << 40;
  CHECK_THROWS_WITH_AS(decode_image_memory(bomb.data(), bomb.size(), "bomb.png", huge),
                       doctest::Contains("bomb.png: PNG header declares a size too large to decode"),
                       ImageTooLargeError);
  // Under the pixel limit of the caller's options, also before any pixel is decoded.
  const std::vector<uint8_t> png = dt::encode_png(dt::photo_like(100, 100));
  DecodeOptions small;
  small.max_pixels = 9999;
  CHECK_THROWS_WITH_AS(decode_image_memory(png.data(), png.size(), "upload", small),
                       doctest::Contains("upload: PNG declares 100x100 = 10000 pixels"), ImageTooLargeError);
  // A truncated or foreign file stays a plain IOError.
  const std::vector<uint8_t> cut(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2));
  bool plain = false;
  try {
    decode_image_memory(cut.data(), cut.size(), "cut.png");
  } catch (const ImageTooLargeError&) {
    plain = false;
  } catch (const IOError&) {
    plain = true;
  }
  CHECK(plain);
}

// stb_image 2.27 parses a PNM header's numbers into an int with no overflow check (undefined
// behaviour past INT_MAX, found by fuzz_decode): such headers are refused before stb reads them,
// a width or height as too large, a maxval as corrupt; numbers up to stb's own limits still reach
// stb, which reports them itself.
TEST_CASE("PNM headers with numbers past INT_MAX are refused before stb_image parses them") {
  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  const auto wide = bytes("P5\n11111111111111111111111111 2\n255\n" + std::string(8, '\x7f'));
  CHECK_THROWS_WITH_AS(decode_image_memory(wide.data(), wide.size(), "wide.pgm"),
                       doctest::Contains("wide.pgm: PNM header declares a size too large to decode"),
                       ImageTooLargeError);
  const auto tall = bytes("P6 # comment\n2 # another\n 2147483648\n255\n" + std::string(12, '\x7f'));
  CHECK_THROWS_AS(decode_image_memory(tall.data(), tall.size(), "tall.ppm"), ImageTooLargeError);
  const auto deep = bytes("P5\n2 2\n99999999999\n" + std::string(8, '\x7f'));
  CHECK_THROWS_WITH_AS(decode_image_memory(deep.data(), deep.size(), "deep.pgm"),
                       doctest::Contains("deep.pgm: corrupt PNM header (maxval"), IOError);
  // at INT_MAX exactly the numbers are stb's to judge: too large a side, too large a maxval
  const auto edge = bytes("P5\n2147483647 1\n255\n" + std::string(8, '\x7f'));
  CHECK_THROWS_AS(decode_image_memory(edge.data(), edge.size(), "edge.pgm"), ImageTooLargeError);
  const auto maxv = bytes("P5\n2 2\n2147483647\n" + std::string(8, '\x7f'));
  CHECK_THROWS_AS(decode_image_memory(maxv.data(), maxv.size(), "maxv.pgm"), IOError);
  // and a plain one decodes
  const auto ok = bytes("P5\n2 2\n255\n\x01\x02\x03\x04");
  const Image img = decode_image_memory(ok.data(), ok.size(), "ok.pgm");
  CHECK(img.width() == 2);
  CHECK(img.height() == 2);
}

TEST_CASE("decode from memory names the source in errors") {
  const std::vector<uint8_t> junk = {1, 2, 3, 4, 5};
  CHECK_THROWS_WITH_AS(decode_image_memory(junk.data(), junk.size(), "blob#7"),
                       doctest::Contains("blob#7: not a supported image (JPEG, PNG, BMP, GIF, TGA, binary PNM); "
                                         "first bytes: 01 02 03 04 05"),
                       IOError);
}
