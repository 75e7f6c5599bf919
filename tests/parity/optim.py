#!/usr/bin/env python3
"""Writes PyTorch references for tests/parity/test_parity_optim.cpp.

Optimizers: a small MLP (Linear 6->8, tanh, Linear 8->4) trained 20 steps on fixed data with
cross-entropy, from fixed initial weights, by torch.optim SGD / Adam / AdamW with each option
(momentum, dampening, nesterov, weight decay, amsgrad, betas, eps, two parameter groups), in f64
and f32. The file holds the initial weights, the data, and the weights after every step.

GradScaler: torch's own GradScaler logic (torch/cuda/amp/grad_scaler.py) driven on the CPU, with
the two kernels it needs — which torch 1.13 ships for CUDA only — transcribed from PyTorch's
aten/src/ATen/native/cuda/AmpKernels.cu. A sequence of steps with injected inf gradients gives
the scale trajectory, which steps were skipped, and the weights.

Run with Debian's /usr/bin/python3 (python3-torch). Exits 77 (skipped) without torch."""
import argparse
import json
import math
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print(f"SKIPPED: PyTorch is not available to {sys.executable}: {e}. Install python3-torch.")
    sys.exit(77)


def flat(t):
    return t.detach().reshape(-1).tolist()


def model_init(dtype):
    g = torch.Generator().manual_seed(11)
    return {
        "fc1.weight": torch.randn(8, 6, generator=g, dtype=torch.float64).to(dtype) * 0.4,
        "fc1.bias": torch.randn(8, generator=g, dtype=torch.float64).to(dtype) * 0.1,
        "fc2.weight": torch.randn(4, 8, generator=g, dtype=torch.float64).to(dtype) * 0.4,
        "fc2.bias": torch.randn(4, generator=g, dtype=torch.float64).to(dtype) * 0.1,
    }


def forward(p, x):
    return F.linear(torch.tanh(F.linear(x, p["fc1.weight"], p["fc1.bias"])), p["fc2.weight"], p["fc2.bias"])


CONFIGS = [  # name, optimizer, hyper-parameters; "groups": lr of fc1 and fc2 differ
    ("sgd", "sgd", {"lr": 0.1}),
    ("sgd momentum", "sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd momentum dampening", "sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("sgd nesterov weight_decay", "sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ("adam", "adam", {"lr": 0.01}),
    ("adam weight_decay", "adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("adam amsgrad betas eps", "adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True}),
    ("adamw", "adamw", {"lr": 0.01, "weight_decay": 0.05}),
    ("adamw amsgrad", "adamw", {"lr": 0.01, "weight_decay": 0.2, "amsgrad": True}),
    ("adamw groups", "adamw", {"lr": 0.01, "weight_decay": 0.05, "groups": True}),
    ("sgd groups", "sgd", {"lr": 0.1, "momentum": 0.9, "groups": True}),
]


def run_config(kind, hp, dtype, x, y):
    p = {k: v.clone().requires_grad_() for k, v in model_init(dtype).items()}
    hp = dict(hp)
    groups = hp.pop("groups", False)
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    if groups:
        params = [{"params": [p["fc1.weight"], p["fc1.bias"]], "lr": hp["lr"] / 10},
                  {"params": [p["fc2.weight"], p["fc2.bias"]], "weight_decay": 0.0}]
    else:
        params = list(p.values())
    opt = cls(params, **hp)
    traj = []
    for _ in range(20):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(p, x), y).backward()
        opt.step()
        traj.append({k: flat(v) for k, v in p.items()})
    return traj


# ---- GradScaler on the CPU: the CUDA kernels, transcribed from AmpKernels.cu ----
def _unscale(grads, found_inf, inv_scale):
    for g in grads:
        if not torch.isfinite(g).all():
            found_inf.fill_(1.0)
        g.mul_(inv_scale.item())


def _update_scale(scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval):
    if found_inf.item():
        scale.mul_(backoff_factor)
        growth_tracker.fill_(0)
    else:
        successful = growth_tracker.item() + 1
        if successful == growth_interval:
            new_scale = float(torch.tensor(scale.item() * growth_factor, dtype=torch.float32))
            if math.isfinite(new_scale):
                scale.fill_(new_scale)
            growth_tracker.fill_(0)
        else:
            growth_tracker.fill_(successful)
    return scale


def scaler_trajectory():
    import torch.cuda.amp.grad_scaler as gs
    torch._amp_foreach_non_finite_check_and_unscale_ = _unscale
    torch._amp_update_scale_ = _update_scale

    def replicator_init(self, master_tensor):  # the same, minus its CUDA-tensor assertion
        self.master = master_tensor
        self._per_device_tensors = {}
    gs._MultiDeviceReplicator.__init__ = replicator_init
    w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    # Its logic does not depend on CUDA, only its kernels did: construct it as if CUDA were there.
    available = torch.cuda.is_available
    torch.cuda.is_available = lambda: True
    try:
        scaler = torch.cuda.amp.GradScaler(init_scale=1024.0, growth_factor=2.0, backoff_factor=0.5,
                                           growth_interval=3)
    finally:
        torch.cuda.is_available = available
    scaler._lazy_init_scale_growth_tracker(torch.device("cpu"))
    inf_steps = {2, 3, 7, 12}
    steps = []
    for i in range(16):
        opt.zero_grad(set_to_none=True)
        loss = (w * torch.tensor([1.0, 2.0, 3.0])).sum() * (1.0 + 0.1 * i)
        scaled = loss * scaler._scale  # GradScaler.scale, minus its CUDA-tensor assertion
        if i in inf_steps:
            scaled = scaled * float("inf")
        scaled.backward()
        before = w.detach().clone()
        scaler.step(opt)
        scaler.update()
        steps.append({"scale": scaler.get_scale(), "stepped": not torch.equal(before, w.detach()), "w": flat(w)})
    return {"inf_steps": sorted(inf_steps), "init_scale": 1024.0, "growth_interval": 3, "steps": steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(3)
    x64 = torch.randn(16, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (16,), generator=g)
    out = {"torch_version": torch.__version__, "y": y.tolist(), "configs": []}
    for dtype, dname in ((torch.float64, "f64"), (torch.float32, "f32")):
        x = x64.to(dtype)
        out["x_" + dname] = flat(x)
        out["init_" + dname] = {k: flat(v) for k, v in model_init(dtype).items()}
        for name, kind, hp in CONFIGS:
            out["configs"].append({"name": name, "dtype": dname, "kind": kind, "hp": {k: v for k, v in hp.items()},
                                   "trajectory": run_config(kind, hp, dtype, x, y)})
    out["scaler"] = scaler_trajectory()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, args.out)
    print(f"wrote {len(out['configs'])} optimizer runs and a grad-scaler trajectory to {args.out}")


if __name__ == "__main__":
    main()
