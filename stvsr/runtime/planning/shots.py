"""Scene cuts for shot-aware planning (``stvsr-run --scene-cuts auto|off|FILE``).

A cut is the index (from 0) of the first input frame of a new shot. ``auto`` detects hard cuts
with PySceneDetect's ``AdaptiveDetector`` (its defaults: a content score in HSV compared with the
rolling average of the 2 frames on each side, shots of at least 15 frames); ``off`` plans the
video as one shot; any other value is a file: cut frame numbers one per line (``#`` comments),
or the scene-list CSV of PySceneDetect (``scenedetect ... list-scenes``; its "Start Frame" column
counts from 1). A file is read once, in bounded pieces (a named pipe or ``<(...)`` works, memory
stays flat), and checked against the input's frame count as it is read, before the model loads.

Where detection runs: in a pass of its own before planning, which decodes the video a second
time. The planner needs every cut before the first window (a window must not straddle one, and
the segments of a resumable or distributed run are cut at shots), while the run's own decoder
delivers frames only as windows consume them, and segments decode only their own frame ranges,
so feeding the run's frames to the detector would mean planning lazily and could not split a run
at cuts before it starts. The pass is cheap beside the model: frames are scaled to about 256
pixels wide by the decoder's own scaler (as PySceneDetect does); measured on the project's
2-core machine under load, 2.5 ms per frame at 640x272 and 5.1 ms at 1280x720 (2.5-5 s per 1000
frames, decoding included, about as long as the run's own full-size decode), against seconds
per output frame for the network. ``FILE`` and ``off`` skip it.
"""
from __future__ import annotations

import csv
import os
import re
import time
from fractions import Fraction
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from stvsr.runtime.media import MediaInfo, VideoError, iter_frames, thumbnails

AUTO, OFF = "auto", "off"
_DETECT_WIDTH = 256      # PySceneDetect's default effective width for detection
_CSV_START = "Start Frame"


class CutsError(ValueError):
    """A scene-cut file or setting that cannot be used (one line)."""


def load_spec(spec: str, info: MediaInfo | None = None) -> str | list[int]:
    """``auto``, ``off``, or the cuts read from the file ``spec``, checked against the frame count of
    the probed input ``info`` when given (a cut past its end is refused while reading: before any
    work starts)."""
    if spec in (AUTO, OFF):
        return spec
    return read_cut_file(spec, None if info is None else info.frames, None if info is None else info.path)


