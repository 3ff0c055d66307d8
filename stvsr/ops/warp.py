"""Backward warping of a tensor by a dense flow field in pixel units."""
from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "border")


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """Turn a pixel flow ``[N, 2, H, W]`` into a ``grid_sample`` grid (``align_corners=True``).

    Sample position is ``(x, y) = (j + flow_x, i + flow_y)``. Always computed in float32.
    """
    n, _, h, w = flow.shape
    flow = flow.float()
    xs = torch.arange(w, dtype=torch.float32, device=flow.device).view(1, 1, w)
    ys = torch.arange(h, dtype=torch.float32, device=flow.device).view(1, h, 1)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack((gx, gy), dim=-1)


def backward_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Bilinear sample of ``x`` at ``(j + flow_x, i + flow_y)`` for every output pixel ``(i, j)``.

    ``padding_mode`` is ``"zeros"`` (outside samples read 0) or ``"border"`` (clamped to the edge).
    The sampling grid is float32 whatever the dtype of ``x``.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"backward_warp: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError("backward_warp: x must be [N, C, H, W] and flow [N, 2, H, W]")
    if x.shape[0] != flow.shape[0] or x.shape[2:] != flow.shape[2:]:
        raise ValueError(f"backward_warp: x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or size")
    grid = flow_to_grid(flow)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return out.to(x.dtype)
