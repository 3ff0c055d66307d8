"""Dutta et al. (CVPRW 2021): efficient space-time video super-resolution with LR flow and mask upsampling.

Flows and an occlusion mask are estimated once at low resolution (PWC-Net, quadratic flow to
time t, flow reversal, GridNet refinement, mask net), upsampled x4 and reused to warp and blend
the RSDN super-resolved neighbours; a second GridNet adds a residual. Parameter names follow
the official ``STSR_net`` so ``stsr-21-11279.pth`` loads unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stvsr.ops import backward_warp, correlation, reverse_flow

PARAMS = 20_091_210
WEIGHTS_FILE = "stsr-21-11279.pth"
SCALE = 4
WINDOW = 4
SIZE_MULTIPLE = 4
INTERPOLATE_SR_FRAMES = 3   # interpolate() uses SR frames 1 and 2; recurrence needs 0 before them


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def _resize(x: torch.Tensor, size: tuple[int, int] | None = None, scale: float | None = None) -> torch.Tensor:
    """Bilinear resize as PyTorch 1.1 did by default (align_corners=False)."""
    return F.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=False)


def official_backwarp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The official ``backwarp``: its grid ``2*(x/W - 0.5)`` read with align_corners=True samples
    pixel ``(j + u) * (W - 1) / W`` (not ``j + u``); reproduced exactly by rescaling the flow."""
    h, w = img.shape[2], img.shape[3]
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, w)
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(h, 1)
    u = (xs + flow[:, 0]) * ((w - 1) / w) - xs
    v = (ys + flow[:, 1]) * ((h - 1) / h) - ys
    return backward_warp(img, torch.stack((u, v), dim=1), "zeros")


def _conv_lrelu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, dilation, dilation), nn.LeakyReLU(0.1)]


