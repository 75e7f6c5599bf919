#!/usr/bin/env bash
# The test command: install dependencies, configure (Release), build with 2 jobs, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
# CI compiles the CUDA backend (when nvcc is there) for sm_90 only: one architecture keeps nvcc fast.
# The wanwu program links the CUDA backend the tests build anyway (WANWU_CLI_CUDA, which demo.sh turns off).
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DWANWU_CLI_CUDA=ON
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2
