"""``python -m stvsr.plugins build --arch 80,86,89,90 -o DIR``: compile every plugin kernel to PTX."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _archs(text: str) -> list[int]:
    try:
        archs = [int(a.strip().removeprefix("sm_")) for a in text.split(",") if a.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--arch takes comma-separated compute capabilities like 80,86; got {text!r}")
    bad = [a for a in archs if a < 75]
    if not archs or bad:
        raise argparse.ArgumentTypeError(f"--arch needs compute capabilities >= 75 (Triton's minimum), got {text!r}")
    return archs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stvsr.plugins", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile the Triton kernels to PTX for the listed GPU architectures")
    b.add_argument("--arch", type=_archs, default=_archs("80,86,89,90"),
                   help="comma-separated compute capabilities (default 80,86,89,90)")
    b.add_argument("-o", "--out", type=Path, required=True, help="output directory (PTX files + manifest.json)")
    b.add_argument("--kernel", action="append", choices=["deform_conv2d", "backward_warp"],
                   help="only this kernel (repeatable; default all)")
    b.add_argument("--keep-hidden-params", action="store_true",
                   help="keep Triton's hidden scratch pointer parameters in the PTX (not launchable by TensorRT)")
    b.add_argument("--reuse-cache", action="store_true", help="use Triton's on-disk cache (faster rebuilds)")
    args = parser.parse_args(argv)

    from .aot import build

    manifest = build(args.arch, args.out, kernels=args.kernel, strip=not args.keep_hidden_params,
                     fresh_cache=not args.reuse_cache)
    total = sum(k["ptx_bytes"] for k in manifest["kernels"])
    print(f"{len(manifest['kernels'])} kernels, {total / 1024:.0f} KiB PTX, {manifest['build_s']:.1f} s "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
