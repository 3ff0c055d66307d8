"""How a long (segmented, Ray) run fails (issue 21, items 3, 4, 5, 8, 9, 10 and a new user's first runs).

Every case is a real ``stvsr-run`` subprocess on a 30-frame crop of bikes through the test networks
of ``tests/test_runtime_segments.py``: the input replaced between segments, an output that appears
mid-run, a failure a rerun cannot fix, Ray missing, an HTTP server given as ``--ray``, SIGTERM
during a local Ray run with ``--workers 1000`` and a worker killed mid-task (one local Ray start,
about 15 s), and a cluster with token authentication started elsewhere by ``ray start`` (a wrong
token; relative paths; about 20 s). Processes are told apart by an environment variable that every
Ray process inherits, so the check for orphans never sees another job's Ray, and each test ends
what it started; Ray's temporary folder is the test's own.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.test_runtime_segments import clip, make_clip, slow, slow_model, times_model  # noqa: F401

SLOW_PARTS = ["--factor", "2", "--codec", "ffv1", "--pix-fmt", "yuv444p", "--segment-frames", "5", "--threads", "1",
              "--scene-cuts", "off", "-q"]   # 30 frames: 6 parts


def _popen(*args, cwd=None, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stvsr.runtime.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)


def _wait_for_parts(proc: subprocess.Popen, manifest: Path, parts: int = 1, timeout: float = 90) -> None:
    """Until the manifest lists ``parts`` finished parts (or the run ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(json.loads(manifest.read_text())["parts"]) >= parts:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)


def _kept(manifest: Path) -> int:
    return len(json.loads(manifest.read_text())["parts"])


# -- item 5: the input replaced between segments -----------------------------------------------------

def test_input_replaced_between_segments_is_refused(slow_model, clip, tmp_path):
    inp, out = tmp_path / "in.mp4", tmp_path / "out.mkv"
    shutil.copy(clip, inp)
    other = make_clip(tmp_path / "other.mp4", 30, audio=False)
    proc = _popen(slow_model, inp, "-o", out, *SLOW_PARTS)
    _wait_for_parts(proc, tmp_path / ".out.mkv.stvsr-parts" / "manifest.json")
    os.replace(other, inp)                      # mv other.mp4 in.mp4
    _, err = proc.communicate(timeout=120)
    lines = err.splitlines()
    assert proc.returncode == 1 and not out.exists(), lines
    assert f"the input {inp} changed during the run" in lines[-1] and len(lines) == 1, lines


# -- item 8: say "run the same command again" only when that can succeed -----------------------------

def test_output_that_appears_mid_run_stops_at_the_next_part(slow_model, clip, tmp_path):
    out, work = tmp_path / "out.mkv", tmp_path / ".out.mkv.stvsr-parts"
    proc = _popen(slow_model, clip, "-o", out, *SLOW_PARTS)
    _wait_for_parts(proc, work / "manifest.json")
    out.write_text("the user's file")
    _, err = proc.communicate(timeout=120)
    lines = err.splitlines()
    kept = _kept(work / "manifest.json")
    assert proc.returncode == 1 and out.read_text() == "the user's file", lines
    assert kept < 6, "stopped before computing every part"
    assert lines == [f"stvsr-run: error: {out} already exists; pass --overwrite (-y) to replace it; {kept} of 6 "
                     f"parts {'is' if kept == 1 else 'are'} kept in {work}: run the same command with -y to resume"], lines


def _size_change_clip(path: Path) -> str:
    """MPEG-TS whose H.264 stream changes from 64x48 to 32x32 at frame 12 (two streams concatenated)."""
    from tests.test_runtime_messages import _clip

    pieces = [Path(_clip(path.with_name(f"piece{k}.ts"), "mpegts", 12, size)).read_bytes()
              for k, size in enumerate(((64, 48), (32, 32)))]
    path.write_bytes(b"".join(pieces))
    return str(path)


def test_a_failure_a_rerun_cannot_fix_does_not_promise_a_resume(times_model, tmp_path):
    src = _size_change_clip(tmp_path / "sizes.ts")
    out, work = tmp_path / "out.mkv", tmp_path / ".out.mkv.stvsr-parts"
    proc = _popen(times_model, src, "-o", out, "--codec", "ffv1", "--segment-frames", "5", "--scene-cuts", "off", "-q")
    _, err = proc.communicate(timeout=120)
    lines = err.splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "frame 12 changes size to 32x32" in lines[0], lines
    kept = _kept(work / "manifest.json")
    assert lines[0].endswith(f"; {kept} of 5 parts are kept in {work}"), lines
    assert "again" not in lines[0], lines


# -- refused before the model loads --------------------------------------------------------------------

def test_workers_without_ray_are_refused_before_the_model_loads(times_model, clip, tmp_path):
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named ray (test shim)')\n")
    env = {**os.environ, "PYTHONPATH": str(shim.parent)}
    for option in (["--workers", "2"], ["--ray", "local"]):
        proc = _popen(times_model, clip, "-o", tmp_path / "o.mp4", "--segment-frames", "10", *option, env=env)
        _, err = proc.communicate(timeout=60)
        lines = err.splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "need Ray" in lines[0], lines  # no "loading model" first
    assert sorted(os.listdir(tmp_path)) == ["shim"]