def read_cut_file(path: str | os.PathLike, video_frames: int | None = None,
                  video: str | os.PathLike | None = None) -> list[int]:
    """Cut frame numbers (from 0, sorted, without 0) from a plain list or a PySceneDetect scene CSV.

    Read once, in pieces (a named pipe or ``<(...)`` works), with bounded memory: a line of more
    than ``MAX_LINE`` characters (PySceneDetect's cut-list row excepted, which is skipped), a file
    of more than ``MAX_BYTES`` and more than ``MAX_CUTS`` different cuts are refused, and with
    ``video_frames`` a cut at or past the end of the video is refused where it is read."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise CutsError(f"--scene-cuts {name}: a folder, not a file (use auto, off or a file of cut frame numbers)")
    if not os.path.exists(name):
        what = "a broken symbolic link" if os.path.islink(name) else "no such file"
        raise CutsError(f"--scene-cuts {name}: {what} (use auto, off or a file of cut frame numbers)")
    reader = _CutReader(name, video_frames, os.fspath(video) if video is not None else None)
    try:
        with open(name, encoding="utf-8-sig", newline="") as f:
            for first, text in _blocks(name, f):
                reader.block(first, text)
    except UnicodeDecodeError:
        raise CutsError(f"--scene-cuts {name}: not a text file") from None
    except OSError as exc:
        raise CutsError(f"--scene-cuts {name}: cannot read it ({exc.strerror or exc})") from None
    return sorted(c for c in reader.cuts if c > 0)


MAX_LINE = 4096             # characters in one line of a cut file
MAX_BYTES = 64 << 20        # characters: a longer cut file is not a cut list (a 10-hour scene CSV: ~25 MB)
MAX_CUTS = 1_000_000        # different cuts (without a video to check them against)
_MAX_DIGITS = 15            # a frame number (10**15 frames: 1000 years at 30 fps)
_CHUNK = 1 << 16            # characters read at a time
_CUT_ROW = re.compile(r"(Timecode List:|\d+:\d\d:\d\d[.,:]\d+)")   # PySceneDetect's first CSV row
# Anything in a block of plain lines but digits, blanks and line ends, or two numbers on a line:
# such a block goes line by line (which names the line that is wrong), others at C speed.
_NOT_PLAIN = re.compile(r"[^0-9 \t\r\n]|[0-9][ \t]+[0-9]")


def _blocks(name: str, f) -> Iterator[tuple[int, str | None]]:
    """``(number of the first line, text of whole lines)`` of an open text file, read in pieces of
    ``_CHUNK`` characters; ``None`` for a first line that is PySceneDetect's cut-list row (skipped
    unread: it is as long as the video has cuts). Lines longer than ``MAX_LINE`` are refused."""
    read, number, rest = 0, 1, ""   # rest: an unfinished line (or one ending in "\r", maybe half of "\r\n")

    def piece() -> str:
        nonlocal read
        chunk = f.read(_CHUNK)
        read += len(chunk)
        if read > MAX_BYTES:
            raise CutsError(f"--scene-cuts {name}: more than {MAX_BYTES >> 20} MiB: not a list of cut frame numbers")
        return chunk

    def too_long(line: int) -> CutsError:
        return CutsError(f"--scene-cuts {name}, line {line}: longer than {MAX_LINE} characters: not a list of cut "
                         "frame numbers")

    chunk = piece()
    if _CUT_ROW.match(chunk):
        while chunk and not ("\n" in chunk or "\r" in chunk):
            chunk = piece()
        ends = [i for i in (chunk.find("\n"), chunk.find("\r")) if i >= 0]
        chunk = chunk[min(ends):] if ends else ""
        chunk = chunk[2:] if chunk.startswith("\r\n") else chunk[1:]
        yield number, None
        number += 1
    while True:
        lines = (rest + chunk).splitlines(keepends=True)
        rest = lines.pop() if chunk and lines and not lines[-1].endswith("\n") else ""
        if max(map(len, lines), default=0) > MAX_LINE + 2:
            raise too_long(number + next(k for k, line in enumerate(lines) if len(line) > MAX_LINE + 2))
        if len(rest) > MAX_LINE + 1:
            raise too_long(number + len(lines))
        if lines:
            yield number, "".join(lines)
            number += len(lines)
        if not chunk:
            return
        chunk = piece()


def _frame_number(name: str, number: int, value: str, what: str = "") -> int:
    """``value`` as a frame number (ASCII digits only: not ``4²``, ``٤``, ``-5`` or ``3.5``)."""
    if not (value.isascii() and value.isdigit()):
        shown = repr(value[:40] + ("..." if len(value) > 40 else ""))
        raise CutsError(f"--scene-cuts {name}, line {number}: {what}{shown} is not a frame number (one cut per "
                        "line: the index of the first frame of a new shot, from 0; or PySceneDetect's scene CSV)")
    digits = value.lstrip("0")
    if len(digits) > _MAX_DIGITS:
        raise CutsError(f"--scene-cuts {name}, line {number}: {what}{digits[:12]!r}... ({len(digits)} digits) is "
                        "too large to be a frame number")
    return int(value)


class _CutReader:
    """The cuts of one file, line by line: a plain list, or a scene CSV from its header on."""

    def __init__(self, name: str, video_frames: int | None, video: str | None):
        self.name, self.video_frames, self.video = name, video_frames, video
        self.cuts: set[int] = set()
        self.column: int | None = None  # the Start Frame column of a scene CSV, once its header is read
        self.plain = False              # a plain list, once its first cut is read
        self.cut_row = False            # the first line was a scene CSV's cut-list row: its header must follow

    def block(self, first: int, text: str | None) -> None:
        """The lines of ``text`` (``first`` the number of its first); None: a scene CSV's cut-list row."""
        if text is None:
            self.cut_row = True
            return
        if self.column is None and not self.plain:   # the first lines say which kind of file it is
            lines = text.splitlines(keepends=True)
            for k, line in enumerate(lines):
                self.line(first + k, line.rstrip("\r\n"))
                if self.plain or self.column is not None:
                    first, text = first + k + 1, "".join(lines[k + 1:])
                    break
            else:
                return
        if self.plain and "#" not in text and not _NOT_PLAIN.search(text):   # one number or nothing per line
            numbers = text.split()
            if max(map(len, numbers), default=0) <= _MAX_DIGITS:
                cuts = list(map(int, numbers))
                if self.video_frames is None or not cuts or max(cuts) < self.video_frames:
                    self._add(cuts)
                    return
        for k, line in enumerate(text.splitlines()):
            self.line(first + k, line)

    def line(self, number: int, line: str) -> None:
        if self.column is None and not self.plain:
            if not line.split("#", 1)[0].strip():
                return
            header = [c.strip() for c in next(csv.reader([line]))]
            if _CSV_START in header:
                self.column = header.index(_CSV_START)
                return
            if self.cut_row:
                raise CutsError(f"--scene-cuts {self.name}, line 1: a scene CSV's cut-list row, but line {number} "
                                f"is not its header (no {_CSV_START!r} column)")
            self.plain = True
        if self.column is not None:
            row = next(csv.reader([line]), [])
            if not any(c.strip() for c in row):
                return
            value = row[self.column].strip() if self.column < len(row) else ""
            cut = _frame_number(self.name, number, value, f"{_CSV_START} ") - 1
            if cut < 0:
                raise CutsError(f"--scene-cuts {self.name}, line {number}: {_CSV_START} '0' is not a frame number "
                                "(PySceneDetect's scene CSV counts frames from 1)")
        else:
            value = line.split("#", 1)[0].strip()
            if not value:
                return
            cut = _frame_number(self.name, number, value)
        if self.video_frames is not None and cut >= self.video_frames:
            raise CutsError(f"--scene-cuts {self.name}, line {number}: a cut at frame {cut} is past the end of "
                            f"{self.video or 'the video'} ({self.video_frames} frames, counted from 0)")
        self._add([cut])

    def _add(self, cuts: list[int]) -> None:
        self.cuts.update(cuts)
        if len(self.cuts) > MAX_CUTS:
            raise CutsError(f"--scene-cuts {self.name}: more than {MAX_CUTS} different cuts: not a list for a video")


