"""ONNX Runtime CPU session options under which an INT8 graph computes what it says, on every x86 CPU.

On x86 ONNX Runtime runs a QDQ ``Conv``/``MatMul`` as one integer kernel with uint8 activations and
int8 weights (int8 activations are shifted to uint8 with zero point 128 first). On CPUs without VNNI
(AVX2 or AVX-512 without VNNI: AMD Zen 1-3, Intel before Cascade Lake) that kernel multiplies with
``VPMADDUBSW``, which adds each pair of products into a saturating int16: 255 * 127 * 2 = 64770 is
clipped to 32767. A TensorRT-target graph (int8 activations, full-range int8 weights) then reads
23% off its FP32 graph there (1.1% on a VNNI CPU or on TensorRT, which sum in int32); a CPU-target graph
6% (1.2%). The session option ``session.x64quantprecision`` makes ONNX Runtime use its U8U8 kernels,
which do not saturate; on a VNNI CPU it changes no result but costs about 4x in speed, so it is set only
where a probe shows this CPU's kernels saturating (``u8s8_saturates``).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

PRECISION_KEY = "session.x64quantprecision"  # ONNX Runtime's kOrtSessionOptionsAvx2PrecisionMode


def _saturation_probe(channels: int = 16):
    """A QDQ 1x1 Conv whose every product pair is 127 * 127 * 2 in int8 (255 * 127 * 2 once shifted to
    uint8): ``channels`` everywhere when summed exactly, far less where int16 pair sums saturate."""
    from onnx import TensorProto, helper, numpy_helper

    def const(value, dtype, name):
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    inits = [const(1 / 127, np.float32, "x_scale"), const(0, np.int8, "zero"),
             const(np.full((8, channels, 1, 1), 127), np.int8, "w_q"), const(1 / 127, np.float32, "w_scale"),
             const(channels / 127, np.float32, "y_scale")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "zero"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "zero"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "zero"], ["w_dq"]),
             helper.make_node("Conv", ["x_dq", "w_dq"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "y_scale", "zero"], ["c_q"]),
             helper.make_node("DequantizeLinear", ["c_q", "y_scale", "zero"], ["y"])]
    graph = helper.make_graph(nodes, "u8s8_saturation_probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 2, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 10
    return model, {"x": np.ones((1, channels, 2, 2), np.float32)}, float(channels)


@lru_cache(maxsize=1)
def u8s8_saturates() -> bool:
    """Whether ONNX Runtime's default integer kernels on this CPU saturate (probed once per process)."""
    import onnxruntime as ort

    model, feed, exact = _saturation_probe()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out = session.run(None, feed)[0]
    return not np.allclose(out, exact, rtol=0.01)


def exact_int8(opts):
    """``opts`` (an ``onnxruntime.SessionOptions``) with int8 products summed without saturation here."""
    if u8s8_saturates():
        opts.add_session_config_entry(PRECISION_KEY, "1")
    return opts
