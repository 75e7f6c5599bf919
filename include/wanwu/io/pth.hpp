// PyTorch .pth / .pt state dicts, read directly in C++ — so a torchvision or timm checkpoint loads
// with no Python step. Both of torch.save's formats: the zip archive (PyTorch >= 1.6: data.pkl plus
// one entry per storage) and the legacy stream (magic number, protocol, system info, the pickle,
// then the storages). Tensors are rebuilt from torch._utils._rebuild_tensor(_v2) /
// _rebuild_parameter (storage, offset, size, stride) for f32, f64, f16, bf16, i64, i32, u8 and bool
// storages. The result is a flat StateDict: a checkpoint that wraps the weights in a dict
// ("state_dict", "model", ...) is unwrapped, and a "module." prefix (DataParallel) is removed.
#pragma once

#include <cstring>
#include <set>
#include <string>

#include "pickle.hpp"
#include "zip.hpp"

namespace wanwu::io {

namespace detail {

inline std::optional<DType> storage_dtype(const std::string& global) {
  static const std::map<std::string, DType> types = {
      {"torch.FloatStorage", DType::f32}, {"torch.DoubleStorage", DType::f64}, {"torch.HalfStorage", DType::f16},
      {"torch.BFloat16Storage", DType::bf16}, {"torch.LongStorage", DType::i64}, {"torch.IntStorage", DType::i32},
      {"torch.ByteStorage", DType::u8}, {"torch.BoolStorage", DType::boolean}};
  auto it = types.find(global);
  if (it == types.end()) return std::nullopt;
  return it->second;
}

// The ('storage', type, key, location, numel[, view]) tuple a persistent id holds, or nullptr.
inline const pickle::Object* storage_tuple(const pickle::Object& pid) {
  const pickle::Ref& t = pid.items.at(0);  // a persistent object always holds its id
  return t->is(pickle::Object::Kind::tuple) && t->items.size() >= 5 && t->items[0]->s == "storage" ? t.get() : nullptr;
}

struct StorageBytes {
  const unsigned char* data = nullptr;
  uint64_t size = 0;  // bytes
};

// Turns the unpickled object tree into tensors; `storage(key, dtype)` gives a storage's bytes.
class TensorBuilder {
 public:
  using StorageFn = std::function<StorageBytes(const std::string& key, DType dtype, int64_t numel)>;
  TensorBuilder(std::string path, StorageFn fn) : path_(std::move(path)), storage_(std::move(fn)) {}

  // The storage a persistent id names: ('storage', type, key, location, numel[, view]).
  struct StorageRef {
    std::string key;
    DType dtype;
    int64_t offset = 0;  // elements (legacy storage views)
    int64_t numel = 0;
  };
  StorageRef storage_ref(const pickle::Ref& pid) const {
    const pickle::Object* t = storage_tuple(*pid);
    if (!t) bad("an unexpected persistent id (not a torch storage)");
    const auto dt = storage_dtype(t->items[1]->s);
    if (!dt) bad("unsupported storage type " + t->items[1]->s);
    StorageRef r{t->items[2]->s, *dt, 0, t->items[4]->i};
    if (t->items.size() > 5 && t->items[5]->is(pickle::Object::Kind::tuple)) {  // legacy view of a storage
      const auto& view = t->items[5]->items;
      if (view.size() < 3) bad("a storage view that is not (key, offset, size)");
      r.offset = view[1]->i;
      r.numel = view[2]->i;
    }
    return r;
  }

  bool is_tensor(const pickle::Ref& o) const {
    if (!o->is(pickle::Object::Kind::reduce) || o->items.size() != 2) return false;
    const std::string& f = o->items[0]->s;
    return f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor" ||
           f == "torch._utils._rebuild_parameter";
  }

