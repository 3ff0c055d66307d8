"""The static TensorRT compatibility check (``stvsr.engines.trt_compat``), without TensorRT.

zsm's graphs in FP32, FP16 and INT8 (``--target tensorrt``), with plugins none, native and stvsr, pass;
hand-made graphs TensorRT refuses (an int32 DequantizeLinear input, an unsupported op, plugin nodes
with a wrong attribute type, namespace or name, per-output-channel ConvTranspose scales) are refused
with one line naming the node, also by the engine builder before it needs TensorRT. The other
networks' graphs are checked where tests/test_export.py builds them.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from stvsr.engines import trt_compat
from stvsr.engines.trt_compat import CompatError, check_graph
from stvsr.plugins import onnx_nodes


def _model(nodes, inits=(), inputs=(("x", TensorProto.FLOAT, [1, 4, 8, 8]),),
           outputs=(("y", TensorProto.FLOAT, None),), opsets=(("", 19),)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 10
    return model


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _refused(model, node: str, *fragments: str) -> str:
    with pytest.raises(CompatError) as exc:
        check_graph(model)
    msg = str(exc.value)
    assert "\n" not in msg and f"node {node!r}" in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


# ------------------------------------------------------------------ zsm, every precision and plugin flavour

def test_zsm_graphs_pass_in_every_precision_and_plugin_flavour():
    """zsm (tiled graph, random weights) traced at the export size, FP16 and TensorRT INT8 derived from it
    (calibrated on one small window: only the graph's structure matters here). One test, so that pytest-xdist
    builds the graphs once (the INT8 quantization of zsm's 4,456 nodes is most of this file's time)."""
    from stvsr.export.graphs import base_metadata, example_inputs, graph_module
    from stvsr.export.onnx_export import export_graph
    from stvsr.export.precision import to_fp16, to_int8
    from stvsr.plugins.onnx_nodes import apply_flavour, plugin_nodes

    meta = base_metadata("zsm", tiled=True)
    fp32 = export_graph(graph_module("zsm", None, tiled=True), example_inputs(meta, 32, 32), meta, 19)
    calib = [{k: v.numpy() for k, v in example_inputs(meta, 8, 8).items()}]
    graphs = {"fp32": fp32, "fp16": to_fp16(fp32), "int8": to_int8(fp32, calib, "tensorrt")}
    for precision, graph in graphs.items():
        assert apply_flavour(graph, "native")[0] is apply_flavour(graph, "none")[0] is graph   # one graph, checked once
        for flavour in ("none", "stvsr"):
            model, _ = apply_flavour(graph, flavour)
            assert trt_compat.problems(model) == [], (precision, flavour)
            assert bool(plugin_nodes(model)) == (flavour == "stvsr")
    int8 = graphs["int8"]
    assert sum(n.op_type == "DequantizeLinear" for n in int8.graph.node) > 500
    # The CPU target's form (a uint8 zero point: asymmetric activations) is refused at its first quantizer.
    q = next(n for n in int8.graph.node if n.op_type == "QuantizeLinear")
    zp = next(t for t in int8.graph.initializer if t.name == q.input[2])
    zp.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(zp).astype(np.uint8), zp.name))
    _refused(int8, q.name, "is UINT8", "--target tensorrt")


# ------------------------------------------------------------------ hand-made graphs TensorRT refuses

def _conv_with_dq_bias(bias_dtype=None) -> onnx.ModelProto:
    """x -> Conv(DQ(int8 weight), DQ(bias of ``bias_dtype``)): what ONNX Runtime writes with QuantizeBias on
    (``bias_dtype`` None: a float bias, what --target tensorrt writes)."""
    inits = [_init("w_q", np.ones((4, 4, 3, 3), np.int8)), _init("w_s", np.full(4, 0.1, np.float32))]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["w"], name="w_dq", axis=0)]
    if bias_dtype is None:
        inits.append(_init("b", np.ones(4, np.float32)))
    else:
        inits += [_init("b_q", np.ones(4, bias_dtype)), _init("b_s", np.full(4, 0.01, np.float32))]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s"], ["b"], name="bias_dq", axis=0))
    nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1]))
    return _model(nodes, inits)


def test_int32_dequantize_input_is_refused_naming_the_node():
    assert trt_compat.problems(_conv_with_dq_bias()) == []
    _refused(_conv_with_dq_bias(np.int32), "bias_dq", "(DequantizeLinear)", "is INT32", "IDequantizeLayer takes int8")


def test_unsupported_op_is_refused_naming_the_node():
    model = _model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                    helper.make_node("Col2Im", ["r", "s", "k"], ["y"], name="fold")],
                   [_init("s", np.array([8, 8], np.int64)), _init("k", np.array([1, 1], np.int64))])
    _refused(model, "fold", "(Col2Im)", "not supported by TensorRT's ONNX parser", "TensorRT 10.15")
    model = _model([helper.make_node("Mod", ["x", "x"], ["y"], name="mod", fmod=1)],
                   inputs=(("x", TensorProto.UINT8, [4]),))
    _refused(model, "mod", "is UINT8; TensorRT takes Mod in FP32")


def test_per_output_channel_conv_transpose_scales_are_refused():
    def graph(scales):
        inits = [_init("w_q", np.ones((4, 2, 4, 4), np.int8)), _init("w_s", np.full(scales, 0.1, np.float32))]
        axis = 1 if scales == 2 else 0
        nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["w"], name="deconv_w_dq", axis=axis),
                 helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv", strides=[2, 2])]
        return _model(nodes, inits)

    assert trt_compat.problems(graph(1)) == [] and trt_compat.problems(graph(4)) == []   # per tensor, axis 0
    _refused(graph(2), "deconv_w_dq", "axis 1", "NVIDIA/TensorRT#2380")


def test_activation_scales_must_be_constant_and_symmetric():
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")]
    ok = _model(nodes, [_init("s", np.float32(0.1)), _init("zp", np.int8(0))])
    assert trt_compat.problems(ok) == []
    _refused(_model(nodes, [_init("s", np.float32(0.1)), _init("zp", np.int8(3))]), "q", "symmetric")
    dynamic = _model([helper.make_node("ReduceMax", ["x"], ["s"], name="amax", keepdims=0)] + nodes,
                     [_init("zp", np.int8(0))])
    _refused(dynamic, "q", "must be a constant")


def _warp(**override) -> onnx.ModelProto:
    node = onnx_nodes.backward_warp_node("x", "flow", "y", padding_mode="border", name="warp")
    for name, value in override.items():
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(kept + ([helper.make_attribute(name, value)] if value is not None else []))
    return _model([node], inputs=(("x", TensorProto.FLOAT, [1, 4, 8, 8]), ("flow", TensorProto.FLOAT, [1, 2, 8, 8])),
                  outputs=(("y", TensorProto.FLOAT, [1, 4, 8, 8]),), opsets=(("", 19), (onnx_nodes.DOMAIN, 1)))


def test_plugin_nodes_must_match_their_registration():
    assert trt_compat.problems(_warp()) == []
    _refused(_warp(padding_mode=1), "warp", "stvsr::BackwardWarp", "'padding_mode' is INT, the registration declares STRING")
    _refused(_warp(plugin_namespace="trt"), "warp", "plugin_namespace is 'trt'")
    _refused(_warp(padding="border"), "warp", "attribute 'padding' is not declared")
    _refused(_warp(padding_mode=None), "warp", "padding_mode missing")
    _refused(_warp(plugin_version="2"), "warp", "plugin_version must be the string '1'")
    bad = _warp()
    bad.graph.node[0].domain = "trt"
    _refused(bad, "warp", "domain 'stvsr'")
    fp16 = _warp()
    fp16.graph.input[1].type.tensor_type.elem_type = TensorProto.FLOAT16
    _refused(fp16, "warp", "flow input 'flow' is FP16")
    dc = onnx_nodes.deform_conv_node(["x", "w", "off", "b", "m"], "y", kernel_shape=(3, 3), padding=1, name="dcn")
    dc.attribute.append(helper.make_attribute("groups_", 1))
    _refused(_model([dc], opsets=(("", 19), (onnx_nodes.DOMAIN, 1))), "dcn", "'groups_' is not declared")


def test_the_engine_builder_refuses_before_it_needs_tensorrt(tmp_path, monkeypatch):
    """One error line naming the node, on a machine without TensorRT too (the check runs before parsing)."""
    from stvsr.engines.builder import EngineBuildError, build_engine
    from stvsr.engines.cache import BuildSettings
    from stvsr.engines.profiles import parse_profile
    from stvsr.export.graphs import base_metadata
    from stvsr.export.metadata import write_onnx_metadata

    monkeypatch.setitem(sys.modules, "tensorrt", None)      # as here: no TensorRT
    model = _conv_with_dq_bias(np.int32)
    meta = base_metadata("zsm")
    meta.precision, meta.int8_target = "int8", "tensorrt"
    write_onnx_metadata(model, meta)
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    with pytest.raises(EngineBuildError) as exc:
        build_engine(str(path), parse_profile("64x64", 4, 4), BuildSettings("int8", "none"), tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and "node 'bias_dq' (DequantizeLinear)" in msg, msg
    assert not list(tmp_path.glob("*.plan"))


def test_operator_list_names_its_source():
    data = trt_compat.support()
    src = data["source"]
    assert src["repository"].endswith("onnx/onnx-tensorrt") and src["tensorrt"] == "10.15"
    ops = data["operators"]
    assert ops["DequantizeLinear"] == ["INT8", "FP8", "FP4", "INT4"] and ops["DeformConv"] == ["FP32", "FP16"]
    assert "QLinearConv" in data["unsupported"] and "QLinearConv" not in ops
    # fmu clamps int64 indices: the table lists float Clip only, the parser's Clip importer also takes integers.
    assert "96e781103cfc4adf4a6bb557e94bac8e693f6f4c" in data["parser_source_additions"]["source"]
    assert ops["Clip"] == ["FP32", "FP16", "BF16", "INT32", "INT64"]


def test_declared_plugin_attributes_match_the_tensorrt_registration():
    """The declarations the check uses are those stvsr.plugins.trt registers through TensorRT's own
    ``tensorrt.plugin`` (real sources, compiled module replaced by a test double)."""
    pytest.importorskip("triton", reason="stvsr.plugins.trt imports the kernels' configurations")
    from tests.tensorrt_native_double import plugin_sources_dir, real_plugin_package

    if plugin_sources_dir() is None:
        pytest.skip("TensorRT's Python plugin sources (tensorrt-cu13-bindings) are not installed")
    import importlib

    with real_plugin_package() as (native, trtp), pytest.MonkeyPatch.context() as mp:
        mp.delitem(sys.modules, "stvsr.plugins.trt", raising=False)
        importlib.import_module("stvsr.plugins.trt")
        registry = sys.modules["tensorrt.plugin._lib"].QDP_REGISTRY
        for op in onnx_nodes.PLUGIN_OPS:
            desc = registry[f"{onnx_nodes.NAMESPACE}::{op}"]
            assert desc.input_tensor_names == list(onnx_nodes.declared_inputs(op))
            kinds = {int: onnx.AttributeProto.INT, str: onnx.AttributeProto.STRING}
            declared = {k: v for k, v in onnx_nodes.declared_attributes(op).items() if k not in ("aot", "plugin_namespace")}
            assert {k: kinds[t] for k, t in desc.input_attrs.items()} == declared
            creator = native.get_plugin_registry().get_creator(op, onnx_nodes.PLUGIN_VERSION, onnx_nodes.NAMESPACE)
            assert creator is not None
        sys.modules.pop("stvsr.plugins.trt", None)


# ------------------------------------------------------------------ issue 21, item 18: GridSample at opset 20

def _torch_grid_sample(opset: int, mode: str) -> onnx.ModelProto:
    """torch's own exporter on F.grid_sample: at opset 20 it writes the new names ('linear', 'cubic')."""
    import io

    import torch

    class Warp(torch.nn.Module):
        def forward(self, x, grid):
            return torch.nn.functional.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=True)

    raw = io.BytesIO()
    torch.onnx.export(Warp(), (torch.rand(1, 2, 8, 8), torch.rand(1, 8, 8, 2) * 2 - 1), raw, dynamo=False,
                      opset_version=opset, input_names=["x", "grid"], output_names=["y"])
    return onnx.load_from_string(raw.getvalue())


