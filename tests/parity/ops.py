#!/usr/bin/env python3
"""Writes PyTorch references for tests/parity/test_parity_ops.cpp: forward outputs and input
gradients (for a random output gradient) of conv2d, pooling, normalization, softmax, losses,
attention, interpolate and pad, in float64, on shapes with odd sizes, batch 1, stride 2,
dilation 2, groups 1/2/C, padding "same", masks and causal attention.

wanwu is NHWC with OHWI weights (DESIGN D4); PyTorch is NCHW with OIHW weights. Each input is
tagged with its layout and converted here, so both sides see the same numbers: "image" tensors
are NCHW in torch and NHWC in the file, "weight" tensors OIHW / OHWI, "plain" ones as is.

Run with Debian's /usr/bin/python3 (python3-torch). Exits 77 (skipped) without torch."""
import argparse
import json
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print(f"SKIPPED: PyTorch is not available to {sys.executable}: {e}. Install python3-torch.")
    sys.exit(77)

torch.manual_seed(7)
D = torch.float64
CASES = []
NO_GRAD = {"target", "weight", "pos_weight", "mask"}  # not differentiable in PyTorch's losses


def to_file(t, layout):
    t = t.detach()
    if layout in ("image", "weight") and t.dim() == 4:
        t = t.permute(0, 2, 3, 1)
    return {"shape": list(t.shape), "data": t.contiguous().reshape(-1).tolist(), "dtype": str(t.dtype)}


def case(name, op, params, inputs, fn, out_layouts=("image",), grads=True):
    """inputs: {name: (tensor in torch layout, layout)}; fn(**torch_inputs) -> tensor or tuple."""
    tin = {}
    for k, (t, layout) in inputs.items():
        t = t.clone()
        if t.is_floating_point() and grads and k not in NO_GRAD:
            t.requires_grad_(True)
        tin[k] = t
    outs = fn(**tin)
    if not isinstance(outs, tuple):
        outs = (outs,)
    rec = {"name": name, "op": op, "params": params,
           "inputs": {k: dict(to_file(t, inputs[k][1]), layout=inputs[k][1]) for k, t in tin.items()},
           "outputs": [to_file(o, out_layouts[i] if i < len(out_layouts) else "plain") for i, o in enumerate(outs)]}
    if grads:
        go = torch.randn_like(outs[0])
        need = [t for t in tin.values() if t.requires_grad]
        gs = torch.autograd.grad(outs[0], need, go, allow_unused=True)
        rec["grad_out"] = to_file(go, out_layouts[0])
        rec["grads"] = {}
        ids = [id(t) for t in need]
        for (k, t) in tin.items():
            if t.requires_grad:
                g = gs[ids.index(id(t))]
                rec["grads"][k] = to_file(g if g is not None else torch.zeros_like(t), inputs[k][1])
    CASES.append(rec)


def r(*shape):
    return torch.randn(*shape, dtype=D)


def conv_cases():
    specs = [  # name, x, w, bias, stride, padding, dilation, groups
        ("3x3 pad 1 bias", (2, 3, 7, 9), (4, 3, 3, 3), True, 1, 1, 1, 1),
        ("3x3 stride 2 odd batch 1", (1, 5, 11, 8), (6, 5, 3, 3), False, 2, 0, 1, 1),
        ("dilation 2", (2, 4, 9, 9), (4, 4, 3, 3), True, 1, 2, 2, 1),
        ("groups 2", (2, 4, 6, 6), (6, 2, 3, 3), False, 1, 1, 1, 2),
        ("depthwise stride 2", (2, 6, 7, 7), (6, 1, 3, 3), True, 2, 1, 1, 6),
        ("depthwise multiplier 2", (1, 3, 5, 5), (6, 1, 3, 3), False, 1, 1, 1, 3),
        ("depthwise 5x5 dilation 2", (2, 4, 9, 9), (4, 1, 5, 5), True, 1, 4, 2, 4),
        ("same even kernel", (1, 3, 6, 6), (2, 3, 4, 4), True, 1, "same", 1, 1),
        ("same depthwise", (1, 4, 5, 5), (4, 1, 3, 3), False, 1, "same", 1, 4),
        ("valid 1x1 bias", (2, 8, 5, 5), (4, 8, 1, 1), True, 1, "valid", 1, 1),
        ("1x1 stride 2", (2, 8, 6, 6), (4, 8, 1, 1), False, 2, 0, 1, 1),
        ("7x7 stride 2 pad 3", (1, 3, 15, 15), (4, 3, 7, 7), False, 2, 3, 1, 1),
        ("1x3 stride (2,1) pad (0,1)", (2, 3, 7, 6), (5, 3, 1, 3), True, (2, 1), (0, 1), 1, 1),
    ]
    for name, xs, ws, bias, stride, padding, dil, groups in specs:
        inputs = {"x": (r(*xs), "image"), "w": (r(*ws) * 0.3, "weight")}
        if bias:
            inputs["b"] = (r(ws[0]), "plain")
        params = {"stride": stride if isinstance(stride, tuple) else (stride, stride),
                  "padding": padding if isinstance(padding, (str, tuple)) else (padding, padding),
                  "dilation": (dil, dil), "groups": groups}
        case("conv2d " + name, "conv2d", params, inputs,
             lambda x, w, b=None: F.conv2d(x, w, b, stride, padding, dil, groups))
    # a non-contiguous input (the C++ side passes a transposed view)
    case("conv2d non-contiguous input", "conv2d", {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1),
                                                   "groups": 1, "noncontiguous": True},
         {"x": (r(2, 3, 5, 6), "image"), "w": (r(4, 3, 3, 3), "weight")},
         lambda x, w: F.conv2d(x, w, None, 1, 1))


