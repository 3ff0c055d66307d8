"""Small video helpers shared by export (calibration frames) and the runtime."""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np


class VideoError(ValueError):
    """A file that cannot be read as a video."""


def open_video(path: str | os.PathLike):
    """Open ``path`` with PyAV and return ``(container, video_stream)``; one-line errors otherwise."""
    import av

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(path)
    except Exception as exc:
        raise VideoError(f"{path}: not a readable video ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def iter_rgb_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decoded frames as uint8 RGB arrays ``[H, W, 3]``."""
    container, stream = open_video(path)
    try:
        count = 0
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")
            count += 1
            if max_frames is not None and count >= max_frames:
                break
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
