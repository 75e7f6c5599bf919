#!/usr/bin/env python3
"""Writes benchmarks/model_shapes.json: the distinct convolutions of torchvision's resnet50 (with
how many times each occurs), the depthwise convolutions of efficientnet_b0, and the attention and
norm shapes of vit_b_16 / resnet50 — all at batch 8 and 224x224. Found by running the torchvision
models with forward hooks, so the benchmark tables cannot drift from the real networks.

    /usr/bin/python3 benchmarks/model_shapes.py > benchmarks/model_shapes.json
"""
import collections
import json

import torch
import torchvision

BATCH = 8


def conv_table(model, depthwise_only):
    seen = collections.OrderedDict()

    def hook(mod, inp, out):
        x = inp[0]
        if depthwise_only and not (mod.groups == mod.in_channels and mod.groups > 1):
            return
        key = (x.shape[2], x.shape[3], mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.stride[0],
               mod.padding[0], mod.groups)
        seen[key] = seen.get(key, 0) + 1

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    rows = []
    for (h, w, c, o, k, s, p, g), count in seen.items():
        kind = f"dw{k}x{k}" if g > 1 else f"{k}x{k}"
        rows.append({"name": f"{kind} {c}->{o} {h}x{w} s{s}", "n": BATCH, "h": h, "w": w, "c": c, "o": o, "k": k,
                     "stride": s, "pad": p, "groups": g, "count": count})
    return rows


def main():
    resnet = conv_table(torchvision.models.resnet50(), False)
    for r in resnet:
        r["name"] = "resnet50 " + r["name"]
    effnet = conv_table(torchvision.models.efficientnet_b0(), True)
    for r in effnet:
        r["name"] = "efficientnet_b0 " + r["name"]
    out = {
        "conv": resnet + effnet,
        "attention": [{"name": "vit_b_16 B8 H12 L197 D64", "b": BATCH, "heads": 12, "l": 197, "d": 64, "count": 12}],
        "batch_norm": [
            {"name": "resnet50 8x112x112x64", "n": BATCH, "h": 112, "w": 112, "c": 64, "count": 1},
            {"name": "resnet50 8x56x56x256", "n": BATCH, "h": 56, "w": 56, "c": 256, "count": 4},
            {"name": "resnet50 8x28x28x512", "n": BATCH, "h": 28, "w": 28, "c": 512, "count": 5},
            {"name": "resnet50 8x14x14x1024", "n": BATCH, "h": 14, "w": 14, "c": 1024, "count": 7},
        ],
        "layer_norm": [{"name": "vit_b_16 8x197x768", "b": BATCH, "l": 197, "e": 768, "count": 25}],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
