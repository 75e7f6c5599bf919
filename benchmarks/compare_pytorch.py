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
        [--torch-timeout 600]

Each op family adds its workloads below: the wanwu benchmark (binary and name as Google Benchmark
prints it) and a PyTorch factory that sets up the inputs and returns the step. Layouts: wanwu is
NHWC; PyTorch runs NCHW or channels_last, whichever is faster for that workload (probed first).

Whole models (suite `models`, bench_models.cpp) get their own table: images/s, GFLOP/s as a
fraction of OpenBLAS sgemm measured in the same run, and each side's peak resident memory, taken
from a process that ran that one workload (wanwu: the binary filtered to one benchmark; PyTorch: a
fresh interpreter), since a peak measured where other models were built means nothing. Where
PyTorch's step takes minutes (bf16 training without AVX-512 BF16) it is timed once in that fresh
interpreter, under --torch-timeout, rather than every round.
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
    model: tuple = None            # (arch, forward passes per image): whole-model row, with FLOP/s and peaks
    min_iters: int = 3             # PyTorch steps timed per round at least
    torch_alone: bool = False      # PyTorch side: one step timed in its own process only (see models_workloads)


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


def t_add_1(requires_grad):
    def make():
        a, b = torch.rand(1, requires_grad=requires_grad), torch.rand(1)
        return lambda: a + b
    return make


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
        # the per-op host cost (checks, dispatch, allocation; with requires_grad the graph node)
        Workload("add f32 1 element (per-op host cost)", "bench_core", "BM_add_f32_1/real_time", t_add_1(False)),
        Workload("add f32 1 element, requires_grad (records a node)", "bench_core", "BM_add_f32_1_grad/real_time",
                 t_add_1(True)),
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


def t_cross_entropy(n, c):
    def make():
        x = torch.randn(n, c, requires_grad=True)
        y = torch.randint(0, c, (n,))

        def step():
            F.cross_entropy(x, y, label_smoothing=0.1).backward()
            x.grad = None
        return step
    return make


def t_clip_grad_norm():
    def make():
        import torchvision
        params = list(torchvision.models.resnet50().parameters())
        for p in params:
            p.grad = torch.randn_like(p)

        def step():  # float(): the norm read back, as wanwu's returns it
            return float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        return step
    return make


RESNET50_PARAMS = 25557032


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
    for n, c in ((256, 1000), (4096, 10)):
        out.append(Workload(f"cross_entropy fwd+bwd {n}x{c}", "bench_ops", f"cross_entropy/{n}x{c}/real_time",
                            t_cross_entropy(n, c)))
    out.append(Workload("clip_grad_norm_ resnet50 grads", "bench_ops", "clip_grad_norm/resnet50/real_time",
                        t_clip_grad_norm(), "GB/s", 3 * 4 * RESNET50_PARAMS))
    return out


# ---------------------------------------------------------------- whole models

MODEL_ARCHS = ("resnet50", "efficientnet_b0", "vit_b_16")
EVAL_BATCHES = (1, 8, 16)
TRAIN_BATCH = 16
SGEMM_REF = ("bench_core", "BM_openblas_sgemm/1024/1024/1024/real_time", 2 * 1024 ** 3)


def t_model(arch, batch, mode):
    """mode "eval": forward under inference_mode; "f32" / "bf16": forward, cross-entropy, backward,
    AdamW step and zero_grad, the forward and loss under bf16 autocast for "bf16" — what
    bench_models.cpp's train_step does."""
    def make(channels_last=False):
        import torchvision
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)()
        x = torch.randn(batch, 3, 224, 224)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        if mode == "eval":
            model.eval()

            def step():
                with torch.inference_mode():
                    model(x)
            return step
        model.train()
        y = torch.randint(0, 1000, (batch,))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)  # wanwu's zero_grad; PyTorch 1.13 defaults to zeroing
        return step
    return make


_FLOPS = {}


