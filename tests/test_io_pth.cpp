// .pth reading (include/wanwu/io/pth.hpp, pickle.hpp, zip.hpp) on checkpoints encoded byte by byte
// here from the pickle and zip formats, not produced by the reader's own writer or by torch:
//   - a legacy stream and a zip archive load to the exact values, views and dtypes encoded;
//   - hostile structures that once crashed or could hang a reader (a short storage view, containers
//     that hold themselves through the memo, deep nesting, shared sub-objects that a tree walk
//     would visit exponentially often, sizes that overflow, a zip offset near 2^64) are refused
//     with an IOError;
//   - thousands of corrupted copies of both files load or throw wanwu's error, never anything else.
// The same file is also built with AddressSanitizer and UBSan (test_io_pth_asan), which turns any
// out-of-bounds read on the way into a failure.
#ifdef WANWU_TEST_OWN_MAIN
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#endif
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <wanwu/wanwu.hpp>

using namespace wanwu;
using namespace std::string_literals;

namespace {

std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// Protocol-2 pickle opcodes, as Python's pickle module documents them.
struct Pickle {
  std::string b;
  Pickle& raw(const std::string& s) { return b += s, *this; }
  Pickle& str(const std::string& s) { return b += 'X' + le(s.size(), 4) + s, *this; }
  Pickle& global(const std::string& module, const std::string& name) { return b += 'c' + module + '\n' + name + '\n', *this; }
  Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return b += 'K' + le(static_cast<uint64_t>(v), 1), *this;
    return b += "\x8a\x08" + le(static_cast<uint64_t>(v), 8), *this;
  }
  Pickle& tuple_of(const std::vector<int64_t>& v) {
    b += '(';
    for (int64_t x : v) integer(x);
    return b += 't', *this;
  }
  Pickle& ordered_dict() { return global("collections", "OrderedDict").raw(")R"); }
};

struct TensorSpec {
  std::string name, storage_type = "FloatStorage", key;
  int64_t storage_numel = 0, offset = 0;
  std::vector<int64_t> shape, strides;
  std::vector<int64_t> view;  // legacy (key, offset, size) view of the storage when not empty
  bool parameter = false;
};

Pickle& tensor(Pickle& p, const TensorSpec& t) {
  if (t.parameter) p.global("torch._utils", "_rebuild_parameter").raw("(");
  p.global("torch._utils", "_rebuild_tensor_v2").raw("((");
  p.str("storage").global("torch", t.storage_type).str(t.key).str("cpu").integer(t.storage_numel);
  if (!t.view.empty()) {
    p.raw("(").str(t.key);
    for (size_t i = 1; i < t.view.size(); ++i) p.integer(t.view[i]);
    p.raw("t");
  }
  p.raw("tQ").integer(t.offset).tuple_of(t.shape).tuple_of(t.strides).raw("\x89").ordered_dict().raw("tR");
  if (t.parameter) p.raw("\x88tR");
  return p;
}

std::string state_dict_pickle(const std::vector<TensorSpec>& ts) {
  Pickle p;
  p.raw("\x80\x02").ordered_dict();
  for (const auto& t : ts) tensor(p.str(t.name), t).raw("s");
  return p.raw(".").b;
}

const std::string kMagic = std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);

// torch.save's legacy stream: magic, protocol 1001, system info, the pickle, storage keys, storages.
std::string legacy_file(const std::string& root, const std::vector<std::pair<std::string, std::string>>& storages,
                        const std::vector<int>& itemsizes) {
  std::string f = kMagic + "\x80\x02M\xe9\x03." + "\x80\x02}." + root;
  Pickle keys;
  keys.raw("\x80\x02]");
  for (const auto& [k, bytes] : storages) keys.str(k).raw("a");
  f += keys.raw(".").b;
  for (size_t i = 0; i < storages.size(); ++i)
    f += le(storages[i].second.size() / itemsizes[i], 8) + storages[i].second;
  return f;
}

// A zip archive of stored entries (local headers, central directory, end record).
std::string zip_file(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    const uint64_t off = out.size();
    out += le(0x04034b50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4) + le(data.size(), 4) +
           le(data.size(), 4) + le(name.size(), 2) + le(0, 2) + name + data;
    cd += le(0x02014b50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4) + le(data.size(), 4) +
          le(data.size(), 4) + le(name.size(), 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(off, 4) +
          name;
  }
  const uint64_t cd_off = out.size();
  return out + cd + le(0x06054b50, 4) + le(0, 4) + le(entries.size(), 2) + le(entries.size(), 2) + le(cd.size(), 4) +
         le(cd_off, 4) + le(0, 2);
}

