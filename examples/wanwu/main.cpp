// The `wanwu` command: one program, one subcommand per job (train, eval, predict, infer, sweep, serve).
// main() only dispatches and turns every failure into one line on stderr with the contract's exit code
// (0 success, 1 run-time failure, 2 bad usage; ../shared/CLI.md): library exceptions carry
// multi-line context, so their text is folded onto one line here rather than at every throw site.
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include <wanwu/core/error.hpp>

#include "commands.hpp"

namespace {

// The message on one line, without a leading "<command>: " (main prints "wanwu <command>: error: ").
std::string one_line(std::string s, const std::string& cmd) {
  if (s.rfind(cmd + ": ", 0) == 0) s = s.substr(cmd.size() + 2);
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n') s.replace(i, 1, "; ");
  while (!s.empty() && (s.back() == ' ' || s.back() == ';')) s.pop_back();
  return s;
}

const char* kUsage =
    "usage: wanwu <command> [flags]   (wanwu <command> --help for its flags)\n\n"
    "commands:\n"
    "  train     fine-tune a classifier on an image folder (or fashion-mnist); checkpoints, metrics, report\n"
    "  eval      accuracy, top-5, per-class precision/recall/F1 and confusion matrix of a checkpoint\n"
    "  predict   top-k labels for images, from a checkpoint or --model/--weights\n"
    "  infer     raw NCHW tensor in (safetensors 'input'), logits out\n"
    "  sweep     grid / random search over train flags, with successive halving; results.csv and report.html\n"
    "  serve     HTTP server: POST /predict an image, get the top-k as JSON (batched; /health, /metrics, /)\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace wanwu::cli;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? static_cast<int>(ExitCode::usage) : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "train") return run_train(argc, argv);
    if (cmd == "eval") return run_eval(argc, argv);
    if (cmd == "predict") return run_predict(argc, argv);
    if (cmd == "infer") return run_infer(argc, argv);
    if (cmd == "sweep") return run_sweep(argc, argv);
    if (cmd == "serve") return run_serve(argc, argv);
    std::cerr << "wanwu: unknown command '" << cmd << "' (expected train, eval, predict, infer, sweep or serve; see wanwu --help)\n";
    return static_cast<int>(ExitCode::usage);
  } catch (const UsageError& e) {
    std::cerr << "wanwu " << cmd << ": error: " << one_line(e.what(), cmd) << "\n";
    return static_cast<int>(ExitCode::usage);
  } catch (const std::bad_alloc&) {
    std::cerr << "wanwu " << cmd << ": error: out of memory; lower --batch-size (and raise --accum-steps to keep the "
                 "effective batch)\n";
    return static_cast<int>(ExitCode::failure);
  } catch (const wanwu::OutOfMemoryError& e) {
    std::cerr << "wanwu " << cmd << ": error: " << one_line(e.what(), cmd)
              << "; lower --batch-size (and raise --accum-steps to keep the effective batch)\n";
    return static_cast<int>(ExitCode::failure);
  } catch (const std::exception& e) {
    std::cerr << "wanwu " << cmd << ": error: " << one_line(e.what(), cmd) << "\n";
    return static_cast<int>(ExitCode::failure);
  }
}
