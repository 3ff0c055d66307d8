"""Standard input and output as video streams (``stvsr-run MODEL - -o -``).

``StreamInput`` reads a video once, from its start: standard input in a named format (yuv4mpegpipe by
default, NUT or Matroska), opened and its first frame decoded at once (size, rate and colour are known
before the model loads; garbage is refused in one line), then its frames as they come. A pipe cannot
seek and says its frame count only at its end. YUV4MPEG2 frames are bare bytes, and FFmpeg's demuxer
ends a stream cut inside a frame as if it ended cleanly: ``StreamInput`` counts the bytes it passes
on and refuses such an end in one line (``VideoError``), as it refuses corrupt data.

Standard output: ``OUTPUT_FORMATS`` (muxer and codec: raw video in y4m and NUT, lossless FFV1 in
Matroska), written by ``encode.VideoWriter`` into FFmpeg's ``pipe:1``. YUV4MPEG2 holds YUV and gray
only; its 10- to 16-bit layouts are FFmpeg extensions, written as FFmpeg writes them with ``-strict -1``.
"""
from __future__ import annotations

import sys
from collections import deque
from fractions import Fraction
from typing import BinaryIO, Callable, Iterator

from stvsr.runtime.media.colour import picture_of
from stvsr.runtime.media.container import VideoError, error_text
from stvsr.runtime.media.probe import MediaInfo
from stvsr.runtime.media.timing import display_matrix

PIPE = "-"                                                    # INPUT or OUTPUT: standard input / output
INPUT_FORMATS = {"y4m": "yuv4mpegpipe", "nut": "nut", "matroska": "matroska"}
OUTPUT_FORMATS = {"y4m": ("yuv4mpegpipe", "rawvideo"), "nut": ("nut", "rawvideo"), "matroska": ("matroska", "ffv1")}
_FRAME_HEADER = b"FRAME"


# What FFmpeg's y4m muxer writes: YUV and gray layouts (above 8 bits its own extension, ``-strict -1``)
Y4M_PIX_FMTS = frozenset({"gray", "gray9le", "gray10le", "gray12le", "gray16le", "yuv411p", "yuv420p", "yuv422p",
                          "yuv444p", "yuva444p"} | {f"yuv{c}p{b}le" for c in ("420", "422", "444") for b in (9, 10, 12, 14, 16)})


def y4m_pix_fmt(pix_fmt: str) -> str | None:
    """The 4:4:4 YUV format of ``pix_fmt``'s depth for y4m, which does not hold ``pix_fmt`` (RGB); None
    when it does."""
    import av

    if pix_fmt in Y4M_PIX_FMTS:
        return None
    bits = max(c.bits for c in av.VideoFormat(pix_fmt).components)
    return "yuv444p" if bits <= 8 else next(f"yuv444p{b}le" for b in (10, 12, 16) if bits <= b or b == 16)


def is_pipe(name: str | None) -> bool:
    return name == PIPE


def muxer_options(muxer: str) -> dict[str, str]:
    """Options of a pipe's muxer: y4m's layouts above 8 bits are FFmpeg's own (``-strict -1``)."""
    return {"strict": "-1"} if muxer == "yuv4mpegpipe" else {}


class _CountingReader:
    """A file object for PyAV over a pipe (no seeking): counts the bytes read and keeps at least the
    last ``keep`` of them (``tail``)."""

    def __init__(self, raw: BinaryIO, keep: int = 1 << 16):
        self.raw, self.read_bytes, self.keep = raw, 0, keep
        self._chunks: deque[bytes] = deque()
        self._held = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read1(size) if hasattr(self.raw, "read1") else self.raw.read(size)  # what has come
        self.read_bytes += len(data)
        self._chunks.append(data)
        self._held += len(data)
        while self._held - len(self._chunks[0]) >= self.keep:
            self._held -= len(self._chunks.popleft())
        return data

    def tail(self) -> bytes:
        return b"".join(self._chunks)[-self.keep:]


