#!/usr/bin/env python3
"""End-to-end tests of `wanwu serve` on loopback, against a checkpoint trained here on a tiny
generated image folder (cli_e2e.py's). Standard library only; the page case drives Debian's
headless Chromium (headless.py) and exits 77 (skipped) without it; the load case uses wrk when
installed and a Python load generator otherwise.

Expected answers come from elsewhere than the server: probabilities from `wanwu predict --json`
(the program's other command, run on the same files), statuses and error bodies from the command's
contract (docs/cli.md), accepted-request counts from the client's own tally.

usage: serve_e2e.py --wanwu build/bin/wanwu --work DIR CASE
CASE: predict | page | bad_input | load | shutdown
"""
import argparse
import base64
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_e2e import CLASSES, TRAIN_FLAGS, check, make_dataset, png_bytes, run  # noqa: E402

SKIP = 77
# A 24x20 baseline JPEG (PIL, quality 85), so that JPEG uploads need no encoder here.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwXExQaFRERGCEYGh0d"
    "Hx8fExciJCIeJBweHx7/2wBDAQUFBQcGBw4ICA4eFBEUHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4e"
    "Hh4eHh4eHh7/wAARCAAUABgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF"
    "BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW"
    "V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi"
    "4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC"
    "AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVm"
    "Z2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq"
    "8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDnYbHHCrz61bhsuwHHc1ThsewHHc1cissjphRXk1J/3v6/rdn7VhJ/3hmoWWRFxhRn+lFG"
    "oWWfKJXAGf6UUQmuVe8vmv8AgkYqf76XvdvyRRjhTIXHFW4oULYxwKKK0qvV+qN8I3oMv4ULRZHr/SiiitsNrDXuzPFt+2fy/JH/"
    "2Q==")
PROB_TOL = 1e-5  # the contract: same probabilities as `wanwu predict`, to 1e-5


