#!/usr/bin/env python3
"""Runs named workloads in wanwu (Google Benchmark binaries, JSON output) and the same workloads
in PyTorch (same threads, shapes and dtypes), interleaved A B A B, and prints one table of
medians: workload, wanwu, PyTorch, and the ratio PyTorch time / wanwu time (> 1: wanwu faster).
Where a same-run reference applies (memcpy bandwidth, OpenBLAS called directly) a last column
compares wanwu with it. Groups (ResNet50's convolutions, EfficientNet-B0's depthwise ones) get an
aggregate row: the sum over the group of (occurrences in the network x median time).

Run with Debian's interpreter, which has python3-torch, and with the OpenBLAS variables unset:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 benchmarks/compare_pytorch.py \
        --build build [--suite core|ops|models|all] [--threads 2] [--rounds 7] [--quick] [--markdown out.md]

Each op family adds its workloads below: the wanwu benchmark (binary and name as Google Benchmark
prints it) and a PyTorch factory that sets up the inputs and returns the step. Layouts: wanwu is
NHWC; PyTorch runs NCHW or channels_last, whichever is faster for that workload (probed first).
"""
import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"compare_pytorch.py needs PyTorch (Debian python3-torch, /usr/bin/python3): {e}")

HERE = os.path.dirname(os.path.abspath(__file__))
N16M = 1 << 24


@dataclasses.dataclass
class Workload:
    label: str
    binary: str
    bench: str
    torch_factory: object          # () -> step, or (channels_last: bool) -> step when layouts=True
    unit: str = ""                 # rate unit for `work` ("GB/s", "GFLOP/s")
    work: float = 0.0              # bytes or flops per call
    ref: tuple = None              # (bench, label, work) of a same-run reference
    group: str = ""                # aggregate rows sum count x time over a group
    count: int = 1
    layouts: bool = False          # probe NCHW vs channels_last for PyTorch


# ---------------------------------------------------------------- core kernels

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


def core_workloads():
    # PyTorch's CPU allocator does not cache, so `a + b` pays page faults on 64 MiB every call;
    # the out= row gives PyTorch a preallocated output to compare the kernels alone. wanwu's
    # caching allocator hands `a + b` recycled memory, so its side is the same benchmark.
    return [
        Workload("add f32 16M", "bench_core", "BM_add_f32_16M/real_time", t_add, "GB/s", 3 * 4 * N16M, MEMCPY),
        Workload("add f32 16M, PyTorch into out=", "bench_core", "BM_add_f32_16M/real_time", t_add_out, "GB/s",
                 3 * 4 * N16M, MEMCPY),
        Workload("mul f32 16M", "bench_core", "BM_mul_f32_16M/real_time", t_mul, "GB/s", 3 * 4 * N16M, MEMCPY),
        Workload("sum f32 16M", "bench_core", "BM_sum_f32_16M/real_time", t_sum, "GB/s", 4 * N16M, MEMCPY),
        Workload("matmul f32 1024^3", "bench_core", "BM_matmul_f32/1024/1024/1024/real_time",
                 t_matmul(1024, 1024, 1024), "GFLOP/s", 2 * 1024 ** 3, sgemm(1024, 1024, 1024)),
        Workload("matmul f32 1576x768x3072", "bench_core", "BM_matmul_f32/1576/768/3072/real_time",
                 t_matmul(1576, 768, 3072), "GFLOP/s", 2 * 1576 * 768 * 3072, sgemm(1576, 768, 3072)),
    ]


# ---------------------------------------------------------------- ops at model shapes

