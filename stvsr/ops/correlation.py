"""PWC-Net / FlowNet cost volume (correlation with kernel 1, stride 1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def correlation(a: torch.Tensor, b: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """Cost volume ``[N, (2d+1)^2, H, W]`` between feature maps ``a`` and ``b``.

    Channel ``(dy + d) * (2d + 1) + (dx + d)`` holds the channel-mean of
    ``a[:, :, i, j] * b[:, :, i + dy, j + dx]``; positions outside ``b`` read zero.
    This is what the CUDA kernels of FlowNet2/PWC-Net compute (they divide by C).
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"correlation: inputs must be equal 4-D shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    d = int(max_displacement)
    h, w = a.shape[2], a.shape[3]
    bp = F.pad(b, (d, d, d, d))
    planes = []
    for dy in range(2 * d + 1):
        for dx in range(2 * d + 1):
            planes.append((a * bp[:, :, dy:dy + h, dx:dx + w]).mean(dim=1))
    return torch.stack(planes, dim=1)
