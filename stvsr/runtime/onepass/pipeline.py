"""One pass over a video: decode -> windows -> inference -> encode, overlapped (``upscale_video``, the
unit a segment runs too).

Three threads: a reader decodes and converts frames, the calling thread computes the windows
(``compute.WindowCompute``, keeping up to ``backend.max_in_flight`` in flight), and a writer encodes
the outputs in order (``threads``). The output is a ``stvsr.outfile.SafeOutput``: it appears,
complete, only by the final rename.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from stvsr.outfile import SafeOutput
from stvsr.runtime.backends.base import Backend
from stvsr.runtime.media import MediaInfo, OutputColour, VideoWriter, plan_output, plan_streams, probe
from stvsr.runtime.onepass.compute import WindowCompute
from stvsr.runtime.onepass.flow import FlowProvider, flow_provider
from stvsr.runtime.onepass.threads import DONE, Failure, Threads
from stvsr.runtime.planning.job import VideoJob, part_timestamps, plan_job, used_frames
from stvsr.runtime.planning.segments import Segment
from stvsr.runtime.planning.shots import resolve_cuts


@dataclass
class RunOptions:
    factor: int | None = None
    tile: int | None = None
    tile_overlap: int = 16
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "auto"           # auto: the input's chroma layout and bit depth (stvsr.runtime.media.colour)
    flow: str = "farneback"
    dense: bool = False
    max_frames: int | None = None
    copy_streams: bool = True
    max_memory: int | None = None   # bytes of peak resident memory; without --tile, the tile comes from it
    scene_cuts: str | Sequence[int] = "off"  # "off", "auto", a cut file or cut frames (stvsr.runtime.planning.shots)


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


def plan_video(backend: Backend, info: MediaInfo, opts: RunOptions,
               status: Callable[[str], None] | None = None) -> VideoJob:
    """Plan every window of the run over the probed input ``info`` (from the model's metadata and the
    scene cuts of ``opts.scene_cuts``: detected here for ``auto``)."""
    cuts = resolve_cuts(opts.scene_cuts, info, used_frames(info, opts.max_frames), status)
    return plan_job(info, backend.metadata, opts.factor, opts.dense, opts.max_frames,
                    getattr(backend, "max_factor", None), cuts)


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


class _WindowRunner:
    """Feeds the windows of one segment to the window executor: takes each window's frames from the
    reader (keeping the decoded frames a later window still reads), keeps up to ``max_in_flight``
    windows in flight (a tiled window is done at once) and hands their outputs to the writer."""

    def __init__(self, compute: WindowCompute, job: VideoJob, seg: Segment, threads: Threads,
                 progress: Callable[[int], None]):
        self.compute, self.job, self.seg, self.threads, self.progress = compute, job, seg, threads, progress
        self.cache: dict[int, np.ndarray] = {}
        self.decoded = seg.first_frame
        self.in_flight: deque = deque()

    def run(self) -> None:
        windows = self.seg.windows
        for k, window in enumerate(windows):
            self._submit(window, np.stack([self._need(i) for i in window.frames])[None])
            lowest = min(windows[k + 1].frames) if k + 1 < len(windows) else self.job.frames
            for idx in [i for i in self.cache if i < lowest]:  # forget frames no later window needs
                del self.cache[idx]
            self.threads.check()
        while self.in_flight:
            self._emit(self.compute.collect(self.in_flight.popleft()))

    def _need(self, index: int) -> np.ndarray:
        while index >= self.decoded:
            item = self.threads.frame()
            if isinstance(item, Failure):
                raise item.exc
            if item is DONE:
                raise RuntimeError(f"{self.job.input_path}: decoded only {self.decoded} of {self.job.frames} frames "
                                   "(truncated or corrupt video)")
            self.cache[self.decoded] = item
            self.decoded += 1
        return self.cache[index]

    def _submit(self, window, frames: np.ndarray) -> None:
        pending = self.compute.submit(window, frames)
        if pending.done:
            self._emit(self.compute.collect(pending))
            return
        self.in_flight.append(pending)
        if len(self.in_flight) >= self.compute.backend.max_in_flight:
            self._emit(self.compute.collect(self.in_flight.popleft()))

    def _emit(self, outputs: list[tuple[int, np.ndarray]]) -> None:
        for g, frame in outputs:
            self.threads.write(g - self.seg.out_start, frame)
        self.progress(1)


def output_colour(job: VideoJob, opts: RunOptions, output: str,
                  say: Callable[[str], None] | None = None) -> OutputColour:
    """The colour plan of the file ``output`` (``stvsr.runtime.media.colour.plan_output``: its name picks
    the container); its note, if any, is said to ``say`` in one ``colour:`` line (a segmented run's
    driver says it once, for all its parts)."""
    info = job.info
    picture = plan_output(info.picture, opts.codec, opts.pix_fmt, info.width, info.height, output)
    if picture.note and say is not None:
        say(f"colour: {picture.note}")
    return picture


def run_writer(job: VideoJob, opts: RunOptions, path: str, name: str, colour: OutputColour,
               segment: Segment | None = None, streams=None) -> VideoWriter:
    """The encoder of a run into ``path`` (``name``: the file it becomes, which picks the container), or with
    ``segment`` of that segment's part (video only, the one-pass timestamps of its outputs)."""
    whole = Segment(0, job.windows, 0, job.total, 0, job.frames - 1)
    return VideoWriter(path, job.info, job.fps_out, job.out_size[1], job.out_size[0], opts.codec, opts.crf,
                       opts.preset, opts.pix_fmt, opts.copy_streams and segment is None,
                       part_timestamps(job, segment or whole, segment), name=name,
                       passthrough_end=job.passthrough_span()[1], colour=colour, streams=streams)


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
    job = job or plan_video(backend, probe(input_path), opts, say)
    info, factor, out_size = job.info, job.factor, job.out_size
    seg = segment or Segment(0, job.windows, 0, job.total, 0, job.frames - 1)
    flows = flows or (flow_provider(opts.flow) if meta.flow_inputs else None)
    if segment is None:
        announce(job, say)
    progress = progress_factory(len(seg.windows)) if progress_factory else (lambda k: None)
    picture = output_colour(job, opts, str(out.path), say if segment is None else None)
    streams = plan_streams(input_path, str(out.path)) if opts.copy_streams and segment is None else None
    for note in streams.notes if streams is not None else ():
        say(f"note: {note}")

    def open_writer(tmp: str) -> VideoWriter:
        return run_writer(job, opts, tmp, str(out.path), picture, segment, streams)

    start = time.perf_counter()
    try:
        with Threads(out, job, seg, meta.size_multiple, meta.window + 4, max(8, 2 * len(meta.output_positions) + 8),
                     open_writer) as threads:
            compute = WindowCompute(backend, job.windows, job.times, tile=opts.tile, tile_overlap=opts.tile_overlap,
                                    max_memory=opts.max_memory, flows=flows, held_frames=threads.outputs.maxsize,
                                    say=say)
            _WindowRunner(compute, job, seg, threads, progress).run()
            threads.finish()
            out.commit()
    finally:
        if streams is not None:
            streams.close()  # the source the stream plan opened, where no writer took it for the copy
    return RunReport(str(out.path), seg.frames, seg.outputs, factor, info.fps, info.fps * (factor + 1),
                     (out_size[1], out_size[0]), time.perf_counter() - start, len(seg.windows), info.variable_rate,
                     len(job.cuts))
