"""Static check that TensorRT's ONNX parser can take a graph built for it (no TensorRT or GPU needed).

Every node is checked against onnx-tensorrt's operator support list (``data/onnx_tensorrt_ops.json``,
which names its source and TensorRT version): the op must be supported and its data inputs must have
a supported type. On top of that:

* Q/DQ (explicit INT8): ``DequantizeLinear`` inputs are int8 (an int32 bias behind a DQ is refused by
  TensorRT's ``IDequantizeLayer``); scales are positive float constants; zero points, when present,
  are int8 constants of zeros (TensorRT quantizes symmetrically); per-channel scales only on constant
  convolution weights, along axis 0 (Conv: output channels; ConvTranspose: input channels, the only
  deconvolution axis TensorRT supports, NVIDIA/TensorRT#2380); activations are quantized per tensor.
* stvsr plugin nodes: op, domain, ``plugin_namespace``, plugin version, inputs and attribute names and
  types exactly as the registration declares them (:mod:`stvsr.plugins.onnx_nodes`, which tests check
  against :mod:`stvsr.plugins.trt` through TensorRT's own ``tensorrt.plugin``).
* A few documented restrictions our graphs could hit (DeformConv pads, Resize modes, ScatterND reduction), and
  one undocumented: GridSample ``mode="linear"``/``"cubic"`` (opset 20's names) are imported as nearest.

Nodes in loop bodies (TMNet's ConvLSTM is one ``Loop``) are checked like the others.

``check_graph`` raises :class:`CompatError` naming the first offending node in one line; the engine
builder runs it before TensorRT parses anything.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from stvsr.onnx_subgraphs import all_initializers, all_nodes, all_value_infos
from stvsr.plugins import onnx_nodes

DATA_FILE = Path(__file__).parent / "data" / "onnx_tensorrt_ops.json"

TYPE_NAMES = {TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
              TensorProto.DOUBLE: "DOUBLE", TensorProto.INT8: "INT8", TensorProto.UINT8: "UINT8",
              TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.BOOL: "BOOL",
              TensorProto.FLOAT8E4M3FN: "FP8", TensorProto.INT4: "INT4", TensorProto.FLOAT4E2M1: "FP4"}
FLOATS = {"FP32", "FP16", "BF16"}
# Inputs that are indices, shapes, axes or quantization parameters rather than the op's data (the support
# list's types are those of the data); every other input is checked.
NON_DATA_INPUTS = {
    "Reshape": {1}, "Slice": {1, 2, 3, 4}, "Gather": {1}, "GatherElements": {1}, "GatherND": {1},
    "Scatter": {1}, "ScatterElements": {1}, "ScatterND": {1}, "Expand": {1}, "Tile": {1}, "Unsqueeze": {1},
    "Squeeze": {1}, "Split": {1}, "Pad": {1, 3}, "Resize": {1, 2, 3}, "Upsample": {1}, "ConstantOfShape": {0},
    "TopK": {1}, "CumSum": {1}, "OneHot": {0, 1}, "Where": {0}, "QuantizeLinear": {1, 2},
    "DequantizeLinear": {1, 2}, "Trilu": {1}, "Dropout": {1, 2}, "Pow": {1}, "ReduceL1": {1}, "ReduceL2": {1},
    "ReduceLogSum": {1}, "ReduceLogSumExp": {1}, "ReduceMax": {1}, "ReduceMean": {1}, "ReduceMin": {1},
    "ReduceProd": {1}, "ReduceSum": {1}, "ReduceSumSquare": {1}, "Range": set(), "Shape": set(), "Size": set(),
}
SUBGRAPH_OPS = {"If", "Loop", "Scan"}
RESIZE_MODES = {"nearest", "linear"}
# GridSample modes onnx-tensorrt's importer maps (nearest, bilinear, bicubic: the opset 16 names); it leaves any
# other name, such as opset 20's "linear" and "cubic" (what torch writes at opset 20), at its default of nearest
# (onnxOpImporters.cpp, GridSample importer, onnx-tensorrt 10.1): a silently wrong engine, so refused here.
GRID_SAMPLE_MODES = {"nearest", "bilinear", "bicubic"}
RESIZE_COORDINATES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}


class CompatError(ValueError):
    """A graph TensorRT would refuse; the message names the node and why, in one line."""


@dataclass(frozen=True)
class Problem:
    node: str
    op: str
    reason: str

    def line(self) -> str:
        return f"node {self.node!r} ({self.op}): {self.reason}"


@functools.lru_cache(maxsize=None)
def support() -> dict:
    """The onnx-tensorrt operator support list (see ``source`` in it), with the types the parser's importers
    accept beyond the table (``parser_source_additions``, also sourced) merged into ``operators``."""
    data = json.loads(DATA_FILE.read_text())
    for op, types in data.get("parser_source_additions", {}).get("operators", {}).items():
        data["operators"][op] = data["operators"][op] + [t for t in types if t not in data["operators"][op]]
    return data


def source_line() -> str:
    src = support()["source"]
    return f"onnx-tensorrt's operator list for TensorRT {src['tensorrt']}"


def _type_name(t: int | None) -> str | None:
    if t is None or t == TensorProto.UNDEFINED:
        return None
    return TYPE_NAMES.get(t, TensorProto.DataType.Name(t))


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class _Graph:
    """Element types and constant values of a model's tensors."""

    def __init__(self, model: onnx.ModelProto):
        self.model, self.graph = model, model.graph
        inits = all_initializers(self.graph)
        self.constants: dict[str, np.ndarray] = {name: numpy_helper.to_array(t) for name, t in inits.items()}
        for node in all_nodes(self.graph):
            if node.op_type == "Constant":
                value = next((a for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.constants[node.output[0]] = numpy_helper.to_array(value.t)
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        for node in all_nodes(self.graph):
            for i, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, i))
        self.types = self._infer_types()

    def _infer_types(self) -> dict[str, int]:
        # Plugin nodes have no ONNX type inference: stand an Identity of their data input in for each (their
        # output has the data input's type) so that types propagate through the rest of the graph.
        proxy = onnx.ModelProto.FromString(self.model.SerializeToString())
        for node in all_nodes(proxy.graph):
            if node.domain == onnx_nodes.DOMAIN and node.input:
                node.CopyFrom(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name))
        try:
            inferred = onnx.shape_inference.infer_shapes(proxy).graph
        except Exception:  # noqa: BLE001 - inference is best effort; untyped tensors are not type-checked
            inferred = proxy.graph
        types = {v.name: v.type.tensor_type.elem_type for v in all_value_infos(inferred)}
        types.update({name: t.data_type for name, t in all_initializers(self.graph).items()})
        for node in all_nodes(self.graph):
            if node.op_type == "Constant":
                value = next((a for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    types[node.output[0]] = value.t.data_type
        return types

    def type_of(self, name: str) -> str | None:
        return _type_name(self.types.get(name))


def _check_io(g: _Graph) -> list[Problem]:
    allowed = set(support()["data_types"])
    out = []
    for kind, values in (("input", g.graph.input), ("output", g.graph.output)):
        for v in values:
            t = _type_name(v.type.tensor_type.elem_type)
            if t is not None and t not in allowed:
                out.append(Problem(v.name, f"graph {kind}", f"type {t} is not an ONNX type TensorRT supports"))
    return out


def _check_opset(model: onnx.ModelProto) -> list[Problem]:
    lo, hi = support()["opset"]["min"], support()["opset"]["max"]
    out = []
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and not lo <= o.version <= hi:
            out.append(Problem("(model)", "opset_import", f"ONNX opset {o.version} is outside {lo}..{hi} "
                               f"({source_line()})"))
        if o.domain == onnx_nodes.DOMAIN and o.version != 1:
            out.append(Problem("(model)", "opset_import", f"domain {o.domain!r} version {o.version}; the stvsr "
                               "plugin nodes are version 1"))
    return out


def _check_types(node: onnx.NodeProto, g: _Graph, types: list[str]) -> Problem | None:
    skip = NON_DATA_INPUTS.get(node.op_type, set())
    io_only = set(support()["io_only_types"])
    for i, name in enumerate(node.input):
        if not name or i in skip:
            continue
        t = g.type_of(name)
        if t is None:
            continue
        if t not in types and not (t in io_only and node.op_type == "Cast"):
            return Problem(node.name, node.op_type, f"input {i} {name!r} is {t}; TensorRT takes {node.op_type} in "
                           f"{', '.join(types)} ({source_line()})")
    return None


def _scale_problem(node: onnx.NodeProto, g: _Graph) -> str | None:
    if len(node.input) < 2 or node.input[1] not in g.constants:
        return "the scale must be a constant (an initializer): TensorRT needs build-time scales"
    scale = g.constants[node.input[1]]
    if _type_name(g.types.get(node.input[1])) not in FLOATS:
        return f"the scale is {g.type_of(node.input[1])}, not a float type"
    if scale.size == 0 or not np.all(scale > 0):
        return "scale coefficients must all be positive"
    if len(node.input) > 2 and node.input[2]:
        zp = node.input[2]
        if zp not in g.constants:
            return "the zero point must be a constant"
        if g.type_of(zp) != "INT8":
            return (f"zero point {zp!r} is {g.type_of(zp)}: TensorRT quantizes to int8 (a uint8 zero point is the "
                    "CPU target's asymmetric form: export with --int8 --target tensorrt)")
        if np.any(g.constants[zp] != 0):
            return "the zero point must be all zeros: TensorRT quantizes symmetrically"
        if g.constants[zp].size != scale.size:
            return "the scale and the zero point must have the same size"
    return None


def _axis_problem(node: onnx.NodeProto, g: _Graph) -> str | None:
    scale = g.constants[node.input[1]]
    if scale.size == 1:
        return None                                  # per tensor: every layer takes it
    data = node.input[0]
    if scale.ndim != 1:
        return f"scale of rank {scale.ndim}: only per-tensor and 1-D per-channel scales are used for INT8"
    if data not in g.constants:
        return "per-channel scales on an activation: TensorRT quantizes activations per tensor"
    rank = g.constants[data].ndim
    axis = int(_attrs(node).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if g.constants[data].shape[axis] != scale.size:
        return f"{scale.size} scales for axis {axis} of size {g.constants[data].shape[axis]}"
    # The weight reaches its layer through this DQ (or a Q then a DQ).
    outs = [node.output[0]]
    if node.op_type == "QuantizeLinear":
        outs = [n.output[0] for n, _ in g.consumers.get(node.output[0], []) if n.op_type == "DequantizeLinear"]
    uses: list[tuple[onnx.NodeProto, int]] = []
    while outs:          # through Identity nodes (the TorchScript exporter writes one per shared weight)
        out = outs.pop()
        for consumer, slot in g.consumers.get(out, []):
            if consumer.op_type == "Identity":
                outs.append(consumer.output[0])
            else:
                uses.append((consumer, slot))
    for consumer, slot in uses:
        if consumer.op_type == "QuantizeLinear" and slot == 0:
            continue    # a constant re-quantized (ONNX Runtime does so for weights shared through an Identity)
        if consumer.op_type not in ("Conv", "ConvTranspose") or slot != 1:
            return (f"per-channel scales feeding {consumer.op_type} {consumer.name!r} input {slot}: only "
                    "convolution weights are quantized per channel")
        if axis != 0:
            what = "output channels" if consumer.op_type == "ConvTranspose" else "a non-output axis"
            return (f"per-channel scales along axis {axis} of {consumer.op_type} {consumer.name!r}'s weights "
                    f"({what}): TensorRT takes axis 0 only (ConvTranspose: no per-output-channel scales, "
                    "NVIDIA/TensorRT#2380); quantize these weights per tensor")
    return None


def _check_qdq(node: onnx.NodeProto, g: _Graph) -> Problem | None:
    if node.op_type == "DequantizeLinear":
        t = g.type_of(node.input[0])
        if t is not None and t != "INT8":
            return Problem(node.name, node.op_type,
                           f"input {node.input[0]!r} is {t}; TensorRT's IDequantizeLayer takes int8 here (an int32 "
                           "Conv bias must stay float: export with --int8 --target tensorrt)")
    why = _scale_problem(node, g) or _axis_problem(node, g)
    return Problem(node.name, node.op_type, why) if why else None


def _check_restrictions(node: onnx.NodeProto) -> Problem | None:
    a = _attrs(node)
    if node.op_type == "DeformConv":
        pads = list(a.get("pads", []))
        if pads and pads[: len(pads) // 2] != pads[len(pads) // 2:]:
            return Problem(node.name, node.op_type, f"pads {pads}: TensorRT needs equal begin and end pads")
    if node.op_type == "Resize":
        if int(a.get("antialias", 0)):
            return Problem(node.name, node.op_type, "antialiasing is not supported by TensorRT")
        mode = _str(a.get("mode", "nearest"))
        coords = _str(a.get("coordinate_transformation_mode", "half_pixel"))
        if mode not in RESIZE_MODES or coords not in RESIZE_COORDINATES:
            return Problem(node.name, node.op_type, f"mode {mode!r} / coordinate_transformation_mode {coords!r} "
                           "is not supported by TensorRT")
    if node.op_type == "GridSample" and _str(a.get("mode", "bilinear")) not in GRID_SAMPLE_MODES:
        mode = _str(a["mode"])
        return Problem(node.name, node.op_type, f"mode {mode!r} (opset 20's name) would be built as nearest: TensorRT's "
                       "ONNX parser knows only 'nearest', 'bilinear' and 'bicubic'; export with --opset 19")
    if node.op_type == "ScatterND" and _str(a.get("reduction", "none")) != "none":
        return Problem(node.name, node.op_type, "a ScatterND reduction is not supported by TensorRT")
    return None


def _check_plugin(node: onnx.NodeProto, g: _Graph) -> Problem | None:
    def bad(reason: str) -> Problem:
        return Problem(node.name, f"{node.domain or 'ai.onnx'}::{node.op_type}", reason)

    if node.op_type not in onnx_nodes.PLUGIN_OPS:
        return bad(f"no stvsr plugin is registered under this name (registered: {', '.join(onnx_nodes.PLUGIN_OPS)})")
    if node.domain != onnx_nodes.DOMAIN:
        return bad(f"plugin nodes live in the ONNX domain {onnx_nodes.DOMAIN!r}, not {node.domain!r}")
    declared = onnx_nodes.declared_attributes(node.op_type)
    optional = {"aot", "plugin_version"}
    given = {a.name: a for a in node.attribute}
    for name, a in given.items():
        if name == "plugin_version":
            if a.type != AttributeProto.STRING or _str(a.s) != onnx_nodes.PLUGIN_VERSION:
                return bad(f"plugin_version must be the string {onnx_nodes.PLUGIN_VERSION!r} (the registered version)")
        elif name not in declared:
            return bad(f"attribute {name!r} is not declared by the registration (TensorRT's parser passes only "
                       f"declared fields: {', '.join(sorted(declared))})")
        elif a.type != declared[name]:
            return bad(f"attribute {name!r} is {AttributeProto.AttributeType.Name(a.type)}, the registration declares "
                       f"{AttributeProto.AttributeType.Name(declared[name])}")
    missing = [n for n in declared if n not in given and n not in optional]
    if missing:
        return bad(f"attribute(s) {', '.join(missing)} missing (the plugin would be created without them)")
    if _str(given["plugin_namespace"].s) != onnx_nodes.NAMESPACE:
        return bad(f"plugin_namespace is {_str(given['plugin_namespace'].s)!r}; the stvsr plugins are registered "
                   f"under {onnx_nodes.NAMESPACE!r}")
    if "aot" in given and given["aot"].i not in (0, 1):
        return bad(f"aot must be 0 or 1, got {given['aot'].i}")
    if "padding_mode" in given and _str(given["padding_mode"].s) not in ("zeros", "border"):
        return bad(f"padding_mode {_str(given['padding_mode'].s)!r}: the plugins take 'zeros' or 'border'")
    names = onnx_nodes.declared_inputs(node.op_type)
    if len(node.input) != len(names) or not all(node.input):
        return bad(f"takes exactly {len(names)} inputs ({', '.join(names)}), got {len(node.input)}")
    data_types = {_type_name(t) for t in onnx_nodes.DATA_TYPES}
    data = {g.type_of(i) for n, i in zip(names, node.input) if n not in onnx_nodes.COORD_INPUTS} - {None}
    if not data <= data_types or len(data) > 1:
        return bad(f"data inputs are {', '.join(sorted(data))}; the plugin takes all FP32 or all FP16")
    for n, i in zip(names, node.input):
        if n in onnx_nodes.COORD_INPUTS and g.type_of(i) not in (None, "FP32"):
            return bad(f"{n} input {i!r} is {g.type_of(i)}; sampling coordinates must be FP32")
    return None


def problems(model: onnx.ModelProto) -> list[Problem]:
    """Everything in ``model`` TensorRT's parser or builder would refuse (empty: none found)."""
    g = _Graph(model)
    found = _check_opset(model) + _check_io(g)
    ops = support()["operators"]
    for index, node in enumerate(all_nodes(model.graph)):
        if node.domain == onnx_nodes.DOMAIN or node.op_type in onnx_nodes.PLUGIN_OPS \
                or any(a.name == "plugin_namespace" for a in node.attribute):
            p = _check_plugin(node, g)
        elif node.domain not in ("", "ai.onnx"):
            p = Problem(node.name, f"{node.domain}::{node.op_type}", f"domain {node.domain!r} is neither standard "
                        "ONNX nor a registered plugin")
        elif node.op_type not in ops:
            p = Problem(node.name, node.op_type, f"not supported by TensorRT's ONNX parser ({source_line()})")
        elif node.op_type in SUBGRAPH_OPS:
            p = None
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            p = _check_qdq(node, g) or _check_types(node, g, ops[node.op_type])
        else:
            p = _check_types(node, g, ops[node.op_type]) or _check_restrictions(node)
        if p is not None:
            found.append(p if p.node else Problem(f"#{index}", p.op, p.reason))
    return found


def check_graph(model: onnx.ModelProto) -> None:
    """Raise :class:`CompatError` (one line, naming the first offending node) if TensorRT would refuse ``model``."""
    found = problems(model)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise CompatError(f"TensorRT cannot take {found[0].line()}{more}")


def check_file(path: str | Path) -> None:
    check_graph(onnx.load(str(path)))
