#!/usr/bin/env python
"""The plugins' AOT PTX, launched as TensorRT launches it, checked against PyTorch on a GPU (no TensorRT).

    python -m stvsr.plugins build --arch 90 -o ptx        # the PTX an engine build on this GPU would embed
    python benchmarks/gpu_kernels.py --ptx-dir ptx --out kernels.json
    python benchmarks/gpu_kernels.py --dry-run            # no GPU: build every case's launch layout only

Each PTX file of the manifest is loaded with cuda-bindings (``cuModuleLoadData``) and launched with
``cuLaunchKernel`` in TensorRT's argument layout (input pointers, int32 extras, output pointers;
:mod:`stvsr.plugins.ptx_launch`), on fresh random inputs and into an output filled with NaN (an
element the kernel does not write stays NaN and fails the check). Results are compared with the
PyTorch reference ops in FP32 (:func:`stvsr.ops.deform_conv2d`, :func:`stvsr.ops.backward_warp`,
``torch.nn.functional.grid_sample``) at 540p and 1080p, FP32 and FP16, and both are timed (CUDA
events, median). A second ``--ptx-dir`` (PTX built elsewhere, e.g. by another Triton on a CPU
machine) is checked for loading and correctness at the first size only. Exit status 1 when a
launch fails or an error bound is exceeded, 2 without a GPU.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from stvsr.timing import cuda_median_ms  # noqa: E402 (after the path set-up)

SIZES = {"540p": (540, 960), "1080p": (1080, 1920), "check": (37, 53)}
CHANNELS, DGROUPS = 64, 8
CHECK_TOL = {"fp32": 1e-4, "fp16": 1e-2}      # max error relative to the reference's largest magnitude


@dataclass(frozen=True)
class Case:
    op: str            # "deform_conv2d", "backward_warp", "grid_sample"
    detail: str        # "3x3", "border", "align_corners border", ...
    size: str
    dtype: str

    @property
    def label(self) -> str:
        return f"{self.op} {self.detail} {self.size} {self.dtype}"


OPS = (("deform_conv2d", "3x3"), ("deform_conv2d", "1x1"), ("backward_warp", "border"), ("backward_warp", "zeros"),
       ("grid_sample", "zeros"), ("grid_sample", "align_corners border"))


def cases(sizes: list[str], dtypes: list[str]) -> list[Case]:
    return [Case(op, detail, s, dt) for s in sizes for dt in dtypes for op, detail in OPS]


def shapes(case: Case) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of one case (zsm-like 64-channel features, batch 1)."""
    h, w = SIZES[case.size]
    if case.op == "deform_conv2d":
        k = int(case.detail[0])
        return {"x": (1, CHANNELS, h, w), "weight": (CHANNELS, CHANNELS, k, k),
                "offset": (1, DGROUPS * 2 * k * k, h, w), "bias": (CHANNELS,), "mask": (1, DGROUPS * k * k, h, w),
                "y": (1, CHANNELS, h, w)}
    if case.op == "backward_warp":
        return {"x": (1, CHANNELS, h, w), "flow": (1, 2, h, w), "y": (1, CHANNELS, h, w)}
    return {"x": (1, CHANNELS, h, w), "grid": (1, h, w, 2), "y": (1, CHANNELS, h, w)}


def plan(case: Case):
    """TensorRT's launch of ``case`` (grid, block, argument layout)."""
    from stvsr.plugins import ptx_launch

    s = shapes(case)
    if case.op == "deform_conv2d":
        pad = int(case.detail[0]) // 2
        return ptx_launch.deform_conv_plan(case.dtype, s["x"], s["weight"], s["offset"], (1, 1), (pad, pad))
    mode = case.detail.split()[-1]
    coords = "flow" if case.op == "backward_warp" else ("grid_align_corners" if "align" in case.detail else "grid")
    return ptx_launch.warp_plan(case.dtype, coords, mode, s["x"], s["y"][2:])


def _layout(args) -> str:
    """``in x2, int32 x5, out x1``: the argument kinds in launch order."""
    runs: list[list] = []
    for a in args:
        if runs and runs[-1][0] == a.kind:
            runs[-1][1] += 1
        else:
            runs.append([a.kind, 1])
    return ", ".join(f"{kind} x{n}" for kind, n in runs)


