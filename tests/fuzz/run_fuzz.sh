#!/usr/bin/env bash
# Runs the fuzz_decode libFuzzer target for a bounded time: run_fuzz.sh FUZZER SEEDS WORKDIR SECONDS.
# New inputs go to WORKDIR/corpus (kept between runs, so a later run starts where this one
# stopped); a failing input is left as WORKDIR/crash-* (or leak-*, timeout-*, oom-*) and its
# sanitizer report is in the test's output. One job, so that it takes one core.
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3 seconds=$4
mkdir -p "$work/corpus"
cd "$work"
rm -f crash-* leak-* timeout-* oom-*
# -timeout: one input may take 10 s (a 4 Mi-pixel image through ASan); -rss_limit_mb: the
# decoder's pixel limit keeps an input's memory far below this.
# -seed: the same sequence of inputs on every machine (a slower one runs a prefix of it), so that a
# failure here reproduces; longer runs with other seeds explore further.
exec "$fuzzer" -seed=1 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
  -artifact_prefix="$work/" corpus "$seeds"
