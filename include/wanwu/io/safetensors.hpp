// safetensors: the weights and checkpoint format (DESIGN D9). Reading memory-maps the file
// (copy-on-write, so tensors that alias it can still be modified) and validates the header before
// touching any data: header size within the file, valid JSON, known dtypes, non-negative shapes,
// offsets inside the data buffer, byte sizes equal to numel * itemsize, no overlapping tensors, no
// unindexed bytes. A truncated or hostile file is an IOError naming the file and the problem, never
// an out-of-bounds read. Writing is atomic: a temporary file in the same directory, fsync, rename.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ..., "__metadata__": {...}},
// then the data buffer (offsets are relative to it).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../nn/module.hpp"
#include "../ops/factory.hpp"

namespace wanwu::io {

struct SafetensorsFile {
  nn::StateDict tensors;
  std::map<std::string, std::string> metadata;
};

namespace detail {

inline const char* safetensors_dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    case DType::boolean: return "BOOL";
  }
  return "?";
}

inline std::optional<DType> safetensors_dtype(const std::string& s) {
  for (DType d : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean})
    if (s == safetensors_dtype_name(d)) return d;
  return std::nullopt;
}

// A read-only view of a file: mmap'd copy-on-write, unmapped when the last tensor lets go.
struct MappedFile {
  void* base = MAP_FAILED;
  size_t size = 0;
  ~MappedFile() {
    if (base != MAP_FAILED && size > 0) munmap(base, size);
  }
};

inline std::shared_ptr<MappedFile> map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw IOError(wanwu::detail::str(path, ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IOError(wanwu::detail::str(path, ": not a regular file"));
  }
  auto m = std::make_shared<MappedFile>();
  m->size = static_cast<size_t>(st.st_size);
  if (m->size > 0) {
    m->base = ::mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m->base == MAP_FAILED) {
      ::close(fd);
      throw IOError(wanwu::detail::str(path, ": cannot map ", m->size, " bytes: ", std::strerror(errno)));
    }
  }
  ::close(fd);
  return m;
}

[[noreturn]] inline void bad_file(const std::string& path, const std::string& why) {
  throw IOError(path + ": not a valid safetensors file: " + why);
}

}  // namespace detail

