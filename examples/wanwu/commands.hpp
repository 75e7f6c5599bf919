// The subcommands of `wanwu`, one translation unit each; each returns its exit code and throws
// UsageError (exit 2) or any other exception (exit 1) for main() to report.
#pragma once

#include "args.hpp"

namespace wanwu::cli {

int run_train(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_predict(int argc, char** argv);
int run_infer(int argc, char** argv);
int run_serve(int argc, char** argv);

}  // namespace wanwu::cli
