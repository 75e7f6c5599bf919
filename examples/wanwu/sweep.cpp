// `wanwu sweep`: a grid or random search over any `wanwu train` flags, optionally with successive
// halving, whose trials are ordinary run folders trained in-process by the same code as `wanwu
// train` (run_train_args), so a trial is exactly the run its printed command reproduces.
//
// Restartability shapes this file. The plan (every trial's flags) is written once to sweep.json;
// everything else is derived from the trial folders themselves (metrics.jsonl says how many epochs
// a trial has, state.safetensors lets it resume) plus state.json, which only records trials that
// failed. So a sweep killed at any moment continues where it stopped: finished trials are not
// rerun, the interrupted trial resumes from its last epoch boundary, and successive halving's
// promotions are recomputed from the same metrics and come out the same.
//
// Successive halving (Jamieson & Talwalkar 2016; the rung schedule of Li et al., Hyperband, 2018):
// with n trials, E epochs and a reduction factor eta, K = the largest k with eta^k <= n and
// eta^k <= E; rung j (0..K) trains the surviving trials to floor(E / eta^(K-j)) epochs, then keeps
// the best max(1, floor(survivors / eta)) by their best val_acc so far. Every trial is configured
// for E epochs (its schedule is that of the full run) and paused at the rung's epoch boundary, so
// a promoted trial continues exactly as if it had never stopped.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

#include "commands.hpp"
#include "report.hpp"

