// Datasets: where samples come from. A Dataset is an indexed, thread-safe list of (image, label)
// that the DataLoader's workers read concurrently; labels are available without decoding, so
// samplers and class-weight helpers can look at them for free.
//
//   ImageFolder   root/<class>/<...>/<file>, torchvision's layout and ordering: classes are the
//                 sub-directories sorted by code point (Python's sorted), samples are ordered by
//                 class, then directory path, then file name (sorted(os.walk(...))), and filtered
//                 by extension, case-insensitively. Unlike torchvision, hidden files and hidden
//                 directories (names starting with '.') are skipped - torchvision would turn
//                 `.ipynb_checkpoints` into class 0. Empty class folders are an error by default,
//                 naming them. `image_folder_train_val(dir)` loads dir/train and dir/val and
//                 refuses folders whose classes differ, naming the differences.
//   IdxDataset    MNIST-style IDX files (u8 images [n, rows, cols] + u8 labels [n]), gzip or
//                 plain (zlib reads both). `fashion_mnist()` reads Debian's dataset-fashion-mnist
//                 package by default. The whole set is held in memory (47 MB for 60,000 28x28).
//   CsvDataset    a list file of `path,label` lines, for data that is not laid out in folders.
//
// Reading and decoding failures are IOErrors naming the file; the loader's bad-sample policy
// decides what they do to a run.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "decode.hpp"
#include "image.hpp"

namespace wanwu::data {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // The class index of sample i, without decoding it.
  virtual int64_t label(int64_t index) const = 0;
  // The decoded sample: u8 HWC. Thread-safe. IOError when the sample cannot be read.
  virtual Image load(int64_t index) const = 0;
  // Where sample i comes from (a path), for messages.
  virtual std::string source(int64_t index) const = 0;
  virtual const std::vector<std::string>& classes() const = 0;

  int64_t num_classes() const { return static_cast<int64_t>(classes().size()); }
  std::vector<int64_t> labels() const {
    std::vector<int64_t> l(static_cast<size_t>(size()));
    for (int64_t i = 0; i < size(); ++i) l[i] = label(i);
    return l;
  }

 protected:
  void check_index(int64_t i, const char* op) const {
    WANWU_CHECK_INDEX(i >= 0 && i < size(), op, ": index ", i, " is out of range for a dataset of ", size(),
                      " samples");
  }
};

// ---- ImageFolder ----

// torchvision's IMG_EXTENSIONS restricted to what the decoder reads, plus .gif and .tga.
inline std::vector<std::string> default_image_extensions() {
  return {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".ppm", ".pgm"};
}

enum class EmptyClasses : uint8_t { error, allow };

struct ImageFolderOptions {
  std::vector<std::string> extensions = default_image_extensions();  // matched case-insensitively
  DecodeOptions decode;
  EmptyClasses empty_classes = EmptyClasses::error;
};

namespace detail {
namespace fs = std::filesystem;

inline bool is_hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}
inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
inline bool has_extension(const std::string& name, const std::vector<std::string>& exts) {
  const std::string l = lower(name);
  for (const auto& e : exts)
    if (l.size() >= e.size() && l.compare(l.size() - e.size(), e.size(), e) == 0) return true;
  return false;
}

// The files of one class folder in sorted(os.walk(dir, followlinks=True)) order: directories by
// path string, files by name within each. Each directory is visited once even through symlinks.
inline std::vector<std::string> walk_class_dir(const fs::path& dir, const std::vector<std::string>& exts) {
  std::vector<std::pair<std::string, std::vector<std::string>>> dirs;
  std::set<fs::path> seen;
  std::vector<fs::path> stack{dir};
  while (!stack.empty()) {
    const fs::path d = stack.back();
    stack.pop_back();
    std::error_code ec;
    const fs::path canon = fs::canonical(d, ec);
    if (ec || !seen.insert(canon).second) continue;
    std::vector<std::string> files;
    for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      if (is_hidden(p)) continue;
      std::error_code ec2;
      if (it->is_directory(ec2)) stack.push_back(p);
      else if (has_extension(p.filename().string(), exts)) files.push_back(p.filename().string());
    }
    if (ec) throw IOError(str("ImageFolder: cannot list ", d.string(), " (", ec.message(), ")"));
    std::sort(files.begin(), files.end());
    dirs.emplace_back(d.generic_string(), std::move(files));
  }
  std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (const auto& [d, files] : dirs)
    for (const auto& f : files) out.push_back(d + "/" + f);
  return out;
}

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}
}  // namespace detail

