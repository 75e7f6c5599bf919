#!/usr/bin/env python3
"""Runs benchmarks/gpu_bench (wanwu) and the same work in PyTorch on the same GPU; writes a markdown
report: per op both times and the ratio torch/wanwu (> 1: wanwu is faster); for the memory-bound
ops the bandwidth each reaches as a share of the copy bandwidth PyTorch reaches in the same run
(the issue's yardstick: >= 80%); for the ResNet-50 training step images/s and peak memory, against
PyTorch eager with channels_last (cudnn.benchmark off, its default, and on).

usage: gpu_compare.py --bench BUILD/gpu_bench --out results.md [--seconds 360]

WANWU_BENCH_DEVICE=cpu is the dry run (ctest's gpu_compare_on_cpu), as for gpu_bench: both sides
on the CPU at shapes cut down to run in seconds, one timed call per row, and a non-zero exit when
a row lacks either side's figure. Its figures mean nothing; it shows, without a GPU, that the
PyTorch half runs to its end and the table is written, so that GPU time is not lost to a mistake
in this script. Two calls have no CPU kernel in PyTorch and are swapped for their plain
equivalents there: the fused Adam step and the GradScaler's unscale-and-check.
"""
import argparse
import json
import os
import subprocess
import sys
import time

DRY = os.environ.get("WANWU_BENCH_DEVICE") == "cpu"


