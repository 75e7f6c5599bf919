// The CUDA parity suite's entry point: without a CUDA device it reports itself skipped (exit 77,
// ctest's SKIP_RETURN_CODE) instead of passing vacuously; with one it runs every test case. With
// WANWU_PARITY_DEVICE=cpu it runs its cases on the CPU, GPU or not (the dry run, parity.hpp).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "parity.hpp"

int main(int argc, char** argv) {
  if (!cp::on_cpu() && !wanwu::cuda_is_available()) {
    std::printf("SKIPPED: no CUDA device in this machine (the CUDA backend is %s)\n",
                wanwu::has_backend(wanwu::DeviceType::cuda) ? "linked" : "not linked");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
