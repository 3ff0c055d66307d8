"""TensorRT registration of the stvsr plugins with ``tensorrt.plugin`` (quickly deployable plugins).

Importing this module imports ``tensorrt`` and registers, under the namespace ``stvsr``:

* ``stvsr::DeformConv2d``: inputs ``(x, weight, offset, bias, mask)`` in ONNX ``DeformConv``
  order, int attributes ``kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
  dilation_w, groups, deform_groups``; output ``[N, O, OH, OW]`` of the data type.
* ``stvsr::BackwardWarp``: inputs ``(x, flow)``, flow ``[N, 2, H, W]`` in pixels, string
  attribute ``padding_mode`` ("zeros"/"border"); output like ``x``.
* ``stvsr::GridSampleBilinear``: inputs ``(x, grid)`` like ONNX ``GridSample`` (bilinear), attributes
  ``padding_mode`` and int ``align_corners``; output ``[N, C, OH, OW]``.

Data FP32 or FP16; the flow/grid input is always FP32 (coordinates never go through FP16).
Each plugin has a JIT implementation (``@trtp.impl``: Python + torch + Triton at run time)
and an AOT implementation (``@trtp.aot_impl``: PTX stored in the engine, no Python at run
time). The AOT kernel is compiled by Triton for the building GPU's architecture, or taken
from a prebuilt directory (``python -m stvsr.plugins build``) named by ``STVSR_PLUGIN_PTX_DIR``.
TensorRT launches AOT kernels with ``inputs, extra int32 args, outputs``; see
:mod:`stvsr.plugins.aot` for how Triton's hidden scratch parameters are handled.

In an ONNX graph a node maps to one of these when its op type is the plugin name and it has
the attribute ``plugin_namespace="stvsr"`` (``aot=1`` selects the AOT implementation); see
:mod:`stvsr.plugins.onnx_nodes`.

Attribute order: every function below declares the attributes in **alphabetical order**.
TensorRT's AOT path (``tensorrt/plugin/_plugin_class.py``, ``get_launch_params``) passes the
attribute values to ``aot_impl`` *positionally*, in the order of the plugin fields it was
created with. The ONNX parser creates them in the order of the creator's field names, which
is the order of the ``@trtp.register`` function's attributes (onnx-tensorrt ``loadFields``),
and ``onnx.helper.make_node`` writes attributes sorted by name; keeping all of these
alphabetical makes the call right whichever order TensorRT keeps. When creating a plugin
through ``trtp.op.stvsr.<Name>(...)`` pass the attributes in alphabetical order too.

String attributes: the ONNX parser passes a string attribute as a C string whose length
counts the terminating NUL, and ``tensorrt.plugin`` decodes all of it, so ``padding_mode``
arrives as ``"border\x00"``. :func:`_padding` strips NULs and refuses unknown modes.

Annotations must stay real objects: ``trtp.register`` reads them with ``inspect.signature``
(without ``eval_str``), so this module must not use ``from __future__ import annotations``
(every annotation would be a string and registration fails with "TensorDescs args should
come first").

The GPU architecture comes from cuda-bindings (:mod:`stvsr.plugins.cuda_device`), not from
``torch.cuda``: the pinned torch is a CPU build. The JIT implementations (``aot=0``) launch
the kernels through PyTorch and need a CUDA build of torch; they check for it and say so.
"""
import functools
from typing import Tuple, Union

import tensorrt as trt
import tensorrt.plugin as trtp

from . import aot, configs
from .cuda_device import current_gpu

NAMESPACE = "stvsr"


def _dtype_name(dt) -> str:
    if dt == trt.float32:
        return "fp32"
    if dt == trt.float16:
        return "fp16"
    raise ValueError(f"stvsr plugins support FP32 and FP16 data, got {dt}")


@functools.lru_cache(maxsize=None)
def _current_arch() -> int:
    """Compute capability of the GPU the engine is built on (cuda-bindings; no torch)."""
    return current_gpu().arch


def _kernel(variant: configs.Variant) -> tuple[bytes, bytes, int, int]:
    """(entry name, PTX, threads per block, shared bytes) of ``variant`` for the current GPU."""
    k = aot.kernel_for(variant, _current_arch())
    return k.entry, k.ptx, k.block_x, k.shared