def forward_flops(arch):
    """FLOPs of one 224x224 image's forward, counted once per run: 2 per multiply-add of every
    convolution and matrix product ATen executes (the convention behind torchvision's published
    GFLOPS, which count multiply-adds: resnet50 4.09, efficientnet_b0 0.39, vit_b_16 17.56).
    Counted under autograd so that nn.MultiheadAttention takes its composite path, whose
    matrix products are visible, rather than the fused inference kernel."""
    if arch in _FLOPS:
        return _FLOPS[arch]
    import math
    import torchvision
    from torch.utils._python_dispatch import TorchDispatchMode
    aten = torch.ops.aten

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            op = func.overloadpacket
            if op is aten.convolution:  # weight [O, C/groups, kh, kw]
                Counter.total += 2 * out.numel() * math.prod(args[1].shape[1:])
            elif op in (aten.mm, aten.bmm):
                Counter.total += 2 * out.numel() * args[0].shape[-1]
            elif op in (aten.addmm, aten.baddbmm):
                Counter.total += 2 * out.numel() * args[1].shape[-1]
            return out

    model = getattr(torchvision.models, arch)().eval()
    with Counter():
        model(torch.randn(1, 3, 224, 224))
    _FLOPS[arch] = Counter.total
    return Counter.total


def models_workloads():
    # Without AVX-512 BF16, PyTorch 1.13 has no fast CPU path for bf16 convolutions and matrix
    # products: one bf16 training step takes minutes on a 2-core machine. Those rows time PyTorch
    # in the process that measures its peak (see run_model_alone) instead of in every round
    # (--quick leaves them out), and take the layout probed for the f32 step.
    slow_bf16 = not cpu_has_bf16()
    out = []
    for arch in MODEL_ARCHS:
        conv = not arch.startswith("vit")  # channels_last is a convolution layout
        for batch in EVAL_BATCHES:
            out.append(Workload(f"eval forward {arch} batch {batch}", "bench_models",
                                f"eval_forward/{arch}/{batch}/real_time", t_model(arch, batch, "eval"), "img/s",
                                batch, layouts=conv, model=(arch, 1), min_iters=1))
        for mode in ("f32", "bf16"):
            out.append(Workload(f"train step {arch} batch {TRAIN_BATCH} {mode}", "bench_models",
                                f"train_step/{arch}_{mode}/{TRAIN_BATCH}/real_time",
                                t_model(arch, TRAIN_BATCH, mode), "img/s", TRAIN_BATCH, layouts=conv,
                                model=(arch, 3), min_iters=1, torch_alone=mode == "bf16" and slow_bf16))
    return out


def cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512_bf16" in f.read()
    except OSError:
        return False