namespace wanwu::cli {

namespace {

using report_detail::Scale;

const std::vector<FlagSpec> kSweepOnly = {
    {"grid", Takes::value,
     "dimensions, ';'-separated: \"lr=1e-3,1e-4;batch-size=32,64;optimizer=adamw,sgd\"; with --random also "
     "ranges lo:hi (log-uniform when lo > 0, lo:hi:lin for uniform)",
     "SPEC"},
    {"random", Takes::value, "sample N configurations from --grid's lists and ranges (seeded by --seed)", "N"},
    {"halving", Takes::nothing, "successive halving: train all trials briefly, continue the best 1/eta, repeat"},
    {"eta", Takes::value, "successive halving's reduction factor (default 3)", "ETA"},
    {"keep-effective-batch", Takes::nothing,
     "with a batch-size dimension: set accum-steps so batch-size x accum-steps stays --batch-size x --accum-steps"},
    {"lr-scaling", Takes::value,
     "none|linear: linear multiplies each trial's lr by its effective batch / the base effective batch (default none)",
     "S"},
    {"resume", Takes::value, "continue the sweep in SWEEPDIR with its saved plan", "SWEEPDIR"},
};
// Train flags that are not dimensions: they say where things are or how the program runs.
const std::set<std::string> kNotDimensions = {"data",   "out",         "resume", "max-steps",   "workers",
                                              "device", "conv-search", "tf32",   "cuda-graph"};
// Flags that may change between a sweep and its continuation: they do not change any trial's
// recipe, only where and how fast it runs (passed to every trial, and to a resumed one).
const std::set<std::string> kRuntimeFlags = {"workers", "device", "conv-search", "tf32", "cuda-graph"};
const std::set<std::string> kIntegerFlags = {"epochs", "batch-size", "accum-steps", "img-size", "seed"};

std::vector<FlagSpec> sweep_flags() {
  std::vector<FlagSpec> f;
  for (const auto& s : train_flags()) {
    if (s.name == "resume" || s.name == "max-steps") continue;
    if (s.name == "out") {
      f.push_back({"out", Takes::value, "sweep directory (one run folder per trial, results.csv, report.html)",
                   "SWEEPDIR"});
      continue;
    }
    f.push_back(s);
  }
  f.insert(f.end(), kSweepOnly.begin(), kSweepOnly.end());
  return f;
}

bool is_sweep_only(const std::string& name) {
  return std::any_of(kSweepOnly.begin(), kSweepOnly.end(), [&](const FlagSpec& s) { return s.name == name; });
}

const FlagSpec* train_flag(const std::string& name) {
  for (const auto& s : train_flags())
    if (s.name == name) return &s;
  return nullptr;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(trim(cur));
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

std::string fmt_number(double v, bool integer) {
  if (integer) return std::to_string(static_cast<long long>(std::llround(v)));
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

double parse_number(const std::string& s, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || !std::isfinite(v))
    throw UsageError("sweep: --grid " + what + ": expected a number, got '" + s + "'");
  return v;
}

struct Dim {
  std::string name;
  std::vector<std::string> values;  // a list
  bool is_range = false;            // lo:hi (random search only)
  double lo = 0, hi = 0;
  Scale scale = Scale::linear;
};

std::vector<Dim> parse_grid(const std::string& spec) {
  std::vector<Dim> dims;
  for (const std::string& part : split(spec, ';')) {
    if (part.empty()) continue;
    const auto eq = part.find('=');
    if (eq == std::string::npos)
      throw UsageError("sweep: --grid: '" + part + "' is not NAME=VALUES (e.g. lr=1e-3,1e-4)");
    Dim d;
    d.name = trim(part.substr(0, eq));
    if (d.name.rfind("--", 0) == 0) d.name = d.name.substr(2);
    const std::string vals = trim(part.substr(eq + 1));
    const FlagSpec* f = train_flag(d.name);
    if (!f || kNotDimensions.count(d.name))
      throw UsageError("sweep: --grid: '" + d.name + "' is not a train flag that can vary" +
                       (f ? " (it is set once for the whole sweep)" : " (see wanwu train --help)"));
    for (const auto& o : dims)
      if (o.name == d.name) throw UsageError("sweep: --grid: '" + d.name + "' appears twice");
    if (vals.find(':') != std::string::npos) {
      if (f->takes == Takes::nothing) throw UsageError("sweep: --grid " + d.name + ": a switch takes on/off, not a range");
      const auto r = split(vals, ':');
      if (r.size() < 2 || r.size() > 3) throw UsageError("sweep: --grid " + d.name + ": a range is lo:hi[:log|lin], got '" + vals + "'");
      d.is_range = true;
      d.lo = parse_number(r[0], d.name);
      d.hi = parse_number(r[1], d.name);
      if (!(d.lo < d.hi)) throw UsageError("sweep: --grid " + d.name + ": range " + vals + " needs lo < hi");
      d.scale = d.lo > 0 ? Scale::log : Scale::linear;
      if (r.size() == 3) {
        if (r[2] == "lin") d.scale = Scale::linear;
        else if (r[2] == "log") d.scale = Scale::log;
        else throw UsageError("sweep: --grid " + d.name + ": range scale must be log or lin, got '" + r[2] + "'");
        if (d.scale == Scale::log && d.lo <= 0)
          throw UsageError("sweep: --grid " + d.name + ": a log range needs lo > 0, got " + r[0]);
      }
    } else {
      d.values = split(vals, ',');
      for (const auto& v : d.values)
        if (v.empty()) throw UsageError("sweep: --grid " + d.name + ": empty value in '" + vals + "'");
      if (f->takes == Takes::nothing)
        for (auto& v : d.values) {
          if (v == "on" || v == "true" || v == "yes" || v == "1") v = "on";
          else if (v == "off" || v == "false" || v == "no" || v == "0") v = "off";
          else throw UsageError("sweep: --grid " + d.name + ": a switch takes on/off, got '" + v + "'");
        }
    }
    dims.push_back(d);
  }
  if (dims.empty()) throw UsageError("sweep: --grid has no dimensions (e.g. --grid \"lr=1e-3,1e-4\")");
  return dims;
}

// The varied values of every trial, in --grid's dimension order.
using Values = std::vector<std::pair<std::string, std::string>>;

std::vector<Values> expand(const std::vector<Dim>& dims, int64_t random_n, uint64_t seed) {
  std::vector<Values> out;
  if (random_n == 0) {
    for (const auto& d : dims)
      if (d.is_range) throw UsageError("sweep: --grid " + d.name + ": ranges need --random N (a grid needs lists)");
    out.push_back({});
    for (const auto& d : dims) {
      std::vector<Values> next;
      for (const auto& prefix : out)
        for (const auto& v : d.values) {
          Values x = prefix;
          x.emplace_back(d.name, v);
          next.push_back(std::move(x));
        }
      out = std::move(next);
    }
    return out;
  }
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 0x5157);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int64_t t = 0; t < random_n; ++t) {
    Values x;
    for (const auto& d : dims) {
      if (!d.is_range) {
        x.emplace_back(d.name, d.values[static_cast<size_t>(rng() % d.values.size())]);
        continue;
      }
      const double r = u01(rng);
      const double v = d.scale == Scale::log ? std::exp(std::log(d.lo) + r * (std::log(d.hi) - std::log(d.lo)))
                                             : d.lo + r * (d.hi - d.lo);
      x.emplace_back(d.name, fmt_number(v, kIntegerFlags.count(d.name) > 0));
    }
    out.push_back(std::move(x));
  }
  return out;
}

struct Trial {
  std::string id;
  Values values;
  json derived = json::object();  // accum-steps / lr the sweep computed for this trial
  std::vector<std::string> args;  // `wanwu train` flags, without --out and the runtime flags
  int64_t epochs = 10;
};

// Flags common to every trial (as given), then the trial's values, then what the batch options derive.
Trial make_trial(const Args& a, const std::vector<FlagSpec>& specs, const Values& values, bool keep_effective,
                 bool lr_linear) {
  std::map<std::string, std::string> flags;  // value flags
  std::set<std::string> switches;
  for (const auto& s : specs) {
    if (!a.has(s.name) || is_sweep_only(s.name) || s.name == "out" || kRuntimeFlags.count(s.name)) continue;
    if (s.takes == Takes::nothing) switches.insert(s.name);
    else flags[s.name] = a.str(s.name);
  }
  Trial t;
  t.values = values;
  for (const auto& [k, v] : values) {
    if (train_flag(k)->takes == Takes::nothing) {
      if (v == "on") switches.insert(k);
      else switches.erase(k);
    } else {
      flags[k] = v;
    }
  }
  const auto dim_has = [&](const std::string& k) {
    return std::any_of(values.begin(), values.end(), [&](const auto& p) { return p.first == k; });
  };
  auto int_of = [&](const std::string& k, int64_t def) {
    if (!flags.count(k)) return def;
    const double v = parse_number(flags[k], k);
    return static_cast<int64_t>(v);
  };
  const int64_t base_batch = a.has("batch-size") ? a.integer("batch-size", 64, 1) : 64;
  const int64_t base_accum = a.has("accum-steps") ? a.integer("accum-steps", 1, 1) : 1;
  const int64_t batch = int_of("batch-size", 64);
  int64_t accum = int_of("accum-steps", 1);
  if (keep_effective && dim_has("batch-size")) {
    const int64_t eff = base_batch * base_accum;
    if (batch <= 0 || eff % batch != 0)
      throw UsageError("sweep: --keep-effective-batch: batch-size " + std::to_string(batch) +
                       " does not divide the effective batch " + std::to_string(eff) + " (--batch-size " +
                       std::to_string(base_batch) + " x --accum-steps " + std::to_string(base_accum) + ")");
    accum = eff / batch;
    flags["accum-steps"] = std::to_string(accum);
    t.derived["accum-steps"] = accum;
  }
  if (lr_linear) {
    const double base_lr = flags.count("lr") ? parse_number(flags["lr"], "lr") : 1e-3;
    const double lr = base_lr * static_cast<double>(batch * accum) / static_cast<double>(base_batch * base_accum);
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", lr);
    flags["lr"] = b;
    t.derived["lr"] = b;
  }
  for (const auto& s : specs) {  // the table's order: stable, readable commands
    if (flags.count(s.name)) t.args.insert(t.args.end(), {"--" + s.name, flags[s.name]});
    if (switches.count(s.name)) t.args.push_back("--" + s.name);
  }
  t.epochs = int_of("epochs", 10);
  return t;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,/=:+@%") ==
                        std::string::npos)
    return s;
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

std::string values_text(const Values& v) {
  std::string s;
  for (const auto& [k, x] : v) s += (s.empty() ? "" : " ") + k + "=" + x;
  return s;
}

// The halving rungs' epoch budgets (ascending, the last is E); one rung without --halving.
std::vector<int64_t> rung_budgets(int64_t n, int64_t epochs, int64_t eta, bool halving) {
  if (!halving) return {epochs};
  int64_t k = 0;
  for (int64_t p = eta; p <= n && p <= epochs; p *= eta) ++k;
  std::vector<int64_t> b;
  for (int64_t j = 0; j <= k; ++j) {
    int64_t d = 1;
    for (int64_t i = 0; i < k - j; ++i) d *= eta;
    b.push_back(epochs / d);
  }
  return b;
}

struct TrialResult {
  std::vector<json> history;  // metrics.jsonl
  std::string status;         // done, pruned, running, pending, diverged, oom, failed
  std::string error;
  double best_acc = NAN;
  int64_t best_epoch = 0, steps = 0;
  double train_loss = NAN, seconds = 0;
  int64_t epochs_done() const { return static_cast<int64_t>(history.size()); }
  // The best epoch within the first `budget` epochs (a rung ranks trials on equal training), as
  // `wanwu train` picks best.safetensors: the first epoch with the highest val_acc. Compared by its
  // val_acc, then its val_loss (lower is better) to break the ties small validation sets make.
  std::pair<double, double> score(int64_t budget) const {
    std::pair<double, double> s{-1, -1e300};
    for (const auto& h : history) {
      if (h.value("epoch", int64_t{0}) > budget) continue;
      const double acc = h.value("val_acc", NAN), loss = h.value("val_loss", NAN);
      if (std::isfinite(acc) && acc > s.first) s = {acc, std::isfinite(loss) ? -loss : -1e300};
    }
    return s;
  }
};

class Sweep {
 public:
  Sweep(fs::path dir, std::vector<Trial> trials, std::vector<std::string> dims, std::vector<int64_t> budgets,
        int64_t eta, std::vector<std::string> runtime)
      : dir_(std::move(dir)), trials_(std::move(trials)), dims_(std::move(dims)), budgets_(std::move(budgets)),
        eta_(eta), runtime_(std::move(runtime)) {
    std::ifstream in(dir_ / "state.json");
    if (in) {
      try {
        failed_ = json::parse(in).value("failed", json::object());
      } catch (const json::exception&) {
        throw RunError((dir_ / "state.json").string() + ": unreadable sweep state");
      }
    }
  }

