"""Launch the plugin kernels on torch tensors (CUDA tensors, or CPU tensors in the interpreter).

These launchers are what the TensorRT JIT implementation calls on the GPU and what the tests
call on the CPU with :func:`stvsr.plugins.interpret.interpreted_kernels`. Their grids and
block sizes come from :mod:`stvsr.plugins.configs`, the same source the AOT build uses.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import torch

from . import configs


def dtype_name(dtype: torch.dtype) -> str:
    try:
        return {torch.float32: "fp32", torch.float16: "fp16"}[dtype]
    except KeyError:
        raise ValueError(f"plugins support float32 and float16 data, got {dtype}") from None


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _default_kernels() -> SimpleNamespace:
    from . import kernels

    return SimpleNamespace(deform_conv2d_kernel=kernels.deform_conv2d_kernel,
                           backward_warp_kernel=kernels.backward_warp_kernel)


def _check_dtype(name: str, t: torch.Tensor) -> None:
    if t.dtype not in (torch.float32, torch.float16):
        raise ValueError(f"{name} must be float32 or float16, got {t.dtype}")


def _output(out: torch.Tensor | None, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    if out is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    if tuple(out.shape) != tuple(shape) or out.dtype != like.dtype or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {like.dtype} tensor of shape {tuple(shape)}")
    return out


def _warp(x: torch.Tensor, coords: torch.Tensor, coord_mode: str, padding_mode: str, oh: int, ow: int,
          kernels: SimpleNamespace | None, config: configs.WarpConfig | None,
          out: torch.Tensor | None) -> torch.Tensor:
    if padding_mode not in configs.WARP_PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {configs.WARP_PADDING_MODES}, got {padding_mode!r}")
    _check_dtype("x", x)
    _check_dtype("flow/grid", coords)
    kernels = kernels or _default_kernels()
    cfg = config or configs.WARP
    n, c, h, w = x.shape
    x, coords = x.contiguous(), coords.contiguous()
    out = _output(out, (n, c, oh, ow), x)
    kernels.backward_warp_kernel[configs.warp_grid(n, oh, ow, cfg)](
        x, coords, c, h, w, oh, ow, out,
        COORDS=configs.WARP_COORDS[coord_mode], BORDER=padding_mode == "border",
        BLOCK_P=cfg.block_p, BLOCK_C=cfg.block_c, **cfg.launch_options(),
    )
    return out


def backward_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros", *,
                  kernels: SimpleNamespace | None = None, config: configs.WarpConfig | None = None,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Triton backward warp by a pixel flow; same contract as :func:`stvsr.ops.backward_warp`.

    ``kernels`` defaults to the compiled kernels (GPU); ``out`` is an optional preallocated output.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError("x must be [N, C, H, W] and flow [N, 2, H, W]")
    if x.shape[0] != flow.shape[0] or x.shape[2:] != flow.shape[2:]:
        raise ValueError(f"x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or size")
    return _warp(x, flow, "flow", padding_mode, x.shape[2], x.shape[3], kernels, config, out)


def grid_sample(x: torch.Tensor, grid: torch.Tensor, padding_mode: str = "zeros", align_corners: bool = False, *,
                kernels: SimpleNamespace | None = None, config: configs.WarpConfig | None = None,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """Triton bilinear ``grid_sample`` (ONNX GridSample, linear mode, zeros/border padding)."""
    if x.dim() != 4 or grid.dim() != 4 or grid.shape[3] != 2 or grid.shape[0] != x.shape[0]:
        raise ValueError(f"x must be [N, C, H, W] and grid [N, OH, OW, 2]; got {tuple(x.shape)}, {tuple(grid.shape)}")
    mode = "grid_align_corners" if align_corners else "grid"
    return _warp(x, grid, mode, padding_mode, grid.shape[1], grid.shape[2], kernels, config, out)


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None, stride: int | Sequence[int] = 1,
                  padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1, *,
                  kernels: SimpleNamespace | None = None, config: configs.DeformConvConfig | None = None,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Triton implicit-GEMM modulated deformable conv; same contract as :func:`stvsr.ops.deform_conv2d`."""
    if x.dim() != 4 or offset.dim() != 4 or mask.dim() != 4 or weight.dim() != 4:
        raise ValueError("x, offset, mask and weight must be 4-D")
    for name, t in (("x", x), ("offset", offset), ("mask", mask), ("weight", weight)):
        _check_dtype(name, t)
    n, c, h, w = x.shape
    out_c, c_per_group, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    k = kh * kw
    if groups < 1 or c != c_per_group * groups or out_c % groups:
        raise ValueError(f"{c} input channels do not fit weight {tuple(weight.shape)} with groups={groups}")
    if offset.shape[1] % (2 * k) or offset.shape[1] == 0 or c % (offset.shape[1] // (2 * k)):
        raise ValueError(f"offset channels {offset.shape[1]} must be deformable_groups*2*{k} "
                         f"with deformable_groups dividing {c}")
    dg = offset.shape[1] // (2 * k)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if tuple(offset.shape) != (n, dg * 2 * k, oh, ow) or tuple(mask.shape) != (n, dg * k, oh, ow):
        raise ValueError(f"offset {tuple(offset.shape)} / mask {tuple(mask.shape)} must cover the output "
                         f"{oh}x{ow} with {dg} deformable groups")
    if bias is None:
        bias = torch.zeros(out_c, dtype=x.dtype, device=x.device)
    kernels = kernels or _default_kernels()
    cfg = config or configs.DEFORM_CONV[dtype_name(x.dtype)]
    out = _output(out, (n, out_c, oh, ow), x)
    grid = configs.deform_conv_grid(n, oh, ow, out_c, groups, cfg)
    kernels.deform_conv2d_kernel[grid](
        x.contiguous(), weight.contiguous(), offset.contiguous(), bias.contiguous(), mask.contiguous(),
        c, h, w, oh, ow, out_c, sh, sw, ph, pw, dh, dw, groups, dg,
        out,
        KH=kh, KW=kw, BLOCK_P=cfg.block_p, BLOCK_O=cfg.block_o, BLOCK_C=cfg.block_c,
        **cfg.launch_options(),
    )
    return out
