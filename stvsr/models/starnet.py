"""STARnet (Haris et al., CVPR 2020): space-time-aware multi-resolution video enhancement.

A flow-refinement UNet, two RBPN projections (one per input frame, each aligned by the other's
optical flow), a motion encoder, and joint space-time back-projection between LR and HR
features. Parameter names follow the official ``FBPNSR_RBPN_V4_REF`` (minus the DataParallel
``module.`` prefix, which the loader strips), so ``FBPNSR_RBPN_V4_REF_Lr_STAR_ST.pth`` loads
unchanged. Nothing is read from disk here: the official constructor's own loading is not copied.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PARAMS = 111_610_863
WEIGHTS_FILE = "FBPNSR_RBPN_V4_REF_Lr_STAR_ST.pth"
SCALE = 4
# The flow UNet max-pools five times (floor) and pads each upsampled map back to its skip's size, so
# any height/width of at least 2**5 = 32 works exactly as in the official code; the stride-4 projections
# (kernel 8, padding 2) and the stride-2 HR pyramid map any size onto itself.
MIN_SIZE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_CLIP, FLOW_DIV = 150.0, 150.0  # the official eval clips flows to +-150 px and divides by 150
# Projection kernel for x4: kernel 8, stride 4, padding 2.
PROJ = (8, 4, 2)


def activation(kind: str | None) -> nn.Module | None:
    if kind == "prelu":
        return nn.PReLU()
    if kind == "lrelu":
        return nn.LeakyReLU(0.1)
    return None


class ConvBlock(nn.Module):
    """Conv2d + optional activation (``conv``/``act``)."""

    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, p: int = 1, act: str | None = "prelu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.act(x) if self.act is not None else x


class DeconvBlock(nn.Module):
    """ConvTranspose2d + optional activation (``deconv``/``act``)."""

    def __init__(self, cin: int, cout: int, k: int = 4, s: int = 2, p: int = 1, act: str | None = "prelu"):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, k, s, p)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.deconv(x)
        return self.act(x) if self.act is not None else x


class ResnetBlock(nn.Module):
    """act(x + conv2(act(conv1(x)))) with one shared activation module."""

    def __init__(self, nf: int, act: str = "prelu"):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))) + x)


def res_stack(nf: int, n: int, tail: nn.Module, act: str) -> nn.Sequential:
    return nn.Sequential(*[ResnetBlock(nf, act) for _ in range(n)], tail)


class UpBlock(nn.Module):
    """DBPN up-projection."""

    def __init__(self, nf: int):
        super().__init__()
        self.up_conv1 = DeconvBlock(nf, nf, *PROJ)
        self.up_conv2 = ConvBlock(nf, nf, *PROJ)
        self.up_conv3 = DeconvBlock(nf, nf, *PROJ)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = self.up_conv1(x)
        return self.up_conv3(self.up_conv2(h0) - x) + h0


class DownBlock(nn.Module):
    """DBPN down-projection."""

    def __init__(self, nf: int):
        super().__init__()
        self.down_conv1 = ConvBlock(nf, nf, *PROJ)
        self.down_conv2 = DeconvBlock(nf, nf, *PROJ)
        self.down_conv3 = ConvBlock(nf, nf, *PROJ)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l0 = self.down_conv1(x)
        return self.down_conv3(self.down_conv2(l0) - x) + l0


class DBPNS(nn.Module):
    """Small DBPN (3 up / 2 down projections) used inside RBPN."""

    def __init__(self, base_filter: int = 256, feat: int = 64, num_stages: int = 3):
        super().__init__()
        self.feat1 = ConvBlock(base_filter, feat, 1, 1, 0)
        self.up1, self.down1 = UpBlock(feat), DownBlock(feat)
        self.up2, self.down2 = UpBlock(feat), DownBlock(feat)
        self.up3 = UpBlock(feat)
        self.output = ConvBlock(num_stages * feat, feat, 1, 1, 0, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.up1(self.feat1(x))
        h2 = self.up2(self.down1(h1))
        h3 = self.up3(self.down2(h2))
        return self.output(torch.cat((h3, h2, h1), 1))


class RBPN(nn.Module):
    """Recurrent back-projection network for one neighbour frame (nFrames=2)."""

    def __init__(self, base_filter: int = 256, feat: int = 64, num_stages: int = 3, n_resblock: int = 5):
        super().__init__()
        self.feat0 = ConvBlock(3, base_filter)
        self.feat1 = ConvBlock(8, base_filter)
        self.DBPN = DBPNS(base_filter, feat, num_stages)
        self.res_feat1 = res_stack(base_filter, n_resblock, DeconvBlock(base_filter, feat, *PROJ), "prelu")
        self.res_feat2 = res_stack(feat, n_resblock, ConvBlock(feat, feat), "prelu")
        self.res_feat3 = res_stack(feat, n_resblock, ConvBlock(feat, base_filter, *PROJ), "prelu")
        self.output = ConvBlock(feat, 3, act=None)

    def forward(self, x: torch.Tensor, neighbour: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0 = self.DBPN(self.feat0(x))
        h1 = self.res_feat1(self.feat1(torch.cat((x, neighbour, flow), 1)))
        h = h0 + self.res_feat2(h0 - h1)
        return self.output(h), h


class PyramidModule(nn.Module):
    """Three-scale residual pyramid with cross-scale exchanges (official ``PyramidModule``)."""

    def __init__(self, nf: int, act: str = "lrelu"):
        super().__init__()
        for lvl, n, width in ((1, 5, nf), (2, 4, nf * 2), (3, 3, nf * 4)):
            for i in range(1, n + 1):
                self.add_module(f"l{lvl}_{i}", ResnetBlock(width, act))
        self.down1 = ConvBlock(nf, nf * 2, 4, 2, 1, act)
        self.down2 = ConvBlock(nf * 2, nf * 4, 4, 2, 1, act)
        self.up1 = DeconvBlock(nf * 2, nf, 4, 2, 1, act)
        self.up2 = DeconvBlock(nf * 4, nf * 2, 4, 2, 1, act)
        self.final = ConvBlock(nf, nf, 3, 1, 1, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a1 = self.l1_1(x)
        b1 = self.l2_1(self.down1(a1))
        c1 = self.l3_1(self.down2(b1))
        a2 = self.l1_2(a1 + self.up1(b1))
        b2 = self.l2_2(b1 + self.down1(a2) + self.up2(c1))
        c2 = self.l3_2(c1 + self.down2(b2))
        a3 = self.l1_3(a2 + self.up1(b2))
        b3 = self.l2_3(b2 + self.down1(a3) + self.up2(c2))
        c3 = self.l3_3(c2 + self.down2(b3))
        a4 = self.l1_4(a3 + self.up1(b3))
        b4 = self.l2_4(b3 + self.down1(a4) + self.up2(c3))
        a5 = self.l1_5(a4 + self.up1(b4))
        return self.final(a5)


class STARCore(nn.Module):
    """The space-time back-projection network (official ``FBPNSR_RBPN_V4``)."""

    def __init__(self, base_filter: int = 256, feat: int = 64, num_stages: int = 3, n_resblock: int = 5):
        super().__init__()
        self.motion_feat = ConvBlock(4, base_filter, act="lrelu")
        self.motion = res_stack(base_filter, 2, ConvBlock(base_filter, feat, act="lrelu"), "lrelu")
        self.t_net_lr = res_stack(feat * 5, 2, ConvBlock(feat * 5, feat * 2, act="lrelu"), "lrelu")
        self.t_net_hr = nn.Sequential(ConvBlock(feat * 3, feat, 1, 1, 0, "lrelu"), PyramidModule(feat, "lrelu"),
                                      ConvBlock(feat, feat, act="lrelu"))
        self.interp_block = res_stack(feat * 5, n_resblock, DeconvBlock(feat * 5, feat, *PROJ, act="lrelu"), "lrelu")
        self.motion_up_f = res_stack(feat * 5, n_resblock, DeconvBlock(feat * 5, feat, *PROJ, act="lrelu"), "lrelu")
        self.motion_up_b = res_stack(feat * 5, n_resblock, DeconvBlock(feat * 5, feat, *PROJ, act="lrelu"), "lrelu")
        self.motion_down = res_stack(feat, 2, ConvBlock(feat, feat * 2, *PROJ, act="lrelu"), "lrelu")
        self.reconstruction_l = ConvBlock(feat * 2, 3, act=None)
        self.reconstruction_h = ConvBlock(feat, 3, act=None)
        self.RBPN = RBPN(base_filter, feat, num_stages, n_resblock)

    @staticmethod
    def _bp(x: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """Back-projection update x + lrelu(x - estimate)."""
        return x + F.leaky_relu(x - estimate, 0.1)

    def forward(self, im1, im2, flow_f, flow_b):
        _, h1 = self.RBPN(im1, im2, flow_f)
        _, h2 = self.RBPN(im2, im1, flow_b)
        l1, l2 = self.motion_down(h1), self.motion_down(h2)
        m = self.motion(self.motion_feat(torch.cat((flow_f, flow_b), 1)))
        m_half = self.motion(self.motion_feat(torch.cat((flow_f / 2.0, flow_b / 2.0), 1)))
        up_m = F.interpolate(m, scale_factor=SCALE, mode="bilinear", align_corners=True)
        ht = self.interp_block(torch.cat((l1, l2, m), 1))
        ht = self._bp(ht, self.t_net_hr(torch.cat((h1, h2, up_m), 1)))
        lt = self._bp(self.motion_down(ht), self.t_net_lr(torch.cat((l1, l2, m), 1)))
        # Joint refinement: backward projection onto frame 1, forward onto frame 2, then both onto t.
        hb = self.motion_up_b(torch.cat((l1, lt, m_half), 1))
        h1, l1 = self._bp(h1, hb), self._bp(l1, self.motion_down(hb))
        hf = self.motion_up_f(torch.cat((lt, l2, m_half), 1))
        h2, l2 = self._bp(h2, hf), self._bp(l2, self.motion_down(hf))
        htf = self.motion_up_f(torch.cat((l1, lt, m_half), 1))
        ht, lt = self._bp(ht, htf), self._bp(lt, self.motion_down(htf))
        htb = self.motion_up_b(torch.cat((lt, l2, m_half), 1))
        ht, lt = self._bp(ht, htb), self._bp(lt, self.motion_down(htb))
        return (self.reconstruction_h(ht), self.reconstruction_h(h1), self.reconstruction_h(h2),
                self.reconstruction_l(lt))


class DoubleConv(nn.Module):
    """(conv, BatchNorm, ReLU) x 2 under ``conv``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Wrap(nn.Module):
    """Holds one submodule under an official attribute name (``conv`` or ``mpconv``)."""

    def __init__(self, name: str, module: nn.Module):
        super().__init__()
        self.add_module(name, module)
        self._inner = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self._inner)(x)


