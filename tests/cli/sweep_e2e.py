#!/usr/bin/env python3
"""End-to-end tests of `wanwu sweep` on the tiny generated image folder of cli_e2e.py.

Every expectation is recomputed here from the trials' own files (metrics.jsonl, config.json), not
taken from the sweep's summary: results.csv must agree with them, the printed ranking must follow
from them, successive halving's promotions are recomputed from the rung epochs' metrics, and the
best trial's printed command must reproduce that trial bit for bit.

usage: sweep_e2e.py --wanwu build/bin/wanwu --work DIR CASE
CASE: grid | resume | halving | options | errors
"""
import argparse
import csv
import json
import math
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_e2e import check, comparable, file_hash, lines_in, make_dataset, read_jsonl, render_check, run  # noqa: E402

BASE = ["--model", "cifar_resnet8", "--img-size", "16", "--optimizer", "sgd", "--weight-decay", "1e-4",
        "--warmup-epochs", "0.5", "--augment", "none", "--seed", "3", "--device", "cpu"]


def read_results(sweep):
    with open(os.path.join(sweep, "results.csv")) as f:
        return list(csv.DictReader(f))


def trial_best(metrics, budget=None):
    """(val_acc, -val_loss, epoch) of the first epoch with the highest val_acc within the budget."""
    best = None
    for r in metrics:
        if budget is not None and r["epoch"] > budget:
            continue
        if best is None or r["val_acc"] > best[0]:
            best = (r["val_acc"], -r["val_loss"], r["epoch"])
    return best


def check_results_match_trials(sweep, rows, dims):
    """results.csv against each trial's metrics.jsonl and config.json."""
    for row in rows:
        d = os.path.join(sweep, row["trial"])
        if row["status"] in ("diverged", "oom", "failed"):
            continue
        m = read_jsonl(os.path.join(d, "metrics.jsonl"))
        acc, _, epoch = trial_best(m)
        check(abs(float(row["val_acc"]) - acc) < 1e-6, f"{row['trial']}: val_acc {row['val_acc']} != {acc}")
        check(int(row["best_epoch"]) == epoch, f"{row['trial']}: best_epoch {row['best_epoch']} != {epoch}")
        check(abs(float(row["train_loss"]) - m[-1]["train_loss"]) < 1e-6, f"{row['trial']}: train_loss")
        check(int(row["epochs"]) == len(m), f"{row['trial']}: epochs {row['epochs']} != {len(m)}")
        check(int(row["steps"]) == m[-1]["step"], f"{row['trial']}: steps")
        recipe = json.load(open(os.path.join(d, "config.json")))["recipe"]
        for k in dims:
            key = k.replace("-", "_")
            want = row[k]
            got = recipe[key]
            ok = math.isclose(float(want), float(got), rel_tol=1e-9) if isinstance(got, (int, float)) else want == got
            check(ok, f"{row['trial']}: the trial trained with {key}={got}, the grid says {want}")


def printed_ranking(stdout):
    """Trial ids in the order of the final table."""
    lines = stdout.splitlines()
    start = max(i for i, l in enumerate(lines) if l.startswith("rank "))
    ids = []
    for l in lines[start + 1:]:
        parts = l.split()
        if len(parts) < 2 or not parts[0].isdigit():
            break
        ids.append(parts[1])
    return ids


