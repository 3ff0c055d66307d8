"""benchmarks/gpu_session.sh stops loudly, before writing anything, where there is no usable GPU.

The GPU steps themselves need a GPU machine; here the preflight is checked with the real
absence of a driver and with a test-double ``nvidia-smi`` (an old driver, no GPU listed).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(tmp_path, fake_smi: str | None):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    path = "/usr/bin:/bin"
    if fake_smi is not None:   # test double of nvidia-smi
        smi = bindir / "nvidia-smi"
        smi.write_text("#!/bin/sh\n" + fake_smi)
        smi.chmod(0o755)
        path = f"{bindir}:{path}"
    out = tmp_path / "gpu"
    env = {**os.environ, "PATH": path, "STVSR_GPU_OUT": str(out), "STVSR_SKIP_INSTALL": "1"}
    res = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    return res, out


def test_no_driver_is_a_named_failure_and_nothing_is_written(tmp_path):
    if shutil.which("nvidia-smi", path="/usr/bin:/bin"):
        pytest.skip("this machine has nvidia-smi")
    res, out = _run(tmp_path, None)
    assert res.returncode == 2
    assert "gpu_session: FAILED at step 'gpu': no NVIDIA driver" in res.stderr
    assert not out.exists()


@pytest.mark.parametrize("smi, message", [
    ('case "$1" in -L) echo "GPU 0: NVIDIA H100 (UUID: GPU-0)";; *) echo "550.54.15";; esac\n', "older than R580"),
    ('case "$1" in -L) echo "No devices were found"; exit 6;; *) exit 6;; esac\n', "sees no GPU"),
])
def test_unusable_gpu_is_a_named_failure(tmp_path, smi, message):
    res, out = _run(tmp_path, smi)
    assert res.returncode == 2 and "FAILED at step 'gpu'" in res.stderr and message in res.stderr, res.stderr
    assert not out.exists()
