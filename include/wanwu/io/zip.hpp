// A minimal reader for the zip archives torch.save writes (its default since PyTorch 1.6): the
// central directory (zip64 included) and stored, uncompressed entries, read in place from a
// memory-mapped file. Every offset and size is checked against the file before use; a corrupt or
// truncated archive is an IOError naming the file.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "safetensors.hpp"

namespace wanwu::io {

class ZipReader {
 public:
  struct Entry {
    uint64_t offset = 0;  // of the entry's data in the file
    uint64_t size = 0;
  };

  explicit ZipReader(std::string path) : path_(std::move(path)), file_(detail::map_file(path_)) { parse(); }

  const std::map<std::string, Entry>& entries() const { return entries_; }
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  // Pointer to an entry's bytes (valid while this reader, or a copy of file(), lives).
  const unsigned char* data(const std::string& name, uint64_t* size) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) throw IOError(path_ + ": the archive has no entry '" + name + "'");
    *size = it->second.size;
    return bytes() + it->second.offset;
  }
  const std::shared_ptr<detail::MappedFile>& file() const { return file_; }
  const std::string& path() const { return path_; }

 private:
  const unsigned char* bytes() const { return static_cast<const unsigned char*>(file_->base); }
  uint64_t rd(uint64_t pos, int n) const {
    if (pos > file_->size || static_cast<uint64_t>(n) > file_->size - pos) bad("a record extends past the end of the file (truncated?)");
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | bytes()[pos + i];
    return v;
  }
  [[noreturn]] void bad(const std::string& why) const { throw IOError(path_ + ": not a valid zip archive: " + why); }

  void parse() {
    const uint64_t size = file_->size;
    if (size < 22) bad("the file is too small");
    // end of central directory: the last occurrence of its signature
    uint64_t eocd = UINT64_MAX;
    const uint64_t lo = size > 65557 ? size - 65557 : 0;
    for (uint64_t p = size - 22 + 1; p-- > lo;)
      if (rd(p, 4) == 0x06054b50) {
        eocd = p;
        break;
      }
    if (eocd == UINT64_MAX) bad("no end-of-central-directory record");
    uint64_t count = rd(eocd + 10, 2), cd_size = rd(eocd + 12, 4), cd_offset = rd(eocd + 16, 4);
    if (count == 0xFFFF || cd_offset == 0xFFFFFFFF || cd_size == 0xFFFFFFFF) {  // zip64
      if (eocd < 20 || rd(eocd - 20, 4) != 0x07064b50) bad("missing zip64 locator");
      const uint64_t z = rd(eocd - 20 + 8, 8);
      if (rd(z, 4) != 0x06064b50) bad("missing zip64 end-of-central-directory record");
      count = rd(z + 32, 8);
      cd_size = rd(z + 40, 8);
      cd_offset = rd(z + 48, 8);
    }
    if (cd_offset > size || cd_size > size - cd_offset) bad("the central directory lies outside the file");
    uint64_t p = cd_offset;
    for (uint64_t i = 0; i < count; ++i) {
      if (rd(p, 4) != 0x02014b50) bad("bad central directory entry");
      const uint64_t method = rd(p + 10, 2);
      uint64_t csize = rd(p + 20, 4), usize = rd(p + 24, 4);
      const uint64_t nlen = rd(p + 28, 2), xlen = rd(p + 30, 2), clen = rd(p + 32, 2);
      uint64_t local = rd(p + 42, 4);
      if (nlen > size - p - 46) bad("a file name extends past the end of the file");  // p + 46 <= size: rd above
      std::string name(reinterpret_cast<const char*>(bytes() + p + 46), nlen);
      // zip64 extra field: the 0xFFFFFFFF fields, in order
      for (uint64_t x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {
        const uint64_t id = rd(x, 2), len = rd(x + 2, 2);
        if (id == 1) {
          uint64_t q = x + 4;
          if (usize == 0xFFFFFFFF) usize = rd(q, 8), q += 8;
          if (csize == 0xFFFFFFFF) csize = rd(q, 8), q += 8;
          if (local == 0xFFFFFFFF) local = rd(q, 8);
        }
        x += 4 + len;
      }
      if (method != 0) bad("entry '" + name + "' is compressed (only stored entries are supported)");
      if (csize != usize) bad("entry '" + name + "' has different stored and original sizes");
      if (rd(local, 4) != 0x04034b50) bad("bad local header for '" + name + "'");
      const uint64_t data = local + 30 + rd(local + 26, 2) + rd(local + 28, 2);  // local + 30 <= size: rd above
      if (data > size || usize > size - data) bad("entry '" + name + "' extends past the end of the file (truncated?)");
      entries_[name] = {data, usize};
      p += 46 + nlen + xlen + clen;
    }
  }

  std::string path_;
  std::shared_ptr<detail::MappedFile> file_;
  std::map<std::string, Entry> entries_;
};

}  // namespace wanwu::io
