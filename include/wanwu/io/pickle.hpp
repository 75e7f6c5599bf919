// The subset of Python's pickle that torch.save writes (protocols 2 to 4): containers, numbers,
// strings, globals, REDUCE/BUILD, and persistent ids (torch's storages). No code is executed: a
// GLOBAL is only a name; REDUCE of a known name (OrderedDict, torch's tensor rebuild functions)
// builds the value, and any other call is kept as an opaque object, an error only if something
// needs its value. Every read is bounds-checked; a malformed stream is an IOError naming the file
// and the byte offset. The object graph is kept a tree of bounded depth: the memo would let a
// corrupt stream put a container inside itself (a cycle that recursive readers would follow
// forever and reference counting would never free) or nest containers deeply enough to overflow
// the stack, so both are refused as they are built.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "../core/error.hpp"

namespace wanwu::io::pickle {

struct Object;
using Ref = std::shared_ptr<Object>;

struct Object {
  enum class Kind : uint8_t { none, boolean, integer, floating, string, bytes, list, tuple, dict, global, reduce, persistent };
  Kind kind = Kind::none;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                            // string, bytes, global ("module.name")
  std::vector<Ref> items;                   // list, tuple; reduce: {callable, args}; persistent: {pid}
  std::vector<std::pair<Ref, Ref>> pairs;   // dict (insertion order)
  std::vector<Ref> build_states;            // BUILD states applied to a reduce result
  uint32_t depth = 1;                       // 1 + the deepest child's (a lower bound once shared)

  static Ref make(Kind k) {
    auto r = std::make_shared<Object>();
    r->kind = k;
    return r;
  }
  bool is(Kind k) const { return kind == k; }
  const Ref* get(const std::string& key) const {
    for (const auto& [k, v] : pairs)
      if (k->kind == Kind::string && k->s == key) return &v;
    return nullptr;
  }
};

class Unpickler {
 public:
  Unpickler(const unsigned char* data, uint64_t size, std::string where) : p_(data), n_(size), where_(std::move(where)) {}

