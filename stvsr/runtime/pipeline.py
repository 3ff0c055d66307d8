"""The streaming pipeline: decode -> windows -> inference -> encode, overlapped with bounded queues.

Three threads: a reader decodes and pre-processes frames, the calling thread assembles windows
and keeps up to ``backend.max_in_flight`` windows in flight, and a writer post-processes and
encodes in output order. Queues are bounded, so memory stays flat however long the video is.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np

from stvsr.runtime.backends.base import Backend
from stvsr.runtime.flow import FlowProvider, flow_provider
from stvsr.runtime.stream_meta import output_timestamps
from stvsr.runtime.tiling import pad_frames, run_tiled
from stvsr.runtime.video_io import VideoInfo, VideoWriter, probe
from stvsr.video import iter_rgb_frames
from stvsr.runtime.windows import plan

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
    pix_fmt: str = "yuv420p"
    flow: str = "farneback"
    dense: bool = False
    max_frames: int | None = None
    copy_streams: bool = True


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


def _reader(path: str, limit: int, multiple: int, out: queue.Queue, stop: threading.Event) -> None:
    try:
        for rgb in iter_rgb_frames(path, limit):
            frame = pad_frames(rgb.transpose(2, 0, 1).astype(np.float32) / 255.0, multiple)
            if not _put(out, frame, stop):
                return
        _put(out, _DONE, stop)
    except BaseException as exc:  # handed to the main thread
        _put(out, _Failure(exc), stop)


def _writer(writer: VideoWriter, total: int, size: tuple[int, int], inp: queue.Queue, stop: threading.Event,
            progress: Callable[[int], None], errors: list) -> None:
    h, w = size
    pending: dict[int, np.ndarray] = {}
    nxt = 0
    try:
        while nxt < total and not stop.is_set():
            try:
                item = inp.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                break
            g, frame = item
            pending[g] = frame
            while nxt in pending:
                img = np.clip(pending.pop(nxt)[:, :h, :w], 0.0, 1.0)
                writer.write(np.ascontiguousarray((img.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)))
                nxt += 1
                progress(1)
    except BaseException as exc:
        errors.append(exc)
        stop.set()


def upscale_video(backend: Backend, input_path: str, output_path: str, options: RunOptions | None = None,
                  progress_factory: Callable[[int], Callable[[int], None]] | None = None,
                  flows: FlowProvider | None = None) -> RunReport:
    """Run ``backend``'s model over ``input_path`` and write ``output_path`` (atomically)."""
    opts = options or RunOptions()
    meta = backend.metadata
    info: VideoInfo = probe(input_path)
    n = min(info.frames, opts.max_frames) if opts.max_frames else info.frames
    windows, times, factor = plan(meta, n, opts.factor, opts.dense)
    total = n + (n - 1) * factor
    scale = meta.scale
    out_size = (info.height * scale, info.width * scale)
    flows = flows or (flow_provider(opts.flow) if meta.flow_inputs else None)
    writer = VideoWriter(output_path, info, info.fps * (factor + 1), out_size[1], out_size[0], opts.codec, opts.crf,
                         opts.preset, opts.pix_fmt, opts.copy_streams, _timestamps(info, n, factor))
    progress = progress_factory(total) if progress_factory else (lambda k: None)
    stop = threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=meta.window + 4)
    out_q: queue.Queue = queue.Queue(maxsize=max(8, 2 * len(meta.output_positions) + 8))
    errors: list[BaseException] = []
    reader = threading.Thread(target=_reader, args=(input_path, n, meta.size_multiple, frames_q, stop),
                              name="stvsr-reader", daemon=True)
    write_thread = threading.Thread(target=_writer, args=(writer, total, out_size, out_q, stop, progress, errors),
                                    name="stvsr-writer", daemon=True)
    start = time.perf_counter()
    cache: dict[int, np.ndarray] = {}
    decoded = 0
    in_flight: deque = deque()

    def need(index: int) -> np.ndarray:
        nonlocal decoded
        while index >= decoded:
            item = frames_q.get()
            if isinstance(item, _Failure):
                raise item.exc
            if item is _DONE:
                raise RuntimeError(f"{input_path}: decoded only {decoded} of {n} frames (truncated or corrupt video)")
            cache[decoded] = item
            decoded += 1
        return cache[index]

    def emit(window, out: np.ndarray) -> None:
        for out_idx, g in window.keep:
            if not _put(out_q, (g, out[0, out_idx]), stop):
                raise errors[0] if errors else RuntimeError("writer stopped")

    reader.start()
    write_thread.start()
    try:
        for k, window in enumerate(windows):
            stack = np.stack([need(i) for i in window.frames])[None]
            inputs = {meta.inputs.get("frames", "frames"): stack}
            if meta.takes_times:
                inputs[meta.inputs.get("times", "times")] = np.asarray(times or [0.5], dtype=np.float32)
            for name, (a, b) in zip(meta.flow_inputs, meta.flow_pairs):
                inputs[name] = flows(stack[0, a], stack[0, b])[None]
            if opts.tile and max(stack.shape[-2:]) > opts.tile:
                spatial = {name for name in inputs if name != meta.inputs.get("times", "times")}
                emit(window, run_tiled(backend.run, inputs, spatial, opts.tile, opts.tile_overlap,
                                       meta.size_multiple, scale))
            else:
                in_flight.append((window, backend.submit(inputs)))
                if len(in_flight) >= backend.max_in_flight:
                    done, ticket = in_flight.popleft()
                    emit(done, backend.collect(ticket))
            # Forget frames no later window needs.
            lowest = min(windows[k + 1].frames) if k + 1 < len(windows) else n
            for idx in [i for i in cache if i < lowest]:
                del cache[idx]
            if errors:
                raise errors[0]
        while in_flight:
            done, ticket = in_flight.popleft()
            emit(done, backend.collect(ticket))
        write_thread.join()
        if errors:
            raise errors[0]
        if writer.count != total:
            raise RuntimeError(f"wrote {writer.count} of {total} frames")
        writer.commit()
    except BaseException:
        stop.set()
        writer.abort()
        raise
    finally:
        stop.set()
        reader.join(timeout=5)
        write_thread.join(timeout=5)
    elapsed = time.perf_counter() - start
    return RunReport(str(output_path), n, total, factor, info.fps, info.fps * (factor + 1),
                     (out_size[1], out_size[0]), elapsed, len(windows), info.variable_rate)
