"""Padding to a model's size multiple, and spatial tiles with overlap for large frames."""
from __future__ import annotations

from typing import Callable

import numpy as np


def padded_size(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def pad_frames(x: np.ndarray, multiple: int) -> np.ndarray:
    """Replicate-pad the last two axes up to a multiple (the crop after inference undoes it)."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if not ph and not pw:
        return x
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(x, pad, mode="edge")


def tile_starts(size: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Tile origins along one axis: tiles of ``tile`` pixels overlapping by at least ``overlap``."""
    if size <= tile:
        return [0]
    step = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def run_tiled(run: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray],
              spatial: set[str], tile: int, overlap: int, multiple: int, scale: int) -> np.ndarray:
    """Run ``run`` on overlapping tiles of every input named in ``spatial`` and stitch the outputs.

    Each output pixel comes from the tile in which it lies furthest from a tile edge (the centre
    part of every tile is kept), so seams fall inside overlaps.
    """
    h, w = next(inputs[k] for k in spatial).shape[-2:]
    tile = max(multiple, tile // multiple * multiple)
    ys, xs = tile_starts(h, tile, overlap, multiple), tile_starts(w, tile, overlap, multiple)
    out = None

    def bounds(starts: list[int], i: int, size: int) -> tuple[int, int]:
        lo = 0 if i == 0 else (starts[i - 1] + tile + starts[i]) // 2
        hi = size if i == len(starts) - 1 else (starts[i] + tile + starts[i + 1]) // 2
        return lo, hi

    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            th, tw = min(tile, h), min(tile, w)
            part = {k: (v[..., y:y + th, x:x + tw] if k in spatial else v) for k, v in inputs.items()}
            res = run({k: np.ascontiguousarray(v) for k, v in part.items()})
            if out is None:
                out = np.empty(res.shape[:-2] + (h * scale, w * scale), dtype=res.dtype)
            (y0, y1), (x0, x1) = bounds(ys, iy, h), bounds(xs, ix, w)
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                res[..., (y0 - y) * scale:(y1 - y) * scale, (x0 - x) * scale:(x1 - x) * scale]
    return out
