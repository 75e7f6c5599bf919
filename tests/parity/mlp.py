#!/usr/bin/env python3
"""Writes the reference for tests/parity/test_parity_mlp.cpp: a two-layer MLP with GELU and
tanh, cross-entropy loss, in float64 - inputs, parameters, logits, loss and the gradient of every
parameter and of the input, as computed by PyTorch.

Run with Debian's interpreter (/usr/bin/python3, which has python3-torch). Exits 77 (CTest's
"skipped") with the reason when torch is not installed."""
import argparse
import json
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIPPED: PyTorch is not available to {sys.executable}: {e}. "
          "Install Debian's python3-torch (scripts/setup-deps.sh does).")
    sys.exit(77)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    torch.manual_seed(2024)
    n, d_in, d_hidden, d_hidden2, n_classes = 8, 5, 16, 12, 4
    x = torch.randn(n, d_in, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, n_classes, (n,))
    params = {
        "fc1.weight": torch.randn(d_hidden, d_in, dtype=torch.float64) * 0.5,
        "fc1.bias": torch.randn(d_hidden, dtype=torch.float64) * 0.1,
        "fc2.weight": torch.randn(d_hidden2, d_hidden, dtype=torch.float64) * 0.3,
        "fc2.bias": torch.randn(d_hidden2, dtype=torch.float64) * 0.1,
        "head.weight": torch.randn(n_classes, d_hidden2, dtype=torch.float64) * 0.3,
        "head.bias": torch.randn(n_classes, dtype=torch.float64) * 0.1,
    }
    for p in params.values():
        p.requires_grad_(True)

    h = F.gelu(F.linear(x, params["fc1.weight"], params["fc1.bias"]))
    h = torch.tanh(F.linear(h, params["fc2.weight"], params["fc2.bias"]))
    logits = F.linear(h, params["head.weight"], params["head.bias"])
    loss = F.cross_entropy(logits, y)
    loss.backward()

    def pack(t):
        return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}

    ref = {
        "torch_version": torch.__version__,
        "x": pack(x),
        "y": y.tolist(),
        "params": {k: pack(v) for k, v in params.items()},
        "logits": pack(logits),
        "loss": loss.item(),
        "grads": {k: pack(v.grad) for k, v in params.items()},
        "x_grad": pack(x.grad),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ref, f)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
