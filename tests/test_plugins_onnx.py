"""Rewriting a portable ONNX graph into the stvsr plugin graph (export flavour ``--plugins stvsr``)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from stvsr.plugins import onnx_nodes

ort = pytest.importorskip("onnxruntime")


def _portable(with_bias_and_mask: bool, grid_mode: str = "linear") -> onnx.ModelProto:
    """x -> DeformConv(3x3, pad 1, dg 2) -> GridSample(grid) ; all FP32, dynamic spatial size."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((5, 4, 3, 3)).astype(np.float32) * 0.2, "w")
    inits = [w]
    ins = ["x", "w", "offset"]
    if with_bias_and_mask:
        inits.append(numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "b"))
        ins += ["b", "mask"]
    nodes = [
        helper.make_node("DeformConv", ins, ["y"], name="dcn", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[1, 1], dilations=[1, 1], group=1, offset_group=2),
        helper.make_node("GridSample", ["y", "grid"], ["z"], name="warp", mode=grid_mode,
                         padding_mode="border", align_corners=1),
    ]
    f = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("x", f, [1, 4, "h", "w"]),
              helper.make_tensor_value_info("offset", f, [1, 36, "h", "w"]),
              helper.make_tensor_value_info("grid", f, [1, "gh", "gw", 2])]
    if with_bias_and_mask:
        inputs.insert(2, helper.make_tensor_value_info("mask", f, [1, 18, "h", "w"]))
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("z", f, [1, 5, "gh", "gw"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    return model


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def test_rewrite_replaces_nodes_one_for_one():
    model, counts = onnx_nodes.rewrite_to_plugins(_portable(True))
    assert counts == {"DeformConv2d": 1, "GridSampleBilinear": 1}
    onnx.checker.check_model(model)
    nodes = onnx_nodes.plugin_nodes(model)
    assert [n.op_type for n in model.graph.node] == ["DeformConv2d", "GridSampleBilinear"]
    dcn, warp = nodes
    assert list(dcn.input) == ["x", "w", "offset", "b", "mask"]
    a = _attrs(dcn)
    assert a["plugin_namespace"] == b"stvsr" and a["aot"] == 1
    assert (a["kernel_h"], a["kernel_w"], a["pad_h"], a["pad_w"], a["deform_groups"], a["groups"]) == (3, 3, 1, 1, 2, 1)
    b = _attrs(warp)
    assert b["padding_mode"] == b"border" and b["align_corners"] == 1 and list(warp.input) == ["y", "grid"]
    assert any(o.domain == "stvsr" for o in model.opset_import)


def test_rewrite_keeps_unsupported_grid_sample_and_jit_flag():
    model, counts = onnx_nodes.rewrite_to_plugins(_portable(True, grid_mode="nearest"), aot=False)
    assert counts["GridSampleBilinear"] == 0
    assert [n.op_type for n in model.graph.node] == ["DeformConv2d", "GridSample"]
    assert _attrs(model.graph.node[0])["aot"] == 0


def test_rewrite_fills_missing_bias_and_mask():
    """Missing B becomes a zero initializer, missing mask a ones tensor of the offset's runtime shape."""
    model, _ = onnx_nodes.rewrite_to_plugins(_portable(False))
    onnx.checker.check_model(model)
    dcn = onnx_nodes.plugin_nodes(model)[0]
    bias, mask = dcn.input[3], dcn.input[4]
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert np.array_equal(init[bias], np.zeros(5, np.float32))
    # Evaluate the mask-building subgraph with ONNX Runtime: ones of shape [1, 2*9, h, w].
    sub = onnx.ModelProto()
    sub.CopyFrom(model)
    del sub.graph.node[:]
    sub.graph.node.extend([n for n in model.graph.node if n.domain != "stvsr"])
    del sub.graph.input[:]
    sub.graph.input.extend([i for i in model.graph.input if i.name == "offset"])
    del sub.graph.output[:]
    sub.graph.output.extend([helper.make_tensor_value_info(mask, TensorProto.FLOAT, None)])
    sess = ort.InferenceSession(sub.SerializeToString(), providers=["CPUExecutionProvider"])
    (m,) = sess.run(None, {"offset": np.zeros((1, 36, 6, 7), np.float32)})
    assert m.shape == (1, 18, 6, 7) and np.all(m == 1)


def test_plugin_attributes_reproduce_onnxruntime():
    """The kernels driven by the plugin nodes' attributes match ORT on the portable graph."""
    from stvsr.plugins import launch
    from stvsr.plugins.interpret import interpreted_kernels, interpreter_unavailable

    if (why := interpreter_unavailable()) is not None:
        pytest.skip(why)
    portable = _portable(True)
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((1, 4, 6, 7)).astype(np.float32),
             "offset": (rng.standard_normal((1, 36, 6, 7)) * 2).astype(np.float32),
             "mask": rng.random((1, 18, 6, 7)).astype(np.float32),
             "grid": (rng.random((1, 5, 8, 2)) * 2.4 - 1.2).astype(np.float32)}
    sess = ort.InferenceSession(portable.SerializeToString(), providers=["CPUExecutionProvider"])
    (ref,) = sess.run(None, feeds)

    model, _ = onnx_nodes.rewrite_to_plugins(portable)
    dcn, warp = onnx_nodes.plugin_nodes(model)
    a, b = _attrs(dcn), _attrs(warp)
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    k = interpreted_kernels()
    y = launch.deform_conv2d(t["x"], t["offset"], t["mask"], init["w"], init["b"], (a["stride_h"], a["stride_w"]),
                             (a["pad_h"], a["pad_w"]), (a["dilation_h"], a["dilation_w"]), a["groups"], kernels=k)
    z = launch.grid_sample(y, t["grid"], b["padding_mode"].decode(), bool(b["align_corners"]), kernels=k)
    assert np.abs(z.numpy() - ref).max() <= 1e-4 * np.abs(ref).max()


def test_node_builders_validate():
    with pytest.raises(ValueError, match="exactly"):
        onnx_nodes.deform_conv_node(["x", "w", "o"], "y", kernel_shape=(3, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        onnx_nodes.backward_warp_node("x", "f", "y", padding_mode="reflection")
    n = onnx_nodes.backward_warp_node("x", "f", "y")
    assert n.op_type == "BackwardWarp" and n.domain == "stvsr"


def test_rewrite_widens_fp16_grid():
    m = _portable(True)
    for vi in m.graph.input:
        if vi.name == "grid":
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    model, _ = onnx_nodes.rewrite_to_plugins(m)
    cast = next(n for n in model.graph.node if n.op_type == "Cast")
    warp = onnx_nodes.plugin_nodes(model)[1]
    assert list(cast.input) == ["grid"] and warp.input[1] == cast.output[0]


def test_torch_export_with_plugin_translation():
    """torch.onnx.export maps the stvsr::deform_conv2d custom op straight to the plugin node."""
    from stvsr.ops import deform_conv2d

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(6, 4, 3, 3))

        def forward(self, x, offset, mask):
            return deform_conv2d(x, offset, mask, self.weight, None, 1, (1, 1), 1, 1)

    onnx_nodes.register_onnx_schemas()
    args = (torch.randn(1, 4, 5, 6), torch.randn(1, 2 * 18, 5, 6), torch.rand(1, 2 * 9, 5, 6))
    prog = torch.onnx.export(Layer().eval(), args, dynamo=True, verbose=False,
                             custom_translation_table={torch.ops.stvsr.deform_conv2d.default:
                                                       onnx_nodes.deform_conv2d_translation})
    model = onnx_nodes.sort_plugin_attributes(prog.model_proto)
    (node,) = onnx_nodes.plugin_nodes(model)
    a = _attrs(node)
    names = [x.name for x in node.attribute]
    assert names == sorted(names)
    assert a["deform_groups"] == 2 and a["kernel_h"] == 3 and a["pad_w"] == 1 and a["aot"] == 1
    assert a["plugin_namespace"] == b"stvsr" and len(node.input) == 5


@pytest.mark.parametrize("with_bias_and_mask", [True, False])
def test_plugin_graph_evaluates_like_portable_graph(with_bias_and_mask):
    """The whole rewritten graph (filled-in bias/mask included) computes what ORT computes."""
    from stvsr.plugins import reference
    from stvsr.plugins.interpret import interpreted_kernels, interpreter_unavailable

    if (why := interpreter_unavailable()) is not None:
        pytest.skip(why)
    portable = _portable(with_bias_and_mask)
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((1, 4, 5, 6)).astype(np.float32),
             "offset": (rng.standard_normal((1, 36, 5, 6)) * 2).astype(np.float32),
             "grid": (rng.random((1, 3, 7, 2)) * 2.4 - 1.2).astype(np.float32)}
    if with_bias_and_mask:
        feeds["mask"] = rng.random((1, 18, 5, 6)).astype(np.float32)
    (ref,) = ort.InferenceSession(portable.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    plugin, _ = onnx_nodes.rewrite_to_plugins(portable)
    for kernels in (None, interpreted_kernels()):
        (out,) = reference.evaluator(plugin, kernels=kernels).run(None, feeds)
        assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()


def test_apply_flavour():
    portable = _portable(True)
    assert onnx_nodes.apply_flavour(portable, "native") == (portable, {})
    model, counts = onnx_nodes.apply_flavour(portable, "stvsr")
    assert counts == {"DeformConv2d": 1, "GridSampleBilinear": 1}
    with pytest.raises(ValueError, match="plugins must be one of"):
        onnx_nodes.apply_flavour(portable, "mmdeploy")
