"""``stvsr-run``: stream a video through an exported model (ONNX file or TensorRT engine)."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from stvsr import cli_signals
from stvsr.cli_common import version_option


# Documented in README (stvsr-run): 0, 1, 2, and 128+N for signal N (130 SIGINT, 143 SIGTERM); stvsr.cli_signals.
# 141 (128+SIGPIPE) also when the reader of standard output closed it (-o -).
EXIT_ERROR, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM, EXIT_PIPE = 1, 2, 130, 143, 141


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    cli_signals.active().settle()  # the outcome is decided: a later signal does not add a second line
    click.echo(f"stvsr-run: error: {message}", err=True)
    sys.exit(code)


def _say(message: str) -> None:
    click.echo(f"stvsr-run: {message}", err=True)


class _RunCommand(cli_signals.SignalSafeCommand):
    """Signals while click itself runs (parsing the command line, or after the command returned)
    also end in one line and exit 128+N, not click's "Aborted!" with exit 1 or a bare SIGTERM."""

    prog, nothing_written = "stvsr-run", "no output written"


def _check_input(path: str):
    """The input described (``media.probe``: one open, a demux scan), so that a missing, unreadable or
    frameless input is reported before the model loads; its ``MediaInfo``."""
    from stvsr.runtime.media import probe

    return probe(path)


def _check_model(model: str, backend: str, factor: int | None) -> None:
    """Options the model's metadata alone refuses (``--factor``), before the model loads: the metadata
    is read without a runtime (stvsr.runtime.backends.peek_model); where it cannot be, the load says why."""
    from stvsr.runtime.backends import peek_model
    from stvsr.runtime.planning.windows import check_factor

    peeked = peek_model(model, backend)
    if peeked is not None:
        check_factor(peeked.metadata, factor, peeked.max_factor)


def _memory(value: str) -> int | None:
    from stvsr.runtime.planning.memory import MemoryBudgetError, parse_size

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
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...", type=click.Path())
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output video. Default: INPUT's name with .stvsr.mp4. With several inputs or a folder: the "
                   "folder each output goes to as INPUT-NAME.mp4 (outputs already there are skipped). -: standard output "
                   "(--output-format).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace OUTPUT if it exists (never the input).")
@click.option("--factor", type=click.IntRange(0, 64), default=None,
              help="New frames per gap between input frames (output fps = input fps x (factor+1)). "
                   "Models with a times input (stvun, fmu, tmnet) take 1 to 64 (1 to 8 with a TensorRT .plan), "
                   "default 1; fixed-midpoint models (zsm, starnet) only their own number, 1, the default. "
                   "0 (no new frames) is refused by both; "
                   "it only suits a model that makes no new frames.")
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
@click.option("--pix-fmt", default="auto", show_default=True,
              help="Output pixel format. auto: the input's chroma layout and bit depth (10-bit and HDR kept; RGB "
                   "input: RGB, or 4:4:4 YUV of at least 10 bits where the encoder takes no RGB), or the nearest "
                   "format the encoder takes.")
@click.option("--flow", type=click.Choice(["farneback", "dis"]), default="farneback", show_default=True,
              help="Optical flow for models that take flows (starnet).")
@click.option("--dense-windows", is_flag=True, help="Slide fixed-output windows by one frame (more context, slower).")
@click.option("--frames", "max_frames", type=click.IntRange(1), default=None, help="Only the first N input frames.")
@click.option("--scene-cuts", default="auto", show_default=True, metavar="auto|off|FILE",
              help="Plan each shot like a video of its own (no window across a cut; the new frames at a cut repeat "
                   "the frame before it). auto: detect hard cuts (PySceneDetect); off: one shot; FILE: cut frame "
                   "numbers from 0, one per line (# comments), or PySceneDetect's scene-list CSV. Standard input (INPUT -): "
                   "off unless FILE (auto needs a file).")