def t_conv(s):
    def make(channels_last):
        mf = torch.channels_last if channels_last else torch.contiguous_format
        x = torch.randn(s["n"], s["c"], s["h"], s["w"]).to(memory_format=mf).requires_grad_()
        w = (torch.randn(s["o"], s["c"] // s["groups"], s["k"], s["k"]) * 0.05).to(memory_format=mf).requires_grad_()
        dy = torch.randn_like(F.conv2d(x.detach(), w.detach(), None, s["stride"], s["pad"], 1, s["groups"]))

        def step():
            y = F.conv2d(x, w, None, s["stride"], s["pad"], 1, s["groups"])
            y.backward(dy)
            x.grad = None
            w.grad = None
        return step
    return make


def t_attention(s):
    def make():
        shape = (s["b"], s["heads"], s["l"], s["d"])
        q, k, v = (torch.randn(*shape, requires_grad=True) for _ in range(3))
        dy = torch.randn(*shape)
        scale = s["d"] ** -0.5
        sdpa = getattr(F, "scaled_dot_product_attention", None)

        def step():  # SDPA where PyTorch has it (2.x), else its math definition
            y = sdpa(q, k, v) if sdpa else torch.softmax(q @ k.transpose(-1, -2) * scale, -1) @ v
            y.backward(dy)
            q.grad = k.grad = v.grad = None
        return step
    return make


def t_batch_norm(s):
    def make(channels_last):
        mf = torch.channels_last if channels_last else torch.contiguous_format
        x = torch.randn(s["n"], s["c"], s["h"], s["w"]).to(memory_format=mf).requires_grad_()
        w, b = torch.ones(s["c"], requires_grad=True), torch.zeros(s["c"], requires_grad=True)
        rm, rv = torch.zeros(s["c"]), torch.ones(s["c"])
        dy = torch.randn_like(x)

        def step():
            y = F.batch_norm(x, rm, rv, w, b, True)
            y.backward(dy)
            x.grad = w.grad = b.grad = None
        return step
    return make


def t_layer_norm(s):
    def make():
        x = torch.randn(s["b"], s["l"], s["e"], requires_grad=True)
        w, b = torch.ones(s["e"], requires_grad=True), torch.zeros(s["e"], requires_grad=True)
        dy = torch.randn_like(x)

        def step():
            y = F.layer_norm(x, [s["e"]], w, b)
            y.backward(dy)
            x.grad = w.grad = b.grad = None
        return step
    return make


def ops_workloads():
    with open(os.path.join(HERE, "model_shapes.json")) as f:
        shapes = json.load(f)
    out = []
    for s in shapes["conv"]:
        flops = 3 * 2 * s["n"] * ((s["h"] + 2 * s["pad"] - s["k"]) // s["stride"] + 1) * \
            ((s["w"] + 2 * s["pad"] - s["k"]) // s["stride"] + 1) * s["o"] * s["k"] * s["k"] * s["c"] // s["groups"]
        group = "ResNet50 convolutions" if s["name"].startswith("resnet50") else "EfficientNet-B0 depthwise convolutions"
        out.append(Workload("conv fwd+bwd " + s["name"], "bench_ops", f"conv/{s['name']}/real_time", t_conv(s),
                            "GFLOP/s", flops, group=group, count=s["count"], layouts=True))
    for s in shapes["attention"]:
        out.append(Workload("attention fwd+bwd " + s["name"], "bench_ops", f"attention/{s['name']}/real_time",
                            t_attention(s)))
    for s in shapes["batch_norm"]:
        out.append(Workload("batch_norm fwd+bwd " + s["name"], "bench_ops", f"batch_norm/{s['name']}/real_time",
                            t_batch_norm(s), group="batch_norm at ResNet50 shapes", count=s["count"], layouts=True))
    for s in shapes["layer_norm"]:
        out.append(Workload("layer_norm fwd+bwd " + s["name"], "bench_ops", f"layer_norm/{s['name']}/real_time",
                            t_layer_norm(s)))
    return out


# ---------------------------------------------------------------- whole models

def t_eval(arch, batch):
    def make(channels_last):
        import torchvision
        model = getattr(torchvision.models, arch)().eval()
        x = torch.randn(batch, 3, 224, 224)
        if channels_last and not arch.startswith("vit"):
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)

        def step():
            with torch.inference_mode():
                model(x)
        return step
    return make


def models_workloads():
    out = []
    for arch in ("resnet50", "efficientnet_b0", "vit_b_16"):
        for batch in (1, 8):
            out.append(Workload(f"eval forward {arch} batch {batch}", "bench_models",
                                f"eval_forward/{arch}/{batch}/real_time", t_eval(arch, batch), "img/s", batch,
                                layouts=not arch.startswith("vit")))
    return out


# ---------------------------------------------------------------- running

def run_wanwu(build, binary, name, min_time, threads):
    exe = os.path.join(build, "bin", binary)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    base = name[: -len("/real_time")] if name.endswith("/real_time") else name
    pattern = "^" + "".join("\\" + ch if ch in ".^$*+?()[]{}|\\" else ch for ch in base) + "(/real_time)?$"
    out = subprocess.run([exe, f"--benchmark_filter={pattern}", f"--benchmark_min_time={min_time}",
                          "--benchmark_format=json"], env=env, check=True, capture_output=True, text=True).stdout
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
    ap.add_argument("--suite", choices=("core", "ops", "models", "all"), default="all")
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
    workloads = (core_workloads() if args.suite in ("core", "all") else []) + \
        (ops_workloads() if args.suite in ("ops", "all") else []) + \
        (models_workloads() if args.suite in ("models", "all") else [])

    rows, groups = [], {}
    for wl in workloads:
        if args.filter not in wl.label:
            continue
        layout_note = ""
        if wl.layouts:  # give PyTorch its faster memory format
            cands = {cl: wl.torch_factory(cl) for cl in (False, True)}
            probe = {cl: run_torch(st, min(args.min_time, 0.3)) for cl, st in cands.items()}
            best = min(probe, key=probe.get)
            step = cands[best]
            layout_note = " (PyTorch channels_last)" if best else " (PyTorch NCHW)"
            del cands
        else:
            step = wl.torch_factory()
        w, t, r = [], [], []
        for _ in range(args.rounds):  # interleaved: A B R A B R ...
            w.append(run_wanwu(args.build, wl.binary, wl.bench, args.min_time, args.threads))
            t.append(run_torch(step, args.min_time))
            if wl.ref:
                r.append(run_wanwu(args.build, wl.binary, wl.ref[0], args.min_time, args.threads))
        del step
        wm, tm = statistics.median(w), statistics.median(t)
        ref_cell = "-"
        if wl.ref:
            rm = statistics.median(r)
            ref_cell = f"{wl.ref[1]} {wl.ref[2] / rm / 1e9:.1f} {wl.unit}: {(wl.work / wm) / (wl.ref[2] / rm):.2f}"
        scale = 1.0 if wl.unit == "img/s" else 1e9
        rate = lambda s: f"{wl.work / s / scale:.1f} {wl.unit}" if wl.work else "-"
        rows.append((wl.label + layout_note, wm, tm, rate(wm), rate(tm), ref_cell))
        if wl.group:
            g = groups.setdefault(wl.group, [0.0, 0.0])
            g[0] += wl.count * wm
            g[1] += wl.count * tm
        print(f"  {wl.label}: wanwu {fmt_time(wm)}, torch {fmt_time(tm)}{layout_note}", file=sys.stderr)

    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; threads: {args.threads}; "
        f"torch {torch.__version__}; {args.rounds} interleaved rounds, medians.",
        "",
        "| workload | wanwu | PyTorch | PyTorch time / wanwu time | wanwu rate | PyTorch rate | "
        "same-run reference: wanwu rate / reference rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, wm, tm, wr, tr, ref_cell in rows:
        lines.append(f"| {label} | {fmt_time(wm)} | {fmt_time(tm)} | {tm / wm:.2f}x | {wr} | {tr} | {ref_cell} |")
    if groups:
        lines += ["", "| aggregate (occurrences x time, summed) | wanwu | PyTorch | PyTorch / wanwu |", "|---|---|---|---|"]
        for name, (ws, ts) in groups.items():
            lines.append(f"| {name} | {fmt_time(ws)} | {fmt_time(ts)} | {ts / ws:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