def dry_run(sizes: list[str], dtypes: list[str], log=print) -> int:
    """Every case's layout with made-up addresses and the parameter list TensorRT passes; no GPU."""
    from stvsr.plugins import ptx_launch

    n = 0
    for case in cases(sizes, dtypes):
        p = plan(case)
        types = ["u32" if t == "i32" else "u64" for t in p.variant.signature.values() if t != "constexpr"]
        args = ptx_launch.arguments(p, {name: 256 * (i + 1) for i, name in enumerate(p.tensors)}, types)
        n += 1
        log(f"  {case.label}: {p.variant.key}, grid {p.grid}, block {p.block}, "
            f"{len(args)} args: {_layout(args)}")
    log(f"gpu_kernels: no GPU (dry run): {n} launches planned, nothing launched")
    return 0


# ----------------------------------------------------------------------------- GPU

def _inputs(case: Case, seed: int) -> dict:
    import torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16}[case.dtype]
    g = torch.Generator(device="cuda").manual_seed(seed)
    s = shapes(case)

    def rnd(name, scale=1.0, dt=dtype):
        return (torch.randn(s[name], generator=g, device="cuda") * scale).to(dt)

    if case.op == "deform_conv2d":
        k = s["weight"][2]
        return {"x": rnd("x"), "weight": rnd("weight", 1.0 / (CHANNELS * k * k) ** 0.5), "offset": rnd("offset", 2.0),
                "bias": rnd("bias", 0.1), "mask": torch.rand(s["mask"], generator=g, device="cuda").to(dtype)}
    if case.op == "backward_warp":
        return {"x": rnd("x"), "flow": rnd("flow", 8.0, torch.float32)}
    grid = torch.rand(s["grid"], generator=g, device="cuda") * 2.2 - 1.1
    return {"x": rnd("x"), "grid": grid}


def _torch_op(case: Case, t: dict):
    """The PyTorch reference op on ``t`` (FP32 in: the reference; the case's dtype in: the timed op)."""
    import torch.nn.functional as F

    from stvsr import ops

    if case.op == "deform_conv2d":
        pad = t["weight"].shape[2] // 2
        return lambda: ops.deform_conv2d(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], 1, pad)
    mode = case.detail.split()[-1]
    if case.op == "backward_warp":
        return lambda: ops.backward_warp(t["x"], t["flow"], mode)
    return lambda: F.grid_sample(t["x"], t["grid"].to(t["x"].dtype), mode="bilinear", padding_mode=mode,
                                 align_corners="align" in case.detail)


class PtxDir:
    """A ``python -m stvsr.plugins build`` folder: manifest entries for one architecture, modules loaded on use."""

    def __init__(self, path: Path, arch: int):
        from stvsr.plugins import aot

        self.path = Path(path)
        manifest = aot.load_manifest(self.path)
        self.triton = manifest.get("triton_version", "?")
        self.entries = {e["key"]: e for e in manifest["kernels"] if e["arch"] == arch}
        self.modules: dict[str, object] = {}

    def kernel(self, key: str):
        """(module, entry, ptx text, manifest entry) of variant ``key``; raises when absent or not loadable."""
        from stvsr.plugins.ptx_launch import PtxModule

        if key not in self.entries:
            raise LookupError(f"{self.path}: no PTX for {key} on this GPU's architecture")
        e = self.entries[key]
        ptx = (self.path / e["file"]).read_text()
        if key not in self.modules:
            import torch

            self.modules[key] = PtxModule(ptx, torch.cuda.current_device())
        return self.modules[key], e["entry"], ptx, e


