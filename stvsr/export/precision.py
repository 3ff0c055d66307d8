"""FP16 and INT8 versions of an exported graph, with FP32 islands for flow, grid and warp arithmetic.

TensorRT 11 takes precision from the graph itself, so the conversion happens here:

* FP16: weights and activations in FP16, FP32 at the graph's inputs and output. Sampling
  arithmetic stays FP32: every ``GridSample`` and the element-wise chain that builds its grid
  from a flow, the forward-splatting scatter (and its ``Floor``/``Exp`` weights), and the
  ``Resize`` scales. FP16 grids misplace samples by up to half a pixel at 1080p+.
* INT8: explicit quantization, ``QuantizeLinear``/``DequantizeLinear`` pairs (ONNX Runtime's
  static quantizer in QDQ format) calibrated on frames of a real video; the same FP32 islands
  are excluded from quantization. Two targets (``INT8_TARGETS``):

  - ``tensorrt``: symmetric int8 weights and activations (zero points 0), what TensorRT takes.
    Biases stay float (TensorRT's ``IDequantizeLayer`` takes int8/fp8/int4/fp4, not ONNX Runtime's
    int32 biases), and ``ConvTranspose`` weights are quantized per tensor (TensorRT has no
    per-output-channel quantization for deconvolution, the axis ONNX Runtime writes).
  - ``cpu``: uint8 activations with zero points (asymmetric), symmetric int8 weights per channel.
    ONNX Runtime's CPU provider fuses a Q/DQ Conv into one integer kernel only for uint8
    activations in this form; with int8 activations it keeps every Conv whose input also feeds
    another node in FP32 (on zsm, 165 of 568 Convs).

Graphs with a ``Loop`` (TMNet's ConvLSTM): FP16 converts its body too (loop-carried values keep one
precision across iterations); INT8 leaves the body in float, because ONNX Runtime's calibrator sees
only top-level tensors.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stvsr.onnx_subgraphs import (all_graphs, all_initializers, all_nodes, all_value_infos, node_subgraphs,
                                  rename_inputs, uses)

# Ops whose every float input and output stays FP32.
FP32_OPS = {"GridSample", "ScatterElements", "ScatterND", "Floor", "Ceil", "Exp", "Range"}
# Element-wise/shape ops that may belong to a grid's arithmetic chain.
CHAIN_OPS = {"Add", "Sub", "Mul", "Div", "Neg", "Concat", "Unsqueeze", "Squeeze", "Transpose", "Reshape",
             "Slice", "Gather", "Split", "Expand", "Cast", "Identity", "Clip", "Min", "Max", "Where",
             "Constant", "Flatten", "Tile", "Shape", "ConstantOfShape", "Floor", "Greater", "Less", "And"}
# (op, input index) slots whose type ONNX fixes to float32.
FP32_SLOTS = {("Resize", 1), ("Resize", 2)}
FLOAT_TYPES = {TensorProto.FLOAT}


def fp32_island(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes kept in FP32: sampling ops and the chains that compute their coordinates
    (in every graph of the model, loop bodies included)."""
    nodes = list(all_nodes(model.graph))
    producer = {out: n for n in nodes for out in n.output}
    island = {n.name for n in nodes if n.op_type in FP32_OPS}
    # Walk back from every GridSample grid and every scatter index/update through element-wise ops.
    stack = [n.input[1] for n in nodes if n.op_type == "GridSample"]
    stack += [i for n in nodes if n.op_type in ("ScatterElements", "ScatterND") for i in n.input[1:]]
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is None or node.op_type not in CHAIN_OPS | FP32_OPS:
            continue
        island.add(node.name)
        stack.extend(node.input)
    return island