class UpStage(nn.Module):
    """Bilinear x2 (align_corners=True), pad to the skip's size, concatenate, double conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        x = F.pad(x, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))
        return self.conv(torch.cat([skip, x], dim=1))


class FlowUNet(nn.Module):
    """Flow-refinement UNet (8 -> 2 channels, five poolings, BatchNorm); sigmoid output."""

    def __init__(self, cin: int = 8, cout: int = 2):
        super().__init__()
        self.inc = _Wrap("conv", DoubleConv(cin, 64))
        for i, (a, b) in enumerate(((64, 128), (128, 256), (256, 512), (512, 1024), (1024, 1024)), start=1):
            self.add_module(f"down{i}", _Wrap("mpconv", nn.Sequential(nn.MaxPool2d(2), DoubleConv(a, b))))
        for i, (a, b) in enumerate(((2048, 512), (1024, 256), (512, 128), (256, 64), (128, 64)), start=1):
            self.add_module(f"up{i}", UpStage(a, b))
        self.outc = _Wrap("conv", nn.Conv2d(64, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for i in range(1, 6):
            skips.append(getattr(self, f"down{i}")(skips[-1]))
        x = skips.pop()
        for i in range(1, 6):
            x = getattr(self, f"up{i}")(x, skips.pop())
        return torch.sigmoid(self.outc(x))


class STARnet(nn.Module):
    """Official eval network ``FBPNSR_RBPN_V4_REF(256, 64, 3, 5, 4)``.

    ``forward(x1, x2, flow_f, flow_b)``: two LR frames ``[B, 3, H, W]`` (ImageNet-normalised RGB)
    and their optical flows ``[B, 2, H, W]`` (x1->x2 and x2->x1, in pixels divided by 150) ->
    (HR middle frame, HR of x1, HR of x2, LR middle frame), all ImageNet-normalised. Each flow
    is first corrected by the UNet; as in the official code the correction is a sigmoid, so it
    always lies in (0, 1) and is added to the flow.
    """

    def __init__(self, base_filter: int = 256, feat: int = 64, num_stages: int = 3, n_resblock: int = 5):
        super().__init__()
        self.model = STARCore(base_filter, feat, num_stages, n_resblock)
        self.flow_net = FlowUNet(8, 2)

    def check_input(self, x1, x2, flow_f, flow_b) -> None:
        """ValueError naming the violated constraint; shape/dtype checks only (export-safe)."""
        dtype = next(self.parameters()).dtype
        for name, t, ch in (("x1", x1, 3), ("x2", x2, 3), ("flow_f", flow_f, 2), ("flow_b", flow_b, 2)):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise ValueError(f"starnet: {name} must be a floating-point tensor")
            if t.dtype != dtype:
                raise ValueError(f"starnet: {name} has dtype {t.dtype}, the network's weights are {dtype}")
            if t.dim() != 4 or t.shape[1] != ch:
                raise ValueError(f"starnet: {name} must be [B, {ch}, H, W], got shape {tuple(t.shape)}")
            if t.shape[0] != x1.shape[0] or t.shape[2:] != x1.shape[2:]:
                raise ValueError(f"starnet: {name} {tuple(t.shape)} does not match x1 {tuple(x1.shape)}")
        h, w = x1.shape[2], x1.shape[3]
        if h < MIN_SIZE or w < MIN_SIZE:
            raise ValueError(f"starnet: height and width must be at least {MIN_SIZE} (the flow UNet pools "
                             f"five times), got {h}x{w} (pad the frames first)")

    def forward(self, x1, x2, flow_f, flow_b):
        self.check_input(x1, x2, flow_f, flow_b)
        flow_f = flow_f + self.flow_net(torch.cat((flow_f, x1, x2), 1))
        flow_b = flow_b + self.flow_net(torch.cat((flow_b, x2, x1), 1))
        return self.model(x1, x2, flow_f, flow_b)


def build() -> STARnet:
    """The network with the official hyper-parameters (random init, nothing read from disk)."""
    return STARnet()