def detect_cuts(info: MediaInfo, n_frames: int | None = None) -> list[int]:
    """Hard cuts in the first ``n_frames`` frames of the probed input ``info`` (PySceneDetect
    ``AdaptiveDetector``), fed frames the decoder scales to about 256 pixels wide (``media.thumbnails``)
    through the one frame iterator (``media.iter_frames``, frame and slice threads).

    Decoding problems end detection quietly with the cuts found so far: the run's own decoder
    reports them with the frame where they happen."""
    images = iter_frames(info.path, 0, n_frames, convert=thumbnails(info.width, info.height, _DETECT_WIDTH),
                         threads="AUTO")
    try:
        return detect_cuts_in(images, info.fps)
    finally:
        images.close()


def detect_cuts_in(images: Iterable[np.ndarray], rate: Fraction) -> list[int]:
    """Hard cuts among ``images`` (uint8 BGR ``[h, w, 3]`` about 256 pixels wide, in order; ``rate``:
    frames per second) by PySceneDetect's ``AdaptiveDetector``: the detector of ``detect_cuts``, for
    callers with frames of their own (a VapourSynth clip). A ``VideoError`` from ``images`` ends
    detection quietly with the cuts found so far."""
    try:
        from scenedetect.common import FrameTimecode
        from scenedetect.detectors import AdaptiveDetector
    except ImportError as exc:
        raise CutsError(f"--scene-cuts auto needs PySceneDetect (pip install scenedetect-headless): {exc}; "
                        "or give --scene-cuts off or a file") from None
    detector = AdaptiveDetector()
    cuts: list[int] = []
    index = 0
    try:
        for image in images:
            cuts += [tc.frame_num for tc in detector.process_frame(FrameTimecode(index, rate), image)]
            index += 1
    except VideoError:
        pass
    if index:
        cuts += [tc.frame_num for tc in detector.post_process(FrameTimecode(index, rate))]
    return sorted(set(c for c in cuts if 0 < c < index))


def resolve_cuts(spec: str | Sequence[int] | None, info: MediaInfo, n_frames: int,
                 status: Callable[[str], None] | None = None) -> list[int]:
    """The cuts of the first ``n_frames`` frames of the probed input ``info`` for ``spec``: ``"off"``/None
    (none), ``"auto"`` (detected), a file name, or cut frame numbers already read (``load_spec``).

    Cuts past ``n_frames`` are dropped (``--frames``); a cut at or past the end of the whole video
    means the list is for another video and is refused."""
    say = status or (lambda message: None)
    path, video_frames = info.path, info.frames
    if spec is None or spec == OFF:
        return []
    if spec == AUTO:
        start = time.perf_counter()
        cuts = detect_cuts(info, n_frames)
        seconds = time.perf_counter() - start
        say(f"scene cuts: {len(cuts)} found in {seconds:.1f} s ({1000 * seconds / max(1, n_frames):.1f} ms per frame)")
        return cuts
    if isinstance(spec, (str, os.PathLike)):
        cuts = read_cut_file(spec, video_frames, path)
    else:
        cuts = sorted(set(int(c) for c in spec))
    if video_frames is not None and cuts and cuts[-1] >= video_frames:
        raise CutsError(f"--scene-cuts: a cut at frame {cuts[-1]} is past the end of {os.fspath(path)} "
                        f"({video_frames} frames, counted from 0)")
    return [c for c in cuts if 0 < c < n_frames]
