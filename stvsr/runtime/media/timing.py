"""Stream metadata carried from the input to the output: the display matrix (rotation/flip of a
phone clip) and the real presentation timestamps (variable frame rate). Pure functions of numbers
(and of a decoded frame's side data), used by the probe, the planner and the writer.

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