def _name_nodes(model: onnx.ModelProto) -> None:
    for depth, graph in enumerate(all_graphs(model.graph)):
        for i, node in enumerate(graph.node):
            if not node.name:
                node.name = f"{node.op_type}_{i}" if depth == 0 else f"g{depth}_{node.op_type}_{i}"


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    inferred = onnx.shape_inference.infer_shapes(model)
    floats = {v.name for v in all_value_infos(inferred.graph) if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    floats |= {t.name for t in all_initializers(model.graph).values() if t.data_type == TensorProto.FLOAT}
    for node in all_nodes(model.graph):
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    floats.update(node.output)
    return floats


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 copy of ``model`` with FP32 I/O and FP32 islands (see the module docstring)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    _name_nodes(model)
    graph = model.graph
    floats = _float_tensors(model)
    island = fp32_island(model)
    inits = all_initializers(graph)
    consumers = uses(graph)

    def wants_fp32(node: onnx.NodeProto, idx: int) -> bool:
        return node.name in island or (node.op_type, idx) in FP32_SLOTS

    # Precision of every float tensor after conversion: "32" or "16".
    precision: dict[str, str] = {i.name: "32" for i in graph.input}
    const_nodes = {n.output[0]: n for n in all_nodes(graph) if n.op_type == "Constant"}
    for name in list(inits) + list(const_nodes):
        if name not in floats:
            continue
        used_by = consumers.get(name, [])
        precision[name] = "32" if used_by and all(wants_fp32(n, i) for n, i in used_by) else "16"
        if precision[name] == "16":
            if name in inits:
                arr = numpy_helper.to_array(inits[name]).astype(np.float16)
                inits[name].CopyFrom(numpy_helper.from_array(arr, name))
            else:
                attr = next(a for a in const_nodes[name].attribute if a.name == "value")
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
    casts: dict[tuple[str, str], str] = {}
    # Graphs being converted, outermost first: (names each defines, its new node list). A cast goes into the
    # graph that defines its source, so a loop body reads a converted outer tensor without casting it anew
    # in every iteration.
    scopes: list[tuple[set[str], list[onnx.NodeProto]]] = []

    def cast(name: str, to: str) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}__fp{to}"
            home = next((nodes for defined, nodes in reversed(scopes) if name in defined), scopes[0][1])
            home.append(helper.make_node("Cast", [name], [out], name=f"cast_{out}",
                                         to=TensorProto.FLOAT if to == "32" else TensorProto.FLOAT16))
            casts[key] = out
            precision[out] = to
        return casts[key]

    def set_type(value: onnx.ValueInfoProto, prec: str) -> None:
        if value.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16):
            value.type.tensor_type.elem_type = TensorProto.FLOAT if prec == "32" else TensorProto.FLOAT16

    def convert_loop(node: onnx.NodeProto) -> None:
        """Convert a Loop's body; its carried values keep one precision (the one the Loop's input got)."""
        body = node_subgraphs(node)[0]
        carried = len(node.input) - 2
        for k in range(carried):
            inner = body.input[2 + k].name
            if inner in floats and node.input[2 + k] in precision:
                precision[inner] = precision[node.input[2 + k]]
                set_type(body.input[2 + k], precision[inner])
        convert(body)
        for k, out in enumerate(body.output[1:]):
            if out.name not in floats or out.name not in precision:
                continue
            want = precision[body.input[2 + k].name] if k < carried else precision[out.name]
            if precision[out.name] != want:
                scopes.append(({o for n in body.node for o in n.output}, list(body.node)))
                out.name = cast(out.name, want)
                nodes = scopes.pop()[1]
                del body.node[:]
                body.node.extend(nodes)
            set_type(out, want)
            precision[out.name] = want
            if k < len(node.output):
                precision[node.output[k]] = want

    def carried_needs(node: onnx.NodeProto) -> dict[int, str]:
        """Loop input slot -> the precision its carried value keeps: FP32 where the body uses it only in FP32."""
        body = node_subgraphs(node)[0]
        inner_uses = uses(body)
        needs = {}
        for k in range(len(node.input) - 2):
            used_by = inner_uses.get(body.input[2 + k].name, [])
            needs[2 + k] = "32" if used_by and all(wants_fp32(n, i) for n, i in used_by) else "16"
        return needs

    def convert(g: onnx.GraphProto) -> None:
        defined = {i.name for i in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output}
        new_nodes: list[onnx.NodeProto] = []
        scopes.append((defined, new_nodes))
        for node in list(g.node):
            if node.op_type == "Constant" and node.output[0] in precision:
                new_nodes.append(node)
                continue
            subgraphs = node_subgraphs(node)
            if subgraphs and node.op_type != "Loop":
                raise ValueError(f"FP16 conversion handles Loop bodies, not {node.op_type} ({node.name!r})")
            want = "32" if node.name in island else "16"
            needs = carried_needs(node) if subgraphs else {}
            for idx, name in enumerate(node.input):
                if name in floats and name in precision:
                    need = needs.get(idx) or ("32" if wants_fp32(node, idx) else want)
                    if precision[name] != need:
                        node.input[idx] = cast(name, need)
            if node.op_type == "Cast" and want == "16":
                for a in node.attribute:
                    if a.name == "to" and a.i == TensorProto.FLOAT:
                        a.i = TensorProto.FLOAT16
            if node.op_type == "ConstantOfShape" and want == "16":
                for a in node.attribute:
                    if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                        a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
            if subgraphs:
                convert_loop(node)
            new_nodes.append(node)
            if not subgraphs:
                for out in node.output:
                    if out in floats:
                        precision[out] = want
        scopes.pop()
        del g.node[:]
        g.node.extend(new_nodes)

    convert(graph)
    new_nodes = list(graph.node)
    for out in graph.output:
        if precision.get(out.name) == "16":
            inner = f"{out.name}__fp16"
            for node in all_nodes(graph):
                node.output[:] = [inner if o == out.name else o for o in node.output]
                node.input[:] = [inner if i == out.name else i for i in node.input]
            new_nodes.append(helper.make_node("Cast", [inner], [out.name], name="cast_output_fp32",
                                              to=TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(new_nodes)
    for g in all_graphs(graph):
        del g.value_info[:]
    return model


class _FrameReader:
    """ONNX Runtime CalibrationDataReader over prepared input dictionaries."""

    def __init__(self, batches: Iterable[dict[str, np.ndarray]]):
        self._it: Iterator = iter(list(batches))

    def get_next(self):
        return next(self._it, None)


INT8_TARGETS = ("cpu", "tensorrt")


def tensorrt_refusal(meta) -> str | None:
    """Why TensorRT must not build a graph with metadata ``meta``, or None."""
    if meta.precision == "int8" and meta.int8_target == "cpu":
        return ("an INT8 graph exported for the CPU (uint8 activations for ONNX Runtime); TensorRT needs "
                "symmetric int8: export it with --int8 --target tensorrt")
    return None


def tensorrt_quant_options(model: onnx.ModelProto, exclude: Iterable[str] = ()) -> dict:
    """ONNX Runtime ``quantize_static`` extra options that keep a QDQ graph parseable by TensorRT.

    * ``QuantizeBias: False``: ONNX Runtime otherwise stores each Conv/ConvTranspose bias as int32
      behind a ``DequantizeLinear``; TensorRT's ``IDequantizeLayer`` takes int8, fp8, int4 and fp4
      only (TensorRT 11.4 docstring; onnx-tensorrt's operator list: DequantizeLinear INT8/FP8/FP4/INT4;
      onnx/onnx-tensorrt#850). Float biases are what TensorRT fuses into its INT8 convolutions.
    * ``ConvTranspose`` weights per tensor: ONNX Runtime quantizes them per channel along axis 1 (the
      output channels, microsoft/onnxruntime#19996), which TensorRT does not support: "We don't support
      per-output-channel quant for ConvTranspose" (a TensorRT maintainer, NVIDIA/TensorRT#2380; its
      deconvolution kernels assume per-input-channel scales, NVIDIA/TensorRT#1694, and such graphs failed
      to build, onnx/onnx-tensorrt#751). Per-tensor scales are supported by every TensorRT layer.
    """
    skip = set(exclude)
    inits = {t.name for t in model.graph.initializer}
    deconv_weights = sorted({n.input[1] for n in model.graph.node
                             if n.op_type == "ConvTranspose" and n.name not in skip and len(n.input) > 1
                             and n.input[1] in inits})
    return {"QuantizeBias": False,
            "TensorQuantOverrides": {w: [{"symmetric": True}] for w in deconv_weights}}


def fold_weight_identities(model: onnx.ModelProto) -> int:
    """Feed every consumer of ``Identity(initializer)`` the initializer itself and drop the Identity.

    torch's exporter routes a weight used by several modules through ``Identity`` nodes (STARnet
    shares 22 this way); the quantizer then sees an activation, not a weight, and gives it one
    per-tensor scale. Folded, each such weight is quantized per output channel like any other.
    Consumers in loop bodies are rewired too. Returns the number of nodes removed (graph outputs are
    left alone)."""
    inits = {t.name for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    alias = {n.output[0]: n.input[0] for n in model.graph.node
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs}
    if not alias:
        return 0
    keep = [n for n in model.graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    rename_inputs(model.graph, alias)
    return len(alias)


def to_int8(model: onnx.ModelProto, calibration: Iterable[dict[str, np.ndarray]],
            target: str = "tensorrt") -> onnx.ModelProto:
    """Explicitly quantized copy for ``target`` (see the module docstring), FP32 islands excluded."""
    if target not in INT8_TARGETS:
        raise ValueError(f"INT8 target must be one of {INT8_TARGETS}, not {target!r}")
    cpu = target == "cpu"
    import logging
    import os
    import tempfile

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.ModelProto.FromString(model.SerializeToString())
    fold_weight_identities(model)  # shared weights are weights, quantized per channel
    _name_nodes(model)
    exclude = sorted(fp32_island(model))
    extra = {"ActivationSymmetric": not cpu, "WeightSymmetric": True}
    if not cpu:
        extra.update(tensorrt_quant_options(model, exclude))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs pre-processing advice on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
            onnx.save_model(model, src)
            quantize_static(
                src, dst, _FrameReader(calibration), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8 if cpu else QuantType.QInt8, weight_type=QuantType.QInt8,
                per_channel=True, nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.MinMax,
                op_types_to_quantize=["Conv", "ConvTranspose", "MatMul", "Gemm"],
                extra_options=extra,
            )
            return onnx.load(dst)
    finally:
        root.setLevel(level)
