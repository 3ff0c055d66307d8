"""``stvsr-bench``: parameters, GFLOPs, latency, efficiency and fidelity of every network and backend."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from stvsr.cli_common import version_option
from stvsr.models import NAMES

QUICK_SIZE = (16, 16)
QUICK_BACKENDS = "pytorch,ort-fp32"
FULL_BACKENDS = "pytorch,ort-fp32,ort-fp16,ort-int8,trt-fp16,trt-int8"
RESULT_FILES = ("results.md", "results.json", "latency.png")


class OutDirError(ValueError):
    """An output folder stvsr-bench must not write into."""


def default_out(mode: str) -> Path:
    """``stvsr-bench-<mode>`` in the current folder (never the committed ``benchmarks/results``)."""
    return Path(f"stvsr-bench-{mode}")


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse a folder that already holds results (unless ``overwrite``), a file, or an unwritable place."""
    if out.exists() and not out.is_dir():
        raise OutDirError(f"{out} is not a folder")
    held = [name for name in RESULT_FILES if (out / name).exists()]
    if held and not overwrite:
        raise OutDirError(f"{out} already holds results ({', '.join(held)}); pass --overwrite (-y) to "
                               "replace them, or choose another --out")
    parent = out if out.is_dir() else next((p for p in out.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutDirError(f"cannot write results into {out}: {parent} is not a writable folder")


def _size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter("size must be WIDTHxHEIGHT, e.g. 180x144") from None
    if w <= 0 or h <= 0:
        raise click.BadParameter("size must be positive")
    return w, h


def _names(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise click.BadParameter(f"unknown {what} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    return names


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@version_option("stvsr-bench")
@click.option("--quick", is_flag=True, help="CI smoke mode: 16x16 LR, 1 repeat, PyTorch and ORT FP32.")
@click.option("--models", "models_", default=",".join(NAMES), show_default=True, help="Comma-separated networks.")
@click.option("--backends", default=None, help=f"Comma-separated; default full: {FULL_BACKENDS}.")
@click.option("--repeats", type=click.IntRange(1), default=None, help="Timed repeats (default 3; quick 1).")
@click.option("--warmup", type=click.IntRange(0), default=None, help="Warm-up calls (default 1; quick 0).")
@click.option("--threads", type=click.IntRange(0), default=0, help="Threads for PyTorch and ORT (0: PyTorch the fastest count here, probed; ORT its default).")
@click.option("--size", default=None, help="LR WIDTHxHEIGHT for every network (default: the papers' sizes).")
@click.option("--times", type=click.IntRange(1), default=1, show_default=True,
              help="Interpolated frames per gap for stvun/fmu/tmnet.")
@click.option("--no-comparisons", is_flag=True, help="Skip the one-stage/two-stage timing.")
@click.option("--speed", is_flag=True, help="Speed changes against today's graphs, one ratio per change measured "
                                            "in one run (fmu, zsm, DeformConv; ORT CPU, 1 thread unless --threads).")
@click.option("--video", default=None, help="Real footage for PSNR and INT8 calibration (default: bikes clip).")
@click.option("-o", "--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder (default ./stvsr-bench-<mode>). To refresh the committed results: "
                   "-o benchmarks/results/<mode> --overwrite.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace results already in the output folder (refused otherwise).")
def main(quick, models_, backends, repeats, warmup, threads, size, times, no_comparisons, speed, video, out_dir,
         overwrite):
    """Benchmark the STVSR networks and write results.md, results.json and latency.png."""
    from stvsr.bench.report import write_all
    from stvsr.bench.runner import BACKENDS, Config, default_video, run

    mode = "speed" if speed else "quick" if quick else "full"
    out = Path(out_dir) if out_dir else default_out(mode)
    try:
        check_out_dir(out, overwrite)  # before minutes of benchmarking, not after
    except OutDirError as exc:
        click.echo(f"stvsr-bench: error: {exc}", err=True)
        sys.exit(1)
    cfg = Config(
        mode=mode, models=_names(models_, NAMES, "model"),
        backends=_names(backends or (QUICK_BACKENDS if quick else FULL_BACKENDS), BACKENDS, "backend"),
        repeats=repeats or (1 if quick else 3), warmup=1 if warmup is None and not quick else (warmup or 0),
        threads=threads, size=_size(size) or (QUICK_SIZE if quick else None), video=video or default_video(),
        times=times, comparisons=not no_comparisons, log=lambda s: click.echo(s, err=True))
    if video and not Path(video).is_file():
        raise click.BadParameter(f"video not found: {video}")
    if speed:
        from stvsr.bench.speed import SECTIONS, run_speed, write_speed

        cfg.threads = threads or 1
        sections = [s for s in SECTIONS if s in cfg.models or (s == "deform" and "zsm" in cfg.models)]
        for path in write_speed(run_speed(cfg, sections), out):
            click.echo(str(path))
        return 0
    result = run(cfg)
    for path in write_all(result, out):
        click.echo(str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
