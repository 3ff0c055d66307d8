"""Frame windows planned from a model's metadata alone (never from its name).

Output times are in input-frame units: N input frames and K new frames per gap give the times
``i + j/(K+1)`` for every gap ``i`` plus the last frame, ``N + (N-1)K`` frames in all. Each
output time is taken from the window in which it lies closest to the window's centre; frames
before the first and after the last are edge replicated.

Shots: with scene ``cuts`` (the first input frame of each new shot) every shot is planned like a
whole video of its own (edge replication at its first and last frame, so no window reads across a
cut) and output indices stay global. The K new frames in the gap at a cut repeat the output of the
frame before the cut: they are listed in ``Plan.repeats`` and also in the ``keep`` of the window
that computes that frame, with the same model output index, so a runner that writes every
``keep`` entry writes the copies without knowing about cuts. Without cuts the plan is exactly the
one-shot plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator, Sequence

from stvsr.export.metadata import ModelMetadata


class PlanError(ValueError):
    """A temporal factor or video the model cannot serve."""


@dataclass
class Window:
    """One model run: the input frames it reads and the global outputs taken from its result."""
    start: int                     # window position 0 in input-frame index (may be negative)
    frames: list[int]              # input frame indices, edge replicated (inside its shot)
    keep: list[tuple[int, int]] = field(default_factory=list)  # (model output index, global output index)
    shot: int = 0                  # index of its shot in ``Plan.shots``


@dataclass(frozen=True)
class Shot:
    """Input frames ``first .. last`` (inclusive), planned as a video of their own."""
    first: int
    last: int

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


@dataclass
class Plan:
    """Every window of a video and what each one writes.

    Unpacks as ``(windows, times, factor)``. ``repeats`` maps each output in the gap at a cut to
    the output it repeats (the frame before the cut); those outputs are also in that window's
    ``keep``. Every global output ``0 .. total-1`` is in exactly one window's ``keep``, windows
    are in order of ``start`` and shot."""
    windows: list[Window]
    times: list[float]             # the model's ``times`` input ([] for fixed-output models)
    factor: int                    # new frames per gap
    frames: int                    # input frames
    shots: list[Shot]
    repeats: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Output frames: ``frames + (frames - 1) * factor``."""
        return self.frames + (self.frames - 1) * self.factor

    @property
    def cuts(self) -> list[int]:
        """The first input frame of every shot after the first."""
        return [s.first for s in self.shots[1:]]

    def out_index(self, frame: int) -> int:
        """Global output index of input frame ``frame``."""
        return frame * (self.factor + 1)

    def __iter__(self) -> Iterator:
        return iter((self.windows, self.times, self.factor))

    def __getitem__(self, index: int):
        return (self.windows, self.times, self.factor)[index]


def native_factor(meta: ModelMetadata) -> int:
    """New frames per gap of a model without a times input (zsm, starnet: 1)."""
    fracs = sorted({Fraction(p).limit_denominator(64) % 1 for p in meta.output_positions} - {Fraction(0)})
    if not fracs:
        return 0
    step = min([fracs[0]] + [b - a for a, b in zip(fracs, fracs[1:])])
    return int(1 / step) - 1


def output_times(meta: ModelMetadata, factor: int) -> tuple[list[Fraction], list[float]]:
    """(time position of every graph output inside one window, in graph order; the ``times`` input) for
    ``factor`` new frames per gap. A model with a times input renders every time in each of its gaps
    (``meta.output_layout`` says where those frames are among its outputs), so a window passes all its
    times in one run."""
    fixed = [Fraction(p).limit_denominator(64) for p in meta.output_positions]
    if not meta.takes_times:
        return fixed, []
    times = [Fraction(j, factor + 1) for j in range(1, factor + 1)]
    return meta.positions(fixed, times), [float(t) for t in times]


def window_stride(meta: ModelMetadata, dense: bool = False, factor: int | None = None) -> int:
    """Starts of consecutive windows differ by this many frames unless ``dense`` (every start: more
    context, more compute). When the outputs (for ``factor`` new frames per gap, default the model's
    own or 1) plus one output step span a whole number of frames, windows at that stride tile time and
    no output is computed twice (zsm exported without its last output: 0..2.5, stride 3; a model that
    renders times in one gap after frame g: g..g+K/(K+1), stride 1); otherwise the span of the outputs,
    and consecutive windows share their boundary output (zsm with all 7 outputs 0..3: stride 3, one of
    7 computed twice)."""
    if dense:
        return 1
    if factor is None:
        factor = native_factor(meta) or 1
    pos = sorted(set(output_times(meta, factor)[0]))
    span = pos[-1] - pos[0]
    step = min([b - a for a, b in zip(pos, pos[1:])] or [Fraction(1)])
    if (span + step).denominator == 1:
        return max(1, int(span + step))
    return max(1, int(span))


