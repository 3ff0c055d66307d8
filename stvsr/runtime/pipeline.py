"""The streaming pipeline: decode -> windows -> inference -> encode, overlapped with bounded queues.

Three threads: a reader decodes and pre-processes frames, the calling thread assembles windows
and keeps up to ``backend.max_in_flight`` windows in flight, and a writer post-processes and
encodes in output order. Queues are bounded, so memory stays flat however long the video is.

Failure and shutdown: each PyAV object lives in one thread (the reader's decoder in the reader,
the encoder and output container in the writer, which opens, finishes or closes them itself);
every blocking wait polls a shared stop flag, so an error in any thread or a signal in the main
thread stops all three, the main thread joins the others, and only then is the temporary output
removed. The encoder is opened before the first window runs. The output is a
``stvsr.outfile.SafeOutput``: it appears, complete, only by the final rename.
"""
from __future__ import annotations

import queue
import threading
import time
from contextlib import closing
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from stvsr.outfile import SafeOutput
from stvsr.runtime.backends.base import Backend, BackendError
from stvsr.runtime.colour import FrameDecoder, OutputColour, plan_output
from stvsr.runtime.flow import FlowProvider, flow_provider
from stvsr.runtime.frame_range import iter_frame_range
from stvsr.runtime.memory import auto_tile, runs_on_host
from stvsr.runtime.memory_cache import probe_key
from stvsr.runtime.passthrough import plan_streams, video_end
from stvsr.runtime.stream_meta import output_timestamps
from stvsr.runtime.tiling import pad_frames, run_tiled
from stvsr.runtime.video_io import VideoInfo, VideoWriter, probe
from stvsr.runtime.segments import Segment, split
from stvsr.runtime.shots import resolve_cuts
from stvsr.runtime.windows import Window, plan

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


@dataclass
class RunOptions:
    factor: int | None = None
    tile: int | None = None
    tile_overlap: int = 16
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "auto"           # auto: the input's chroma layout and bit depth (stvsr.runtime.colour)
    flow: str = "farneback"
    dense: bool = False
    max_frames: int | None = None
    copy_streams: bool = True
    max_memory: int | None = None   # bytes of peak resident memory; without --tile, the tile comes from it
    scene_cuts: str | Sequence[int] = "off"  # "off", "auto", a cut file or cut frames (stvsr.runtime.shots)


@dataclass
class RunReport:
    output: str
    input_frames: int
    output_frames: int
    factor: int
    fps_in: Fraction
    fps_out: Fraction
    size_out: tuple[int, int]
    seconds: float
    windows: int
    variable_rate: bool = False     # input timestamps irregular; output frames keep the real times
    cuts: int = 0                   # scene cuts the plan honoured


@dataclass
class VideoJob:
    """A whole video planned once (by the driver): what any segment run needs besides the backend."""
    input_path: str
    info: VideoInfo
    frames: int                     # input frames used (``--frames`` applied)
    windows: list[Window]
    times: list[float]
    factor: int
    outputs: int                    # model outputs per window
    total: int                      # output frames of the whole video
    out_size: tuple[int, int]       # (height, width)
    fps_out: Fraction
    timestamps: tuple[Fraction, list[int]] | None
    cuts: list[int] = field(default_factory=list)  # first frame of each shot after the first
    limited: bool = False           # --frames given: copied audio/subtitles end with the video in every case

    @property
    def time_base(self) -> Fraction:
        """The encoder's time base: the real timestamps', or one output frame at a constant rate."""
        return self.timestamps[0] if self.timestamps is not None else 1 / self.fps_out

    def segments(self, segment_frames: int | None) -> list[Segment]:
        return split(self.windows, self.total, segment_frames, self.cuts)

    def passthrough_span(self) -> tuple[Fraction, Fraction | None]:
        """The source span (seconds) whose audio and subtitles go with the output, a one-pass file
        or the join of its parts alike: from the first frame's time to the end of the used frames."""
        return self.info.start, video_end(self.info, self.frames, self.fps_out, self.limited)