  // Runs every rung; false when interrupted (Ctrl-C), with everything saved for a rerun.
  bool run() {
    std::vector<size_t> alive(trials_.size());
    for (size_t i = 0; i < alive.size(); ++i) alive[i] = i;
    pruned_.clear();
    for (size_t r = 0; r < budgets_.size(); ++r) {
      if (budgets_.size() > 1)
        std::printf("== rung %zu/%zu: %zu trials to %lld epochs ==\n", r + 1, budgets_.size(), alive.size(),
                    static_cast<long long>(budgets_[r]));
      for (size_t i : alive)
        if (!run_trial(i, budgets_[r])) {
          write_results();
          return false;
        }
      if (r + 1 == budgets_.size()) break;
      std::stable_sort(alive.begin(), alive.end(), [&](size_t x, size_t y) {
        return rank_score(x, budgets_[r]) > rank_score(y, budgets_[r]);
      });
      const size_t keep = std::max<size_t>(1, alive.size() / static_cast<size_t>(eta_));
      for (size_t j = keep; j < alive.size(); ++j) pruned_.insert(alive[j]);
      alive.resize(keep);
      std::sort(alive.begin(), alive.end());
      write_results();
    }
    write_results();
    return true;
  }

  // results.csv, report.html and the ranked table; the best trial's command.
  void finish() const {
    const auto res = results();
    std::vector<size_t> order = ranked(res);
    std::printf("\n%-5s %-10s", "rank", "trial");
    for (const auto& d : dims_) std::printf(" %-12s", d.c_str());
    std::printf(" %-8s %-5s %-10s %-6s %-8s %s\n", "val_acc", "epoch", "train_loss", "epochs", "seconds", "status");
    for (size_t r = 0; r < order.size(); ++r) {
      const size_t i = order[r];
      const auto& x = res[i];
      std::printf("%-5zu %-10s", r + 1, trials_[i].id.c_str());
      for (const auto& [k, v] : trials_[i].values) std::printf(" %-12s", v.c_str());
      std::printf(" %-8s %-5s %-10s %-6lld %-8.1f %s\n", std::isnan(x.best_acc) ? "-" : fmt(x.best_acc, "%.4f").c_str(),
                  x.best_epoch ? std::to_string(x.best_epoch).c_str() : "-",
                  std::isnan(x.train_loss) ? "-" : fmt(x.train_loss, "%.4f").c_str(),
                  static_cast<long long>(x.epochs_done()), x.seconds, x.status.c_str());
    }
    if (!order.empty() && !std::isnan(res[order[0]].best_acc)) {
      const size_t b = order[0];
      std::printf("\nbest: %s (%s) val_acc %.4f at epoch %lld\n  %s\n", trials_[b].id.c_str(),
                  values_text(trials_[b].values).c_str(), res[b].best_acc, static_cast<long long>(res[b].best_epoch),
                  best_command(b).c_str());
    }
    std::printf("results: %s, report: %s\n", (dir_ / "results.csv").string().c_str(),
                (dir_ / "report.html").string().c_str());
    std::fflush(stdout);
  }

