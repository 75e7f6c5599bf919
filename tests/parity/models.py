#!/usr/bin/env python3
"""Writes the reference for tests/parity/test_parity_models.cpp with torchvision's own models.

Eval mode: resnet50, efficientnet_b0 and vit_b_16 with seeded random weights (batch-norm running
statistics and the ViT head randomized too, so nothing is trivially zero), logits for a batch of 2
at 224x224 in float32. Each model is written twice, in different containers and key layouts, so
the C++ side loads it both ways:
  resnet50        torchvision names, safetensors  +  torchvision names, .pth (zip)
  efficientnet_b0 torchvision names, safetensors  +  timm names, .pth (legacy torch.save format)
  vit_b_16        timm names, safetensors         +  torchvision names, .pth (zip)
resnet18 in float16 (safetensors): logits of the float32 model whose weights are those float16
values. Train mode: one SGD step of resnet18 (momentum 0.9, weight decay 1e-4) on a batch of 4 —
loss, logits, every parameter's gradient, and every parameter and buffer after the step — in
float64, so that no ReLU flips sides on a rounding difference (in float32 one activation of 150k
within 1e-6 of zero is enough to move a batch-norm bias gradient by 4%).

The timm key layouts are written out here by hand from timm's module structure (efficientnet.py's
DepthwiseSeparableConv / InvertedResidual, vision_transformer.py's Block), independently of
wanwu's name maps. Exits 77 when torch or torchvision is missing."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
try:
    import torch
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIPPED: torch/torchvision not available to {sys.executable}: {e}. "
          "Install Debian's python3-torch and python3-torchvision.")
    sys.exit(77)
from convert_weights import save_safetensors  # noqa: E402


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
                m.num_batches_tracked.fill_(7)
    return model


def timm_efficientnet_names(sd):
    """torchvision efficientnet_b0 keys -> timm's efficientnet_b0 keys."""
    out = {}
    for k, v in sd.items():
        p = k.split(".")
        if p[0] == "features" and p[1] == "0":
            n = {"0": "conv_stem", "1": "bn1"}[p[2]] + "." + ".".join(p[3:])
        elif p[0] == "features" and p[1] == "8":
            n = {"0": "conv_head", "1": "bn2"}[p[2]] + "." + ".".join(p[3:])
        elif p[0] == "classifier":
            n = "classifier." + ".".join(p[2:])
        else:
            stage, blk, idx, rest = int(p[1]) - 1, p[2], p[4], p[5:]
            if stage == 0:  # DepthwiseSeparableConv: dw(0) se(1) pw(2)
                part = {("0", "0"): "conv_dw", ("0", "1"): "bn1", ("2", "0"): "conv_pw", ("2", "1"): "bn2"}
            else:  # InvertedResidual: pw(0) dw(1) se(2) pwl(3)
                part = {("0", "0"): "conv_pw", ("0", "1"): "bn1", ("1", "0"): "conv_dw", ("1", "1"): "bn2",
                        ("3", "0"): "conv_pwl", ("3", "1"): "bn3"}
            se_idx = "1" if stage == 0 else "2"
            if idx == se_idx:
                name = {"fc1": "se.conv_reduce", "fc2": "se.conv_expand"}[rest[0]] + "." + ".".join(rest[1:])
            else:
                name = part[(idx, rest[0])] + "." + ".".join(rest[1:])
            n = f"blocks.{stage}.{blk}.{name}"
        out[n] = v
    return out


