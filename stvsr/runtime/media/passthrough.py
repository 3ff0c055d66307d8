"""Audio, subtitles and attachments of the source in an output: which streams it keeps, and their
packets muxed in time with the video.

Plan (``plan_streams``, said before anything is written): every audio and subtitle stream the
output's container can hold is copied packet for packet, with its language, title and
disposition (default, forced, ...), the container's tags (title, ...) and, in Matroska, its
font attachments; a text subtitle the container cannot hold as it is (mov_text into Matroska,
SubRip into MP4) is converted to the container's own text format (decoded and encoded again, as
``ffmpeg`` does); what is left out is named in a ``note``.

Timeline rule (the same for MP4, MKV and MPEG-TS inputs and outputs): the output's first video
frame is the source's frame at ``start`` seconds (source time) and is written at time 0; every
copied stream is shifted by the same ``start``, so a source whose video starts at 1.0 s (MKV),
1.4 s (MPEG-TS) or behind an MP4 edit list keeps its sync. Packets that end before ``start``
are dropped (a packet that straddles it is kept, at a negative time the muxer handles: an MP4
edit list, or MKV/TS shifting every stream alike); with ``end``, packets from ``end`` on are
dropped, so audio is at most one audio frame longer than the video. The demuxer's own pre-roll
packets (AAC priming, ``is_discard``) just before ``start`` are kept, as ``ffmpeg -c copy`` does.

Interleaving: ``Passthrough.feed(t)`` muxes the packets that start before output time ``t``; the
writer calls it before each video packet with that packet's decoding time, so the file holds
audio and video side by side in time (as FFmpeg writes it), not the audio after all the video.

One open of the source for both: the plan keeps the container it read the streams from, and the
``Passthrough`` that copies them takes it (``StreamPlan.take_source``; ``StreamPlan.close`` where none did).
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from fractions import Fraction

import av

from stvsr.runtime.media.container import FORMAT_NAMES, container_format, format_name, refuses

TEXT_SUBTITLES = ("mov_text", "ass", "subrip", "webvtt")   # encoders a text subtitle can be converted to
_STALE_TAGS = ("duration", "number_of_frames", "number_of_bytes", "bps", "_statistics_", "encoder",
               "major_brand", "minor_version", "compatible_brands")  # describe the source file, not the copy


def _kept_tags(metadata: dict) -> dict[str, str]:
    """Tags worth copying: not the source's statistics or file-format entries; MOV's track ``name`` as ``title``."""
    tags = {k: v for k, v in metadata.items()
            if not any(k.lower().split("-")[0].startswith(t) for t in _STALE_TAGS)}
    if "title" not in tags and "name" in tags:
        tags["title"] = tags.pop("name")
    return tags


def _fits(muxer: str, add) -> bool:
    """Whether a file of ``muxer`` can start with the one stream ``add(container)`` creates."""
    scratch = av.open(io.BytesIO(), "w", format=muxer)
    try:
        stream = add(scratch)
        if stream.codec_context is not None and refuses(muxer, stream.codec_context.codec.canonical_name):
            return False
        scratch.start_encoding()
        return True
    except Exception:
        return False
    finally:
        try:
            scratch.close()
        except Exception:
            pass


def _text_encoder(muxer: str, decoder) -> str | None:
    """The text subtitle encoder for a subtitle ``muxer`` cannot hold as it is (None: none fits)."""
    if decoder is None or decoder.type != "subtitle":
        return None
    try:
        decoder.open(strict=False)          # a text decoder writes its ASS header when it opens
    except Exception:
        return None
    header = decoder.subtitle_header
    if not header:
        return None                         # a bitmap subtitle (PGS, DVD, DVB): no text to convert
    scratch = av.open(io.BytesIO(), "w", format=muxer)
    preferred = [scratch.default_subtitle_codec, *TEXT_SUBTITLES]
    scratch.close()
    for codec in dict.fromkeys(c for c in preferred if c in TEXT_SUBTITLES):
        def add(container, codec=codec):
            s = container.add_stream(codec)
            s.codec_context.subtitle_header = header
            return s
        if _fits(muxer, add):
            return codec
    return None


@dataclass
class StreamPlan:
    """What an output keeps of ``source``'s other streams (``plan_streams``)."""
    source: str
    muxer: str
    streams: list[tuple[int, str | None]] = field(default_factory=list)  # (source index, None or the encoder it is converted to)
    attachments: list[int] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)              # the container's tags
    notes: list[str] = field(default_factory=list)
    opened: object = field(default=None, repr=False, compare=False)    # the source, open for the copy

    def take_source(self):
        """The source container the plan was made from (the copy reads it: one open of the source for
        planning and copying), or the source opened anew where it was taken already."""
        src, self.opened = self.opened, None
        return src if src is not None else av.open(self.source)

    def close(self) -> None:
        """Release the source container if no ``Passthrough`` took it."""
        src, self.opened = self.opened, None
        if src is not None:
            src.close()


