"""Evaluate a plugin-flavour ONNX graph on the CPU (``onnx.reference`` + :mod:`stvsr.ops`).

ONNX Runtime cannot run the ``stvsr`` plugin nodes; this evaluator can, so the plugin graph
written by the exporter can be compared with the portable graph here, without TensorRT.
The plugin nodes run the reference operators (or, with ``kernels=...``, the Triton kernels
in the interpreter); every other node runs in ``onnx.reference`` (slow: small inputs only).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from . import onnx_nodes


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _op_classes(kernels: SimpleNamespace | None) -> list[type]:
    from stvsr import ops

    if kernels is not None:
        from . import launch

    class DeformConv2d(OpRun):
        op_domain = onnx_nodes.DOMAIN

        def _run(self, x, weight, offset, bias, mask, aot=None, plugin_namespace=None, deform_groups=None,
                 dilation_h=None, dilation_w=None, groups=None, kernel_h=None, kernel_w=None, pad_h=None,
                 pad_w=None, stride_h=None, stride_w=None):
            args = (_t(x), _t(offset), _t(mask), _t(weight), _t(bias), (stride_h, stride_w), (pad_h, pad_w),
                    (dilation_h, dilation_w), groups)
            if tuple(weight.shape[2:]) != (kernel_h, kernel_w) or offset.shape[1] != 2 * deform_groups * kernel_h * kernel_w:
                raise ValueError("DeformConv2d attributes disagree with the weight/offset shapes")
            out = launch.deform_conv2d(*args, kernels=kernels) if kernels is not None else ops.deform_conv2d(*args)
            return (out.numpy(),)

    class BackwardWarp(OpRun):
        op_domain = onnx_nodes.DOMAIN

        def _run(self, x, flow, aot=None, plugin_namespace=None, padding_mode=None):
            mode = _str(padding_mode)
            if kernels is not None:
                return (launch.backward_warp(_t(x), _t(flow), mode, kernels=kernels).numpy(),)
            return (ops.backward_warp(_t(x), _t(flow), mode).numpy(),)

    class GridSampleBilinear(OpRun):
        op_domain = onnx_nodes.DOMAIN

        def _run(self, x, grid, aot=None, plugin_namespace=None, align_corners=None, padding_mode=None):
            mode = _str(padding_mode)
            if kernels is not None:
                out = launch.grid_sample(_t(x), _t(grid), mode, bool(align_corners), kernels=kernels)
            else:
                out = torch.nn.functional.grid_sample(_t(x).float(), _t(grid), "bilinear", mode,
                                                      bool(align_corners)).to(_t(x).dtype)
            return (out.numpy(),)

    return [DeformConv2d, BackwardWarp, GridSampleBilinear]


def evaluator(model: onnx.ModelProto, kernels: SimpleNamespace | None = None) -> ReferenceEvaluator:
    """A ``ReferenceEvaluator`` for ``model`` that knows the stvsr plugin ops."""
    return ReferenceEvaluator(model, new_ops=_op_classes(kernels))
