"""The --max-memory probe is measured once per model file and machine, then read from the cache."""
from __future__ import annotations

import json
import re

import av
import numpy as np
import pytest

from stvsr.runtime.planning import memory, memory_cache
from stvsr.runtime.backends import open_backend
from stvsr.runtime.onepass import RunOptions, upscale_video
from tests.test_runtime_memory import clip, wide_net  # noqa: F401 (fixtures: test network, real footage)

pytestmark = pytest.mark.skipif(not memory.peak_meter_available(), reason="needs Linux /proc/self/clear_refs")


def _run(model: str, src: str, dst: str, budget: int) -> tuple[list[str], list[np.ndarray]]:
    lines: list[str] = []
    with open_backend(model, threads=1) as backend:
        upscale_video(backend, src, dst, RunOptions(factor=1, crf=0, preset="ultrafast", pix_fmt="yuv444p",
                                                    max_memory=budget), status=lines.append)
    with av.open(dst) as c:
        return lines, [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_second_run_reads_the_probe_from_the_cache(wide_net, clip, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("STVSR_HOME", str(tmp_path / "home"))
    calls = []
    real = memory.measure
    monkeypatch.setattr(memory, "measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    # what this process already holds (an xdist worker after other tests holds more) plus room for
    # part of a frame, so both runs tile
    budget = memory.resident() + (700 << 20)
    first, frames1 = _run(wide_net, clip, str(tmp_path / "a.mp4"), budget)
    assert len(calls) == 1
    files = list((tmp_path / "home" / "cache" / "memory").glob("*.json"))
    assert len(files) == 1 and not list(files[0].parent.glob(".stvsr-*"))
    second, frames2 = _run(wide_net, clip, str(tmp_path / "b.mp4"), budget)
    assert len(calls) == 1, "the second run of the same model measured again"
    m1 = [line for line in first if line.startswith("memory:")]
    m2 = [line for line in second if line.startswith("memory:")]
    assert "measured on the first window" in m1[0] and "cached" in m2[0]
    # the same measurement (the held part is read at the time of each run)
    assert m1[0].split(" (")[0] == m2[0].split(" (")[0]
    assert all(re.search(r"tiles of \d+", line) for line in (m1[0], m2[0]))  # both runs tiled (the tile
    # may differ by a step when the memory held at the time differs; tiling this network is exact)
    assert len(frames1) == len(frames2) and all(np.array_equal(a, b) for a, b in zip(frames1, frames2))

    files[0].write_text("{not json")  # a corrupt cache file: ignored with a note, measured and rewritten
    third, _ = _run(wide_net, clip, str(tmp_path / "c.mp4"), budget)
    assert len(calls) == 2
    assert any("ignoring the unreadable probe cache file" in line for line in third), third
    assert json.loads(files[0].read_text())["per_pixel"] > 0


def test_key_names_model_runtime_and_machine(wide_net, tmp_path):  # noqa: F811
    with open_backend(wide_net, threads=1) as backend:
        inputs = {"frames": np.zeros((1, 3, 3, 96, 128), np.float32), "times": np.zeros(2, np.float32)}
        key = memory_cache.probe_key(backend, inputs, {"frames"})
    assert key["model"][1] > 0 and key["onnxruntime"] and key["machine"][0]
    assert key["shapes"] == {"frames": [1, 3, 3], "times": [2]}  # any frame size, this many times
