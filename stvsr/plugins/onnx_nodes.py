"""ONNX plugin nodes for the ``stvsr`` export flavour (``stvsr-export --plugins stvsr``).

A TensorRT ONNX parser maps a node to a registered plugin when the node's op type is the
plugin name and it carries the string attribute ``plugin_namespace="stvsr"``; ``aot=1``
picks the AOT implementation (PTX in the engine, no Python at run time). The nodes live in
the ONNX domain ``stvsr`` (opset 1) so that ``onnx.checker`` accepts the graph; ONNX Runtime
cannot run them (that is what the portable flavour is for).

Three ways to get such a graph:

* :func:`rewrite_to_plugins` turns a portable graph (standard ``DeformConv`` and
  ``GridSample`` nodes) into the plugin graph, one node for one node, same inputs. This is
  the simplest path for an exporter: export portable, then rewrite.
* :func:`deform_conv2d_translation` is an onnxscript translation of the torch custom op
  ``stvsr::deform_conv2d`` for ``torch.onnx.export(..., custom_translation_table=...)``
  (call :func:`register_onnx_schemas` first); warps are plain ``grid_sample`` calls in torch,
  so they still need the rewrite.
* :func:`deform_conv_node`, :func:`backward_warp_node`, :func:`grid_sample_node` build single
  nodes for hand-made graphs.

Plugin attributes are written sorted by name (:func:`sort_plugin_attributes`): TensorRT's AOT
plugin path hands attribute values to ``aot_impl`` positionally in field order, and
:mod:`stvsr.plugins.trt` declares them alphabetically.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stvsr.onnx_subgraphs import all_graphs, all_initializers, all_nodes, all_value_infos

DOMAIN = "stvsr"
NAMESPACE = "stvsr"
DEFORM_CONV = "DeformConv2d"
BACKWARD_WARP = "BackwardWarp"
GRID_SAMPLE = "GridSampleBilinear"
PLUGIN_OPS = (DEFORM_CONV, BACKWARD_WARP, GRID_SAMPLE)


_INT_ATTRS = {
    DEFORM_CONV: ("deform_groups", "dilation_h", "dilation_w", "groups", "kernel_h", "kernel_w", "pad_h", "pad_w",
                  "stride_h", "stride_w"),
    BACKWARD_WARP: (),
    GRID_SAMPLE: ("align_corners",),
}
_STR_ATTRS = {DEFORM_CONV: (), BACKWARD_WARP: ("padding_mode",), GRID_SAMPLE: ("padding_mode",)}
_INPUTS = {DEFORM_CONV: ("x", "weight", "offset", "bias", "mask"), BACKWARD_WARP: ("x", "flow"),
           GRID_SAMPLE: ("x", "grid")}
PLUGIN_VERSION = "1"                     # the version ``trtp.register`` gives each plugin (stvsr.plugins.trt)
COORD_INPUTS = frozenset({"flow", "grid"})   # sampling coordinates: always FP32
DATA_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)   # every other input and the output (stvsr.plugins.trt autotune)


def declared_inputs(op: str) -> tuple[str, ...]:
    """Input names of plugin ``op``, in the order of its registration."""
    return _INPUTS[op]


def declared_attributes(op: str) -> dict[str, int]:
    """Attribute name -> ``onnx.AttributeProto`` type of plugin ``op``: the plugin fields its registration
    declares, plus the parser's ``plugin_namespace`` (and ``aot``, which picks the implementation)."""
    attrs = {n: onnx.AttributeProto.INT for n in _INT_ATTRS[op]}
    attrs.update({n: onnx.AttributeProto.STRING for n in _STR_ATTRS[op]})
    attrs.update(plugin_namespace=onnx.AttributeProto.STRING, aot=onnx.AttributeProto.INT)
    return attrs


