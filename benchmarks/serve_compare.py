#!/usr/bin/env python3
"""`wanwu serve` against the Flask + PyTorch server of the tutorials (benchmarks/flask_server.py),
serving ResNet-50 on the CPU: requests/s and p50/p99 latency of POST /predict at 1, 8 and 32
concurrent connections, measured by wrk on loopback, with wanwu batching (--max-batch 32) and
without (--max-batch 1).

Both servers load the same weights (torchvision's resnet50 with seeded random weights: nothing can
download ImageNet weights here, and the timing does not depend on the values), get the same
multipart upload (a 451x300 JPEG photograph from scikit-image), preprocess it the same way
(Resize 256, CenterCrop 224, Normalize) and use the same number of threads for the model. The
script first checks that both answer the same class for the photograph, with probabilities
within 1e-2.

The servers run one at a time in turns (wanwu 32, wanwu 1, Flask), --rounds times at each
concurrency, so that a change in what else the machine runs touches all of them alike: on a shared
two-core machine one server's throughput moved by up to 30% between runs a minute apart, more than
the difference being measured. Each row pools its server's rounds, and the summary lists the
throughput ratio of every round, which shows how far the noise moves it. Between runs the script
waits until the server has finished the requests wrk left behind (its CPU time stops growing).

Where wanwu's time goes, from its GET /metrics before and after each run: the mean images per
forward pass, the forward pass's milliseconds per image, and its share of the run's wall time (the
forward passes of requests wrk left in flight count too, so the share can pass 100% slightly). A
share near 100% means the server is bound by the model, not by HTTP, decoding or batching.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 /usr/bin/python3 \\
        benchmarks/serve_compare.py --wanwu build/bin/wanwu [--seconds 10] [--rounds 3] [--conns 1,8,32] \\
        [--markdown out.md]
"""
import argparse
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cli"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
from convert_weights import save_safetensors  # noqa: E402
from serve_e2e import metric, request, wrk_run  # noqa: E402

# The multipart body a browser form sends: field `image`, a JPEG file.
MULTIPART_LUA = r"""
local f = assert(io.open(os.getenv("WANWU_IMAGE"), "rb"))
local img = f:read("*all")
f:close()
local b = "----wanwu-bench-boundary"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. b
wrk.body = "--" .. b .. "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n" ..
           "Content-Type: image/jpeg\r\n\r\n" .. img .. "\r\n--" .. b .. "--\r\n"
"""


def make_fixtures(work):
    import numpy as np
    import skimage.data
    import torch
    import torchvision
    from PIL import Image
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    pth = os.path.join(work, "resnet50.pth")
    torch.save(model.state_dict(), pth)
    ckpt = os.path.join(work, "resnet50.safetensors")
    save_safetensors(ckpt, model.state_dict(), {"wanwu.model": json.dumps("resnet50"),
                                "wanwu.preprocess": json.dumps({"img_size": 224, "resize": 256,
                                                                "mean": [0.485, 0.456, 0.406],
                                                                "std": [0.229, 0.224, 0.225]})})
    photo = os.path.join(work, "chelsea.jpg")
    Image.fromarray(np.asarray(skimage.data.chelsea())).save(photo, quality=90)
    return pth, ckpt, photo


