"""Stream metadata carried from the input to the output: the display matrix (rotation/flip of a
phone clip) and the real presentation timestamps (variable frame rate).

Timestamps: input frame ``i`` has presentation time ``pts[i]`` (in the stream's time base). With
``factor`` K new frames per gap, output frame ``i*(K+1) + j`` is shown at
``pts[i] + j/(K+1) * (pts[i+1] - pts[i])``: the new frames sit at the same fractions of the
*real* gap as the model renders them at, so a variable-frame-rate video keeps its timing. All
output times are exact integers in the time base ``time_base / (K+1)``.
"""
from __future__ import annotations

import struct
from fractions import Fraction
from typing import Sequence


def display_matrix(frame) -> list[int] | None:
    """The 3x3 display matrix (9 int32, FFmpeg ``AV_FRAME_DATA_DISPLAYMATRIX`` layout) of a
    decoded PyAV frame, or ``None`` when it has none or the identity."""
    for sd in getattr(frame, "side_data", ()):
        if str(getattr(sd, "type", "")).endswith("DISPLAYMATRIX"):
            raw = bytes(sd)
            if len(raw) < 36:
                return None
            m = list(struct.unpack("<9i", raw[:36]))
            return None if m == IDENTITY else m
    return None


IDENTITY = [1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30]


def scaled_matrix(matrix: Sequence[int], scale: int) -> list[int]:
    """The same rotation/flip for a picture ``scale`` times larger (translation scaled with it)."""
    m = list(matrix)
    m[6], m[7] = m[6] * scale, m[7] * scale
    return m


def presentation_pts(packet_pts: Sequence[int | None]) -> list[int] | None:
    """Sorted presentation timestamps relative to the first one, or ``None`` when any is missing
    or two frames share one (such streams are treated as constant frame rate)."""
    if not packet_pts or any(p is None for p in packet_pts):
        return None
    pts = sorted(packet_pts)
    if any(b <= a for a, b in zip(pts, pts[1:])):
        return None
    return [p - pts[0] for p in pts]


def is_variable_rate(pts: Sequence[int] | None, time_base: Fraction | None, fps: Fraction) -> bool:
    """True when some frame interval differs from the nominal ``1/fps`` by more than one tick
    and 1% (rounding of a constant rate to the time base is not variable)."""
    if not pts or len(pts) < 3 or not time_base:
        return False
    nominal = 1 / (Fraction(fps) * time_base)           # ticks per frame
    tol = max(Fraction(1), nominal / 100)
    return any(abs((b - a) - nominal) > tol for a, b in zip(pts, pts[1:]))


def output_timestamps(pts: Sequence[int], factor: int) -> list[int]:
    """Output presentation times, in the input time base divided by ``factor + 1``, for the
    ``len(pts) + (len(pts) - 1) * factor`` output frames."""
    k = factor + 1
    out: list[int] = []
    for a, b in zip(pts, pts[1:]):
        out.extend(a * k + j * (b - a) for j in range(k))
    out.append(pts[-1] * k)
    return out


TAIL_LIMIT = 1000  # packets of the last group of pictures decoded again by ``tail_damage``


def scan_stream(container, stream, tail: list | None = None) -> tuple[int, list[int | None], list[int] | None, int]:
    """Demux ``stream`` once: the number of non-empty packets shown, their pts, the display matrix
    of the first decodable frame (only the packets up to that frame are decoded), and the number
    of packets an edit list hides (``is_discard``: decoded, never shown). With ``tail`` (a list),
    it receives the packets from the last keyframe on (for ``tail_damage``)."""
    count, pts, matrix, looking, hidden = 0, [], None, True, 0
    for packet in container.demux(stream):
        if not packet.size:
            continue
        if tail is not None:
            if packet.is_keyframe:
                tail.clear()
            if len(tail) < TAIL_LIMIT:  # a stream without keyframe flags is not decoded again whole
                tail.append(packet)
        if packet.is_discard:  # edit-list pre-roll is decoded but never shown
            hidden += 1
        else:
            count += 1
            pts.append(packet.pts)
        if looking:
            try:
                frames = packet.decode()
            except Exception:  # corrupt data is reported by the decoder that reads the frames
                frames, looking = [], False
            if frames:
                matrix, looking = display_matrix(frames[0]), False
    return count, pts, matrix, hidden


def tail_damage(stream, tail: list | None) -> tuple[int, int]:
    """Decode the last group of pictures (``tail`` from ``scan_stream``) and return ``(frames
    that did not decode, frames the decoder concealed errors in)``: a file cut in the middle of
    its bytes ends in a partial packet. A packet the decoder refuses ends the decode, as it ends
    the reader's: frames still held in the decoder then count as not decoded. Frames shown before the keyframe (open-GOP leading
    pictures, which need the previous group) are not counted."""
    if not tail or tail[0].pts is None or len(tail) >= TAIL_LIMIT:
        return 0, 0
    key = tail[0].pts
    expected = sum(1 for p in tail if not p.is_discard and p.pts is not None and p.pts >= key)
    decoded = concealed = 0
    ctx = stream.codec_context
    try:
        ctx.flush_buffers()
    except Exception:
        pass
    frames: list = []
    for packet in tail + [None]:  # None: drain the decoder
        try:
            frames.extend(ctx.decode(packet))
        except Exception:  # the cut packet: a reader stops here too, so later frames never come out
            break
    for f in frames:
        if f.pts is not None and f.pts >= key:
            decoded += 1
            concealed += bool(getattr(f, "is_corrupt", False))
    return max(0, expected - decoded), concealed


def declared_frames(stream, start: float, hidden: int = 0) -> int | None:
    """Frames the container declares for ``stream`` (MP4's sample count less the ``hidden``
    samples its edit list does not present, or MKV's per-track ``DURATION`` tag, the end time of
    the track, times the frame rate); None when it declares none."""
    if stream.frames:
        return max(0, int(stream.frames) - hidden)
    tag = (stream.metadata or {}).get("DURATION")
    rate = stream.average_rate or stream.guessed_rate
    if not tag or not rate:
        return None
    try:
        h, m, sec = tag.split(":")
        end = int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None
    return max(0, round((end - start) * float(rate)))


def damage_warning(path: str, count: int, declared: int | None, undecodable: int, concealed: int) -> str | None:
    """One warning line for a truncated or damaged input, or None when nothing is wrong."""
    parts = []
    if declared is not None and declared - count > max(1, declared // 50):
        parts.append(f"the container declares {declared} frames but only {count} are in the file")
    if undecodable:
        parts.append(f"{undecodable} of the last frames could not be decoded")
    if concealed:
        parts.append(f"{concealed} frame{'s' if concealed > 1 else ''} decoded with concealed errors")
    if not parts:
        return None
    return f"{path}: truncated or damaged video: {'; '.join(parts)}; continuing with the frames that decode"
