#!/usr/bin/env python3
"""Writes the reference for tests/parity/test_parity_sched.cpp: for every learning-rate schedule
and option, the per-step learning rates of two parameter groups (and, for OneCycleLR, SGD's
momentum or Adam's beta1) as PyTorch's torch.optim.lr_scheduler computes them: the values right
after construction and after each of 100 steps. Each case carries its own specification, which
the C++ test reads to build the same schedule, so the configurations live in one place.

Run with Debian's interpreter (/usr/bin/python3, which has python3-torch). Exits 77 (CTest's
"skipped") with the reason when torch is not installed."""
import argparse
import json
import os
import sys
import warnings

try:
    import torch
    from torch.optim import lr_scheduler as S
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIPPED: PyTorch is not available to {sys.executable}: {e}. "
          "Install Debian's python3-torch (scripts/setup-deps.sh does).")
    sys.exit(77)

STEPS = 100
LRS = [0.1, 0.02]  # two parameter groups with different learning rates


def make_optimizer(spec):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))], "lr": lr}
              for lr in spec["lrs"]]
    if spec["type"] == "sgd":
        return torch.optim.SGD(groups, lr=spec["lrs"][0], momentum=spec.get("momentum", 0.0))
    if spec["type"] == "adam":
        return torch.optim.Adam(groups, lr=spec["lrs"][0], betas=tuple(spec.get("betas", (0.9, 0.999))))
    raise ValueError(spec["type"])


def make_schedule(opt, s):
    k = s["kind"]
    le = s.get("last_epoch", -1)
    if k == "step":
        return S.StepLR(opt, step_size=s["step_size"], gamma=s.get("gamma", 0.1), last_epoch=le)
    if k == "multistep":
        return S.MultiStepLR(opt, milestones=s["milestones"], gamma=s.get("gamma", 0.1), last_epoch=le)
    if k == "cosine":
        return S.CosineAnnealingLR(opt, T_max=s["T_max"], eta_min=s.get("eta_min", 0.0), last_epoch=le)
    if k == "linear":
        kw = {key: s[key] for key in ("start_factor", "end_factor", "total_iters") if key in s}
        return S.LinearLR(opt, last_epoch=le, **kw)
    if k == "sequential":
        children = [make_schedule(opt, c) for c in s["children"]]
        return S.SequentialLR(opt, children, milestones=s["milestones"])
    if k == "warmup_cosine":  # what wanwu's warmup_cosine() is documented to be
        w, t = s["warmup_steps"], s["total_steps"]
        warm = S.LinearLR(opt, start_factor=s["warmup_start_factor"], end_factor=1.0, total_iters=w)
        cos = S.CosineAnnealingLR(opt, T_max=t - w, eta_min=s["eta_min"])
        return S.SequentialLR(opt, [warm, cos], milestones=[w])
    if k == "onecycle":
        kw = {key: s[key] for key in ("max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start",
                                      "anneal_strategy", "cycle_momentum", "base_momentum", "max_momentum",
                                      "div_factor", "final_div_factor", "three_phase") if key in s}
        return S.OneCycleLR(opt, **kw)
    if k == "plateau":
        kw = {key: s[key] for key in ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                                      "min_lr", "eps") if key in s}
        return S.ReduceLROnPlateau(opt, **kw)
    raise ValueError(k)


def momentum_of(opt, spec):
    if spec["type"] == "adam":
        return [g["betas"][0] for g in opt.param_groups]
    return [g["momentum"] for g in opt.param_groups]


def plateau_metrics():
    """A loss curve with clear improvements, exact plateaus, improvements smaller than the
    thresholds, noise, a long stall (repeated cuts, cooldowns, min_lr) and small absolute steps."""
    v, x = [], 2.0
    for _ in range(12):
        x *= 0.85
        v.append(x)
    v += [x] * 8
    for _ in range(10):
        x *= 0.997
        v.append(x)
    for _ in range(6):
        x *= 0.9
        v.append(x)
    v += [x * (1.02 if k % 2 else 0.995) for k in range(14)]
    v += [x * 1.05] * 20
    for _ in range(10):
        x *= 0.95
        v.append(x)
    v += [x + (0.001 if k % 3 == 0 else -0.004) for k in range(20)]
    assert len(v) == STEPS
    return v