def pool_cases():
    for name, xs, k, s, p, d, ceil in [
        ("3x3 stride 2 pad 1", (2, 4, 9, 9), 3, 2, 1, 1, False),
        ("ceil mode", (1, 3, 8, 8), 3, 2, 0, 1, True),
        ("dilation 2", (1, 2, 7, 7), 2, 1, 0, 2, False),
        ("2x2 batch 1 odd", (1, 5, 7, 5), 2, 2, 0, 1, True),
    ]:
        case("max_pool2d " + name, "max_pool2d", {"kernel": k, "stride": s, "padding": p, "dilation": d, "ceil": ceil},
             {"x": (r(*xs), "image")}, lambda x: F.max_pool2d(x, k, s, p, d, ceil))
    for name, xs, k, s, p, ceil, cip, div in [
        ("3x3 stride 2 pad 1 include pad", (2, 4, 9, 9), 3, 2, 1, False, True, None),
        ("3x3 stride 2 pad 1 exclude pad", (2, 4, 9, 9), 3, 2, 1, False, False, None),
        ("ceil mode exclude pad", (1, 3, 8, 7), 3, 2, 1, True, False, None),
        ("divisor override", (1, 2, 6, 6), 2, 2, 0, False, True, 3),
    ]:
        case("avg_pool2d " + name, "avg_pool2d",
             {"kernel": k, "stride": s, "padding": p, "ceil": ceil, "count_include_pad": cip, "divisor": div or 0},
             {"x": (r(*xs), "image")}, lambda x: F.avg_pool2d(x, k, s, p, ceil, cip, div))
    for xs, out in [((2, 3, 7, 5), (3, 2)), ((1, 4, 6, 6), (4, 4)), ((2, 3, 5, 5), (1, 1))]:
        case(f"adaptive_avg_pool2d {out}", "adaptive_avg_pool2d", {"output": out}, {"x": (r(*xs), "image")},
             lambda x: F.adaptive_avg_pool2d(x, out))


def norm_cases():
    # training: outputs are y, new running mean, new running var
    for name, xs in [("4-D", (3, 4, 5, 6)), ("2-D features", (8, 5))]:
        C = xs[1]
        rm, rv = r(C), torch.rand(C, dtype=D) + 0.5
        layout = "image" if len(xs) == 4 else "plain"

        def bn_train(x, w, b, rm=rm, rv=rv):
            rm2, rv2 = rm.clone(), rv.clone()
            y = F.batch_norm(x, rm2, rv2, w, b, True, 0.1, 1e-5)
            return y, rm2, rv2
        case("batch_norm train " + name, "batch_norm", {"train": True, "momentum": 0.1, "eps": 1e-5,
                                                        "running_mean": rm.tolist(), "running_var": rv.tolist()},
             {"x": (r(*xs) * 2 + 1, layout), "w": (r(C), "plain"), "b": (r(C), "plain")}, bn_train,
             out_layouts=(layout, "plain", "plain"))
        case("batch_norm eval " + name, "batch_norm", {"train": False, "momentum": 0.1, "eps": 1e-5,
                                                       "running_mean": rm.tolist(), "running_var": rv.tolist()},
             {"x": (r(*xs), layout), "w": (r(C), "plain"), "b": (r(C), "plain")},
             lambda x, w, b: F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5), out_layouts=(layout,))
    case("layer_norm last dim", "layer_norm", {"normalized": [8], "eps": 1e-5},
         {"x": (r(2, 5, 8), "plain"), "w": (r(8), "plain"), "b": (r(8), "plain")},
         lambda x, w, b: F.layer_norm(x, [8], w, b, 1e-5), out_layouts=("plain",))
    case("layer_norm two dims", "layer_norm", {"normalized": [5, 8], "eps": 1e-6},
         {"x": (r(3, 5, 8), "plain"), "w": (r(5, 8), "plain"), "b": (r(5, 8), "plain")},
         lambda x, w, b: F.layer_norm(x, [5, 8], w, b, 1e-6), out_layouts=("plain",))
    case("layer_norm no affine", "layer_norm", {"normalized": [7], "eps": 1e-5}, {"x": (r(4, 7), "plain")},
         lambda x: F.layer_norm(x, [7], None, None, 1e-5), out_layouts=("plain",))
    case("group_norm", "group_norm", {"groups": 3, "eps": 1e-5},
         {"x": (r(2, 6, 4, 4), "image"), "w": (r(6), "plain"), "b": (r(6), "plain")},
         lambda x, w, b: F.group_norm(x, 3, w, b, 1e-5))


