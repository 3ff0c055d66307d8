"""Scene cuts for shot-aware planning (``stvsr-run --scene-cuts auto|off|FILE``).

A cut is the index (from 0) of the first input frame of a new shot. ``auto`` detects hard cuts
with PySceneDetect's ``AdaptiveDetector`` (its defaults: a content score in HSV compared with the
rolling average of the 2 frames on each side, shots of at least 15 frames); ``off`` plans the
video as one shot; any other value is a file: cut frame numbers one per line (``#`` comments),
or the scene-list CSV of PySceneDetect (``scenedetect ... list-scenes``; its "Start Frame" column
counts from 1).

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
import io
import os
import time
from typing import Callable, Sequence

AUTO, OFF = "auto", "off"
_DETECT_WIDTH = 256      # PySceneDetect's default effective width for detection
_CSV_START = "Start Frame"


class CutsError(ValueError):
    """A scene-cut file or setting that cannot be used (one line)."""


def load_spec(spec: str) -> str | list[int]:
    """``auto``, ``off``, or the cuts read from the file ``spec`` (checked before any work starts)."""
    if spec in (AUTO, OFF):
        return spec
    return read_cut_file(spec)


def read_cut_file(path: str | os.PathLike) -> list[int]:
    """Cut frame numbers (from 0, sorted, without 0) from a plain list or a PySceneDetect scene CSV."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        what = "a folder, not a file" if os.path.isdir(name) else "no such file"
        raise CutsError(f"--scene-cuts {name}: {what} (use auto, off or a file of cut frame numbers)")
    try:
        with open(name, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise CutsError(f"--scene-cuts {name}: not a text file") from None
    except OSError as exc:
        raise CutsError(f"--scene-cuts {name}: cannot read it ({exc.strerror or exc})") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = next((k for k, row in enumerate(rows) if _CSV_START in [c.strip() for c in row]), None)
    cuts = _from_csv(name, rows, header) if header is not None else _from_lines(name, text)
    return sorted(set(c for c in cuts if c > 0))


def _from_lines(name: str, text: str) -> list[int]:
    cuts = []
    for number, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        if not value.isdigit():
            raise CutsError(f"--scene-cuts {name}, line {number}: {value[:40]!r} is not a frame number (one cut per "
                            "line: the index of the first frame of a new shot, from 0; or PySceneDetect's scene CSV)")
        cuts.append(int(value))
    return cuts


def _from_csv(name: str, rows: list[list[str]], header: int) -> list[int]:
    column = [c.strip() for c in rows[header]].index(_CSV_START)
    cuts = []
    for number, row in enumerate(rows[header + 1:], header + 2):
        if not any(c.strip() for c in row):
            continue
        value = row[column].strip() if column < len(row) else ""
        if not value.isdigit() or int(value) < 1:
            raise CutsError(f"--scene-cuts {name}, line {number}: {_CSV_START} {value[:40]!r} is not a frame number "
                            "(PySceneDetect's scene CSV counts frames from 1)")
        cuts.append(int(value) - 1)
    return cuts


def detect_cuts(path: str | os.PathLike, n_frames: int | None = None) -> list[int]:
    """Hard cuts in the first ``n_frames`` frames of ``path`` (PySceneDetect ``AdaptiveDetector``).

    Decoding problems end detection quietly with the cuts found so far: the run's own decoder
    reports them with the frame where they happen."""
    try:
        import av
        from scenedetect.common import FrameTimecode
        from scenedetect.detectors import AdaptiveDetector
    except ImportError as exc:
        raise CutsError(f"--scene-cuts auto needs PySceneDetect (pip install scenedetect-headless): {exc}; "
                        "or give --scene-cuts off or a file") from None
    from stvsr.video import open_video

    container, stream = open_video(path)
    detector = AdaptiveDetector()
    cuts: list[int] = []
    index = 0
    try:
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or 25
        width, height = stream.codec_context.width, stream.codec_context.height
        shrink = max(1, width // _DETECT_WIDTH)
        size = {"width": max(1, width // shrink), "height": max(1, height // shrink)}
        for frame in container.decode(stream):
            if n_frames is not None and index >= n_frames:
                break
            if (frame.width, frame.height) != (width, height):
                break
            image = frame.to_ndarray(format="bgr24", **size)
            cuts += [tc.frame_num for tc in detector.process_frame(FrameTimecode(index, rate), image)]
            index += 1
    except av.error.FFmpegError:
        pass
    finally:
        container.close()
    if index:
        cuts += [tc.frame_num for tc in detector.post_process(FrameTimecode(index, rate))]
    return sorted(set(c for c in cuts if 0 < c < index))


def resolve_cuts(spec: str | Sequence[int] | None, path: str | os.PathLike, n_frames: int,
                 video_frames: int | None = None, status: Callable[[str], None] | None = None) -> list[int]:
    """The cuts of the first ``n_frames`` frames of ``path`` for ``spec``: ``"off"``/None (none),
    ``"auto"`` (detected), a file name, or cut frame numbers already read (``load_spec``).

    Cuts past ``n_frames`` are dropped (``--frames``); a cut at or past the end of the whole video
    (``video_frames``) means the list is for another video and is refused."""
    say = status or (lambda message: None)
    if spec is None or spec == OFF:
        return []
    if spec == AUTO:
        start = time.perf_counter()
        cuts = detect_cuts(path, n_frames)
        seconds = time.perf_counter() - start
        say(f"scene cuts: {len(cuts)} found in {seconds:.1f} s ({1000 * seconds / max(1, n_frames):.1f} ms per frame)")
        return cuts
    cuts = read_cut_file(spec) if isinstance(spec, (str, os.PathLike)) else sorted(set(int(c) for c in spec))
    if video_frames is not None and cuts and cuts[-1] >= video_frames:
        raise CutsError(f"--scene-cuts: a cut at frame {cuts[-1]} is past the end of {os.fspath(path)} "
                        f"({video_frames} frames, counted from 0)")
    return [c for c in cuts if 0 < c < n_frames]