  // Parses one pickle; the stream position afterwards is pos().
  Ref load() {
    stack_.clear();
    marks_.clear();
    while (true) {
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                       // PROTO
        case 0x95: u64(); break;                      // FRAME
        case '.': return pop();                       // STOP
        case '(': marks_.push_back(stack_.size()); break;
        case '0': pop(); break;
        case '1': stack_.resize(pop_mark()); break;
        case '2': push(top()); break;
        case 'N': push(Object::make(Object::Kind::none)); break;
        case 0x88: push(boolean(true)); break;
        case 0x89: push(boolean(false)); break;
        case 'J': push(integer(static_cast<int32_t>(u32()))); break;
        case 'K': push(integer(u8())); break;
        case 'M': push(integer(u16())); break;
        case 0x8a: push(integer(long_n(u8()))); break;
        case 0x8b: push(integer(long_n(u32()))); break;
        case 'I': {
          const std::string line = readline();
          if (line == "00" || line == "01") push(boolean(line == "01"));
          else push(integer(int_line(line)));
          break;
        }
        case 'L': push(integer(int_line(readline()))); break;
        case 'G': {
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | u8();
          double d;
          std::memcpy(&d, &bits, 8);
          auto o = Object::make(Object::Kind::floating);
          o->f = d;
          push(o);
          break;
        }
        case 'F': {
          auto o = Object::make(Object::Kind::floating);
          o->f = float_line(readline());
          push(o);
          break;
        }
        case 'X': push(str(Object::Kind::string, u32())); break;
        case 0x8c: push(str(Object::Kind::string, u8())); break;
        case 0x8d: push(str(Object::Kind::string, u64())); break;
        case 'T': push(str(Object::Kind::string, u32())); break;
        case 'U': push(str(Object::Kind::string, u8())); break;
        case 'B': push(str(Object::Kind::bytes, u32())); break;
        case 'C': push(str(Object::Kind::bytes, u8())); break;
        case 0x8e: push(str(Object::Kind::bytes, u64())); break;
        case 'V': {
          auto o = Object::make(Object::Kind::string);
          o->s = readline();
          push(o);
          break;
        }
        case ')': push(Object::make(Object::Kind::tuple)); break;
        case ']': push(Object::make(Object::Kind::list)); break;
        case '}': push(Object::make(Object::Kind::dict)); break;
        case 0x85: case 0x86: case 0x87: {
          const size_t k = op - 0x84;
          auto t = Object::make(Object::Kind::tuple);
          if (stack_.size() < k) bad("tuple of more items than the stack holds");
          t->items.assign(stack_.end() - static_cast<long>(k), stack_.end());
          stack_.resize(stack_.size() - k);
          push(built(t));
          break;
        }
        case 't': case 'l': {
          const size_t m = pop_mark();
          auto t = Object::make(op == 't' ? Object::Kind::tuple : Object::Kind::list);
          t->items.assign(stack_.begin() + static_cast<long>(m), stack_.end());
          stack_.resize(m);
          push(built(t));
          break;
        }
        case 'd': {
          const size_t m = pop_mark();
          auto d = Object::make(Object::Kind::dict);
          if ((stack_.size() - m) % 2) bad("dict with an odd number of items");
          for (size_t k = m; k < stack_.size(); k += 2) d->pairs.emplace_back(stack_[k], stack_[k + 1]);
          stack_.resize(m);
          push(built(d));
          break;
        }
        case 'a': {
          Ref v = pop();
          Ref l = list_of(top());
          adopt(l, v);
          l->items.push_back(v);
          break;
        }
        case 'e': {
          const size_t m = pop_mark();
          Ref l = list_of(below_mark(m));
          for (size_t k = m; k < stack_.size(); ++k) adopt(l, stack_[k]);
          l->items.insert(l->items.end(), stack_.begin() + static_cast<long>(m), stack_.end());
          stack_.resize(m);
          break;
        }
        case 's': {
          Ref v = pop(), k = pop();
          Ref d = dict_of(top());
          adopt(d, k);
          adopt(d, v);
          d->pairs.emplace_back(k, v);
          break;
        }
        case 'u': {
          const size_t m = pop_mark();
          if ((stack_.size() - m) % 2) bad("SETITEMS with an odd number of items");
          Ref d = dict_of(below_mark(m));
          for (size_t k = m; k < stack_.size(); ++k) adopt(d, stack_[k]);
          for (size_t k = m; k < stack_.size(); k += 2) d->pairs.emplace_back(stack_[k], stack_[k + 1]);
          stack_.resize(m);
          break;
        }
        case 0x8f: push(Object::make(Object::Kind::list)); break;  // EMPTY_SET: kept as a list
        case 0x90: {                                               // ADDITEMS
          const size_t m = pop_mark();
          Ref l = list_of(below_mark(m));
          for (size_t k = m; k < stack_.size(); ++k) adopt(l, stack_[k]);
          l->items.insert(l->items.end(), stack_.begin() + static_cast<long>(m), stack_.end());
          stack_.resize(m);
          break;
        }
        case 'c': {
          auto g = Object::make(Object::Kind::global);
          const std::string module = readline();
          g->s = module + "." + readline();
          push(g);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Ref name = pop(), module = pop();
          auto g = Object::make(Object::Kind::global);
          g->s = module->s + "." + name->s;
          push(g);
          break;
        }
        case 'R': case 0x81: {  // REDUCE, NEWOBJ: call(callable, args)
          Ref args = pop(), callable = pop();
          push(built(reduce(callable, args)));
          break;
        }
        case 'b': {  // BUILD
          Ref state = pop();
          Ref o = top();
          adopt(o, state);
          o->build_states.push_back(state);
          break;
        }
        case 'Q': {
          auto o = Object::make(Object::Kind::persistent);
          o->items.push_back(pop());
          push(built(o));
          break;
        }
        case 'q': memo_[u8()] = top(); break;
        case 'r': memo_[u32()] = top(); break;
        case 0x94: memo_[memo_.size()] = top(); break;
        case 'p': memo_[static_cast<uint64_t>(int_line(readline()))] = top(); break;
        case 'h': push(memo(u8())); break;
        case 'j': push(memo(u32())); break;
        case 'g': push(memo(static_cast<uint64_t>(int_line(readline())))); break;
        default: bad(wanwu::detail::str("unsupported pickle opcode 0x", std::hex, int(op)));
      }
    }
  }
  uint64_t pos() const { return pos_; }

