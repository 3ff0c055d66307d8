"""``stvsr-export``: a network and its weights in, a verified self-describing ONNX file out."""
from __future__ import annotations

import sys

import click

from stvsr import cli_signals, models
from stvsr.cli_common import version_option
from stvsr.export.onnx_export import DEFAULT_OPSET, MIN_OPSET
from stvsr.export.weights import CACHE_ENV


def _fail(message: str) -> None:
    cli_signals.active().settle()  # the outcome is decided: a later signal does not add a second line
    click.echo(f"stvsr-export: error: {message}", err=True)
    sys.exit(1)


def _stopped(exc: BaseException, known: tuple[type, ...], prefix: str = "") -> None:
    """One line for whatever ended the export: a signal (exit 128+N, whatever exception it surfaced
    as), a known error or a disk error (exit 1), or anything else (exit 1, never a traceback)."""
    guard = cli_signals.active()
    guard.settle()
    signum = guard.signal_of(exc)
    if signum is not None:
        guard.interrupted(signum)
    text = " ".join(str(exc).split())
    if isinstance(exc, known + (OSError,)):
        _fail(prefix + (text or type(exc).__name__))
    _fail(f"{prefix}unexpected {type(exc).__name__}: {text[:300]}")


class _ExportCommand(cli_signals.SignalSafeCommand):
    """Exit codes 0, 1, 2 and 128+N (130 Ctrl-C, 143 SIGTERM, ...): see stvsr.cli_signals."""

    prog, nothing_written = "stvsr-export", "nothing was written"