def epoch_pattern():
    """step(epoch) every fourth step, plain step() otherwise (-1)."""
    return [(k * 37) % 97 if k % 4 == 0 else -1 for k in range(1, STEPS + 1)]


def cases():
    sgd = {"type": "sgd", "lrs": LRS, "momentum": 0.9}
    adam = {"type": "adam", "lrs": LRS, "betas": [0.9, 0.999]}
    c = []

    def add(name, schedule, optimizer=sgd, **extra):
        c.append(dict(name=name, optimizer=optimizer, schedule=schedule, **extra))

    add("step", {"kind": "step", "step_size": 7, "gamma": 0.5})
    add("step_default_gamma", {"kind": "step", "step_size": 30})
    add("step_resumed", {"kind": "step", "step_size": 4, "gamma": 0.7, "last_epoch": 5}, set_initial_lr=True)
    add("multistep", {"kind": "multistep", "milestones": [60, 10, 25, 25, 90], "gamma": 0.3})
    add("cosine", {"kind": "cosine", "T_max": 30, "eta_min": 0.001})
    add("cosine_zero_eta_min", {"kind": "cosine", "T_max": 100, "eta_min": 0.0})
    add("cosine_resumed", {"kind": "cosine", "T_max": 40, "eta_min": 0.0005, "last_epoch": 10}, set_initial_lr=True)
    add("linear_warmup", {"kind": "linear", "start_factor": 0.25, "end_factor": 1.0, "total_iters": 10})
    add("linear_decay", {"kind": "linear", "start_factor": 1.0, "end_factor": 0.05, "total_iters": 40})
    add("linear_defaults", {"kind": "linear"})
    add("warmup_cosine", {"kind": "warmup_cosine", "warmup_steps": 10, "total_steps": 100,
                          "warmup_start_factor": 0.01, "eta_min": 1e-5})
    add("sequential_linear_step_cosine",
        {"kind": "sequential", "milestones": [5, 40],
         "children": [{"kind": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5},
                      {"kind": "step", "step_size": 10, "gamma": 0.5},
                      {"kind": "cosine", "T_max": 30, "eta_min": 0.001}]})
    add("sequential_multistep_linear",
        {"kind": "sequential", "milestones": [20],
         "children": [{"kind": "multistep", "milestones": [3, 8], "gamma": 0.5},
                      {"kind": "linear", "start_factor": 1.0, "end_factor": 0.1, "total_iters": 20}]})
    add("sequential_linear_onecycle",
        {"kind": "sequential", "milestones": [10],
         "children": [{"kind": "linear", "start_factor": 0.2, "end_factor": 1.0, "total_iters": 10},
                      {"kind": "onecycle", "max_lr": [0.3, 0.05], "total_steps": 95}]},
        record_momentum=True)

    add("onecycle_sgd_cos", {"kind": "onecycle", "max_lr": [0.5, 0.1], "total_steps": 100}, record_momentum=True)
    add("onecycle_sgd_linear_three_phase",
        {"kind": "onecycle", "max_lr": [0.4, 0.08], "total_steps": 100, "anneal_strategy": "linear",
         "three_phase": True, "pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0,
         "base_momentum": [0.8, 0.85], "max_momentum": [0.9, 0.95]}, record_momentum=True)
    add("onecycle_adam_cos_three_phase",
        {"kind": "onecycle", "max_lr": [0.01, 0.003], "total_steps": 100, "three_phase": True, "pct_start": 0.4,
         "base_momentum": 0.8, "max_momentum": 0.95}, optimizer=adam, record_momentum=True)
    add("onecycle_adam_linear_no_momentum",
        {"kind": "onecycle", "max_lr": 0.02, "total_steps": 100, "anneal_strategy": "linear",
         "cycle_momentum": False, "pct_start": 0.33}, optimizer=adam, record_momentum=True)
    add("onecycle_epochs_sgd_no_momentum",
        {"kind": "onecycle", "max_lr": [0.2, 0.1], "epochs": 10, "steps_per_epoch": 10, "pct_start": 0.15,
         "div_factor": 5.0, "final_div_factor": 1e3}, optimizer={"type": "sgd", "lrs": LRS}, record_momentum=True)
    add("onecycle_pct_start_zero", {"kind": "onecycle", "max_lr": [0.5, 0.1], "total_steps": 100, "pct_start": 0.0},
        record_momentum=True)

    # step(epoch): the closed forms, mixed with plain steps that continue from them.
    ep = epoch_pattern()
    add("step_epochs", {"kind": "step", "step_size": 5, "gamma": 0.6}, epochs=ep)
    add("multistep_epochs", {"kind": "multistep", "milestones": [7, 20, 20, 50], "gamma": 0.5}, epochs=ep)
    add("cosine_epochs", {"kind": "cosine", "T_max": 25, "eta_min": 0.002}, epochs=ep)
    add("linear_epochs", {"kind": "linear", "start_factor": 0.2, "end_factor": 0.9, "total_iters": 30}, epochs=ep)
    add("onecycle_epochs_form", {"kind": "onecycle", "max_lr": [0.5, 0.1], "total_steps": 100}, epochs=ep,
        record_momentum=True)

    m = plateau_metrics()
    acc = [1.0 - x / 4 for x in m]  # an accuracy-like metric for mode "max"
    add("plateau_min_rel", {"kind": "plateau", "mode": "min", "factor": 0.5, "patience": 3, "threshold": 0.01,
                            "threshold_mode": "rel", "cooldown": 2, "min_lr": [0.001, 0.0005], "eps": 1e-8},
        metrics=m)
    add("plateau_min_abs", {"kind": "plateau", "mode": "min", "factor": 0.3, "patience": 2, "threshold": 0.005,
                            "threshold_mode": "abs", "cooldown": 0, "min_lr": 0.0001}, metrics=m)
    add("plateau_max_rel", {"kind": "plateau", "mode": "max", "factor": 0.1, "patience": 4, "threshold": 1e-3,
                            "threshold_mode": "rel", "cooldown": 3, "min_lr": [0.0, 0.001]}, metrics=acc)
    add("plateau_max_abs_eps", {"kind": "plateau", "mode": "max", "factor": 0.7, "patience": 0, "threshold": 0.0,
                                "threshold_mode": "abs", "cooldown": 1, "min_lr": [0.02, 0.004], "eps": 1e-3},
        metrics=acc)
    add("plateau_defaults", {"kind": "plateau"}, metrics=m)
    return c


def run(case):
    opt = make_optimizer(case["optimizer"])
    if case.get("set_initial_lr"):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    sched = make_schedule(opt, case["schedule"])
    lrs = [[g["lr"] for g in opt.param_groups]]
    moms = [momentum_of(opt, case["optimizer"])]
    for k in range(STEPS):
        opt.step()  # no gradients: only keeps PyTorch's call-order check quiet
        if "metrics" in case:
            sched.step(case["metrics"][k])
        elif "epochs" in case and case["epochs"][k] >= 0:
            sched.step(case["epochs"][k])
        else:
            sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
        moms.append(momentum_of(opt, case["optimizer"]))
    out = dict(case)
    out["lr"] = lrs
    if case.get("record_momentum"):
        out["momentum"] = moms
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # step(epoch) is deprecated in PyTorch; it is tested on purpose

    ref = {"torch_version": torch.__version__, "steps": STEPS, "cases": [run(c) for c in cases()]}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ref, f)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(ref['cases'])} schedules (torch {torch.__version__})")


if __name__ == "__main__":
    main()
