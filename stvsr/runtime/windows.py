"""Frame windows planned from a model's metadata alone (never from its name).

Output times are in input-frame units: N input frames and K new frames per gap give the times
``i + j/(K+1)`` for every gap ``i`` plus the last frame, ``N + (N-1)K`` frames in all. Each
output time is taken from the window in which it lies closest to the window's centre; frames
before the first and after the last are edge replicated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from stvsr.export.metadata import ModelMetadata


class PlanError(ValueError):
    """A temporal factor or video the model cannot serve."""


@dataclass
class Window:
    start: int                     # window position 0 in input-frame index (may be negative)
    frames: list[int]              # input frame indices, edge replicated
    keep: list[tuple[int, int]] = field(default_factory=list)  # (model output index, global output index)


def native_factor(meta: ModelMetadata) -> int:
    """New frames per gap of a model without a times input (zsm, starnet: 1)."""
    fracs = sorted({Fraction(p).limit_denominator(64) % 1 for p in meta.output_positions} - {Fraction(0)})
    if not fracs:
        return 0
    step = min([fracs[0]] + [b - a for a, b in zip(fracs, fracs[1:])])
    return int(1 / step) - 1


def output_times(meta: ModelMetadata, factor: int) -> tuple[list[Fraction], list[float]]:
    """(time positions inside one window, the ``times`` input) for ``factor`` new frames per gap."""
    fixed = [Fraction(p).limit_denominator(64) for p in meta.output_positions]
    if not meta.takes_times:
        return fixed, []
    times = [Fraction(j, factor + 1) for j in range(1, factor + 1)]
    return fixed + [meta.time_gap + t for t in times], [float(t) for t in times]


def window_stride(meta: ModelMetadata, dense: bool = False) -> int:
    """Starts of consecutive windows differ by this many frames unless ``dense`` (every start: more
    context, more compute). When the fixed outputs plus one output step span a whole number of
    frames, windows at that stride tile time and no output is computed twice (zsm exported without
    its last output: 0..2.5, stride 3); otherwise the span of the outputs, and consecutive windows
    share their boundary output (zsm with all 7 outputs 0..3: stride 3, one of 7 computed twice)."""
    if dense or meta.takes_times:
        return 1
    pos = sorted({Fraction(p).limit_denominator(64) for p in meta.output_positions})
    span = pos[-1] - pos[0]
    step = min([b - a for a, b in zip(pos, pos[1:])] or [Fraction(1)])
    if (span + step).denominator == 1:
        return max(1, int(span + step))
    return max(1, int(span))


def plan(meta: ModelMetadata, n_frames: int, factor: int | None = None, dense: bool = False,
         max_factor: int | None = None) -> tuple[list[Window], list[float], int]:
    """Windows covering every output of an ``n_frames`` video; returns (windows, times input, factor).

    ``max_factor``: the largest factor the backend serves (a TensorRT engine's ``times`` profile)."""
    if n_frames < 1:
        raise PlanError("the video has no frames")
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
    positions, times = output_times(meta, factor)
    steps = factor + 1
    hi = max(positions)
    centre = Fraction(meta.window - 1, 2)
    # Candidate window starts: every start whose outputs can reach a needed time.
    first, last = int(-hi) - 1, n_frames
    best: dict[int, tuple[tuple, int, int]] = {}  # global index -> (preference key, start, output index)
    stride = window_stride(meta, dense)
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
    total = n_frames + (n_frames - 1) * factor
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
    return [windows[s] for s in sorted(windows)], times, factor