 private:
  [[noreturn]] void bad(const std::string& why) const {
    throw IOError(wanwu::detail::str(where_, ": malformed pickle at byte ", pos_, ": ", why));
  }
  uint8_t u8() {
    if (pos_ >= n_) bad("unexpected end of data (truncated?)");
    return p_[pos_++];
  }
  uint64_t le(int k) {
    uint64_t v = 0;
    for (int i = 0; i < k; ++i) v |= static_cast<uint64_t>(u8()) << (8 * i);
    return v;
  }
  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  int64_t long_n(uint64_t k) {  // little-endian two's complement
    if (k > 8) bad("integer wider than 64 bits");
    uint64_t v = 0;
    for (uint64_t i = 0; i < k; ++i) v |= static_cast<uint64_t>(u8()) << (8 * i);
    if (k > 0 && k < 8 && (v >> (8 * k - 1)) & 1) v |= ~uint64_t(0) << (8 * k);
    return static_cast<int64_t>(v);
  }
  // Protocol-0 text numbers ("123\n", "123L\n"); anything else is a corrupt file, not a
  // std::invalid_argument escaping to the caller.
  int64_t int_line(std::string line) {
    if (!line.empty() && line.back() == 'L') line.pop_back();
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
    if (ec != std::errc() || end != line.data() + line.size() || line.empty()) bad("bad integer '" + line + "'");
    return v;
  }
  double float_line(const std::string& line) {
    char* end = nullptr;
    const double v = std::strtod(line.c_str(), &end);
    if (line.empty() || end != line.c_str() + line.size()) bad("bad float '" + line + "'");
    return v;
  }
  std::string readline() {
    std::string s;
    for (uint8_t c; (c = u8()) != '\n';) s.push_back(static_cast<char>(c));
    return s;
  }
  Ref str(Object::Kind k, uint64_t len) {
    if (len > n_ - pos_) bad("string longer than the data");
    auto o = Object::make(k);
    o->s.assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return o;
  }
  static Ref integer(int64_t v) {
    auto o = Object::make(Object::Kind::integer);
    o->i = v;
    return o;
  }
  static Ref boolean(bool v) {
    auto o = Object::make(Object::Kind::boolean);
    o->b = v;
    return o;
  }
  void push(Ref r) { stack_.push_back(std::move(r)); }
  Ref pop() {
    if (stack_.empty()) bad("stack underflow");
    Ref r = stack_.back();
    stack_.pop_back();
    return r;
  }
  Ref top() {
    if (stack_.empty()) bad("stack underflow");
    return stack_.back();
  }
  // The container a MARK-terminated APPENDS/SETITEMS adds to: just below the mark.
  Ref below_mark(size_t m) {
    if (m == 0) bad("no container below the MARK");
    return stack_[m - 1];
  }
  size_t pop_mark() {
    if (marks_.empty()) bad("no MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) bad("MARK above the stack");
    return m;
  }
  Ref memo(uint64_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) bad(wanwu::detail::str("memo key ", k, " not defined"));
    return it->second;
  }
  static constexpr uint32_t kMaxDepth = 256;  // torch's state dicts nest a handful of levels
  // A new container: its depth from its children's.
  Ref built(Ref o) {
    for (const auto* v : {&o->items, &o->build_states})
      for (const Ref& c : *v) o->depth = std::max(o->depth, c->depth + 1);
    for (const auto& [k, v] : o->pairs) o->depth = std::max({o->depth, k->depth + 1, v->depth + 1});
    if (o->depth > kMaxDepth) bad(wanwu::detail::str("objects nested deeper than ", kMaxDepth, " levels"));
    return o;
  }
  // `child` is about to go into the existing `container`: refuse it if the container is reachable
  // from it (the memo can hand back any earlier object, the container included).
  void adopt(const Ref& container, const Ref& child) {
    std::vector<const Object*> todo{child.get()};
    std::unordered_set<const Object*> seen;
    while (!todo.empty()) {
      const Object* o = todo.back();
      todo.pop_back();
      if (o == container.get()) bad("a container that would hold itself");
      if (!seen.insert(o).second) continue;
      for (const auto* v : {&o->items, &o->build_states})
        for (const Ref& c : *v) todo.push_back(c.get());
      for (const auto& [k, v] : o->pairs) todo.push_back(k.get()), todo.push_back(v.get());
    }
    container->depth = std::max(container->depth, child->depth + 1);
    if (container->depth > kMaxDepth) bad(wanwu::detail::str("objects nested deeper than ", kMaxDepth, " levels"));
  }
  Ref list_of(const Ref& r) {
    if (!r->is(Object::Kind::list)) bad("APPEND to something that is not a list");
    return r;
  }
  Ref dict_of(const Ref& r) {
    // OrderedDict() is a reduce result; it collects items like a dict
    if (r->is(Object::Kind::reduce) && r->items[0]->s == "collections.OrderedDict") r->kind = Object::Kind::dict;
    if (!r->is(Object::Kind::dict)) bad("SETITEM on something that is not a dict");
    return r;
  }
  static Ref reduce(const Ref& callable, const Ref& args) {
    if (callable->is(Object::Kind::global) && callable->s == "collections.OrderedDict") return Object::make(Object::Kind::dict);
    auto o = Object::make(Object::Kind::reduce);
    o->items = {callable, args};
    return o;
  }

  const unsigned char* p_;
  uint64_t n_;
  uint64_t pos_ = 0;
  std::string where_;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Ref> memo_;
};

}  // namespace wanwu::io::pickle