def test_opset_20_grid_sample_modes_tensorrt_reads_as_nearest_are_refused(tmp_path, monkeypatch):
    """onnx-tensorrt's GridSample importer maps only 'nearest', 'bilinear' and 'bicubic' and builds any other
    mode as nearest: torch's opset-20 'linear' (and 'cubic') would give a silently wrong engine."""
    from stvsr.engines.builder import EngineBuildError, build_engine
    from stvsr.engines.cache import BuildSettings
    from stvsr.engines.profiles import parse_profile
    from stvsr.export.graphs import base_metadata
    from stvsr.export.metadata import write_onnx_metadata

    for mode in ("bilinear", "bicubic", "nearest"):
        assert trt_compat.problems(_torch_grid_sample(19, mode)) == [], mode
    assert trt_compat.problems(_torch_grid_sample(20, "nearest")) == []
    for mode, written in (("bilinear", "linear"), ("bicubic", "cubic")):
        model = _torch_grid_sample(20, mode)
        node = next(n for n in model.graph.node if n.op_type == "GridSample")
        msg = _refused(model, node.name, f"mode '{written}'", "built as nearest", "export with --opset 19")
    # The engine builder refuses it before it needs TensorRT, in one line.
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    write_onnx_metadata(model, base_metadata("fmu"))
    path = tmp_path / "opset20.onnx"
    onnx.save(model, path)
    with pytest.raises(EngineBuildError) as exc:
        build_engine(str(path), parse_profile("64x64", 4, 4), BuildSettings("fp32", "native"), tmp_path)
    assert "\n" not in str(exc.value) and msg in str(exc.value) and not list(tmp_path.glob("*.plan"))


@pytest.mark.skipif(not os.environ.get("STVSR_SLOW_TESTS"), reason="slow test (traces fmu, ~30 s of CPU): set "
                    "STVSR_SLOW_TESTS=1; the check itself is tested above")
def test_export_for_tensorrt_at_opset_20_is_refused_and_writes_nothing(tmp_path):
    """`stvsr-export --opset 20` for TensorRT (--plugins native) stops with one line before writing: fmu's
    warps would be built as nearest. (The portable graph, --plugins none, stays allowed: ONNX Runtime reads it.)"""
    import subprocess

    out = tmp_path / "fmu-native.onnx"
    res = subprocess.run([sys.executable, "-m", "stvsr.export.cli", "--model", "fmu", "--random-weights", "--opset",
                          "20", "--plugins", "native", "--no-verify", "-q", "-o", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 1, res.stderr
    line = res.stderr.strip()
    assert "\n" not in line and line.startswith("stvsr-export: error: TensorRT cannot take node "), line
    assert "(GridSample): mode 'linear'" in line and "export with --opset 19" in line, line
    assert list(tmp_path.iterdir()) == []