 private:
  std::pair<double, double> rank_score(size_t i, int64_t budget) const {
    if (failed_.contains(trials_[i].id)) return {-2, -1e300};
    return read_result(i).score(budget);
  }

  fs::path trial_dir(size_t i) const { return dir_ / trials_[i].id; }

  bool run_trial(size_t i, int64_t budget) {
    const Trial& t = trials_[i];
    if (failed_.contains(t.id)) return true;
    const fs::path d = trial_dir(i);
    const int64_t done = static_cast<int64_t>(read_metrics(d / "metrics.jsonl").size());
    if (done >= budget) return true;
    std::vector<std::string> args;
    std::error_code ec;
    if (fs::exists(d / "state.safetensors", ec) && fs::exists(d / "config.json", ec)) {
      args = {"--resume", d.string()};
    } else {
      fs::remove_all(d, ec);  // killed before its first epoch ended: nothing worth keeping
      args = t.args;
      args.insert(args.end(), {"--out", d.string()});
    }
    args.insert(args.end(), runtime_.begin(), runtime_.end());
    std::printf("== %s %s (%s) ==\n", done > 0 ? "continuing" : "trial", t.id.c_str(), values_text(t.values).c_str());
    std::fflush(stdout);
    TrainHooks hooks;
    hooks.pause_after_epoch = budget < t.epochs ? budget : 0;
    std::string status, error;
    try {
      const TrainOutcome o = run_train_args(args, hooks);
      if (o.end == TrainEnd::interrupted) {
        std::printf("sweep interrupted during %s; continue with: wanwu sweep --resume %s\n", t.id.c_str(),
                    dir_.string().c_str());
        return false;
      }
      return true;
    } catch (const DivergedError& e) {
      status = "diverged", error = e.what();
    } catch (const OutOfMemoryError& e) {
      status = "oom", error = e.what();
    } catch (const std::bad_alloc&) {
      status = "oom", error = "out of memory";
    } catch (const std::exception& e) {
      status = "failed", error = e.what();
    }
    // The failed trial's tensors went back to the allocator's cache. Give them to the system: after
    // an out-of-memory trial, that cache holds the address space the next trial needs, and OpenBLAS,
    // whose first GEMM may come only then, retries its buffer allocation forever instead of failing.
    cpu_allocator().empty_cache();
    for (char& c : error)
      if (c == '\n') c = ' ';
    std::printf("%s %s: %s\n", t.id.c_str(), status.c_str(), error.c_str());
    failed_[t.id] = {{"status", status}, {"error", error}};
    write_text_atomic(dir_ / "state.json", json{{"failed", failed_}}.dump(2) + "\n");
    return true;
  }