def plan_video(backend: Backend, input_path: str, opts: RunOptions,
               status: Callable[[str], None] | None = None) -> VideoJob:
    """Probe ``input_path`` and plan every window of the run (from the model's metadata and the
    scene cuts of ``opts.scene_cuts``)."""
    meta = backend.metadata
    info: VideoInfo = probe(input_path)
    n = min(info.frames, opts.max_frames) if opts.max_frames else info.frames
    cuts = resolve_cuts(opts.scene_cuts, input_path, n, info.frames, status)
    windows, times, factor = plan(meta, n, opts.factor, opts.dense, getattr(backend, "max_factor", None), cuts)
    outputs = meta.output_count(len(times or [0.5]))
    return VideoJob(input_path, info, n, windows, times, factor, outputs, n + (n - 1) * factor,
                    (info.height * meta.scale, info.width * meta.scale), info.fps * (factor + 1),
                    _timestamps(info, n, factor), cuts, opts.max_frames is not None)


def part_timestamps(job: VideoJob, seg: Segment, segment: Segment | None) -> tuple[Fraction, list[int]] | None:
    """The encoder's timestamps: the whole run's, or a segment's slice of them (constant rate: frame
    indices in ``1/fps_out``, which is what the encoder uses when it is given no timestamps)."""
    if segment is None:
        return job.timestamps
    if job.timestamps is None:
        return job.time_base, list(range(seg.out_start, seg.out_end))
    return job.timestamps[0], job.timestamps[1][seg.out_start:seg.out_end]


def _timestamps(info: VideoInfo, n: int, factor: int) -> tuple[Fraction, list[int]] | None:
    """Output times from the input's real presentation times (None: unknown, use a constant rate)."""
    if not info.pts or not info.time_base or len(info.pts) < n:
        return None
    return info.time_base / (factor + 1), output_timestamps(info.pts[:n], factor)


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _stop_reason(errors: list) -> BaseException:
    return errors[0] if errors else RuntimeError("the pipeline stopped")