// Reads every tensor (or those for which keep(name) is true) onto `device`.
inline SafetensorsFile load_safetensors(const std::string& path, Device device = Device::cpu(),
                                        const std::function<bool(const std::string&)>& keep = nullptr) {
  const auto m = detail::map_file(path);
  const auto* bytes = static_cast<const unsigned char*>(m->base);
  if (m->size < 8) detail::bad_file(path, wanwu::detail::str("only ", m->size, " bytes (truncated?)"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n == 0 || n > m->size - 8 || n > (uint64_t(100) << 20))
    detail::bad_file(path, wanwu::detail::str("header length ", n, " does not fit a file of ", m->size, " bytes"));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes + 8), reinterpret_cast<const char*>(bytes + 8 + n));
  } catch (const std::exception& e) {
    detail::bad_file(path, std::string("the header is not JSON (") + e.what() + ")");
  }
  if (!header.is_object()) detail::bad_file(path, "the header is not a JSON object");
  const size_t data_start = 8 + static_cast<size_t>(n);
  const size_t data_size = m->size - data_start;
  SafetensorsFile out;
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    size_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) detail::bad_file(path, "__metadata__ is not an object");
      for (auto mt = v.begin(); mt != v.end(); ++mt) {
        if (!mt.value().is_string()) detail::bad_file(path, "metadata value '" + mt.key() + "' is not a string");
        out.metadata[mt.key()] = mt.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets") ||
        !v["dtype"].is_string() || !v["shape"].is_array() || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      detail::bad_file(path, "entry '" + name + "' needs dtype, shape and data_offsets [begin, end]");
    const auto dt = detail::safetensors_dtype(v["dtype"].get<std::string>());
    if (!dt) detail::bad_file(path, "entry '" + name + "' has unsupported dtype " + v["dtype"].get<std::string>());
    Entry e{name, *dt, {}, 0, 0};
    if (v["shape"].size() > static_cast<size_t>(kMaxDims)) detail::bad_file(path, "entry '" + name + "' has too many dimensions");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        detail::bad_file(path, "entry '" + name + "' has a negative or non-integer dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > (uint64_t(1) << 48) / dim) detail::bad_file(path, "entry '" + name + "' is impossibly large");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto& o : v["data_offsets"])
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        detail::bad_file(path, "entry '" + name + "' has invalid data_offsets");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size)
      detail::bad_file(path, wanwu::detail::str("entry '", name, "' spans bytes [", e.begin, ", ", e.end,
                                                ") but the data buffer has ", data_size, " (truncated?)"));
    if (e.end - e.begin != numel * itemsize(e.dtype))
      detail::bad_file(path, wanwu::detail::str("entry '", name, "' has ", e.end - e.begin, " bytes for ", numel, " x ",
                                                itemsize(e.dtype), "-byte elements"));
    entries.push_back(std::move(e));
  }
  // the entries must tile the buffer: no overlap, no gaps
  std::vector<const Entry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  size_t pos = 0;
  for (const Entry* e : order) {
    if (e->begin < pos) detail::bad_file(path, "entry '" + e->name + "' overlaps another tensor");
    if (e->begin > pos) detail::bad_file(path, wanwu::detail::str("bytes [", pos, ", ", e->begin, ") belong to no tensor"));
    pos = e->end;
  }
  if (pos != data_size) detail::bad_file(path, wanwu::detail::str("bytes after offset ", pos, " belong to no tensor"));
  for (const auto& e : entries) {
    if (keep && !keep(e.name)) continue;
    const void* src = bytes + data_start + e.begin;
    Tensor t;
    const bool aligned = reinterpret_cast<uintptr_t>(src) % itemsize(e.dtype) == 0;
    if (device.is_cpu() && aligned && e.end > e.begin) {  // zero copy: alias the mapping
      auto storage = std::make_shared<Storage>(const_cast<void*>(src), e.end - e.begin, Device::cpu(),
                                               [m](void*) {});  // the lambda keeps the mapping alive
      t = Tensor(std::make_shared<TensorImpl>(std::move(storage), 0, e.shape, contiguous_strides(e.shape), e.dtype));
    } else {
      Tensor host = empty_tensor(e.shape, e.dtype, Device::cpu());
      if (e.end > e.begin) std::memcpy(host.data_ptr(), src, e.end - e.begin);
      t = device.is_cpu() ? host : host.to(device);
    }
    out.tensors.set(e.name, t);
  }
  return out;
}

// Writes tensors (any device, any layout) and metadata atomically.
inline void save_safetensors(const std::string& path, const nn::StateDict& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    WANWU_CHECK_VALUE(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    WANWU_CHECK_VALUE(name != "__metadata__", "save_safetensors: '__metadata__' is not a valid tensor name");
    Tensor h = t.detach().cpu().contiguous();
    header[name] = {{"dtype", detail::safetensors_dtype_name(h.dtype())},
                    {"shape", h.shape().vec()},
                    {"data_offsets", {offset, offset + h.nbytes()}}};
    offset += h.nbytes();
    host.push_back(h);
  }
  std::string hs = header.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw IOError(wanwu::detail::str(path, ": cannot write (", std::strerror(errno), ")"));
  auto fail = [&](const char* what) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw IOError(wanwu::detail::str(path, ": ", what, " failed (", std::strerror(errno), ")"));
  };
  unsigned char len[8];
  uint64_t n = hs.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  if (std::fwrite(len, 1, 8, f) != 8 || std::fwrite(hs.data(), 1, hs.size(), f) != hs.size()) fail("write");
  for (const auto& h : host)
    if (h.nbytes() && std::fwrite(h.data_ptr(), 1, h.nbytes(), f) != h.nbytes()) fail("write");
  if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) fail("flush");
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw IOError(wanwu::detail::str(path, ": close failed (", std::strerror(errno), ")"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw IOError(wanwu::detail::str(path, ": cannot rename the temporary file into place (", std::strerror(errno), ")"));
  }
}

}  // namespace wanwu::io