def _describe(s) -> str:
    codec = s.codec_context.codec.canonical_name if s.codec_context is not None else "data"
    lang = s.metadata.get("language")
    return f"{s.type} stream {s.index} ({codec}{', ' + lang if lang and lang != 'und' else ''})"


def plan_streams(source_path: str, output_name: str) -> StreamPlan:
    """The audio, subtitle and attachment streams of ``source_path`` an output named
    ``output_name`` keeps, converts or leaves out (said in ``notes``), and its container tags."""
    try:
        probe = av.open(str(output_name), "w", format=container_format(str(output_name)))  # no file is created
    except Exception:
        return StreamPlan(source_path, "")  # no format for this name: the video writer says so
    muxer = format_name(probe)
    probe.close()
    plan = StreamPlan(source_path, muxer)
    converted, dropped = [], []
    src = av.open(source_path)
    try:
        plan.metadata = _kept_tags(dict(src.metadata))
        for s in list(src.streams.audio) + list(src.streams.subtitles):
            if _fits(muxer, lambda c, s=s: c.add_stream_from_template(s)):
                plan.streams.append((s.index, None))
                continue
            codec = _text_encoder(muxer, s.codec_context) if s.type == "subtitle" else None
            if codec is not None:
                plan.streams.append((s.index, codec))
                converted.append(f"{_describe(s)} to {codec}")
            else:
                dropped.append(_describe(s))
        for s in src.streams.attachments:
            if muxer == "matroska" and _fits(muxer, lambda c, s=s: c.add_stream_from_template(s)):
                plan.attachments.append(s.index)
            else:
                dropped.append(f"attachment {s.index} ({s.metadata.get('filename') or 'unnamed'})")
    except BaseException:
        src.close()
        raise
    plan.opened = src  # kept open: the copy reads the same open file (``StreamPlan.take_source``)
    what = FORMAT_NAMES.get(muxer, f"a {muxer}")
    if converted:
        one = len(converted) == 1
        plan.notes.append(f"converted {', '.join(converted)}: {what} file cannot hold {'it' if one else 'them'} "
                          f"as {'it is' if one else 'they are'}")
    if dropped:
        plan.notes.append(f"left out {', '.join(dropped)}: {what} file cannot hold "
                          f"{'it' if len(dropped) == 1 else 'them'}")
    return plan


def _ticks(seconds: Fraction, time_base: Fraction) -> int:
    return round(Fraction(seconds) / time_base)


