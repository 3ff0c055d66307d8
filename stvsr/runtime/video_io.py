"""Video in and out with PyAV: decoding, H.264 (or any) encoding, audio/subtitle passthrough,
colour metadata carried over, and an output that appears only when complete."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from stvsr.runtime.stream_meta import is_variable_rate, presentation_pts, scaled_matrix, scan_stream
from stvsr.video import VideoError, open_video

COLOUR_FIELDS = ("color_range", "colorspace", "color_primaries", "color_trc")


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: Fraction
    frames: int                     # counted from the demuxed packets
    colour: dict
    passthrough: int                # audio + subtitle streams
    time_base: Fraction | None = None
    pts: list[int] | None = None    # presentation times of the frames (time_base units, from 0); None: unknown
    display_matrix: list[int] | None = None  # rotation/flip side data (FFmpeg layout); None: identity

    @property
    def variable_rate(self) -> bool:
        return is_variable_rate(self.pts, self.time_base, self.fps)


def probe(path: str) -> VideoInfo:
    """Size, frame rate, frame count (by demuxing, no decoding) and colour metadata of ``path``."""
    container, stream = open_video(path)
    try:
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise VideoError(f"{path}: cannot determine the frame rate")
        cc = stream.codec_context
        colour = {f: getattr(cc, f, None) for f in COLOUR_FIELDS}
        width, height = cc.width, cc.height
        if not width or not height:
            raise VideoError(f"{path}: the video stream has no frame size")
        frames, packet_pts, matrix = scan_stream(container, stream)
        time_base = stream.time_base
        others = len(container.streams.audio) + len(container.streams.subtitles)
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f"{path}: cannot read the video ({type(exc).__name__})") from None
    finally:
        container.close()
    if frames == 0:
        raise VideoError(f"{path}: the video stream has no frames")
    return VideoInfo(path, width, height, Fraction(fps), frames, colour, others,
                     Fraction(time_base) if time_base else None, presentation_pts(packet_pts), matrix)


class VideoWriter:
    """Encode frames to a temporary file next to ``path``; ``commit`` renames it into place."""

    def __init__(self, path: str, source: VideoInfo, fps: Fraction, width: int, height: int,
                 codec: str = "libx264", crf: int | None = 18, preset: str | None = "medium",
                 pix_fmt: str = "yuv420p", copy_streams: bool = True,
                 timestamps: tuple[Fraction, list[int]] | None = None):
        import av

        self.path = Path(path)
        parent = self.path.resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise VideoError(f"cannot write {path}: folder {parent} is missing or not writable")
        if self.path.is_dir():
            raise VideoError(f"cannot write {path}: it is a folder")
        fd, self.tmp = tempfile.mkstemp(dir=parent, prefix=f".{self.path.name}.", suffix=self.path.suffix or ".mp4")
        os.close(fd)
        self.source = source
        fmt = "mp4" if (self.path.suffix.lower() in ("", ".mp4", ".m4v")) else None
        options = {}
        if crf is not None and codec in ("libx264", "libx265", "libvpx-vp9", "libaom-av1"):
            options["crf"] = str(crf)
        if preset and codec in ("libx264", "libx265"):
            options["preset"] = preset
        try:
            self.container = av.open(self.tmp, "w", format=fmt)
            self.stream = self.container.add_stream(codec, rate=fps, options=options)
        except Exception as exc:
            self.abort()
            raise VideoError(f"cannot encode {codec!r} into {path}: {exc}") from None
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        # Real presentation times (variable frame rate kept) in a time base that holds them exactly;
        # without them frame k is at k/fps and PyAV derives the time base from the rate.
        self.time_base, self.timestamps = timestamps if timestamps else (None, None)
        if self.time_base is not None:
            self.stream.codec_context.time_base = self.time_base
        if source.display_matrix is not None:  # rotation/flip of the source (a phone clip shot upright)
            self.stream.set_display_matrix(scaled_matrix(source.display_matrix, max(1, width // source.width)))
        for field in COLOUR_FIELDS:
            value = source.colour.get(field)
            if value is not None:
                try:
                    setattr(self.stream.codec_context, field, value)
                except Exception:
                    pass
        self.copied: list = []
        self._src = None
        if copy_streams:
            self._add_passthrough()
        self.count = 0

    def _add_passthrough(self) -> None:
        import av

        # The source stays open until commit: template streams refer to its codec parameters.
        self._src = av.open(self.source.path)
        for s in list(self._src.streams.audio) + list(self._src.streams.subtitles):
            try:
                self.copied.append((s.index, self.container.add_stream_from_template(s)))
            except Exception:
                pass  # a codec the output format cannot hold (e.g. some subtitles in MP4)

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if self.timestamps is not None:
            frame.pts, frame.time_base = self.timestamps[self.count], self.time_base
        else:
            frame.pts = self.count  # in 1/fps units: PyAV derives the codec time base from the rate
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def _mux_passthrough(self) -> None:
        if not self.copied:
            return
        by_index = dict(self.copied)
        streams = [s for s in self._src.streams if s.index in by_index]
        for packet in self._src.demux(streams):
            if packet.dts is None:
                continue
            packet.stream = by_index[packet.stream.index]
            self.container.mux(packet)

    def commit(self) -> Path:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self._mux_passthrough()
        self.container.close()
        self._close_source()
        os.replace(self.tmp, self.path)
        return self.path

    def _close_source(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def abort(self) -> None:
        try:
            self._close_source()
        except Exception:
            pass
        try:
            if getattr(self, "container", None) is not None:
                self.container.close()
        except Exception:
            pass
        Path(self.tmp).unlink(missing_ok=True)