def register_onnx_schemas() -> None:
    """Register ONNX schemas for the ``stvsr`` domain (needed by onnxscript; idempotent)."""
    from onnx import defs

    attr = defs.OpSchema.Attribute
    kinds = defs.OpSchema.AttrType
    for op in PLUGIN_OPS:
        if defs.has(op, DOMAIN):
            continue
        attrs = [attr(n, kinds.INT, "") for n in _INT_ATTRS[op]] + [attr(n, kinds.STRING, "") for n in _STR_ATTRS[op]]
        attrs += [attr("plugin_namespace", kinds.STRING, "TensorRT plugin namespace"),
                  attr("aot", kinds.INT, "1: AOT implementation")]
        coords = {"flow", "grid"}
        defs.register_schema(defs.OpSchema(
            op, DOMAIN, 1,
            inputs=[defs.OpSchema.FormalParameter(n, "C" if n in coords else "T") for n in _INPUTS[op]],
            outputs=[defs.OpSchema.FormalParameter("y", "T")],
            type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "data"),
                              ("C", ["tensor(float)"], "sampling coordinates, always FP32")],
            attributes=attrs))


def deform_conv2d_translation(x, offset, mask, weight, bias, stride, padding, dilation, groups,
                              offset_groups=None, *, aot: bool = True):
    """onnxscript translation of ``torch.ops.stvsr.deform_conv2d.default`` to the plugin node."""
    from onnxscript import opset20 as op
    from onnxscript.values import Opset

    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    deform_groups = int(offset_groups) if offset_groups is not None else int(offset.shape[1]) // (2 * kh * kw)
    if bias is None:
        bias = op.CastLike(op.ConstantOfShape(op.Shape(weight, start=0, end=1)), weight)
    return Opset(DOMAIN, 1).DeformConv2d(
        x, weight, offset, bias, mask, aot=int(aot), plugin_namespace=NAMESPACE, deform_groups=deform_groups,
        dilation_h=int(dilation[0]), dilation_w=int(dilation[1]), groups=int(groups), kernel_h=kh, kernel_w=kw,
        pad_h=int(padding[0]), pad_w=int(padding[1]), stride_h=int(stride[0]), stride_w=int(stride[1]))