class Passthrough:
    """The streams of ``plan`` in ``out_container``: added at construction (before its header is
    written), then muxed by ``feed`` in time with the video.

    ``start``, ``end``: the span to copy, in seconds of the source's timeline (``end`` None: to
    the end of each stream); a packet is copied when it overlaps ``[start, end)``.
    ``origin``: the source time written as output time 0 (default ``start``, where the caller
    writes its first video frame at 0). Every copied packet is shifted by ``origin``.
    Packets without timestamps are skipped. Used from one thread; ``close`` releases the source.
    """

    def __init__(self, plan: StreamPlan, out_container, start: Fraction | float = 0,
                 end: Fraction | float | None = None, origin: Fraction | float | None = None):
        self.out = out_container
        self.start = Fraction(start)
        self.origin = self.start if origin is None else Fraction(origin)
        self.end = None if end is None else Fraction(end)
        self.src = plan.take_source()
        try:
            self.out.metadata.update(plan.metadata)
            self.targets: dict[int, object] = {}
            self.encoders: dict[int, object] = {}
            for index, codec in plan.streams:
                s = self.src.streams[index]
                if codec is None:
                    target = self.out.add_stream_from_template(s)
                else:   # a text subtitle decoded and encoded again in the output's text format
                    s.codec_context.open(strict=False)
                    target = self.out.add_stream(codec)
                    target.codec_context.subtitle_header = s.codec_context.subtitle_header
                    target.codec_context.time_base = s.time_base
                    target.time_base = s.time_base
                    self.encoders[index] = target.codec_context
                target.metadata.update(_kept_tags(dict(s.metadata)))
                target.disposition = int(s.disposition)
                self.targets[index] = target
            for index in plan.attachments:
                self.out.add_stream_from_template(self.src.streams[index])
            chosen = [self.src.streams[i] for i in self.targets]
            self.bounds = {s.index: (_ticks(self.start, s.time_base), _ticks(self.origin, s.time_base),
                                     None if self.end is None else _ticks(self.end, s.time_base)) for s in chosen}
            self.packets = self.src.demux(chosen) if chosen else iter(())
            self.pending = None
            self.done: set[int] = set()
        except BaseException:
            self.close()
            raise

    def _next(self):
        """The next packet to copy (shifted to output time), or None at the end of the source."""
        for packet in self.packets:
            index = packet.stream.index
            if index in self.done or (packet.dts is None and packet.pts is None):
                continue   # past its end, the demuxer's end-of-stream flush packet, or a packet without time
            first, shift, last = self.bounds[index]
            t = packet.pts if packet.pts is not None else packet.dts
            length = max(packet.duration or 0, 0)
            reach = length if packet.is_discard else 0   # keep the pre-roll that precedes start
            if t < first and t + length + reach <= first:
                continue
            if last is not None and t >= last:
                self.done.add(index)
                if len(self.done) == len(self.bounds):
                    return None     # every copied stream has reached the end: the rest is never read
                continue
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            return packet
        return None

    def feed(self, until: Fraction | None, stop: threading.Event | None = None) -> bool:
        """Mux the packets that start before output time ``until`` (seconds; None: all the rest).
        Returns False as soon as ``stop`` is set (nothing more muxed), else True."""
        while True:
            if stop is not None and stop.is_set():
                return False
            if self.pending is None:
                self.pending = self._next()
                if self.pending is None:
                    return True
            packet = self.pending
            t = packet.dts if packet.dts is not None else packet.pts
            if until is not None and t * packet.time_base >= until:
                return True
            self.pending = None
            self._mux(packet)

    def _mux(self, packet) -> None:
        index = packet.stream.index
        target = self.targets[index]
        encoder = self.encoders.get(index)
        if encoder is None:
            packet.stream = target
            self.out.mux(packet)
            return
        from av.subtitles.subtitle import SubtitleSet

        try:
            subtitles = packet.stream.codec_context.decode2(packet)
        except av.error.FFmpegError:
            return                                   # a damaged cue is left out, as ffmpeg leaves it out
        if not subtitles:
            return                                   # mov_text's empty gap samples
        end = subtitles.end_display_time   # ms after the packet's time; UINT32_MAX: until the next cue
        shown = Fraction(end - subtitles.start_display_time, 1000) if end < 1 << 31 else Fraction(0)
        for rect in subtitles:
            text = getattr(rect, "ass", None)
            if not text:
                continue
            out = encoder.encode_subtitle(SubtitleSet.create(text, 0, int(shown * 1000), 0))
            out.stream, out.time_base = target, packet.time_base
            out.pts = out.dts = packet.pts + round(Fraction(subtitles.start_display_time, 1000) / packet.time_base)
            out.duration = packet.duration or round(shown / packet.time_base)
            self.out.mux(out)

    def close(self) -> None:
        src, self.src = getattr(self, "src", None), None
        if src is not None:
            src.close()