  TrialResult read_result(size_t i) const {
    TrialResult r;
    r.history = read_metrics(trial_dir(i) / "metrics.jsonl");
    for (const auto& h : r.history) {
      const double acc = h.value("val_acc", NAN);
      if (std::isnan(r.best_acc) || acc > r.best_acc)
        r.best_acc = acc, r.best_epoch = h.value("epoch", int64_t{0});
      r.seconds += h.value("seconds", 0.0);
    }
    if (!r.history.empty()) {
      r.train_loss = r.history.back().value("train_loss", NAN);
      r.steps = r.history.back().value("step", int64_t{0});
    }
    const std::string& id = trials_[i].id;
    if (failed_.contains(id)) {
      r.status = failed_[id].value("status", "failed");
      r.error = failed_[id].value("error", "");
    } else if (r.epochs_done() >= trials_[i].epochs) {
      r.status = "done";
    } else if (pruned_.count(i)) {
      r.status = "pruned";
    } else {
      r.status = r.epochs_done() > 0 || fs::exists(trial_dir(i)) ? "partial" : "pending";
    }
    return r;
  }

  std::vector<TrialResult> results() const {
    std::vector<TrialResult> r;
    for (size_t i = 0; i < trials_.size(); ++i) r.push_back(read_result(i));
    return r;
  }

  // By best val_acc, then lower val_loss at that epoch; trials without a result (failed, pending)
  // last; remaining ties in trial order.
  static std::vector<size_t> ranked(const std::vector<TrialResult>& res) {
    std::vector<size_t> o(res.size());
    for (size_t i = 0; i < o.size(); ++i) o[i] = i;
    std::stable_sort(o.begin(), o.end(),
                     [&](size_t x, size_t y) { return res[x].score(INT64_MAX) > res[y].score(INT64_MAX); });
    return o;
  }

  std::string best_command(size_t i) const {
    std::string s = "wanwu train";
    for (const auto& a : trials_[i].args) s += " " + shell_quote(a);
    return s + " --out " + shell_quote((dir_ / "best").string());
  }

  static std::string fmt(double v, const char* f) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
  }

  bool has_derived(const char* k) const {
    return std::any_of(trials_.begin(), trials_.end(), [&](const Trial& t) { return t.derived.contains(k); });
  }

  void write_results() const {
    const auto res = results();
    const bool d_accum = has_derived("accum-steps"), d_lr = has_derived("lr");
    std::string csv = "trial";
    for (const auto& d : dims_) csv += "," + d;
    if (d_accum) csv += ",accum_steps_derived";
    if (d_lr) csv += ",lr_derived";
    csv += ",val_acc,best_epoch,train_loss,epochs,steps,seconds,status\n";
    for (size_t i = 0; i < trials_.size(); ++i) {
      const auto& r = res[i];
      csv += trials_[i].id;
      for (const auto& [k, v] : trials_[i].values) csv += "," + v;
      if (d_accum) csv += "," + (trials_[i].derived.contains("accum-steps") ? trials_[i].derived["accum-steps"].dump() : "");
      if (d_lr) csv += "," + (trials_[i].derived.contains("lr") ? trials_[i].derived["lr"].get<std::string>() : "");
      csv += "," + (std::isnan(r.best_acc) ? std::string() : fmt(r.best_acc, "%.6f")) + "," +
             (r.best_epoch ? std::to_string(r.best_epoch) : std::string()) + "," +
             (std::isnan(r.train_loss) ? std::string() : fmt(r.train_loss, "%.6f")) + "," +
             std::to_string(r.epochs_done()) + "," + std::to_string(r.steps) + "," + fmt(r.seconds, "%.2f") + "," +
             r.status + "\n";
    }
    write_text_atomic(dir_ / "results.csv", csv);
    write_report(res);
  }