@click.option("--no-audio", is_flag=True, help="Do not copy audio and subtitle streams.")
@click.option("--segment-frames", type=click.IntRange(1), default=1000, show_default=True,
              help="Split a longer video (at shot cuts first) into segments of about N input frames, each encoded "
                   "to a part in the work folder and joined by stream copy; a rerun resumes from the finished parts.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the parts and their manifest: a new or empty folder, or one an earlier run made (any "
                   "other non-empty folder is refused). Default: .OUTPUT-NAME.stvsr-parts beside the output.")
@click.option("--keep-parts", is_flag=True, help="Keep the work folder after a successful join.")
@click.option("--workers", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Segments computed at once, as Ray tasks when more than 1 (needs the ray extra); at most the "
                   "cluster's CPU cores (GPUs for a GPU backend).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run segments as Ray tasks: local (start Ray here), auto, HOST:PORT or ray://HOST:PORT "
                   "(a cluster whose nodes all see MODEL, INPUT and the work folder at the same paths).")
@click.option("--input-format", type=click.Choice(["y4m", "nut", "matroska"]), default="y4m", show_default=True,
              help="The format of standard input (INPUT -).")
@click.option("--output-format", type=click.Choice(["y4m", "nut", "matroska"]), default="y4m", show_default=True,
              help="The format of standard output (-o -): y4m and nut hold raw video, matroska lossless FFV1 "
                   "(--codec chooses another for nut and matroska), in the input's chroma layout and bit depth "
                   "(y4m above 8 bits is FFmpeg's extension: ffmpeg reads it with -strict -1 only when writing y4m).")
