"""benchmarks/sweep_hostile.py keeps working: one cheap case end to end (a real stvsr-run on a FIFO
given as INPUT), its table row on stdout and in the ``--out`` file under the command that made it; a case
whose option the code under test does not have (older code, ``--code``) says so in its row."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sweep_runs_one_case_and_writes_its_table(tmp_path):
    out = tmp_path / "sweep.md"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sweep_hostile.py"), "--only", "INPUT a FIFO",
                          "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("| 17 | INPUT a FIFO |")]
    assert len(rows) == 1 and rows[0].endswith(" | ok |"), res.stdout
    assert "stvsr-run: error:" in rows[0] and "FIFO" in rows[0]
    text = out.read_text()
    assert "python benchmarks/sweep_hostile.py --only 'INPUT a FIFO' --out " in text and rows[0] in text


def test_sweep_row_says_when_the_code_lacks_the_option(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import sweep_hostile
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    sweep = sweep_hostile.Sweep(tmp_path, None)
    try:
        result = sweep.run("--no-such-option-here", "m.onnx", "in.mp4")    # a real usage error, as old code gives
        sweep.row("1", "a case", result, "the user's files untouched", True)
    finally:
        shutil.rmtree(sweep.ray_tmp, ignore_errors=True)
    assert result.code == 2
    cells = sweep.rows[-1]
    assert "cannot run on this code: No such option" in cells[4] and "--no-such-option-here" in cells[4], cells
    assert cells[-1] == "FAIL" and sweep.failed == 1
