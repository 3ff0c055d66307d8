"""Modulated deformable 2-D convolution (DCNv2) as a ``torch.library`` custom op.

Layout follows ONNX ``DeformConv`` (opset 19) and torchvision's ``deform_conv2d``:
``offset`` is ``[N, dg*2*kh*kw, oH, oW]`` with ``(dy, dx)`` interleaved per kernel point
for each deformable group, ``mask`` is ``[N, dg*kh*kw, oH, oW]``. A sample that falls
outside the input contributes zero (bilinear with zero padding).

The CPU implementation samples every kernel point with ``grid_sample`` and contracts the
sampled columns with the weight by one matmul per group. The exporter maps the op to ONNX
``DeformConv``; the Triton plugin implements the same contract as an implicit GEMM.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

Pair = int | Sequence[int]


def _pair(v: Pair) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _out_size(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def deform_conv2d_reference(
    x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
    bias: torch.Tensor | None, stride: Sequence[int], padding: Sequence[int],
    dilation: Sequence[int], groups: int,
) -> torch.Tensor:
    """Plain-PyTorch modulated deformable convolution (the op's CPU kernel)."""
    n, c, h, w = x.shape
    out_c, c_per_group, kh, kw = weight.shape
    k = kh * kw
    dg = offset.shape[1] // (2 * k)
    oh, ow = offset.shape[2], offset.shape[3]
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    dtype = x.dtype
    # Sampling positions in input pixels: base grid + kernel tap + learned offset.
    ys = (torch.arange(oh, dtype=torch.float32, device=x.device) * sh - ph).view(1, 1, 1, oh, 1)
    xs = (torch.arange(ow, dtype=torch.float32, device=x.device) * sw - pw).view(1, 1, 1, 1, ow)
    ky = (torch.arange(kh, device=x.device).repeat_interleave(kw) * dh).to(torch.float32).view(1, 1, k, 1, 1)
    kx = (torch.arange(kw, device=x.device).repeat(kh) * dw).to(torch.float32).view(1, 1, k, 1, 1)
    off = offset.float().view(n, dg, k, 2, oh, ow)
    py = ys + ky + off[:, :, :, 0]
    px = xs + kx + off[:, :, :, 1]
    # Normalise for grid_sample(align_corners=False): pixel p -> (2p + 1) / size - 1.
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)
    grid = grid.view(n * dg, k * oh, ow, 2)
    cols = F.grid_sample(
        x.float().reshape(n * dg, c // dg, h, w), grid,
        mode="bilinear", padding_mode="zeros", align_corners=False,
    )  # [n*dg, c/dg, k*oh, ow]
    cols = cols.view(n, dg, c // dg, k, oh * ow) * mask.float().view(n, dg, 1, k, oh * ow)
    cols = cols.reshape(n, groups, (c // groups) * k, oh * ow)
    wmat = weight.float().reshape(groups, out_c // groups, c_per_group * k)
    out = torch.matmul(wmat, cols).reshape(n, out_c, oh, ow)  # [g, o/g, K] @ [n, g, K, L]: one MatMul in ONNX
    if bias is not None:
        out = out + bias.float().view(1, -1, 1, 1)
    return out.to(dtype)


@torch.library.custom_op("stvsr::deform_conv2d", mutates_args=())
def _deform_conv2d_op(
    x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
    bias: torch.Tensor | None, stride: list[int], padding: list[int],
    dilation: list[int], groups: int, offset_groups: int,
) -> torch.Tensor:
    return deform_conv2d_reference(x, offset, mask, weight, bias, stride, padding, dilation, groups)


@_deform_conv2d_op.register_fake
def _(x, offset, mask, weight, bias, stride, padding, dilation, groups, offset_groups):
    return x.new_empty((x.shape[0], weight.shape[0], offset.shape[2], offset.shape[3]))


def deform_conv2d(
    x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
    bias: torch.Tensor | None = None, stride: Pair = 1, padding: Pair = 0,
    dilation: Pair = 1, groups: int = 1,
) -> torch.Tensor:
    """Modulated deformable convolution; see the module docstring for the layout."""
    if x.dim() != 4 or offset.dim() != 4 or mask.dim() != 4:
        raise ValueError("deform_conv2d: input, offset and mask must be 4-D [N, C, H, W]")
    out_c, c_per_group, kh, kw = weight.shape
    k = kh * kw
    n, c, h, w = x.shape
    stride_, padding_, dilation_ = _pair(stride), _pair(padding), _pair(dilation)
    if c != c_per_group * groups or out_c % groups:
        raise ValueError(f"deform_conv2d: {c} input channels do not fit weight {tuple(weight.shape)} "
                         f"with groups={groups}")
    if offset.shape[1] % (2 * k) or c % (offset.shape[1] // (2 * k)):
        raise ValueError(f"deform_conv2d: offset channels {offset.shape[1]} must be deformable_groups*2*{k} "
                         f"with deformable_groups dividing {c}")
    dg = offset.shape[1] // (2 * k)
    oh = _out_size(h, kh, stride_[0], padding_[0], dilation_[0])
    ow = _out_size(w, kw, stride_[1], padding_[1], dilation_[1])
    if tuple(offset.shape[2:]) != (oh, ow) or tuple(mask.shape) != (n, dg * k, oh, ow):
        raise ValueError(f"deform_conv2d: offset {tuple(offset.shape)} / mask {tuple(mask.shape)} must cover "
                         f"the output {oh}x{ow} with {dg} deformable groups")
    return _deform_conv2d_op(x, offset, mask, weight, bias, list(stride_), list(padding_),
                             list(dilation_), groups, dg)
