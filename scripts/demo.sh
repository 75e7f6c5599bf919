#!/usr/bin/env bash
# The demo: install dependencies, build, and run the main training job with its report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target mlp_from_scratch
build/bin/mlp_from_scratch "$@"