# ---- the server process ----
class Server:
    """`wanwu serve --port 0 ...`; the port is read from its first stdout line."""

    def __init__(self, wanwu, ckpt, work, *flags, name="server", env=None):
        self.err_path = os.path.join(work, name + ".stderr")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([wanwu, "serve", "--checkpoint", ckpt, "--port", "0", "--device", "cpu", *flags],
                                     stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=None if env is None else {**os.environ, **env})
        line = [None]
        t = threading.Thread(target=lambda: line.__setitem__(0, self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(60)
        m = re.match(r"serving on http://127\.0\.0\.1:(\d+)$", (line[0] or "").strip())
        if not m:
            self.proc.kill()
            sys.exit(f"FAIL: wanwu serve did not print 'serving on http://127.0.0.1:PORT'; got {line[0]!r}\n"
                     f"stderr:\n{self.stderr()}")
        self.port = int(m.group(1))

    def rss(self):
        """Resident memory of the server process, in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        sys.exit("FAIL: no VmRSS in /proc/PID/status")

    def stderr(self):
        self.err.flush()
        return open(self.err_path).read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            sys.exit(f"FAIL: wanwu serve did not exit within {timeout} s of {signal.Signals(sig).name}")
        self.err.close()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def request(port, method, path, body=None, headers=None, timeout=30):
    """(status, headers dict with lower-case names, parsed JSON or text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("content-type", "").startswith("application/json"):
            return r.status, hdrs, json.loads(data)
        return r.status, hdrs, data.decode(errors="replace")
    finally:
        c.close()


def multipart(fields):
    """fields: [(name, filename, content_type, bytes)] -> (body, content type)."""
    boundary = "wanwu%016x" % random.getrandbits(64)
    out = b""
    for name, filename, ctype, data in fields:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def post_multipart(port, data, topk=None, field="image"):
    body, ctype = multipart([(field, "x.png", "image/png", data)])
    q = f"?topk={topk}" if topk is not None else ""
    return request(port, "POST", "/predict" + q, body, {"Content-Type": ctype})


def post_raw(port, data, ctype="image/png", topk=None):
    q = f"?topk={topk}" if topk is not None else ""
    return request(port, "POST", "/predict" + q, data, {"Content-Type": ctype})


def expect_error(resp, status, needle, what):
    st, hdrs, body = resp
    check(st == status, f"{what}: status {st}, expected {status}; body {body!r}")
    check(hdrs.get("content-type", "").startswith("application/json") and isinstance(body, dict) and
          isinstance(body.get("error"), str) and body["error"],
          f"{what}: error body is not JSON {{\"error\": ...}}: {body!r}")
    check(needle.lower() in body["error"].lower(), f"{what}: error {body['error']!r} does not mention {needle!r}")
    return body


# ---- fixtures ----
def train_checkpoint(wanwu, work):
    data = os.path.join(work, "data")
    make_dataset(data, train_per_class=16, val_per_class=4)
    out = os.path.join(work, "run")
    run(wanwu, "train", "--data", data, "--out", out, "--epochs", "1", "--augment", "none", *TRAIN_FLAGS)
    return data, os.path.join(out, "last.safetensors")


def test_images(data, work):
    """One validation image per class, a larger non-square PNG (exercises resize and crop) and a JPEG."""
    imgs = [os.path.join(data, "val", c, "000.png") for c in CLASSES]
    rng = random.Random(5)
    w, h = 40, 26
    big = os.path.join(work, "big.png")
    with open(big, "wb") as f:
        f.write(png_bytes(w, h, [rng.randint(0, 255) for _ in range(w * h * 3)]))
    jpg = os.path.join(work, "photo.jpg")
    with open(jpg, "wb") as f:
        f.write(JPEG)
    return imgs + [big, jpg]


def predict_reference(wanwu, ckpt, paths, k):
    lines = run(wanwu, "predict", "--checkpoint", ckpt, "--json", "--topk", str(k), "--device", "cpu",
                *paths).stdout.splitlines()
    objs = [json.loads(l) for l in lines if l.strip()]
    check(len(objs) == len(paths), f"wanwu predict printed {len(objs)} objects for {len(paths)} images")
    return {o["image"]: o["topk"] for o in objs}


def same_answer(got, ref, what):
    """got: the server's JSON; ref: predict's topk list."""
    check(isinstance(got, dict) and "topk" in got, f"{what}: answer {got!r}")
    top = got["topk"]
    check([t["class_id"] for t in top] == [t["class_id"] for t in ref],
          f"{what}: classes {[t['class_id'] for t in top]} != predict's {[t['class_id'] for t in ref]}")
    for a, b in zip(top, ref):
        check(a["label"] == b["label"], f"{what}: label {a['label']!r} != {b['label']!r}")
        check(abs(a["prob"] - b["prob"]) <= PROB_TOL,
              f"{what}: class {a['class_id']} prob {a['prob']} vs predict's {b['prob']} (tolerance {PROB_TOL})")
    check(got["class_id"] == top[0]["class_id"] and got["label"] == top[0]["label"] and got["prob"] == top[0]["prob"],
          f"{what}: top-level class_id/label/prob are not the first of topk: {got!r}")


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r" ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


# ---- cases ----
def case_predict(wanwu, work):
    data, ckpt = train_checkpoint(wanwu, work)
    paths = test_images(data, work)
    ref = predict_reference(wanwu, ckpt, paths, 4)
    ref2 = predict_reference(wanwu, ckpt, paths[:1], 2)
    handlers = 8
    with Server(wanwu, ckpt, work, "--threads", str(handlers), env={"OMP_NUM_THREADS": "2"}) as s:
        st, _, h = request(s.port, "GET", "/health")
        check(st == 200 and h == {"status": "ok", "model": "cifar_resnet8", "classes": len(CLASSES)},
              f"/health: {st} {h}")
        for p in paths:
            raw = open(p, "rb").read()
            name = os.path.basename(p)
            ctype = "image/jpeg" if p.endswith(".jpg") else "image/png"
            for how, resp in (("multipart", post_multipart(s.port, raw, topk=4)),
                              ("raw " + ctype, post_raw(s.port, raw, ctype, topk=4)),
                              ("raw octet-stream", post_raw(s.port, raw, "application/octet-stream", topk=4))):
                check(resp[0] == 200, f"{name} {how}: status {resp[0]} {resp[2]}")
                same_answer(resp[2], ref[p], f"{name} {how}")
        # default topk (5, capped at the 4 classes) and ?topk=2
        st, _, j = post_raw(s.port, open(paths[0], "rb").read())
        check(st == 200 and len(j["topk"]) == len(CLASSES), f"default topk: {st} {j}")
        st, _, j = post_raw(s.port, open(paths[0], "rb").read(), topk=2)
        check(st == 200, f"?topk=2: {st} {j}")
        same_answer(j, ref2[paths[0]], "?topk=2")
        # concurrent requests are batched and still get their own answers
        results = {}

        def one(i, p):
            results[i] = post_multipart(s.port, open(p, "rb").read(), topk=4)

        threads = [threading.Thread(target=one, args=(i, paths[i % len(paths)])) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, r in results.items():
            check(r[0] == 200, f"concurrent request {i}: {r[0]} {r[2]}")
            same_answer(r[2], ref[paths[i % len(paths)]], f"concurrent request {i}")
        # The model runs on the thread that loaded it, so the process has one OpenMP pool (1 worker
        # with OMP_NUM_THREADS=2): the handlers, the main thread (model), the HTTP thread, the signal
        # watcher and that worker. A second pool would make every parallel region wake its workers
        # from sleep (serve_batcher.hpp).
        tasks = len(os.listdir(f"/proc/{s.proc.pid}/task"))
        check(tasks <= handlers + 4, f"wanwu serve runs {tasks} threads, expected at most {handlers + 4} "
              f"({handlers} handlers, main, HTTP, signal watcher, one OpenMP worker): a second OpenMP pool?")
        st, hdrs, page = request(s.port, "GET", "/")
        check(st == 200 and hdrs["content-type"].startswith("text/html") and 'id="result"' in page and
              'id="file"' in page, f"GET /: {st} {hdrs}")
        check("http://" not in page and "https://" not in page, "GET / must be self-contained (no external URLs)")
        st, hdrs, text = request(s.port, "GET", "/metrics")
        check(st == 200 and hdrs["content-type"].startswith("text/plain"), f"/metrics: {st} {hdrs}")
        n_ok = 3 * len(paths) + 2 + 24
        got = metric(text, 'wanwu_requests_total{path="/predict",code="200"}')
        check(got == n_ok, f"/metrics counts {got} answered predictions, the test made {n_ok}")
        check(metric(text, "wanwu_batch_size_count") is not None and metric(text, "wanwu_batch_size_sum") == n_ok,
              "wanwu_batch_size_sum must be the number of images run")
        for name in ('wanwu_errors_total{kind="bad_image"}', 'wanwu_request_latency_seconds_count',
                     'wanwu_inference_seconds_count', 'wanwu_batch_size_bucket{le="+Inf"}'):
            check(metric(text, name) is not None, f"/metrics lacks {name}")
        rc = s.stop()
        check(rc == 0, f"wanwu serve exited {rc} after SIGTERM")
    print(f"ok: {len(paths)} images x 3 upload forms + 24 concurrent equal `wanwu predict` to {PROB_TOL}")


def case_page(wanwu, work):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from headless import Browser, find_chromium
    if find_chromium() is None:
        print("skipped: no Chromium (apt-get install chromium-headless-shell)")
        sys.exit(SKIP)
    data, ckpt = train_checkpoint(wanwu, work)
    img = os.path.join(data, "val", "red", "000.png")
    ref = predict_reference(wanwu, ckpt, [img], 3)[img]
    with Server(wanwu, ckpt, work) as s, Browser() as b:
        page = b.page()
        page.navigate(f"http://127.0.0.1:{s.port}/")
        page.wait_for("document.getElementById('model').textContent.includes('cifar_resnet8')")
        page.set_file_input("#file", img)
        page.evaluate("document.getElementById('topk').value = '3'")
        page.evaluate("document.getElementById('go').click()")
        state = page.wait_for("['done','error'].includes(document.getElementById('result').dataset.state) && "
                              "document.getElementById('result').dataset.state")
        text = page.evaluate("document.getElementById('result').innerText")
        check(state == "done", f"the page shows an error: {text!r}")
        rows = page.evaluate("[...document.querySelectorAll('#result tr.row')].map(r => "
                             "[r.querySelector('.label').textContent, r.querySelector('.p').textContent])")
        want = [[t["label"], f"{100 * t['prob']:.2f}%"] for t in ref]
        check(rows == want, f"the page shows {rows}, `wanwu predict` says {want}")
        shot = page.screenshot(os.path.join(work, "page.png"))
        check(os.path.getsize(shot) > 1000, "screenshot is empty")
        check(not page.errors, f"JavaScript errors on the page: {page.errors}")
        check(s.stop() == 0, "wanwu serve did not exit 0")
    print(f"ok: the upload page shows {rows}")


def raw_exchange(port, payload, wait_s=10, pause_after=None, pause_s=0):
    """Sends bytes on a fresh connection (optionally pausing mid-way) and returns what comes back
    until the server closes or wait_s passes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait_s)
    try:
        if pause_after is None:
            sock.sendall(payload)
        else:
            sock.sendall(payload[:pause_after])
            time.sleep(pause_s)
            try:
                sock.sendall(payload[pause_after:])
            except OSError:
                pass
        out = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, body = out.split(b"\r\n\r\n", 1)
                m = re.search(rb"content-length: *(\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    break
        return out
    finally:
        sock.close()


def parse_raw(out, what):
    """The first response in `out` (a client that gave up mid-body may get a second one: the server
    reads its late bytes as the next request on the kept-alive connection)."""
    check(out.startswith(b"HTTP/1.1 "), f"{what}: no HTTP response, got {out[:200]!r}")
    head, body = out.split(b"\r\n\r\n", 1)
    m = re.search(rb"content-length: *(\d+)", head, re.I)
    if m:
        body = body[:int(m.group(1))]
    status = int(head.split()[1])
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, v = line.split(b":", 1)
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body.decode(errors="replace")
    return status, hdrs, parsed


def case_bad_input(wanwu, work):
    # bad usage: exit 2 / 1 with one line naming the flag or file (the contract)
    check("--max-batch" in run(wanwu, "serve", "--help").stdout, "serve --help lacks --max-batch")
    for args, code, needle in ((["--port", "0"], 2, "--checkpoint is required"),
                               (["--checkpoint", "x", "--max-batch", "0"], 2, "--max-batch must be >= 1"),
                               (["--checkpoint", "x", "--port", "70000"], 2, "--port must be <= 65535"),
                               (["--checkpoint", "x", "--timeout-s", "soon"], 2, "--timeout-s expects a number"),
                               (["--checkpoint", os.path.join(work, "missing.safetensors")], 1, "does not exist")):
        err = run(wanwu, "serve", *args, expect=code).stderr
        check(needle in err and len(err.strip().splitlines()) == 1, f"serve {args}: stderr {err!r}")
    data, ckpt = train_checkpoint(wanwu, work)
    good = open(os.path.join(data, "val", "green", "000.png"), "rb").read()
    ref = predict_reference(wanwu, ckpt, [os.path.join(data, "val", "green", "000.png")], 4)
    ref = next(iter(ref.values()))
    bomb = bytearray(good)
    bomb[16:24] = (100000).to_bytes(4, "big") * 2  # IHDR width, height; stb ignores the CRC
    big_header = bytearray(good)
    big_header[16:24] = (2000).to_bytes(4, "big") * 2  # 4 Mpixel: under stb's limits, over --max-pixels
    huge = bytes(50 << 20)
    # 300000x1 pixels decode within any limit, but resizing the shorter side to the model's
    # preprocessing size would make billions (a few hundred bytes of PNG)
    strip = png_bytes(300000, 1, bytes(3 * 300000))
    cases = [
        ("empty body", lambda p: post_raw(p, b""), 400, "empty"),
        ("empty multipart field", lambda p: post_multipart(p, b""), 400, "empty"),
        ("missing field", lambda p: post_multipart(p, good, field="file"), 400, "no field 'image'"),
        ("text file", lambda p: post_multipart(p, b"hello, this is not an image\n"), 422, "not a supported image"),
        ("text as image/png", lambda p: post_raw(p, b"hello\n"), 422, "not a supported image"),
        ("truncated JPEG", lambda p: post_raw(p, JPEG[:-120], "image/jpeg"), 422, "truncated JPEG"),
        ("truncated PNG", lambda p: post_raw(p, good[:len(good) // 2]), 422, "PNG"),
        ("PNG declaring 100000x100000", lambda p: post_raw(p, bytes(bomb)), 413, "too large"),
        ("PNG over --max-pixels", lambda p: post_raw(p, bytes(big_header)), 413, "--max-pixels"),
        ("50 MB body", lambda p: post_raw(p, huge, "application/octet-stream"), 413, "--max-upload-mb"),
        ("300000x1 PNG (a resize bomb)", lambda p: post_raw(p, strip), 413, "over the limit"),
        ("wrong content-type", lambda p: post_raw(p, good, "text/plain"), 415, "Content-Type"),
        ("form-urlencoded", lambda p: post_raw(p, b"image=abc", "application/x-www-form-urlencoded"), 415,
         "Content-Type"),
        ("topk=0", lambda p: post_raw(p, good, topk=0), 400, "topk"),
        ("topk=abc", lambda p: post_raw(p, good, topk="abc"), 400, "topk"),
        ("unknown path", lambda p: request(p, "GET", "/etc/passwd"), 404, "no such page"),
        ("path traversal", lambda p: request(p, "GET", "/../../etc/passwd"), 404, "no such page"),
        ("GET /predict", lambda p: request(p, "GET", "/predict"), 405, "POST"),
    ]
    with Server(wanwu, ckpt, work, "--timeout-s", "1", "--max-pixels", "1000000") as s:
        def still_serves(after):
            st, _, j = post_raw(s.port, good, topk=4)
            check(st == 200, f"after {after}: a good request got {st} {j}")
            same_answer(j, ref, f"good request after {after}")

        for what, send, status, needle in cases:
            expect_error(send(s.port), status, needle, what)
            still_serves(what)
        # a client that stops sending its body: 408 after --timeout-s, as JSON
        body, ctype = multipart([("image", "x.png", "image/png", good)])
        req = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
        t0 = time.monotonic()
        out = raw_exchange(s.port, req, wait_s=10, pause_after=len(req) - len(body) + 40, pause_s=3)
        st, hdrs, j = parse_raw(out, "slow body")
        check(st == 408 and isinstance(j, dict) and "--timeout-s" in j.get("error", ""), f"slow body: {st} {j}")
        check(time.monotonic() - t0 < 6, "slow body: the server held the connection far past --timeout-s")
        still_serves("a slow body")
        # a client that stops inside its headers: 400 after --timeout-s (httplib cannot tell a
        # stalled header from a malformed one), as JSON
        t0 = time.monotonic()
        out = raw_exchange(s.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty", wait_s=10)
        st, _, j = parse_raw(out, "stalled headers")
        check(st == 400 and isinstance(j, dict) and "--timeout-s" in j.get("error", ""), f"stalled headers: {st} {j}")
        check(time.monotonic() - t0 < 6, "stalled headers: the server held the connection far past --timeout-s")
        still_serves("stalled headers")
        # a malformed request line
        st, _, j = parse_raw(raw_exchange(s.port, b"BLAH\r\n\r\n"), "malformed request")
        check(st == 400 and isinstance(j, dict) and "error" in j, f"malformed request: {st} {j}")
        still_serves("a malformed request")
        _, _, text = request(s.port, "GET", "/metrics")
        for kind, n in (("empty_body", 2), ("missing_field", 1), ("bad_image", 4), ("too_many_pixels", 3),
                        ("payload_too_large", 1), ("unsupported_media_type", 2), ("timeout", 1),
                        ("not_found", 2), ("method_not_allowed", 1)):
            got = metric(text, f'wanwu_errors_total{{kind="{kind}"}}')
            check(got == n, f"/metrics: errors of kind {kind}: {got}, expected {n}")
        check(s.stop() == 0, "wanwu serve did not exit 0")

    # a full queue: 64 requests at once at a server that takes one image per batch and queues one
    with Server(wanwu, ckpt, work, "--queue", "1", "--max-batch", "1", name="queue") as s:
        req = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(good)}\r\n"
               "Connection: close\r\n\r\n").encode() + good
        statuses = []
        for attempt in range(5):
            socks = [socket.create_connection(("127.0.0.1", s.port), timeout=30) for _ in range(64)]
            for k in socks:
                k.sendall(req)
            outs = []
            for k in socks:
                out = b""
                while True:
                    chunk = k.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                k.close()
                outs.append(parse_raw(out, "burst"))
            statuses = [o[0] for o in outs]
            check(set(statuses) <= {200, 503}, f"burst statuses {sorted(set(statuses))}")
            for st, hdrs, j in outs:
                if st == 503:
                    check(hdrs.get("retry-after") == "1" and "--queue" in j.get("error", ""), f"503 answer {hdrs} {j}")
            if 503 in statuses:
                break
        check(503 in statuses, "64 simultaneous requests never filled a queue of 1")
        st, _, j = post_raw(s.port, good, topk=4)
        check(st == 200, f"after the burst: {st} {j}")
        check(s.stop() == 0, "wanwu serve did not exit 0")
    print(f"ok: {len(cases) + 3} kinds of bad input answered as documented; queue full -> 503 "
          f"({statuses.count(503)} of 64)")


# ---- load ----
WRK_LUA = """
local f = assert(io.open(os.getenv("WANWU_IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "image/png"
"""


def wrk_run(port, conns, seconds, image, work, script=WRK_LUA, timeout_s=10):
    """One wrk run posting `image` (the body `script` builds from $WANWU_IMAGE) to /predict."""
    lua = os.path.join(work, "post.lua")
    with open(lua, "w") as f:
        f.write(script)
    p = subprocess.run(["wrk", "-t", str(min(2, conns)), "-c", str(conns), "-d", f"{max(1, round(seconds))}s", "--latency",
                        "--timeout", f"{timeout_s}s", "-s", lua, f"http://127.0.0.1:{port}/predict"],
                       capture_output=True, text=True, env={**os.environ, "WANWU_IMAGE": image},
                       timeout=seconds + timeout_s + 60)
    out = p.stdout
    check(p.returncode == 0, f"wrk failed: {p.stderr}\n{out}")

    def ms(tok):
        v = float(re.match(r"([0-9.]+)", tok).group(1))
        unit = tok[len(re.match(r"[0-9.]+", tok).group(0)):]
        return v * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[unit]

    pct = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    check("50" in pct and "99" in pct and "requests in" in out, f"cannot read wrk's output:\n{out}")
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(x) for x in m.groups()) if m else 0
    return {"requests": reqs, "errors": errors, "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "p50_ms": ms(pct["50"]), "p99_ms": ms(pct["99"]), "tool": "wrk"}


def python_run(port, conns, seconds, image, work):
    body = open(image, "rb").read()
    lat, errors, lock = [], [0], threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                c.request("POST", "/predict", body=body, headers={"Content-Type": "image/png"})
                r = c.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            if ok:
                mine.append(time.monotonic() - t0)
            else:
                with lock:
                    errors[0] += 1
        c.close()
        with lock:
            lat.extend(mine)

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    lat.sort()
    q = lambda f: 1000 * lat[min(len(lat) - 1, int(f * len(lat)))] if lat else float("nan")
    return {"requests": len(lat) + errors[0], "errors": errors[0], "rps": len(lat) / wall, "p50_ms": q(0.5),
            "p99_ms": q(0.99), "tool": "python"}


def settle(port, timeout=20):
    """Waits until the server has answered everything (wrk stops with requests still queued)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(request(port, "GET", "/metrics")[2], "wanwu_in_flight_requests") == 0:
            return
        time.sleep(0.05)
    sys.exit(f"FAIL: requests still in flight {timeout} s after the load stopped")


def case_load(wanwu, work):
    data, ckpt = train_checkpoint(wanwu, work)
    image = os.path.join(data, "val", "blue", "000.png")
    seconds = float(os.environ.get("WANWU_LOAD_SECONDS", "3"))
    runner = wrk_run if shutil.which("wrk") and not os.environ.get("WANWU_LOAD_PYTHON") else python_run
    results = []
    with Server(wanwu, ckpt, work, "--max-batch", "32", name="load32") as s32, \
            Server(wanwu, ckpt, work, "--max-batch", "1", name="load1") as s1:
        servers = {32: s32, 1: s1}
        # Tensor memory taken from the system, before the first request: the server ran every
        # chunk size at start-up, so under load the allocator's cache serves every forward pass.
        memory = {}
        for max_batch, s in servers.items():
            text = request(s.port, "GET", "/metrics")[2]
            memory[max_batch] = (metric(text, "wanwu_tensor_system_allocations_total"),
                                 metric(text, "wanwu_tensor_memory_reserved_bytes"),
                                 metric(text, "wanwu_tensor_allocations_total"))
        for max_batch, s in servers.items():
            runner(s.port, 8, 1, image, work)  # warm-up: first-touch allocations, thread start
            settle(s.port)
            for conns in (1, 8, 64):
                r = runner(s.port, conns, seconds, image, work)
                settle(s.port)
                r.update(max_batch=max_batch, conns=conns)
                results.append(r)
                print(f"max-batch {max_batch:2d}  connections {conns:2d}: {r['rps']:8.1f} req/s  "
                      f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}  ({r['tool']})",
                      flush=True)
        rss_first = {max_batch: s.rss() for max_batch, s in servers.items()}
        # The functional check: throughput at 64 connections, the two servers measured in turns
        # (A B A B A B) so that a change in what else the machine runs affects both alike.
        # Other jobs on the machine can still starve one attempt; up to three attempts, the best counts.
        ratio, totals = 0.0, {}
        for attempt in range(3):
            t = {32: 0.0, 1: 0.0}
            for _ in range(3):
                for max_batch, s in servers.items():
                    r = runner(s.port, 64, 2, image, work)
                    settle(s.port)
                    check(r["errors"] == 0, f"interleaved run, --max-batch {max_batch}: {r}")
                    t[max_batch] += r["rps"]
            print(f"interleaved attempt {attempt + 1}: {t[32] / 3:.0f} vs {t[1] / 3:.0f} req/s "
                  f"({t[32] / t[1]:.2f}x)", flush=True)
            if t[32] / t[1] > ratio:
                ratio, totals = t[32] / t[1], t
            if ratio >= 1.3:
                break
        for max_batch, s in servers.items():
            _, _, text = request(s.port, "GET", "/metrics")
            mean_batch = metric(text, "wanwu_batch_size_sum") / metric(text, "wanwu_batch_size_count")
            print(f"max-batch {max_batch}: mean images per forward pass {mean_batch:.2f}")
            if max_batch == 1:
                check(mean_batch == 1.0, f"--max-batch 1 ran batches of {mean_batch} on average")
            else:
                check(mean_batch > 2, f"--max-batch 32 under load averaged only {mean_batch:.2f} images per batch")
            # The same load again (64 connections) must not grow the process: 4 MiB of slack for
            # the C library's per-thread heaps, far below one leaked batch of images.
            rss_second = s.rss()
            print(f"max-batch {max_batch}: resident memory {rss_first[max_batch] / 2**20:.1f} MiB after the first "
                  f"runs, {rss_second / 2**20:.1f} MiB after the interleaved runs")
            check(rss_second - rss_first[max_batch] <= 4 << 20,
                  f"--max-batch {max_batch}: resident memory grew from {rss_first[max_batch] / 2**20:.1f} to "
                  f"{rss_second / 2**20:.1f} MiB between two load runs")
            system, reserved, allocations = (metric(text, "wanwu_tensor_system_allocations_total"),
                                             metric(text, "wanwu_tensor_memory_reserved_bytes"),
                                             metric(text, "wanwu_tensor_allocations_total"))
            requests_ok = metric(text, 'wanwu_requests_total{path="/predict",code="200"}')
            print(f"max-batch {max_batch}: {allocations - memory[max_batch][2]:.0f} tensor allocations for "
                  f"{requests_ok:.0f} answers, {system - memory[max_batch][0]:.0f} of them from the system; "
                  f"reserved {memory[max_batch][1] / 2**20:.1f} -> {reserved / 2**20:.1f} MiB")
            check(allocations > memory[max_batch][2], "the tensor allocation counter did not move under load")
            check(system == memory[max_batch][0] and reserved == memory[max_batch][1],
                  f"--max-batch {max_batch}: tensor memory taken from the system under load: "
                  f"{system - memory[max_batch][0]:.0f} allocations, reserved {memory[max_batch][1]:.0f} -> "
                  f"{reserved:.0f} bytes")
            check(s.stop() == 0, "wanwu serve did not exit 0")
    with open(os.path.join(work, "load.json"), "w") as f:
        json.dump(results, f, indent=1)
    for r in results:
        check(r["errors"] == 0 and r["requests"] > 0, f"load run {r}: errors")
    # Stated margin: batching must raise throughput at 64 connections by at least 1.3x; on the
    # 2-core reference machine it is about 3x (docs/benchmarks.md).
    check(ratio >= 1.3, f"batching does not raise throughput: {totals[32] / 3:.0f} req/s with --max-batch 32 "
                        f"vs {totals[1] / 3:.0f} with --max-batch 1 ({ratio:.2f}x, need >= 1.3x)")
    print("| max-batch | connections | req/s | p50 ms | p99 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['max_batch']} | {r['conns']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{r['errors']} |")
    print(f"ok: batching raises throughput at 64 connections {ratio:.2f}x "
          f"({totals[32] / 3:.0f} vs {totals[1] / 3:.0f} req/s, 3 interleaved rounds)")


def case_shutdown(wanwu, work):
    data, ckpt = train_checkpoint(wanwu, work)
    good = open(os.path.join(data, "val", "stripes", "000.png"), "rb").read()
    # SIGINT on an idle server: exit 0 at once.
    s = Server(wanwu, ckpt, work, name="idle")
    check(request(s.port, "GET", "/health")[0] == 200, "health")
    t0 = time.monotonic()
    check(s.stop(signal.SIGINT) == 0 and time.monotonic() - t0 < 5, "SIGINT on an idle server: no prompt exit 0")

    # SIGTERM under load: each client sends requests back to back, one connection each (so that
    # a refused connection cannot be mistaken for a dropped request); every request the server
    # accepted must be answered 200 in full.
    s = Server(wanwu, ckpt, work, "--max-delay-ms", "20", name="busy")
    ok, failures, refused, unread, lock = [0], [], [0], [0], threading.Lock()
    stop = threading.Event()

    def client():
        while not stop.is_set():
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
            try:
                c.request("POST", "/predict", body=good, headers={"Content-Type": "image/png", "Connection": "close"})
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
                with lock:
                    refused[0] += 1  # not accepted: the listener is closed
                time.sleep(0.01)
                continue
            try:
                r = c.getresponse()
                body = r.read()
                j = json.loads(body)
                with lock:
                    if r.status == 200 and "class_id" in j:
                        ok[0] += 1
                    else:
                        failures.append(f"{r.status} {j}")
            except (http.client.RemoteDisconnected, ConnectionResetError):
                # closed without an answer: connected while the listener was closing, never read by
                # the server (the count comparison below proves no read request is among them)
                with lock:
                    unread[0] += 1
            except (OSError, ValueError, http.client.HTTPException) as e:
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")
            finally:
                c.close()

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(2)
    s.proc.send_signal(signal.SIGTERM)
    try:
        rc = s.proc.wait(30)
    except subprocess.TimeoutExpired:
        s.proc.kill()
        sys.exit("FAIL: wanwu serve did not exit within 30 s of SIGTERM under load")
    stop.set()
    for t in threads:
        t.join(60)
    err = s.stderr()
    check(rc == 0, f"wanwu serve exited {rc} after SIGTERM under load\n{err}")
    check(not failures, f"requests failed during shutdown: {failures[:5]}")
    m = re.search(r"finishing (\d+) requests in flight", err)
    check(m is not None, f"no shutdown message on stderr:\n{err}")
    in_flight = int(m.group(1))
    m = re.search(r"answered (\d+) predictions", err)
    check(m is not None, f"no final count on stderr:\n{err}")
    answered = int(m.group(1))
    check(answered == ok[0], f"the server answered {answered} predictions, the clients received {ok[0]}: "
                             f"{answered - ok[0]} accepted requests were lost")
    check(in_flight >= 1, "no request was in flight at SIGTERM, so the test did not test shutdown under load; "
                          "rerun (or the load generator is too slow)")
    print(f"ok: SIGTERM with {in_flight} requests in flight: all {answered} accepted requests answered 200, "
          f"{refused[0]} connections refused and {unread[0]} closed unread after the listener closed, exit 0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wanwu", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("case", choices=["predict", "page", "bad_input", "load", "shutdown"])
    a = ap.parse_args()
    probe = subprocess.run([a.wanwu, "serve", "--checkpoint", os.devnull], capture_output=True, text=True, timeout=60)
    if "built without cpp-httplib" in probe.stderr:
        print("skipped: " + probe.stderr.strip())
        sys.exit(SKIP)
    work = os.path.join(a.work, "serve_" + a.case)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    globals()["case_" + a.case](os.path.abspath(a.wanwu), work)


if __name__ == "__main__":
    main()
