"""Decode a range of input frames: seek to the keyframe before the first one, check every frame's
presentation time against the probed index, and fall back to decoding from the start when the
container cannot seek exactly (correctness first: the frames are always the ones a one-pass
decode gives at those indices)."""
from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np

from stvsr.runtime.video_io import VideoInfo
from stvsr.video import VideoError, iter_frames, open_video


def _to_rgb(frame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _sequential(path: str, first: int, count: int, to_rgb: Callable = _to_rgb) -> Iterator[np.ndarray]:
    frames = iter_frames(path, first + count)
    try:
        for k, frame in enumerate(frames):
            if k >= first:
                yield to_rgb(frame)
    finally:
        frames.close()


class _NoExactSeek(Exception):
    pass


def _seeking(path: str, first: int, count: int, info: VideoInfo, to_rgb: Callable) -> Iterator[np.ndarray]:
    """Frames ``first .. first+count-1`` after a seek; raises ``_NoExactSeek`` before yielding a
    frame whose time is not the expected one."""
    import av

    container, stream = open_video(path)
    size = (stream.codec_context.width, stream.codec_context.height)
    try:
        base = None
        for frame in container.decode(stream):  # the first shown frame's time: where the index starts
            base = frame.pts
            break
        if base is None:
            raise _NoExactSeek
        want = [base + p for p in info.pts[first:first + count]]
        container.seek(want[0], stream=stream, backward=True, any_frame=False)
        k = 0
        for frame in container.decode(stream):
            if frame.pts is None:
                raise _NoExactSeek
            if frame.pts < want[k]:
                continue                     # decoded from the keyframe before the range
            if frame.pts != want[k]:
                raise _NoExactSeek
            if (frame.width, frame.height) != size:
                raise VideoError(f"{path}: frame {first + k} changes size to {frame.width}x{frame.height}")
            yield to_rgb(frame)
            k += 1
            if k == len(want):
                return
        raise _NoExactSeek
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: corrupt video data near frame {first} ({exc.strerror or exc})") from None
    finally:
        container.close()


def iter_frame_range(path: str | os.PathLike, first: int, count: int, info: VideoInfo | None = None,
                     to_rgb: Callable = _to_rgb) -> Iterator[np.ndarray]:
    """Input frames ``first .. first+count-1``, each converted by ``to_rgb`` (default: uint8 RGB
    ``[H, W, 3]``; the pipeline passes ``stvsr.runtime.colour.FrameDecoder``); seeks when ``info``
    has the frames' presentation times, else decodes from the start."""
    path = os.fspath(path)
    if first == 0 or info is None or not info.pts or len(info.pts) < first + count:
        yield from _sequential(path, first, count, to_rgb)
        return
    done = 0
    try:
        for rgb in _seeking(path, first, count, info, to_rgb):
            yield rgb
            done += 1
    except _NoExactSeek:
        yield from _sequential(path, first + done, count - done, to_rgb)