def sz(n, div):
    """A size of the GPU benchmark, divided by `div` in the dry run (gpu_bench.cpp's sz)."""
    return max(1, n // div) if DRY else n


def sync(torch):
    if not DRY:
        torch.cuda.synchronize()


def torch_times():
    import torch
    import torch.nn.functional as F

    dev = "cpu" if DRY else "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False  # wanwu's f32 GEMM is full f32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    out = {}

    def timed(iters, f):
        if DRY:
            iters = 1
        for _ in range(1 if DRY else 3):
            f()
        sync(torch)
        t0 = time.perf_counter()
        for _ in range(iters):
            f()
        sync(torch)
        return (time.perf_counter() - t0) * 1000.0 / iters

    def bench(name, iters, f, nbytes=0):
        out[name] = {"ms": timed(iters, f), "bytes": nbytes}

    cl = torch.channels_last
    with torch.no_grad():
        k = sz(8192, 16)
        a = torch.randn(k, k, device=dev, dtype=torch.bfloat16)
        b = torch.randn(k, k, device=dev, dtype=torch.bfloat16)
        bench("gemm bf16 8192^3", 20, lambda: a @ b)
        k = sz(4096, 16)
        a32, b32 = torch.randn(k, k, device=dev), torch.randn(k, k, device=dev)
        bench("gemm f32 4096^3", 10, lambda: a32 @ b32)
        torch.backends.cuda.matmul.allow_tf32 = True
        bench("gemm f32 4096^3 tf32", 20, lambda: a32 @ b32)
        torch.backends.cuda.matmul.allow_tf32 = False
        del a, b, a32, b32
        xm = torch.randn(sz(256 * 197, 256), 768, device=dev, dtype=torch.bfloat16)
        wm = torch.randn(3072, 768, device=dev, dtype=torch.bfloat16)
        bm_ = torch.randn(3072, device=dev, dtype=torch.bfloat16)
        bench("linear+bias+gelu_tanh bf16 [50432,768]x[768,3072]", 20,
              lambda: F.gelu(F.linear(xm, wm, bm_), approximate="tanh"))
        del xm, wm, bm_

        def conv(tag, hw, cin, cout, k, stride):
            pad = k // 2
            ohw = (hw + 2 * pad - k) // stride + 1
            nb = sz(32, 16)
            x = torch.randn(nb, cin, hw, hw, device=dev, dtype=torch.bfloat16).to(memory_format=cl)
            w = torch.randn(cout, cin, k, k, device=dev, dtype=torch.bfloat16).to(memory_format=cl)
            gy = torch.randn(nb, cout, ohw, ohw, device=dev, dtype=torch.bfloat16).to(memory_format=cl)
            args = (gy, x, w, None, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1)
            bench(f"conv {tag} fwd", 20, lambda: F.conv2d(x, w, stride=stride, padding=pad))
            bench(f"conv {tag} bwd-data", 20,
                  lambda: torch.ops.aten.convolution_backward(*args, [True, False, False]))
            bench(f"conv {tag} bwd-filter", 20,
                  lambda: torch.ops.aten.convolution_backward(*args, [False, True, False]))

        conv("3x3 56x56 64->64", 56, 64, 64, 3, 1)
        conv("1x1 56x56 256->64", 56, 256, 64, 1, 1)
        conv("3x3/2 56x56 128->128", 56, 128, 128, 3, 2)
        conv("3x3 14x14 256->256", 14, 256, 256, 3, 1)
        conv("1x1 7x7 512->2048", 7, 512, 2048, 1, 1)

        n = sz(64 << 20, 64)
        ea, eb = torch.randn(n, device=dev), torch.randn(n, device=dev)
        bench("copy f32 64M", 20, lambda: ea.clone(), 2 * 4 * n)
        bench("add f32 64M", 20, lambda: ea + eb, 3 * 4 * n)
        ha, hb = ea.bfloat16(), eb.bfloat16()
        bench("add bf16 64M", 20, lambda: ha + hb, 3 * 2 * n)
        bench("cast bf16->f32 64M", 20, lambda: ha.float(), 6 * n)
        del ea, eb, ha, hb
        rows, cols = sz(64 * 12 * 197, 64), 197
        s = torch.randn(rows, cols, device=dev)
        bench("softmax f32 [151296,197]", 20, lambda: torch.softmax(s, -1), 2 * 4 * rows * cols)
        sh = s.bfloat16()
        bench("softmax bf16 [151296,197]", 20, lambda: torch.softmax(sh, -1), 2 * 2 * rows * cols)
        del s, sh
        rows = sz(256 * 197, 256)
        xl = torch.randn(rows, 768, device=dev)
        wl, bl = torch.randn(768, device=dev), torch.randn(768, device=dev)
        bench("layer_norm f32 [50432,768]", 20, lambda: F.layer_norm(xl, (768,), wl, bl), 2 * 4 * rows * 768)
        xh, wh, bh = xl.bfloat16(), wl.bfloat16(), bl.bfloat16()
        bench("layer_norm bf16 [50432,768]", 20, lambda: F.layer_norm(xh, (768,), wh, bh), 2 * 2 * rows * 768)
        del xl, xh
        np_ = sz(25 << 20, 64)
        p = torch.randn(np_, device=dev)
        p.grad = torch.randn(np_, device=dev)
        opt = torch.optim.Adam([p], lr=1e-3, fused=not DRY)
        bench("adam step f32 26M", 20, opt.step, 7 * 4 * np_)
        del p, opt

    for n, c, dt in ((256, 1000, torch.float32), (8192, 1000, torch.float32), (8192, 1000, torch.bfloat16)):
        tag = "f32" if dt == torch.float32 else "bf16"
        n = sz(n, 16)  # as gpu_bench, whose row names give the rows' sizes
        name = f"cross_entropy fwd+bwd {tag} [{n},{c}]"
        xc = torch.randn(n, c, device=dev, dtype=dt, requires_grad=True)
        yc = torch.randint(0, c, (n,), device=dev)

        def ce_step():
            F.cross_entropy(xc, yc).backward()
            xc.grad = None

        bench(name, 20, ce_step, 3 * xc.element_size() * n * c)

    try:
        import torchvision
        torch.manual_seed(0)
        params = list(torchvision.models.resnet50().to(dev).parameters())
        for p in params:
            p.grad = torch.randn_like(p)
        n_params = sum(p.numel() for p in params)
        adamw = torch.optim.AdamW(params)  # the default on CUDA: foreach
        bench("adamw step resnet50 params", 20, adamw.step, 7 * 4 * n_params)
        sgd = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
        bench("sgd momentum step resnet50 params", 20, sgd.step, 5 * 4 * n_params)
        # clipping first, as gpu_bench does (the unscales would leave zero gradients)
        bench("clip_grad_norm resnet50 grads", 20,
              lambda: float(torch.nn.utils.clip_grad_norm_(params, 1.0)), 3 * 4 * n_params)
        grads = [p.grad for p in params]
        found, inv = torch.zeros(1, device=dev), torch.full((1,), 1.0 / 65536, device=dev)

        def unscale():  # what GradScaler.unscale_ runs, and step()'s read of the flag
            if DRY:  # no CPU kernel: the same arithmetic in plain ops
                torch._foreach_mul_(grads, inv.item())
                found.fill_(float(not all(bool(torch.isfinite(g).all()) for g in grads)))
            else:
                torch._amp_foreach_non_finite_check_and_unscale_(grads, found, inv)
            return found.item()

        bench("unscale+check resnet50 grads", 20, unscale, 2 * 4 * n_params)
        del params, adamw, sgd, grads
    except Exception as e:  # noqa: BLE001 - keep the other rows
        print(f"torch optimizer rows: {e!r}", file=sys.stderr)

    # training batch norm + ReLU, bf16 activations with f32 parameters (what autocast hands over)
    for hw, c in ((56, 64), (56, 256), (14, 1024)):
        try:
            xb = torch.randn(sz(256, 128), c, hw, hw, device=dev, dtype=torch.bfloat16).to(memory_format=cl)
            xb.requires_grad_(True)
            gyb = torch.randn_like(xb)
            wb = torch.ones(c, device=dev, requires_grad=True)
            bb = torch.zeros(c, device=dev, requires_grad=True)
            rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)

            def bn_step():
                y = torch.relu(F.batch_norm(xb, rm, rv, wb, bb, training=True))
                y.backward(gyb)
                xb.grad = wb.grad = bb.grad = None

            bench(f"batch_norm+relu fwd+bwd bf16 256x{hw}x{hw}x{c}", 20, bn_step)
            del xb, gyb
        except Exception as e:  # noqa: BLE001 - keep the other rows
            print(f"torch batch_norm {hw}x{c}: {e!r}", file=sys.stderr)

    try:
        graph_steps(torch, F, dev, bench)
    except Exception as e:  # noqa: BLE001 - the rows show as missing; say why
        print(f"torch graph steps: {e!r}", file=sys.stderr)

    train = {}
    try:
        import torchvision
        for bm in (False, True):
            torch.backends.cudnn.benchmark = bm
            torch.manual_seed(0)
            model = torchvision.models.resnet50().to(dev).to(memory_format=cl).train()
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
            batch, img = sz(256, 128), 64 if DRY else 224  # the dry run's step at 64x64 (bf16 convs are slow on CPUs)
            x = torch.randn(batch, 3, img, img, device=dev).to(memory_format=cl)
            y = torch.randint(0, 1000, (batch,), device=dev)

            def step(phases=None):
                # given `phases`, a synchronization after each phase adds its milliseconds there
                opt.zero_grad(set_to_none=True)
                marks = []

                def lap():
                    if phases is not None:
                        sync(torch)
                        marks.append(time.perf_counter())

                lap()
                with torch.autocast(dev, dtype=torch.bfloat16):
                    loss = F.cross_entropy(model(x), y)
                lap()
                loss.backward()
                lap()
                opt.step()
                lap()
                for k in range(len(marks) - 1):
                    phases[k] += (marks[k + 1] - marks[k]) * 1000.0

            sync(torch)
            if not DRY:
                torch.cuda.reset_peak_memory_stats()
            ms = timed(10, step)
            train[bm] = {"ms": ms, "images_per_s": batch * 1000.0 / ms,
                         "peak_mib": 0.0 if DRY else torch.cuda.max_memory_allocated() / 1048576.0}
            if not bm:  # where the step's time goes
                phases = [0.0, 0.0, 0.0]
                reps = 1 if DRY else 5
                for _ in range(reps):
                    step(phases)
                train["phases"] = [t / reps for t in phases]
                try:
                    train["backward_ops"] = torch_backward_ops(model, x, y, dev)
                except Exception as e:  # noqa: BLE001 - the table says why it is missing
                    train["backward_ops_error"] = repr(e)
            del model, opt, x, y
            if not DRY:
                torch.cuda.empty_cache()
    except Exception as e:  # noqa: BLE001 - report what failed rather than drop the row silently
        train["error"] = repr(e)
    torch.backends.cudnn.benchmark = False
    return out, train, torch.__version__, "the CPU (dry run)" if DRY else torch.cuda.get_device_name()


