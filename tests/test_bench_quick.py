"""stvsr-bench --quick as a CI smoke test: it runs, writes its three files, and the numbers are sane."""
from __future__ import annotations

import json

from click.testing import CliRunner

from stvsr.bench.cli import main


def test_bench_quick_writes_table_json_and_plot(tmp_path):
    result = CliRunner().invoke(main, ["--quick", "--models", "zsm", "--no-comparisons", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "results.md").read_text().startswith("# stvsr benchmark (quick mode)")
    assert (tmp_path / "latency.png").stat().st_size > 0
    net = data["networks"]["zsm"]
    assert net["params"] == 11_102_771
    rows = {(r["backend"], r["precision"]): r for r in net["runs"] if not r.get("error")}
    assert rows and all(r["ms_per_frame"] > 0 for r in rows.values())
    assert data["matmul_peak_gflops"] > 0 and data["machine"]["cpu_count"] >= 1
