"""The runtime runs without PyTorch, onnx and onnxscript (issue 24, part 2: the base install is the runtime).

Subprocesses in which importing torch, onnx or onnxscript raises (a meta-path blocker installed by a
``sitecustomize`` on PYTHONPATH, which also records every attempt): ``stvsr-run --help`` works, and
``stvsr-run`` runs an exported test network (which takes optical flows: OpenCV too) on a real clip
end to end with its defaults (scene-cut detection, libx264 into .mp4, the audio copied), attempting
none of those imports; ``stvsr-export`` and ``stvsr-bench`` say in one line what to install.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av

from stvsr.install_hints import EXPORT_INSTALL
from tests.test_runtime import clip_with_audio, fixed_model  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "onnx", "onnxscript")

SITECUSTOMIZE = f'''
import os, sys

BLOCKED = {BLOCKED!r}


class Blocker:
    """Refuses the export side's packages, and writes each attempt to $STVSR_TEST_BLOCKED_LOG."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(os.environ["STVSR_TEST_BLOCKED_LOG"], "a") as log:
                log.write(name + "\\n")
            raise ImportError(f"{{name}} is blocked in this test (a runtime-only install)")
        return None


sys.meta_path.insert(0, Blocker())
'''


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``python args...`` with torch, onnx and onnxscript unimportable; and the imports it attempted."""
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "blocked.log"
    log.write_text("")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}", "STVSR_TEST_BLOCKED_LOG": str(log)}
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    return r, log.read_text().split()


def test_the_blocker_blocks(tmp_path):
    r, attempted = _run(tmp_path, "-c", "import torch")
    assert r.returncode == 1 and "blocked in this test" in r.stderr and attempted == ["torch"]


def test_stvsr_run_needs_no_torch_or_onnx(fixed_model, clip_with_audio, tmp_path):
    r, attempted = _run(tmp_path, "-m", "stvsr.runtime.cli", "--help")
    assert r.returncode == 0 and "Usage:" in r.stdout, r.stderr
    assert attempted == []
    out = tmp_path / "out.mp4"
    r, attempted = _run(tmp_path, "-m", "stvsr.runtime.cli", fixed_model, clip_with_audio, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert attempted == [], attempted
    assert f"wrote {out}: 11 frames (6 in, factor 1), 256x192" in r.stderr, r.stderr
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 11 and len(c.streams.audio) == 1


def test_export_commands_without_the_export_extra_name_the_install(tmp_path):
    for prog, entry in (("stvsr-export", "export_main"), ("stvsr-bench", "bench_main")):
        r, _ = _run(tmp_path, "-c", f"import sys; sys.argv[0] = '{prog}'; from stvsr.export.entry import {entry}; "
                                    f"{entry}()", "--help")
        lines = r.stderr.splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"{prog}: error: {prog} needs the export extra") and EXPORT_INSTALL in lines[0]
        assert "Traceback" not in r.stderr
