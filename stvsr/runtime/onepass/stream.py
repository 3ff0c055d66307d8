"""One pass over a video read once, from its start, into an output written once: the run of
``stvsr-run`` when its input or its output is a pipe (``-``).

Nothing is known in advance but the first frame: the frame count comes at the end. The plan is made
as the frames arrive (``planning.stream.StreamPlan``: exactly the windows ``windows.plan`` makes for
the same frames, so the output is frame for frame a file run's), the windows are computed
(``compute.WindowCompute``) as soon as their frames are there, and the frames no later window reads
are dropped: memory stays flat however long the stream. A reader thread decodes (``media.StreamInput``
or, for a file input, ``media.iter_frames``), a writer thread encodes in output order
(``media.VideoWriter``: standard output, or a file written under a temporary name and renamed).

Scene cuts must be known before the frames (a cut list, or detected in a pass over a file input);
outputs have a constant rate (``fps x (factor + 1)``), and only video is written.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from stvsr.outfile import SafeOutput
from stvsr.runtime.backends.base import Backend
from stvsr.runtime.media import FrameDecoder, MediaInfo, StreamInput, VideoWriter, is_pipe, iter_frames, plan_output, probe
from stvsr.runtime.media.pipe import y4m_pix_fmt
from stvsr.runtime.onepass.compute import WindowCompute
from stvsr.runtime.onepass.flow import flow_provider
from stvsr.runtime.onepass.pipeline import RunOptions, RunReport
from stvsr.runtime.onepass.threads import DONE, END, Failure, _get, _join_quietly, _put, _stop_reason, _writer
from stvsr.runtime.planning.stream import StreamPlan
from stvsr.runtime.planning.tiling import pad_frames

class OutputClosedError(BrokenPipeError):
    """The reader of standard output closed it before the end (``| head -c 100``)."""


@dataclass
class StreamSource:
    """An input read once: its ``info`` (from the first frame for a pipe: frame count 0, unknown) and
    ``frames(convert, limit)``, its frames from the start, called in the reader thread."""
    info: MediaInfo
    frames: Callable[[Callable, int | None], Iterator]
    close: Callable[[], None]
    piped: bool


def open_source(path: str, fmt: str = "y4m") -> StreamSource:
    """Standard input (``path`` ``-``, in the format ``fmt``: its first frame decoded now, so garbage and
    an empty stream are refused before the model loads) or a file (probed)."""
    if is_pipe(path):
        src = StreamInput(fmt)
        return StreamSource(src.info, lambda convert, limit: src.frames(convert, limit), src.close, True)
    info = probe(path)
    return StreamSource(info, lambda convert, limit: iter_frames(path, 0, limit, info, convert), lambda: None, False)


@dataclass
class StreamSink:
    """Where the outputs go: ``path`` (FFmpeg's ``pipe:1`` for standard output, else a ``SafeOutput``'s
    temporary file), named ``name`` in messages, in ``muxer`` (None: from the name) with ``codec``."""
    name: str
    codec: str
    muxer: str | None = None
    file: SafeOutput | None = None


def _reader(source: StreamSource, limit: int | None, multiple: int, out: queue.Queue, stop: threading.Event) -> None:
    try:  # float32 RGB [3, H, W] in [0, 1], converted with the input's own matrix, range and depth
        for rgb in source.frames(FrameDecoder(source.info.picture), limit):
            if stop.is_set() or not _put(out, pad_frames(rgb, multiple), stop):
                return
        _put(out, DONE, stop)
    except BaseException as exc:  # handed to the main thread
        _put(out, Failure(exc), stop)


def upscale_stream(backend: Backend, source: StreamSource, sink: StreamSink, options: RunOptions,
                   cuts: Sequence[int] = (), progress: Callable[[int], None] | None = None,
                   status: Callable[[str], None] | None = None) -> RunReport:
    """Run ``backend``'s model over ``source``'s frames (the first ``options.max_frames``) into ``sink``,
    shot by shot at ``cuts``. ``progress`` gets the number of output frames each finished window wrote."""
    opts, meta, info = options, backend.metadata, source.info
    say, progress = status or (lambda message: None), progress or (lambda k: None)
    planner = StreamPlan(meta, opts.factor, opts.dense, getattr(backend, "max_factor", None), cuts)
    out_size = (info.height * meta.scale, info.width * meta.scale)
    fps_out = info.fps * (planner.factor + 1)
    picture = plan_output(info.picture, sink.codec, opts.pix_fmt, info.width, info.height, sink.name, sink.muxer)
    y4m = y4m_pix_fmt(picture.pix_fmt) if sink.muxer == "yuv4mpegpipe" and opts.pix_fmt == "auto" else None
    if y4m:  # RGB input: y4m holds YUV and gray only
        picture = plan_output(info.picture, sink.codec, y4m, info.width, info.height, sink.name, sink.muxer)
        say(f"colour: y4m holds no {info.picture.pix_fmt if info.picture else 'RGB'}: writing {y4m} "
            "(--output-format nut keeps RGB)")
    say(f"decoding {info.path}{' (the frame count is known at its end)' if source.piped else ''}: {info.width}x"
        f"{info.height} at {float(info.fps):.3f} fps -> {out_size[1]}x{out_size[0]} at {float(fps_out):.3f} fps into "
        f"{sink.name} ({sink.muxer or 'by its name'}, {sink.codec})")
    if info.damage:
        say(f"warning: {info.damage}")
    if picture.note:
        say(f"colour: {picture.note}")
    stop, ready, finished = threading.Event(), threading.Event(), threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=meta.window + 4)
    outputs_q: queue.Queue = queue.Queue(maxsize=max(8, 2 * len(meta.output_positions) + 8))
    errors: list[BaseException] = []
    path = sink.file.create() if sink.file is not None else "pipe:1"
    opened: list[VideoWriter] = []

    def open_writer() -> VideoWriter:
        opened.append(VideoWriter(path, info, fps_out, out_size[1], out_size[0], sink.codec, opts.crf, opts.preset,
                                  opts.pix_fmt, False, None, name=sink.name, colour=picture, muxer=sink.muxer))
        return opened[0]

    def stopped() -> BaseException:
        """Why the run stopped; a closed standard output said with the frames it got."""
        if errors and isinstance(errors[0], BrokenPipeError) and sink.file is None:
            while writer.is_alive():
                writer.join(0.1)
            return OutputClosedError(f"the reader of standard output closed it after {opened[0].count if opened else 0} "
                                     "frames (what it got is incomplete)")
        return _stop_reason(errors)

    reader = threading.Thread(target=_reader, args=(source, opts.max_frames, meta.size_multiple, frames_q, stop),
                              name="stvsr-reader", daemon=True)
    writer = threading.Thread(target=_writer, args=(open_writer, None, out_size, outputs_q, stop, ready, finished,
                                                    errors), name="stvsr-writer", daemon=True)
    start = time.perf_counter()
    windows: list = []
    flows = flow_provider(opts.flow) if meta.flow_inputs else None
    try:
        writer.start()
        while not ready.wait(0.1):  # the encoder opens (or fails) before any frame is read
            pass
        if errors:
            raise stopped()
        reader.start()
        compute = WindowCompute(backend, windows, planner.times, tile=opts.tile, tile_overlap=opts.tile_overlap,
                                max_memory=opts.max_memory, flows=flows, held_frames=outputs_q.maxsize, say=say)
        cache: dict[int, np.ndarray] = {}
        in_flight: deque = deque()

        def emit(outputs: list[tuple[int, np.ndarray]]) -> None:
            for g, frame in outputs:
                if not _put(outputs_q, (g, frame), stop):
                    raise stopped()
            progress(len(outputs))

        arrived, ended = 0, False
        while not ended:
            item = DONE if opts.max_frames is not None and arrived >= opts.max_frames else _get(frames_q, stop, errors)
            if isinstance(item, Failure):
                raise item.exc
            if item is DONE:
                ready_windows, ended = planner.end(), True
            else:
                cache[arrived] = item
                arrived += 1
                ready_windows = planner.add()
            for window in ready_windows:
                windows.append(window)
                pending = compute.submit(window, np.stack([cache[i] for i in window.frames])[None])
                if pending.done:
                    emit(compute.collect(pending))
                    continue
                in_flight.append(pending)
                if len(in_flight) >= backend.max_in_flight:
                    emit(compute.collect(in_flight.popleft()))
            needed = planner.needed_from()
            for index in [i for i in cache if i < needed]:  # no later window reads them
                del cache[index]
            if errors:
                raise stopped()
        while in_flight:
            emit(compute.collect(in_flight.popleft()))
        if not _put(outputs_q, (END, planner.total), stop):
            raise stopped()
        while writer.is_alive():
            writer.join(0.1)
        if errors:
            raise stopped()
        if not finished.is_set():
            raise RuntimeError("the encoder stopped before the end of the video")
        if sink.file is not None:
            sink.file.commit()
    except BrokenPipeError as exc:  # from any wait on the writer: said with the frames standard output got
        if isinstance(exc, OutputClosedError) or sink.file is not None:
            raise
        raise stopped() from None
    finally:
        stop.set()
        # a writer blocked on a stalled reader of standard output is not waited for long (a daemon thread)
        for thread, limit_s in ((writer, 60.0 if sink.file is not None else 2.0), (reader, 2.0)):
            if thread.is_alive():
                _join_quietly(thread, limit_s)
        if sink.file is not None:
            sink.file.discard()
        if not reader.is_alive():
            source.close()
    return RunReport(sink.name, planner.frames, planner.total, planner.factor, info.fps, fps_out,
                     (out_size[1], out_size[0]), time.perf_counter() - start, len(windows), False,
                     max(0, planner.shot - 1))