def vm_hwm_mib():
    """This process's peak resident set. Not getrusage's ru_maxrss: at exec Linux folds the
    parent's peak into it, so a child of this script would report the script's own size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def torch_alone(label, channels_last, min_time, max_steps=1000):
    """Runs in a fresh interpreter (--alone): builds the workload, takes a warm-up step and then
    timed steps for min_time seconds (at least one), printing each one's seconds and the peak RSS
    so far as it finishes, so that a parent that stops a slow run still has the steps done. From
    the second step on, the peak includes AdamW's moments. An empty label: the interpreter with
    torch and torchvision loaded."""
    import torchvision  # noqa: F401
    if not label:
        print("step 0", vm_hwm_mib(), flush=True)
        return
    wl = next((wl for wl in models_workloads() if wl.label == label), None)
    if wl is None:
        sys.exit(f"--alone: no workload named {label!r}")
    step = wl.torch_factory(channels_last) if wl.layouts else wl.torch_factory()
    print("ready", time.time(), flush=True)
    deadline = None
    for i in range(max_steps):
        t0 = time.perf_counter()
        step()
        print("step", time.perf_counter() - t0, vm_hwm_mib(), flush=True)
        deadline = deadline or time.perf_counter() + min_time  # timed steps: min_time's worth, at least one
        if i >= 1 and time.perf_counter() >= deadline:
            break


@dataclasses.dataclass
class Alone:
    steps: list          # seconds of each finished step
    peak: float          # MiB after the last finished step
    stopped_after: float = 0.0  # > 0: stopped at the timeout, at least this many seconds into the unfinished step


def measure_torch_alone(label, channels_last, threads, min_time, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--alone", label, "--min-time", str(min_time),
           "--threads", str(threads)] + (["--channels-last"] if channels_last else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"PyTorch {label!r} exited with {proc.returncode}: {err.strip()[-2000:]}")
        stopped = 0.0
    except subprocess.TimeoutExpired:
        stopped_at = time.time()
        proc.kill()
        out, _ = proc.communicate()
        ready = [float(line.split()[1]) for line in out.splitlines() if line.startswith("ready ")]
        stopped = stopped_at - ready[0] if ready else 0.0  # from the end of start-up and model building
    done = [line.split() for line in out.splitlines() if line.startswith("step ")]
    if stopped:
        stopped -= sum(float(d[1]) for d in done)
    return Alone([float(d[1]) for d in done], float(done[-1][2]) if done else 0.0, stopped)


# ---------------------------------------------------------------- running

def run_wanwu(build, binary, name, min_time, threads):
    """Seconds per iteration and the benchmark's counters, from a process that ran only `name`
    (bench_models' peak_rss_MiB depends on that)."""
    exe = os.path.join(build, "bin", binary)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    base = name[: -len("/real_time")] if name.endswith("/real_time") else name
    pattern = "^" + "".join("\\" + ch if ch in ".^$*+?()[]{}|\\" else ch for ch in base) + "(/real_time)?$"
    proc = subprocess.run([exe, f"--benchmark_filter={pattern}", f"--benchmark_min_time={min_time}",
                           "--benchmark_format=json"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} {name} exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    for b in json.loads(proc.stdout)["benchmarks"]:
        if b["name"] == name:
            if b.get("error_occurred"):
                raise RuntimeError(f"{binary} {name}: {b.get('error_message')}")
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
            return b["real_time"] * scale, b
    raise RuntimeError(f"{binary}: benchmark {name} not found")


def run_torch(step, min_time, min_iters=3, warm_up=True):
    if warm_up:
        step()
    times = []
    deadline = time.perf_counter() + min_time
    while time.perf_counter() < deadline or len(times) < min_iters:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_model_alone(wl, args, train_layout):
    """A whole-model row whose PyTorch side runs once in its own process (--quick, or a slow bf16
    step): wanwu's rounds, then PyTorch's warm-up and one timed step, stopped at --torch-timeout.
    Returns (workload, layout note, wanwu s, PyTorch s or None, how PyTorch's time was taken,
    wanwu peak, PyTorch peak or None)."""
    w, peaks, r = [], [], []
    for _ in range(1 if args.quick else args.rounds):
        wt, counters = run_wanwu(args.build, wl.binary, wl.bench, args.min_time, args.threads)
        w.append(wt)
        peaks.append(counters.get("peak_rss_MiB", 0.0))
        r.append(run_sgemm(args))
    wm, sg = statistics.median(w), statistics.median(r)
    # --quick does not probe: channels_last is what the full runs' probes chose for most
    # convolutional model workloads here. The slow bf16 steps take their f32 step's choice.
    best = train_layout.get(wl.model[0], True) if wl.layouts else False
    note = (" (PyTorch channels_last)" if best else " (PyTorch NCHW)") if wl.layouts else ""
    if wl.torch_alone and args.quick:
        print(f"  {wl.label}: wanwu {fmt_time(wm)}, PyTorch not run with --quick", file=sys.stderr)
        return wl, note, wm, None, "not run with --quick", max(peaks), None, sg
    alone = measure_torch_alone(wl.label, best, args.threads, args.min_time, args.torch_timeout)
    if len(alone.steps) >= 2:
        tm, tp = statistics.median(alone.steps[1:]), alone.peak
        how = "own process, after a warm-up"
    elif alone.steps:
        tm, how, tp = alone.steps[0], f"own process, first step; second stopped at {args.torch_timeout:.0f} s", None
    elif alone.stopped_after > 0:  # negative: a lower bound
        tm, how, tp = -alone.stopped_after, f"own process, first step stopped at {args.torch_timeout:.0f} s", None
    else:
        tm, how, tp = None, f"own process, stopped at {args.torch_timeout:.0f} s before its first step", None
    shown = fmt_time(abs(tm)) if tm is not None else "-"
    print(f"  {wl.label}: wanwu {fmt_time(wm)}, torch {shown} ({how}){note}", file=sys.stderr)
    return wl, note, wm, tm, how, max(peaks), tp, sg


def run_sgemm(args):
    """Seconds of OpenBLAS's sgemm 1024^3, the rate a model's GFLOP/s are judged against; measured
    in every round next to the model, since the machine's speed drifts under other load."""
    return run_wanwu(args.build, SGEMM_REF[0], SGEMM_REF[1], min(args.min_time, 0.3), args.threads)[0]


def fmt_time(s):
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us" if s >= 1e-5 else f"{s * 1e6:.3f} us"  # per-op host costs are tenths of a us


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--suite", choices=("core", "ops", "models", "all"), default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--quick", action="store_true",
                    help="kernels and ops: one round of 0.2 s after the layout probe; models: one round, PyTorch's "
                         "side a warm-up and one step in its own process, channels_last without probing, "
                         "bf16 training rows left out (under 5 minutes on 2 idle cores)")
    ap.add_argument("--filter", default="", help="only workloads whose name contains this")
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--torch-timeout", type=float, default=600,
                    help="seconds allowed to PyTorch's side of a model workload run in its own process (default 600)")
    ap.add_argument("--alone", metavar="WORKLOAD", help=argparse.SUPPRESS)  # PyTorch in its own process
    ap.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.alone is not None:
        torch.set_num_threads(args.threads)
        torch_alone(args.alone, args.channels_last, args.min_time)
        return
    if args.quick:
        args.rounds, args.min_time = 1, 0.2
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var} is set; benchmarks run with it unset (see docs/benchmarks.md)", file=sys.stderr)
    torch.set_num_threads(args.threads)
    workloads = (core_workloads() if args.suite in ("core", "all") else []) + \
        (ops_workloads() if args.suite in ("ops", "all") else []) + \
        (models_workloads() if args.suite in ("models", "all") else [])

    workloads = [wl for wl in workloads if args.filter in wl.label]
    if args.quick:  # bf16 training steps: a minute of the 5 on wanwu's side alone, and PyTorch's are slow
        workloads = [wl for wl in workloads if not (wl.model and wl.model[1] > 1 and wl.label.endswith("bf16"))]
    if any(wl.model for wl in workloads):
        torch_base = measure_torch_alone("", False, args.threads, 0.0, args.torch_timeout).peak

    rows, model_rows, groups, train_layout = [], [], {}, {}
    for wl in workloads:
        if wl.model and (args.quick or wl.torch_alone):
            model_rows.append(run_model_alone(wl, args, train_layout))
            continue
        layout_note, best = "", False
        # Whole models: one warm-up and one step per layout tell the layouts apart (they differ by
        # far more than the noise), and the winner needs no further warm-up.
        probe_time, probe_iters = (0.0, 1) if wl.model else (min(args.min_time, 0.3), 3)
        warm = False
        if wl.layouts:  # give PyTorch its faster memory format
            cands = {cl: wl.torch_factory(cl) for cl in (False, True)}
            probe = {cl: run_torch(st, probe_time, probe_iters) for cl, st in cands.items()}
            best = min(probe, key=probe.get)
            step = cands[best]
            layout_note = " (PyTorch channels_last)" if best else " (PyTorch NCHW)"
            del cands
            warm = True
        else:
            step = wl.torch_factory()
        if wl.model and wl.model[1] > 1:
            train_layout.setdefault(wl.model[0], best)
        w, t, r, peaks = [], [], [], []
        for _ in range(args.rounds):  # interleaved: A B R A B R ...
            wt, counters = run_wanwu(args.build, wl.binary, wl.bench, args.min_time, args.threads)
            w.append(wt)
            peaks.append(counters.get("peak_rss_MiB", 0.0))
            t.append(run_torch(step, args.min_time, wl.min_iters, warm_up=not (wl.model and warm)))
            warm = True
            if wl.ref:
                r.append(run_wanwu(args.build, wl.binary, wl.ref[0], args.min_time, args.threads)[0])
            elif wl.model:
                r.append(run_sgemm(args))
        del step
        wm, tm = statistics.median(w), statistics.median(t)
        print(f"  {wl.label}: wanwu {fmt_time(wm)}, torch {fmt_time(tm)}{layout_note}", file=sys.stderr)
        if wl.model:
            # the peak in a process of its own: this one holds every model built so far
            alone = measure_torch_alone(wl.label, best, args.threads, 0.0, args.torch_timeout)
            model_rows.append((wl, layout_note, wm, tm, "", max(peaks), alone.peak if len(alone.steps) >= 2 else None,
                               statistics.median(r)))
            continue
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

    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; threads: {args.threads}; "
        f"torch {torch.__version__}; {args.rounds} interleaved rounds of at least {args.min_time} s, medians.",
    ]
    if rows:
        lines += [
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
    if model_rows:
        sg_rates = [SGEMM_REF[2] / row[-1] / 1e9 for row in model_rows]
        archs = dict.fromkeys(wl.model[0] for wl, *_ in model_rows)
        lines += [
            "",
            f"OpenBLAS sgemm 1024^3, measured in each round next to each model: {min(sg_rates):.1f} to "
            f"{max(sg_rates):.1f} GFLOP/s (medians per workload); the fractions use each workload's own. "
            "Forward GFLOP per 224x224 image "
            "(convolutions and matrix products, 2 FLOPs per multiply-add, counted from the ATen calls): " +
            ", ".join(f"{a} {forward_flops(a) / 1e9:.2f}" for a in archs) +
            "; a training step counted as 3 forwards. Peak RSS (VmHWM): each side's process running that "
            f"workload alone (PyTorch: a fresh interpreter, whose torch and torchvision alone take "
            f"{torch_base:.0f} MiB)." + (" --quick: one round each." if args.quick else ""),
            "",
            "| workload | wanwu | PyTorch | PyTorch time / wanwu time | wanwu img/s | PyTorch img/s | "
            "wanwu GFLOP/s (of sgemm) | PyTorch GFLOP/s (of sgemm) | wanwu peak RSS | PyTorch peak RSS | "
            "PyTorch peak / wanwu peak |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for wl, note, wm, tm, how, wp, tp, sg in model_rows:
            flops = forward_flops(wl.model[0]) * wl.model[1] * wl.work
            gf = lambda s: f"{flops / s / 1e9:.1f} ({(flops / s) / (SGEMM_REF[2] / sg):.0%})"
            label = wl.label + note + (f" (PyTorch: {how})" if how else "")
            if tm is None:
                t_cells = "- | - | - | -"
            elif tm < 0:  # stopped: PyTorch's step takes at least -tm seconds
                t_cells = f"> {fmt_time(-tm)} | > {-tm / wm:.2f}x | < {wl.work / -tm:.2f} | < {gf(-tm)}"
            else:
                t_cells = f"{fmt_time(tm)} | {tm / wm:.2f}x | {wl.work / tm:.2f} | {gf(tm)}"
            t_time, ratio, t_rate, t_gf = t_cells.split(" | ")
            p_cells = f"{tp:.0f} MiB | {tp / wp:.2f}x" if tp else "- | -"
            lines.append(f"| {label} | {fmt_time(wm)} | {t_time} | {ratio} | {wl.work / wm:.2f} | {t_rate} | "
                         f"{gf(wm)} | {t_gf} | {wp:.0f} MiB | {p_cells} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
