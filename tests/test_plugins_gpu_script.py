"""benchmarks/plugins_gpu.py without a GPU: stream ordering of its TensorRT runner and --require-tensorrt.

Test doubles (named as such) stand in for torch's CUDA streams, TensorRT's execution context and
the per-case runs; nothing here is a GPU or TensorRT result.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "plugins_gpu.py"


@pytest.fixture
def plugins_gpu():
    spec = importlib.util.spec_from_file_location("plugins_gpu_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StreamDouble:
    """TEST DOUBLE of torch.cuda.Stream: records wait_stream calls."""

    def __init__(self, name: str, log: list):
        self.name, self.log, self.cuda_stream = name, log, hash(name) & 0xFFFF

    def wait_stream(self, other: "StreamDouble") -> None:
        self.log.append(("wait", self.name, other.name))


class TorchCudaDouble:
    """TEST DOUBLE of the ``torch`` module's CUDA stream API (current_stream, stream context)."""

    def __init__(self, log: list):
        self.log = log
        self.caller = StreamDouble("caller", log)
        self.cuda = self

    def current_stream(self) -> StreamDouble:
        return self.caller

    @contextlib.contextmanager
    def stream(self, s: StreamDouble):
        self.log.append(("enter", s.name))
        yield
        self.log.append(("exit", s.name))


class ContextDouble:
    """TEST DOUBLE of a TensorRT execution context: records the stream it was enqueued on."""

    def __init__(self, log: list, ok: bool = True):
        self.log, self.ok = log, ok

    def execute_async_v3(self, handle: int) -> bool:
        self.log.append(("execute", handle))
        return self.ok


def _engine(plugins_gpu, log, ok=True):
    eng = plugins_gpu.TrtEngine.__new__(plugins_gpu.TrtEngine)
    eng.torch = TorchCudaDouble(log)
    eng.stream = StreamDouble("trt", log)
    eng.context = ContextDouble(log, ok)
    eng.outputs = {"y": "output-tensor"}
    return eng


def test_trt_stream_waits_for_the_stream_that_wrote_the_inputs(plugins_gpu):
    log: list = []
    eng = _engine(plugins_gpu, log)
    assert eng() == "output-tensor"
    assert log == [("wait", "trt", "caller"), ("enter", "trt"), ("execute", eng.stream.cuda_stream),
                   ("exit", "trt"), ("wait", "caller", "trt")]


def test_failed_enqueue_is_an_error(plugins_gpu):
    with pytest.raises(RuntimeError, match="execute_async_v3 failed"):
        _engine(plugins_gpu, [], ok=False)()


def test_require_tensorrt_measures_the_triton_rows_then_fails(plugins_gpu, monkeypatch, tmp_path, capsys):
    calls = []

    def run_case_double(size, dtype, iters, trt_reason):      # TEST DOUBLE of one case's measurements
        calls.append((size, dtype, trt_reason))
        return [{"op": "backward_warp", "impl": "triton", "size": size, "dtype": dtype, "ms": 1.0,
                 "peak_extra_mib": 0.0, "max_rel": 0.0, "source": "test double"},
                {"op": "backward_warp", "impl": "trt-stvsr", "size": size, "dtype": dtype, "skipped": trt_reason}]

    monkeypatch.setattr(plugins_gpu, "_need_gpu", lambda: None)
    monkeypatch.setattr(plugins_gpu, "_device_name", lambda: "device double", raising=False)
    monkeypatch.setattr(plugins_gpu, "_have_tensorrt", lambda: "tensorrt unavailable (test)")
    monkeypatch.setattr(plugins_gpu, "run_case", run_case_double)
    out = tmp_path / "rows.json"
    rc = plugins_gpu.main(["--require-tensorrt", "--sizes", "540p,1080p", "--dtypes", "fp32,fp16", "--out", str(out)])
    assert rc == 1
    assert [(s, d) for s, d, _ in calls] == [("540p", "fp32"), ("540p", "fp16"), ("1080p", "fp32"), ("1080p", "fp16")]
    assert len(json.loads(out.read_text())["rows"]) == 8
    captured = capsys.readouterr()
    assert "backward_warp  triton" in captured.out                       # the Triton rows are reported
    assert captured.err.rstrip().splitlines()[-1].startswith("plugins_gpu: --require-tensorrt: failing")

    # Without the flag the same run passes (TensorRT rows skipped with the reason).
    assert plugins_gpu.main(["--sizes", "540p", "--dtypes", "fp32"]) == 0


# ------------------------------------------------------------------ issue 21, item 18

@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_native_warp_graph_is_what_tensorrt_reads_as_bilinear(plugins_gpu, dtype):
    """The trt-native warp row's graph: opset 19 'bilinear' (opset 20's 'linear' is built as nearest by TensorRT's
    ONNX parser), FP16 sampled in an FP32 island; on ONNX Runtime it is stvsr.ops.backward_warp within the
    row's error bound."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from stvsr import ops
    from stvsr.engines.trt_compat import problems

    h, w = plugins_gpu.SIZES["check"]
    model = plugins_gpu.warp_onnx_native(dtype, h, w)
    assert problems(model) == []
    t = plugins_gpu.make_inputs(h, w, torch.float16 if dtype == "fp16" else torch.float32, device="cpu")
    ref = ops.backward_warp(t["x"].float(), t["flow"], "border")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"x": t["x"].numpy(), "flow": t["flow"].numpy()})[0]
    err = plugins_gpu._err(torch.from_numpy(out.astype(np.float32)), ref)
    assert err["max_rel"] < plugins_gpu.CHECK_TOL[dtype], err


def test_trt_native_rows_are_held_to_the_error_bounds(plugins_gpu, monkeypatch, capsys):
    def run_case_double(size, dtype, iters, trt_reason):      # TEST DOUBLE of one case's measurements
        row = {"size": size, "dtype": dtype, "ms": 1.0, "peak_extra_mib": None, "source": "test double"}
        return [{**row, "op": "backward_warp", "impl": "triton", "max_rel": 1e-6},
                {**row, "op": "backward_warp", "impl": "trt-native", "max_rel": 0.3},   # e.g. sampled as nearest
                {**row, "op": "deform_conv2d", "impl": "trt-native", "max_rel": 1e-6}]

    monkeypatch.setattr(plugins_gpu, "_need_gpu", lambda: None)
    monkeypatch.setattr(plugins_gpu, "_device_name", lambda: "device double", raising=False)
    monkeypatch.setattr(plugins_gpu, "_have_tensorrt", lambda: None)
    monkeypatch.setattr(plugins_gpu, "run_case", run_case_double)
    assert plugins_gpu.main(["--sizes", "540p", "--dtypes", "fp32"]) == 1
    err = capsys.readouterr().err
    assert "1 rows failed or exceeded the error bounds" in err and "backward_warp trt-native 540p fp32" in err, err
