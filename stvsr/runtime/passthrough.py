"""Audio and subtitle passthrough: copy the source's streams into an output, in sync with its video.

Timeline rule (the same for MP4, MKV and MPEG-TS inputs and outputs): the output's first video
frame is the source's frame at ``start`` seconds (source time) and is written at time 0; every
copied stream is shifted by the same ``start``, so a source whose video starts at 1.0 s (MKV),
1.4 s (MPEG-TS) or behind an MP4 edit list keeps its sync. Packets that end before ``start``
are dropped (a packet that straddles it is kept, at a negative time the muxer handles: an MP4
edit list, or MKV/TS shifting every stream alike); with ``end``, packets from ``end`` on are
dropped, so audio is at most one audio frame longer than the video. The demuxer's own pre-roll
packets (AAC priming, ``is_discard``) just before ``start`` are kept, as ``ffmpeg -c copy`` does.
"""
from __future__ import annotations

import threading
from fractions import Fraction

import av


def add_passthrough_streams(source_path: str, out_container) -> dict[int, object]:
    """Add to ``out_container`` (before anything is muxed into it) a copy of every audio and
    subtitle stream of ``source_path`` that its format can hold; returns ``{source stream
    index: output stream}`` for ``copy_passthrough``. The source is closed again (the new
    streams hold copies of its codec parameters)."""
    streams: dict[int, object] = {}
    with av.open(source_path) as src:
        for s in list(src.streams.audio) + list(src.streams.subtitles):
            try:
                streams[s.index] = out_container.add_stream_from_template(s)
            except Exception:
                pass  # a codec the output format cannot hold (e.g. SubRip in MP4)
    return streams


def _ticks(seconds: Fraction, time_base: Fraction) -> int:
    return round(Fraction(seconds) / time_base)


def copy_passthrough(source_path: str, out_container, streams: dict[int, object], start: Fraction | float = 0,
                     end: Fraction | float | None = None, stop: threading.Event | None = None,
                     origin: Fraction | float | None = None) -> bool:
    """Copy the packets of ``streams`` (from ``add_passthrough_streams``) from ``source_path``
    into ``out_container``.

    ``start``, ``end``: the span to copy, in seconds of the source's timeline (``end`` None: to
    the end of each stream); a packet is copied when it overlaps ``[start, end)``.
    ``origin``: the source time written as output time 0 (default ``start``, where the caller
    writes its first video frame at 0). Every copied packet is shifted by ``origin``.
    ``stop``: checked between packets; returns False (nothing more muxed) once it is set, else True.
    Packets without timestamps are skipped. The caller closes ``out_container``.
    """
    if not streams:
        return True
    start = Fraction(start)
    origin = start if origin is None else Fraction(origin)
    with av.open(source_path) as src:
        chosen = [s for s in src.streams if s.index in streams]
        bounds = {s.index: (Fraction(s.time_base), _ticks(start, s.time_base), _ticks(origin, s.time_base),
                            None if end is None else _ticks(Fraction(end), s.time_base)) for s in chosen}
        for packet in src.demux(chosen):
            if stop is not None and stop.is_set():
                return False
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's end-of-stream flush packet, or a packet without time
            _, first, shift, last = bounds[packet.stream.index]
            t = packet.pts if packet.pts is not None else packet.dts
            length = max(packet.duration or 0, 0)
            reach = length if packet.is_discard else 0   # keep the pre-roll that precedes start
            if t < first and t + length + reach <= first:
                continue
            if last is not None and t >= last:
                continue
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = streams[packet.stream.index]
            out_container.mux(packet)
    return True


def video_end(info, frames: int, fps_out: Fraction) -> Fraction | None:
    """Source time (s) where the output video of the first ``frames`` frames of ``info`` (a
    ``VideoInfo``) ends: its last frame's time plus one output frame. None when all frames are
    used (the copied streams then run to their own end, as in the input)."""
    if frames >= info.frames:
        return None
    if info.pts and info.time_base and len(info.pts) >= frames:
        last = Fraction(info.pts[frames - 1]) * info.time_base
    else:
        last = Fraction(frames - 1) / info.fps
    return info.start + last + 1 / Fraction(fps_out)