class ImageFolder final : public Dataset {
 public:
  explicit ImageFolder(std::string root, ImageFolderOptions options = {})
      : root_(std::move(root)), options_(std::move(options)) {
    WANWU_CHECK_VALUE(!options_.extensions.empty(), "ImageFolder: no extensions given");
    for (auto& e : options_.extensions) e = detail::lower(e);
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(root_, ec))
      throw IOError(detail::str("ImageFolder: ", root_, " is not a directory",
                                fs::exists(root_, ec) ? "" : " (it does not exist)"));
    for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code ec2;
      if (!detail::is_hidden(it->path()) && it->is_directory(ec2)) classes_.push_back(it->path().filename().string());
    }
    if (ec) throw IOError(detail::str("ImageFolder: cannot list ", root_, " (", ec.message(), ")"));
    if (classes_.empty()) throw IOError(detail::str("ImageFolder: no class folders in ", root_));
    std::sort(classes_.begin(), classes_.end());
    std::vector<std::string> empty_classes;
    for (size_t c = 0; c < classes_.size(); ++c) {
      const auto files = detail::walk_class_dir(fs::path(root_) / classes_[c], options_.extensions);
      if (files.empty()) empty_classes.push_back(classes_[c]);
      for (const auto& f : files) samples_.emplace_back(f, static_cast<int64_t>(c));
    }
    if (!empty_classes.empty() && options_.empty_classes == EmptyClasses::error) {
      std::string exts;
      for (const auto& e : options_.extensions) exts += (exts.empty() ? "" : ", ") + e;
      throw IOError(detail::str("ImageFolder: ", root_, ": found no image files for the classes ",
                                detail::join(empty_classes), " (supported extensions: ", exts, ")"));
    }
  }

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  int64_t label(int64_t i) const override {
    check_index(i, "ImageFolder::label");
    return samples_[i].second;
  }
  Image load(int64_t i) const override {
    check_index(i, "ImageFolder::load");
    return decode_image(samples_[i].first, options_.decode);
  }
  std::string source(int64_t i) const override {
    check_index(i, "ImageFolder::source");
    return samples_[i].first;
  }
  const std::vector<std::string>& classes() const override { return classes_; }
  const std::string& root() const { return root_; }
  const std::vector<std::pair<std::string, int64_t>>& samples() const { return samples_; }
  int64_t class_index(const std::string& name) const {
    const auto it = std::lower_bound(classes_.begin(), classes_.end(), name);
    WANWU_CHECK_VALUE(it != classes_.end() && *it == name, "ImageFolder: no class '", name, "' in ", root_);
    return it - classes_.begin();
  }

 private:
  std::string root_;
  ImageFolderOptions options_;
  std::vector<std::string> classes_;
  std::vector<std::pair<std::string, int64_t>> samples_;
};

// A trained model's output k means classes()[k]: a validation folder whose classes differ would
// silently score the wrong labels, so this is an error naming the classes on each side only.
inline void check_same_classes(const Dataset& train, const Dataset& val, const std::string& train_name = "train",
                               const std::string& val_name = "val") {
  const auto& a = train.classes();
  const auto& b = val.classes();
  if (a == b) return;
  std::vector<std::string> only_a, only_b;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only_a));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(only_b));
  throw IOError(detail::str("the classes of ", train_name, " and ", val_name, " differ: only in ", train_name, ": [",
                            detail::join(only_a), "]; only in ", val_name, ": [", detail::join(only_b), "]"));
}

struct TrainValFolders {
  std::shared_ptr<ImageFolder> train, val;
};

