"""Segments: the planned windows of a video cut into runs that can be computed separately.

A segment is a run of consecutive windows together with the global outputs they produce; its
input frames are ``min..max`` of its windows' frames, so it carries the few context frames its
windows need and the joined segments give exactly the frames of one pass. Boundaries fall at
shot cuts first (no context is shared across a cut) and inside long shots every
``segment_frames`` input frames. Planned from the windows alone (never from a model's name).
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Sequence

from stvsr.runtime.planning.windows import Window


@dataclass
class Segment:
    index: int
    windows: list[Window] = field(default_factory=list)
    out_start: int = 0          # first global output index
    out_end: int = 0            # one past the last global output index
    first_frame: int = 0        # first input frame its windows read
    last_frame: int = 0         # last input frame its windows read

    @property
    def outputs(self) -> int:
        return self.out_end - self.out_start

    @property
    def frames(self) -> int:
        return self.last_frame - self.first_frame + 1


def _outputs(window: Window) -> list[int]:
    return [g for _, g in window.keep]


def _close(index: int, windows: list[Window]) -> Segment:
    outs = [g for w in windows for g in _outputs(w)]
    frames = [i for w in windows for i in w.frames]
    return Segment(index, windows, min(outs), max(outs) + 1, min(frames), max(frames))


def _shot(window: Window, cuts: Sequence[int]) -> int:
    """Index of the shot a window reads from (cuts: the first frame of each new shot)."""
    return bisect_right(cuts, min(window.frames))


def split(windows: Sequence[Window], total: int, segment_frames: int | None = None,
          cuts: Sequence[int] = ()) -> list[Segment]:
    """Segments covering the ``total`` outputs of ``windows`` in order.

    Boundaries fall at shot cuts: a shot longer than ``segment_frames`` input frames (measured
    between window starts) is cut into equal pieces of at most that many, and consecutive short
    shots are packed together up to that many. Without ``segment_frames`` the whole video is one
    segment. Segments whose outputs would interleave are merged, so each
    segment's outputs are one contiguous range and the segments tile ``0..total``.
    """
    windows = [w for w in windows if w.keep]
    if not windows:
        return []
    if not segment_frames:
        return [_close(0, windows)]
    cuts = sorted(cuts)
    shots: list[list[Window]] = [[windows[0]]]
    for w in windows[1:]:
        if _shot(w, cuts) != _shot(shots[-1][-1], cuts):
            shots.append([w])
        else:
            shots[-1].append(w)
    pieces: list[list[Window]] = []
    for shot in shots:  # a long shot in equal pieces of at most segment_frames (window starts)
        span = shot[-1].start - shot[0].start + 1
        k = -(-span // segment_frames)
        for j in range(k):
            lo, hi = shot[0].start + j * span / k, shot[0].start + (j + 1) * span / k
            piece = [w for w in shot if lo <= w.start < hi]
            if piece:
                pieces.append(piece)
    groups: list[list[Window]] = [pieces[0]]
    for piece in pieces[1:]:  # short shots packed together up to segment_frames
        if piece[-1].start - groups[-1][0].start + 1 <= segment_frames:
            groups[-1] += piece
        else:
            groups.append(piece)
    segments = [_close(0, groups[0])]
    for group in groups[1:]:
        seg = _close(len(segments), group)
        prev = segments[-1]
        if seg.out_start != prev.out_end or seg.outputs != len({g for w in group for g in _outputs(w)}):
            segments[-1] = _close(prev.index, prev.windows + group)  # outputs interleave: keep them together
        else:
            segments.append(seg)
    ranges_ok = all({g for w in s.windows for g in _outputs(w)} == set(range(s.out_start, s.out_end))
                    for s in segments)
    tiled = all(a.out_end == b.out_start for a, b in zip(segments, segments[1:]))
    if not (ranges_ok and tiled and segments[0].out_start == 0 and segments[-1].out_end == total):
        return [_close(0, list(windows))]  # a plan this splitter does not understand: one pass
    return segments