  // `o` must satisfy is_tensor().
  Tensor tensor(const pickle::Ref& o) const {
    const std::string& f = o->items[0]->s;
    const auto& args = o->items[1]->items;
    if (f == "torch._utils._rebuild_parameter") {
      if (args.empty() || !is_tensor(args[0]) || args[0]->items[0]->s == f)
        bad("_rebuild_parameter without a tensor");
      return tensor(args[0]);
    }
    if (args.size() < 4 || !args[0]->is(pickle::Object::Kind::persistent)) bad("a tensor without a storage");
    const StorageRef s = storage_ref(args[0]);
    Shape shape;
    Strides strides;
    for (const auto& d : args[2]->items) shape.push_back(d->i);
    for (const auto& d : args[3]->items) strides.push_back(d->i);
    if (shape.size() != strides.size()) bad("a tensor whose size and stride differ in length");
    const StorageBytes b = storage_(s.key, s.dtype, s.numel);
    const int64_t avail = static_cast<int64_t>(b.size / itemsize(s.dtype));
    // the highest element the view touches, and the element count; any overflow is a corrupt file
    int64_t offset = 0, last = 0, numel = 1;
    bool overflow = __builtin_add_overflow(args[1]->i, s.offset, &offset);
    last = offset;
    for (int i = 0; i < shape.size(); ++i) {
      if (shape[i] < 0 || strides[i] < 0) bad("a tensor with a negative size or stride");
      if (shape[i] == 0) last = -1;
      int64_t reach = 0;
      overflow = overflow || __builtin_mul_overflow(shape[i], numel, &numel);
      if (last >= 0)
        overflow = overflow || __builtin_mul_overflow(shape[i] - 1, strides[i], &reach) ||
                   __builtin_add_overflow(last, reach, &last);
    }
    // more elements than the storage holds (zero strides) is legitimate but rare: bounded, so a
    // corrupt size cannot ask for terabytes
    if (overflow || offset < 0 || (last >= 0 && last >= avail) || (numel > avail && numel > (int64_t{1} << 26)))
      bad(wanwu::detail::str("a tensor of shape ", shape, " with strides ", strides, " at offset ", offset,
                             " does not fit its storage of ", avail, " elements"));
    Tensor out;
    try {
      out = empty_tensor(shape, s.dtype, Device::cpu());
    } catch (const std::bad_alloc&) {
      bad(wanwu::detail::str("no memory for a tensor of shape ", shape));
    }
    if (out.numel() == 0) return out;
    // the storage bytes may be unaligned: copy them into an owned, aligned block first
    Tensor raw = empty_tensor(Shape{avail}, s.dtype, Device::cpu());
    std::memcpy(raw.data_ptr(), b.data, static_cast<size_t>(avail) * itemsize(s.dtype));
    cpu_backend().copy(out, Tensor(std::make_shared<TensorImpl>(raw.storage(), offset, shape, strides, s.dtype)));
    return out;
  }

  // The flat name -> tensor dict a checkpoint holds.
  nn::StateDict state_dict(const pickle::Ref& root) const {
    pickle::Ref dict = root;
    if (!dict->is(pickle::Object::Kind::dict)) {
      if (is_tensor(dict)) bad("the file holds a single tensor, not a state dict");
      if (dict->is(pickle::Object::Kind::reduce))
        bad("the file holds a pickled " + dict->items[0]->s + " object; save its state_dict() instead");
      bad("the file does not hold a dict");
    }
    auto all_tensors = [&](const pickle::Ref& d) {
      for (const auto& [k, v] : d->pairs)
        if (!is_tensor(v)) return false;
      return !d->pairs.empty();
    };
    if (!all_tensors(dict)) {
      pickle::Ref found;
      for (const char* key : {"state_dict", "model_state_dict", "model", "net", "module", "weights"})
        if (const pickle::Ref* v = dict->get(key); v && (*v)->is(pickle::Object::Kind::dict) && all_tensors(*v)) {
          found = *v;
          break;
        }
      if (!found) {
        std::string keys;
        for (const auto& [k, v] : dict->pairs)
          if (k->is(pickle::Object::Kind::string)) keys += (keys.empty() ? "" : ", ") + k->s;
        bad("no state dict found: the top-level dict has keys {" + keys + "} and none holds only tensors");
      }
      dict = found;
    }
    nn::StateDict sd;
    bool all_module = true;
    for (const auto& [k, v] : dict->pairs) all_module = all_module && k->s.rfind("module.", 0) == 0;
    for (const auto& [k, v] : dict->pairs) {
      if (!k->is(pickle::Object::Kind::string)) bad("a state dict key that is not a string");
      sd.set(all_module ? k->s.substr(7) : k->s, tensor(v));
    }
    return sd;
  }