std::string floats(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }
std::string longs(const std::vector<int64_t>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 8); }

// The files go to a folder of this process's own, removed when the program ends.
struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("wanwu_test_io_pth_" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string write(const std::string& name, const std::string& bytes) {
  static const TempDir dir;
  const std::string path = (dir.path / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

// A state dict of four tensors over two storages: a 2x3 matrix, its transpose as a strided view, a
// legacy view into the second half of the float storage, and an int64 scalar.
const std::vector<float> kValues = {0.5f, -1.f, 2.f, 3.25f, -4.f, 5.f, 6.5f, 7.f};
std::vector<TensorSpec> specs(bool legacy) {
  std::vector<TensorSpec> ts = {
      {"a.weight", "FloatStorage", "0", 8, 0, {2, 3}, {3, 1}},
      {"a.t", "FloatStorage", "0", 8, 1, {3, 2}, {1, 3}},
      {"n.num_batches_tracked", "LongStorage", "1", 1, 0, {}, {}},
  };
  ts.push_back({"p", "FloatStorage", "0", 8, 0, {2}, {1}, {}, true});
  if (legacy) ts.push_back({"v", "FloatStorage", "0", 8, 1, {2}, {2}, {0, 4, 4}});  // elements 4 + 1 + {0, 2}
  return ts;
}
std::string good_legacy() {
  return legacy_file(state_dict_pickle(specs(true)), {{"0", floats(kValues)}, {"1", longs({7})}}, {4, 8});
}
std::string good_zip() {
  return zip_file({{"archive/data.pkl", state_dict_pickle(specs(false))},
                   {"archive/data/0", floats(kValues)},
                   {"archive/data/1", longs({7})},
                   {"archive/version", "3\n"}});
}

void check_values(const nn::StateDict& sd, bool legacy) {
  REQUIRE(sd.size() == (legacy ? 5u : 4u));
  CHECK(sd.at("a.weight").shape() == Shape{2, 3});
  CHECK(sd.at("a.weight").tolist<float>() == std::vector<float>{0.5f, -1.f, 2.f, 3.25f, -4.f, 5.f});
  // offset 1, strides (1, 3): [[x1, x4], [x2, x5], [x3, x6]]
  CHECK(sd.at("a.t").contiguous().tolist<float>() == std::vector<float>{-1.f, -4.f, 2.f, 5.f, 3.25f, 6.5f});
  CHECK(sd.at("n.num_batches_tracked").dtype() == DType::i64);
  CHECK(sd.at("n.num_batches_tracked").shape() == Shape{});
  CHECK(sd.at("n.num_batches_tracked").tolist<int64_t>() == std::vector<int64_t>{7});
  CHECK(sd.at("p").tolist<float>() == std::vector<float>{0.5f, -1.f});
  if (legacy) CHECK(sd.at("v").tolist<float>() == std::vector<float>{5.f, 7.f});
}

template <class F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const IOError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("hand-encoded legacy and zip checkpoints load to the encoded values") {
  check_values(io::load_pth(write("good_legacy.pth", good_legacy())), true);
  check_values(io::load_pth(write("good_zip.pth", good_zip())), false);
}

TEST_CASE("hostile structures are refused with an IOError") {
  auto unpickle = [](const std::string& bytes) {
    return refusal([&] { io::pickle::Unpickler(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "x").load(); });
  };
  // a list appended to itself, a dict that holds itself, a BUILD state that holds its object
  CHECK(unpickle("\x80\x02]q\x00h\x00" "a."s).find("hold itself") != std::string::npos);
  CHECK(unpickle("\x80\x02}q\x00X\x01\x00\x00\x00kh\x00s."s).find("hold itself") != std::string::npos);
  CHECK(unpickle("\x80\x02]q\x00(h\x00" "e."s).find("hold itself") != std::string::npos);
  CHECK(unpickle("\x80\x02]q\x00]h\x00" "a\x85" "b."s).find("hold itself") != std::string::npos);
  // 300 nested one-element tuples
  CHECK(unpickle("\x80\x02)" + std::string(300, '\x85') + ".").find("deeper") != std::string::npos);
  // T = (T, T) sixty times over: 2^60 paths through 61 objects, walked once each
  {
    Pickle p;
    p.raw("\x80\x02").ordered_dict().str("x").raw(")");
    for (int i = 0; i < 60; ++i) p.raw("2\x86");
    p.raw("s");
    tensor(p.str("w"), {"w", "FloatStorage", "0", 8, 0, {2}, {1}}).raw("s.");
    const std::string msg = refusal([&] {
      io::load_pth(write("dag.pth", legacy_file(p.b, {{"0", floats(kValues)}}, {4})));
    });
    CHECK(msg.find("no state dict found") != std::string::npos);
  }
  auto one_tensor = [](const std::string& name, const TensorSpec& t) {
    return refusal([&] { io::load_pth(write(name, legacy_file(state_dict_pickle({t}), {{"0", floats(kValues)}}, {4}))); });
  };
  // a legacy storage view of two items instead of (key, offset, size)
  CHECK(one_tensor("short_view.pth", {"w", "FloatStorage", "0", 8, 0, {2}, {1}, {0, 1}}).find("storage view") !=
        std::string::npos);
  // (last element reached) and (element count) that overflow 64 bits, and an offset that does
  CHECK(one_tensor("overflow1.pth", {"w", "FloatStorage", "0", 8, 0, {int64_t{1} << 62, 4}, {1, int64_t{1} << 62}})
            .find("does not fit") != std::string::npos);
  CHECK(one_tensor("overflow2.pth", {"w", "FloatStorage", "0", 8, 0, {int64_t{1} << 40, int64_t{1} << 40}, {0, 0}})
            .find("does not fit") != std::string::npos);
  CHECK(one_tensor("broadcast.pth", {"w", "FloatStorage", "0", 8, 0, {int64_t{1} << 30}, {0}}).find("does not fit") !=
        std::string::npos);
  CHECK(one_tensor("overflow3.pth", {"w", "FloatStorage", "0", 8, INT64_MAX, {2}, {1}, {0, 4, 4}})
            .find("does not fit") != std::string::npos);
  // a parameter that wraps a parameter
  {
    Pickle p;
    p.raw("\x80\x02").ordered_dict().str("w").global("torch._utils", "_rebuild_parameter").raw("(");
    tensor(p, {"w", "FloatStorage", "0", 8, 0, {2}, {1}, {}, true}).raw("\x88tRs.");
    CHECK(refusal([&] { io::load_pth(write("param2.pth", legacy_file(p.b, {{"0", floats(kValues)}}, {4}))); })
              .find("_rebuild_parameter") != std::string::npos);
  }
  // a zip64 extra field whose local-header offset is 2^64 - 2 (offset + 4 wraps around)
  {
    std::string z = zip_file({{"archive/data.pkl", state_dict_pickle({})}});
    const size_t cd = z.find(le(0x02014b50, 4));
    REQUIRE(cd != std::string::npos);
    z.replace(cd + 42, 4, le(0xFFFFFFFF, 4));                   // local offset: see the zip64 field
    z.replace(cd + 30, 2, le(12, 2));                           // extra field length
    const std::string extra = le(1, 2) + le(8, 2) + le(~uint64_t{1}, 8);
    z.insert(cd + 46 + std::string("archive/data.pkl").size(), extra);
    const size_t eocd = z.rfind(le(0x06054b50, 4));
    z.replace(eocd + 12, 4, le(46 + 16 + 12, 4));               // central directory size
    CHECK(refusal([&] { io::load_pth(write("zip64.pth", z)); }).find("not a valid zip archive") != std::string::npos);
  }
}

TEST_CASE("corrupted copies of both formats load or throw wanwu's error") {
  const std::string ops = "qhgp2a0sue\x85\x86\x87tlRbQ";  // opcodes that reuse or mutate earlier objects
  for (const auto& [name, bytes] : {std::pair<std::string, std::string>{"legacy", good_legacy()}, {"zip", good_zip()}}) {
    std::mt19937_64 rng(name.size());
    int refused = 0, loaded = 0;
    for (int trial = 0; trial < 3000; ++trial) {
      std::string b = bytes;
      switch (trial % 4) {
        case 0: b.resize(rng() % b.size()); break;
        case 1: b.insert(rng() % b.size(), 1, ops[rng() % ops.size()]); break;
        default:
          for (int j = 0; j <= trial % 4; ++j) b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
      }
      const std::string path = write("mutant_" + name + ".pth", b);
      try {
        io::load_pth(path);
        ++loaded;
      } catch (const Error&) {
        ++refused;
      }
    }
    INFO(name << ": " << refused << " refused, " << loaded << " loaded");
    CHECK(refused > 1000);
    CHECK(refused + loaded == 3000);
  }
}
