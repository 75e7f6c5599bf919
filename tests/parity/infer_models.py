#!/usr/bin/env python3
"""`wanwu infer` end to end on the torchvision parity fixtures (tests/parity/models.py): for
resnet50, efficientnet_b0 and vit_b_16, the seeded weights files (safetensors and .pth, torchvision
and timm layouts) and the reference batch x (NCHW), `wanwu infer` must print logits within
1e-4 x max |logit| of torchvision's. Reads and writes safetensors with the standard library and
numpy only. Exits 77 (skipped) when the fixtures are missing."""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np

DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "F16": np.float16}


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] not in DT:
            continue
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype=DT[v["dtype"]]).reshape(v["shape"])
    return out


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wanwu", required=True)
    ap.add_argument("--reference", required=True, help="models.json written by tests/parity/models.py")
    args = ap.parse_args()
    if not os.path.exists(args.reference):
        print(f"SKIPPED: {args.reference} not found (is python3-torchvision installed?)")
        sys.exit(77)
    d = os.path.dirname(args.reference)
    with open(args.reference) as f:
        ref = json.load(f)
    t = read_st(os.path.join(d, ref["tensors"]))
    x_path = os.path.join(d, "infer_input.safetensors")
    write_st(x_path, {"input": t["x"]})
    failures = 0
    for m in ref["models"]:
        arch = m["arch"]
        want = t[arch + ".logits"].astype(np.float64)
        for file in m["files"]:
            out = os.path.join(d, f"infer_{arch}_{os.path.basename(file)}.safetensors")
            cmd = [args.wanwu, "infer", "--model", arch, "--weights", os.path.join(d, file), "--input", x_path,
                   "--output", out, "--device", "cpu"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {arch} {file}: exit {r.returncode}: {r.stderr.strip()}")
                failures += 1
                continue
            got = read_st(out)["logits"].astype(np.float64)
            diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
            tol = 1e-4 * float(np.abs(want).max())
            ok = diff <= tol
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} wanwu infer {arch} {file}: max |diff| {diff:.3g} (tolerance {tol:.3g})")
    print("FAILED" if failures else "PASSED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
