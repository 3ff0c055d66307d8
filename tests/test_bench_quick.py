"""stvsr-bench --quick as a CI smoke test: it runs, writes its three files, and the numbers are sane."""
from __future__ import annotations

import json

from click.testing import CliRunner

from stvsr.bench.cli import main
from stvsr.bench.runner import trt_reason


def test_bench_quick_writes_table_json_and_plot(tmp_path):
    args = ["--quick", "--models", "zsm", "--backends", "pytorch,ort-fp32,trt-fp16", "--no-comparisons",
            "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results.json").read_text())
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("# stvsr benchmark (quick mode)")
    assert (tmp_path / "latency.png").stat().st_size > 0
    net = data["networks"]["zsm"]
    assert net["params"] == 11_102_771 and net["footage"] == "bikes.mp4"
    assert net["gflops_per_frame"] > 0 and net["out_frames_per_window"] == 7
    rows = {(r["backend"], r["precision"]): r for r in net["runs"] if not r.get("error")}
    assert {("pytorch", "fp32"), ("onnxruntime-cpu", "fp32")} <= set(rows)
    assert all(r["ms_per_frame"] > 0 and 0 < r["efficiency"] for r in rows.values())
    assert rows[("pytorch", "fp32")]["psnr_exact"]
    assert rows[("onnxruntime-cpu", "fp32")]["rel_l2"] < 1e-4      # ORT FP32 reproduces PyTorch on real frames
    peaks = data["matmul_gflops"]
    assert data["matmul_peak_gflops"] == peaks["peak"] == max(peaks["pytorch"], peaks["onnxruntime"]) > 0
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["torch"]
    # Issue 21: PyTorch runs with the thread count that was fastest here (probed), recorded in the results.
    choice = data["pytorch_threads"]
    tried = {int(n): ms for n, ms in choice["tried_ms"].items()}
    assert 1 in tried and choice["threads"] == min(tried, key=tried.get) == data["machine"]["torch_threads"]
    assert f"{choice['threads']} PyTorch threads (fastest of the counts tried" in data["method"]
    reason = trt_reason()
    if reason:  # TensorRT rows are skipped, with the reason, in the JSON and the table
        assert data["skipped"] == [f"trt-fp16: skipped ({reason})"] and reason in table
    else:       # on a GPU machine the row is a real engine, and it must agree with PyTorch
        assert rows[("tensorrt", "fp16")]["rel_l2"] < 2e-2
