"""Two-stage STVSR pipelines assembled from fmu's own parts, to test STVUN's one-stage speed claim.

STVUN (ECCV 2020, Table 1) reports that one-stage space-time upsampling is x7 faster than video
super-resolution followed by frame interpolation, and x1.7 faster than interpolation followed by
super-resolution. fmu contains both parts (RSDN for VSR; PWC-Net, flow reversal, refine/mask
GridNets for interpolation), so the three orders can be timed on the same weights:

* one-stage (fmu as exported): flows at LR, RSDN at LR, interpolation at LR, HR synthesis.
* VSR then FI: RSDN on the 4 LR frames, then PWC-Net flows between the HR frames and the
  interpolation stage (quadratic flow, reversal, refine GridNet, mask, blend) run at HR.
* FI then VSR: interpolation at LR gives the LR frame at t; RSDN then super-resolves the
  sequence (frame 0, frame 1, frame at t, frame 2).

Each returns the same frames as the graph: frame 1 and the frames at ``times``, HR.
"""
from __future__ import annotations

import torch
from torch import nn

from stvsr.models.fmu import _blend, _quadratic_flow, _resize, official_backwarp
from stvsr.ops import reverse_flow


def _rsdn(net: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    b, n, c, h, w = frames.shape
    lr = frames.reshape(b, n * c, h, w)
    structure = _resize(_resize(lr, scale=0.5), scale=2.0)
    detail = lr - structure
    return net.vsrnet(frames, detail.view(b, n, c, h, w), structure.view(b, n, c, h, w))[0]


def _interpolate(net: nn.Module, frames: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """fmu's interpolation stage at the resolution of ``frames`` [B, 4, 3, H, W]; frame between 1 and 2."""
    b = frames.shape[0]
    i0, i1, i2, i3 = frames.unbind(1)
    f10, f12, f23, f21 = net.flownet(torch.cat([i1, i1, i2, i2], 0), torch.cat([i0, i2, i3, i1], 0)).split(b, 0)
    ft1 = reverse_flow(_quadratic_flow(f10, f12, t))
    ft2 = reverse_flow(_quadratic_flow(f23, f21, 1 - t))
    i1t, i2t = official_backwarp(i1, ft1), official_backwarp(i2, ft2)
    out, feature = net.refinenet(torch.cat([i1, i2, i1t, i2t, f12, f21, ft1, ft2], 1))
    ft1r = official_backwarp(ft1, 10 * torch.tanh(out[:, 4:6])) + out[:, :2]
    ft2r = official_backwarp(ft2, 10 * torch.tanh(out[:, 6:8])) + out[:, 2:4]
    i1tf, i2tf = official_backwarp(i1, ft1r), official_backwarp(i2, ft2r)
    mask = torch.sigmoid(net.masknet(torch.cat([i1tf, i2tf, feature], 1))).repeat(1, 3, 1, 1)
    return _blend(i1tf, i2tf, mask, t)


class VSRThenFI(nn.Module):
    """Super-resolve the 4 LR frames with RSDN, then interpolate at HR (flows computed at HR)."""

    def __init__(self, fmu: nn.Module):
        super().__init__()
        self.net = fmu

    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        hr = _rsdn(self.net, frames.flip(2))
        outs = [hr[:, 1]] + [_interpolate(self.net, hr, t.view(1, 1, 1, 1)) for t in times]
        return torch.stack(outs, 1).flip(2)


class FIThenVSR(nn.Module):
    """Interpolate the LR frames at each time, then super-resolve (f0, f1, f_t, f2) with RSDN."""

    def __init__(self, fmu: nn.Module):
        super().__init__()
        self.net = fmu

    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        lr = frames.flip(2)
        outs = []
        for k, t in enumerate(times):
            mid = _interpolate(self.net, lr, t.view(1, 1, 1, 1))
            hr = _rsdn(self.net, torch.stack([lr[:, 0], lr[:, 1], mid, lr[:, 2]], 1))
            if k == 0:
                outs.append(hr[:, 1])
            outs.append(hr[:, 2])
        return torch.stack(outs, 1).flip(2)
