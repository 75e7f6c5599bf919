// Command-line parsing for the `wanwu` subcommands. Each subcommand declares its flags (name,
// whether it takes a value, help text) in one table; the same table drives parsing, --help and the
// "unknown flag" message, so they cannot disagree. Bad usage is a UsageError (exit code 2) whose
// message names the flag, the expected form and the value given; everything else that goes wrong
// at run time is a wanwu::Error or a RunError (exit code 1). main() turns both into one line on
// stderr.
#pragma once

#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace wanwu::cli {

enum class ExitCode : int { ok = 0, failure = 1, usage = 2 };

// Bad usage: an unknown flag, a missing or malformed value. Exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A run-time failure the program detected itself (not a library exception). Exit code 1.
class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Training produced a non-finite loss: a property of the recipe (too high a learning rate), which
// `wanwu sweep` records as a diverged trial rather than as a failure of the program. Exit code 1.
class DivergedError : public RunError {
 public:
  using RunError::RunError;
};

enum class Takes : uint8_t { value, nothing };

struct FlagSpec {
  std::string name;  // without the leading "--"
  Takes takes = Takes::value;
  std::string help;
  std::string metavar = "V";
};

class Args {
 public:
  // Parses argv[first..argc). "--flag value", "--flag=value", "--switch"; anything not starting
  // with "--" is positional (when allowed); "--" ends the flags.
  Args(const std::string& command, const std::vector<FlagSpec>& specs, int argc, char** argv, int first,
       bool positional_allowed)
      : command_(command) {
    for (const auto& s : specs) specs_[s.name] = s;
    bool flags_done = false;
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (!flags_done && a == "--") {
        flags_done = true;
        continue;
      }
      if (flags_done || a.rfind("--", 0) != 0 || a.size() == 2) {
        if (!positional_allowed)
          throw UsageError(command_ + ": unexpected argument '" + a + "' (see wanwu " + command_ + " --help)");
        positional_.push_back(a);
        continue;
      }
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (const auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (name == "help") {
        help_ = true;
        continue;
      }
      const auto it = specs_.find(name);
      if (it == specs_.end())
        throw UsageError(command_ + ": unknown flag --" + name + " (see wanwu " + command_ + " --help)");
      if (it->second.takes == Takes::nothing) {
        if (has_value) throw UsageError(command_ + ": --" + name + " takes no value, got '" + value + "'");
        values_[name] = "1";
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) throw UsageError(command_ + ": --" + name + " needs a value (" + it->second.metavar + ")");
        value = argv[++i];
      }
      values_[name] = value;
    }
  }

  bool help() const { return help_; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }

  std::string str(const std::string& name, const std::string& def = "") const {
    const auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
  }
  std::string required(const std::string& name) const {
    if (!has(name)) throw UsageError(command_ + ": --" + name + " is required (see wanwu " + command_ + " --help)");
    return str(name);
  }
  int64_t integer(const std::string& name, int64_t def, int64_t min_value) const {
    if (!has(name)) return def;
    const std::string s = str(name);
    int64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size())
      throw UsageError(command_ + ": --" + name + " expects an integer, got '" + s + "'");
    if (v < min_value)
      throw UsageError(command_ + ": --" + name + " must be >= " + std::to_string(min_value) + ", got " + s);
    return v;
  }
  double number(const std::string& name, double def, double min_value, double max_value = 1e300) const {
    if (!has(name)) return def;
    const std::string s = str(name);
    double v = 0;
    size_t used = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty() || !(v == v))
      throw UsageError(command_ + ": --" + name + " expects a number, got '" + s + "'");
    if (v < min_value || v > max_value)
      throw UsageError(command_ + ": --" + name + " must be in [" + fmt(min_value) + ", " + fmt(max_value) + "], got " +
                       s);
    return v;
  }
  std::string choice(const std::string& name, const std::vector<std::string>& allowed, const std::string& def) const {
    if (!has(name)) return def;
    const std::string v = str(name);
    for (const auto& a : allowed)
      if (a == v) return v;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
    throw UsageError(command_ + ": --" + name + " expects " + list + ", got '" + v + "'");
  }
  // Flags the user gave, as given (for config.json and messages).
  const std::map<std::string, std::string>& given() const { return values_; }

 private:
  static std::string fmt(double v) {
    if (v >= 1e299) return "inf";
    std::string s = std::to_string(v);
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  std::string command_;
  std::map<std::string, FlagSpec> specs_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

// "usage" line, then one line per flag.
inline std::string help_text(const std::string& usage, const std::string& about, const std::vector<FlagSpec>& specs) {
  std::string out = "usage: " + usage + "\n\n" + about + "\n\nflags:\n";
  for (const auto& s : specs) {
    std::string left = "  --" + s.name + (s.takes == Takes::value ? " " + s.metavar : "");
    if (left.size() < 30) left.resize(30, ' ');
    else left += "\n" + std::string(30, ' ');
    out += left + s.help + "\n";
  }
  out += "  --help                      this text\n";
  return out;
}

}  // namespace wanwu::cli