def sort_plugin_attributes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Sort the attributes of every stvsr plugin node by name, in place; returns ``model``."""
    for node in plugin_nodes(model):
        attrs = sorted(node.attribute, key=lambda a: a.name)
        del node.attribute[:]
        node.attribute.extend(attrs)
    return model


def _plugin_node(op: str, inputs: Sequence[str], outputs: Sequence[str], name: str | None, aot: bool,
                 **attrs) -> onnx.NodeProto:
    return helper.make_node(op, list(inputs), list(outputs), name=name, domain=DOMAIN,
                            plugin_namespace=NAMESPACE, aot=int(aot), **attrs)


def _two(v: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    v = [int(a) for a in v]
    if len(v) != 2:
        raise ValueError(f"{what} must be an int or a pair, got {v}")
    return v[0], v[1]


def deform_conv_node(inputs: Sequence[str], output: str, *, kernel_shape: Sequence[int],
                     stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                     dilation: int | Sequence[int] = 1, groups: int = 1, deform_groups: int = 1,
                     name: str | None = None, aot: bool = True) -> onnx.NodeProto:
    """``stvsr::DeformConv2d`` node; ``inputs`` = (x, weight, offset, bias, mask), all required."""
    if len(inputs) != 5 or not all(inputs):
        raise ValueError("DeformConv2d plugin takes exactly (x, weight, offset, bias, mask)")
    (kh, kw), (sh, sw) = _two(tuple(kernel_shape), "kernel_shape"), _two(stride, "stride")
    (ph, pw), (dh, dw) = _two(padding, "padding"), _two(dilation, "dilation")
    return _plugin_node(DEFORM_CONV, inputs, [output], name, aot, kernel_h=kh, kernel_w=kw, stride_h=sh,
                        stride_w=sw, pad_h=ph, pad_w=pw, dilation_h=dh, dilation_w=dw, groups=int(groups),
                        deform_groups=int(deform_groups))


def backward_warp_node(x: str, flow: str, output: str, *, padding_mode: str = "zeros",
                       name: str | None = None, aot: bool = True) -> onnx.NodeProto:
    """``stvsr::BackwardWarp`` node (pixel flow ``[N, 2, H, W]``, FP32)."""
    if padding_mode not in ("zeros", "border"):
        raise ValueError(f"padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
    return _plugin_node(BACKWARD_WARP, [x, flow], [output], name, aot, padding_mode=padding_mode)


def grid_sample_node(x: str, grid: str, output: str, *, padding_mode: str = "zeros", align_corners: bool = False,
                     name: str | None = None, aot: bool = True) -> onnx.NodeProto:
    """``stvsr::GridSampleBilinear`` node (ONNX GridSample semantics, bilinear; grid FP32)."""
    if padding_mode not in ("zeros", "border"):
        raise ValueError(f"padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
    return _plugin_node(GRID_SAMPLE, [x, grid], [output], name, aot, padding_mode=padding_mode,
                        align_corners=int(bool(align_corners)))


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _rewrite_deform_conv(node: onnx.NodeProto, graph: onnx.GraphProto, inits: dict, types: dict, aot: bool,
                         uid: str) -> list[onnx.NodeProto]:
    a = _attrs(node)
    ins = list(node.input) + [""] * (5 - len(node.input))
    x, w, offset, bias, mask = ins[0], ins[1], ins[2], ins[3], ins[4]
    if w in inits:
        w_type, w_dims = inits[w].data_type, list(inits[w].dims)
    elif w in types:
        w_type, w_dims = types[w]
    else:
        raise ValueError(f"DeformConv {node.name!r}: the shape of weight {w!r} is unknown (not an initializer, "
                         "shape inference found nothing)")
    if len(w_dims) != 4 or not all(isinstance(d, int) and d > 0 for d in w_dims):
        raise ValueError(f"DeformConv {node.name!r}: weight {w!r} must have a static 4-D shape, got {w_dims}")
    out_c, kh, kw = w_dims[0], w_dims[2], w_dims[3]
    kernel = tuple(a.get("kernel_shape", (kh, kw)))
    pads = list(a.get("pads", (0, 0, 0, 0)))
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise ValueError(f"DeformConv {node.name!r}: asymmetric pads {pads} are not supported by the plugin")
    dg = int(a.get("offset_group", 1))
    extra: list[onnx.NodeProto] = []
    if not bias:
        bias = f"{uid}_zero_bias"
        graph.initializer.append(numpy_helper.from_array(
            np.zeros(out_c, dtype=helper.tensor_dtype_to_np_dtype(w_type)), bias))
    if not mask:
        # mask of ones shaped [N, dg*kh*kw, OH, OW], built from the offset's runtime shape.
        mask = f"{uid}_ones_mask"
        shape, n_part, hw_part = f"{uid}_offset_shape", f"{uid}_n", f"{uid}_hw"
        ch, mshape = f"{uid}_mask_channels", f"{uid}_mask_shape"
        graph.initializer.append(numpy_helper.from_array(np.array([dg * kernel[0] * kernel[1]], np.int64), ch))
        extra += [
            helper.make_node("Shape", [offset], [shape]),
            helper.make_node("Slice", [shape, _const(graph, f"{uid}_s0", [0]), _const(graph, f"{uid}_s1", [1])],
                             [n_part]),
            helper.make_node("Slice", [shape, _const(graph, f"{uid}_s2", [2]), _const(graph, f"{uid}_s4", [4])],
                             [hw_part]),
            helper.make_node("Concat", [n_part, ch, hw_part], [mshape], axis=0),
            helper.make_node("ConstantOfShape", [mshape], [mask], value=helper.make_tensor(
                "one", w_type, [1], [1.0])),
        ]
    strides = list(a.get("strides", (1, 1)))
    dil = list(a.get("dilations", (1, 1)))
    extra.append(deform_conv_node([x, w, offset, bias, mask], node.output[0], kernel_shape=kernel,
                                  stride=strides, padding=pads[:2], dilation=dil, groups=int(a.get("group", 1)),
                                  deform_groups=dg, name=node.name or uid, aot=aot))
    return extra


def _value_types(model: onnx.ModelProto) -> dict[str, tuple[int, list]]:
    """name -> (element type, dims) of every typed value (loop bodies included), after ONNX shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is only a fallback for weight shapes
        inferred = model
    out = {}
    for vi in all_value_infos(inferred.graph):
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        out[vi.name] = (t.elem_type, dims)
    return out