class Proc:
    """A server process; ready once GET /health answers."""

    def __init__(self, name, argv, port, work, env):
        self.name, self.port = name, port
        self.err_path = os.path.join(work, name.replace(" ", "_") + ".log")
        self.log = open(self.err_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{name} exited {self.proc.returncode} at start-up:\n{open(self.err_path).read()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                return
            except OSError:
                time.sleep(0.3)
        sys.exit(f"{name} did not answer GET /health within 180 s:\n{open(self.err_path).read()}")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024

    def settle(self, timeout=300):
        """Waits until the requests wrk left in flight are done: no CPU time used for 0.5 s."""
        deadline = time.monotonic() + timeout
        last = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.cpu_seconds()
            if now - last < 0.02:
                return
            last = now
        sys.exit(f"{self.name} still busy {timeout} s after the load stopped")

    def metrics(self, names):
        """{name: value} of the named counters from GET /metrics (wanwu only)."""
        text = request(self.port, "GET", "/metrics")[2]
        return {n: metric(text, n) for n in names}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_photo(port, photo):
    b = "----wanwu-bench-boundary"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + open(photo, "rb").read() + f"\r\n--{b}--\r\n".encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    return json.loads(urllib.request.urlopen(req, timeout=120).read())


def combine(name, conns, runs):
    """One table row from a server's rounds at one concurrency: requests/s over all rounds (their
    requests over their time), the median of the rounds' p50 and p99 (wrk reports percentiles, not
    the latencies, so rounds cannot be pooled exactly), errors summed, and for wanwu the images per
    forward pass and the forward pass's time per image and share of the wall time over all rounds."""
    reqs = sum(r["requests"] for r in runs)
    row = {"server": name, "conns": conns, "requests": reqs, "errors": sum(r["errors"] for r in runs),
           "rps": reqs / sum(r["requests"] / r["rps"] for r in runs if r["rps"] > 0),
           "p50_ms": statistics.median(r["p50_ms"] for r in runs), "p99_ms": statistics.median(r["p99_ms"] for r in runs)}
    if "wanwu_batch_size_sum" in runs[0]:
        images = sum(r["wanwu_batch_size_sum"] for r in runs)
        passes = sum(r["wanwu_batch_size_count"] for r in runs)
        forward = sum(r["wanwu_inference_seconds_sum"] for r in runs)
        row.update(mean_batch=images / max(passes, 1), forward_ms=1e3 * forward / max(images, 1),
                   forward_share=forward / sum(r["wall"] for r in runs))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wanwu", required=True, help="the wanwu binary")
    ap.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of each server per concurrency, interleaved (wanwu 32, wanwu 1, Flask, again ...)")
    ap.add_argument("--conns", default="1,8,32", help="concurrencies, comma-separated")
    ap.add_argument("--threads", type=int, default=2, help="threads for the model, both servers")
    ap.add_argument("--work", help="folder for the fixtures and logs (default: a temporary one)")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("serve_compare.py needs wrk (Debian package wrk)")
    conns = [int(c) for c in args.conns.split(",")]
    work = args.work or tempfile.mkdtemp(prefix="serve-compare-")
    os.makedirs(work, exist_ok=True)
    pth, ckpt, photo = make_fixtures(work)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}

    servers = []
    for batch in (32, 1):
        port = free_port()
        servers.append(Proc(f"wanwu serve --max-batch {batch}",
                            [args.wanwu, "serve", "--checkpoint", ckpt, "--device", "cpu", "--port", str(port),
                             "--max-batch", str(batch), "--timeout-s", "120", "--queue", "1024"], port, work, env))
    port = free_port()
    servers.append(Proc("Flask + PyTorch", [sys.executable, os.path.join(HERE, "flask_server.py"), "--weights", pth,
                                            "--port", str(port), "--threads", str(args.threads)], port, work, env))
    try:
        answers = {s.name: post_photo(s.port, photo) for s in servers}
        for name, a in answers.items():
            print(f"{name}: class {a['class_id']} prob {a['prob']:.6f}")
        ref = answers["Flask + PyTorch"]
        for name, a in answers.items():
            # Not bit-equal: the JPEG decoders differ (stb_image, libjpeg-turbo under PIL) by a level
            # here and there, which moves the probability in the third decimal.
            if a["class_id"] != ref["class_id"] or abs(a["prob"] - ref["prob"]) > 1e-2:
                sys.exit(f"{name} answers {a}, Flask + PyTorch {ref}: the servers do not compute the same thing")
        for s in servers:  # warm-up: first-touch memory, thread start-up, PyTorch's first passes
            wrk_run(s.port, 8, 5, photo, work, MULTIPART_LUA, timeout_s=120)
            s.settle()
        rows, rounds = [], {}
        counters = ("wanwu_batch_size_sum", "wanwu_batch_size_count", "wanwu_inference_seconds_sum")
        for c in conns:
            runs = {s.name: [] for s in servers}
            for k in range(args.rounds):
                for s in servers:
                    wanwu = s.name.startswith("wanwu")
                    before, t0 = s.metrics(counters) if wanwu else None, time.monotonic()
                    r = wrk_run(s.port, c, args.seconds, photo, work, MULTIPART_LUA, timeout_s=120)
                    r["wall"] = time.monotonic() - t0
                    s.settle()
                    if wanwu:
                        after = s.metrics(counters)
                        r.update({n: after[n] - before[n] for n in counters})
                    runs[s.name].append(r)
                    print(f"{s.name:26s} connections {c:2d} round {k + 1}: {r['rps']:7.2f} req/s  p50 "
                          f"{r['p50_ms']:8.1f} ms  p99 {r['p99_ms']:8.1f} ms  requests {r['requests']}  errors "
                          f"{r['errors']}", flush=True)
            for s in servers:
                rows.append(combine(s.name, c, runs[s.name]))
            rounds[c] = runs
        peaks = {s.name: s.peak_rss_mib() for s in servers}
    finally:
        for s in servers:
            s.stop()

    lines = ["| server | connections | requests/s | p50 ms | p99 ms | requests | errors | images per pass | "
             "forward ms per image | forward share of wall time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        extra = (f"{r['mean_batch']:.2f} | {r['forward_ms']:.1f} | {100 * r['forward_share']:.0f}%"
                 if "mean_batch" in r else "- | - | -")
        lines.append(f"| {r['server']} | {r['conns']} | {r['rps']:.2f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
                     f"{r['requests']} | {r['errors']} | {extra} |")
    lines.append("")
    by = {(r["server"], r["conns"]): r for r in rows}
    for c in conns:
        w, w1, fl = by[("wanwu serve --max-batch 32", c)], by[("wanwu serve --max-batch 1", c)], by[("Flask + PyTorch", c)]
        per_round = [a["rps"] / b["rps"] for a, b in zip(rounds[c]["wanwu serve --max-batch 32"],
                                                          rounds[c]["Flask + PyTorch"])]
        lines.append(f"- {c} connections: wanwu (batching) / Flask throughput {w['rps'] / fl['rps']:.2f}x "
                     f"(per round: {', '.join(f'{x:.2f}x' for x in per_round)}), "
                     f"p99 {w['p99_ms']:.0f} vs {fl['p99_ms']:.0f} ms; wanwu without batching "
                     f"{w1['rps'] / fl['rps']:.2f}x, p99 {w1['p99_ms']:.0f} ms")
    lines.append("- peak resident memory: " + ", ".join(f"{n} {m:.0f} MiB" for n, m in peaks.items()))
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