def case_grid(wanwu, work):
    data = os.path.join(work, "data")
    make_dataset(data)
    sweep = os.path.join(work, "sweep")
    grid = "lr=0.05,1e-5,1e6;batch-size=8,16"
    args = ["sweep", "--data", data, "--out", sweep, "--epochs", "2", "--grid", grid, *BASE]
    p = run(wanwu, *args)
    rows = read_results(sweep)
    check([r["trial"] for r in rows] == [f"trial_{i:03d}" for i in range(6)], "results.csv: one row per trial")
    check(list(rows[0].keys()) == ["trial", "lr", "batch-size", "val_acc", "best_epoch", "train_loss", "epochs",
                                   "steps", "seconds", "status"], f"results.csv header: {list(rows[0].keys())}")
    check([(r["lr"], r["batch-size"]) for r in rows] ==
          [(lr, bs) for lr in ("0.05", "1e-5", "1e6") for bs in ("8", "16")], "the grid's order")
    for r in rows:
        want = "diverged" if r["lr"] == "1e6" else "done"
        check(r["status"] == want, f"{r['trial']} (lr {r['lr']}): status {r['status']}, expected {want}")
    check_results_match_trials(sweep, rows, ["lr", "batch-size"])
    # the printed ranking follows the trials' own metrics
    scores = {}
    for r in rows:
        m = os.path.join(sweep, r["trial"], "metrics.jsonl")
        b = trial_best(read_jsonl(m)) if r["status"] == "done" else None
        scores[r["trial"]] = (b[0], b[1]) if b else (-1, -1e300)
    want = sorted(scores, key=lambda t: (-scores[t][0], -scores[t][1], t))
    got = printed_ranking(p.stdout)
    check(got == want, f"printed ranking {got}, expected {want}")
    check(scores[want[0]][0] > scores[want[3]][0], "lr 0.05 should beat lr 1e-5 on this data")
    # the printed command reproduces the best trial bit for bit
    cmd_line = next(l for l in p.stdout.splitlines() if l.strip().startswith("wanwu train "))
    cmd = shlex.split(cmd_line)[1:]
    out_i = cmd.index("--out")
    cmd[out_i + 1] = os.path.join(work, "best_again")
    run(wanwu, *cmd)
    a = comparable(read_jsonl(os.path.join(work, "best_again", "metrics.jsonl")))
    b = comparable(read_jsonl(os.path.join(sweep, want[0], "metrics.jsonl")))
    check(a == b, "the printed best command does not reproduce the best trial's metrics")
    check(file_hash(os.path.join(work, "best_again", "best.safetensors")) ==
          file_hash(os.path.join(sweep, want[0], "best.safetensors")), "best command: different weights")
    # the report: self-contained, renders, has the charts
    html = open(os.path.join(sweep, "report.html")).read()
    for n in ('id="acc_vs_lr"', 'id="trial_curves"', 'id="results"', "diverged", want[0]):
        check(n in html, f"sweep report.html lacks {n}")
    check("<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', ""),
          "sweep report.html must be self-contained")
    render_check(os.path.join(sweep, "report.html"), ["<svg", 'id="acc_vs_lr"', "trial_000"])
    # the same command again: nothing is retrained
    before = {r["trial"]: os.path.getmtime(os.path.join(sweep, r["trial"], "metrics.jsonl")) for r in rows}
    p2 = run(wanwu, *args)
    check("continuing the sweep" in p2.stdout and "train:" not in p2.stdout, "a finished sweep retrained trials")
    after = {t: os.path.getmtime(os.path.join(sweep, t, "metrics.jsonl")) for t in before}
    check(before == after, "a finished sweep rewrote trial metrics")
    check(read_results(sweep) == rows, "results.csv changed on a no-op rerun")
    # another plan into the same folder is refused
    r = run(wanwu, "sweep", "--data", data, "--out", sweep, "--epochs", "2", "--grid", "lr=0.1", *BASE, expect=2)
    check("different sweep" in r.stderr, f"plan clash message: {r.stderr}")
    print(f"ok: 6 trials, 2 diverged, ranking {got}, best command reproduces {want[0]}")


def wait_for(pred, proc, timeout, what):
    t0 = time.time()
    while not pred():
        if proc.poll() is not None:
            sys.exit(f"FAIL: the sweep ended before {what}:\n{proc.stdout.read() if proc.stdout else ''}")
        if time.time() - t0 > timeout:
            proc.kill()
            sys.exit(f"FAIL: timed out waiting for {what}")
        time.sleep(0.02)