def graph_steps(torch, F, dev, bench):
    """gpu_bench's graph_step_bench rows: a bf16 or fp16 autocast SGD step, eager and replayed from
    a torch.cuda.graph capture as PyTorch's whole-network example does it (warm-up on a side stream,
    autocast's cast cache off, which capture requires). fp16 uses torch's GradScaler; its step and
    update read the inf check on the host and cannot be captured, so the fp16 graph holds the
    forward, loss and backward, and the scaler's step and update run after each replay (the pattern
    PyTorch's CUDA-graph notes give for AMP). The dry run has no CUDA: it times the eager step under
    both names (bf16, without a scaler), so that the table's plumbing is checked."""
    import torchvision
    cl = torch.channels_last
    for arch, batch, img, iters, prec, graphs in (("resnet18", 64, 32, 50, "bf16", (False, True)),
                                                  ("resnet18", 64, 32, 50, "fp16", (False, True)),
                                                  ("resnet50", 256, 32 if DRY else 224, 10, "bf16", (True,))):
        adt = torch.float16 if prec == "fp16" and not DRY else torch.bfloat16
        for graph in graphs:
            torch.manual_seed(0)
            model = getattr(torchvision.models, arch)(num_classes=10).to(dev).to(memory_format=cl).train()
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
            scaler = torch.cuda.amp.GradScaler(enabled=prec == "fp16" and not DRY)
            n = sz(batch, batch // 2)
            x = torch.randn(n, 3, img, img, device=dev).to(memory_format=cl)
            y = torch.randint(0, 10, (n,), device=dev)

            def forward_backward():
                with torch.autocast(dev, dtype=adt, cache_enabled=False):
                    loss = F.cross_entropy(model(x), y)
                scaler.scale(loss).backward()

            def optimizer_step():
                scaler.step(opt)
                scaler.update()

            def step():
                opt.zero_grad(set_to_none=True)
                forward_backward()
                optimizer_step()

            f, g = step, None
            if graph and not DRY:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        step()
                torch.cuda.current_stream().wait_stream(side)
                g = torch.cuda.CUDAGraph()
                opt.zero_grad(set_to_none=True)
                with torch.cuda.graph(g):
                    forward_backward()
                    if not scaler.is_enabled():
                        opt.step()
                if scaler.is_enabled():
                    def f():
                        g.replay()
                        optimizer_step()
                else:
                    f = g.replay
            else:
                step()
            name = f"{arch} train step {prec}, batch {batch}, {img}x{img}, {'cuda graph' if graph else 'eager'}"
            bench(name, iters, f)
            del model, opt, scaler, x, y, f, g
            if not DRY:
                torch.cuda.empty_cache()


def torch_backward_ops(model, x, y, dev, top=25):
    """One backward pass of the step with a device synchronization before and after every autograd
    node (hooks on the graph's nodes), the time summed by node name: the measure of wanwu's
    BackwardProfile, except that torch's sums of gradients fall between nodes and are not timed
    (wanwu lists its own as "sum of gradients"). Returns ([(name, calls, ms)], total ms), most time
    first."""
    import torch
    import torch.nn.functional as F
    with torch.autocast(dev, dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), y)
    times, start, seen, stack = {}, {}, set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)

        def pre(grad_outputs, node=node):
            sync(torch)
            start[node] = time.perf_counter()

        def post(grad_inputs, grad_outputs, node=node):
            sync(torch)
            calls, ms = times.get(node.name(), (0, 0.0))
            times[node.name()] = (calls + 1, ms + (time.perf_counter() - start.pop(node)) * 1000.0)

        node.register_prehook(pre)
        node.register_hook(post)
        stack.extend(f for f, _ in node.next_functions)
    loss.backward()
    sync(torch)
    model.zero_grad(set_to_none=True)
    rows = sorted(((n, c, ms) for n, (c, ms) in times.items()), key=lambda r: -r[2])
    return rows[:top], sum(ms for _, _, ms in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=360, help="the time both sides have together")
    args = ap.parse_args()
    if DRY:
        try:
            import torch  # noqa: F401
            import torchvision  # noqa: F401
        except ImportError as e:
            print(f"gpu_compare dry run: skipped, no PyTorch here ({e})")
            return 77
    try:  # wanwu's half gets at most half the time, PyTorch's the rest
        res = subprocess.run([args.bench], capture_output=True, text=True, timeout=min(180, args.seconds / 2))
        stdout, stderr, rc = res.stdout, res.stderr, res.returncode
    except subprocess.TimeoutExpired as e:  # keep the rows it finished
        stdout = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr, rc = f"gpu_bench: stopped after {e.timeout} s", 124
    ours, our_train, our_train_bm, our_phases, our_ops, our_ops_total = {}, None, None, None, [], None
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                r = json.loads(line)
            except ValueError:  # a line cut short when the program was stopped
                continue
            if "backward_op" in r:
                our_ops.append((r["backward_op"], r["calls"], r["ms"]))
            elif "backward_total_ms" in r:
                our_ops_total = r["backward_total_ms"]
            elif "phases" in r:
                our_phases = [r["forward_ms"], r["backward_ms"], r["optimizer_ms"]]
            elif "images_per_s" in r and r.get("conv_search") == "benchmark":
                our_train_bm = r
            elif "images_per_s" in r:
                our_train = r
            else:
                ours[r["name"]] = r
    if rc != 0 or stderr:
        print(stdout, stderr[-20000:], file=sys.stderr)
    ours_only = dict(ours=ours, our_train=our_train, our_train_bm=our_train_bm, our_phases=our_phases,
                     our_ops=our_ops, our_ops_total=our_ops_total)
    # wanwu's rows are on disk before PyTorch runs, so a stop in PyTorch's half keeps them
    write_results(args.out, theirs={}, their_train={}, version="(not yet run)", gpu="?", **ours_only)
    try:
        theirs, their_train, version, gpu = torch_times()
    except Exception as e:  # noqa: BLE001 - report, do not hide, a missing torch
        theirs, their_train, version, gpu = {}, {"error": repr(e)}, f"unavailable ({e})", "?"
    print(write_results(args.out, theirs=theirs, their_train=their_train, version=version, gpu=gpu, **ours_only))
    if DRY:
        return dry_run_verdict(rc, ours, theirs, our_train, our_train_bm, our_phases, our_ops, their_train)
    return 0 if rc == 0 else 1


