"""The plan of a video read once, as its frames arrive (a pipe: the frame count is known only at its
end): ``StreamPlan`` hands out each window of ``windows.plan`` as soon as no later frame can change
it, and the rest when the stream ends, so a stream gets exactly the windows, outputs and order a file
of the same frames gets.

Why that is exact: ``windows.choose`` picks the window of output ``g`` (time ``tau``) among the
windows at starts ``tau - pos``; only a window that reads past the shot's last frame depends on the
shot's length. Once ``m`` frames of a shot have arrived, every output whose candidate windows all end
before frame ``m`` (``tau - min(pos) + window - 1 < m``) is chosen as it is in any longer shot; a window
is complete when every output that could choose it is chosen (``g <= (start + max(pos)) * steps``),
and no later output can choose an earlier start, so windows come out in the order of their start.
At a cut (known in advance: a cut list) or at the end, the shot's length is known and its remaining
outputs are chosen as ``windows.plan`` chooses them; the gap after a cut repeats the frame before it.
"""
from __future__ import annotations

from fractions import Fraction
from math import ceil, floor
from typing import Sequence

from stvsr.metadata import ModelMetadata
from stvsr.runtime.planning.windows import (PlanError, Window, check_factor, choose, output_times, shot_frames,
                                            window_stride)


class StreamPlan:
    """Windows of a stream planned as its frames arrive: ``add()`` for each frame, ``end()`` once;
    each returns the windows now final (global indices, in plan order). ``cuts``: first frames of
    new shots, known before the frames (frames 0 and past the end are ignored, as by ``plan``)."""

    def __init__(self, meta: ModelMetadata, factor: int | None = None, dense: bool = False,
                 max_factor: int | None = None, cuts: Sequence[int] = ()):
        self.meta = meta
        self.factor = check_factor(meta, factor, max_factor)
        self.positions, self.times = output_times(meta, self.factor)
        self.steps = self.factor + 1
        self.stride = window_stride(meta, dense, self.factor)
        self.cuts = sorted({int(c) for c in cuts if int(c) > 0})
        self.frames = 0                     # frames arrived
        self.shot, self.shot_first = 0, 0   # the current shot and its first frame
        self.chosen = 0                     # outputs of the current shot chosen so far (local indices)
        self.pending: dict[int, Window] = {}  # windows of the current shot not handed out (local start)
        self.repeats: dict[int, int] = {}
        self.ended = False
        hi, lo = max(self.positions), min(self.positions)
        self._lead = lo - (meta.window - 1)   # output times below m + lead are final after m frames
        self._hi = hi

    @property
    def total(self) -> int:
        """Output frames so far (all of them once the stream ended)."""
        return self.frames + max(0, self.frames - 1) * self.factor

    def add(self) -> list[Window]:
        """One more frame arrived (a cut at it first closes the shot before it)."""
        if self.ended:
            raise PlanError("the stream already ended")
        done = []
        if self.cuts and self.cuts[0] == self.frames:
            self.cuts.pop(0)
            done = self._close_shot(cut=True)
        self.frames += 1
        m = self.frames - self.shot_first
        settled = m + self._lead        # outputs at times below this are final
        upto = ceil(settled * self.steps) - 1   # the last output at a time below ``settled``
        return done + self._choose_until(min(upto, (m - 1) * self.steps), m)

    def end(self) -> list[Window]:
        """The stream ended: the last shot's remaining windows."""
        if self.ended:
            return []
        if self.frames < 1:
            raise PlanError("the video has no frames")
        out = self._close_shot(cut=False)
        self.ended = True
        return out

    def needed_from(self) -> int:
        """The lowest input frame a window not yet handed out can read (frames before it may be dropped)."""
        if self.pending:
            start = min(self.pending)
        else:
            start = floor(Fraction(self.chosen, self.steps) - self._hi)
        return self.shot_first + max(0, start)

    def _choose_until(self, last: int, n: int, final: bool = False) -> list[Window]:
        """Choose local outputs ``chosen .. last`` of the current shot (``n``: its frames, or a lower
        bound where they are final anyway) and hand out the windows no later output can choose."""
        while self.chosen <= last:
            start, out_idx = choose(self.meta, self.positions, self.steps, self.stride, self.chosen, n)
            window = self.pending.get(start)
            if window is None:
                window = self.pending[start] = Window(start, shot_frames(self.meta, start, n) if final else
                                                      list(range(start, start + self.meta.window)), shot=self.shot)
            window.keep.append((out_idx, self.chosen))
            self.chosen += 1
        return [] if final else self._release(Fraction(self.chosen, self.steps))

    def _release(self, below: Fraction | None) -> list[Window]:
        """Hand out (global indices) the pending windows whose every output is chosen: all outputs at
        times below ``below`` are (None: all of the shot's)."""
        out = []
        for start in sorted(self.pending):
            if below is not None and start + self._hi >= below:
                break
            w = self.pending.pop(start)
            first, base = self.shot_first, self.shot_first * self.steps
            out.append(Window(w.start + first, [max(i, 0) + first for i in w.frames],
                              [(o, g + base) for o, g in w.keep], w.shot))
        return out

    def _close_shot(self, cut: bool) -> list[Window]:
        """The current shot's length is known: choose its remaining outputs, repeat its last frame in the
        gap of a cut, hand out all its windows and start the next shot."""
        n = self.frames - self.shot_first
        self._choose_until(n + (n - 1) * self.factor - 1, n, final=True)
        if cut:
            last = (n - 1) * self.steps
            owner = next(w for w in self.pending.values() if any(g == last for _, g in w.keep))
            out_idx = next(o for o, g in owner.keep if g == last)
            for g in range(last + 1, last + self.steps):
                self.repeats[g + self.shot_first * self.steps] = last + self.shot_first * self.steps
                owner.keep.append((out_idx, g))
        out = self._release(None)
        self.shot, self.shot_first, self.chosen = self.shot + 1, self.frames, 0
        return out