def _padding(mode: str) -> str:
    """A ``padding_mode`` attribute as the ONNX parser delivers it (NUL-terminated) -> "zeros"/"border"."""
    clean = mode.replace("\x00", "")
    if clean not in configs.WARP_PADDING_MODES:
        raise ValueError(f"stvsr plugins: padding_mode must be one of {configs.WARP_PADDING_MODES}, got {mode!r}")
    return clean


def _cuda_torch():
    """torch, when it can run the JIT plugins (a CUDA build that sees a GPU); a clear error otherwise."""
    import torch

    if not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda} but sees no GPU"
        raise RuntimeError(f"the JIT stvsr plugins (aot=0) launch the Triton kernels through PyTorch and need a CUDA "
                           f"build of torch; this torch {torch.__version__} is {build}. Use the AOT plugins (aot=1, "
                           "what stvsr-export writes: no torch at run time) or install torch with CUDA")
    return torch


def _launch_params(block_x: int, shared: int, grid_x, grid_y=1, grid_z=1) -> "trtp.KernelLaunchParams":
    lp = trtp.KernelLaunchParams()
    lp.grid_x, lp.grid_y, lp.grid_z = grid_x, grid_y, grid_z
    lp.block_x = block_x
    lp.shared_mem = shared
    return lp


def _sym_ints(values) -> "trtp.SymIntExprs":
    return trtp.SymIntExprs.from_tuple([trtp.SymInt32(v) for v in values])


# ---------------------------------------------------------------- DeformConv2d

@trtp.register("stvsr::DeformConv2d")
def _deform_conv_desc(x: trtp.TensorDesc, weight: trtp.TensorDesc, offset: trtp.TensorDesc,
                      bias: trtp.TensorDesc, mask: trtp.TensorDesc,
                      deform_groups: int, dilation_h: int, dilation_w: int, groups: int, kernel_h: int,
                      kernel_w: int, pad_h: int, pad_w: int, stride_h: int, stride_w: int) -> trtp.TensorDesc:
    # The offset tensor already has the output's spatial size.
    return trtp.from_shape_expr((x.shape_expr[0], weight.shape_expr[0], offset.shape_expr[2], offset.shape_expr[3]),
                                dtype=x.dtype)


@trtp.autotune("stvsr::DeformConv2d")
def _deform_conv_autotune(x, weight, offset, bias, mask, outputs):
    return [trtp.AutoTuneCombination("FP32, FP32, FP32, FP32, FP32, FP32"),
            trtp.AutoTuneCombination("FP16, FP16, FP16, FP16, FP16, FP16")]


@trtp.impl("stvsr::DeformConv2d")
def _deform_conv_impl(x: trtp.Tensor, weight: trtp.Tensor, offset: trtp.Tensor, bias: trtp.Tensor,
                      mask: trtp.Tensor, deform_groups: int, dilation_h: int, dilation_w: int, groups: int,
                      kernel_h: int, kernel_w: int, pad_h: int, pad_w: int, stride_h: int, stride_w: int,
                      outputs: Tuple[trtp.Tensor], stream: int) -> None:
    from . import launch

    torch = _cuda_torch()
    with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
        t = [torch.as_tensor(a, device="cuda") for a in (x, weight, offset, bias, mask)]
        launch.deform_conv2d(t[0], t[2], t[4], t[1], t[3], (stride_h, stride_w), (pad_h, pad_w),
                             (dilation_h, dilation_w), groups, out=torch.as_tensor(outputs[0], device="cuda"))


