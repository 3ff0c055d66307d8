"""Export a graph-convention module to one self-contained, checked ONNX file with metadata."""
from __future__ import annotations

import os
import tempfile
import warnings

import onnx
import torch
from torch import nn

from stvsr.export.metadata import OUTPUT, ModelMetadata, write_onnx_metadata
from stvsr.outfile import atomic_output

MIN_OPSET = 19          # ONNX DeformConv
DEFAULT_OPSET = 19
MAX_IR_VERSION = 10     # readable by onnxruntime >= 1.16
_registered: set[int] = set()


class ExportError(RuntimeError):
    """Export failed for a reason the user can act on."""


def _deform_conv_symbolic(g, x, offset, mask, weight, bias, stride, padding, dilation, groups, offset_groups):
    from torch.onnx import symbolic_helper as sh

    pads = sh._get_const(padding, "is", "padding")
    kernel = sh._get_tensor_sizes(weight)[2:]
    args = [x, weight, offset]
    args.append(bias if not sh._is_none(bias) else g.op("Constant", value_t=torch.zeros(sh._get_tensor_sizes(weight)[0])))
    args.append(mask)
    return g.op("DeformConv", *args, strides_i=sh._get_const(stride, "is", "stride"), pads_i=list(pads) * 2,
                dilations_i=sh._get_const(dilation, "is", "dilation"), group_i=sh._get_const(groups, "i", "groups"),
                offset_group_i=sh._get_const(offset_groups, "i", "offset_groups"), kernel_shape_i=list(kernel))


def register_symbolics(opset: int) -> None:
    """Map our custom operators to standard ONNX for the TorchScript exporter."""
    if opset in _registered:
        return
    torch.onnx.register_custom_op_symbolic("stvsr::deform_conv2d", _deform_conv_symbolic, opset)
    _registered.add(opset)


def _dynamic_axes(names: list[str]) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for name in names:
        if name == "frames":
            axes[name] = {0: "batch", 3: "height", 4: "width"}
        elif name == "times":
            axes[name] = {0: "times"}
        else:  # flows
            axes[name] = {0: "batch", 2: "height", 3: "width"}
    axes[OUTPUT] = {0: "batch", 1: "out_frames", 3: "out_height", 4: "out_width"}
    return axes


def atomic_save(proto: onnx.ModelProto, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``proto`` as one file next to ``path`` and rename it into place."""
    with atomic_output(path, overwrite=overwrite) as tmp:  # short temp name, umask mode, removed on any error
        onnx.save_model(proto, tmp, save_as_external_data=False)


def finalize(proto: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    """Cap the IR version, attach metadata and check the model with full shape inference."""
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    write_onnx_metadata(proto, meta)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"exported graph fails onnx.checker: {str(exc).splitlines()[0]}") from None
    return proto


def export_graph(module: nn.Module, inputs: dict[str, torch.Tensor], meta: ModelMetadata, opset: int) -> onnx.ModelProto:
    """Trace ``module`` on ``inputs`` (names in order) and return the checked ONNX model. A module with
    ``export_form()`` is exported in that form; one holding scripted loops is traced with
    ``torch.jit.trace`` first (the ONNX exporter keeps their loops only from a traced module)."""
    from stvsr.export.recurrence import has_script_modules

    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too low: ONNX DeformConv needs opset {MIN_OPSET} or newer")
    register_symbolics(opset)
    names = list(inputs)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        raw = os.path.join(tmp, "graph.onnx")
        form = module.export_form() if hasattr(module, "export_form") else module
        args = tuple(inputs.values())
        if has_script_modules(form):
            # Traced first (the exporter keeps scripted loops only from a traced module), which runs the
            # network, and run again by the exporter for its example outputs: on a small crop of the
            # inputs, since the spatial axes are dynamic in the traced graph (the export check runs at
            # another size).
            small = 4 * meta.size_multiple
            args = tuple(a[..., :small, :small] if a.dim() >= 4 else a for a in args)
            form = torch.jit.trace(form, args, check_trace=False)
        torch.onnx.export(form, args, raw, dynamo=False, opset_version=opset,
                          input_names=names, output_names=[OUTPUT], dynamic_axes=_dynamic_axes(names),
                          do_constant_folding=True)
        proto = onnx.load(raw)
    meta.opset = opset
    return finalize(proto, meta)