class StreamInput:
    """A video read once from standard input (``fmt``: a key of ``INPUT_FORMATS``): its ``info`` (frame
    count unknown: 0; no timestamps: a constant rate) once the first frame decoded, then ``frames``."""

    def __init__(self, fmt: str = "y4m", source: BinaryIO | None = None, name: str = "stdin"):
        import av

        self.name, self.format = name, INPUT_FORMATS[fmt]
        self._reader = _CountingReader(source if source is not None else sys.stdin.buffer)
        try:
            self.container = av.open(self._reader, format=self.format, mode="r")
        except Exception as exc:
            raise VideoError(f"{name}: not a {fmt} stream ({error_text(exc)})") from None
        try:
            if not self.container.streams.video:
                raise VideoError(f"{name}: the {fmt} stream has no video")
            self.stream = self.container.streams.video[0]
            self._packets = self.container.demux(self.stream)
            self._held: list = []          # frames decoded ahead (the first one, for the picture)
            self.decoded = 0
            self.packet_size = 0
            while not self._held:
                if not self._decode_next():
                    raise VideoError(f"{name}: {self._ended_early()}")
            first = self._held[0]
            cc = self.stream.codec_context
            fps = self.stream.average_rate or self.stream.guessed_rate or cc.framerate
            if not fps:
                raise VideoError(f"{name}: the {fmt} stream has no frame rate")
            colour = {f: getattr(cc, f, None) for f in ("color_range", "colorspace", "color_primaries", "color_trc")}
            others = len(self.container.streams.audio) + len(self.container.streams.subtitles)
            self.info = MediaInfo(name, first.width, first.height, Fraction(fps), 0, colour, others,
                                  display_matrix=display_matrix(first), picture=picture_of(first))
        except BaseException:
            self.close()
            raise

    def _decode_next(self) -> bool:
        """Demux and decode one packet into ``_held``; False at the end of the stream (decoder drained)."""
        import av

        if self._packets is None:
            return False
        try:
            packet = next(self._packets)
        except StopIteration:
            self._packets = None
            return False
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.name}: corrupt {self.format} data near frame {self.decoded} "
                             f"({error_text(exc)})") from None
        if packet.size and not self.packet_size:
            self.packet_size = packet.size
            self._reader.keep = packet.size + 1024   # a whole frame and its header line, for ``_check_end``
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.name}: corrupt video data in frame {self.decoded} ({error_text(exc)}); "
                             "the stream may end in the middle of a frame") from None
        size = (self.stream.codec_context.width, self.stream.codec_context.height)
        for frame in frames:
            if (frame.width, frame.height) != size:
                raise VideoError(f"{self.name}: frame {self.decoded} changes size to {frame.width}x{frame.height}")
            self._held.append(frame)
            self.decoded += 1
        return True

    def frames(self, convert: Callable | None = None, limit: int | None = None) -> Iterator:
        """Every frame (the first ``limit``), converted by ``convert``; the stream's end is checked."""
        convert = convert or (lambda frame: frame)
        given = 0
        while limit is None or given < limit:
            if not self._held and not self._decode_next():
                self._check_end()
                return
            while self._held and (limit is None or given < limit):
                yield convert(self._held.pop(0))
                given += 1

    def _check_end(self) -> None:
        """A y4m stream must end after a whole frame: its demuxer drops a cut one silently."""
        if self.format != "yuv4mpegpipe" or not self.packet_size:
            return
        tail, size = self._reader.tail(), self.packet_size
        head = tail[:-size] if len(tail) > size else b""   # ... FRAME[ params]\n before the last frame's bytes
        header = head.rfind(_FRAME_HEADER)
        if header < 0 or not head.endswith(b"\n") or b"\n" in head[header:-1]:
            raise VideoError(f"{self.name}: the stream ends in the middle of frame {self.decoded} (counted from 0; "
                             f"{self.decoded} whole frames of {size} bytes came before it): truncated input")

    def _ended_early(self) -> str:
        if self.format == "yuv4mpegpipe" and self._reader.read_bytes:
            return "the stream ended before its first whole frame (truncated input)"
        return "the stream has no frames"

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - closing a broken pipe's demuxer
            pass
