#!/usr/bin/env bash
# The prepared GPU check (DESIGN §6), for a machine with an NVIDIA GPU (target: one H200, sm_90),
# CMake, Ninja, nvcc, g++ and a Python with PyTorch, but maybe no network and no apt:
#
#   scripts/gpu-check.sh --out DIR [--prefix DIR[:DIR...]]... [--arch 90] [--jobs 16] [--budget 470]
#
# --prefix DIR: build dependencies unpacked Debian-style under DIR (DIR/usr/include,
#   DIR/usr/lib/x86_64-linux-gnu, DIR/usr/share/...), e.g. with `dpkg -x pkg.deb DIR` for
#   libopenblas-openmp-dev libopenblas0-openmp libgfortran5 doctest-dev nlohmann-json3-dev
#   libstb-dev libstb0 zlib1g-dev. Repeatable; colon-separated lists work too.
# cuDNN is taken from CUDNN_ROOT, the CUDA toolkit, or PyTorch's Python environment (nvidia/cudnn).
#
# Steps: configure with WANWU_CUDA=ON for the given architecture; build the unit tests, the CUDA
# parity suite and the wanwu program (not the other examples, benchmarks or data-pipeline tests);
# run them with ctest, including the wanwu program training on cuda:0 against the CPU; time the
# GPU kernels and a ResNet-50 training step against PyTorch (the benchmark program compiles while
# the tests run); run compute-sanitizer memcheck, racecheck and synccheck on subsets of the parity
# suite. --budget: the seconds the whole check may take (default 470, under 8 minutes); each
# step's time limit is cut to what is left, so a slow step shortens the ones after it instead of
# overrunning (a test keeps at least 180 s; the benchmark and the sanitizer runs are skipped when
# too little is left). Writes into --out (flat, at most 8 files): configure.log build.log
# ctest.log bench.log results.md sanitizer.log summary.txt. Exit status 0 when the tests and the
# sanitizer runs pass.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

OUT="" PREFIXES=() ARCH=90 JOBS=16 BUDGET=470 PYTHON=${PYTHON:-python3}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --prefix) IFS=: read -r -a more <<< "$2"; PREFIXES+=("${more[@]}"); shift 2 ;;
    --arch) ARCH=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/{/^set -uo/!p}' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$OUT" ]] || { echo "gpu-check: --out DIR is required" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
START=$(date +%s)
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - START ))s; }
# seconds a step may take: its own limit, cut to what is left of the budget less `reserve` (kept
# for the steps after it)
limit() {  # limit OWN RESERVE
  local left=$(( START + BUDGET - $(date +%s) - $2 ))
  (( left < $1 )) && echo $(( left > 0 ? left : 1 )) || echo "$1"
}

# ---- dependencies from --prefix ----
CMAKE_ARGS=()
prefix_path="" 
for p in "${PREFIXES[@]}"; do
  p=$(cd "$p" && pwd) || { echo "gpu-check: no prefix $p" >&2; exit 2; }
  for root in "$p/usr" "$p"; do
    [[ -d "$root" ]] || continue
    prefix_path="$prefix_path;$root"
    export CPATH="$root/include:$root/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
    for lib in "$root/lib/x86_64-linux-gnu" "$root/lib" "$root/lib/x86_64-linux-gnu/openblas-openmp"; do
      [[ -d "$lib" ]] || continue
      export LIBRARY_PATH="$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
      export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
  done
  # OpenBLAS lives in a subdirectory that CMake's default search does not look into
  blas=$(find "$p" -path '*openblas*' -name 'libopenblas.so' 2>/dev/null | head -1)
  cblas=$(find "$p" -name cblas.h 2>/dev/null | head -1)
  [[ -n "$blas" ]] && CMAKE_ARGS+=("-DWANWU_BLAS_LIBRARY=$blas")
  [[ -n "$cblas" ]] && CMAKE_ARGS+=("-DWANWU_CBLAS_INCLUDE_DIR=$(dirname "$cblas")")