// dir/train and dir/val with identical class lists (see check_same_classes).
inline TrainValFolders image_folder_train_val(const std::string& dir, const ImageFolderOptions& options = {}) {
  const std::string t = (std::filesystem::path(dir) / "train").string();
  const std::string v = (std::filesystem::path(dir) / "val").string();
  TrainValFolders f{std::make_shared<ImageFolder>(t, options), std::make_shared<ImageFolder>(v, options)};
  check_same_classes(*f.train, *f.val, t, v);
  return f;
}

// ---- IDX (MNIST, Fashion-MNIST) ----

namespace detail {

// One IDX file of unsigned bytes: returns the dimensions and fills `data`.
inline std::vector<int64_t> read_idx_u8(const std::string& path, int expected_dims, std::vector<uint8_t>& data) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), &gzclose);
  if (!f) throw IOError(str("IDX: ", path, ": cannot open (", std::generic_category().message(errno), ")"));
  auto read_exact = [&](void* dst, size_t n, const char* what) {
    size_t got = 0;
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, size_t(1) << 30));
      const int r = gzread(f.get(), static_cast<char*>(dst) + got, chunk);
      if (r < 0) {
        int errnum = 0;
        const char* msg = gzerror(f.get(), &errnum);
        throw IOError(str("IDX: ", path, ": corrupt gzip data while reading the ", what, " (", msg, ")"));
      }
      if (r == 0) {
        int errnum = 0;
        const char* msg = gzerror(f.get(), &errnum);
        throw IOError(str("IDX: ", path, ": truncated: the ", what, " needs ", n, " bytes, the file ends after ", got,
                          errnum != Z_OK ? str(" (", msg, ")") : std::string()));
      }
      got += static_cast<size_t>(r);
    }
  };
  uint8_t magic[4];
  read_exact(magic, 4, "header");
  if (magic[0] != 0 || magic[1] != 0)
    throw IOError(str("IDX: ", path, ": not an IDX file (magic bytes ", first_bytes_hex(magic, 4), ")"));
  if (magic[2] != 0x08)
    throw IOError(str("IDX: ", path, ": element type 0x", first_bytes_hex(magic + 2, 1),
                      " is not supported (only unsigned bytes, 0x08)"));
  if (magic[3] != expected_dims)
    throw IOError(str("IDX: ", path, ": has ", int(magic[3]), " dimensions, expected ", expected_dims));
  std::vector<int64_t> dims(static_cast<size_t>(expected_dims));
  // 16 GiB: far above any IDX set, far below what a corrupt header could ask for.
  constexpr int64_t kLimit = int64_t(1) << 34;
  int64_t total = 1;
  for (auto& d : dims) {
    uint8_t b[4];
    read_exact(b, 4, "header");
    d = int64_t(b[0]) << 24 | int64_t(b[1]) << 16 | int64_t(b[2]) << 8 | int64_t(b[3]);
    if (d != 0 && total > kLimit / d)
      throw IOError(str("IDX: ", path, ": header declares an implausible size (over ", kLimit, " bytes)"));
    total *= d;
  }
  // Grow with the data actually read, so a header that lies costs only what the file holds.
  data.clear();
  constexpr size_t kChunk = size_t(16) << 20;
  while (data.size() < static_cast<size_t>(total)) {
    const size_t n = std::min(kChunk, static_cast<size_t>(total) - data.size());
    const size_t at = data.size();
    data.resize(at + n);
    try {
      read_exact(data.data() + at, n, "data");
    } catch (const IOError& e) {
      throw IOError(str(e.what(), "; the header declares ", total, " bytes of data, the file holds at least ", at));
    }
  }
  char extra;
  if (gzread(f.get(), &extra, 1) > 0)
    throw IOError(str("IDX: ", path, ": has bytes after the ", total, " its header declares"));
  return dims;
}

}  // namespace detail