class PWCExtractor(nn.Module):
    NAMES = ("moduleOne", "moduleTwo", "moduleThr", "moduleFou", "moduleFiv", "moduleSix")
    WIDTHS = (3, 16, 32, 64, 96, 128, 196)

    def __init__(self):
        super().__init__()
        for name, cin, cout in zip(self.NAMES, self.WIDTHS[:-1], self.WIDTHS[1:]):
            self.add_module(name, nn.Sequential(*_conv_lrelu(cin, cout, 2), *_conv_lrelu(cout, cout),
                                                *_conv_lrelu(cout, cout)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for name in self.NAMES:
            x = getattr(self, name)(x)
            feats.append(x)
        return feats


class PWCDecoder(nn.Module):
    """One pyramid level of PWC-Net's flow estimator (sniklaus naming)."""

    DENSE = (128, 128, 96, 64, 32)
    NAMES = ("moduleOne", "moduleTwo", "moduleThr", "moduleFou", "moduleFiv")
    WARP_SCALE = {5: 0.625, 4: 1.25, 3: 2.5, 2: 5.0}

    @staticmethod
    def width(level: int) -> int:
        return 81 if level == 6 else 81 + PWCExtractor.WIDTHS[level] + 4

    def __init__(self, level: int):
        super().__init__()
        self.level = level
        cur = self.width(level)
        if level < 6:
            self.moduleUpflow = nn.ConvTranspose2d(2, 2, 4, 2, 1)
            self.moduleUpfeat = nn.ConvTranspose2d(self.width(level + 1) + sum(self.DENSE), 2, 4, 2, 1)
        for i, (name, width) in enumerate(zip(self.NAMES, self.DENSE)):
            self.add_module(name, nn.Sequential(*_conv_lrelu(cur + sum(self.DENSE[:i]), width)))
        self.moduleSix = nn.Sequential(nn.Conv2d(cur + sum(self.DENSE), 2, 3, 1, 1))

    @staticmethod
    def masked_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Backward warp that zeroes pixels whose footprint leaves the image (official ``Backward``)."""
        ones = torch.ones_like(x[:, :1])
        out = backward_warp(torch.cat([x, ones], 1), flow, "zeros")
        mask = (out[:, -1:] > 0.999).to(x.dtype)
        return out[:, :-1] * mask

    def forward(self, first, second, previous):
        if previous is None:
            feat = _lrelu(correlation(first, second, 4))
        else:
            flow = self.moduleUpflow(previous[0])
            up_feat = self.moduleUpfeat(previous[1])
            warped = self.masked_warp(second, flow * self.WARP_SCALE[self.level])
            feat = torch.cat([_lrelu(correlation(first, warped, 4)), first, flow, up_feat], 1)
        for name in self.NAMES:
            feat = torch.cat([getattr(self, name)(feat), feat], 1)
        return self.moduleSix(feat), feat


class PWCNet(nn.Module):
    """PWC-Net as in sniklaus' re-implementation; inputs resized to multiples of 64, flow x20."""

    def __init__(self):
        super().__init__()
        self.moduleExtractor = PWCExtractor()
        for level, name in zip((2, 3, 4, 5, 6), ("moduleTwo", "moduleThr", "moduleFou", "moduleFiv", "moduleSix")):
            self.add_module(name, PWCDecoder(level))
        top = PWCDecoder.width(2) + sum(PWCDecoder.DENSE)
        layers: list[nn.Module] = []
        for cin, cout, dil in ((top, 128, 1), (128, 128, 2), (128, 128, 4), (128, 96, 8), (96, 64, 16), (64, 32, 1)):
            layers += _conv_lrelu(cin, cout, dilation=dil)
        self.moduleRefiner = nn.Module()
        self.moduleRefiner.moduleMain = nn.Sequential(*layers, nn.Conv2d(32, 2, 3, 1, 1))

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        h, w = first.shape[2], first.shape[3]
        ph, pw = (h + 63) // 64 * 64, (w + 63) // 64 * 64
        b = first.shape[0]
        feats = self.moduleExtractor(_resize(torch.cat([first, second], 0), size=(ph, pw)))
        est = None
        for name in ("moduleSix", "moduleFiv", "moduleFou", "moduleThr", "moduleTwo"):
            level = getattr(self, name).level
            est = getattr(self, name)(feats[level - 1][:b], feats[level - 1][b:], est)
        flow = est[0] + self.moduleRefiner.moduleMain(est[1])
        flow = 20.0 * _resize(flow, size=(h, w))
        return torch.cat([flow[:, :1] * (w / pw), flow[:, 1:] * (h / ph)], dim=1)


class LateralBlock(nn.Module):
    def __init__(self, cin: int, cout: int, residual: bool = True):
        super().__init__()
        self.block = nn.Sequential(nn.PReLU(), nn.Conv2d(cin, cout, 3, 1, 1), nn.PReLU(), nn.Conv2d(cout, cout, 3, 1, 1))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.Sequential(nn.PReLU(), nn.Conv2d(cin, cout, 3, 2, 1), nn.PReLU(), nn.Conv2d(cout, cout, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.PReLU(),
                                   nn.Conv2d(cin, cout, 3, 1, 1), nn.PReLU(), nn.Conv2d(cout, cout, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class GridNet(nn.Module):
    """GridNet with three rows (32/64/96 channels) wired as the official one; returns (output, features)."""

    def __init__(self, cin: int, cout: int, widths: tuple[int, int, int] = (32, 64, 96)):
        super().__init__()
        c1, c2, c3 = widths
        self.Lin = LateralBlock(cin, c1, residual=False)
        for row, width in enumerate(widths):
            for col in range(5):
                self.add_module(f"L{row}{col}", LateralBlock(width, width))
        self.Lout = LateralBlock(c1, cout, residual=False)
        for col in range(3):
            self.add_module(f"d0{col}", DownBlock(c1, c2))
            self.add_module(f"d1{col}", DownBlock(c2, c3))
            self.add_module(f"u0{col}", UpBlock(c2, c1))
            self.add_module(f"u1{col}", UpBlock(c3, c2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lin = self.Lin(x)
        l00 = self.L00(lin)
        l01 = self.L01(l00)
        l02 = self.L02(l01)
        d00, d01, d02 = self.d00(lin), self.d01(l00), self.d02(l01)
        l10 = self.L10(d00)
        l11 = self.L11(d01 + l10)
        l12 = self.L12(d02 + l11)
        d10, d11, d12 = self.d10(d00), self.d11(l10 + d01), self.d12(l11 + d02)
        l20 = self.L20(d10)
        l21 = self.L21(d11 + l20)
        l22 = self.L22(d12 + l21)
        u10 = self.u10(l22)
        l23 = self.L23(l22)
        u11 = self.u11(l23)
        u12 = self.u12(self.L24(l23))
        l13 = self.L13(u10 + l12)
        l14 = self.L14(u11 + l13)
        u00, u01, u02 = self.u00(u10 + l12), self.u01(u11 + l13), self.u02(u12 + l14)
        l03 = self.L03(u00 + l02)
        feature = self.L04(u01 + l03) + u02
        return self.Lout(feature), feature


class MaskNet(nn.Module):
    """Three-layer occlusion-mask predictor (logits)."""

    def __init__(self, cin: int = 38, cout: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(_lrelu(self.conv2(_lrelu(self.conv1(x)))))


class StructureDetailBlock(nn.Module):
    """RSDN's two-branch residual block exchanging structure and detail."""

    def __init__(self, nf: int = 128):
        super().__init__()
        self.conv_d1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_d2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_s1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_s2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, hd: torch.Tensor, hs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        both = self.conv_d2(F.relu(self.conv_d1(hd))) + self.conv_s2(F.relu(self.conv_s1(hs)))
        return both + hd, both + hs


class RSDNCell(nn.Module):
    """One recurrent step of RSDN (official ``neuro``): hidden state gated by a dynamic 3x3 filter."""

    def __init__(self, nf: int = 128, blocks: int = 9):
        super().__init__()
        self.nf = nf
        self.forget = nn.Conv2d(3, 9, 3, 1, 1)
        self.conv_d = nn.Conv2d(16 * 3 + nf + 3 * 2, nf, 3, 1, 1)
        self.conv_s = nn.Conv2d(16 * 3 + nf + 3 * 2, nf, 3, 1, 1)
        for i in range(1, blocks + 1):
            self.add_module(f"SD{i}", StructureDetailBlock(nf))
        self.blocks = blocks
        self.conv_hd = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_od = nn.Conv2d(nf, 48, 3, 1, 1)
        self.conv_hs = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_os = nn.Conv2d(nf, 48, 3, 1, 1)
        # Identity 3x3 taps per channel: a depthwise conv that gathers each pixel's neighbourhood.
        self.register_buffer("taps", torch.eye(9).view(9, 1, 3, 3).repeat(nf, 1, 1, 1), persistent=False)

    def forward(self, d, s, hsd, od, os_, ref):
        filters = _lrelu(self.forget(ref))  # [B, 9, H, W]
        b, _, h, w = hsd.shape
        neighbourhood = F.conv2d(hsd, self.taps.to(hsd.dtype), padding=1, groups=self.nf).view(b, self.nf, 9, h, w)
        gate = torch.sigmoid((neighbourhood * filters.unsqueeze(1)).sum(dim=2))
        hsd = gate * hsd
        hd = _lrelu(self.conv_d(torch.cat((d, hsd, od), 1)))
        hs = _lrelu(self.conv_s(torch.cat((s, hsd, os_), 1)))
        for i in range(1, self.blocks + 1):
            hd, hs = getattr(self, f"SD{i}")(hd, hs)
        return _lrelu(self.conv_hd(hd)), _lrelu(self.conv_hs(hs)), self.conv_od(hd), self.conv_os(hs)


class RSDN(nn.Module):
    """Recurrent structure-detail network (official ``RSDN9_128``, x4)."""

    def __init__(self, scale: int = SCALE, nf: int = 128):
        super().__init__()
        self.neuro = RSDNCell(nf)
        self.conv = nn.Conv2d(48 * 2, 48, 3, 1, 1)
        self.scale, self.nf = scale, nf

    def forward(self, lr, detail, structure, steps: int | None = None):
        """SR frames 0..steps-1 (default all): ``steps`` < T skips the recurrent steps after them,
        which nothing before them depends on (the outputs computed are unchanged)."""
        b, t, _, h, w = detail.shape
        zeros = lr.new_zeros(b, 1, h, w)
        od = os_ = zeros.expand(b, 48, h, w)
        hsd = zeros.expand(b, self.nf, h, w)
        # Step k sees detail/structure of frames (1, 0) first, then (k-1, k); reference frame k.
        pairs = [(1, 0)] + [(k - 1, k) for k in range(1, t)]
        pairs = pairs[:steps]
        out, out_d, out_s = [], [], []
        for k, (i, j) in enumerate(pairs):
            hd, hs, od, os_ = self.neuro(torch.cat((detail[:, i], detail[:, j]), 1),
                                         torch.cat((structure[:, i], structure[:, j]), 1), hsd, od, os_, lr[:, k])
            hsd = hd + hs
            out_d.append(F.pixel_shuffle(od, self.scale))
            out_s.append(F.pixel_shuffle(os_, self.scale))
            out.append(F.pixel_shuffle(self.conv(torch.cat((od, os_), 1)), self.scale))
        return torch.stack(out, 1), torch.stack(out_d, 1), torch.stack(out_s, 1)


def _quadratic_flow(f_prev: torch.Tensor, f_next: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Flow from the middle frame to time t under constant acceleration (official ``qfe``)."""
    return 0.5 * (f_next - f_prev) * t + 0.5 * (f_next + f_prev) * t**2


def _blend(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return ((1 - t) * mask * a + t * (1 - mask) * b) / ((1 - t) * mask + t * (1 - mask))


class FMU(nn.Module):
    """Official ``STSR_net``.

    ``forward(frames, t)``: frames ``[B, 4, 3, H, W]`` BGR in [0, 1] (H, W multiples of 4), t a
    float or 0-d tensor in (0, 1) between frames 1 and 2 -> (pred ``[B, 4, 3, 4H, 4W]``,
    pred_detail, pred_structure, HR frame at t ``[B, 3, 4H, 4W]``, LR frame at t ``[B, 3, H, W]``).
    ``interpolate(frames, times)`` renders many times at once (T folded into the batch).
    """

    interpolate_sr_frames: int | None = INTERPOLATE_SR_FRAMES  # None: all 4 (the official cost)

    def __init__(self):
        super().__init__()
        self.flownet = PWCNet()
        self.refinenet = GridNet(20, 8)
        self.masknet = MaskNet(38, 1)
        self.vsrnet = RSDN(SCALE)
        self.synthnet = GridNet(20, 3)

    @staticmethod
    def check_input(frames: torch.Tensor) -> None:
        if not isinstance(frames, torch.Tensor) or not frames.is_floating_point():
            raise ValueError("fmu: frames must be a floating-point tensor [B, 4, 3, H, W], BGR in [0, 1]")
        if frames.dim() != 5 or frames.shape[1] != WINDOW or frames.shape[2] != 3:
            raise ValueError(f"fmu: frames must be [B, {WINDOW}, 3, H, W], got shape {tuple(frames.shape)}")
        if frames.shape[3] % SIZE_MULTIPLE or frames.shape[4] % SIZE_MULTIPLE:
            raise ValueError(f"fmu: height and width must be multiples of {SIZE_MULTIPLE}, "
                             f"got {frames.shape[3]}x{frames.shape[4]} (pad the frames first)")

    def _shared(self, frames: torch.Tensor, sr_frames: int | None = None):
        """Everything that does not depend on t: flows between neighbours and the RSDN output
        (frames 0..sr_frames-1 super-resolved; default all)."""
        b, n, c, h, w = frames.shape
        i0, i1, i2, i3 = frames.unbind(1)
        flows = self.flownet(torch.cat([i1, i1, i2, i2], 0), torch.cat([i0, i2, i3, i1], 0))
        f10, f12, f23, f21 = flows.split(b, 0)
        lr = frames.reshape(b, n * c, h, w)
        structure = _resize(_resize(lr, scale=0.5), scale=2.0)
        detail = lr - structure
        pred = self.vsrnet(frames, detail.view(b, n, c, h, w), structure.view(b, n, c, h, w), sr_frames)
        return (f10, f12, f23, f21), pred

    def _at_times(self, frames: torch.Tensor, flows, pred_hr: torch.Tensor, times: torch.Tensor):
        """HR and LR frames at every time in ``times`` ([T]); returns [T*B, ...] in time-major order."""
        b = frames.shape[0]
        nt = times.shape[0]
        t = times.to(frames.dtype).repeat_interleave(b).view(nt * b, 1, 1, 1)

        def tile(x: torch.Tensor) -> torch.Tensor:
            return x.repeat(nt, *([1] * (x.dim() - 1)))

        f10, f12, f23, f21 = (tile(f) for f in flows)
        i1, i2 = tile(frames[:, 1]), tile(frames[:, 2])
        i1_h, i2_h = tile(pred_hr[:, 1]), tile(pred_hr[:, 2])
        ft1 = reverse_flow(_quadratic_flow(f10, f12, t))
        ft2 = reverse_flow(_quadratic_flow(f23, f21, 1 - t))
        i1t, i2t = official_backwarp(i1, ft1), official_backwarp(i2, ft2)
        out, feature = self.refinenet(torch.cat([i1, i2, i1t, i2t, f12, f21, ft1, ft2], 1))
        ft1r = official_backwarp(ft1, 10 * torch.tanh(out[:, 4:6])) + out[:, :2]
        ft2r = official_backwarp(ft2, 10 * torch.tanh(out[:, 6:8])) + out[:, 2:4]
        i1tf, i2tf = official_backwarp(i1, ft1r), official_backwarp(i2, ft2r)
        mask = torch.sigmoid(self.masknet(torch.cat([i1tf, i2tf, feature], 1))).repeat(1, 3, 1, 1)
        lr_t = _blend(i1tf, i2tf, mask, t)
        ft1r_h, ft2r_h = 4 * _resize(ft1r, scale=4.0), 4 * _resize(ft2r, scale=4.0)
        mask_h = _resize(mask, scale=4.0)
        i1tf_h, i2tf_h = official_backwarp(i1_h, ft1r_h), official_backwarp(i2_h, ft2r_h)
        hr_blend = _blend(i1tf_h, i2tf_h, mask_h, t)
        residual, _ = self.synthnet(torch.cat((i1_h, i2_h, i1tf_h, i2tf_h, hr_blend, mask_h[:, :1], ft1r_h, ft2r_h), 1))
        return hr_blend + residual, lr_t

    def forward(self, frames: torch.Tensor, t: float | torch.Tensor = 0.5):
        self.check_input(frames)
        flows, (pred, pred_d, pred_s) = self._shared(frames)
        hr_t, lr_t = self._at_times(frames, flows, pred, torch.as_tensor(t, dtype=frames.dtype).reshape(1))
        return pred, pred_d, pred_s, hr_t, lr_t

    def interpolate(self, frames: torch.Tensor, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pred ``[B, 3, 3, 4H, 4W]``: frames 0-2 super-resolved as by ``forward``, HR frames at
        ``times`` ``[B, T, 3, 4H, 4W]``). RSDN's step for frame 3 is skipped: the frames at ``times``
        need only frames 1 and 2, and no earlier step depends on it."""
        self.check_input(frames)
        if not isinstance(times, torch.Tensor) or times.dim() != 1:
            raise ValueError("fmu: times must be a 1-D tensor of values in (0, 1)")
        flows, (pred, _, _) = self._shared(frames, sr_frames=self.interpolate_sr_frames)
        hr_t, _ = self._at_times(frames, flows, pred, times)
        b = frames.shape[0]
        return pred, hr_t.view(times.shape[0], b, *hr_t.shape[1:]).transpose(0, 1)


def build() -> FMU:
    """The network with the official hyper-parameters (random init, nothing read from disk)."""
    return FMU()
