"""Zooming Slow-Mo (Xiang et al., CVPR 2020): one-stage space-time super-resolution.

Feature-level temporal interpolation with pyramid/cascading/deformable (PCD) alignment, a
bidirectional deformable ConvLSTM, and a 40-block reconstruction trunk with x4 pixel shuffle.
Parameter names follow the official ``LunaTokis`` so ``xiang2020zooming.pth`` loads unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stvsr.ops import deform_conv2d

PARAMS = 11_102_771
WEIGHTS_FILE = "xiang2020zooming.pth"
SCALE = 4
SIZE_MULTIPLE = 4


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv with an identity skip."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class DCNSep(nn.Module):
    """Modulated deformable conv whose offsets and mask come from separate features (DCNv2 ``DCN_sep``)."""

    def __init__(self, nf: int = 64, deformable_groups: int = 8, kernel: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(nf, nf, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(nf))
        self.conv_offset_mask = nn.Conv2d(nf, deformable_groups * 3 * kernel * kernel, kernel, 1, kernel // 2)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, fea: torch.Tensor) -> torch.Tensor:
        o1, o2, m = torch.chunk(self.conv_offset_mask(fea), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        return deform_conv2d(x, offset, torch.sigmoid(m), self.weight, self.bias, padding=self.padding)


class PCDAlign(nn.Module):
    """Three-level pyramid alignment of two frames' features onto each other (both directions)."""

    def __init__(self, nf: int = 64, groups: int = 8):
        super().__init__()
        for d in ("1", "2"):
            self.add_module(f"L3_offset_conv1_{d}", nn.Conv2d(nf * 2, nf, 3, 1, 1))
            self.add_module(f"L3_offset_conv2_{d}", nn.Conv2d(nf, nf, 3, 1, 1))
            self.add_module(f"L3_dcnpack_{d}", DCNSep(nf, groups))
            for lvl in ("L2", "L1"):
                self.add_module(f"{lvl}_offset_conv1_{d}", nn.Conv2d(nf * 2, nf, 3, 1, 1))
                self.add_module(f"{lvl}_offset_conv2_{d}", nn.Conv2d(nf * 2, nf, 3, 1, 1))
                self.add_module(f"{lvl}_offset_conv3_{d}", nn.Conv2d(nf, nf, 3, 1, 1))
                self.add_module(f"{lvl}_dcnpack_{d}", DCNSep(nf, groups))
                self.add_module(f"{lvl}_fea_conv_{d}", nn.Conv2d(nf * 2, nf, 3, 1, 1))

    def _align(self, src: list[torch.Tensor], ref: list[torch.Tensor], d: str,
               t: torch.Tensor | None = None) -> torch.Tensor:
        m = lambda name: getattr(self, f"{name}_{d}")  # noqa: E731
        off3 = _lrelu(m("L3_offset_conv1")(torch.cat([src[2], ref[2]], 1)))
        off3 = self._last_offset(off3, m("L3_offset_conv2"), d, 3, t)
        fea3 = _lrelu(m("L3_dcnpack")(src[2], off3))
        off2 = _lrelu(m("L2_offset_conv1")(torch.cat([src[1], ref[1]], 1)))
        off2 = _lrelu(m("L2_offset_conv2")(torch.cat([off2, _up2(off3) * 2], 1)))
        off2 = self._last_offset(off2, m("L2_offset_conv3"), d, 2, t)
        fea2 = m("L2_dcnpack")(src[1], off2)
        fea2 = _lrelu(m("L2_fea_conv")(torch.cat([fea2, _up2(fea3)], 1)))
        off1 = _lrelu(m("L1_offset_conv1")(torch.cat([src[0], ref[0]], 1)))
        off1 = _lrelu(m("L1_offset_conv2")(torch.cat([off1, _up2(off2) * 2], 1)))
        off1 = self._last_offset(off1, m("L1_offset_conv3"), d, 1, t)
        fea1 = m("L1_dcnpack")(src[0], off1)
        return m("L1_fea_conv")(torch.cat([fea1, _up2(fea2)], 1))

    def _last_offset(self, x: torch.Tensor, conv: nn.Conv2d, d: str, level: int,
                     t: torch.Tensor | None) -> torch.Tensor:
        """The last offset convolution of a pyramid level (TMNet modulates it with time ``t`` here)."""
        return _lrelu(conv(x))

    def forward(self, fea1: list[torch.Tensor], fea2: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([self._align(fea1, fea2, "1"), self._align(fea2, fea1, "2")], dim=1)


class Pyramid(nn.Module):
    """Strided convolutions giving the 1/2 and 1/4 levels of a feature map."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.fea_L2_conv1 = nn.Conv2d(nf, nf, 3, 2, 1)
        self.fea_L2_conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.fea_L3_conv1 = nn.Conv2d(nf, nf, 3, 2, 1)
        self.fea_L3_conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def pyramid(self, l1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        l2 = _lrelu(self.fea_L2_conv2(_lrelu(self.fea_L2_conv1(l1))))
        l3 = _lrelu(self.fea_L3_conv2(_lrelu(self.fea_L3_conv1(l2))))
        return l1, l2, l3


class EasyPCD(Pyramid):
    """Pyramid + PCD alignment + 1x1 fusion of two feature maps (aligns ConvLSTM states)."""

    def __init__(self, nf: int = 64, groups: int = 8):
        super().__init__(nf)
        self.pcd_align = PCDAlign(nf, groups)
        self.fusion = nn.Conv2d(2 * nf, nf, 1, 1)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        b = f1.shape[0]
        levels = self.pyramid(torch.cat([f1, f2], dim=0))
        return self.fusion(self.pcd_align([lv[:b] for lv in levels], [lv[b:] for lv in levels]))


class ConvLSTMCell(nn.Module):
    """Standard ConvLSTM cell (gates i, f, o, g from one 3x3 conv)."""

    def __init__(self, input_dim: int = 64, hidden_dim: int = 64):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.conv = nn.Conv2d(input_dim + hidden_dim, 4 * hidden_dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = torch.split(self.conv(torch.cat([x, h], 1)), self.hidden_dim, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class DeformableConvLSTM(nn.Module):
    """One-layer ConvLSTM whose hidden and cell states are PCD-aligned to each new input."""

    def __init__(self, nf: int = 64, groups: int = 8):
        super().__init__()
        self.cell_list = nn.ModuleList([ConvLSTMCell(nf, nf)])
        self.pcd_h = EasyPCD(nf, groups)
        self.pcd_c = EasyPCD(nf, groups)

    def step(self, x: torch.Tensor, hid: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: input ``[B, C, H, W]`` and the states -> the new hidden and cell states."""
        return self.cell_list[0](x, self.pcd_h(x, hid), self.pcd_c(x, cell))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _, h, w = x.shape
        hid = x.new_zeros(b, self.cell_list[0].hidden_dim, h, w)
        cell = torch.zeros_like(hid)
        outs = []
        for t in range(n):
            hid, cell = self.step(x[:, t], hid, cell)
            outs.append(hid)
        return torch.stack(outs, dim=1)


class BiDeformableConvLSTM(nn.Module):
    """The deformable ConvLSTM run forwards and backwards (shared weights), merged by a 1x1 conv."""

    def __init__(self, nf: int = 64, groups: int = 8):
        super().__init__()
        self.forward_net = DeformableConvLSTM(nf, groups)
        self.conv_1x1 = nn.Conv2d(2 * nf, nf, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c, h, w = x.shape
        # Both directions share weights and are independent: run them as one batch.
        both = self.forward_net(torch.cat([x, x.flip(1)], dim=0))
        fwd, bwd = both[:b], both[b:].flip(1)
        out = self.conv_1x1(torch.cat([fwd, bwd], dim=2).reshape(b * n, 2 * c, h, w))
        return out.view(b, n, c, h, w)


class ZoomingSlowMo(Pyramid):
    """Official ``LunaTokis(nf=64, groups=8, front_RBs=5, back_RBs=40)``.

    ``forward(x)``: x ``[B, N, 3, H, W]`` RGB in [0, 1], N >= 2, H and W multiples of 4 ->
    ``[B, 2N-1, 3, 4H, 4W]``: the N inputs super-resolved with the N-1 midpoints between them.
    ``forward(x, skip_last=True)`` reconstructs only the first 2N-2 of them (the last frame's
    features still feed the ConvLSTM, so those outputs are unchanged).
    """

    NAME = "zsm"

    def __init__(self, nf: int = 64, groups: int = 8, front_RBs: int = 5, back_RBs: int = 40):
        super().__init__(nf)
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.feature_extraction = nn.Sequential(*[ResidualBlockNoBN(nf) for _ in range(front_RBs)])
        self.pcd_align = PCDAlign(nf, groups)
        self.fusion = nn.Conv2d(2 * nf, nf, 1, 1)
        self.ConvBLSTM = BiDeformableConvLSTM(nf, groups)
        self.recon_trunk = nn.Sequential(*[ResidualBlockNoBN(nf) for _ in range(back_RBs)])
        self.upconv1 = nn.Conv2d(nf, nf * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, 64 * 4, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.HRconv = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    @classmethod
    def check_input(cls, x: torch.Tensor) -> None:
        name = cls.NAME
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"{name}: input must be a floating-point tensor [B, N, 3, H, W] in [0, 1]")
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"{name}: input must be [B, N, 3, H, W] RGB, got shape {tuple(x.shape)}")
        if x.shape[1] < 2:
            raise ValueError(f"{name}: needs at least 2 input frames, got N={x.shape[1]}")
        if x.shape[3] % SIZE_MULTIPLE or x.shape[4] % SIZE_MULTIPLE:
            raise ValueError(f"{name}: height and width must be multiples of {SIZE_MULTIPLE}, "
                             f"got {x.shape[3]}x{x.shape[4]} (pad the frames first)")

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of every input frame at the three pyramid levels, each ``[B, N, C, h, w]``."""
        b, n, c, h, w = x.shape
        l1 = self.feature_extraction(_lrelu(self.conv_first(x.reshape(b * n, c, h, w))))
        return [lv.view(b, n, *lv.shape[1:]) for lv in self.pyramid(l1)]

    @staticmethod
    def interleave(frames: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """The feature sequence in time order: ``frames`` ``[B, N, C, H, W]`` with the ``new`` features
        ``[B, N-1, K, C, H, W]`` of each gap after the frame that starts it (length N + (N-1)K)."""
        b, _, c, h, w = frames.shape
        seq = torch.cat([frames[:, :-1].unsqueeze(2), new], dim=2).reshape(b, -1, c, h, w)
        return torch.cat([seq, frames[:, -1:]], dim=1)

    def reconstruct(self, feats: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """HR frames ``[B, T, 3, 4H, 4W]`` from sequence features ``[B, T, C, H, W]`` (the 40-block trunk,
        plus ``skip`` after it where given, then x4 pixel shuffle)."""
        b, t, c, h, w = feats.shape
        out = self.recon_trunk(feats.reshape(b * t, c, h, w))
        if skip is not None:
            out = out + skip.reshape(b * t, c, h, w)
        out = _lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = _lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(_lrelu(self.HRconv(out)))
        return out.view(b, t, 3, SCALE * h, SCALE * w)

    def forward(self, x: torch.Tensor, skip_last: bool = False) -> torch.Tensor:
        self.check_input(x)
        b, n, _, h, w = x.shape
        levels = self.extract(x)
        # The midpoint of every gap, made in one batch (frame k aligned with frame k+1).
        src = [lv[:, :-1].reshape(b * (n - 1), *lv.shape[2:]) for lv in levels]
        ref = [lv[:, 1:].reshape(b * (n - 1), *lv.shape[2:]) for lv in levels]
        mids = self.fusion(self.pcd_align(src, ref)).view(b, n - 1, 1, -1, h, w)
        feats = self.ConvBLSTM(self.interleave(levels[0], mids))
        if skip_last:
            feats = feats[:, :-1]
        return self.reconstruct(feats)


def build() -> ZoomingSlowMo:
    """The network with the official hyper-parameters (random init, nothing read from disk)."""
    return ZoomingSlowMo()