class IdxDataset final : public Dataset {
 public:
  // `class_names` empty: "0", "1", ... up to the largest label.
  IdxDataset(std::string images_path, std::string labels_path, std::vector<std::string> class_names = {},
             ColorMode color = ColorMode::gray)
      : images_path_(std::move(images_path)), color_(color) {
    const auto dims = detail::read_idx_u8(images_path_, 3, pixels_);
    std::vector<uint8_t> labels;
    const auto ldims = detail::read_idx_u8(labels_path, 1, labels);
    n_ = dims[0];
    rows_ = dims[1];
    cols_ = dims[2];
    if (ldims[0] != n_)
      throw IOError(detail::str("IDX: ", labels_path, " has ", ldims[0], " labels but ", images_path_, " has ", n_,
                                " images"));
    if (rows_ <= 0 || cols_ <= 0) throw IOError(detail::str("IDX: ", images_path_, ": empty images"));
    labels_.assign(labels.begin(), labels.end());
    const int64_t max_label = labels_.empty() ? -1 : *std::max_element(labels_.begin(), labels_.end());
    if (class_names.empty()) {
      for (int64_t c = 0; c <= max_label; ++c) classes_.push_back(std::to_string(c));
    } else {
      classes_ = std::move(class_names);
      if (max_label >= num_classes()) {
        const auto it = std::find(labels_.begin(), labels_.end(), max_label);
        throw IOError(detail::str("IDX: ", labels_path, ": label ", max_label, " of sample ", it - labels_.begin(),
                                  " is out of range for ", num_classes(), " classes"));
      }
    }
  }

  int64_t size() const override { return n_; }
  int64_t label(int64_t i) const override {
    check_index(i, "IdxDataset::label");
    return labels_[i];
  }
  Image load(int64_t i) const override {
    check_index(i, "IdxDataset::load");
    const int64_t c = color_ == ColorMode::rgb ? 3 : 1;
    Image img(rows_, cols_, c, PixelType::u8);
    const uint8_t* src = pixels_.data() + i * rows_ * cols_;
    uint8_t* dst = img.u8();
    for (int64_t p = 0; p < rows_ * cols_; ++p)
      for (int64_t k = 0; k < c; ++k) dst[p * c + k] = src[p];
    return img;
  }
  std::string source(int64_t i) const override { return detail::str(images_path_, "[", i, "]"); }
  const std::vector<std::string>& classes() const override { return classes_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }

 private:
  std::string images_path_;
  ColorMode color_;
  int64_t n_ = 0, rows_ = 0, cols_ = 0;
  std::vector<uint8_t> pixels_;
  std::vector<int64_t> labels_;
  std::vector<std::string> classes_;
};

enum class Split : uint8_t { train, test };

// Where Debian's dataset-fashion-mnist package installs the four .gz files.
inline std::string default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

inline std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

namespace detail {
inline std::pair<std::string, std::string> idx_paths(const std::string& root, Split split) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const std::filesystem::path r(root);
  return {(r / (prefix + "-images-idx3-ubyte.gz")).string(), (r / (prefix + "-labels-idx1-ubyte.gz")).string()};
}
}  // namespace detail

// Fashion-MNIST (60,000 training and 10,000 test images, 28x28 grey, 10 classes).
inline std::shared_ptr<IdxDataset> fashion_mnist(Split split, const std::string& root = default_fashion_mnist_dir(),
                                                 ColorMode color = ColorMode::gray) {
  const auto [images, labels] = detail::idx_paths(root, split);
  return std::make_shared<IdxDataset>(images, labels, fashion_mnist_classes(), color);
}

// MNIST in the same file layout (train-images-idx3-ubyte.gz, ...) under `root`.
inline std::shared_ptr<IdxDataset> mnist(Split split, const std::string& root, ColorMode color = ColorMode::gray) {
  const auto [images, labels] = detail::idx_paths(root, split);
  std::vector<std::string> digits;
  for (int d = 0; d < 10; ++d) digits.push_back(std::to_string(d));
  return std::make_shared<IdxDataset>(images, labels, digits, color);
}

// ---- CSV list file ----

struct CsvOptions {
  std::string root;  // relative paths are resolved against this; empty: the list file's directory
  DecodeOptions decode;
};

