#!/usr/bin/env python3
"""Copies kernels/*.cuh for the CUDA emulator (tests/emu): g++ cannot parse a kernel launch, so
each `kernel<args><<<grid, block, smem, stream>>>(params)` becomes
`::wanwu::emu::launch(grid, block, smem, stream)([=](auto... a) { kernel<args>(a...); })(params)`
(a call, so template arguments are deduced from the parameters as a launch deduces them; the
lambda copies what names the kernel, a local function pointer included, because a launch on a
stream being captured into a graph runs again at each replay, after the launching function has
returned), and runtime.cuh includes
the emulator's device header after the CUDA headers. Nothing else changes: the emulated test runs
the kernels' own code. Usage: rewrite_kernels.py KERNELS_DIR OUT_DIR
"""
import pathlib
import re
import sys

IDENT = re.compile(r"[A-Za-z0-9_:]")


def kernel_start(text: str, end: int) -> int:
    """Index where the kernel expression that ends just before `end` starts: an identifier
    (possibly qualified) followed by an optional balanced template argument list."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if text[i - 1] == ">":
        depth = 0
        while True:
            i -= 1
            c = text[i]
            if c in ">)":
                depth += 1
            elif c in "<(":
                depth -= 1
                if depth == 0:
                    break
    while i > 0 and IDENT.match(text[i - 1]):
        i -= 1
    return i


def rewrite(text: str, name: str) -> str:
    out = []
    pos = 0
    count = 0
    while True:
        a = text.find("<<<", pos)
        if a < 0:
            break
        b = text.find(">>>", a)
        if b < 0:
            sys.exit(f"{name}: '<<<' without '>>>'")
        s = kernel_start(text, a)
        kernel = text[s:a].strip()
        if not kernel or not IDENT.match(kernel[0]):
            sys.exit(f"{name}: cannot find the kernel before the launch at offset {a}")
        cfg = text[a + 3:b]
        out.append(text[pos:s])
        # the line breaks the kernel's name had before its launch, kept so that the copy's line
        # numbers (in compiler errors and the emulator's file:line sites) are the original's
        breaks = "\n" * text[s:a].count("\n")
        base = re.match(r"[A-Za-z_:][A-Za-z_0-9:]*", kernel).group(0)
        out.append(f'::wanwu::emu::launch_named("{base}", {cfg})([=](auto... a) {{ {kernel}(a...); }}){breaks}')
        pos = b + 3
        count += 1
    out.append(text[pos:])
    return "".join(out)


def main() -> None:
    src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.cuh")):
        text = rewrite(f.read_text(), f.name)
        if f.name == "runtime.cuh":
            anchor = "#include <cudnn.h>\n"
            if anchor not in text:
                sys.exit("runtime.cuh: no '#include <cudnn.h>' to put the emulator's header after")
            text = text.replace(anchor, anchor + '#include "emu_device.hpp"\n', 1)
        target = dst / f.name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)


if __name__ == "__main__":
    main()
