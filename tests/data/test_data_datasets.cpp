// Datasets: ImageFolder's class and sample order (torchvision's sorted() rules), filtering, hidden
// files, empty classes and the train/val class check; the IDX reader on files written here
// (gzip and plain) and on broken ones; the CSV list file.
#include "harness.hpp"

#include <wanwu/data/data.hpp>

#include "data_test_util.hpp"

using namespace wanwu;
using namespace wanwu::data;

namespace {

void write_png(const dt::fs::path& p, uint64_t seed = 1) {
  dt::write_bytes(p, dt::encode_png(dt::photo_like(6, 8, 3, seed)));
}

std::vector<uint8_t> idx_bytes(uint8_t ndims, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b = {0, 0, 0x08, ndims};
  for (uint32_t d : dims) dt::put_be32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void write_gz(const dt::fs::path& p, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

}  // namespace

TEST_CASE("ImageFolder: torchvision's class order and sample order") {
  const auto root = dt::scratch_dir("folder_order");
  // Python's sorted(): by code point, so upper case before '_' before lower case; UTF-8 bytes
  // sort in code point order.
  for (const char* cls : {"b", "B", "_x", "a", "Z10", "Z9", "\xc3\xa9t\xc3\xa9"}) write_png(root / cls / "0.png");
  // Files in nested folders: sorted(os.walk) visits "b", "b/sub", "b/sub-2" (string order of the
  // paths), files sorted by name within each.
  write_png(root / "b" / "z.png");
  write_png(root / "b" / "sub" / "a.png");
  write_png(root / "b" / "sub-2" / "a.png");
  write_png(root / "b" / "A.PNG");            // extensions match case-insensitively
  dt::write_text(root / "b" / "notes.txt", "not an image");  // filtered by extension
  write_png(root / "b" / ".hidden.png");      // hidden file: skipped
  write_png(root / "b" / ".cache" / "x.png");  // hidden directory: skipped
  write_png(root / ".ipynb_checkpoints" / "x.png");  // hidden class folder: skipped
  const ImageFolder ds(root.string());
  CHECK(ds.classes() == std::vector<std::string>{"B", "Z10", "Z9", "_x", "a", "b", "\xc3\xa9t\xc3\xa9"});
  CHECK(ds.class_index("b") == 5);
  CHECK_THROWS_AS(ds.class_index("c"), ValueError);
  std::vector<std::string> b_files;
  for (const auto& [path, label] : ds.samples())
    if (label == 5) b_files.push_back(dt::fs::path(path).lexically_relative(root / "b").generic_string());
  // The directory "b" itself comes first (its path is a prefix of the others), then "b/sub", then
  // "b/sub-2": os.walk's roots are compared as whole path strings.
  CHECK(b_files == std::vector<std::string>{"0.png", "A.PNG", "z.png", "sub/a.png", "sub-2/a.png"});
  CHECK(ds.size() == 11);
  CHECK(ds.label(0) == 0);
  const Image img = ds.load(0);
  CHECK(img.height() == 6);
  CHECK(img.channels() == 3);
  CHECK_THROWS_AS(ds.load(11), IndexError);
  CHECK(class_counts(ds) == std::vector<int64_t>{1, 1, 1, 1, 1, 5, 1});
}

TEST_CASE("ImageFolder: empty classes, missing roots, extension lists") {
  const auto root = dt::scratch_dir("folder_empty");
  write_png(root / "cat" / "1.png");
  dt::fs::create_directories(root / "dog");
  dt::write_text(root / "emu" / "readme.txt", "no images here");
  CHECK_THROWS_WITH_AS(ImageFolder(root.string()), doctest::Contains("found no image files for the classes dog, emu"),
                       IOError);
  ImageFolderOptions allow;
  allow.empty_classes = EmptyClasses::allow;
  const ImageFolder ds(root.string(), allow);
  CHECK(ds.num_classes() == 3);
  CHECK(class_counts(ds) == std::vector<int64_t>{1, 0, 0});
  ImageFolderOptions txt;
  txt.extensions = {".TXT"};
  txt.empty_classes = EmptyClasses::allow;
  CHECK(ImageFolder(root.string(), txt).size() == 1);
  CHECK_THROWS_WITH_AS(ImageFolder((root / "nope").string()), doctest::Contains("does not exist"), IOError);
  const auto flat = dt::scratch_dir("folder_flat");
  write_png(flat / "1.png");
  CHECK_THROWS_WITH_AS(ImageFolder(flat.string()), doctest::Contains("no class folders"), IOError);
}

TEST_CASE("train and val folders must have the same classes") {
  const auto dir = dt::scratch_dir("folder_split");
  for (const char* c : {"ant", "bee", "cat"}) write_png(dir / "train" / c / "1.png");
  for (const char* c : {"ant", "cat", "dog"}) write_png(dir / "val" / c / "1.png");
  const std::string diff =
      "only in " + (dir / "train").string() + ": [bee]; only in " + (dir / "val").string() + ": [dog]";
  CHECK_THROWS_WITH_AS(image_folder_train_val(dir.string()), doctest::Contains(diff.c_str()), IOError);
  write_png(dir / "val" / "bee" / "1.png");
  write_png(dir / "train" / "dog" / "1.png");
  const auto f = image_folder_train_val(dir.string());
  CHECK(f.train->classes() == f.val->classes());
  CHECK(f.val->size() == 4);
}

TEST_CASE("IDX: gzip and plain files, labels and classes") {
  const auto dir = dt::scratch_dir("idx");
  // 3 images of 2x3, labels 2 0 1
  std::vector<uint8_t> px(18);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 10);
  write_gz(dir / "img.gz", idx_bytes(3, {3, 2, 3}, px));
  write_gz(dir / "lbl.gz", idx_bytes(1, {3}, {2, 0, 1}));
  dt::write_bytes(dir / "img.raw", idx_bytes(3, {3, 2, 3}, px));
  dt::write_bytes(dir / "lbl.raw", idx_bytes(1, {3}, {2, 0, 1}));
  for (const auto& [i, l] : {std::pair{"img.gz", "lbl.gz"}, std::pair{"img.raw", "lbl.raw"}}) {
    const IdxDataset ds((dir / i).string(), (dir / l).string());
    CHECK(ds.size() == 3);
    CHECK(ds.classes() == std::vector<std::string>{"0", "1", "2"});
    CHECK(ds.labels() == std::vector<int64_t>{2, 0, 1});
    const Image img = ds.load(1);
    CHECK(img.height() == 2);
    CHECK(img.width() == 3);
    CHECK(img.channels() == 1);
    CHECK(std::vector<uint8_t>(img.u8(), img.u8() + 6) == std::vector<uint8_t>{60, 70, 80, 90, 100, 110});
    CHECK(ds.source(1).find("[1]") != std::string::npos);
  }
  const IdxDataset rgb((dir / "img.gz").string(), (dir / "lbl.gz").string(), {"x", "y", "z"}, ColorMode::rgb);
  const Image c = rgb.load(2);
  CHECK(c.channels() == 3);
  CHECK(std::vector<uint8_t>(c.u8(), c.u8() + 6) == std::vector<uint8_t>{120, 120, 120, 130, 130, 130});
  CHECK(rgb.classes()[2] == "z");
}

TEST_CASE("IDX: broken files name the file and the problem") {
  const auto dir = dt::scratch_dir("idx_bad");
  const std::vector<uint8_t> px(18, 7);
  write_gz(dir / "lbl.gz", idx_bytes(1, {3}, {2, 0, 1}));
  const std::string lbl = (dir / "lbl.gz").string();
  auto expect = [&](const std::string& name, const std::vector<uint8_t>& bytes, const std::string& phrase,
                    bool gz = true) {
    const auto p = dir / name;
    if (gz) write_gz(p, bytes);
    else dt::write_bytes(p, bytes);
    CAPTURE(name);
    const std::string want = p.string() + ": " + phrase;
    CHECK_THROWS_WITH_AS(IdxDataset(p.string(), lbl), doctest::Contains(want.c_str()), IOError);
  };
  expect("magic.gz", {0x1f, 0x8b, 0, 0, 1, 2, 3}, "not an IDX file");
  expect("type.gz", {0, 0, 0x0D, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5}, "element type 0x0d");
  expect("dims.gz", idx_bytes(1, {18}, px), "has 1 dimensions, expected 3");
  expect("short.gz", idx_bytes(3, {4, 2, 3}, px), "truncated");
  expect("long.gz", idx_bytes(3, {2, 2, 3}, px), "has bytes after");
  expect("huge.gz", idx_bytes(3, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, px), "header declares an implausible size");
  expect("header.gz", {0, 0, 8}, "truncated");
  {  // a gzip stream cut in half
    write_gz(dir / "whole.gz", idx_bytes(3, {3, 2, 3}, px));
    auto b = dt::read_bytes(dir / "whole.gz");
    b.resize(b.size() / 2);
    expect("cut.gz", b, "", false);
  }
  write_gz(dir / "img.gz", idx_bytes(3, {3, 2, 3}, px));
  write_gz(dir / "lbl2.gz", idx_bytes(1, {2}, {0, 1}));
  CHECK_THROWS_WITH_AS(IdxDataset((dir / "img.gz").string(), (dir / "lbl2.gz").string()),
                       doctest::Contains("has 2 labels but"), IOError);
  CHECK_THROWS_WITH_AS(IdxDataset((dir / "img.gz").string(), lbl, {"only", "two"}),
                       doctest::Contains("label 2 of sample 0 is out of range for 2 classes"), IOError);
  CHECK_THROWS_WITH_AS(IdxDataset((dir / "none.gz").string(), lbl), doctest::Contains("cannot open"), IOError);
}

TEST_CASE("CSV list file: paths, labels, quoting, errors with line numbers") {
  const auto dir = dt::scratch_dir("csv");
  write_png(dir / "imgs" / "a.png", 1);
  write_png(dir / "imgs" / "b,c.png", 2);
  write_png(dir / "other" / "d.png", 3);
  dt::write_text(dir / "names.csv",
                 "path,label\n"
                 "imgs/a.png,zebra\r\n"
                 "\"imgs/b,c.png\",ant\n"
                 "\n"
                 "# a comment\n" +
                     (dir / "other" / "d.png").string() + " , zebra \n");
  const CsvDataset ds((dir / "names.csv").string());
  CHECK(ds.size() == 3);
  CHECK(ds.classes() == std::vector<std::string>{"ant", "zebra"});
  CHECK(ds.labels() == std::vector<int64_t>{1, 0, 1});
  CHECK(ds.source(1) == (dir / "imgs" / "b,c.png").string());
  CHECK(ds.load(2).width() == 8);

  dt::write_text(dir / "ints.csv", "imgs/a.png,3\nimgs/a.png,0\n");
  const CsvDataset ints((dir / "ints.csv").string());
  CHECK(ints.classes().size() == 4);
  CHECK(ints.labels() == std::vector<int64_t>{3, 0});
  CsvOptions rooted;
  rooted.root = (dir / "imgs").string();
  dt::write_text(dir / "rooted.csv", "a.png,1\n");
  CHECK(CsvDataset((dir / "rooted.csv").string(), rooted).load(0).height() == 6);

  auto bad = [&](const std::string& name, const std::string& text, const std::string& phrase) {
    dt::write_text(dir / name, text);
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(CsvDataset((dir / name).string()), doctest::Contains(phrase.c_str()), IOError);
  };
  bad("three.csv", "a.png,1\nb.png,2,3\n", "three.csv:2: expected 2 fields (path,label), got 3");
  bad("quote.csv", "\"a.png,1\n", "quote.csv:1: unterminated quoted field");
  bad("empty_label.csv", "a.png,\n", "empty_label.csv:1: empty label");
  bad("empty.csv", "path,label\n\n", "no samples");
  // A missing image is an error when it is loaded, naming it.
  dt::write_text(dir / "missing.csv", "imgs/gone.png,0\n");
  CHECK_THROWS_WITH_AS(CsvDataset((dir / "missing.csv").string()).load(0), doctest::Contains("gone.png: cannot open"),
                       IOError);
}
