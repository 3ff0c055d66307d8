"""Graph passes on a graph with a ``Loop`` (a small deformable ConvLSTM exported as TMNet's is): the loop
runs any number of steps, and FP16, INT8, the plugin rewrite and the static TensorRT check see its body."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from stvsr.engines.trt_compat import problems
from stvsr.export.onnx_export import register_symbolics
from stvsr.export.precision import to_fp16, to_int8
from stvsr.export.recurrence import LoopedConvLSTM
from stvsr.export.verify import compare, ort_session
from stvsr.models.zsm import DeformableConvLSTM
from stvsr.onnx_subgraphs import all_nodes
from stvsr.plugins.onnx_nodes import apply_flavour, plugin_nodes

C = 16


class _Net(torch.nn.Module):
    def __init__(self, lstm: torch.nn.Module):
        super().__init__()
        self.lstm, self.head = lstm, torch.nn.Conv2d(C, C, 3, 1, 1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        b, n, c, h, w = seq.shape
        return self.head(self.lstm(seq).reshape(b * n, c, h, w)).view(b, n, c, h, w)


@pytest.fixture(scope="module")
def looped(tmp_path_factory):
    """(eager module, its ONNX graph with the ConvLSTM as one Loop). The deformable convolutions keep their
    zero initial weights, which the exporter shares through Identity nodes read inside the loop body."""
    torch.manual_seed(0)
    lstm = DeformableConvLSTM(C, 8).eval()
    eager = _Net(lstm).eval()
    looped_net = _Net(LoopedConvLSTM(lstm, C, C)).eval()
    looped_net.head = eager.head
    with torch.no_grad():
        traced = torch.jit.trace(looped_net, (torch.rand(1, 3, C, 8, 8),), check_trace=False)
    register_symbolics(19)
    path = tmp_path_factory.mktemp("loop") / "loop.onnx"
    torch.onnx.export(traced, (torch.rand(1, 3, C, 8, 8),), str(path), dynamo=False, opset_version=19,
                      input_names=["seq"], output_names=["out"],
                      dynamic_axes={"seq": {1: "n", 3: "h", 4: "w"}, "out": {1: "n", 3: "h", 4: "w"}})
    proto = onnx.load(str(path))
    proto.ir_version = min(proto.ir_version, 10)
    return eager, proto


def _run(proto, seq):
    return ort_session(proto).run(None, {"seq": seq})[0]


def test_loop_runs_any_length_and_precisions_convert_its_body(looped):
    eager, proto = looped
    (loop,) = [n for n in proto.graph.node if n.op_type == "Loop"]
    body = loop.attribute[0].g
    assert any(n.op_type == "DeformConv" for n in body.node)
    seqs = [np.random.default_rng(k).random((1, n, C, 12, 8), dtype=np.float32) for k, n in enumerate((2, 5))]
    for seq in seqs:
        with torch.no_grad():
            ref = eager(torch.from_numpy(seq)).numpy()
        assert compare(_run(proto, seq), ref).rel_l2 < 1e-5
    fp16 = to_fp16(proto)
    onnx.checker.check_model(fp16, full_check=True)
    body16 = [n for n in fp16.graph.node if n.op_type == "Loop"][0].attribute[0].g
    assert any(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for i in body16.input)
    assert compare(_run(fp16, seqs[1]), _run(proto, seqs[1])).rel_l2 < 2e-2
    for target in ("cpu", "tensorrt"):  # the body stays float; weights shared through Identity still resolve
        int8 = to_int8(proto, [{"seq": seqs[0]}], target)
        assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
        assert np.isfinite(_run(int8, seqs[1])).all()


def test_plugin_rewrite_and_tensorrt_check_see_the_loop_body(looped):
    _, proto = looped
    plugin, counts = apply_flavour(proto, "stvsr")
    body_plugins = [n for n in [x for x in plugin.graph.node if x.op_type == "Loop"][0].attribute[0].g.node
                    if n.domain == "stvsr"]
    assert counts["DeformConv2d"] == len(plugin_nodes(plugin)) == len(body_plugins) > 0
    assert not any(n.op_type == "DeformConv" for n in all_nodes(plugin.graph))
    onnx.checker.check_model(plugin)
    assert problems(proto) == [] and problems(plugin) == [] and problems(to_fp16(proto)) == []
    broken = onnx.ModelProto.FromString(plugin.SerializeToString())
    body = [n for n in broken.graph.node if n.op_type == "Loop"][0].attribute[0].g
    node = next(n for n in body.node if n.domain == "stvsr")
    del node.attribute[:]
    found = problems(broken)
    assert found and found[0].node == node.name and "missing" in found[0].reason
