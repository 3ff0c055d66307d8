"""TMNet (Xu et al., CVPR 2021): Zooming Slow-Mo with temporal modulation, frames at any time.

Zooming Slow-Mo's pipeline (:mod:`stvsr.models.zsm`: features, PCD alignment, bidirectional
deformable ConvLSTM, 40-block trunk, x4 pixel shuffle) with three additions:

* Temporal modulation blocks (TMB) in the PCD alignment: the last offset convolution of every
  pyramid level, in both directions, gets ``f(x) * g(t)`` added, where ``x`` is that convolution's
  input, ``f`` two 3x3 convolutions and ``g`` three bias-free 1x1 convolutions of the time (the
  forward direction sees ``2t - 1``, the backward one ``1 - 2t``; both are 0 at the midpoint,
  where the modulation vanishes exactly).
* Locally-temporal feature comparison (LFC): every feature of the sequence is compared with its
  neighbours (deformably aligned, edges repeated) and the comparison is added to it before the
  ConvLSTM.
* The sequence features before LFC are added to the trunk's output.

Parameter names follow the official ``TMNet`` so ``tmnet_single_frame.pth`` and
``tmnet_multiple_frames.pth`` load unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from stvsr.models import zsm
from stvsr.models.zsm import DCNSep, ZoomingSlowMo, _lrelu

PARAMS = 12_263_523
WEIGHTS_FILE = "tmnet_single_frame.pth"
# Both released checkpoints (same keys and shapes) and the frames per window of their official test:
# the single-frame one makes midpoints from 4 frames; the multiple-frames one has its modulation blocks
# fine-tuned on 2 frames and t = i/6, i = 1..5 (the controllable one, for more than one new frame per gap).
WEIGHTS_WINDOWS = {"tmnet_single_frame.pth": 4, "tmnet_multiple_frames.pth": 2}
SCALE = zsm.SCALE
SIZE_MULTIPLE = zsm.SIZE_MULTIPLE
LEVELS = (1, 2, 3)


def _lrelu_layer() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.1)


class TMB(nn.Module):
    """Temporal modulation block: ``f_process(x) * t_process(t)``, t ``[M, 1, 1, 1]`` already mapped to [-1, 1]."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.t_process = nn.Sequential(nn.Conv2d(1, nf, 1, bias=False), _lrelu_layer(),
                                       nn.Conv2d(nf, nf, 1, bias=False), _lrelu_layer(),
                                       nn.Conv2d(nf, nf, 1, bias=False), _lrelu_layer())
        self.f_process = nn.Sequential(nn.Conv2d(nf, nf, 3, 1, 1), _lrelu_layer(),
                                       nn.Conv2d(nf, nf, 3, 1, 1), _lrelu_layer())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.f_process(x) * self.t_process(t)