  // The learning rate a trial trained with: derived, varied, or the common --lr.
  double trial_lr(size_t i) const {
    const auto& a = trials_[i].args;
    for (size_t k = 0; k + 1 < a.size(); ++k)
      if (a[k] == "--lr") return std::stod(a[k + 1]);
    return 1e-3;
  }

  void write_report(const std::vector<TrialResult>& res) const {
    using namespace report_detail;
    static const char* palette[] = {"#3b7dd8", "#d9534f", "#5cb85c", "#f0ad4e", "#8e44ad", "#17a2b8",
                                    "#e83e8c", "#6c757d", "#20c997", "#fd7e14", "#343a40", "#6610f2"};
    const auto order = ranked(res);
    std::set<double> lrs;
    for (size_t i = 0; i < trials_.size(); ++i) lrs.insert(trial_lr(i));
    const bool by_lr = lrs.size() > 1;
    Series done{"trained", "#3b7dd8", {}, {}}, pruned{"pruned", "#aaaaaa", {}, {}};
    std::vector<Series> acc_curves, loss_curves;
    for (size_t i = 0; i < trials_.size(); ++i) {
      const auto& r = res[i];
      Series& s = r.status == "pruned" ? pruned : done;
      if (!std::isnan(r.best_acc)) {
        s.x.push_back(by_lr ? trial_lr(i) : static_cast<double>(i));
        s.y.push_back(r.best_acc);
      }
      Series a{trials_[i].id, palette[i % 12], {}, {}}, l{trials_[i].id, palette[i % 12], {}, {}};
      for (const auto& h : r.history) {
        a.x.push_back(h.value("epoch", 0.0)), a.y.push_back(h.value("val_acc", NAN));
        l.x.push_back(h.value("epoch", 0.0)), l.y.push_back(h.value("train_loss", NAN));
      }
      acc_curves.push_back(a);
      loss_curves.push_back(l);
    }
    std::string page = page_head("wanwu sweep: " + dir_.filename().string());
    page += "<h1>wanwu sweep: " + esc(dir_.string()) + "</h1>";
    if (!order.empty() && !std::isnan(res[order[0]].best_acc)) {
      const size_t b = order[0];
      page += "<p id=\"summary\">" + std::to_string(trials_.size()) + " trials" +
              (budgets_.size() > 1 ? ", successive halving (eta " + std::to_string(eta_) + ")" : std::string()) +
              ". Best: <b>" + esc(trials_[b].id) + "</b> (" + esc(values_text(trials_[b].values)) + ") val_acc <b>" +
              num(res[b].best_acc * 100, "%.2f") + "%</b> at epoch " + std::to_string(res[b].best_epoch) +
              ".</p><pre id=\"best_command\">" + esc(best_command(b)) + "</pre>";
    }
    ChartStyle scatter;
    scatter.marks = Marks::points;
    scatter.x = by_lr ? Scale::log : Scale::linear;
    scatter.x_label = by_lr ? "learning rate" : "trial";
    std::vector<Series> pts{done};
    if (!pruned.x.empty()) pts.push_back(pruned);
    page += "<h2>Trials</h2><div>" +
            line_chart("acc_vs_lr", by_lr ? "best val accuracy vs learning rate" : "best val accuracy by trial", pts,
                       scatter) +
            line_chart("trial_curves", "val accuracy per trial", acc_curves) +
            line_chart("trial_loss", "train loss per trial", loss_curves) + "</div>";
    page += "<h2>Results</h2><table id=\"results\"><tr><th>rank</th><th>trial</th>";
    for (const auto& d : dims_) page += "<th>" + esc(d) + "</th>";
    page += "<th>val acc</th><th>epoch</th><th>train loss</th><th>epochs</th><th>seconds</th><th>status</th></tr>";
    for (size_t r = 0; r < order.size(); ++r) {
      const size_t i = order[r];
      page += "<tr><td>" + std::to_string(r + 1) + "</td><td>" + esc(trials_[i].id) + "</td>";
      for (const auto& [k, v] : trials_[i].values) page += "<td>" + esc(v) + "</td>";
      const auto& x = res[i];
      page += "<td>" + (std::isnan(x.best_acc) ? std::string("-") : num(x.best_acc, "%.4f")) + "</td><td>" +
              std::to_string(x.best_epoch) + "</td><td>" +
              (std::isnan(x.train_loss) ? std::string("-") : num(x.train_loss, "%.4f")) + "</td><td>" +
              std::to_string(x.epochs_done()) + "</td><td>" + num(x.seconds, "%.1f") + "</td><td title=\"" +
              esc(x.error) + "\">" + esc(x.status) + "</td></tr>";
    }
    page += "</table></body></html>\n";
    write_text_atomic(dir_ / "report.html", page);
  }

