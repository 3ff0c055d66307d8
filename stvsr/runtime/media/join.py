"""Join encoded parts into one video by stream copy (no re-encode), adding the source's audio,
subtitle and attachment streams as a one-pass run does.

Part format (``part_suffix``): a part is written in the output's own container when reading it
back gives the encoder's timestamps and keeps every stream-level field that container can hold
(MP4/MOV: colour tags, rotation; Matroska/WebM), and in NUT otherwise (MPEG-TS shifts the
timestamps of each file it writes, AVI keeps no presentation times): NUT stores the encoder's
packets unchanged with exact timestamps, and those containers hold no stream fields NUT loses.

Timestamps: the parts carry their frames' one-pass presentation times; decoding times are
recomputed for the whole stream from them (``decoding_times``), with the rule x264 and x265
use, so they are the one-pass encoder's and increase across part boundaries whatever the part's
container stored (Matroska and NUT store none for the first reordered frames). The output stream
gets the encoder's time base, so its muxer picks what it picks in one pass.

Codec parameters: every part was encoded with the same settings and starts with a keyframe;
the parts' stream headers (H.264 in MP4: the SPS/PPS in the extradata) must be identical, and a
part whose headers differ is refused rather than joined into a file players may decode wrongly.
For an output that keeps no global headers (MPEG-TS, AVI: the one-pass encoder repeats them in
the stream) the headers of H.264/HEVC parts are put before every keyframe, as that encoder does.

Copied streams are muxed in time with the video (``passthrough.Passthrough``), as FFmpeg does.
"""
from __future__ import annotations

import heapq
import threading
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

from stvsr.runtime.media.container import container_format, container_options


class JoinError(RuntimeError):
    """Parts that cannot be joined by stream copy."""


IN_BAND_HEADERS = {codec: "dump_extra=freq=keyframe" for codec in ("h264", "hevc", "mpeg4", "mpeg1video", "mpeg2video")}


class DecodingTimes:
    """Decoding times for a stream's presentation times (given in decode order), reorder ``delay``.

    Packet i >= delay decodes at the (i - delay)-th smallest presentation time; packet i < delay
    at the i-th smallest minus the span of the first ``delay`` frames (``lead``: the smallest
    ``delay + 1`` presentation times of the stream). This is x264's and x265's rule, so the times
    are the one-pass encoder's; for a stream reordered by at most ``delay`` frames each is at most
    its packet's presentation time and later than the one before (the smallest times of a prefix
    of the stream are all in it, so the times are known as the packets come).
    """

    def __init__(self, delay: int, lead: Sequence[int]):
        self.delay, self.lead, self.seen, self.count = delay, sorted(lead), [], 0
        self.span = (self.lead[delay] - self.lead[0] if len(self.lead) > delay
                     else (self.lead[-1] - self.lead[0] + 1 if self.lead else 1))

    def next(self, pts: int) -> int:
        i, self.count = self.count, self.count + 1
        if self.delay == 0:
            return pts
        heapq.heappush(self.seen, pts)
        if i >= self.delay:
            return heapq.heappop(self.seen)
        return (self.lead[i] if i < len(self.lead) else pts) - self.span


def _part_delay(container, stream) -> tuple[int, list[int]]:
    """(reorder delay, all presentation times) of one part: the leading packets that decode before
    its first frame is shown (no decoding time, or one before it), or the largest reordering of the
    part's frames if that is more."""
    pts: list[int] = []
    dts: list[int | None] = []
    for packet in container.demux(stream):
        if packet.size:
            if packet.pts is None:
                raise JoinError(f"{container.name}: a video packet has no presentation time")
            pts.append(packet.pts)
            dts.append(packet.dts)
    lead = 0
    for d in dts:
        if d is not None and pts and d >= pts[0]:
            break
        lead += 1
    rank = {p: r for r, p in enumerate(sorted(pts))}
    reorder = max((i - rank[p] for i, p in enumerate(pts)), default=0)
    return max(lead if lead < len(pts) else 0, reorder), pts


def kept_tag(muxer: str, template) -> str:
    """The codec tag (FourCC) the output stream of ``muxer`` gets for the parts' video stream ``template``:
    the parts' own (their encoder's, as their muxer wrote it) where ``muxer`` writes a header with it, else
    none (the muxer picks its default). Some codecs need it to be decoded at all: Ut Video's says the pixel
    format (ULY0 frames under the AVI default ULRA do not decode), raw video's the layout."""
    import io

    import av

    tag = template.codec_context.codec_tag
    if not tag.strip("\0"):
        return "\0" * 4
    try:  # the muxer's own check (its tag table), on a header written to memory
        with av.open(io.BytesIO(), "w", format=muxer) as trial:
            stream = trial.add_stream_from_template(template)
            stream.codec_context.codec_tag = tag
            trial.start_encoding()
        return tag
    except Exception:
        return "\0" * 4