@click.option("--verbose", is_flag=True, help="Also show Ray's own log lines (kept off the terminal by default).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def main(model, inputs, output, overwrite, factor, backend, providers, threads, tile, tile_overlap, max_memory, codec, crf, preset, pix_fmt,
         flow, dense_windows, max_frames, no_audio, quiet, segment_frames, work_dir, keep_parts, workers, ray_address, scene_cuts,
         verbose, input_format, output_format):
    """Super-resolve INPUT in space (x4) and time with MODEL (.onnx from stvsr-export, or a TensorRT .plan).
    Several inputs, or a folder of videos, are run one after another with the model loaded once.

    \b
    Examples:
      stvsr-run zsm.onnx clip.mp4
      stvsr-run stvun-fp16.onnx clip.mp4 --factor 3 -o clip_x4_120fps.mp4
      stvsr-run zsm-fp16.plan clip.mp4 --tile 256
      stvsr-run zsm.onnx episodes/ -o upscaled/
      ffmpeg -i in.mkv -f yuv4mpegpipe - | stvsr-run zsm.onnx - -o - --output-format nut | ffmpeg -i - -c:v libx265 out.mkv

    \b
    Pipes: INPUT - reads standard input, -o - writes standard output (video only, constant rate; the frames
    equal a file run's). Scene cuts on standard input: off unless --scene-cuts FILE (auto needs a file).
    Exit codes: 0 written, 1 error (one line on stderr), 2 usage error, 128+N stopped by signal N
    (130 Ctrl-C, 143 SIGTERM), 141 the reader of standard output closed it (or SIGPIPE).
    """
    guard = cli_signals.active()  # SIGINT, SIGTERM, SIGHUP, ... raise here: the clean-up of Ctrl-C runs for all
    bar = None
    out = None
    input, output_dir = inputs[0], output  # several inputs (or a folder) run as a batch below
    output = output or default_output(input)
    def status(message: str) -> None:
        # Warnings (a truncated input) are printed even with -q; a message never goes into the bar's line.
        if quiet and not message.startswith("warning:"):
            return
        if bar is not None and not bar.disable:
            bar.clear()
            _say(message)
            bar.refresh()
        else:
            _say(message)

    def end_bar() -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None

    def progress_factory(windows: int | None):
        """A bar of ``windows``; None: of output frames without a total (a pipe's count comes at its end),
        so it shows the frames done and their rate."""
        nonlocal bar
        if quiet:
            return lambda k: None
        from tqdm import tqdm

        # smoothing=0: the ETA is the average time per window so far (the first window includes warm-up);
        # disable=None: no bar at all when stderr is not a terminal (a log file gets the messages only)
        bar = tqdm(total=windows, unit="window" if windows is not None else "frame", desc="stvsr-run",
                   dynamic_ncols=True, file=sys.stderr, smoothing=0, disable=None)
        return bar.update

    try:  # everything from here on, imports included, ends in one line and a documented exit code
        from stvsr.outfile import SafeOutput
        from stvsr.runtime.backends import open_backend
        from stvsr.runtime.jobs import LongRunOptions, ModelSource, check_long_options, run_video
        from stvsr.runtime.onepass import RunOptions
        from stvsr.runtime.jobs.batch import BatchError, is_batch, plan_batch, run_batch
        from stvsr.runtime.planning.shots import load_spec
        from stvsr.runtime.media import PIPE, check_encoder

        opts = RunOptions(factor=factor, tile=tile, tile_overlap=tile_overlap, codec=codec, crf=crf, preset=preset,
                          pix_fmt=pix_fmt, flow=flow, dense=dense_windows, max_frames=max_frames,
                          copy_streams=not no_audio, max_memory=max_memory, scene_cuts=scene_cuts)
        cut_file = scene_cuts not in ("auto", "off")  # read once, below, against its input's frame count
        source = ModelSource(model, backend, tuple(p for p in providers.split(",") if p), threads)
        long = LongRunOptions(segment_frames, work_dir, keep_parts, workers,
                              None if ray_address is None else ("" if ray_address == "local" else ray_address), verbose)
        check_long_options(long)  # --work-dir usable, Ray importable and answering: before the model loads

        def run_one(runner, path: str, target: SafeOutput, info) -> None:
            """One input (probed: ``info``) into ``target``, then its summary line (alone or in a batch)."""
            report = run_video(runner, source, path, target, opts, long, progress_factory, status=status, info=info)
            end_bar()
            if not quiet:
                click.echo(f"stvsr-run: wrote {report.output}: {report.output_frames} frames "
                           f"({report.input_frames} in, factor {report.factor}), {report.size_out[0]}x{report.size_out[1]} "
                           f"at {float(report.fps_out):.3f} fps in {report.seconds:.1f} s "
                           f"({report.output_frames / report.seconds:.3g} frames/s)"
                           f"{'' if scene_cuts == 'off' else f', {report.cuts} scene cut' + 's' * (report.cuts != 1)}",
                           err=True)
                if report.variable_rate:
                    _say("the input has a variable frame rate: its real timestamps were kept (new frames at the "
                         f"fractions of each real gap; {float(report.fps_out):.3f} fps is the average)")

        if PIPE in inputs or output_dir == PIPE:
            _run_piped(guard, model, inputs, output_dir, overwrite, opts, source, scene_cuts, no_audio, quiet,
                       input_format, output_format, status, end_bar, progress_factory)
            return
        if is_batch(inputs, output_dir):  # several videos: each one as a single input would run, one model load
            items = plan_batch(inputs, output_dir, default_output)  # refused before the model loads
            if len(items) > 1 and (work_dir or cut_file):
                raise BatchError(f"--{'work-dir' if work_dir else 'scene-cuts FILE'} is for one input; with several "
                                 "inputs leave it out (each output gets its own work folder; cuts: auto or off)")
            check_encoder(codec, pix_fmt, preset)
            _check_model(model, backend, factor)
            probed = {}  # a cut file's one input, probed for the file's check: not probed again
            if cut_file:
                probed[items[0].input] = _check_input(items[0].input)
                opts = dataclasses.replace(opts, scene_cuts=load_spec(scene_cuts, probed[items[0].input]))
            status(f"loading model {model}")
            with open_backend(model, backend, [p for p in providers.split(",") if p], threads) as runner:
                def process(item) -> None:
                    target = SafeOutput(item.output, [item.input, model], overwrite)
                    guard.watch(target.path)
                    try:
                        run_one(runner, item.input, target, probed.pop(item.input, None) or _check_input(item.input))
                    finally:
                        end_bar()  # a failed input's bar ends before its line

                done = run_batch(items, process, overwrite, status, lambda exc: guard.signal_of(exc) is not None)
            if not quiet or done.failed:
                _say(f"{len(items)} input{'s' * (len(items) != 1)}: {len(done.written)} written, "
                     f"{len(done.skipped)} already there, {len(done.failed)} failed")
            for path, reason in done.failed:
                _say(f"failed: {path}: {reason}")
            if done.failed:
                _fail(f"{len(done.failed)} of {len(items)} inputs failed (listed above)")
            return
        out = SafeOutput(output, [input, model], overwrite)  # refused before the model loads
        guard.watch(out.path)
        check_encoder(codec, pix_fmt, preset)                # so are unknown encoder settings
        _check_model(model, backend, factor)                 # a --factor the model cannot make
        info = _check_input(input)                           # a missing or unreadable input
        if cut_file:                                         # and a cut file (a cut past the end too)
            opts = dataclasses.replace(opts, scene_cuts=load_spec(scene_cuts, info))
        status(f"loading model {model}")
        with open_backend(model, backend, [p for p in providers.split(",") if p], threads) as runner:
            run_one(runner, input, out, info)
    except (KeyboardInterrupt, Exception) as exc:
        guard.settle()  # first: a later signal is only recorded, the clean-up below is not cut short
        end_bar()  # the bar ends before the error line, which then starts a line of its own
        # A signal can also surface as another exception (e.g. ImportError from a C extension's init).
        signum = guard.signal_of(exc)
        note = getattr(exc, "resume_note", None)  # a segmented run's finished parts (stvsr.runtime.jobs.driver)
        if signum is not None:
            guard.interrupted(signum, note)  # "... after OUTPUT was completely written" if the rename was done
        tail = f"; {note}" if note else ""
        if isinstance(exc, BrokenPipeError):  # the reader of standard output closed it (stream.OutputClosedError)
            _fail(" ".join(str(exc).split()) or "standard output was closed", EXIT_PIPE)
        if isinstance(exc, (RuntimeError, ValueError, OSError)):  # BackendError, MetadataError, VideoError, ...
            _fail((" ".join(str(exc).split()) or type(exc).__name__) + tail)
        _fail(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}{tail}")  # never a traceback
    finally:
        end_bar()


