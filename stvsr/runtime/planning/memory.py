"""A peak-memory budget for ``stvsr-run``: the tile size comes from the model's working memory,
measured on the first window, never from the model's name.

A model's working memory grows linearly with the LR pixels of a window (activations at every
resolution, all frames and times of the window). On the first window the model runs on a small
crop of the real inputs while the process's peak resident memory is recorded (Linux: ``VmHWM``,
reset through ``/proc/self/clear_refs``), then on a second, larger input: the whole first window
when even the small crop's peak, charged wholly per pixel, predicts that it fits the budget (the
caller keeps that result: the first window is not computed twice), else a crop twice as large. The
two peaks give a fixed part and bytes per LR pixel. The largest tile whose predicted peak (memory
already held + fixed + per-pixel x tile area + the pipeline's full-resolution frame buffers) fits
the budget is used; a frame that fits whole is not tiled.
"""
from __future__ import annotations

import gc
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from stvsr.runtime.planning.memory_cache import meminfo

GiB = 1 << 30
DEFAULT_BUDGET = 6 * GiB          # a default run fits an 8 GB machine, with room for the system
AVAILABLE_SHARE = 0.8             # and never more than this share of the memory available at start
# Per-pixel cost measured on small crops, scaled for a large tile: ONNX Runtime's CPU arena extends
# itself by doubling, so what it holds can approach twice what a run uses, and a large run holds
# more per pixel than a small one (stvun, 3 times: 44 KiB per LR pixel from the 32/64 crops, 48 at
# 256x256 alone, about 57 for a 400x272 tile inside stvsr-run).
MARGIN = 2.0
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": GiB, "t": 1 << 40}


class MemoryBudgetError(ValueError):
    """A budget that cannot be met, or one that cannot be parsed."""


def parse_size(text: str) -> int | None:
    """``"6G"``, ``"6GiB"``, ``"4000M"``, ``"512MB"`` -> bytes (binary units); ``"auto"`` -> the default
    budget; ``"0"``/``"off"`` -> ``None`` (no budget)."""
    t = text.strip().lower()
    if t == "auto":
        return default_budget()
    if t in ("0", "off", "none"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", t)
    if not m:
        raise MemoryBudgetError(f"cannot read the memory size {text!r}; use e.g. 6G, 4000M, auto or 0")
    value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value < 64 << 20:
        raise MemoryBudgetError(f"memory budget {text} is below 64 MiB")
    return value


def available_memory() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes (None where there is no such file)."""
    return meminfo("MemAvailable")


def default_budget() -> int:
    """6 GiB, or 80% of the memory available now when that is less."""
    avail = available_memory()
    return min(DEFAULT_BUDGET, int(avail * AVAILABLE_SHARE)) if avail else DEFAULT_BUDGET


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def peak_meter_available() -> bool:
    """True where this process can reset and read its peak resident memory (Linux 4.0+)."""
    try:
        reset_peak()
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


def reset_peak() -> None:
    """Reset this process's peak resident memory (``VmHWM``) to the current resident memory."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def resident() -> int:
    return _status_kib("VmRSS")


def peak() -> int:
    return _status_kib("VmHWM")


@dataclass
class WindowMemory:
    """Working memory of one window run: ``fixed + per_pixel * LR pixels`` bytes above ``held``."""

    held: int            # resident memory before the first run (model loaded, buffers, interpreter)
    fixed: float
    per_pixel: float

    def peak(self, pixels: int, extra: int = 0) -> float:
        """Predicted peak for a tile of ``pixels`` LR pixels (per-pixel cost with ``MARGIN``)."""
        return self.held + self.fixed + MARGIN * self.per_pixel * pixels + extra


def crop(inputs: dict[str, np.ndarray], spatial: set[str], size: int) -> dict[str, np.ndarray]:
    """The top-left ``size`` x ``size`` LR crop of every spatial input (others unchanged)."""
    return {k: (np.ascontiguousarray(v[..., :size, :size]) if k in spatial else v) for k, v in inputs.items()}


def whole_fits(held: int, small_peak: float, small_area: int, pixels: int, budget: int, extra: int = 0) -> bool:
    """True when ``pixels`` LR pixels fit ``budget`` even if the peak of a run on ``small_area`` pixels
    were all per-pixel cost: for a cost ``fixed + per_pixel * area`` and ``pixels >= small_area`` this
    bound is above ``WindowMemory.peak``, so a whole window run on it is one ``tile_for`` keeps whole."""
    return held + MARGIN * small_peak * pixels / max(1, small_area) + extra <= budget


def measure(run: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray], spatial: set[str],
            sizes: tuple[int, int], budget: int | None = None, extra: int = 0) -> WindowMemory:
    """Fit ``fixed + per_pixel * pixels`` to the peaks above the memory held before the first run, of
    two runs on a ``sizes[0]`` crop, then of the whole ``inputs`` run once (``run(inputs)`` itself,
    whose result the caller can keep) when ``budget`` is given and ``whole_fits`` says it fits, else
    of two runs on a ``sizes[1]`` crop.

    Twice on crops, because the steady state is what a video costs, and a backend may allocate more
    on the second run of a shape than on the first: ONNX Runtime's memory pattern does (stvun at
    96x96 with 3 times: 40 KiB per LR pixel after one run, 90 after the second and every later
    one), which is why stvsr's ONNX Runtime backend turns it off (then both runs cost 40, and one
    run of the whole window measures its steady state)."""
    gc.collect()
    held = resident()
    areas, peaks = [], []
    h, w = next(inputs[k] for k in spatial).shape[-2:]
    for size in sizes:
        whole = bool(areas) and budget is not None and whole_fits(held, peaks[0], areas[0], h * w, budget, extra)
        part = inputs if whole else crop(inputs, spatial, size)
        ph, pw = next(part[k] for k in spatial).shape[-2:]
        reset_peak()
        run(part)
        if not whole:
            run(part)
        areas.append(ph * pw)
        peaks.append(peak() - held)
    per_pixel = max(0.0, (peaks[1] - peaks[0]) / max(1, areas[1] - areas[0]))
    return WindowMemory(held, max(0.0, peaks[1] - per_pixel * areas[1]), per_pixel)


