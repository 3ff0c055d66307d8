"""The INT8 saturation probe the runtime and export verification share (``stvsr.ort_session``) needs no onnx:
its graph is a committed file, which must be exactly the graph the onnx helpers build."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from stvsr.ort_session import PROBE_CHANNELS, saturation_probe, u8s8_saturates

ort = pytest.importorskip("onnxruntime")


def built_probe(channels: int = PROBE_CHANNELS) -> bytes:
    """QuantizeLinear/DequantizeLinear of ones -> 1x1 Conv with int8 weights 127 -> QDQ: every product pair
    is 127 * 127 * 2 in int8 (255 * 127 * 2 once shifted to uint8), so each output is ``channels`` exactly."""
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
    return model.SerializeToString()


def test_committed_probe_is_the_graph_the_onnx_helpers_build():
    graph, feed, exact = saturation_probe()
    assert graph == built_probe()
    assert feed["x"].shape == (1, PROBE_CHANNELS, 2, 2) and exact == PROBE_CHANNELS


def test_probe_answers_on_this_cpu():
    """The probe runs without onnx and answers (True only on x86 CPUs without VNNI)."""
    assert u8s8_saturates() in (True, False)