class ModulatedPCDAlign(zsm.PCDAlign):
    """Zooming Slow-Mo's PCD alignment with a TMB on the last offset convolution of each level
    (``TMB_A_l*`` for the forward direction, ``TMB_B_l*`` for the backward one)."""

    def __init__(self, nf: int = 64, groups: int = 8):
        super().__init__(nf, groups)
        for level in LEVELS:
            self.add_module(f"TMB_A_l{level}", TMB(nf))
            self.add_module(f"TMB_B_l{level}", TMB(nf))

    def _last_offset(self, x: torch.Tensor, conv: nn.Conv2d, d: str, level: int,
                     t: torch.Tensor | None) -> torch.Tensor:
        out = _lrelu(conv(x))
        if t is None:
            return out
        return out + getattr(self, f"TMB_{'A' if d == '1' else 'B'}_l{level}")(x, t)

    def forward(self, fea1: list[torch.Tensor], fea2: list[torch.Tensor], t: torch.Tensor | None = None,
                t_back: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([self._align(fea1, fea2, "1", t), self._align(fea2, fea1, "2", t_back)], dim=1)


class TMNet(ZoomingSlowMo):
    """Official ``TMNet(nf=64, nframes=7, groups=8, front_RBs=5, back_RBs=40)``.

    ``forward(x, t=None)``: x ``[B, N, 3, H, W]`` RGB in [0, 1], N >= 2, H and W multiples of 4; t
    ``[B, T]`` times in (0, 1) between consecutive inputs (0.5: the midpoint), the same T times for every
    gap -> ``[B, N + (N-1)T, 3, 4H, 4W]`` in time order: input frame k, then the T frames of gap k (k to
    k+1) at ``t[:, 0], ..., t[:, T-1]`` in the given order, then frame k+1, ... ``t=None`` is the
    official single-frame call: one midpoint per gap, exactly equal to ``t=[[0.5]]``. The new frames are
    not separable per time: the feature comparison and the ConvLSTM run over the whole sequence, so a
    window's times must all be given in one call. ``skip_last=True`` reconstructs every output but the
    last (the last frame's features still feed the ConvLSTM, so the others are unchanged).
    """

    NAME = "tmnet"

    def __init__(self, nf: int = 64, groups: int = 8, front_RBs: int = 5, back_RBs: int = 40):
        super().__init__(nf, groups, front_RBs, back_RBs)
        self.pcd_align = ModulatedPCDAlign(nf, groups)
        self.layersAtBOffset = nn.Sequential(nn.Conv2d(2 * nf, nf, 3, 1, 1), _lrelu_layer(), nn.Conv2d(nf, nf, 3, 1, 1))
        self.layersAtB = DCNSep(nf, groups)
        self.layersCtBOffset = nn.Sequential(nn.Conv2d(2 * nf, nf, 3, 1, 1), _lrelu_layer(), nn.Conv2d(nf, nf, 3, 1, 1))
        self.layersCtB = DCNSep(nf, groups)
        self.layersFusion = nn.Sequential(nn.Conv2d(3 * nf, 3 * nf, 1), _lrelu_layer(),
                                          nn.Conv2d(3 * nf, 3 * nf, 1), _lrelu_layer(),
                                          nn.Conv2d(3 * nf, 3 * nf, 1), _lrelu_layer(),
                                          nn.Conv2d(3 * nf, nf, 1))

    @classmethod
    def check_times(cls, x: torch.Tensor, t: torch.Tensor | None) -> None:
        if t is None:
            return
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != 2:
            raise ValueError(f"{cls.NAME}: t must be a floating-point tensor [B, T] of times in (0, 1), or None")
        if t.shape[0] != x.shape[0] or t.shape[1] < 1:
            raise ValueError(f"{cls.NAME}: t must be [B, T] with B={x.shape[0]} and T >= 1, got {tuple(t.shape)}")

    def compare(self, seq: torch.Tensor) -> torch.Tensor:
        """Locally-temporal feature comparison of every sequence feature with its aligned neighbours
        (the first and last features are their own outer neighbours), ``[B, L, C, H, W]``."""
        b, n, c, h, w = seq.shape
        prev = torch.cat([seq[:, :1], seq[:, :-1]], dim=1).reshape(b * n, c, h, w)
        nxt = torch.cat([seq[:, 1:], seq[:, -1:]], dim=1).reshape(b * n, c, h, w)
        cur = seq.reshape(b * n, c, h, w)
        prev = _lrelu(self.layersAtB(prev, self.layersAtBOffset(torch.cat([prev, cur], dim=1))))
        nxt = _lrelu(self.layersCtB(nxt, self.layersCtBOffset(torch.cat([nxt, cur], dim=1))))
        return self.layersFusion(torch.cat([prev, cur, nxt], dim=1)).view(b, n, c, h, w)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, skip_last: bool = False) -> torch.Tensor:
        self.check_input(x)
        self.check_times(x, t)
        b, n, _, h, w = x.shape
        levels = self.extract(x)
        k = 1 if t is None else t.shape[1]
        # Every (gap, time) pair in one batch: frame g aligned with frame g+1 at each time.
        src = [lv[:, :-1].unsqueeze(2).expand(-1, -1, k, -1, -1, -1).reshape(-1, *lv.shape[2:]) for lv in levels]
        ref = [lv[:, 1:].unsqueeze(2).expand(-1, -1, k, -1, -1, -1).reshape(-1, *lv.shape[2:]) for lv in levels]
        if t is None:
            aligned = self.pcd_align(src, ref)
        else:
            tt = t.to(x.dtype).view(b, 1, k).expand(-1, n - 1, -1).reshape(-1, 1, 1, 1)
            aligned = self.pcd_align(src, ref, tt / 0.5 - 1, (1 - tt) / 0.5 - 1)
        new = self.fusion(aligned).view(b, n - 1, k, -1, h, w)
        seq = self.interleave(levels[0], new)
        feats = self.ConvBLSTM(seq + self.compare(seq))
        if skip_last:
            feats, seq = feats[:, :-1], seq[:, :-1]
        return self.reconstruct(feats, seq)


def build() -> TMNet:
    """The network with the official hyper-parameters (random init, nothing read from disk)."""
    return TMNet()
