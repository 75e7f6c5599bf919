#!/usr/bin/env python3
"""Runs benchmarks/gpu_bench (wanwu) and the same ops in PyTorch on the same GPU; writes a
markdown table of both times and the ratio torch/wanwu (> 1: wanwu is faster).

usage: gpu_compare.py --bench BUILD/gpu_bench --out results.md
"""
import argparse
import json
import subprocess
import sys
import time


def torch_times():
    import torch
    import torch.nn.functional as F

    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False  # wanwu's f32 GEMM is full f32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    out = {}

    def bench(name, iters, f):
        for _ in range(3):
            f()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            f()
        torch.cuda.synchronize()
        out[name] = (time.perf_counter() - t0) * 1000.0 / iters

    with torch.no_grad():
        a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
        b = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
        bench("gemm bf16 4096^3", 20, lambda: a @ b)
        a32, b32 = a.float(), b.float()
        bench("gemm f32 4096^3", 10, lambda: a32 @ b32)
        x = torch.randn(32, 64, 56, 56, device=dev, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
        w = torch.randn(64, 64, 3, 3, device=dev, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
        gy = torch.randn(32, 64, 56, 56, device=dev, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
        bench("conv3x3 fwd bf16 32x56x56x64", 20, lambda: F.conv2d(x, w, padding=1))
        bench("conv3x3 bwd-data bf16", 20,
              lambda: torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                          [True, False, False]))
        bench("conv3x3 bwd-filter bf16", 20,
              lambda: torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                          [False, True, False]))
        s = torch.randn(64 * 12 * 197, 197, device=dev)
        bench("softmax f32 [151296,197]", 20, lambda: torch.softmax(s, -1))
        xl = torch.randn(64 * 197, 768, device=dev)
        wl, bl = torch.randn(768, device=dev), torch.randn(768, device=dev)
        bench("layer_norm f32 [12608,768]", 20, lambda: F.layer_norm(xl, (768,), wl, bl))
        n = 25 << 20
        p = torch.randn(n, device=dev)
        p.grad = torch.randn(n, device=dev)
        opt = torch.optim.Adam([p], lr=1e-3, fused=True)
        bench("adam step f32 26M", 20, opt.step)
        ea, eb = torch.randn(64 << 20, device=dev), torch.randn(64 << 20, device=dev)
        bench("add f32 64M", 20, lambda: ea + eb)
    return out, torch.__version__, torch.cuda.get_device_name()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    res = subprocess.run([args.bench], capture_output=True, text=True, timeout=300)
    ours = {}
    for line in res.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            ours[r["name"]] = r["ms"]
    if res.returncode != 0 or res.stderr:
        print(res.stdout, res.stderr[-20000:], file=sys.stderr)
    try:
        theirs, version, gpu = torch_times()
    except Exception as e:  # noqa: BLE001 - report, do not hide, a missing torch
        theirs, version, gpu = {}, f"unavailable ({e})", "?"
    lines = [f"# wanwu CUDA vs PyTorch {version} on {gpu}", "",
             "| op | wanwu ms | torch ms | torch/wanwu |", "|---|---:|---:|---:|"]
    for name in ours.keys() | theirs.keys():
        w, t = ours.get(name), theirs.get(name)
        ratio = f"{t / w:.2f}" if w and t else "-"
        lines.append(f"| {name} | {w:.4f} | {t:.4f} | {ratio} |".replace("None", "-") if w and t else
                     f"| {name} | {w if w else '-'} | {t if t else '-'} | {ratio} |")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0 if res.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