def dry_run_verdict(rc, ours, theirs, our_train, our_train_bm, our_phases, our_ops, their_train):
    """The dry run passes when both sides produced every figure the GPU run's table shows."""
    missing = [f"gpu_bench exited {rc}"] if rc != 0 else []
    missing += [f"wanwu: {n}: {r['error']}" for n, r in ours.items() if "error" in r]
    missing += [f"torch: no row '{n}'" for n in ours if n not in theirs]
    missing += [f"wanwu: no row '{n}'" for n in theirs if n not in ours]
    for what, v in (("wanwu training step", our_train), ("wanwu benchmark-mode step", our_train_bm),
                    ("wanwu phases", our_phases), ("wanwu backward ops", our_ops),
                    ("torch training step", their_train.get(False)),
                    ("torch benchmark-mode step", their_train.get(True)),
                    ("torch phases", their_train.get("phases")), ("torch backward ops", their_train.get("backward_ops"))):
        if not v:
            missing.append(f"no {what}")
    for key in ("error", "backward_ops_error"):
        if key in their_train:
            missing.append(f"torch {key}: {their_train[key]}")
    for m in missing:
        print(f"gpu_compare dry run: {m}", file=sys.stderr)
    print(f"gpu_compare dry run: {'FAIL' if missing else 'PASS'} ({len(ours)} rows on both sides)")
    return 1 if missing else 0