  fs::path dir_;
  std::vector<Trial> trials_;
  std::vector<std::string> dims_;
  std::vector<int64_t> budgets_;
  int64_t eta_;
  std::vector<std::string> runtime_;
  json failed_ = json::object();
  std::set<size_t> pruned_;
};

json plan_json(const std::vector<Trial>& trials, const std::vector<std::string>& dims,
               const std::vector<int64_t>& budgets, int64_t eta) {
  json t = json::array();
  for (const auto& x : trials) {
    json v = json::object();
    json vals = json::array();
    for (const auto& [k, val] : x.values) vals.push_back({k, val});
    t.push_back({{"id", x.id}, {"values", vals}, {"derived", x.derived}, {"args", x.args}, {"epochs", x.epochs}});
  }
  return {{"version", 1}, {"dims", dims}, {"rungs", budgets}, {"eta", eta}, {"trials", t}};
}

void plan_from_json(const json& j, std::vector<Trial>& trials, std::vector<std::string>& dims,
                    std::vector<int64_t>& budgets, int64_t& eta) {
  dims = j.at("dims").get<std::vector<std::string>>();
  budgets = j.at("rungs").get<std::vector<int64_t>>();
  eta = j.at("eta");
  trials.clear();
  for (const auto& x : j.at("trials")) {
    Trial t;
    t.id = x.at("id");
    for (const auto& p : x.at("values")) t.values.emplace_back(p[0].get<std::string>(), p[1].get<std::string>());
    t.derived = x.at("derived");
    t.args = x.at("args").get<std::vector<std::string>>();
    t.epochs = x.at("epochs");
    trials.push_back(std::move(t));
  }
}

}  // namespace