def _get(q: queue.Queue, stop: threading.Event, errors: list):
    """``q.get`` that gives up (raising the reason) once ``stop`` is set."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                raise _stop_reason(errors) from None


def _join_quietly(thread: threading.Thread, limit: float = 60.0) -> None:
    """Wait for a stopping thread; a second Ctrl-C does not abandon it half-way (the wait is short:
    every thread polls the stop flag between frames)."""
    deadline = time.monotonic() + limit
    while thread.is_alive() and time.monotonic() < deadline:
        try:
            thread.join(0.1)
        except KeyboardInterrupt:
            continue


def _reader(path: str, limit: int, multiple: int, out: queue.Queue, stop: threading.Event, first: int = 0,
            info: VideoInfo | None = None) -> None:
    try:  # frames first .. first+limit-1; the decoder is opened and closed in this thread
        # float32 RGB [3, H, W] in [0, 1], converted with the input's own matrix, range and depth
        decode = FrameDecoder(info.picture if info is not None else None)
        with closing(iter_frame_range(path, first, limit, info, decode)) as frames:
            for rgb in frames:
                if stop.is_set():
                    return
                frame = pad_frames(rgb, multiple)
                if not _put(out, frame, stop):
                    return
        _put(out, _DONE, stop)
    except BaseException as exc:  # handed to the main thread
        _put(out, _Failure(exc), stop)


def _writer(open_writer: Callable[[], VideoWriter], total: int, size: tuple[int, int], inp: queue.Queue,
            stop: threading.Event, ready: threading.Event, finished: threading.Event, errors: list) -> None:
    """Open the encoder, write frames in output order, finish the file: all PyAV calls in this thread."""
    h, w = size
    pending: dict[int, np.ndarray] = {}
    nxt = 0
    writer = None
    try:
        writer = open_writer()
        ready.set()
        while nxt < total:
            if stop.is_set():
                return
            try:
                g, frame = inp.get(timeout=0.1)
            except queue.Empty:
                continue
            pending[g] = frame
            while nxt in pending and not stop.is_set():
                img = np.clip(pending.pop(nxt)[:, :h, :w], 0.0, 1.0, dtype=np.float32)
                writer.write(img)  # float RGB -> the output's pixel format, matrix, range and depth
                nxt += 1
        if writer.finish(stop):
            finished.set()
    except BaseException as exc:
        errors.append(exc)
        stop.set()
    finally:
        if writer is not None:
            writer.close()
        ready.set()


def _checked(result: np.ndarray, frames: np.ndarray, outputs: int, scale: int, window=None,
             windows: list | None = None) -> np.ndarray:
    """Refuse a model output whose shape differs from what the metadata promises, or that holds
    NaN/Inf values (named by ``window``, one of ``windows``)."""
    want = (frames.shape[0], outputs, 3, frames.shape[-2] * scale, frames.shape[-1] * scale)
    got = tuple(getattr(result, "shape", ()))
    if got != want:
        raise BackendError(f"the model returned frames of shape {list(got)} where its stvsr metadata promises "
                           f"{list(want)} ({outputs} frames, scale {scale}); the metadata does not match the graph")
    if not np.isfinite(result).all():
        raise BackendError(f"the model returned NaN or Inf values for {_window_name(window, windows)}; its graph or "
                           "weights are broken (no output written)")
    return result


def _window_name(window, windows: list | None) -> str:
    """``window 6 of 8 (input frames 4 to 6, counted from 0)`` (only on the error path: a linear search)."""
    if window is None:
        return "a window"
    index = next((i for i, w in enumerate(windows or []) if w is window), None)
    name = "a window" if index is None else f"window {index + 1} of {len(windows)}"
    return f"{name} (input frames {min(window.frames)} to {max(window.frames)}, counted from 0)"


def announce(job: VideoJob, say: Callable[[str], None], parts: str = "") -> None:
    """The opening lines of a run (one pass, or ``parts`` described by the segment driver): what is
    decoded into what, then the input's damage (a truncated file or concealed errors: one warning
    line, and the run goes on, exit 0)."""
    info = job.info
    say(f"decoding {job.input_path}: {job.frames} frames, {info.width}x{info.height} at {float(info.fps):.3f} fps -> "
        f"{job.total} frames, {job.out_size[1]}x{job.out_size[0]} at {float(job.fps_out):.3f} fps, "
        f"{len(job.windows)} windows{parts}")
    if info.damage:
        say(f"warning: {info.damage}")


class _Threads:
    """The reader and writer threads of one run, their bounded queues, the shared stop flag and the
    errors they hand to the main thread. As a context manager: on entering, the temporary output is
    created, the writer opens the encoder (before any window runs) and the reader starts; on leaving,
    both are stopped and joined, and only then is an uncommitted temporary file removed."""

    def __init__(self, out: SafeOutput, job: VideoJob, seg: Segment, multiple: int, frames_queue: int,
                 outputs_queue: int, open_writer: Callable[[str], VideoWriter]):
        self.out, self.open_writer = out, open_writer
        self.stop, self.ready, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.frames: queue.Queue = queue.Queue(maxsize=frames_queue)
        self.outputs: queue.Queue = queue.Queue(maxsize=outputs_queue)
        self.errors: list[BaseException] = []
        self.reader = threading.Thread(target=_reader, args=(job.input_path, seg.frames, multiple, self.frames,
                                                             self.stop, seg.first_frame, job.info),
                                       name="stvsr-reader", daemon=True)
        self.writer = threading.Thread(target=_writer, args=(self._open, seg.outputs, job.out_size, self.outputs,
                                                             self.stop, self.ready, self.finished, self.errors),
                                       name="stvsr-writer", daemon=True)
        self._tmp = ""

    def _open(self) -> VideoWriter:
        return self.open_writer(self._tmp)

    def __enter__(self) -> "_Threads":
        try:
            self._tmp = self.out.create()
            self.writer.start()
            self.reader.start()
            while not self.ready.wait(0.1):  # the encoder opens (or fails) before any window runs
                pass
            self.check()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in (self.writer, self.reader):
            _join_quietly(thread)
        self.out.discard()

    def check(self) -> None:
        """Raise the first error another thread handed over."""
        if self.errors:
            raise self.errors[0]

    def frame(self):
        """The next decoded item (a frame, ``_DONE`` or a ``_Failure``), or the reason the run stopped."""
        return _get(self.frames, self.stop, self.errors)

    def write(self, index: int, frame: np.ndarray) -> None:
        """Hand output ``index`` (of this run) to the writer."""
        if not _put(self.outputs, (index, frame), self.stop):
            raise _stop_reason(self.errors)

    def finish(self) -> None:
        """Wait for the writer to flush and close the file; raise if it did not reach the end."""
        while self.writer.is_alive():
            self.writer.join(0.1)
        self.check()
        if not self.finished.is_set():
            raise RuntimeError("the encoder stopped before the end of the video")


class _WindowRunner:
    """Runs the windows of one segment: assembles each window's inputs (frames, times, flows) from the
    decoded frames, picks the tile on the first window (memory budget), runs a tiled window at once and
    keeps up to ``backend.max_in_flight`` others in flight, hands the kept outputs to the writer and
    forgets the frames no later window reads."""

    def __init__(self, backend: Backend, job: VideoJob, seg: Segment, opts: RunOptions, flows: FlowProvider | None,
                 threads: _Threads, progress: Callable[[int], None], say: Callable[[str], None]):
        self.backend, self.meta, self.job, self.seg, self.opts = backend, backend.metadata, job, seg, opts
        self.flows, self.threads, self.progress, self.say = flows, threads, progress, say
        self.tile = opts.tile
        self.cache: dict[int, np.ndarray] = {}
        self.decoded = seg.first_frame
        self.in_flight: deque = deque()

    def run(self) -> None:
        windows = self.seg.windows
        for k, window in enumerate(windows):
            self._run(k, window)
            lowest = min(windows[k + 1].frames) if k + 1 < len(windows) else self.job.frames
            for idx in [i for i in self.cache if i < lowest]:  # forget frames no later window needs
                del self.cache[idx]
            self.threads.check()
        while self.in_flight:
            self._collect()

    def _need(self, index: int) -> np.ndarray:
        while index >= self.decoded:
            item = self.threads.frame()
            if isinstance(item, _Failure):
                raise item.exc
            if item is _DONE:
                raise RuntimeError(f"{self.job.input_path}: decoded only {self.decoded} of {self.job.frames} frames "
                                   "(truncated or corrupt video)")
            self.cache[self.decoded] = item
            self.decoded += 1
        return self.cache[index]

    def _inputs(self, stack: np.ndarray) -> dict[str, np.ndarray]:
        meta = self.meta
        inputs = {meta.inputs.get("frames", "frames"): stack}
        if meta.takes_times:
            inputs[meta.inputs.get("times", "times")] = np.asarray(self.job.times or [0.5], dtype=np.float32)
        for name, (a, b) in zip(meta.flow_inputs, meta.flow_pairs):
            inputs[name] = self.flows(stack[0, a], stack[0, b])[None]
        return inputs

    def _checked(self, result: np.ndarray, frames: np.ndarray, window: Window) -> np.ndarray:
        return _checked(result, frames, self.job.outputs, self.meta.scale, window, self.job.windows)

    def _run(self, k: int, window: Window) -> None:
        meta, opts, backend = self.meta, self.opts, self.backend
        stack = np.stack([self._need(i) for i in window.frames])[None]
        inputs = self._inputs(stack)
        spatial = {name for name in inputs if name != meta.inputs.get("times", "times")}
        frames_name = meta.inputs.get("frames", "frames")

        def checked_run(part: dict) -> np.ndarray:
            return self._checked(backend.run(part), part[frames_name], window)

        if k == 0 and self.tile is None and opts.max_memory and runs_on_host(backend):
            # Full-resolution float32 frames held at once (output queue, reorder buffer, windows in flight).
            held = ((self.threads.outputs.maxsize + self.job.outputs * (backend.max_in_flight + 2))
                    * 3 * stack.shape[-2] * stack.shape[-1])
            self.tile = auto_tile(checked_run, inputs, spatial, meta.size_multiple, opts.tile_overlap, opts.max_memory,
                                  held * meta.scale * meta.scale * 4, self.say, probe_key(backend, inputs, spatial))
        if self.tile and max(stack.shape[-2:]) > self.tile:
            self._emit(window, run_tiled(checked_run, inputs, spatial, self.tile, opts.tile_overlap,
                                         meta.size_multiple, meta.scale))
        else:
            self.in_flight.append((window, stack, backend.submit(inputs)))
            if len(self.in_flight) >= backend.max_in_flight:
                self._collect()

    def _collect(self) -> None:
        window, frames, ticket = self.in_flight.popleft()
        self._emit(window, self._checked(self.backend.collect(ticket), frames, window))

    def _emit(self, window: Window, result: np.ndarray) -> None:
        for out_idx, g in window.keep:
            self.threads.write(g - self.seg.out_start, result[0, out_idx])
        self.progress(1)


def _output_picture(job: VideoJob, opts: RunOptions, first: bool, say: Callable[[str], None]) -> OutputColour:
    """The output's colour plan (``stvsr.runtime.colour.plan_output``); its note is said by the run
    that writes the first frames."""
    info = job.info
    picture = plan_output(info.picture, opts.codec, opts.pix_fmt, info.width, info.height)
    if picture.note and first:
        say(f"colour: {picture.note}")
    return picture


def upscale_video(backend: Backend, input_path: str, output_path: str | SafeOutput, options: RunOptions | None = None,
                  progress_factory: Callable[[int], Callable[[int], None]] | None = None,
                  flows: FlowProvider | None = None, status: Callable[[str], None] | None = None,
                  job: VideoJob | None = None, segment: Segment | None = None) -> RunReport:
    """Run ``backend``'s model over ``input_path`` and write ``output_path`` (atomically).

    ``output_path`` may be a prepared ``SafeOutput`` (overwrite policy, input identity); a plain
    path is replaced if it exists but never when it is the input. ``progress_factory(windows)``
    returns a callback called with 1 per finished window; ``status`` receives one-line messages.
    ``job`` is the run planned once (``plan_video``); with ``segment`` (one of ``job.segments``)
    only its windows run, from its first needed frame, and ``output_path`` gets its outputs alone
    (video only) with the timestamps they have in the one-pass output.
    """
    opts = options or RunOptions()
    meta = backend.metadata
    say = status or (lambda message: None)
    out = output_path if isinstance(output_path, SafeOutput) else SafeOutput(output_path, [input_path])
    job = job or plan_video(backend, input_path, opts, say)
    info, factor, out_size = job.info, job.factor, job.out_size
    seg = segment or Segment(0, job.windows, 0, job.total, 0, job.frames - 1)
    flows = flows or (flow_provider(opts.flow) if meta.flow_inputs else None)
    if segment is None:
        announce(job, say)
    progress = progress_factory(len(seg.windows)) if progress_factory else (lambda k: None)
    picture = _output_picture(job, opts, segment is None or seg.out_start == 0, say)
    streams = plan_streams(input_path, str(out.path)) if opts.copy_streams and segment is None else None
    for note in streams.notes if streams is not None else ():
        say(f"note: {note}")

    def open_writer(tmp: str) -> VideoWriter:
        return VideoWriter(tmp, info, job.fps_out, out_size[1], out_size[0], opts.codec, opts.crf, opts.preset,
                           opts.pix_fmt, opts.copy_streams and segment is None, part_timestamps(job, seg, segment),
                           name=str(out.path), passthrough_end=job.passthrough_span()[1], colour=picture,
                           streams=streams)

    start = time.perf_counter()
    with _Threads(out, job, seg, meta.size_multiple, meta.window + 4, max(8, 2 * len(meta.output_positions) + 8),
                  open_writer) as threads:
        _WindowRunner(backend, job, seg, opts, flows, threads, progress, say).run()
        threads.finish()
        out.commit()
    return RunReport(str(out.path), seg.frames, seg.outputs, factor, info.fps, info.fps * (factor + 1),
                     (out_size[1], out_size[0]), time.perf_counter() - start, len(seg.windows), info.variable_rate,
                     len(job.cuts))