def check_factor(meta: ModelMetadata, factor: int | None, max_factor: int | None = None) -> int:
    """``factor`` (None: the model's default) if the model can make that many new frames per gap,
    else ``PlanError``; needs the metadata only, so the command checks it before the model loads."""
    native = native_factor(meta)
    if factor is None:
        factor = native if not meta.takes_times or native else 1
    if factor < 0:
        raise PlanError("--factor must be 0 or more")
    if not meta.takes_times and factor != native:
        raise PlanError(f"this model makes exactly {native} new frame(s) per gap (no times input); "
                        f"--factor {factor} is not possible")
    if meta.takes_times and factor < 1:
        raise PlanError("--factor must be at least 1 for this model: it makes the new frames at the times it is "
                        "given, and --factor 0 gives it none")
    if meta.takes_times and max_factor is not None and factor > max_factor:
        raise PlanError(f"--factor {factor} is more than this model file serves: at most {max_factor} new frames "
                        "per gap (a TensorRT engine's times input is built for 1 to that many)")
    return factor


def plan(meta: ModelMetadata, n_frames: int, factor: int | None = None, dense: bool = False,
         max_factor: int | None = None, cuts: Sequence[int] = ()) -> Plan:
    """Windows covering every output of an ``n_frames`` video (a ``Plan``, which unpacks as
    ``(windows, times input, factor)``).

    ``max_factor``: the largest factor the backend serves (a TensorRT engine's ``times`` profile).
    ``cuts``: input frames where a new shot starts; 0 and frames past the end are ignored."""
    if n_frames < 1:
        raise PlanError("the video has no frames")
    factor = check_factor(meta, factor, max_factor)
    positions, times = output_times(meta, factor)
    starts = [0] + sorted({int(c) for c in cuts if 0 < int(c) < n_frames})
    shots = [Shot(a, b - 1) for a, b in zip(starts, starts[1:] + [n_frames])]
    steps = factor + 1
    windows: list[Window] = []
    repeats: dict[int, int] = {}
    for index, shot in enumerate(shots):
        part = _plan_shot(meta, shot.frames, positions, steps, window_stride(meta, dense, factor))
        for w in part:
            windows.append(Window(w.start + shot.first, [i + shot.first for i in w.frames],
                                  [(o, g + shot.first * steps) for o, g in w.keep], index))
        if index + 1 < len(shots):  # the gap after the shot's last frame repeats that frame
            last = shot.last * steps
            owner = next(w for w in reversed(windows) if any(g == last for _, g in w.keep))
            out_idx = next(o for o, g in owner.keep if g == last)
            for g in range(last + 1, last + steps):
                repeats[g] = last
                owner.keep.append((out_idx, g))
    return Plan(windows, times, factor, n_frames, shots, repeats)


def _plan_shot(meta: ModelMetadata, n_frames: int, positions: list[Fraction], steps: int, stride: int) -> list[Window]:
    """The windows of one shot of ``n_frames`` frames, indices from its first frame."""
    hi = max(positions)
    centre = Fraction(meta.window - 1, 2)
    # Candidate window starts: every start whose outputs can reach a needed time.
    first, last = int(-hi) - 1, n_frames
    best: dict[int, tuple[tuple, int, int]] = {}  # global index -> (preference key, start, output index)
    for start in range(first, last + 1):
        if start % stride:
            continue
        replicated = sum(1 for k in range(meta.window) if not 0 <= start + k < n_frames)
        for out_idx, pos in enumerate(positions):
            tau = start + pos
            if tau < 0 or tau > n_frames - 1 or (tau * steps).denominator != 1:
                continue
            g = int(tau * steps)
            key = (abs(pos - centre), replicated, start)
            if g not in best or key < best[g][0]:
                best[g] = (key, start, out_idx)
    total = n_frames + (n_frames - 1) * (steps - 1)
    missing = [g for g in range(total) if g not in best]
    if missing:
        raise PlanError(f"model outputs cannot cover output frame {missing[0]} (positions {meta.output_positions})")
    windows: dict[int, Window] = {}
    for g in range(total):
        _, start, out_idx = best[g]
        if start not in windows:
            frames = [min(max(start + k, 0), n_frames - 1) for k in range(meta.window)]
            windows[start] = Window(start, frames)
        windows[start].keep.append((out_idx, g))
    return [windows[s] for s in sorted(windows)]