int run_sweep(int argc, char** argv) {
  const std::vector<FlagSpec> specs = sweep_flags();
  Args a("sweep", specs, argc, argv, 2, false);
  if (a.help()) {
    std::cout << help_text(
        "wanwu sweep --data DIR --model NAME --out SWEEPDIR --grid SPEC [--random N] [--halving] [train flags]",
        "Trains one run per configuration (SWEEPDIR/trial_NNN, ordinary `wanwu train` run folders), writes\n"
        "results.csv and report.html, and prints the trials ranked by val_acc with the best trial's full\n"
        "`wanwu train` command. Train flags outside --grid apply to every trial. Successive halving: all trials\n"
        "train to E/eta^K epochs, the best 1/eta continue to E/eta^(K-1), ... the last to --epochs E. Rerunning\n"
        "the same command, or --resume SWEEPDIR, continues an interrupted sweep: finished trials are kept, the\n"
        "interrupted one resumes from its last epoch. A trial that diverges or runs out of memory is recorded\n"
        "and the sweep goes on.",
        specs);
    return 0;
  }
  std::vector<std::string> runtime;
  for (const auto& k : kRuntimeFlags) {
    if (!a.has(k)) continue;
    runtime.push_back("--" + k);
    if (train_flag(k)->takes == Takes::value) runtime.push_back(a.str(k));
  }

  fs::path dir;
  std::vector<Trial> trials;
  std::vector<std::string> dims;
  std::vector<int64_t> budgets;
  int64_t eta = 3;
  bool have_plan = false;
  if (a.has("resume")) {
    for (const auto& [k, v] : a.given())
      if (k != "resume" && k != "out" && !kRuntimeFlags.count(k))
        throw UsageError("sweep: --" + k + " cannot be combined with --resume (the plan comes from the sweep's sweep.json)");
    dir = a.str("resume");
    if (a.has("out") && fs::path(a.str("out")) != dir) throw UsageError("sweep: --out must match --resume");
    require_file((dir / "sweep.json").string(), "--resume: sweep plan");
  } else {
    dir = a.required("out");
    a.required("data");
    a.required("model");
    const std::vector<Dim> grid = parse_grid(a.required("grid"));
    const bool scaling = a.has("keep-effective-batch") || a.has("lr-scaling");
    for (const auto& d : grid) {
      dims.push_back(d.name);
      // --batch-size beside a batch-size dimension is the reference the batch options scale from
      if (a.has(d.name) && !(d.name == "batch-size" && scaling))
        throw UsageError("sweep: --" + d.name + " is given both as a flag and as a --grid dimension");
    }
    const int64_t random_n = a.integer("random", 0, 1);
    eta = a.integer("eta", 3, 2);
    const bool halving = a.has("halving");
    if (a.has("eta") && !halving) throw UsageError("sweep: --eta needs --halving");
    if (halving && std::find(dims.begin(), dims.end(), "epochs") != dims.end())
      throw UsageError("sweep: --halving needs one --epochs for all trials (epochs cannot be a dimension)");
    const bool keep_eff = a.has("keep-effective-batch");
    const bool lr_linear = a.choice("lr-scaling", {"none", "linear"}, "none") == "linear";
    if (keep_eff && std::find(dims.begin(), dims.end(), "batch-size") == dims.end())
      throw UsageError("sweep: --keep-effective-batch needs a batch-size dimension in --grid");
    if (keep_eff && std::find(dims.begin(), dims.end(), "accum-steps") != dims.end())
      throw UsageError("sweep: --keep-effective-batch sets accum-steps itself; it cannot also be a --grid dimension");
    const uint64_t seed = static_cast<uint64_t>(a.integer("seed", 0, 0));
    const auto configs = expand(grid, random_n, seed);
    for (size_t i = 0; i < configs.size(); ++i) {
      Trial t = make_trial(a, specs, configs[i], keep_eff, lr_linear);
      char id[32];
      std::snprintf(id, sizeof id, "trial_%03zu", i);
      t.id = id;
      std::vector<std::string> check = t.args;
      check.insert(check.end(), {"--out", (dir / t.id).string()});
      check.insert(check.end(), runtime.begin(), runtime.end());
      try {
        check_train_args(check);
      } catch (const UsageError& e) {
        std::string m = e.what();
        if (m.rfind("train: ", 0) == 0) m = m.substr(7);
        throw UsageError("sweep: " + t.id + " (" + values_text(t.values) + "): " + m);
      }
      trials.push_back(std::move(t));
    }
    budgets = rung_budgets(static_cast<int64_t>(trials.size()), trials.front().epochs, eta, halving);
    if (halving && budgets.size() == 1)
      std::printf("note: --halving with %zu trials, %lld epochs and eta %lld has no rung to halve at; every trial "
                  "trains all epochs\n",
                  trials.size(), static_cast<long long>(trials.front().epochs), static_cast<long long>(eta));
    have_plan = true;
    const std::string d = a.str("data");
    std::error_code ec;
    if (d != "fashion-mnist" &&
        (!fs::is_directory(fs::path(d) / "train", ec) || !fs::is_directory(fs::path(d) / "val", ec)))
      throw RunError("--data '" + d + "': expected DIR/train/<class>/ and DIR/val/<class>/ folders (or fashion-mnist)");
  }

  const fs::path plan_file = dir / "sweep.json";
  std::error_code ec;
  if (fs::exists(plan_file, ec)) {
    json stored;
    try {
      std::ifstream in(plan_file);
      stored = json::parse(in);
    } catch (const json::exception& e) {
      throw RunError(plan_file.string() + ": unreadable sweep plan (" + std::string(e.what()) + ")");
    }
    if (have_plan && stored != plan_json(trials, dims, budgets, eta))
      throw UsageError("sweep: --out " + dir.string() +
                       " holds a different sweep (its sweep.json); give another --out, or --resume " + dir.string() +
                       " to continue that one");
    try {
      plan_from_json(stored, trials, dims, budgets, eta);
    } catch (const json::exception& e) {
      throw RunError(plan_file.string() + ": unreadable sweep plan (" + std::string(e.what()) + ")");
    }
    std::printf("continuing the sweep in %s\n", dir.string().c_str());
  } else {
    if (!have_plan) throw RunError("--resume " + dir.string() + ": no sweep.json");
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
      throw RunError("--out '" + dir.string() + "': cannot create the directory" + (ec ? " (" + ec.message() + ")" : ""));
    write_text_atomic(plan_file, plan_json(trials, dims, budgets, eta).dump(2) + "\n");
  }
  std::string rungs;
  for (auto b : budgets) rungs += (rungs.empty() ? "" : ", ") + std::to_string(b);
  std::printf("sweep: %zu trials over %zu dimension%s; %s; %s\n", trials.size(), dims.size(), dims.size() == 1 ? "" : "s",
              budgets.size() > 1 ? ("successive halving, eta " + std::to_string(eta) + ", rungs at " + rungs + " epochs").c_str()
                                 : ("every trial " + rungs + " epochs").c_str(),
              dir.string().c_str());
  std::fflush(stdout);

  Sweep sweep(dir, std::move(trials), std::move(dims), std::move(budgets), eta, std::move(runtime));
  sweep.run();
  sweep.finish();
  return 0;
}

}  // namespace wanwu::cli
