"""Forward splatting with Gaussian corner weights (the flow reversal of Dutta et al.)."""
from __future__ import annotations

import torch


def forward_splat(x: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Push every pixel of ``x`` to ``(j + flow_x, i + flow_y)`` and accumulate.

    Each source pixel lands on the four integer neighbours of its target with weights
    ``exp(-(dx^2 + dy^2))`` (distance from the target to that neighbour); targets outside the
    image are dropped. Returns ``(sum of weighted values [N, C, H, W], sum of weights [N, 1, H, W])``.
    Written as ``scatter_add`` so it exports to ONNX ``ScatterElements(reduction="add")``.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError("forward_splat: x must be [N, C, H, W] and flow [N, 2, H, W]")
    if x.shape[0] != flow.shape[0] or x.shape[2:] != flow.shape[2:]:
        raise ValueError(f"forward_splat: x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or size")
    n, c, h, w = x.shape
    fx, fy = flow[:, 0:1].float(), flow[:, 1:2].float()
    x0, y0 = torch.floor(fx), torch.floor(fy)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    values = torch.zeros(n, c, h * w, dtype=torch.float32, device=x.device)
    weights = torch.zeros(n, 1, h * w, dtype=torch.float32, device=x.device)
    src = x.float()
    for cy in (y0, y0 + 1):
        for cx in (x0, x0 + 1):
            wgt = torch.exp(-((fx - cx) ** 2 + (fy - cy) ** 2))
            tx = cols + cx.to(torch.int64)
            ty = rows + cy.to(torch.int64)
            inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
            wgt = torch.where(inside, wgt, torch.zeros_like(wgt))
            index = (ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).view(n, 1, h * w)
            values = values.scatter_add(2, index.expand(n, c, h * w), (src * wgt).view(n, c, h * w))
            weights = weights.scatter_add(2, index, wgt.view(n, 1, h * w))
    return values.view(n, c, h, w).to(x.dtype), weights.view(n, 1, h, w).to(x.dtype)


def reverse_flow(flow: torch.Tensor) -> torch.Tensor:
    """Flow from the target time back to the source frame: the negated, weight-normalised splat of
    ``flow`` by itself (pixels nothing lands on get zero flow)."""
    summed, weight = forward_splat(flow, flow)
    safe = torch.where(weight > 0, weight, torch.ones_like(weight))
    return torch.where(weight > 0, -summed / safe, -summed)
