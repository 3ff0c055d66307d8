"""Wall-clock timing with warm-ups and repeats: one method for the benchmarks and the exporter."""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable


@dataclass
class Timing:
    """Wall-clock statistics of repeated calls, in seconds."""

    median: float
    q1: float
    q3: float
    minimum: float
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def time_call(fn: Callable[[], object], warmup: int = 1, repeats: int = 5) -> Timing:
    """Median and inter-quartile range of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return _stats(samples)


def _stats(samples: list[float]) -> Timing:
    samples = sorted(samples)
    if len(samples) >= 4:
        q1, _, q3 = statistics.quantiles(samples, n=4)
    else:
        q1, q3 = samples[0], samples[-1]
    return Timing(statistics.median(samples), q1, q3, samples[0], len(samples))


def time_interleaved_clocks(fns: dict[str, Callable[[], object]], warmup: int = 1,
                            repeats: int = 3) -> dict[str, dict[str, Timing]]:
    """Time several callables the same way, alternating them (A B A B ...) so that a change in the
    machine's load hits each alike: ``warmup`` untimed rounds, then ``repeats`` timed rounds.
    Returns ``{"wall": {...}, "cpu": {...}}``: wall-clock time, and this process's CPU time, which
    other processes' load barely changes (a fair ratio for single-threaded work on a shared machine)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeats)):
        for key, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - start_cpu)
    return {"wall": {k: _stats(v) for k, v in wall.items()}, "cpu": {k: _stats(v) for k, v in cpu.items()}}


def time_interleaved(fns: dict[str, Callable[[], object]], warmup: int = 1, repeats: int = 3) -> dict[str, Timing]:
    """Wall-clock ``Timing`` of each callable, timed alike and alternated (see ``time_interleaved_clocks``)."""
    return time_interleaved_clocks(fns, warmup, repeats)["wall"]


def cuda_median_ms(fn: Callable[[], object], iters: int = 5, warmup: int = 2) -> float:
    """Median milliseconds of ``fn()`` on the current CUDA stream, timed with CUDA events after
    ``warmup`` untimed calls (torch with CUDA needed; imported here only)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(max(1, iters)):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)
