#!/usr/bin/env python3
"""Runs named workloads in wanwu (Google Benchmark binaries, JSON output) and the same workloads
in PyTorch (same threads, shapes and dtypes), interleaved A B A B, and prints one table of
medians: workload, wanwu, PyTorch, and the ratio PyTorch time / wanwu time (> 1: wanwu faster).
A last column compares wanwu with a same-run reference (memcpy bandwidth, OpenBLAS called
directly).

Run with Debian's interpreter, which has python3-torch, and with the OpenBLAS variables unset:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 benchmarks/compare_pytorch.py \
        --build build [--threads 2] [--rounds 5] [--quick] [--markdown out.md]

Each later op family adds its workloads to WORKLOADS below: a wanwu benchmark name (as
Google Benchmark prints it) and a PyTorch factory that sets up the inputs and returns the step.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

try:
    import torch
except ImportError as e:
    sys.exit(f"compare_pytorch.py needs PyTorch (Debian python3-torch, /usr/bin/python3): {e}")

N16M = 1 << 24


def t_add():
    a, b = torch.rand(N16M), torch.rand(N16M)
    return lambda: a + b


def t_add_out():
    a, b, c = torch.rand(N16M), torch.rand(N16M), torch.empty(N16M)
    return lambda: torch.add(a, b, out=c)


def t_mul():
    a, b = torch.rand(N16M), torch.rand(N16M)
    return lambda: a * b


def t_sum():
    a = torch.rand(N16M)
    return lambda: a.sum()


def t_matmul(m, k, n):
    def make():
        a, b = torch.randn(m, k), torch.randn(k, n)
        return lambda: a @ b
    return make


MEMCPY = ("BM_memcpy_64MiB_threads/real_time", "memcpy, all threads", 2 * 4 * N16M)


def sgemm(m, k, n):
    return (f"BM_openblas_sgemm/{m}/{k}/{n}/real_time", "OpenBLAS sgemm", 2 * m * k * n)


# name: (binary, Google Benchmark name, torch factory, rate unit, work per call, same-run reference)
# The reference is another benchmark of the same binary, run in the same rounds: memcpy bandwidth
# for memory-bound kernels (target: >= 70% of it), OpenBLAS called directly for GEMM (target:
# wanwu at most 5% slower). Its column is wanwu's rate / the reference's rate.
WORKLOADS = {
    "add f32 16M": ("bench_core", "BM_add_f32_16M/real_time", t_add, "GB/s", 3 * 4 * N16M, MEMCPY),
    # PyTorch's CPU allocator does not cache, so `a + b` pays page faults on 64 MiB every call;
    # this row gives PyTorch a preallocated output (out=) to compare the kernels alone. wanwu's
    # caching allocator hands `a + b` recycled memory, so its side is the same benchmark.
    "add f32 16M, PyTorch into out=": ("bench_core", "BM_add_f32_16M/real_time", t_add_out, "GB/s",
                                        3 * 4 * N16M, MEMCPY),
    "mul f32 16M": ("bench_core", "BM_mul_f32_16M/real_time", t_mul, "GB/s", 3 * 4 * N16M, MEMCPY),
    "sum f32 16M": ("bench_core", "BM_sum_f32_16M/real_time", t_sum, "GB/s", 4 * N16M, MEMCPY),
    "matmul f32 1024^3": ("bench_core", "BM_matmul_f32/1024/1024/1024/real_time", t_matmul(1024, 1024, 1024),
                          "GFLOP/s", 2 * 1024 ** 3, sgemm(1024, 1024, 1024)),
    "matmul f32 1576x768x3072": ("bench_core", "BM_matmul_f32/1576/768/3072/real_time",
                                 t_matmul(1576, 768, 3072), "GFLOP/s", 2 * 1576 * 768 * 3072,
                                 sgemm(1576, 768, 3072)),
}


def run_wanwu(build, binary, name, min_time, threads):
    exe = os.path.join(build, "bin", binary)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([exe, f"--benchmark_filter=^{name.split('/real_time')[0]}(/real_time)?$",
                          f"--benchmark_min_time={min_time}", "--benchmark_format=json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    for b in json.loads(out)["benchmarks"]:
        if b["name"] == name:
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
            return b["real_time"] * scale
    raise RuntimeError(f"{binary}: benchmark {name} not found")


def run_torch(step, min_time):
    step()  # warm-up
    times = []
    deadline = time.perf_counter() + min_time
    while time.perf_counter() < deadline or len(times) < 3:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fmt_time(s):
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 0.2 s (well under 5 minutes)")
    ap.add_argument("--filter", default="", help="only workloads whose name contains this")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.min_time = 3, 0.2
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var} is set; benchmarks run with it unset (see docs/benchmarks.md)", file=sys.stderr)
    torch.set_num_threads(args.threads)

    rows = []
    for label, (binary, name, factory, unit, work, ref) in WORKLOADS.items():
        if args.filter not in label:
            continue
        step = factory()
        w, t, r = [], [], []
        for _ in range(args.rounds):  # interleaved: A B R A B R ...
            w.append(run_wanwu(args.build, binary, name, args.min_time, args.threads))
            t.append(run_torch(step, args.min_time))
            if ref:
                r.append(run_wanwu(args.build, binary, ref[0], args.min_time, args.threads))
        del step
        wm, tm = statistics.median(w), statistics.median(t)
        ref_cell = "-"
        if ref:
            rm = statistics.median(r)
            ref_cell = f"{ref[1]} {ref[2] / rm / 1e9:.1f} {unit}: {(work / wm) / (ref[2] / rm):.2f}"
        rows.append((label, wm, tm, tm / wm, f"{work / wm / 1e9:.1f}", f"{work / tm / 1e9:.1f}", unit, ref_cell))
        print(f"  {label}: wanwu {fmt_time(wm)}, torch {fmt_time(tm)}; {ref_cell}", file=sys.stderr)

    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; threads: {args.threads}; "
        f"torch {torch.__version__}; {args.rounds} interleaved rounds, medians.",
        "",
        "| workload | wanwu | PyTorch | PyTorch time / wanwu time | wanwu rate | PyTorch rate | "
        "same-run reference: wanwu rate / reference rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, wm, tm, ratio, wr, tr, unit, ref_cell in rows:
        lines.append(f"| {label} | {fmt_time(wm)} | {fmt_time(tm)} | {ratio:.2f}x | {wr} {unit} | {tr} {unit} | "
                     f"{ref_cell} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