def tile_for(mem: WindowMemory, budget: int, h: int, w: int, multiple: int, overlap: int, extra: int = 0) -> int | None:
    """The tile side (LR pixels, a multiple of ``multiple``) whose predicted peak fits ``budget``,
    or ``None`` when the whole ``h`` x ``w`` frame fits. ``MemoryBudgetError`` when no tile does."""
    if mem.peak(h * w, extra) <= budget:
        return None
    smallest = max(4 * multiple, -(-(2 * overlap + multiple) // multiple) * multiple)
    room = budget - mem.held - mem.fixed - extra
    area = room / (MARGIN * mem.per_pixel) if mem.per_pixel > 0 and room > 0 else 0
    short, long_ = min(h, w), max(h, w)
    side = area / short if area >= short * short else area ** 0.5  # a tile as tall as a short frame is wider
    tile = int(min(side, long_)) // multiple * multiple
    if tile < smallest:
        need = mem.peak(min(smallest, short) * min(smallest, long_), extra)
        raise MemoryBudgetError(f"a memory budget of {budget / GiB:.1f} GiB is too small for this model: the smallest "
                                f"tile ({smallest} LR pixels) needs about {need / GiB:.1f} GiB "
                                f"({mem.per_pixel / 1024:.0f} KiB per LR pixel); raise --max-memory")
    return tile


def describe(mem: WindowMemory, budget: int, tile: int | None, h: int, w: int, extra: int,
             cached: bool = False) -> str:
    """One status line: what was measured and what it means for this run."""
    when = "measured by an earlier run of this model, cached" if cached else "measured on the first window"
    what = (f"memory: {mem.per_pixel / 1024:.1f} KiB per LR pixel + {mem.fixed / GiB:.2f} GiB per window "
            f"({when}), {mem.held / GiB:.2f} GiB held, {extra / GiB:.2f} GiB frame buffers")
    if tile is None:
        return f"{what}; predicted peak {mem.peak(h * w, extra) / GiB:.1f} GiB within {budget / GiB:.1f} GiB: no tiling"
    th, tw = min(tile, h), min(tile, w)
    return (f"{what}; budget {budget / GiB:.1f} GiB -> tiles of {tile} LR pixels "
            f"(predicted peak {mem.peak(th * tw, extra) / GiB:.1f} GiB)")


def runs_on_host(backend) -> bool:
    """True when ``backend`` computes in this process's memory (ONNX Runtime on the CPU); GPU
    memory is not resident memory, and TensorRT engines have fixed shape ranges."""
    session = getattr(backend, "session", None)
    providers = session.get_providers() if session is not None and hasattr(session, "get_providers") else []
    return bool(providers) and providers[0] == "CPUExecutionProvider"


def probe_sizes(multiple: int) -> tuple[int, int]:
    """Two crop sizes: at least 32 (every network's minimum), multiples of ``multiple``."""
    s = max(32, -(-32 // multiple) * multiple)
    return s, 2 * s


def auto_tile(run: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray], spatial: set[str],
              multiple: int, overlap: int, budget: int, extra: int,
              say: Callable[[str], None] = lambda m: None, cache_key: dict | None = None) -> int | None:
    """Measure on the first window's inputs and return the tile for ``budget`` (None: no tiling).
    With ``cache_key`` (``memory_cache.probe_key``) a measurement of an earlier run is reused.
    ``run`` may be given the whole ``inputs`` (``measure``): a caller that keeps that result and gets
    None back has its first window computed."""
    from stvsr.runtime.planning import memory_cache

    h, w = next(inputs[k] for k in spatial).shape[-2:]
    sizes = probe_sizes(multiple)
    if h * w <= sizes[1] * sizes[1]:
        return None  # a frame no larger than a probe crop: its peak was as good as measured
    if not peak_meter_available():
        say("memory: peak resident memory cannot be measured here (no /proc/self/clear_refs); "
            "--max-memory is not applied, use --tile to bound memory")
        return None
    cached = memory_cache.load(cache_key, say)
    if cached is not None:
        gc.collect()
        mem = WindowMemory(resident(), *cached)
    else:
        mem = measure(run, inputs, spatial, sizes, budget, extra)
        memory_cache.store(cache_key, mem.fixed, mem.per_pixel, say)
    tile = tile_for(mem, budget, h, w, multiple, overlap, extra)
    say(describe(mem, budget, tile, h, w, extra, cached is not None))
    return tile