def _video_packets(parts: Sequence[str], extradata: bytes, time_base: Fraction) -> Iterator:
    """The video packets of ``parts`` in order; refuses a part whose headers or time base differ
    from the first's, or whose frames do not come after the part before it."""
    import av

    last = None
    for part in parts:
        with av.open(str(part)) as container:
            s = container.streams.video[0]
            if bytes(s.codec_context.extradata or b"") != extradata or s.time_base != time_base:
                raise JoinError(f"part {part} has other codec parameters (stream headers) than {parts[0]}, "
                                "so they cannot be joined by stream copy; run in one pass (--segment-frames "
                                "above the video's frame count) or with another --codec")
            top = None
            for packet in container.demux(s):
                if not packet.size:
                    continue                      # the demuxer's end-of-stream flush packet
                if packet.pts is None:
                    raise JoinError(f"part {part}: a video packet has no presentation time")
                if top is None and last is not None and packet.pts <= last:
                    raise JoinError(f"part {part} overlaps the part before it (presentation times go back)")
                top = packet.pts if top is None else max(top, packet.pts)
                yield packet
            last = top if top is not None else last


def join_parts(parts: Sequence[str], path: str, name: str, frames: int, source: str | None = None,
               span: tuple[Fraction, Fraction | None] = (Fraction(0), None),
               stop: threading.Event | None = None, time_base: Fraction | None = None,
               rate: Fraction | None = None, say: Callable[[str], None] | None = None) -> bool:
    """Write ``parts`` (in order) into ``path`` (a temporary file; ``name`` is the user's output,
    which chooses the format); ``source``'s audio/subtitles over ``span`` (seconds of source
    time, as ``passthrough.Passthrough`` takes them) are muxed with the video when given, and
    what cannot be kept is said through ``say`` (``note: ...``). ``time_base``, ``rate``: the
    encoder's time base and nominal frame rate, as the one-pass writer gives them to the muxer
    (default: the parts' as read back). Returns False when ``stop`` was set (nothing more written);
    raises ``JoinError`` when the parts do not fit together or do not hold ``frames`` frames."""
    import av

    from stvsr.runtime.media.passthrough import Passthrough, plan_streams

    if not parts:
        raise JoinError("no parts to join")
    out = copier = None
    try:
        with av.open(str(parts[0])) as first:
            template = first.streams.video[0]
            extradata = bytes(template.codec_context.extradata or b"")
            part_base = template.time_base
            delay, first_pts = _part_delay(first, template)
            out = av.open(str(path), "w", format=container_format(name), container_options=container_options(name))
            stream = out.add_stream_from_template(template)
            stream.codec_context.codec_tag = kept_tag(out.format.name, template)
            stream.time_base = time_base or part_base
            if rate or template.average_rate:
                stream.codec_context.framerate = rate or template.average_rate  # the stream's nominal rate
            in_band = None
            spec = IN_BAND_HEADERS.get(template.codec_context.name)
            if spec and extradata and not out.format.flags & av.format.Flags.global_header.value:
                # as the one-pass encoder writes for this container: headers in the stream, none global
                in_band = av.BitStreamFilterContext(spec, template)
                stream.codec_context.extradata = None
        plan = plan_streams(source, name) if source else None
        for note in (plan.notes if plan is not None and say is not None else ()):
            say(f"note: {note}")
        copier = Passthrough(plan, out, span[0], span[1]) if plan is not None else None
        out.start_encoding()
        times = DecodingTimes(delay, sorted(first_pts)[:delay + 1])
        count = 0
        for packet in _video_packets(parts, extradata, part_base):
            if stop is not None and stop.is_set():
                return False
            packet.dts = times.next(packet.pts)
            if copier is not None and not copier.feed(Fraction(packet.dts) * part_base, stop):
                return False       # the copied streams up to this time first: interleaved as FFmpeg does
            for p in (in_band.filter(packet) if in_band is not None else (packet,)):
                p.stream, p.time_base = stream, part_base
                out.mux(p)
            count += 1
        if count != frames:
            raise JoinError(f"the parts hold {count} frames where {frames} were expected")
        if copier is not None and not copier.feed(None, stop):
            return False
        out.close()
        out = None
        return True
    finally:
        if copier is not None:
            copier.close()
        if out is not None:
            try:
                out.close()
            except Exception:
                pass