def timm_vit_names(sd):
    """torchvision vit_b_16 keys -> timm's vit_base_patch16_224 keys."""
    out = {}
    for k, v in sd.items():
        if k == "class_token":
            n = "cls_token"
        elif k == "encoder.pos_embedding":
            n = "pos_embed"
        elif k.startswith("conv_proj."):
            n = "patch_embed.proj." + k[len("conv_proj."):]
        elif k.startswith("encoder.ln."):
            n = "norm." + k[len("encoder.ln."):]
        elif k.startswith("heads.head."):
            n = "head." + k[len("heads.head."):]
        else:
            p = k.split(".")  # encoder.layers.encoder_layer_i.<part...>
            i = p[2][len("encoder_layer_"):]
            rest = ".".join(p[3:])
            rest = (rest.replace("ln_1.", "norm1.").replace("ln_2.", "norm2.")
                    .replace("self_attention.in_proj_weight", "attn.qkv.weight")
                    .replace("self_attention.in_proj_bias", "attn.qkv.bias")
                    .replace("self_attention.out_proj.", "attn.proj.")
                    .replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2."))
            n = f"blocks.{i}.{rest}"
        out[n] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="JSON file; tensors are written next to it")
    args = ap.parse_args()
    d = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(d, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    ref = {"torch_version": torch.__version__, "torchvision_version": torchvision.__version__, "models": []}
    tensors = {}

    x = torch.randn(2, 3, 224, 224)
    tensors["x"] = x
    tv = torchvision.models
    specs = [
        ("resnet50", tv.resnet50(), [("resnet50.safetensors", "tv", "st"), ("resnet50.pth", "tv", "zip")]),
        ("efficientnet_b0", tv.efficientnet_b0(),
         [("efficientnet_b0.safetensors", "tv", "st"), ("efficientnet_b0_timm.pth", "timm", "legacy")]),
        ("vit_b_16", tv.vit_b_16(), [("vit_b_16_timm.safetensors", "timm", "st"), ("vit_b_16.pth", "tv", "zip")]),
    ]
    for i, (name, model, files) in enumerate(specs):
        randomize(model, 100 + i)
        if name == "vit_b_16":  # torchvision zero-initializes the head
            with torch.no_grad():
                model.heads.head.weight.normal_(0, 0.02)
                model.heads.head.bias.normal_(0, 0.02)
        model.eval()
        with torch.no_grad():
            logits = model(x)
        tensors[f"{name}.logits"] = logits
        sd = model.state_dict()
        entry = {"arch": name, "keys": [[k, list(v.shape)] for k, v in sd.items()], "files": []}
        for fname, layout, container in files:
            path = os.path.join(d, fname)
            w = sd if layout == "tv" else (timm_efficientnet_names(sd) if name.startswith("eff") else timm_vit_names(sd))
            if container == "st":
                save_safetensors(path, w, {"format": "pt"})
            elif container == "zip":
                torch.save(w, path)
            else:
                torch.save(w, path, _use_new_zipfile_serialization=False)
            entry["files"].append(fname)
        ref["models"].append(entry)
        print(f"{name}: max |logit| {logits.abs().max().item():.4g}", flush=True)

    # resnet18 stored in float16: the reference computes with the rounded weights in float32
    r18 = randomize(tv.resnet18(), 7).eval()
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in r18.state_dict().items()}
    save_safetensors(os.path.join(d, "resnet18_f16.safetensors"), half)
    r18.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    with torch.no_grad():
        tensors["resnet18_f16.logits"] = r18(x)

    # small checkpoints in both torch.save formats, for the corruption test: mixed dtypes, a
    # non-contiguous view and two names sharing one storage
    g = torch.Generator().manual_seed(3)
    base = torch.randn(6, 4, generator=g)
    small = {"a.weight": torch.randn(3, 2, 3, 3, generator=g), "a.bias": torch.randn(3, generator=g).half(),
             "b.weight": torch.randn(5, 7, generator=g).bfloat16(), "b.t": base.t(), "b.row": base[2],
             "n.num_batches_tracked": torch.tensor(17)}
    for name, zipped in (("small_zip.pth", True), ("small_legacy.pth", False)):
        torch.save(small, os.path.join(d, name), _use_new_zipfile_serialization=zipped)
    for k, v in small.items():
        tensors["small." + k] = v.float() if v.is_floating_point() else v

    # one SGD step of resnet18 in train mode
    torch.manual_seed(1)
    net = tv.resnet18(num_classes=10)
    torch.save(net.state_dict(), os.path.join(d, "resnet18_train_init.pth"))
    net = net.double()
    xt, yt = torch.randn(4, 3, 96, 96, dtype=torch.float64), torch.tensor([3, 1, 4, 1])
    tensors["train.x"], tensors["train.y"] = xt, yt
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    out = net(xt)
    loss = F.cross_entropy(out, yt)
    loss.backward()
    tensors["train.logits"] = out.detach()
    tensors["train.loss"] = loss.detach().reshape(1)
    for k, p in net.named_parameters():
        tensors[f"train.grad.{k}"] = p.grad
    opt.step()
    for k, v in net.state_dict().items():
        tensors[f"train.after.{k}"] = v
    save_safetensors(os.path.join(d, "models_ref.safetensors"), tensors)
    ref["tensors"] = "models_ref.safetensors"
    with open(args.out, "w") as f:
        json.dump(ref, f)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
