// The subcommands of `wanwu`, one translation unit each; each returns its exit code and throws
// UsageError (exit 2) or any other exception (exit 1) for main() to report.
#pragma once

#include "common.hpp"

namespace wanwu::cli {

int run_train(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_predict(int argc, char** argv);
int run_infer(int argc, char** argv);
int run_sweep(int argc, char** argv);
int run_serve(int argc, char** argv);

// The trainer as a function, so `wanwu sweep` runs its trials in-process. A trial is the argument
// list `wanwu train` would get (without "train"); the hooks let the sweep pause a trial at an
// epoch boundary (successive halving) and resume it later with {"--resume", RUNDIR}.
enum class TrainEnd : uint8_t { completed, paused, interrupted };
struct TrainHooks {
  int64_t pause_after_epoch = 0;  // > 0: stop, saving the resume state, once this many epochs are done
};
struct TrainOutcome {
  TrainEnd end = TrainEnd::completed;
  fs::path run_dir;
};
const std::vector<FlagSpec>& train_flags();
// Parses and validates the flags as `wanwu train` would (UsageError on bad usage); runs nothing.
void check_train_args(const std::vector<std::string>& args);
// Runs the training; throws DivergedError, OutOfMemoryError, RunError... as `wanwu train` would.
TrainOutcome run_train_args(const std::vector<std::string>& args, const TrainHooks& hooks);

}  // namespace wanwu::cli