def _max_opset() -> int:
    """The newest opset torch's ONNX exporter (TorchScript-based, which stvsr uses) can write."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET

        return max(MIN_OPSET, int(ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET))
    except Exception:  # a private constant: assume the opset torch 2.13 supports
        return 20


@click.command(cls=_ExportCommand, context_settings={"help_option_names": ["-h", "--help"]})
@version_option("stvsr-export")
@click.option("--model", "name", required=True, type=click.Choice(models.NAMES), help="Network to export.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help=f"Official checkpoint file. Default: the official file name in ${CACHE_ENV}/weights "
                   "(~/.cache/stvsr/weights).")
@click.option("--random-weights", is_flag=True, help="Export with seeded random weights (tests, benchmarks); "
                                                     "recorded in the file's metadata.")
@click.option("--fp16", is_flag=True, help="FP16 graph (FP32 inputs/outputs and FP32 grid/flow arithmetic).")
@click.option("--int8", is_flag=True, help="INT8 graph with explicit Q/DQ nodes; needs --calib.")
@click.option("--calib", type=click.Path(dir_okay=False), default=None, help="Video whose frames calibrate INT8.")
@click.option("--calib-windows", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Calibration windows read from --calib (with --int8).")
@click.option("--target", "int8_target", type=click.Choice(["cpu", "tensorrt"]), default=None,
              help="INT8 only. cpu: uint8 activations, what ONNX Runtime's CPU kernels fuse (stvsr-run on a CPU); "
                   "tensorrt: symmetric int8. Default: tensorrt with --profile or --plugins native|stvsr, else cpu.")
@click.option("--all-outputs", is_flag=True,
              help="Keep every fixed output. By default zsm and tmnet drop their window's last output, the next "
                   "window's first, so that windows at stride 3 compute no output twice.")
@click.option("--window", type=click.IntRange(1), default=None,
              help="Frames per window, for a network exported for several: tmnet 4 (tmnet_single_frame.pth, the "
                   "default) or 2 (tmnet_multiple_frames.pth). Default: from the weights file name, else the "
                   "network's default.")
@click.option("--opset", type=click.IntRange(MIN_OPSET, _max_opset()), default=DEFAULT_OPSET, show_default=True,
              help=f"ONNX opset, {MIN_OPSET} to {_max_opset()} (DeformConv needs {MIN_OPSET}; torch's exporter "
                   f"writes up to {_max_opset()}).")
@click.option("--plugins", type=click.Choice(["none", "native", "stvsr"]), default="none", show_default=True,
              help="none: portable standard ONNX; native: the same graph, recorded in the metadata as meant for "
                   "TensorRT's built-in DeformConv/GridSample; stvsr: our Triton TensorRT plugin nodes (TensorRT only).")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output file. Default: <model>[-fp16|-int8][-native|-stvsr].onnx in the current folder. "
                   "Written to a temporary name and renamed when complete.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace the output file if it exists (refused otherwise).")
@click.option("--no-verify", is_flag=True, help="Skip the FP32 graph vs PyTorch check (FP16/INT8 graphs are still "
                                                "compared with the FP32 graph).")
@click.option("--profile", "profiles", multiple=True,
              help="Also build a TensorRT engine for this resolution (repeatable): a preset naming the output "
                   "(360p, 540p, 720p, 1080p, 1440p, 4k) or LR input sizes WxH / WxH:WxH:WxH (min:opt:max).")
@click.option("--engine-dir", type=click.Path(file_okay=False), default="engines", show_default=True,
              help="Engine cache folder (plans, their .json metadata, the timing cache).")
@click.option("--workspace", type=click.IntRange(64), default=4096, show_default=True, help="TensorRT workspace (MiB).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
def main(name, weights, random_weights, fp16, int8, calib, calib_windows, int8_target, all_outputs, window, opset,
         plugins, output, overwrite, no_verify, profiles, engine_dir, workspace, quiet):
    """Export the network named by --model to ONNX, verified against PyTorch on ONNX Runtime (CPU).

    \b
    Examples:
      stvsr-export --model zsm --weights xiang2020zooming.pth
      stvsr-export --model stvun --fp16
      stvsr-export --model fmu --int8 --calib clip.mp4 -o fmu-int8.onnx
      stvsr-export --model zsm --random-weights -o zsm.onnx
      stvsr-export --model tmnet --weights tmnet_multiple_frames.pth   (windows of 2 frames, any --factor)
    """
    from stvsr.export.api import default_output, export_model
    from stvsr.export.onnx_export import ExportError
    from stvsr.models.checkpoint import CheckpointError
    from stvsr.video import VideoError

    if fp16 and int8:
        _fail("choose one of --fp16 and --int8")
    if calib and not int8:
        _fail("--calib is only used with --int8")
    precision = "fp16" if fp16 else "int8" if int8 else "fp32"
    for_tensorrt = bool(profiles) or plugins != "none"
    if int8_target and not int8:
        _fail("--target is only used with --int8")
    if int8_target == "cpu" and for_tensorrt:
        _fail("--target cpu makes an ONNX Runtime graph; --profile and --plugins native|stvsr need --target tensorrt")
    int8_target = int8_target or ("tensorrt" if for_tensorrt else "cpu")
    log = (lambda m: None) if quiet else (lambda m: click.echo(f"stvsr-export: {m}", err=True))
    cli_signals.active().watch(output or default_output(name, precision, plugins))
    from stvsr.export.graphs import base_metadata, choose_window

    try:  # before anything slow: a window the network is not exported for
        window = choose_window(name, window, weights)
    except ValueError as exc:
        _fail(str(exc))
    parsed = []
    if profiles:
        from stvsr.engines.builder import require_tensorrt
        from stvsr.engines.profiles import ProfileError, parse_profile

        meta = base_metadata(name, not all_outputs, window)
        try:
            parsed = [parse_profile(p, meta.scale, meta.size_multiple) for p in profiles]
            require_tensorrt()  # fail before the export, not after
        except (ProfileError, RuntimeError) as exc:
            _fail(str(exc))
    try:  # export_model refuses an existing output (without -y), a folder or an input before the slow work
        report = export_model(name, weights, random_weights, precision, calib, opset, output, not no_verify,
                              plugins, calib_windows, log, int8_target, all_outputs, overwrite, window=window,
                              for_tensorrt=for_tensorrt)
    except (KeyboardInterrupt, Exception) as exc:  # one line; the temporary file is already removed
        _stopped(exc, (ExportError, CheckpointError, VideoError, ValueError))
    if parsed:
        from stvsr.engines.builder import build_engines
        from stvsr.engines.cache import BuildSettings

        try:
            plans = build_engines(str(report.path), parsed, BuildSettings(precision, plugins, workspace), engine_dir, log)
        except (KeyboardInterrupt, Exception) as exc:  # TensorRT and CUDA errors come in many types
            if cli_signals.active().signal_of(exc) is None and str(exc):
                exc = RuntimeError(str(exc).splitlines()[0])
            _stopped(exc, (Exception,), "engine build failed: ")
        if not quiet:
            for plan in plans:
                click.echo(str(plan))
    if not quiet:
        click.echo(str(report.path))


if __name__ == "__main__":
    main()
