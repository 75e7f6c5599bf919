#!/usr/bin/env python3
"""Writes the references for tests/data/test_data_parity.cpp, computed with torchvision and PIL
on real photographs (scikit-image's astronaut, chelsea and coffee) and on synthetic images:

  eval          Resize(256) + CenterCrop(224) + ToTensor + Normalize(ImageNet), as HWC float32
  resize        PIL bilinear (antialiased) resizes: shorter side, exact sizes, up and down
  resized_crop  F.resized_crop with fixed boxes
  center_crop   F.center_crop, including crops larger than the image (zero padding)
  adjust        F.adjust_brightness / contrast / saturation / hue with fixed factors
  jitter_fixed  the four adjustments in a fixed order (ColorJitter's forward with fixed params)
  decode        PIL's decoding (open + convert("RGB")) of JPEG, progressive JPEG, PNG with alpha,
                palette PNG, grey PNG, BMP and GIF files written or shipped here
  *_params      draws of RandomResizedCrop.get_params, RandomHorizontalFlip, ColorJitter.get_params
                and RandomErasing.get_params, for the statistical comparisons

Arrays are raw little-endian files listed in manifest.json with their shapes and dtypes.

Run with Debian's interpreter (/usr/bin/python3: python3-torchvision, python3-pil,
python3-skimage). Exits 77 (CTest's "skipped") with the reason when one of them is missing."""
import argparse
import json
import math
import os
import sys