def case_resume(wanwu, work):
    data = os.path.join(work, "data")
    make_dataset(data)
    epochs = 6
    common = ["--data", data, "--epochs", str(epochs), "--batch-size", "16", "--grid", "lr=0.05,0.02,0.01", *BASE]

    # SIGKILL in the middle of the second trial
    sweep = os.path.join(work, "killed")
    proc = subprocess.Popen([wanwu, "sweep", "--out", sweep, *common], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    m1 = os.path.join(sweep, "trial_001", "metrics.jsonl")
    # The epoch's metrics line is written before its checkpoint: wait for both, or a kill between
    # the two leaves nothing to resume from (correctly) and the test would see a fresh start.
    s1 = os.path.join(sweep, "trial_001", "state.safetensors")
    wait_for(lambda: lines_in(m1) >= 1 and os.path.exists(s1), proc, 300, "trial_001's first checkpoint")
    proc.kill()
    proc.wait()
    done1 = lines_in(m1)
    check(done1 < epochs, f"trial_001 finished ({done1} epochs) before it could be killed; the test needs more epochs")
    t0 = os.path.join(sweep, "trial_000")
    kept = {f: (file_hash(os.path.join(t0, f)), os.path.getmtime(os.path.join(t0, f)))
            for f in ("best.safetensors", "last.safetensors", "metrics.jsonl")}
    p = run(wanwu, "sweep", "--out", sweep, *common)
    check("trial trial_000" not in p.stdout and "continuing trial_000" not in p.stdout,
          "the finished trial_000 was rerun")
    check("continuing trial_001" in p.stdout and "resuming" in p.stdout, "trial_001 did not resume")
    for f, v in kept.items():
        check((file_hash(os.path.join(t0, f)), os.path.getmtime(os.path.join(t0, f))) == v,
              f"trial_000/{f} was rewritten on resume")
    rows = read_results(sweep)
    check([r["status"] for r in rows] == ["done"] * 3, f"statuses after resume: {[r['status'] for r in rows]}")
    check_results_match_trials(sweep, rows, ["lr"])
    # the resumed trial equals the same training run uninterrupted
    plan = json.load(open(os.path.join(sweep, "sweep.json")))
    ref = os.path.join(work, "ref")
    run(wanwu, "train", *plan["trials"][1]["args"], "--out", ref)
    check(comparable(read_jsonl(m1)) == comparable(read_jsonl(os.path.join(ref, "metrics.jsonl"))),
          "the resumed trial_001 differs from an uninterrupted run of its command")

    # Ctrl-C: the running trial stops after its step and saves; --resume finishes the sweep
    sweep2 = os.path.join(work, "interrupted")
    proc = subprocess.Popen([wanwu, "sweep", "--out", sweep2, *common], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    m = os.path.join(sweep2, "trial_001", "metrics.jsonl")
    wait_for(lambda: lines_in(m) >= 1, proc, 300, "trial_001's first epoch (SIGINT case)")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    check(proc.returncode == 0, f"SIGINT: exit {proc.returncode}\n{err}")
    check("wanwu sweep --resume" in out, "SIGINT: no message on how to continue")
    check(read_results(sweep2)[2]["status"] == "pending", "SIGINT: the sweep went on after Ctrl-C")
    # runtime flags may come with --resume; they reach every trial run (the CPU ignores these two)
    p = run(wanwu, "sweep", "--resume", sweep2, "--conv-search", "benchmark", "--tf32")
    rows = read_results(sweep2)
    check([r["status"] for r in rows] == ["done"] * 3, "after SIGINT and --resume: not all trials done")
    check(comparable(read_jsonl(m)) == comparable(read_jsonl(os.path.join(ref, "metrics.jsonl"))),
          "trial_001 interrupted by SIGINT and resumed differs from the uninterrupted run")
    print(f"ok: killed at trial_001 epoch {done1}/{epochs}, resumed without rerunning trial_000; SIGINT and --resume")


def case_halving(wanwu, work):
    data = os.path.join(work, "data")
    make_dataset(data)
    sweep = os.path.join(work, "sweep")
    lrs = ["0.1", "0.03", "0.01", "0.001", "1e-4", "1e-5"]
    epochs, eta = 4, 2
    p = run(wanwu, "sweep", "--data", data, "--out", sweep, "--epochs", str(epochs), "--batch-size", "16",
            "--grid", "lr=" + ",".join(lrs), "--halving", "--eta", str(eta), *BASE)
    check("rungs at 1, 2, 4 epochs" in p.stdout, "halving: the rung schedule for 6 trials, 4 epochs, eta 2")
    rows = read_results(sweep)
    metrics = {r["trial"]: read_jsonl(os.path.join(sweep, r["trial"], "metrics.jsonl")) for r in rows}
    # recompute the promotions: rung budgets 1, 2, 4; keep floor(n / eta) each time
    alive = [r["trial"] for r in rows]
    for budget, nxt in ((1, 2), (2, 4)):
        for t in alive:
            check(len(metrics[t]) >= budget, f"{t} did not reach rung budget {budget}")
        keep = max(1, len(alive) // eta)
        ranked = sorted(alive, key=lambda t: (-trial_best(metrics[t], budget)[0], -trial_best(metrics[t], budget)[1], t))
        survivors, dropped = ranked[:keep], ranked[keep:]
        for t in dropped:
            check(len(metrics[t]) == budget, f"{t} should have been pruned at {budget} epochs, has {len(metrics[t])}")
            check(next(r for r in rows if r["trial"] == t)["status"] == "pruned", f"{t} not marked pruned")
        for t in survivors:
            check(len(metrics[t]) >= nxt, f"{t} should have been promoted to {nxt} epochs")
        alive = survivors
    check(len(alive) == 1 and len(metrics[alive[0]]) == epochs, "halving: one trial trains all epochs")
    check_results_match_trials(sweep, rows, ["lr"])
    steps_per_epoch = json.load(open(os.path.join(sweep, "trial_000", "config.json")))["steps_per_epoch"]
    total = sum(int(r["steps"]) for r in rows)
    grid_total = len(rows) * epochs * steps_per_epoch
    check(total == (6 * 1 + 3 * 1 + 1 * 2) * steps_per_epoch, f"halving steps {total}")
    check(total < grid_total, "halving must run fewer steps than the full grid")
    # a promoted trial continues exactly as an uninterrupted run of its command
    plan = json.load(open(os.path.join(sweep, "sweep.json")))
    ref = os.path.join(work, "ref")
    idx = int(alive[0][-3:])
    run(wanwu, "train", *plan["trials"][idx]["args"], "--out", ref)
    check(comparable(metrics[alive[0]]) == comparable(read_jsonl(os.path.join(ref, "metrics.jsonl"))),
          "the paused-and-promoted trial differs from an uninterrupted run")
    print(f"ok: halving ran {total} steps against {grid_total} for the full grid; winner {alive[0]}")


def case_options(wanwu, work):
    data = os.path.join(work, "data")
    make_dataset(data, train_per_class=8, val_per_class=4)
    base = ["--data", data, "--epochs", "1", *BASE]

    def recipes(sweep):
        return [json.load(open(os.path.join(sweep, f"trial_{i:03d}", "config.json")))["recipe"]
                for i in range(len(read_results(sweep)))]

    s = os.path.join(work, "keep")
    run(wanwu, "sweep", "--out", s, "--grid", "batch-size=8,16,32", "--batch-size", "32", "--lr", "0.04",
        "--keep-effective-batch", "--lr-scaling", "linear", *base)
    got = [(r["batch_size"], r["accum_steps"], r["lr"]) for r in recipes(s)]
    check(got == [(8, 4, 0.04), (16, 2, 0.04), (32, 1, 0.04)], f"keep-effective-batch: {got}")
    s = os.path.join(work, "linear")
    run(wanwu, "sweep", "--out", s, "--grid", "batch-size=8,16,32", "--batch-size", "32", "--lr", "0.04",
        "--lr-scaling", "linear", *base)
    got = [(r["batch_size"], r["accum_steps"], r["lr"]) for r in recipes(s)]
    want = [(8, 1, 0.01), (16, 1, 0.02), (32, 1, 0.04)]
    check(all(g[:2] == w[:2] and math.isclose(g[2], w[2], rel_tol=1e-6) for g, w in zip(got, want)),
          f"lr-scaling linear: {got}")
    # random search: log-uniform lr in range, choices from the list, same seed -> same plan
    plans = []
    for name in ("random_a", "random_b"):
        s = os.path.join(work, name)
        run(wanwu, "sweep", "--out", s, "--random", "5", "--grid", "lr=1e-4:1e-1;label-smoothing=0,0.1", *base)
        plans.append([t["values"] for t in json.load(open(os.path.join(s, "sweep.json")))["trials"]])
    check(plans[0] == plans[1], "random search is not reproducible with the same seed")
    lrs = [float(v[0][1]) for v in plans[0]]
    check(len(plans[0]) == 5 and all(1e-4 <= x <= 1e-1 for x in lrs), f"random lrs out of range: {lrs}")
    check(len(set(lrs)) == 5, f"random lrs repeat: {lrs}")
    check(all(v[1][1] in ("0", "0.1") for v in plans[0]), "random choice outside the list")
    rec = recipes(os.path.join(work, "random_a"))
    check([r["label_smoothing"] for r in rec] == [float(v[1][1]) for v in plans[0]],
          "random trials trained with other values")
    check([r["lr"] for r in rec] == [float(v[0][1]) for v in plans[0]], "random trials trained with other lrs")
    # a switch as a dimension
    s = os.path.join(work, "switch")
    run(wanwu, "sweep", "--out", s, "--grid", "freeze-backbone=on,off", "--lr", "0.05", *base)
    check([r["freeze_backbone"] for r in recipes(s)] == [True, False], "switch dimension")
    # out of memory: a 1024-pixel trial under a 3 GB address-space limit is recorded, the next one runs
    s = os.path.join(work, "oom")
    limit = 3 << 30
    i = BASE.index("--img-size")
    no_size = BASE[:i] + BASE[i + 2:]
    p = subprocess.run([wanwu, "sweep", "--out", s, "--grid", "img-size=1024,16", "--batch-size", "16", "--lr", "0.05",
                        "--data", data, "--epochs", "1", *no_size],
                       capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    check(p.returncode == 0, f"oom sweep exited {p.returncode}: {p.stderr[-800:]}")
    st = [r["status"] for r in read_results(s)]
    check(st == ["oom", "done"], f"out-of-memory trial: statuses {st}")
    err = json.load(open(os.path.join(s, "state.json")))["failed"]["trial_000"]["error"]
    check("memory" in err, f"the oom trial's recorded error: {err}")
    print("ok: keep-effective-batch, linear lr scaling, random search, switch dimensions, out-of-memory trial")


def case_errors(wanwu, work):
    data = os.path.join(work, "data")
    make_dataset(data, train_per_class=4, val_per_class=2)
    out = os.path.join(work, "s")
    base = ["sweep", "--data", data, "--out", out, *BASE]
    cases = [
        (["--grid", "lr"], "NAME=VALUES"),
        (["--grid", "colour=1,2"], "colour"),
        (["--grid", "data=a,b"], "data"),
        (["--grid", "lr=1e-4:1e-2"], "--random"),
        (["--grid", "lr=0.1", "--lr", "0.2"], "--lr"),
        (["--grid", "lr=0.1,0.2", "--eta", "2"], "--halving"),
        (["--grid", "lr=0.1", "--keep-effective-batch"], "batch-size dimension"),
        (["--grid", "batch-size=24", "--batch-size", "32", "--keep-effective-batch"], "24"),
        (["--grid", "scheduler=cosine,foo"], "foo"),
        (["--grid", "lr=0.1,"], "empty"),
        (["--grid", "nesterov=maybe"], "on/off"),
        (["--grid", "lr=0.1", "--random", "0"], "--random"),
    ]
    for extra, needle in cases:
        r = run(wanwu, *base, *extra, expect=2)
        msg = r.stderr.strip()
        check(len(msg.splitlines()) == 1 and needle in msg, f"{extra}: stderr should name '{needle}': {msg!r}")
        check(not os.path.exists(out), f"{extra}: a refused sweep created its folder")
    r = run(wanwu, "sweep", "--resume", os.path.join(work, "nothing"), expect=1)
    check("sweep.json" in r.stderr, f"--resume of a missing sweep: {r.stderr}")
    r = run(wanwu, "sweep", "--resume", out, "--lr", "0.1", expect=2)
    check("--lr" in r.stderr, "--resume with a recipe flag must name it")
    print(f"ok: {len(cases) + 2} bad usages refused with one clear line")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wanwu", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("case", choices=["grid", "resume", "halving", "options", "errors"])
    a = ap.parse_args()
    work = os.path.join(a.work, "sweep_" + a.case)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    globals()["case_" + a.case](os.path.abspath(a.wanwu), work)


if __name__ == "__main__":
    main()