@trtp.aot_impl("stvsr::DeformConv2d")
def _deform_conv_aot(x: trtp.TensorDesc, weight: trtp.TensorDesc, offset: trtp.TensorDesc,
                     bias: trtp.TensorDesc, mask: trtp.TensorDesc, deform_groups: int, dilation_h: int,
                     dilation_w: int, groups: int, kernel_h: int, kernel_w: int, pad_h: int, pad_w: int,
                     stride_h: int, stride_w: int, outputs: Tuple[trtp.TensorDesc], tactic: int
                     ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
    dtype = _dtype_name(x.dtype)
    variant = configs.deform_conv_variant(dtype, kernel_h, kernel_w)
    cfg = configs.DEFORM_CONV[dtype]
    name, ptx, block_x, shared = _kernel(variant)
    n, c, h, w = x.shape_expr[0], x.shape_expr[1], x.shape_expr[2], x.shape_expr[3]
    oh, ow, out_c = offset.shape_expr[2], offset.shape_expr[3], weight.shape_expr[0]
    # Grid as in configs.deform_conv_grid: groups * cdiv(out_c / groups, BLOCK_O) output-channel blocks.
    o_blocks = trtp.cdiv(out_c, cfg.block_o) if groups == 1 else trtp.cdiv(out_c // groups, cfg.block_o) * groups
    lp = _launch_params(block_x, shared, trtp.cdiv(oh * ow, cfg.block_p), o_blocks, n)
    extra = _sym_ints([c, h, w, oh, ow, out_c, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                       groups, deform_groups])
    return name, ptx, lp, extra


# ---------------------------------------------------------------- BackwardWarp / GridSample

@trtp.register("stvsr::BackwardWarp")
def _warp_desc(x: trtp.TensorDesc, flow: trtp.TensorDesc, padding_mode: str) -> trtp.TensorDesc:
    _padding(padding_mode)   # refuse an unknown mode when the network is built, not at run time
    return x.like()


@trtp.autotune("stvsr::BackwardWarp")
def _warp_autotune(x, flow, outputs):
    return [trtp.AutoTuneCombination("FP32, FP32, FP32"), trtp.AutoTuneCombination("FP16, FP32, FP16")]


@trtp.impl("stvsr::BackwardWarp")
def _warp_impl(x: trtp.Tensor, flow: trtp.Tensor, padding_mode: str, outputs: Tuple[trtp.Tensor],
               stream: int) -> None:
    from . import launch

    padding_mode = _padding(padding_mode)
    torch = _cuda_torch()
    with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
        launch.backward_warp(torch.as_tensor(x, device="cuda"), torch.as_tensor(flow, device="cuda"), padding_mode,
                             out=torch.as_tensor(outputs[0], device="cuda"))


def _warp_aot_common(x, coords_kind: str, padding_mode: str, oh, ow):
    variant = configs.warp_variant(_dtype_name(x.dtype), coords_kind, _padding(padding_mode))
    name, ptx, block_x, shared = _kernel(variant)
    lp = _launch_params(block_x, shared, trtp.cdiv(oh * ow, configs.WARP.block_p), x.shape_expr[0])
    extra = _sym_ints([x.shape_expr[1], x.shape_expr[2], x.shape_expr[3], oh, ow])
    return name, ptx, lp, extra


@trtp.aot_impl("stvsr::BackwardWarp")
def _warp_aot(x: trtp.TensorDesc, flow: trtp.TensorDesc, padding_mode: str, outputs: Tuple[trtp.TensorDesc],
              tactic: int) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
    return _warp_aot_common(x, "flow", padding_mode, x.shape_expr[2], x.shape_expr[3])


@trtp.register("stvsr::GridSampleBilinear")
def _grid_sample_desc(x: trtp.TensorDesc, grid: trtp.TensorDesc, align_corners: int,
                      padding_mode: str) -> trtp.TensorDesc:
    _padding(padding_mode)
    return trtp.from_shape_expr((x.shape_expr[0], x.shape_expr[1], grid.shape_expr[1], grid.shape_expr[2]),
                                dtype=x.dtype)


@trtp.autotune("stvsr::GridSampleBilinear")
def _grid_sample_autotune(x, grid, outputs):
    return [trtp.AutoTuneCombination("FP32, FP32, FP32"), trtp.AutoTuneCombination("FP16, FP32, FP16")]


@trtp.impl("stvsr::GridSampleBilinear")
def _grid_sample_impl(x: trtp.Tensor, grid: trtp.Tensor, align_corners: int, padding_mode: str,
                      outputs: Tuple[trtp.Tensor], stream: int) -> None:
    from . import launch

    padding_mode = _padding(padding_mode)
    torch = _cuda_torch()
    with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
        launch.grid_sample(torch.as_tensor(x, device="cuda"), torch.as_tensor(grid, device="cuda"), padding_mode,
                           bool(align_corners), out=torch.as_tensor(outputs[0], device="cuda"))


@trtp.aot_impl("stvsr::GridSampleBilinear")
def _grid_sample_aot(x: trtp.TensorDesc, grid: trtp.TensorDesc, align_corners: int, padding_mode: str,
                     outputs: Tuple[trtp.TensorDesc], tactic: int
                     ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
    kind = "grid_align_corners" if align_corners else "grid"
    return _warp_aot_common(x, kind, padding_mode, grid.shape_expr[1], grid.shape_expr[2])