# -- item 3: an address where something other than Ray answers ----------------------------------------

def test_ray_address_of_an_http_server_fails_fast_and_quietly(times_model, clip, tmp_path):
    pytest.importorskip("ray")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        start = time.monotonic()
        proc = _popen(times_model, clip, "-o", tmp_path / "o.mp4", "--segment-frames", "10", "--ray", address)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        elapsed = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    lines = err.splitlines()
    assert proc.returncode == 1 and elapsed < 20, (elapsed, lines)
    assert lines == [f"stvsr-run: error: --ray {address} answers HTTP, not Ray: not a Ray GCS port (give the "
                     "cluster's GCS address, HEAD:6379 unless ray start --port said otherwise)"], lines
    assert os.listdir(tmp_path) == []


# -- items 4, 9, 10: SIGTERM during a local Ray run; a cluster started elsewhere ---------------------

def _marked(mark: str, command: bytes = b"", holding: bytes = b"", ray_tmp: str | None = None) -> list[int]:
    """Processes (other than zombies and this one) whose environment holds ``STVSR_TEST_MARK=mark``, or that
    have a file open under ``ray_tmp`` (Ray's agents write their process title over their environment, so
    only their logs in the Ray temporary folder tell them apart), and whose command line starts with
    ``command`` and holds ``holding``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if ") Z " in (entry / "stat").read_text() or not cmdline.startswith(command) or holding not in cmdline:
                continue
            if f"STVSR_TEST_MARK={mark}".encode() in (entry / "environ").read_bytes().split(b"\0") or \
                    (ray_tmp and _has_open_file_under(entry, ray_tmp)):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _has_open_file_under(process: Path, folder: str) -> bool:
    """Whether the process ``/proc/PID`` has a file open under ``folder``."""
    prefix = os.path.realpath(folder) + os.sep
    for fd in (process / "fd").iterdir():
        try:
            if os.readlink(fd).startswith(prefix):
                return True
        except OSError:
            continue
    return False


@pytest.fixture
def ray_tmp():
    """A Ray temporary folder of this test's own (short: Ray's socket paths must fit 107 bytes)."""
    folder = tempfile.mkdtemp(prefix="stvsr-ray-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_sigterm_during_a_local_ray_run_keeps_parts_and_leaves_no_ray_process(slow_model, clip, tmp_path, ray_tmp):
    """Also: the address of a cluster a `ray start` on this machine left on record (gone since) is not
    joined: --workers starts Ray here; a worker killed mid-task is retried, and Ray's message about it
    stays off the terminal."""
    pytest.importorskip("ray")
    shutil.copy(slow_model, tmp_path / "m.onnx")
    shutil.copy(clip, tmp_path / "in.mp4")
    mark = uuid.uuid4().hex
    os.makedirs(f"{ray_tmp}/ray")
    Path(f"{ray_tmp}/ray/ray_current_cluster").write_text("127.0.0.1:1")
    env = {**os.environ, "STVSR_TEST_MARK": mark, "RAY_TMPDIR": ray_tmp}
    command = ["m.onnx", "in.mp4", "-o", "out.mkv", "--work-dir", "w", *SLOW_PARTS[:-1]]  # relative paths
    proc = _popen(*command, "--workers", "1000", cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 120
        while not _marked(mark, b"ray::segment_task") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)                                   # mid-task
        for pid in _marked(mark, b"ray::segment_task")[:1]:
            os.kill(pid, signal.SIGKILL)
        _wait_for_parts(proc, tmp_path / "w" / "manifest.json", timeout=120)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        left = _marked(mark, ray_tmp=ray_tmp)
    finally:
        _stop(mark, ray_tmp)   # never leave this test's Ray behind, whatever failed
    lines = err.splitlines()
    assert proc.returncode == 143, lines
    assert out == "" and all(line.startswith("stvsr-run: ") for line in lines), "Ray's own lines stay off the terminal"
    cores = os.cpu_count() or 1
    assert any(re.fullmatch(rf"stvsr-run: ray: --workers 1000 capped at {cores}: the cluster has {cores} CPU "
                            r"core\(s\)", line) for line in lines), lines
    kept = _kept(tmp_path / "w" / "manifest.json")
    assert 1 <= kept < 6, lines
    assert lines[-1] == (f"stvsr-run: error: terminated; no output written; {kept} of 6 parts "
                         f"{'is' if kept == 1 else 'are'} kept in {tmp_path / 'w'}: run the same command again to "
                         "resume"), lines
    assert left == [], f"Ray processes left after the command returned: {left}"
    assert not (tmp_path / "w" / ".lock").exists()
    proc = _popen(*command, cwd=tmp_path)      # the parts the workers wrote resume without Ray
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and (tmp_path / "out.mkv").exists(), err
    assert f"resumed: {kept} of 6 parts done" in err, err


def _stop(mark: str, ray_tmp: str | None = None) -> None:
    """End the processes this test started (by the mark in their environment, or their files in its Ray
    temporary folder): SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _marked(mark, ray_tmp=ray_tmp):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while _marked(mark, ray_tmp=ray_tmp) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_ray_cluster_refuses_a_wrong_token_fast_and_runs_relative_paths(times_model, clip, tmp_path, ray_tmp):
    """One cluster with token authentication (``ray start --head`` from another folder, about 10 s): a
    client with another token gets one line within seconds (item 3); the right token with relative
    MODEL, INPUT and --work-dir runs, though the cluster's workers start in another folder (item 10),
    and --workers above its one core is capped (item 9)."""
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mark = uuid.uuid4().hex
    env = {**os.environ, "STVSR_TEST_MARK": mark, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "a" * 32,
           "RAY_TMPDIR": ray_tmp}
    shutil.copy(times_model, tmp_path / "m.onnx")
    shutil.copy(clip, tmp_path / "in.mp4")
    command = ["m.onnx", "in.mp4", "-o", "out.mkv", "--work-dir", "w", "--codec", "ffv1", "--segment-frames", "10",
               "--scene-cuts", "off", "--ray", f"127.0.0.1:{port}"]
    try:
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--port", str(port),
                        "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=120, cwd="/")
        start = time.monotonic()
        wrong = _popen(*command, cwd=tmp_path, env={**env, "RAY_AUTH_TOKEN": "b" * 32})
        _, wrong_err = wrong.communicate(timeout=120)
        elapsed = time.monotonic() - start
        right = _popen(*command, "--workers", "4", cwd=tmp_path, env=env)
        right_out, right_err = right.communicate(timeout=120)
    finally:
        _stop(mark, ray_tmp)
    lines = wrong_err.splitlines()
    assert wrong.returncode == 1 and elapsed < 20, (elapsed, lines)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"stvsr-run: error: cannot join the Ray cluster at 127.0.0.1:{port}: authentication "
                               "failed"), lines
    lines = right_err.splitlines()
    assert right.returncode == 0 and (tmp_path / "out.mkv").exists(), lines
    assert "stvsr-run: ray: --workers 4 capped at 1: the cluster has 1 CPU core(s)" in lines, lines
    assert right_out == "" and all(line.startswith("stvsr-run: ") for line in lines), lines