def _const(graph: onnx.GraphProto, name: str, values: list[int]) -> str:
    graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), name))
    return name


def _rewrite_grid_sample(node: onnx.NodeProto, types: dict, aot: bool, uid: str) -> list[onnx.NodeProto] | None:
    a = _attrs(node)
    mode = _str(a.get("mode", "bilinear"))
    padding = _str(a.get("padding_mode", "zeros"))
    if mode not in ("bilinear", "linear") or padding not in ("zeros", "border"):
        return None   # nearest/cubic or reflection: keep TensorRT's native GridSample
    nodes = []
    grid = node.input[1]
    if types.get(grid, (None,))[0] not in (None, TensorProto.FLOAT):
        # The plugin takes FP32 coordinates; a grid made in lower precision is widened here
        # (what was lost upstream stays lost: keep grid arithmetic FP32 when converting).
        nodes.append(helper.make_node("Cast", [grid], [f"{uid}_grid_fp32"], to=TensorProto.FLOAT))
        grid = f"{uid}_grid_fp32"
    nodes.append(grid_sample_node(node.input[0], grid, node.output[0], padding_mode=padding,
                                  align_corners=bool(a.get("align_corners", 0)), name=node.name or uid, aot=aot))
    return nodes


def rewrite_to_plugins(model: onnx.ModelProto, *, aot: bool = True, deform_conv: bool = True,
                       grid_sample: bool = True) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Copy of ``model`` with DeformConv / bilinear GridSample nodes replaced by stvsr plugin nodes.

    Returns the new model and the number of nodes replaced per plugin. The plugins take FP32
    coordinates: a GridSample grid of another type gets a Cast to FP32 in front (the FP16
    conversion should keep grid arithmetic in FP32 in the first place). Data types of the
    other tensors are unchanged (FP32 or FP16, same for all DeformConv inputs). Nodes in loop
    bodies are replaced too.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = all_initializers(model.graph)
    types = _value_types(model)
    counts = {DEFORM_CONV: 0, GRID_SAMPLE: 0}
    # Innermost graphs first: rewriting a graph copies its nodes, a loop's body included.
    for depth, graph in reversed(list(enumerate(all_graphs(model.graph)))):
        new_nodes: list[onnx.NodeProto] = []
        for i, node in enumerate(graph.node):
            replaced = None
            uid = f"stvsr_plugin_{i}" if depth == 0 else f"stvsr_plugin_g{depth}_{i}"
            if node.domain in ("", "ai.onnx"):
                if node.op_type == "DeformConv" and deform_conv:
                    replaced = _rewrite_deform_conv(node, graph, inits, types, aot, uid)
                    counts[DEFORM_CONV] += 1
                elif node.op_type == "GridSample" and grid_sample:
                    replaced = _rewrite_grid_sample(node, types, aot, uid)
                    if replaced is not None:
                        counts[GRID_SAMPLE] += 1
            new_nodes.extend(replaced if replaced is not None else [node])
        del graph.node[:]
        graph.node.extend(new_nodes)
    has_plugins = any(n.domain == DOMAIN for n in all_nodes(model.graph))
    if has_plugins and not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return sort_plugin_attributes(model), counts


FLAVOURS = ("none", "native", "stvsr")


def apply_flavour(model: onnx.ModelProto, plugins: str, *, aot: bool = True) -> tuple[onnx.ModelProto, dict[str, int]]:
    """The export flavour ``--plugins``: ``none``/``native`` keep the portable graph (TensorRT maps
    DeformConv and GridSample to its built-ins), ``stvsr`` rewrites them to the stvsr plugins."""
    if plugins not in FLAVOURS:
        raise ValueError(f"plugins must be one of {FLAVOURS}, got {plugins!r}")
    if plugins != "stvsr":
        return model, {}
    return rewrite_to_plugins(model, aot=aot)


def plugin_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The stvsr plugin nodes of ``model`` (loop bodies included)."""
    return [n for n in all_nodes(model.graph) if n.domain == DOMAIN and n.op_type in PLUGIN_OPS]