def softmax_loss_cases():
    for kind in ("softmax", "log_softmax"):
        for xs, dim in [((3, 7), -1), ((2, 5, 4), 1), ((4, 3, 2), 0)]:
            f = getattr(F, kind)
            case(f"{kind} {xs} dim {dim}", kind, {"dim": dim}, {"x": (r(*xs) * 3, "plain")},
                 lambda x: f(x, dim), out_layouts=("plain",))
    N, C = 6, 5
    y = torch.tensor([0, 4, 2, 2, 1, 3])
    y_ign = torch.tensor([0, 4, -100, 2, 1, 3])
    w = torch.rand(C, dtype=D) + 0.5
    for red in ("mean", "sum", "none"):
        for ls in (0.0, 0.1):
            for use_w in (False, True):
                for tgt, tname in ((y, ""), (y_ign, " ignore_index")):
                    params = {"reduction": red, "label_smoothing": ls, "ignore_index": -100}
                    inputs = {"x": (r(N, C) * 2, "plain"), "target": (tgt, "plain")}
                    if use_w:
                        inputs["weight"] = (w, "plain")
                    case(f"cross_entropy {red} ls={ls}{' weight' if use_w else ''}{tname}", "cross_entropy", params,
                         inputs, lambda x, target, weight=None, red=red, ls=ls:
                         F.cross_entropy(x, target, weight, reduction=red, label_smoothing=ls), out_layouts=("plain",))
    probs = torch.softmax(r(N, C), -1)
    for red in ("mean", "sum"):
        case(f"cross_entropy probability targets {red}", "cross_entropy",
             {"reduction": red, "label_smoothing": 0.2, "ignore_index": -100},
             {"x": (r(N, C), "plain"), "target": (probs, "plain"), "weight": (w, "plain")},
             lambda x, target, weight, red=red: F.cross_entropy(x, target, weight, reduction=red, label_smoothing=0.2),
             out_layouts=("plain",))
    y3 = torch.tensor([[0, 2, 1], [3, -100, 2]])
    case("cross_entropy [N, C, d] ignore_index", "cross_entropy",
         {"reduction": "mean", "label_smoothing": 0.05, "ignore_index": -100},
         {"x": (r(2, 4, 3), "plain"), "target": (y3, "plain"), "weight": (torch.rand(4, dtype=D) + 0.5, "plain")},
         lambda x, target, weight: F.cross_entropy(x, target, weight, label_smoothing=0.05), out_layouts=("plain",))
    case("nll_loss weight mean", "nll_loss", {"reduction": "mean", "ignore_index": 1},
         {"x": (torch.log_softmax(r(N, C), -1), "plain"), "target": (y, "plain"), "weight": (w, "plain")},
         lambda x, target, weight: F.nll_loss(x, target, weight, ignore_index=1), out_layouts=("plain",))
    case("binary_cross_entropy_with_logits pos_weight weight", "bce_with_logits", {"reduction": "mean"},
         {"x": (r(4, 3) * 3, "plain"), "target": (torch.rand(4, 3, dtype=D), "plain"),
          "weight": (torch.rand(4, 3, dtype=D), "plain"), "pos_weight": (torch.rand(3, dtype=D) + 0.5, "plain")},
         lambda x, target, weight, pos_weight: F.binary_cross_entropy_with_logits(x, target, weight, pos_weight=pos_weight),
         out_layouts=("plain",))
    case("binary_cross_entropy_with_logits sum", "bce_with_logits", {"reduction": "sum"},
         {"x": (r(5) * 4, "plain"), "target": (torch.rand(5, dtype=D), "plain")},
         lambda x, target: F.binary_cross_entropy_with_logits(x, target, reduction="sum"), out_layouts=("plain",))
    case("mse_loss", "mse_loss", {"reduction": "mean"}, {"x": (r(3, 4), "plain"), "target": (r(3, 4), "plain")},
         lambda x, target: F.mse_loss(x, target), out_layouts=("plain",))