def run_case(ptx_dir: PtxDir, case: Case, seed: int, iters: int, timed: bool) -> dict:
    import torch

    from stvsr.plugins import ptx_launch

    p = plan(case)
    row = {"case": case.label, "op": case.op, "detail": case.detail, "size": case.size, "dtype": case.dtype,
           "variant": p.variant.key, "ptx_dir": str(ptx_dir.path), "triton": ptx_dir.triton}
    try:
        module, entry, ptx, e = ptx_dir.kernel(p.variant.key)
        row.update(entry=entry, ptx_version=ptx_launch.ptx_version(ptx))
        if e["launch"]["block_x"] != p.block[0]:
            raise ValueError(f"manifest block {e['launch']['block_x']} != {p.block[0]} from configs")
        t = _inputs(case, seed)
        ref = _torch_op(case, {k: v.float() for k, v in t.items()})()
        out = torch.full(shapes(case)["y"], float("nan"), dtype=t["x"].dtype, device="cuda")   # poisoned
        pointers = {name: t[name].data_ptr() for name in p.inputs} | {"y": out.data_ptr()}
        types = ptx_launch.ptx_params(ptx, entry)
        args = ptx_launch.arguments(p, pointers, types)
        row.update(params=len(types), hidden=sum(a.kind == "hidden" for a in args))
        shared = int(e["launch"]["shared_mem"])
        stream = torch.cuda.current_stream().cuda_stream

        def launch():
            module.launch(entry, p, args, shared, stream)
            return out

        launch()
        torch.cuda.synchronize()
        diff = (out.float() - ref).abs()
        row["nonfinite"] = int((~torch.isfinite(out)).sum())
        row["max_abs"] = float(diff.max())
        row["max_rel"] = float(diff.max() / ref.abs().max().clamp_min(1e-12))
        row["ok"] = row["nonfinite"] == 0 and row["max_rel"] <= CHECK_TOL[case.dtype]
        if timed:
            row["ptx_ms"] = cuda_median_ms(launch, iters)
            row["torch_ms"] = cuda_median_ms(_torch_op(case, t), iters)
            row["speedup_vs_torch"] = row["torch_ms"] / row["ptx_ms"]
    except Exception as exc:  # noqa: BLE001 - one failing kernel must not hide the others
        row["ok"] = False
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptx-dir", type=Path, action="append", default=[],
                    help="PTX folder (python -m stvsr.plugins build); repeatable, the first is timed")
    ap.add_argument("--sizes", default="540p,1080p")
    ap.add_argument("--dtypes", default="fp32,fp16")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    ap.add_argument("--dry-run", action="store_true", help="plan every launch; use no GPU")
    args = ap.parse_args(argv)
    sizes, dtypes = args.sizes.split(","), args.dtypes.split(",")
    bad = [s for s in sizes if s not in SIZES] + [d for d in dtypes if d not in CHECK_TOL]
    if bad:
        print(f"gpu_kernels: unknown size/dtype {', '.join(bad)}", file=sys.stderr)
        return 2
    if args.dry_run:
        return dry_run(sizes, dtypes)
    if not args.ptx_dir:
        print("gpu_kernels: --ptx-dir is required (python -m stvsr.plugins build --arch XX -o DIR)", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print("gpu_kernels: no CUDA GPU visible to torch; nothing was launched", file=sys.stderr)
        return 2
    from stvsr.plugins.ptx_launch import driver_version

    torch.zeros(1, device="cuda")                      # torch's CUDA context first: the PTX loads into it
    torch.backends.cuda.matmul.allow_tf32 = False     # the FP32 reference is FP32
    torch.backends.cudnn.allow_tf32 = False
    major, minor = torch.cuda.get_device_capability()
    arch = major * 10 + minor
    info = {"device": torch.cuda.get_device_name(), "arch": arch, "driver_cuda": driver_version(),
            "torch": torch.__version__}
    print(json.dumps(info), flush=True)
    rows = []
    for i, d in enumerate(args.ptx_dir):
        ptx_dir = PtxDir(d, arch)
        for j, case in enumerate(cases(sizes if i == 0 else sizes[:1], dtypes)):
            row = run_case(ptx_dir, case, seed=1000 * i + j, iters=args.iters, timed=i == 0)
            rows.append(row)
            print(json.dumps(row), flush=True)
            torch.cuda.empty_cache()
    if args.out:
        args.out.write_text(json.dumps({**info, "tolerance": CHECK_TOL, "rows": rows}, indent=1))
    bad = [r for r in rows if not r["ok"]]
    print(f"gpu_kernels: {len(rows) - len(bad)}/{len(rows)} launches within bounds {CHECK_TOL}", flush=True)
    for r in bad:
        print(f"gpu_kernels: FAILED {r['case']} ({r['ptx_dir']}): "
              f"{r.get('error') or 'max_rel %.2e, %d non-finite' % (r['max_rel'], r['nonfinite'])}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