 private:
  [[noreturn]] void bad(const std::string& why) const { throw IOError(path_ + ": cannot read the checkpoint: " + why); }
  std::string path_;
  StorageFn storage_;
};

inline nn::StateDict load_pth_zip(const std::string& path) {
  ZipReader zip(path);
  std::string prefix;
  for (const auto& [name, e] : zip.entries())
    if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) {
      prefix = name.substr(0, name.size() - 8);
      break;
    }
  if (!zip.has(prefix + "data.pkl")) throw IOError(path + ": a zip archive without data.pkl (not a torch.save file)");
  uint64_t size = 0;
  const unsigned char* pkl = zip.data(prefix + "data.pkl", &size);
  pickle::Unpickler up(pkl, size, path);
  const pickle::Ref root = up.load();
  TensorBuilder tb(path, [&](const std::string& key, DType, int64_t) {
    StorageBytes b;
    b.data = zip.data(prefix + "data/" + key, &b.size);
    return b;
  });
  return tb.state_dict(root);
}

// The legacy stream: magic number, protocol version, system info, the state pickle, the storage
// keys, then the storages. The magic number is a 10-byte integer (wider than the unpickler
// reads); load_pth has matched its bytes, so parsing starts after it.
inline constexpr unsigned char kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                                 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};

inline nn::StateDict load_pth_legacy(const std::string& path, const std::shared_ptr<MappedFile>& m) {
  const auto* bytes = static_cast<const unsigned char*>(m->base);
  const uint64_t start = sizeof kLegacyMagic;
  pickle::Unpickler up(bytes + start, m->size - start, path);
  const pickle::Ref version = up.load();
  if (!version->is(pickle::Object::Kind::integer) || version->i != 1001)
    throw IOError(path + ": unsupported legacy torch.save protocol version");
  up.load();  // system info
  const pickle::Ref root = up.load();
  const pickle::Ref keys = up.load();
  if (!keys->is(pickle::Object::Kind::list)) throw IOError(path + ": the storage key list is missing");
  uint64_t pos = start + up.pos();
  // after the key list, each storage: 8-byte element count, then the elements
  std::map<std::string, StorageBytes> storages;
  std::map<std::string, DType> dtypes;
  // collect dtypes of the storages referenced in the pickle
  // (iteratively, each object once: the memo lets objects be shared, so a tree walk could take
  // exponential time on a hostile file)
  std::vector<const pickle::Object*> todo{root.get()};
  std::set<const pickle::Object*> seen;
  while (!todo.empty()) {
    const pickle::Object* o = todo.back();
    todo.pop_back();
    if (!seen.insert(o).second) continue;
    if (o->is(pickle::Object::Kind::persistent))
      if (const pickle::Object* t = storage_tuple(*o))
        if (const auto dt = storage_dtype(t->items[1]->s)) dtypes[t->items[2]->s] = *dt;
    for (const auto& c : o->items) todo.push_back(c.get());
    for (const auto& [k, v] : o->pairs) todo.push_back(k.get()), todo.push_back(v.get());
  }
  for (const auto& k : keys->items) {
    if (!k->is(pickle::Object::Kind::string)) throw IOError(path + ": a storage key that is not a string");
    auto it = dtypes.find(k->s);
    if (it == dtypes.end()) throw IOError(path + ": storage '" + k->s + "' is listed but never used");
    if (pos + 8 > m->size) throw IOError(path + ": truncated storage section");
    uint64_t count = 0;
    for (int i = 7; i >= 0; --i) count = (count << 8) | bytes[pos + static_cast<uint64_t>(i)];
    pos += 8;
    const uint64_t nb = count * itemsize(it->second);
    if (count > m->size || nb > m->size - pos) throw IOError(path + ": storage '" + k->s + "' extends past the end (truncated?)");
    storages[k->s] = {bytes + pos, nb};
    pos += nb;
  }
  TensorBuilder tb(path, [&](const std::string& key, DType, int64_t) {
    auto it = storages.find(key);
    if (it == storages.end()) throw IOError(path + ": storage '" + key + "' is missing");
    return it->second;
  });
  return tb.state_dict(root);
}

}  // namespace detail

// Reads a torch.save'd state dict (zip or legacy format) into CPU tensors.
inline nn::StateDict load_pth(const std::string& path) {
  const auto m = detail::map_file(path);
  const auto* b = static_cast<const unsigned char*>(m->base);
  if (m->size >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) return detail::load_pth_zip(path);
  if (m->size >= sizeof detail::kLegacyMagic && std::memcmp(b, detail::kLegacyMagic, sizeof detail::kLegacyMagic) == 0)
    return detail::load_pth_legacy(path, m);
  throw IOError(path + ": not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save stream)");
}

}  // namespace wanwu::io
