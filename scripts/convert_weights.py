#!/usr/bin/env python3
"""Converts a PyTorch checkpoint into a safetensors file that wanwu loads.

wanwu reads torchvision .pth files and timm / efficientnet_pytorch layouts directly; this script is
for everything else: a checkpoint that pickles a whole nn.Module, wraps its weights in another dict
key, prefixes every name, or uses names that need a rename. It writes torchvision's layout
(convolution weights [O, I/g, kH, kW], as PyTorch stores them) and needs only torch — no
safetensors package.

  /usr/bin/python3 scripts/convert_weights.py model.pth model.safetensors
  /usr/bin/python3 scripts/convert_weights.py ckpt.pt out.safetensors --key ema --strip-prefix backbone. \\
      --rename '^head\\.fc\\.=fc.' --dtype f16
"""
import argparse
import json
import os
import re
import struct
import sys

_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
           "int32": "I32", "uint8": "U8", "bool": "BOOL", "int8": "I8", "int16": "I16"}


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} as safetensors (little-endian, contiguous, 8-byte aligned header)."""
    import torch
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        dt = str(t.dtype).replace("torch.", "")
        if dt not in _DTYPES:
            raise SystemExit(f"{name}: dtype {t.dtype} has no safetensors code")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[dt], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def state_dict_of(obj, key=None):
    """The tensor dict inside whatever torch.load returned."""
    import torch
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise SystemExit(f"--key {key}: the checkpoint has no such entry "
                             f"(it has {sorted(obj.keys()) if isinstance(obj, dict) else type(obj).__name__})")
        obj = obj[key]
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for k in ("state_dict", "model", "model_state_dict", "module", "net"):
            if k in obj:
                return state_dict_of(obj[k])
        raise SystemExit(f"no tensors found; entries are {sorted(obj.keys())} (choose one with --key)")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="torch checkpoint (.pth, .pt, .bin, .ckpt)")
    ap.add_argument("output", help="safetensors file to write")
    ap.add_argument("--key", help="take the weights from this entry of a checkpoint dict")
    ap.add_argument("--strip-prefix", action="append", default=[], help="remove this prefix from names (repeatable)")
    ap.add_argument("--rename", action="append", default=[], metavar="REGEX=REPLACEMENT",
                    help="re.sub on every name, in order (repeatable)")
    ap.add_argument("--drop", action="append", default=[], metavar="REGEX", help="leave out matching names")
    ap.add_argument("--dtype", choices=["keep", "f32", "f16", "bf16"], default="keep",
                    help="convert floating tensors")
    ap.add_argument("--arch", help="recorded in the metadata (wanwu.arch)")
    args = ap.parse_args(argv)

    try:
        import torch
    except ImportError as e:
        raise SystemExit(f"convert_weights.py needs PyTorch ({e}); run it with /usr/bin/python3")
    obj = torch.load(args.input, map_location="cpu")
    sd = state_dict_of(obj, args.key)
    prefixes = args.strip_prefix + ["module."]
    rules = []
    for r in args.rename:
        if "=" not in r:
            raise SystemExit(f"--rename {r!r}: expected REGEX=REPLACEMENT")
        pat, rep = r.split("=", 1)
        rules.append((re.compile(pat), rep))
    drops = [re.compile(d) for d in args.drop]
    cast = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}.get(args.dtype)
    out = {}
    for name, t in sd.items():
        for p in prefixes:
            if name.startswith(p):
                name = name[len(p):]
        for pat, rep in rules:
            name = pat.sub(rep, name)
        if any(d.search(name) for d in drops):
            continue
        if name in out:
            raise SystemExit(f"two tensors are named {name!r} after renaming")
        if cast is not None and t.is_floating_point():
            t = t.to(cast)
        out[name] = t
    meta = {"format": "pt", "wanwu.conv_layout": "OIHW", "source": args.input}
    if args.arch:
        meta["wanwu.arch"] = args.arch
    save_safetensors(args.output, out, meta)
    print(f"{args.output}: {len(out)} tensors, {sum(t.numel() for t in out.values()):,} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