def write_results(out, ours, our_train, our_train_bm, our_phases, our_ops, our_ops_total, theirs, their_train,
                  version, gpu):
    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"

    lines = [f"# wanwu CUDA vs PyTorch {version} on {gpu}", "",
             "| op | wanwu ms | torch ms | torch/wanwu |", "|---|---:|---:|---:|"]
    names = list(ours) + [n for n in theirs if n not in ours]
    for name in names:
        w = ours.get(name, {}).get("ms")
        t = theirs.get(name, {}).get("ms")
        lines.append(f"| {name} | {fmt(w, '.4f')} | {fmt(t, '.4f')} | {fmt(t / w if w and t else None, '.2f')} |")

    failed = [(n, r["error"]) for n, r in ours.items() if "error" in r]
    if failed:
        lines += ["", "wanwu rows that failed:", ""] + [f"- {n}: {e}" for n, e in failed]

    copy_t = theirs.get("copy f32 64M")
    ceiling = copy_t["bytes"] / copy_t["ms"] / 1e6 if copy_t else None  # GB/s
    lines += ["", f"Memory-bound ops, GB/s (bytes read + written / time); torch's copy: {fmt(ceiling, '.0f')} GB/s",
              "", "| op | wanwu GB/s | torch GB/s | wanwu / torch copy |", "|---|---:|---:|---:|"]
    for name in names:
        nbytes = (ours.get(name) or theirs.get(name) or {}).get("bytes", 0)
        if not nbytes:
            continue
        w = ours.get(name, {}).get("ms")
        t = theirs.get(name, {}).get("ms")
        wg = nbytes / w / 1e6 if w else None
        tg = nbytes / t / 1e6 if t else None
        share = f"{100 * wg / ceiling:.0f}%" if wg and ceiling else "-"
        lines.append(f"| {name} | {fmt(wg, '.0f')} | {fmt(tg, '.0f')} | {share} |")

    lines += ["", "ResNet-50 training step, batch 256, bf16 autocast, SGD momentum (synthetic data on the GPU)", "",
              "| | ms/step | images/s | peak MiB |", "|---|---:|---:|---:|"]
    if our_train:
        lines.append(f"| wanwu (NHWC) | {our_train['ms']:.1f} | {our_train['images_per_s']:.0f} | "
                     f"{our_train['peak_mib']:.0f} |")
    else:
        lines.append("| wanwu | failed (see bench.log) | | |")
    if our_train_bm:
        lines.append(f"| wanwu (NHWC), conv benchmark mode | {our_train_bm['ms']:.1f} | "
                     f"{our_train_bm['images_per_s']:.0f} | {our_train_bm['peak_mib']:.0f} |")
    for bm in (False, True):
        r = their_train.get(bm)
        if r:
            lines.append(f"| torch eager channels_last, cudnn.benchmark={bm} | {r['ms']:.1f} | "
                         f"{r['images_per_s']:.0f} | {r['peak_mib']:.0f} |")
    if "error" in their_train:
        lines.append(f"| torch | failed: {their_train['error']} | | |")
    def ratio(a, b):  # "-" where the denominator is missing (the dry run measures no GPU memory)
        return fmt(a / b if a is not None and b else None, ".2f")

    if our_train and their_train.get(False):
        r = their_train[False]
        lines += ["", f"wanwu / torch (benchmark off): {ratio(our_train['images_per_s'], r['images_per_s'])}x "
                      f"images/s at {ratio(our_train['peak_mib'], r['peak_mib'])}x its peak memory"]
    if our_train_bm and their_train.get(True):
        r = their_train[True]
        lines += ["", f"wanwu / torch, both in benchmark mode: {ratio(our_train_bm['images_per_s'], r['images_per_s'])}x "
                      f"images/s at {ratio(our_train_bm['peak_mib'], r['peak_mib'])}x its peak memory"]
    their_phases = their_train.get("phases")
    if our_phases or their_phases:
        lines += ["", "The same step with a device synchronization after each phase (ms, mean of 5):", "",
                  "| phase | wanwu | torch (benchmark off) |", "|---|---:|---:|"]
        for k, name in enumerate(("forward + loss (autocast)", "backward", "optimizer step")):
            w = our_phases[k] if our_phases else None
            t = their_phases[k] if their_phases else None
            lines.append(f"| {name} | {fmt(w, '.2f')} | {fmt(t, '.2f')} |")
    their_ops = their_train.get("backward_ops")
    if our_ops or their_ops or "backward_ops_error" in their_train:
        t_rows, t_total = their_ops if their_ops else ([], None)
        lines += ["", "One backward pass of that step with a device synchronization before and after each autograd "
                      "node, ms by node name (launch overhead included; the names differ between the libraries), "
                      f"25 costliest. Totals: wanwu {fmt(our_ops_total, '.1f')} ms, torch {fmt(t_total, '.1f')} ms"
                      + (f" (torch: {their_train['backward_ops_error']})" if "backward_ops_error" in their_train
                         else ""), "",
                  "| wanwu op | calls | ms | torch node | calls | ms |", "|---|---:|---:|---|---:|---:|"]
        for i in range(max(len(our_ops), len(t_rows))):
            w = our_ops[i] if i < len(our_ops) else ("", "", None)
            t = t_rows[i] if i < len(t_rows) else ("", "", None)
            lines.append(f"| {w[0]} | {w[1]} | {fmt(w[2], '.2f')} | {t[0]} | {t[1]} | {fmt(t[2], '.2f')} |")
    text = "\n".join(lines) + "\n"
    tmp = out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    return text


if __name__ == "__main__":
    sys.exit(main())
