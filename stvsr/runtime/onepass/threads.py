"""The reader and writer threads of one pass, their bounded queues and the shared stop flag.

The reader decodes the frames of a run (``media.iter_frames``) and converts them to the networks'
float RGB (``media.FrameDecoder``), padded to the model's size multiple; the writer opens the encoder,
puts the outputs back in order and encodes them (``media.VideoWriter``). Queues are bounded, so
memory stays flat however long the video is.

Failure and shutdown: each PyAV object lives in one thread (the reader's decoder in the reader, the
encoder and output container in the writer, which opens, finishes or closes them itself); every
blocking wait polls the stop flag, so an error in any thread or a signal in the main thread stops
all three, the main thread joins the others, and only then is the temporary output removed. The
encoder is opened before the first window runs.
"""
from __future__ import annotations

import queue
import threading
import time
from contextlib import closing
from typing import Callable

import numpy as np

from stvsr.outfile import SafeOutput
from stvsr.runtime.media import FrameDecoder, MediaInfo, VideoWriter, iter_frames
from stvsr.runtime.planning.job import VideoJob
from stvsr.runtime.planning.segments import Segment
from stvsr.runtime.planning.tiling import pad_frames

DONE = object()
END = object()   # ``(END, total)`` in a writer's queue: the number of outputs, when it was not known at the start


class Failure:
    """An error of the reader, handed to the main thread in the frames queue."""

    def __init__(self, exc: BaseException):
        self.exc = exc


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
            info: MediaInfo | None = None) -> None:
    try:  # frames first .. first+limit-1; the decoder is opened and closed in this thread
        # float32 RGB [3, H, W] in [0, 1], converted with the input's own matrix, range and depth
        decode = FrameDecoder(info.picture if info is not None else None)
        with closing(iter_frames(path, first, limit, info, decode)) as frames:
            for rgb in frames:
                if stop.is_set():
                    return
                frame = pad_frames(rgb, multiple)
                if not _put(out, frame, stop):
                    return
        _put(out, DONE, stop)
    except BaseException as exc:  # handed to the main thread
        _put(out, Failure(exc), stop)


def _writer(open_writer: Callable[[], VideoWriter], total: int | None, size: tuple[int, int], inp: queue.Queue,
            stop: threading.Event, ready: threading.Event, finished: threading.Event, errors: list) -> None:
    """Open the encoder, write frames in output order, finish the file: all PyAV calls in this thread.
    ``total`` None: told later (``(END, total)``: a stream's length is known at its end)."""
    h, w = size
    pending: dict[int, np.ndarray] = {}
    nxt = 0
    writer = None
    try:
        writer = open_writer()
        ready.set()
        while total is None or nxt < total:
            if stop.is_set():
                return
            try:
                g, frame = inp.get(timeout=0.1)
            except queue.Empty:
                continue
            if g is END:
                total = frame
                continue
            pending[g] = frame
            while nxt in pending and not stop.is_set():
                # float RGB (clipped to [0, 1] in the conversion) -> the output's pixel format, matrix, range, depth
                writer.write(pending.pop(nxt)[:, :h, :w])
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


class Threads:
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

    def __enter__(self) -> "Threads":
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
        """The next decoded item (a frame, ``DONE`` or a ``Failure``), or the reason the run stopped."""
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