def stale_manifest_removed():
    """The C++ test reads manifest.json; a skipped run must not leave an old one behind."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    old = os.path.join(args.out, "manifest.json")
    if os.path.exists(old):
        os.remove(old)
    return args


ARGS = stale_manifest_removed()

try:
    import numpy as np
    import torch
    import torchvision
    import torchvision.transforms as T
    import torchvision.transforms.functional as F
    from PIL import Image
    import skimage
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIPPED: {sys.executable} lacks a reference package: {e}. Install Debian's python3-torchvision, "
          "python3-pil and python3-skimage (scripts/setup-deps.sh does).")
    sys.exit(77)

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class Writer:
    def __init__(self, out):
        self.out = out
        self.entries = []
        os.makedirs(out, exist_ok=True)

    def array(self, kind, name, arr, **meta):
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.uint8): "u8", np.dtype(np.float32): "f32", np.dtype(np.int32): "i32",
                 np.dtype(np.float64): "f64"}[arr.dtype]
        fname = f"{kind}_{name}.bin"
        arr.tofile(os.path.join(self.out, fname))
        self.entries.append(dict(kind=kind, name=name, file=fname, shape=list(arr.shape), dtype=dtype, **meta))

    def finish(self):
        manifest = dict(torch=torch.__version__, torchvision=torchvision.__version__,
                        pil=Image.__version__ if hasattr(Image, "__version__") else "", entries=self.entries)
        with open(os.path.join(self.out, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)


def hwc(t):
    """CHW float tensor -> HWC numpy float32."""
    return t.permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def all_colors(step):
    """Every (r, g, b) on a grid of `step`, as a square-ish image."""
    v = np.arange(0, 256, step, dtype=np.uint8)
    r, g, b = np.meshgrid(v, v, v, indexing="ij")
    px = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)
    n = px.shape[0]
    w = 1 << int(math.ceil(math.log2(math.sqrt(n))))
    h = (n + w - 1) // w
    out = np.zeros((h * w, 3), dtype=np.uint8)
    out[:n] = px
    return out.reshape(h, w, 3)


def main():
    args = ARGS
    w = Writer(args.out)
    data_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    photos = {n: os.path.join(data_dir, n + ".png") for n in ("astronaut", "chelsea", "coffee")}
    for p in photos.values():
        if not os.path.exists(p):
            print(f"SKIPPED: scikit-image's sample image {p} is missing")
            sys.exit(77)
    pil = {n: Image.open(p).convert("RGB") for n, p in photos.items()}

    # ---- deterministic transforms ----
    eval_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    for n, im in pil.items():
        w.array("eval", n, hwc(eval_tf(im)), path=photos[n])
        for size in ([256], [300, 200], [123, 457], [700], [224, 224], [37]):
            out = F.resize(im, size)
            w.array("resize", f"{n}_{'x'.join(map(str, size))}", np.asarray(out), path=photos[n], size=size)
        H, W = im.height, im.width
        boxes = [(0, 0, H, W), (10, 20, 100, 150), (H // 3, W // 4, H // 2, W // 2), (5, 7, 33, 41), (0, 0, H, W // 3)]
        for k, (t, l, h, ww) in enumerate(boxes):
            out = F.resized_crop(im, t, l, h, ww, [224, 224])
            w.array("resized_crop", f"{n}_{k}", np.asarray(out), path=photos[n], box=[t, l, h, ww], size=[224, 224])
        for k, size in enumerate(([224, 224], [H - 1, W - 2], [H + 10, W + 3], [101, 77])):
            w.array("center_crop", f"{n}_{k}", np.asarray(F.center_crop(im, size)), path=photos[n], size=size)

    # ---- colour adjustments with fixed factors ----
    colors = Image.fromarray(all_colors(4))
    colors.save(os.path.join(args.out, "all_colors.png"))
    targets = {"chelsea": (pil["chelsea"], photos["chelsea"]),
               "colors": (colors, os.path.join(args.out, "all_colors.png"))}
    ops = {"brightness": (F.adjust_brightness, [0.0, 0.5, 1.3, 1.9]),
           "contrast": (F.adjust_contrast, [0.0, 0.3, 0.8, 1.5]),
           "saturation": (F.adjust_saturation, [0.0, 0.6, 1.7]),
           "hue": (F.adjust_hue, [-0.5, -0.3, -0.1, -0.01, 0.0, 0.05, 0.25, 0.5])}
    for tn, (im, path) in targets.items():
        for op, (fn, factors) in ops.items():
            for f in factors:
                w.array("adjust", f"{tn}_{op}_{f}", np.asarray(fn(im, f)), path=path, op=op, factor=f)
    names = ["brightness", "contrast", "saturation", "hue"]
    for k, (order, factors) in enumerate((([3, 1, 0, 2], [1.2, 0.8, 1.5, -0.05]),
                                         ([0, 1, 2, 3], [0.7, 1.3, 0.4, 0.2]),
                                         ([2, 3, 1, 0], [1.35, 0.65, 1.1, -0.4]))):
        im = pil["chelsea"]
        for fn_id in order:
            im = ops[names[fn_id]][0](im, factors[fn_id])
        w.array("jitter_fixed", str(k), np.asarray(im), path=photos["chelsea"], order=order, factors=factors)

    # ---- decoding ----
    dec = os.path.join(args.out, "decode")
    os.makedirs(dec, exist_ok=True)
    astro = pil["astronaut"]
    files = {}
    astro.save(os.path.join(dec, "astronaut_q90.jpg"), quality=90)
    files["jpeg_q90"] = os.path.join(dec, "astronaut_q90.jpg")
    pil["chelsea"].save(os.path.join(dec, "chelsea_progressive.jpg"), quality=85, progressive=True)
    files["jpeg_progressive"] = os.path.join(dec, "chelsea_progressive.jpg")
    pil["coffee"].save(os.path.join(dec, "coffee_444.jpg"), quality=95, subsampling=0)
    files["jpeg_444"] = os.path.join(dec, "coffee_444.jpg")
    rgba = astro.copy()
    rgba.putalpha(Image.fromarray((np.arange(512 * 512) % 256).reshape(512, 512).astype(np.uint8)))
    rgba.save(os.path.join(dec, "astronaut_rgba.png"))
    files["png_rgba"] = os.path.join(dec, "astronaut_rgba.png")
    astro.save(os.path.join(dec, "astronaut.bmp"))
    files["bmp"] = os.path.join(dec, "astronaut.bmp")
    files["png_palette"] = os.path.join(data_dir, "palette_color.png")
    files["png_gray"] = os.path.join(data_dir, "camera.png")
    files["gif"] = os.path.join(data_dir, "no_time_for_that_tiny.gif")
    for k, path in files.items():
        if os.path.exists(path):
            w.array("decode", k, np.asarray(Image.open(path).convert("RGB")), path=path)

    # ---- random parameters ----
    N = 20000
    for k, (H, W, scale, ratio) in enumerate(((375, 500, (0.08, 1.0), (3 / 4, 4 / 3)),
                                              (500, 375, (0.08, 1.0), (3 / 4, 4 / 3)),
                                              (64, 64, (0.08, 1.0), (3 / 4, 4 / 3)),
                                              (30, 1000, (0.08, 1.0), (3 / 4, 4 / 3)),
                                              (90, 400, (0.08, 1.0), (3 / 4, 4 / 3)),
                                              (375, 500, (0.5, 0.9), (0.5, 2.0)))):
        torch.manual_seed(k)
        img = torch.empty(3, H, W)
        boxes = np.array([T.RandomResizedCrop.get_params(img, list(scale), list(ratio)) for _ in range(N)],
                         dtype=np.int32)
        w.array("rrc_params", str(k), boxes, height=H, width=W, scale=list(scale), ratio=list(ratio))
    torch.manual_seed(11)
    flips = np.array([bool(torch.rand(1) < 0.5) for _ in range(N)], dtype=np.uint8)
    w.array("flip_params", "0.5", flips, p=0.5)
    torch.manual_seed(12)
    cj = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    orders, factors = [], []
    for _ in range(N):
        fn_idx, b, c, s, h = T.ColorJitter.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)
        orders.append(fn_idx.tolist())
        factors.append([b, c, s, h])
    w.array("jitter_params", "order", np.array(orders, dtype=np.int32), amounts=[0.4, 0.4, 0.4, 0.1])
    w.array("jitter_params", "factors", np.array(factors, dtype=np.float64), amounts=[0.4, 0.4, 0.4, 0.1])
    torch.manual_seed(13)
    img = torch.empty(3, 224, 224)
    er = np.array([T.RandomErasing.get_params(img, (0.02, 0.33), (0.3, 3.3), [0.0])[:4] for _ in range(N)],
                  dtype=np.int32)
    w.array("erasing_params", "0", er, height=224, width=224, scale=[0.02, 0.33], ratio=[0.3, 3.3])
    w.finish()
    print(f"wrote {len(w.entries)} references to {args.out} (torch {torch.__version__}, "
          f"torchvision {torchvision.__version__})")


if __name__ == "__main__":
    main()