namespace detail {
// One line of RFC 4180 CSV: comma-separated, double quotes around fields with commas or quotes,
// "" for a quote inside.
inline std::vector<std::string> split_csv_line(const std::string& line, const std::string& file, int64_t lineno) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"' && fields.back().empty()) {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  if (quoted) throw IOError(str("CsvDataset: ", file, ":", lineno, ": unterminated quoted field"));
  return fields;
}
inline std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}
inline bool parse_nonnegative_int(const std::string& s, int64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}
}  // namespace detail

// `path,label` per line. Labels that are all non-negative integers are class indices (classes
// "0".."max"); otherwise every label is a class name and classes are the sorted distinct names,
// as ImageFolder sorts folder names. A first line `path,label` is a header; blank lines and lines
// starting with '#' are ignored.
class CsvDataset final : public Dataset {
 public:
  explicit CsvDataset(std::string csv_path, CsvOptions options = {})
      : csv_path_(std::move(csv_path)), options_(std::move(options)) {
    const std::vector<uint8_t> bytes = read_file_bytes(csv_path_);
    const std::string text(bytes.begin(), bytes.end());
    const std::filesystem::path root =
        options_.root.empty() ? std::filesystem::path(csv_path_).parent_path() : std::filesystem::path(options_.root);
    std::vector<std::string> names;
    size_t pos = 0;
    int64_t lineno = 0;
    bool first = true;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      ++lineno;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (detail::trim(line).empty() || detail::trim(line)[0] == '#') continue;
      auto fields = detail::split_csv_line(line, csv_path_, lineno);
      if (fields.size() != 2)
        throw IOError(detail::str("CsvDataset: ", csv_path_, ":", lineno, ": expected 2 fields (path,label), got ",
                                  fields.size()));
      const std::string path = detail::trim(fields[0]), label = detail::trim(fields[1]);
      if (first && detail::lower(path) == "path" && detail::lower(label) == "label") {
        first = false;
        continue;
      }
      first = false;
      if (path.empty()) throw IOError(detail::str("CsvDataset: ", csv_path_, ":", lineno, ": empty path"));
      if (label.empty()) throw IOError(detail::str("CsvDataset: ", csv_path_, ":", lineno, ": empty label"));
      const std::filesystem::path p(path);
      paths_.push_back(p.is_absolute() ? path : (root / p).string());
      names.push_back(label);
    }
    if (paths_.empty()) throw IOError(detail::str("CsvDataset: ", csv_path_, ": no samples"));
    bool numeric = true;
    std::vector<int64_t> values(names.size());
    for (size_t i = 0; i < names.size() && numeric; ++i) numeric = detail::parse_nonnegative_int(names[i], values[i]);
    if (numeric) {
      const int64_t max_label = *std::max_element(values.begin(), values.end());
      WANWU_CHECK_T(IOError, max_label < (int64_t(1) << 24), "CsvDataset: ", csv_path_, ": label ", max_label,
                    " is implausibly large for a class index");
      for (int64_t c = 0; c <= max_label; ++c) classes_.push_back(std::to_string(c));
      labels_ = std::move(values);
    } else {
      classes_ = names;
      std::sort(classes_.begin(), classes_.end());
      classes_.erase(std::unique(classes_.begin(), classes_.end()), classes_.end());
      for (const auto& n : names)
        labels_.push_back(std::lower_bound(classes_.begin(), classes_.end(), n) - classes_.begin());
    }
  }

  int64_t size() const override { return static_cast<int64_t>(paths_.size()); }
  int64_t label(int64_t i) const override {
    check_index(i, "CsvDataset::label");
    return labels_[i];
  }
  Image load(int64_t i) const override {
    check_index(i, "CsvDataset::load");
    return decode_image(paths_[i], options_.decode);
  }
  std::string source(int64_t i) const override {
    check_index(i, "CsvDataset::source");
    return paths_[i];
  }
  const std::vector<std::string>& classes() const override { return classes_; }

 private:
  std::string csv_path_;
  CsvOptions options_;
  std::vector<std::string> paths_;
  std::vector<int64_t> labels_;
  std::vector<std::string> classes_;
};

}  // namespace wanwu::data
