"""benchmarks/sweep_hostile.py keeps working: one cheap case end to end (a real stvsr-run on a FIFO
given as INPUT), its table row on stdout and in the ``--out`` file under the command that made it."""
from __future__ import annotations

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
