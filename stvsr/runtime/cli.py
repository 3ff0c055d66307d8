"""``stvsr-run``: stream a video through an exported model (ONNX file or TensorRT engine)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"stvsr-run: error: {message}", err=True)
    sys.exit(code)


def default_output(input_path: str) -> str:
    p = Path(input_path)
    return str(p.with_name(f"{p.stem}.stvsr.mp4"))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output video. Default: INPUT's name with .stvsr.mp4.")
@click.option("--factor", type=click.IntRange(0, 64), default=None,
              help="New frames per gap between input frames (output fps = input fps x (factor+1)). "
                   "Models with a times input (stvun, fmu) take any value, default 1; "
                   "fixed-midpoint models (zsm, starnet) only their own (1).")
@click.option("--backend", type=click.Choice(["auto", "onnxruntime", "tensorrt"]), default="auto", show_default=True,
              help="auto: .onnx -> ONNX Runtime, .plan/.engine -> TensorRT.")
@click.option("--providers", default="CPUExecutionProvider", show_default=True,
              help="ONNX Runtime execution providers, comma separated (e.g. CUDAExecutionProvider,CPUExecutionProvider).")
@click.option("--threads", type=click.IntRange(0, 256), default=0, help="ONNX Runtime intra-op threads (0: all cores).")
@click.option("--tile", type=click.IntRange(16, 8192), default=None,
              help="Process frames in LR tiles of this many pixels (overlapping) to bound memory.")
@click.option("--tile-overlap", type=click.IntRange(0, 512), default=16, show_default=True, help="LR pixels of tile overlap.")
@click.option("--codec", default="libx264", show_default=True, help="Output video codec (any FFmpeg encoder in PyAV).")
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True, help="Constant rate factor (quality).")
@click.option("--preset", default="medium", show_default=True, help="Encoder preset (x264/x265).")
@click.option("--pix-fmt", default="yuv420p", show_default=True, help="Output pixel format.")
@click.option("--flow", type=click.Choice(["farneback", "dis"]), default="farneback", show_default=True,
              help="Optical flow for models that take flows (starnet).")
@click.option("--dense-windows", is_flag=True, help="Slide fixed-output windows by one frame (more context, slower).")
@click.option("--frames", "max_frames", type=click.IntRange(1), default=None, help="Only the first N input frames.")
@click.option("--no-audio", is_flag=True, help="Do not copy audio and subtitle streams.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def main(model, input, output, factor, backend, providers, threads, tile, tile_overlap, codec, crf, preset, pix_fmt,
         flow, dense_windows, max_frames, no_audio, quiet):
    """Super-resolve INPUT in space (x4) and time with MODEL (.onnx from stvsr-export, or a TensorRT .plan).

    \b
    Examples:
      stvsr-run zsm.onnx clip.mp4
      stvsr-run stvun-fp16.onnx clip.mp4 --factor 3 -o clip_x4_120fps.mp4
      stvsr-run zsm-fp16.plan clip.mp4 --tile 256
    """
    from stvsr.export.metadata import MetadataError
    from stvsr.runtime.backends import BackendError, open_backend
    from stvsr.runtime.pipeline import RunOptions, upscale_video
    from stvsr.runtime.windows import PlanError
    from stvsr.video import VideoError

    import signal

    def _terminate(signum, frame):  # SIGTERM cleans up like Ctrl-C: no partial output is left behind
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    output = output or default_output(input)
    if os.path.abspath(output) == os.path.abspath(input):
        _fail("the output would overwrite the input; choose another -o")
    opts = RunOptions(factor=factor, tile=tile, tile_overlap=tile_overlap, codec=codec, crf=crf, preset=preset,
                      pix_fmt=pix_fmt, flow=flow, dense=dense_windows, max_frames=max_frames, copy_streams=not no_audio)
    bar = None

    def progress_factory(total: int):
        nonlocal bar
        if quiet:
            return lambda k: None
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="stvsr-run", dynamic_ncols=True, file=sys.stderr)
        return bar.update

    try:
        with open_backend(model, backend, [p for p in providers.split(",") if p], threads) as runner:
            report = upscale_video(runner, input, output, opts, progress_factory)
    except (BackendError, MetadataError, PlanError, VideoError, RuntimeError, ValueError, OSError) as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        _fail("interrupted; no output written", 130)
    finally:
        if bar is not None:
            bar.close()
    if not quiet:
        click.echo(f"stvsr-run: wrote {report.output}: {report.output_frames} frames "
                   f"({report.input_frames} in, factor {report.factor}), {report.size_out[0]}x{report.size_out[1]} "
                   f"at {float(report.fps_out):.3f} fps in {report.seconds:.1f} s "
                   f"({report.output_frames / report.seconds:.2f} frames/s)", err=True)


if __name__ == "__main__":
    main()
