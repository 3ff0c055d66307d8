"""Join encoded parts into one video by stream copy (no re-encode), adding the source's audio and
subtitle streams as a one-pass run does.

Every part was encoded with the same settings, starts with a keyframe and carries its frames'
one-pass timestamps, so its packets are copied unchanged. The parts' codec parameters (for
H.264 in MP4: the SPS/PPS in the stream's extradata) must be identical: the output has one
set for the whole stream, and a part whose parameters differ is refused rather than joined
into a file players may decode wrongly.
"""
from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path
from typing import Sequence


class JoinError(RuntimeError):
    """Parts that cannot be joined by stream copy."""


def container_format(name: str) -> str | None:
    """The muxer for an output name: MP4 for .mp4/.m4v or no suffix, else FFmpeg's guess (as VideoWriter)."""
    return "mp4" if Path(name).suffix.lower() in ("", ".mp4", ".m4v") else None


def join_parts(parts: Sequence[str], path: str, name: str, frames: int, source: str | None = None,
               span: tuple[Fraction, Fraction | None] = (Fraction(0), None),
               stop: threading.Event | None = None) -> bool:
    """Write ``parts`` (in order) into ``path`` (a temporary file; ``name`` is the user's output,
    which chooses the format); ``source``'s audio/subtitles over ``span`` (seconds of source
    time, as ``copy_passthrough`` takes them) are copied when given. Returns False when ``stop``
    was set (nothing more written); raises ``JoinError`` when the parts do not fit together or
    do not hold ``frames`` frames."""
    import av

    from stvsr.runtime.passthrough import add_passthrough_streams, copy_passthrough

    if not parts:
        raise JoinError("no parts to join")
    first = av.open(str(parts[0]))
    out = None
    try:
        template = first.streams.video[0]
        extradata = bytes(template.codec_context.extradata or b"")
        out = av.open(str(path), "w", format=container_format(name))
        stream = out.add_stream_from_template(template)
        stream.time_base = template.time_base
        copied = add_passthrough_streams(source, out) if source else {}
        count, last_dts = 0, None
        for part in parts:
            with av.open(str(part)) as container:
                s = container.streams.video[0]
                if bytes(s.codec_context.extradata or b"") != extradata or s.time_base != template.time_base:
                    raise JoinError(f"part {part} has other codec parameters (stream headers) than {parts[0]}, "
                                    "so they cannot be joined by stream copy; run in one pass (--segment-frames "
                                    "above the video's frame count) or with another --codec")
                for packet in container.demux(s):
                    if stop is not None and stop.is_set():
                        return False
                    if not packet.size:
                        continue                      # the demuxer's end-of-stream flush packet
                    if packet.dts is not None and last_dts is not None and packet.dts <= last_dts:
                        raise JoinError(f"part {part} overlaps the part before it (decoding times go back)")
                    last_dts = packet.dts if packet.dts is not None else last_dts
                    packet.stream = stream
                    out.mux(packet)
                    count += 1
        if count != frames:
            raise JoinError(f"the parts hold {count} frames where {frames} were expected")
        if copied and not copy_passthrough(source, out, copied, span[0], span[1], stop):
            return False
        out.close()
        out = None
        return True
    finally:
        first.close()
        if out is not None:
            try:
                out.close()
            except Exception:
                pass
