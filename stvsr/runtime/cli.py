"""``stvsr-run``: stream a video through an exported model (ONNX file or TensorRT engine)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from stvsr.cli_common import version_option


EXIT_ERROR, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 1, 2, 130, 143  # documented in README (stvsr-run)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the same clean-up as Ctrl-C runs (exit 143)."""


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"stvsr-run: error: {message}", err=True)
    sys.exit(code)


def _say(message: str) -> None:
    click.echo(f"stvsr-run: {message}", err=True)


_written: list[str] = []  # outputs this process completed (a later signal says so instead of "no output")


def _interrupted(terminated: bool, output: str | None) -> None:
    code, what = (EXIT_SIGTERM, "terminated") if terminated else (EXIT_SIGINT, "interrupted")
    if output is not None:
        _fail(f"{what} after {output} was completely written", code)
    _fail(f"{what}; no output written", code)


class _RunCommand(click.Command):
    """Signals while click itself runs (parsing the command line, or after the command returned)
    also end in one line and exit 130/143, not click's "Aborted!" with exit 1 or a bare SIGTERM."""

    def main(self, *args, **kwargs):
        import signal

        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)

        def _on_term(signum, frame):
            raise Terminated

        previous = signal.signal(signal.SIGTERM, _on_term)
        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.exceptions.Abort as exc:
            _interrupted(isinstance(exc.__cause__, Terminated), _written[-1] if _written else None)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        finally:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        sys.exit(code if isinstance(code, int) else 0)


def _memory(value: str) -> int | None:
    from stvsr.runtime.memory import MemoryBudgetError, parse_size

    try:
        return parse_size(value)
    except MemoryBudgetError as exc:
        raise click.BadParameter(str(exc)) from None


def default_output(input_path: str) -> str:
    p = Path(input_path)
    return str(p.with_name(f"{p.stem}.stvsr.mp4"))


@click.command(cls=_RunCommand, context_settings={"help_option_names": ["-h", "--help"]})
@version_option("stvsr-run")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output video. Default: INPUT's name with .stvsr.mp4.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace OUTPUT if it exists (never the input).")
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
@click.option("--max-memory", default="auto", show_default=True, callback=lambda ctx, param, value: _memory(value),
              help="Peak memory budget (e.g. 6G, 4000M; 0: none). Without --tile, the tile size comes from it and "
                   "the model's bytes per LR pixel, measured on the first window. auto: 6 GiB, or 80% of the "
                   "available memory if less (a default run fits an 8 GB machine). CPU (ONNX Runtime) only.")
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
def main(model, input, output, overwrite, factor, backend, providers, threads, tile, tile_overlap, max_memory, codec, crf, preset, pix_fmt,
         flow, dense_windows, max_frames, no_audio, quiet):
    """Super-resolve INPUT in space (x4) and time with MODEL (.onnx from stvsr-export, or a TensorRT .plan).

    \b
    Examples:
      stvsr-run zsm.onnx clip.mp4
      stvsr-run stvun-fp16.onnx clip.mp4 --factor 3 -o clip_x4_120fps.mp4
      stvsr-run zsm-fp16.plan clip.mp4 --tile 256
    """
    import signal

    received: list[int] = []

    def _on_signal(signum, frame):  # SIGTERM cleans up like Ctrl-C: no partial output is left behind
        received.append(signum)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    bar = None
    out = None
    output = output or default_output(input)
    status = (lambda message: None) if quiet else _say

    def progress_factory(windows: int):
        nonlocal bar
        if quiet:
            return lambda k: None
        from tqdm import tqdm

        # smoothing=0: the ETA is the average time per window so far (the first window includes warm-up)
        bar = tqdm(total=windows, unit="window", desc="stvsr-run", dynamic_ncols=True, file=sys.stderr, smoothing=0)
        return bar.update

    try:  # everything from here on, imports included, ends in one line and a documented exit code
        from stvsr.outfile import SafeOutput
        from stvsr.runtime.backends import open_backend
        from stvsr.runtime.pipeline import RunOptions, upscale_video
        from stvsr.runtime.video_io import check_encoder

        opts = RunOptions(factor=factor, tile=tile, tile_overlap=tile_overlap, codec=codec, crf=crf, preset=preset,
                          pix_fmt=pix_fmt, flow=flow, dense=dense_windows, max_frames=max_frames,
                          copy_streams=not no_audio, max_memory=max_memory)
        out = SafeOutput(output, [input, model], overwrite)  # refused before the model loads
        check_encoder(codec, pix_fmt, preset)                # so are unknown encoder settings
        status(f"loading model {model}")
        with open_backend(model, backend, [p for p in providers.split(",") if p], threads) as runner:
            report = upscale_video(runner, input, out, opts, progress_factory, status=status)
        _written.append(str(report.output))
        if bar is not None:
            bar.close()
        if not quiet:
            click.echo(f"stvsr-run: wrote {report.output}: {report.output_frames} frames "
                       f"({report.input_frames} in, factor {report.factor}), {report.size_out[0]}x{report.size_out[1]} "
                       f"at {float(report.fps_out):.3f} fps in {report.seconds:.1f} s "
                       f"({report.output_frames / report.seconds:.3g} frames/s)", err=True)
            if report.variable_rate:
                _say("the input has a variable frame rate: its real timestamps were kept (new frames at the "
                     f"fractions of each real gap; {float(report.fps_out):.3f} fps is the average)")
    except (KeyboardInterrupt, Exception) as exc:
        # A signal can also surface as another exception (e.g. ImportError from a C extension's init).
        if received or isinstance(exc, KeyboardInterrupt):
            term = (received[0] == signal.SIGTERM) if received else isinstance(exc, Terminated)
            _interrupted(term, output if out is not None and out.committed else None)
        if isinstance(exc, (RuntimeError, ValueError, OSError)):  # BackendError, MetadataError, VideoError, ...
            _fail(" ".join(str(exc).split()) or type(exc).__name__)
        _fail(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")  # never a traceback
    finally:
        if bar is not None:
            bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


if __name__ == "__main__":
    main()