done
[[ -n "$prefix_path" ]] && CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=${prefix_path#;}")

# ---- cuDNN: CUDNN_ROOT, else the toolkit, else PyTorch's wheel ----
if [[ -z "${CUDNN_ROOT:-}" ]]; then
  pycudnn=$("$PYTHON" -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) if nvidia.cudnn.__file__ else list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
  if [[ -n "$pycudnn" && -d "$pycudnn" ]] && ! ls /usr/local/cuda/include/cudnn.h >/dev/null 2>&1; then
    export CUDNN_ROOT=$pycudnn
  fi
fi
if [[ -n "${CUDNN_ROOT:-}" ]]; then
  CMAKE_ARGS+=("-DCUDNN_ROOT=$CUDNN_ROOT")
  export LD_LIBRARY_PATH="$CUDNN_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# PyTorch's own CUDA libraries (cuBLAS) may be newer than the toolkit's; keep the toolkit's first.
export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="/usr/local/cuda/bin:$PATH"

note "gpu-check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
note "nvcc: $(nvcc --version 2>/dev/null | tail -1); cuDNN root: ${CUDNN_ROOT:-toolkit}; prefixes: ${PREFIXES[*]:-none}"

# ---- configure + build ----
status=0
if ! cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWANWU_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DWANWU_BUILD_EXAMPLES=ON -DWANWU_CLI_CUDA=ON -DWANWU_BUILD_BENCHMARKS=OFF \
    "${CMAKE_ARGS[@]}" > "$OUT/configure.log" 2>&1; then
  note "FAIL configure (see configure.log) after $(elapsed)"; tail -30 "$OUT/configure.log"; exit 1
fi
UNIT_TESTS=$(sed -n '/set(WANWU_UNIT_TESTS/,/)/p' "$ROOT/tests/CMakeLists.txt" | tr -d '()' | sed 's/set//; s/WANWU_UNIT_TESTS//' | tr -s ' \n' ' ')
# shellcheck disable=SC2086
if ! cmake --build "$BUILD" -j "$JOBS" --target wanwu_cuda_backend test_cuda_parity wanwu_cli $UNIT_TESTS > "$OUT/build.log" 2>&1; then
  note "FAIL build (see build.log) after $(elapsed)"; grep -m20 -A5 'error' "$OUT/build.log"; exit 1
fi
cu_ms=$(awk -F'\t' '$4 ~ /wanwu_cuda_backend\.cu\.o$/ {print $2 - $1}' "$BUILD/.ninja_log" | tail -1)
note "CUDA translation unit: compiled in ${cu_ms:-?} ms (sm_$ARCH, in parallel with the rest)"
note "build done after $(elapsed)"

# ---- the benchmark program compiles in the background while the tests run ----
BENCH="$BUILD/gpu_bench"
{
  g++ -O2 -std=c++20 -fopenmp -DWANWU_CPU_BACKEND_EXTERN -I"$ROOT/include" \
    -I"$(grep -E '^WANWU_CBLAS_INCLUDE_DIR' "$BUILD/CMakeCache.txt" | sed 's/.*=//')" \
    "$ROOT/benchmarks/gpu_bench.cpp" -o "$BENCH" \
    -Wl,--whole-archive "$BUILD/libwanwu_cuda_backend.a" -Wl,--no-whole-archive "$BUILD/libwanwu_cpu_backend.a" \
    $(grep -o '[^ ]*libcudnn[^ ]*' "$BUILD/CMakeCache.txt" | head -1 | sed 's/.*=//') \
    -L/usr/local/cuda/lib64 -lcublasLt -lcublas -lcudart \
    $(grep -E '^WANWU_BLAS_LIBRARY' "$BUILD/CMakeCache.txt" | sed 's/.*=//') -lpthread
} > "$OUT/bench.log" 2>&1 &
bench_pid=$!

# ---- tests: the unit tests run on cuda:0 as well; the parity suite compares every op ----
UNIT_RE=$(echo $UNIT_TESTS | tr ' ' '|')
# a test's limit shrinks with the budget but never below 180 s: a slow build must not turn the
# tests' verdicts into timeouts (the benchmark and the sanitizer runs after them give way instead)
test_limit=$(limit 300 200)
(( test_limit < 180 )) && test_limit=180
ctest --test-dir "$BUILD" -j 8 --timeout "$test_limit" --output-on-failure --test-output-size-passed 1000000 -R "^(cuda_parity|cli_cuda_train|${UNIT_RE})\$" > "$OUT/ctest.log" 2>&1
rc=$?
note "ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1) (rc $rc) after $(elapsed)"
[[ $rc -eq 0 ]] || status=1
# the parity suite's own summary (cases, assertions, skips), from the output ctest kept
awk '/Testing: cuda_parity$/ {on = 1} on && /^<end of output>/ {exit} on && /^\[doctest\]/' \
  "$BUILD/Testing/Temporary/LastTest.log" 2>/dev/null | tail -3 >> "$SUMMARY" || true

# ---- benchmark against PyTorch (its program was compiled while the tests ran) ----
wait "$bench_pid"
bench_limit=$(limit 360 100)
if [[ -x "$BENCH" && $bench_limit -lt 40 ]]; then
  note "benchmark: skipped, the budget is spent ($(elapsed))"
elif [[ -x "$BENCH" ]]; then
  # cuDNN's own log (warnings and errors) goes to bench.log: it says why cuDNN declined a shape
  CUDNN_LOGLEVEL_DBG=2 CUDNN_LOGDEST_DBG=stderr timeout "$bench_limit" "$PYTHON" "$ROOT/benchmarks/gpu_compare.py" \
    --bench "$BENCH" --out "$OUT/results.md" --seconds "$((bench_limit - 5))" >> "$OUT/bench.log" 2>&1
  note "benchmark: rc $? after $(elapsed) (results.md)"
else
  note "benchmark: build failed (bench.log)"
fi

# ---- compute-sanitizer on subsets of the parity suite ----
# memcheck: out-of-bounds and misaligned accesses over most op families; then racecheck (shared
# memory hazards) and synccheck (barriers some threads of a block never reach) over the kernels
# that share memory between threads: block and warp reductions, softmax, the norms, the losses,
# the multi-tensor passes and attention. Each appends to sanitizer.log under a header line.
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
# Cases that test timing (ops return while the device is still busy): a sanitizer runs kernels
# one at a time behind the host, so they would fail there for no fault of the code.
UNSANITIZED='*without waiting*'
: > "$OUT/sanitizer.log"
sanitize() {  # sanitize TOOL OWN_LIMIT RESERVE FILTER [extra sanitizer flags...]
  local tool=$1 own=$2 reserve=$3 filter=$4
  shift 4
  local lim
  lim=$(limit "$own" "$reserve")
  if (( lim < 20 )); then
    note "compute-sanitizer $tool: skipped, the budget is spent ($(elapsed))"
    return
  fi
  echo "==== compute-sanitizer --tool $tool -tc='$filter' (limit ${lim}s) ====" >> "$OUT/sanitizer.log"
  timeout "$lim" "$SAN" --tool "$tool" "$@" --error-exitcode 9 "$BUILD/tests/cuda/test_cuda_parity" -tc="$filter" \
    -tce="$UNSANITIZED" >> "$OUT/sanitizer.log" 2>&1
  local src=$?
  local verdict  # this tool's own summary line, from its section of the log
  verdict=$(sed -n "/^==== compute-sanitizer --tool $tool /,\$p" "$OUT/sanitizer.log" | grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' | tail -1)
  note "compute-sanitizer $tool: ${verdict:-no summary} (rc $src) after $(elapsed)"
  [[ $src -eq 0 || $src -eq 124 ]] || status=1
  [[ $src -eq 124 ]] && note "  ($tool stopped by its time limit; the cases it finished are in sanitizer.log)"
}
if [[ -n "$SAN" ]]; then
  # reserves: each later tool keeps at least its 20 s minimum (racecheck 20 + synccheck 20 + slack)
  sanitize memcheck 150 50 \
    '*CUDA backend*,*copies*,*casts*,*allocator*,*stream is ordered*,*bad indices*,*pinned*,*host threads*,*reductions over*,*argmax*,*matmul*,*softmax*,*layer_norm*,*batch_norm*,*index_select*,*pooling*,*max_pool2d*,*conv2d*,*attention*,*multi-tensor*,*every row ignored*,*captured*,*StepGraph*' \
    --leak-check no
  SHARED='*softmax*,*layer_norm*,*batch_norm*,*reductions*,*cross_entropy*,*argmax*,*multi-tensor*,*attention*'
  sanitize racecheck 60 30 "$SHARED" --racecheck-report hazard
  sanitize synccheck 40 0 "$SHARED"
else
  note "compute-sanitizer not found: memcheck, racecheck and synccheck skipped"
fi

note "gpu-check: $([[ $status -eq 0 ]] && echo PASS || echo FAIL) in $(elapsed)"
cat "$OUT/results.md" 2>/dev/null
exit $status
