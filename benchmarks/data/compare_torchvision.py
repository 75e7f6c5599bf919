#!/usr/bin/env python3
"""Runs wanwu's input pipeline (bench_data, Google Benchmark JSON) and torchvision + PIL on the
same JPEG files, interleaved A B A B, one thread each, and prints one table of medians: images per
second per core and the ratio wanwu / torchvision (> 1: wanwu faster).

Workloads, per image, then collated into batches of 32 at 224x224:
  default  decode + RandomResizedCrop(224) + RandomHorizontalFlip + ColorJitter(0.2, 0.2, 0.2)
           + ToTensor + Normalize(ImageNet)            (the fine-tuning recipe)
  strong   decode + RandomResizedCrop(224) + RandomHorizontalFlip + ColorJitter(0.4, 0.4, 0.4, 0.1)
           + ToTensor + Normalize + RandomErasing(0.25)
  eval     decode + Resize(256) + CenterCrop(224) + ToTensor + Normalize
  decode   reading and decoding alone (stb_image vs PIL's libjpeg-turbo)

The files are JPEGs (quality 90, 4:2:0) cut and scaled from scikit-image's photographs with PIL:
--source-size 500x375 (ImageNet's typical size, the default) or 224x224. Both sides read the files
from disk (page cache) for every image, as a loader does.

Run with Debian's interpreter (python3-torchvision, python3-pil, python3-skimage):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 benchmarks/data/compare_torchvision.py \\
        --build build [--rounds 5] [--quick] [--source-size 224x224] [--markdown out.md]
"""
import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time

try:
    import numpy as np
    import torch
    import torchvision
    import torchvision.transforms as T
    from PIL import Image
    import skimage
except ImportError as e:
    sys.exit(f"compare_torchvision.py needs torchvision, PIL and scikit-image (Debian python3-torchvision, "
             f"python3-pil, python3-skimage; /usr/bin/python3): {e}")

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BATCH = 32


def make_images(out_dir, width, height, count):
    """JPEGs cut from the photographs shipped with scikit-image, written by PIL."""
    data = os.path.join(os.path.dirname(skimage.__file__), "data")
    sources = [f for f in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                           "retina.jpg", "hubble_deep_field.jpg", "ihc.png", "color.png")
               if os.path.exists(os.path.join(data, f))]
    photos = [Image.open(os.path.join(data, f)).convert("RGB") for f in sources]
    os.makedirs(out_dir, exist_ok=True)
    for old in os.listdir(out_dir):
        if old.endswith(".jpg"):
            os.remove(os.path.join(out_dir, old))
    rng = np.random.default_rng(0)
    for i in range(count):
        im = photos[i % len(photos)]
        # a random crop of 60-100% of the shorter side, scaled to the target size (portrait or landscape)
        w, h = (width, height) if i % 3 else (height, width)
        s = rng.uniform(0.6, 1.0) * min(im.width / w, im.height / h)
        cw, ch = int(w * s), int(h * s)
        x0, y0 = int(rng.integers(0, im.width - cw + 1)), int(rng.integers(0, im.height - ch + 1))
        im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC).save(
            os.path.join(out_dir, f"img_{i:03d}.jpg"), quality=90)
    return sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir) if f.endswith(".jpg"))


def torch_pipeline(kind):
    if kind == "default":
        return T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.2, 0.2),
                          T.ToTensor(), T.Normalize(MEAN, STD)])
    if kind == "strong":
        return T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4, 0.1),
                          T.ToTensor(), T.Normalize(MEAN, STD), T.RandomErasing(0.25)])
    if kind == "eval":
        return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    return None


def run_torch(kind, files, min_time):
    """Images per second: open + convert('RGB') (+ transform, + torch.stack per batch of 32)."""
    tf = torch_pipeline(kind)
    done, start = 0, time.perf_counter()
    i = 0
    while True:
        batch = []
        for _ in range(BATCH):
            with open(files[i % len(files)], "rb") as f:
                im = Image.open(io.BytesIO(f.read())).convert("RGB")
            i += 1
            batch.append(tf(im) if tf else im)
        if tf:
            torch.stack(batch)
        done += BATCH
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and done >= 2 * BATCH:
            return done / elapsed


BENCH = {"default": "BM_pipeline_default/real_time", "strong": "BM_pipeline_strong/real_time",
         "eval": "BM_pipeline_eval/real_time", "decode": "BM_decode/real_time"}


def run_wanwu(build, kind, image_dir, min_time):
    exe = os.path.join(build, "bin", "bench_data")
    name = BENCH[kind]
    env = dict(os.environ, OMP_NUM_THREADS="1", WANWU_BENCH_IMAGES=image_dir)
    out = subprocess.run([exe, f"--benchmark_filter=^{name.split('/real_time')[0]}(/real_time)?$",
                          f"--benchmark_min_time={min_time}", "--benchmark_format=json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    for b in json.loads(out)["benchmarks"]:
        if b["name"] == name:
            return b["items_per_second"]
    raise RuntimeError(f"bench_data: benchmark {name} not found")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 1 s")
    ap.add_argument("--source-size", default="500x375", help="WIDTHxHEIGHT of the generated JPEGs")
    ap.add_argument("--count", type=int, default=64, help="number of JPEG files")
    ap.add_argument("--images", help="directory for the generated JPEGs (default: BUILD/bench_data_images)")
    ap.add_argument("--filter", default="", help="only workloads whose name contains this")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.min_time = 3, 1.0
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var} is set; benchmarks run with it unset (see docs/benchmarks.md)", file=sys.stderr)
    torch.set_num_threads(1)
    width, height = (int(x) for x in args.source_size.split("x"))
    image_dir = args.images or os.path.join(args.build, f"bench_data_images_{width}x{height}")
    files = make_images(image_dir, width, height, args.count)
    sizes = [os.path.getsize(f) for f in files]
    print(f"{len(files)} JPEGs of {width}x{height} in {image_dir}, mean {statistics.mean(sizes) / 1024:.0f} KiB",
          file=sys.stderr)

    rows = []
    for kind in ("default", "strong", "eval", "decode"):
        if args.filter not in kind:
            continue
        w, t = [], []
        for _ in range(args.rounds):  # interleaved: A B A B ...
            w.append(run_wanwu(args.build, kind, image_dir, args.min_time))
            t.append(run_torch(kind, files, args.min_time))
        wm, tm = statistics.median(w), statistics.median(t)
        rows.append((kind, wm, tm))
        print(f"  {kind}: wanwu {wm:.0f}/s, torchvision {tm:.0f}/s, ratio {wm / tm:.2f}", file=sys.stderr)

    labels = {"default": "decode + default augmentation + collate",
              "strong": "decode + strong augmentation (jitter with hue, RandomErasing) + collate",
              "eval": "decode + Resize(256) + CenterCrop(224) + Normalize + collate",
              "decode": "decode only (stb_image vs PIL/libjpeg-turbo)"}
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; one thread per side; "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, PIL {Image.__version__}; "
        f"{len(files)} JPEGs {width}x{height} (q90); {args.rounds} interleaved rounds, medians.",
        "",
        "| workload | wanwu images/s per core | torchvision + PIL images/s per core | wanwu / torchvision |",
        "|---|---|---|---|",
    ]
    for kind, wm, tm in rows:
        lines.append(f"| {labels[kind]} | {wm:.0f} | {tm:.0f} | {wm / tm:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
