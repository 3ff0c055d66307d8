"""The window executor: windows of a planned run computed on a backend, with no threads and no queues.

For each window it assembles the model's inputs (the frames, the plan's ``times``, the optical flows
a model takes), picks the tile once, on the first window (``--tile``, or the memory budget:
``planning.memory.auto_tile``, whose probe may run the whole first window: that result is kept),
runs the window whole (submitted: the backend keeps up to ``max_in_flight`` windows in flight) or in
tiles (``planning.tiling.run_tiled``, at once), refuses a result whose shape or values are not what
the model's metadata promises, and maps the model's outputs to the plan's global output indices
(``Window.keep``).

The one-pass pipeline feeds it the frames its reader thread decodes; a caller with frames of its
own (a VapourSynth clip) calls ``run``. Frames are float32 RGB in [0, 1], ``[1, N, 3, H, W]`` (the
window's frames in ``Window.frames`` order), padded to the model's size multiple
(``planning.tiling.pad_frames``); outputs come as the model returns them (padded, not clipped).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from stvsr.runtime.backends.base import Backend, BackendError
from stvsr.runtime.onepass.flow import FlowProvider
from stvsr.runtime.planning.memory import auto_tile, runs_on_host
from stvsr.runtime.planning.memory_cache import probe_key
from stvsr.runtime.planning.tiling import run_tiled
from stvsr.runtime.planning.windows import Window


@dataclass
class Pending:
    """A submitted window: its frames and the backend's ticket, or its result already (a tiled window
    is computed at once)."""
    window: Window
    frames: np.ndarray
    ticket: Any = None
    result: np.ndarray | None = None

    @property
    def done(self) -> bool:
        return self.result is not None


class WindowCompute:
    """Computes the windows of one plan (``windows``, with the model's ``times`` input) on ``backend``.

    ``tile``: LR tile side (None: chosen on the first window from ``max_memory`` where the model runs in
    this process's memory, else no tiling); ``held_frames``: full-resolution frames the caller keeps
    besides the windows in flight (a writer's queue), for the memory budget; ``say``: one-line status."""

    def __init__(self, backend: Backend, windows: Sequence[Window], times: Sequence[float], *, tile: int | None = None,
                 tile_overlap: int = 16, max_memory: int | None = None, flows: FlowProvider | None = None,
                 held_frames: int = 0, say: Callable[[str], None] | None = None):
        self.backend, self.meta, self.windows, self.times = backend, backend.metadata, list(windows), list(times)
        self.outputs = self.meta.output_count(len(self.times or [0.5]))   # model outputs per window
        self.tile, self.tile_overlap, self.max_memory = tile, tile_overlap, max_memory
        self.flows, self.held_frames, self.say = flows, held_frames, say or (lambda message: None)
        self._first = True

    def inputs(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """The model's inputs for one window's frames: the frames, the times, the flows."""
        meta = self.meta
        inputs = {meta.inputs.get("frames", "frames"): frames}
        if meta.takes_times:
            inputs[meta.inputs.get("times", "times")] = np.asarray(self.times or [0.5], dtype=np.float32)
        for name, (a, b) in zip(meta.flow_inputs, meta.flow_pairs):
            inputs[name] = self.flows(frames[0, a], frames[0, b])[None]
        return inputs

    def submit(self, window: Window, frames: np.ndarray) -> Pending:
        """Start ``window`` on ``frames``; a tiled window is computed here and now."""
        meta, backend = self.meta, self.backend
        inputs = self.inputs(frames)
        spatial = {name for name in inputs if name != meta.inputs.get("times", "times")}
        frames_name = meta.inputs.get("frames", "frames")

        def checked_run(part: dict) -> np.ndarray:
            return self._checked(backend.run(part), part[frames_name], window)

        if self._first and self.tile is None and self.max_memory and runs_on_host(backend):
            kept: list[np.ndarray] = []   # the memory probe's run of this whole window, when it made one

            def probe_run(part: dict) -> np.ndarray:
                result = checked_run(part)
                if part[frames_name].shape == frames.shape:
                    kept.append(result)
                return result

            # Full-resolution float32 frames held at once (the caller's, the windows in flight and being handed on).
            held = ((self.held_frames + self.outputs * (backend.max_in_flight + 2)) * 3 * frames.shape[-2]
                    * frames.shape[-1])
            self.tile = auto_tile(probe_run, inputs, spatial, meta.size_multiple, self.tile_overlap, self.max_memory,
                                  held * meta.scale * meta.scale * 4, self.say, probe_key(backend, inputs, spatial))
            self._first = False
            if kept and not (self.tile and max(frames.shape[-2:]) > self.tile):
                return Pending(window, frames, result=kept[-1])   # computed by the probe: not again
        self._first = False
        if self.tile and max(frames.shape[-2:]) > self.tile:
            return Pending(window, frames, result=run_tiled(checked_run, inputs, spatial, self.tile, self.tile_overlap,
                                                            meta.size_multiple, meta.scale))
        return Pending(window, frames, backend.submit(inputs))

    def collect(self, pending: Pending) -> list[tuple[int, np.ndarray]]:
        """Wait for ``pending``; its outputs as ``(global output index, frame [3, sH, sW])``, in ``keep`` order."""
        result = pending.result
        if result is None:
            result = self._checked(self.backend.collect(pending.ticket), pending.frames, pending.window)
        return [(g, result[0, out_idx]) for out_idx, g in pending.window.keep]

    def run(self, window: Window, frames: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``window`` computed now: ``collect(submit(window, frames))``."""
        return self.collect(self.submit(window, frames))

    def _checked(self, result: np.ndarray, frames: np.ndarray, window: Window) -> np.ndarray:
        return checked(result, frames, self.outputs, self.meta.scale, window, self.windows)


def checked(result: np.ndarray, frames: np.ndarray, outputs: int, scale: int, window=None,
            windows: list | None = None) -> np.ndarray:
    """Refuse a model output whose shape differs from what the metadata promises, or that holds
    NaN/Inf values (named by ``window``, one of ``windows``)."""
    want = (frames.shape[0], outputs, 3, frames.shape[-2] * scale, frames.shape[-1] * scale)
    got = tuple(getattr(result, "shape", ()))
    if got != want:
        raise BackendError(f"the model returned frames of shape {list(got)} where its stvsr metadata promises "
                           f"{list(want)} ({outputs} frames, scale {scale}); the metadata does not match the graph")
    # max and min carry any NaN or Inf: two passes without a temporary as large as the result
    if result.size and not (np.isfinite(result.max()) and np.isfinite(result.min())):
        raise BackendError(f"the model returned NaN or Inf values for {_window_name(window, windows)}; its graph or "
                           "weights are broken (no output written)")
    return result


def _window_name(window, windows: list | None) -> str:
    """``window 6 of 8 (input frames 4 to 6, counted from 0)`` (only on the error path: a linear search)."""
    if window is None:
        return "a window"
    index = next((i for i, w in enumerate(windows or []) if w is window), None)
    name = "a window" if index is None else f"window {index + 1} of {len(windows)}"
    return f"{name} (input frames {min(window.frames)} to {max(window.frames)}, counted from 0)"