def _explicit(name: str) -> bool:
    """True when option ``name`` was given on the command line (not its default)."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def _run_piped(guard, model, inputs, output, overwrite, opts, source, scene_cuts, no_audio, quiet, input_format,
               output_format, status, end_bar, progress_factory) -> None:
    """A run whose input or output is a pipe (``-``): refusals in one line (exit 2) for what a stream read
    or written once cannot do, then ``onepass.stream.upscale_stream``."""
    from stvsr.outfile import SafeOutput
    from stvsr.runtime.backends import open_backend
    from stvsr.runtime.media import OUTPUT_FORMATS, PIPE, check_encoder
    from stvsr.runtime.onepass.stream import StreamSink, open_source, upscale_stream
    from stvsr.runtime.planning.shots import load_spec, resolve_cuts

    stdin, stdout = inputs[0] == PIPE, output == PIPE
    if len(inputs) > 1:
        _fail("standard input (-) is one input: give it alone", EXIT_USAGE)
    if output is None:
        _fail("reading standard input needs -o: a file, or - for standard output", EXIT_USAGE)
    for name, given in (("--work-dir", _explicit("work_dir")), ("--workers", _explicit("workers")),
                        ("--ray", _explicit("ray_address")), ("--segment-frames", _explicit("segment_frames")),
                        ("--keep-parts", _explicit("keep_parts"))):
        if given:
            _fail(f"{name} is for files: a pipe is read or written once, in one pass (no segments, parts or Ray)",
                  EXIT_USAGE)
    if stdin and scene_cuts == "auto" and _explicit("scene_cuts"):
        _fail("--scene-cuts auto needs a file: standard input is read once (give --scene-cuts FILE or off, or save "
              "the stream to a file)", EXIT_USAGE)
    if _explicit("input_format") and not stdin:
        _fail("--input-format is for standard input (INPUT -)", EXIT_USAGE)
    if _explicit("output_format") and not stdout:
        _fail("--output-format is for standard output (-o -)", EXIT_USAGE)
    if stdin and sys.stdin.isatty():
        _fail("standard input is a terminal: pipe a video into it (e.g. ffmpeg -i in.mkv -f yuv4mpegpipe - | "
              "stvsr-run MODEL - -o out.mkv)", EXIT_USAGE)
    if stdout and sys.stdout.isatty():
        _fail("standard output is a terminal: pipe it into a program or redirect it to a file", EXIT_USAGE)
    codec = opts.codec
    if stdout:
        import signal

        # A closed standard output then comes as EPIPE to the writer, which says how many frames were written
        # (exit 141, as for the signal).
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        guard.nothing_written = "what standard output got is incomplete"  # the end of a line for a signal
        muxer, codec = OUTPUT_FORMATS[output_format][0], (opts.codec if _explicit("codec") else
                                                           OUTPUT_FORMATS[output_format][1])
        if output_format == "y4m" and codec != "rawvideo":
            _fail("y4m holds raw video only: leave --codec out, or use --output-format nut or matroska", EXIT_USAGE)
        sink = StreamSink("standard output", codec, muxer)
    else:
        target = SafeOutput(output, [model] + ([] if stdin else [inputs[0]]), overwrite)
        guard.watch(target.path)
        sink = StreamSink(str(target.path), codec, None, target)
    check_encoder(codec, opts.pix_fmt, opts.preset)
    _check_model(model, source.backend, opts.factor)
    stream = open_source(inputs[0], input_format)   # garbage on standard input is refused here
    spec = "off" if stdin and scene_cuts == "auto" else scene_cuts
    cuts = load_spec(spec, None if stdin else stream.info)
    if not isinstance(cuts, list):                   # auto (a file: a detection pass of its own) or off
        cuts = resolve_cuts(cuts, stream.info, stream.info.frames if opts.max_frames is None
                            else min(stream.info.frames, opts.max_frames), status)
    if stream.info.passthrough and not no_audio:
        status(f"note: {stream.info.path} has {stream.info.passthrough} audio/subtitle stream(s): "
               f"{'standard output' if stdout else output} gets the video only (mux them in afterwards, e.g. "
               "ffmpeg -i VIDEO -i SOURCE -map 0:v -map 1:a? -map 1:s? -c copy OUT.mkv)")
    elif stdin and input_format == "y4m" and not stdout and not no_audio:
        status(f"note: y4m carries no audio: {output} gets the video only (mux the audio in afterwards, e.g. "
               "ffmpeg -i VIDEO -i SOURCE -map 0:v -map 1:a -c copy OUT.mkv)")
    status(f"loading model {model}")
    with open_backend(model, source.backend, list(source.providers), source.threads) as runner:
        report = upscale_stream(runner, stream, sink, opts, cuts, progress_factory(None), status)
    end_bar()
    if not quiet:
        _say(f"wrote {report.output_frames} frames ({report.input_frames} in, factor {report.factor}) to "
             f"{report.output}, {report.size_out[0]}x{report.size_out[1]} at {float(report.fps_out):.3f} fps in "
             f"{report.seconds:.1f} s ({report.output_frames / report.seconds:.3g} frames/s)"
             f"{'' if spec == 'off' else f', {report.cuts} scene cut' + 's' * (report.cuts != 1)}")


if __name__ == "__main__":
    main()