def test_sigterms_while_ray_stops_are_handled(slow_model, clip, tmp_path, ray_tmp):
    """SIGTERM every 20 ms from the first finished part on, so that some arrive while ray.shutdown stops
    the local Ray: Ray's crash handler in the driver set SIGTERM back to the default action there,
    behind Python's back, and stvsr-run died at once (-15 without a line, or exit 1; the lock and Ray's
    agents left). Now the first one stops the run as usual and the others are only recorded."""
    pytest.importorskip("ray")
    mark = uuid.uuid4().hex
    env = {**os.environ, "STVSR_TEST_MARK": mark, "RAY_TMPDIR": ray_tmp}
    work = tmp_path / "w"
    proc = _popen(slow_model, clip, "-o", tmp_path / "o.mkv", "--work-dir", work, *SLOW_PARTS, "--workers", "2",
                  env=env)
    try:
        _wait_for_parts(proc, work / "manifest.json", timeout=120)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.02)
        _, err = proc.communicate(timeout=60)
        left = _marked(mark, ray_tmp=ray_tmp)
    finally:
        _stop(mark, ray_tmp)
    lines = err.splitlines()
    assert proc.returncode == 143, (proc.returncode, lines)
    kept = _kept(work / "manifest.json")
    assert lines == [f"stvsr-run: error: terminated; no output written; {kept} of 6 parts {'is' if kept == 1 else 'are'} "
                     f"kept in {work}: run the same command again to resume"], lines
    assert left == [] and not (work / ".lock").exists(), left


@slow
def test_sigterm_while_ray_starts_leaves_no_ray_process(times_model, clip, tmp_path, ray_tmp):
    """SIGTERM a second after the local Ray's raylet started, while ray.init still runs (its agents
    start): ray.shutdown does not know those processes; they must end with the command."""
    pytest.importorskip("ray")
    mark = uuid.uuid4().hex
    env = {**os.environ, "STVSR_TEST_MARK": mark, "RAY_TMPDIR": ray_tmp}
    proc = _popen(times_model, clip, "-o", tmp_path / "o.mp4", "--segment-frames", "10", "-q", "--workers", "2", env=env)
    try:
        deadline = time.monotonic() + 60
        while not _marked(mark, b"", b"/raylet"):
            assert proc.poll() is None and time.monotonic() < deadline, "Ray did not start"
            time.sleep(0.02)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        left = _marked(mark, ray_tmp=ray_tmp)
    finally:
        _stop(mark, ray_tmp)
    assert proc.returncode == 143 and err.splitlines() == ["stvsr-run: error: terminated; no output written"], err
    assert left == [], f"Ray processes left after the command returned: {left}"