def attention_cases():
    q, k, v = r(2, 3, 5, 4), r(2, 3, 6, 4), r(2, 3, 6, 3)
    case("attention plain", "attention", {}, {"q": (q, "plain"), "k": (k, "plain"), "v": (v, "plain")},
         lambda q, k, v: F.scaled_dot_product_attention(q, k, v), out_layouts=("plain",))
    bmask = torch.rand(5, 6) > 0.3
    bmask[:, 0] = True  # no fully masked rows
    case("attention bool mask", "attention", {}, {"q": (q, "plain"), "k": (k, "plain"), "v": (v, "plain"),
                                                  "mask": (bmask, "plain")},
         lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), out_layouts=("plain",))
    fmask = r(2, 1, 5, 6)
    case("attention float mask scale", "attention", {"scale": 0.3},
         {"q": (q, "plain"), "k": (k, "plain"), "v": (v, "plain"), "mask": (fmask, "plain")},
         lambda q, k, v, mask: torch.softmax(q @ k.transpose(-1, -2) * 0.3 + mask, -1) @ v, out_layouts=("plain",))
    qc, kc, vc = r(1, 2, 5, 4), r(1, 2, 5, 4), r(1, 2, 5, 4)
    case("attention causal", "attention", {"causal": True}, {"q": (qc, "plain"), "k": (kc, "plain"), "v": (vc, "plain")},
         lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), out_layouts=("plain",))


def misc_cases():
    x = r(1, 3, 4, 5)
    for size, align in [((7, 3), False), ((7, 3), True), ((2, 2), False), ((9, 11), True)]:
        case(f"interpolate bilinear {size} align_corners={align}", "interpolate",
             {"size": size, "align_corners": align}, {"x": (x, "image")},
             lambda x, size=size, align=align: F.interpolate(x, size=size, mode="bilinear", align_corners=align))
    for size, align in [((7, 3), False), ((7, 3), True), ((2, 2), False), ((9, 11), True), ((1, 6), True)]:
        case(f"interpolate bicubic {size} align_corners={align}", "interpolate",
             {"size": size, "align_corners": align, "mode": "bicubic"}, {"x": (x, "image")},
             lambda x, size=size, align=align: F.interpolate(x, size=size, mode="bicubic", align_corners=align))
    # pad works on the tensor's own last dims: compare on an NHWC-shaped plain tensor
    case("pad constant", "pad", {"pads": [0, 0, 1, 2, 2, 0], "value": 0.5}, {"x": (r(2, 3, 4, 3), "plain")},
         lambda x: F.pad(x, (0, 0, 1, 2, 2, 0), value=0.5), out_layouts=("plain",))
    case("pad negative crops", "pad", {"pads": [1, -1, -1, 2], "value": 0.0}, {"x": (r(2, 3, 4), "plain")},
         lambda x: F.pad(x, (1, -1, -1, 2)), out_layouts=("plain",))


def sdpa_available():
    return hasattr(F, "scaled_dot_product_attention")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    conv_cases()
    pool_cases()
    norm_cases()
    softmax_loss_cases()
    if not sdpa_available():  # torch < 2.0: the math definition, which is what SDPA computes
        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
            s = q @ k.transpose(-1, -2) * (scale if scale is not None else q.size(-1) ** -0.5)
            if is_causal:
                L, S = q.size(-2), k.size(-2)
                attn_mask = torch.ones(L, S, dtype=torch.bool).tril()
            if attn_mask is not None:
                s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
            return torch.softmax(s, -1) @ v
        F.scaled_dot_product_attention = sdpa
    attention_cases()
    misc_cases()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"torch_version": torch.__version__, "cases": CASES}, f)
    os.replace(tmp, args.out)
    print(f"wrote {len(CASES)} cases to {args.out} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
