#!/usr/bin/env bash
# Installs the Debian packages that wanwu's build, tests, demo and benchmarks need, and nothing
# else. Idempotent: packages already present are left alone and apt is not touched at all when
# nothing is missing. Uses sudo only when not already root.
set -euo pipefail

packages=(
  cmake g++ ninja-build                 # build
  libopenblas-openmp-dev                # GEMM (the OpenMP build of OpenBLAS)
  doctest-dev nlohmann-json3-dev        # tests
  python3 python3-torch python3-numpy   # PyTorch parity references, benchmarks/compare_pytorch.py
  libbenchmark-dev                      # benchmarks (Google Benchmark)
  libstb-dev zlib1g-dev                 # data pipeline: stb_image decoding, gzip'd IDX files
  python3-torchvision python3-pil       # data pipeline parity tests, benchmarks/data/compare_torchvision.py
  python3-skimage                       #   (their sample photographs)
  dataset-fashion-mnist                 # the built-in Fashion-MNIST dataset
  libcpp-httplib-dev pkgconf            # wanwu serve (cpp-httplib: a header and a library found by pkg-config)
  chromium-headless-shell               # tests that render report.html and the serve upload page
  clang libclang-rt-14-dev              # the libFuzzer target of the upload path (tests/fuzz)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "setup-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
echo "setup-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
