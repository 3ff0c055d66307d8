"""FLOP counting with PyTorch's FlopCounterMode, taught our custom deformable convolution."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

import stvsr.ops  # noqa: F401  (registers stvsr::deform_conv2d)


@register_flop_formula(torch.ops.stvsr.deform_conv2d)
def _deform_conv_flops(x_shape, offset_shape, mask_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """GEMM (2 FLOPs per MAC) plus bilinear sampling and modulation (~8 FLOPs per sample)."""
    n, c = x_shape[0], x_shape[1]
    out_c, c_per_group, kh, kw = w_shape
    oh, ow = offset_shape[2], offset_shape[3]
    samples = n * c * kh * kw * oh * ow
    return 2 * n * out_c * c_per_group * kh * kw * oh * ow + 8 * samples


def count_flops(fn, *args, **kwargs) -> tuple[int, Any]:
    """Total FLOPs of one call of ``fn(*args, **kwargs)`` (convolutions, matmuls, deformable convs),
    and that call's result."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        result = fn(*args, **kwargs)
    return int(counter.get_total_flops()), result
