"""STVUN (Kang et al., ECCV 2020): deep space-time video upsampling networks.

An encoder shared by the 7 input frames, early-fusion spatio-temporal attention (EFST), a
spatial decoder for the centre frame, and a spatio-temporal decoder that renders any number of
intermediate times from encoder features warped by a PWC-Net flow. Parameter names follow the
official ``STVUN`` so ``STVUN.pth`` loads unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stvsr.ops import backward_warp, correlation

PARAMS = 30_882_276
WEIGHTS_FILE = "STVUN.pth"
SCALE = 4
WINDOW = 7
CENTRE = 3
SIZE_MULTIPLE = 16


def conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv2d + LeakyReLU(0.1), named ``<name>.0`` like the official helper."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, dilation), nn.LeakyReLU(0.1))


def upsample4(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x4 as ``F.upsample`` behaved in PyTorch 1.2 (align_corners=False)."""
    return F.interpolate(x, scale_factor=SCALE, mode="bilinear", align_corners=False)


class DenseBlock(nn.Module):
    """conv0 then conv1 over [conv0(x), x]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = conv(cin, cin)
        self.conv1 = conv(cin * 2, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(torch.cat((self.conv0(x), x), 1))


class Encoder(nn.Module):
    """Four dense blocks; returns their outputs deepest first."""

    def __init__(self, nif: int = 64):
        super().__init__()
        self.conv = conv(3, nif)
        for i in range(4):
            self.add_module(f"block{i}", DenseBlock(nif, nif))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = self.conv(x)
        for i in range(4):
            x = getattr(self, f"block{i}")(x)
            feats.append(x)
        return feats[::-1]


class Decoder(nn.Module):
    """Four dense stages, each fed one encoder level and the previous stage; residual image out."""

    def __init__(self, nif: int = 64, scale: int = SCALE):
        super().__init__()
        od = nif * 2
        for s in range(4):
            if s:
                self.add_module(f"cconv{s}", nn.Conv2d(nif * 2, nif, 1))
            self.add_module(f"block{s}_0", DenseBlock(od, od))
            self.add_module(f"block{s}_1", DenseBlock(od * 2, od * 2))
            self.add_module(f"block{s}_2", DenseBlock(od * 4, nif))
        self.rconv0 = conv(nif, 3 * scale**2)
        self.rconv1 = nn.Conv2d(3 * scale**2, 3 * scale**2, 3, padding=1)

    def forward(self, tsx: list[torch.Tensor], rsx: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        outs = []
        for s in range(4):
            side = rsx[0] if s == 0 else getattr(self, f"cconv{s}")(torch.cat((outs[-1], rsx[s]), 1))
            x = torch.cat((tsx[s], side), 1)
            s0 = torch.cat((x, getattr(self, f"block{s}_0")(x)), 1)
            s1 = torch.cat((s0, getattr(self, f"block{s}_1")(s0)), 1)
            outs.append(getattr(self, f"block{s}_2")(s1))
        return outs, self.rconv1(self.rconv0(outs[-1]))


class FeatureFusion(nn.Module):
    """Temporal then pyramid spatial attention over the 7 frames' features (after EDVR's TSA)."""

    def __init__(self, frames: int = WINDOW, nif: int = 64):
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avgpool = nn.AvgPool2d(3, stride=2, padding=1)
        self.tAtt0 = nn.Conv2d(nif, nif, 3, padding=1)
        self.tAtt1 = nn.Conv2d(nif, nif, 3, padding=1)
        self.sAtt1 = conv(frames * nif, nif, 1, padding=0)
        self.sAtt2 = conv(nif * 2, nif, 1, padding=0)
        self.sAtt3 = conv(nif, nif)
        self.sAtt4 = conv(nif, nif, 1, padding=0)
        self.sAtt5 = nn.Conv2d(nif, nif, 3, padding=1)
        self.sAttL1 = conv(nif, nif, 1, padding=0)
        self.sAttL2 = conv(nif * 2, nif)
        self.sAttL3 = conv(nif, nif)
        self.sAttA1 = conv(nif, nif, 1, padding=0)
        self.sAttA2 = nn.Conv2d(nif, nif, 1)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.maxpool(x), self.avgpool(x)], dim=1)

    def forward(self, feats: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        b, n, c, h, w = feats.shape
        emb_ref = self.tAtt1(target)
        emb = self.tAtt0(feats.reshape(b * n, c, h, w)).view(b, n, c, h, w)
        prob = torch.sigmoid((emb * emb_ref.unsqueeze(1)).sum(dim=2))  # [B, N, H, W]
        weighted = (feats * prob.unsqueeze(2)).reshape(b, n * c, h, w)
        init_att = self.sAtt1(weighted)
        att = self.sAtt2(self._pool(init_att))
        att_l = self.sAttL3(self.sAttL2(self._pool(self.sAttL1(att))))
        att_l = F.interpolate(att_l, scale_factor=2, mode="bilinear", align_corners=False)
        att = self.sAtt4(self.sAtt3(att) + att_l)
        att = self.sAtt5(init_att + F.interpolate(att, scale_factor=2, mode="bilinear", align_corners=False))
        return target * torch.sigmoid(att) * 2 + self.sAttA2(self.sAttA1(att))


class EFST(nn.Module):
    """Early fusion (1x1 over the concatenated frames) refined by FeatureFusion, per encoder level."""

    def __init__(self, nif: int = 64):
        super().__init__()
        self.ff = FeatureFusion(WINDOW, nif)
        self.early_fusion = nn.Conv2d(nif * WINDOW, nif, 1)

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for feats in levels:  # feats: [B, 7, C, H, W]
            b, n, c, h, w = feats.shape
            outs.append(self.ff(feats, self.early_fusion(feats.reshape(b, n * c, h, w))))
        return outs


def predict_flow(cin: int) -> nn.Conv2d:
    return nn.Conv2d(cin, 2, 3, 1, 1)


def deconv(cin: int, cout: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1)


class PWCDCNet(nn.Module):
    """PWC-Net (NVlabs PWC-DC variant, md=4); returns the finest flow (1/4 of the input size)."""

    # Channel widths of the feature pyramid and of the dense estimator layers.
    PYRAMID = ((3, 16), (16, 32), (32, 64), (64, 96), (96, 128), (128, 196))
    DENSE = (128, 128, 96, 64, 32)
    WARP_SCALE = {5: 0.625, 4: 1.25, 3: 2.5, 2: 5.0}

    def __init__(self, md: int = 4):
        super().__init__()
        self.md = md
        for lvl, (cin, cout) in enumerate(self.PYRAMID, start=1):
            if lvl < 6:
                self.add_module(f"conv{lvl}a", conv(cin, cout, stride=2))
                self.add_module(f"conv{lvl}aa", conv(cout, cout))
            else:  # the official level 6 puts the stride in conv6aa
                self.add_module("conv6aa", conv(cin, cout, stride=2))
                self.add_module("conv6a", conv(cout, cout))
            self.add_module(f"conv{lvl}b", conv(cout, cout))
        nd = (2 * md + 1) ** 2
        for lvl in (6, 5, 4, 3, 2):
            od = nd if lvl == 6 else nd + self.PYRAMID[lvl - 1][1] + 4
            for i, width in enumerate(self.DENSE):
                self.add_module(f"conv{lvl}_{i}", conv(od + sum(self.DENSE[:i]), width))
            top = od + sum(self.DENSE)
            self.add_module(f"predict_flow{lvl}", predict_flow(top))
            self.add_module(f"deconv{lvl}", deconv(2))
            if lvl > 2:
                self.add_module(f"upfeat{lvl}", deconv(top))
        top = nd + self.PYRAMID[1][1] + 4 + sum(self.DENSE)
        for i, (cin, cout, dil) in enumerate(((top, 128, 1), (128, 128, 2), (128, 128, 4), (128, 96, 8),
                                              (96, 64, 16), (64, 32, 1)), start=1):
            self.add_module(f"dc_conv{i}", conv(cin, cout, padding=dil, dilation=dil))
        self.dc_conv7 = predict_flow(32)

    def _pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for lvl in range(1, 6):
            x = getattr(self, f"conv{lvl}b")(getattr(self, f"conv{lvl}aa")(getattr(self, f"conv{lvl}a")(x)))
            feats.append(x)
        feats.append(self.conv6b(self.conv6a(self.conv6aa(x))))
        return feats

    def _dense(self, lvl: int, x: torch.Tensor) -> torch.Tensor:
        for i in range(len(self.DENSE)):
            x = torch.cat((getattr(self, f"conv{lvl}_{i}")(x), x), 1)
        return x

    def forward(self, im1: torch.Tensor, im2: torch.Tensor) -> torch.Tensor:
        b = im1.shape[0]
        feats = self._pyramid(torch.cat([im1, im2], dim=0))
        c1, c2 = [f[:b] for f in feats], [f[b:] for f in feats]
        x = self._dense(6, F.leaky_relu(correlation(c1[5], c2[5], self.md), 0.1))
        flow = self.predict_flow6(x)
        for lvl in (5, 4, 3, 2):
            up_flow = getattr(self, f"deconv{lvl + 1}")(flow)
            up_feat = getattr(self, f"upfeat{lvl + 1}")(x)
            warped = backward_warp(c2[lvl - 1], up_flow * self.WARP_SCALE[lvl], "border")
            corr = F.leaky_relu(correlation(c1[lvl - 1], warped, self.md), 0.1)
            x = self._dense(lvl, torch.cat((corr, c1[lvl - 1], up_flow, up_feat), 1))
            flow = getattr(self, f"predict_flow{lvl}")(x)
        refine = self.dc_conv4(self.dc_conv3(self.dc_conv2(self.dc_conv1(x))))
        return flow + self.dc_conv7(self.dc_conv6(self.dc_conv5(refine)))


class STVUN(nn.Module):
    """Official ``STVUN`` (nif=64, x4).

    ``forward(frames, times)``: frames ``[B, 7, 3, H, W]`` in [-1, 1] (H, W multiples of 16),
    times a 1-D tensor of T values in (0, 1) between frames 3 and 4 -> ``[B, T+1, 3, 4H, 4W]``
    in [-1, 1]: the centre frame, then one frame per time. All times run as one batch.
    """

    def __init__(self, nif: int = 64):
        super().__init__()
        self.encoder = Encoder(nif)
        self.efst = EFST(nif)
        self.decoder = Decoder(nif)
        self.pwcnet = PWCDCNet()

    @staticmethod
    def check_input(frames: torch.Tensor, times: torch.Tensor) -> None:
        if not isinstance(frames, torch.Tensor) or not frames.is_floating_point():
            raise ValueError("stvun: frames must be a floating-point tensor [B, 7, 3, H, W] in [-1, 1]")
        if frames.dim() != 5 or frames.shape[1] != WINDOW or frames.shape[2] != 3:
            raise ValueError(f"stvun: frames must be [B, {WINDOW}, 3, H, W], got shape {tuple(frames.shape)}")
        if frames.shape[3] % SIZE_MULTIPLE or frames.shape[4] % SIZE_MULTIPLE:
            raise ValueError(f"stvun: height and width must be multiples of {SIZE_MULTIPLE}, "
                             f"got {frames.shape[3]}x{frames.shape[4]} (pad the frames first)")
        if not isinstance(times, torch.Tensor) or times.dim() != 1 or not times.is_floating_point():
            raise ValueError("stvun: times must be a 1-D floating-point tensor of values in (0, 1)")

    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        self.check_input(frames, times)
        b, n, c, h, w = frames.shape
        enc = self.encoder(frames.reshape(b * n, c, h, w))
        enc = [f.view(b, n, *f.shape[1:]) for f in enc]
        dec_feat, res = self.decoder([f[:, CENTRE] for f in enc], self.efst(enc))
        im3, im4 = frames[:, CENTRE], frames[:, CENTRE + 1]
        centre = upsample4(im3) + F.pixel_shuffle(res, SCALE)

        flow34 = self.pwcnet(upsample4(im3), upsample4(im4))
        flow43 = self.pwcnet(upsample4(im4), upsample4(im3))
        # Every time t runs in one batch of T*B: fold time into the batch dimension.
        t_count = times.shape[0]
        t = times.to(frames.dtype).view(t_count, 1, 1, 1, 1)
        flow_t3 = (-t * (1 - t) * flow34 + t * t * flow43).reshape(t_count * b, 2, h, w)
        flow_t4 = ((1 - t) * (1 - t) * flow34 - t * (1 - t) * flow43).reshape(t_count * b, 2, h, w)

        def tile(x: torch.Tensor) -> torch.Tensor:
            return x.unsqueeze(0).expand(t_count, *x.shape).reshape(t_count * x.shape[0], *x.shape[1:])

        def blend(x3: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
            return (backward_warp(tile(x3), flow_t3, "border") + backward_warp(tile(x4), flow_t4, "border")) / 2.0

        feat_t = [blend(f[:, CENTRE], f[:, CENTRE + 1]) for f in enc]
        _, res_t = self.decoder(feat_t, [tile(f) for f in dec_feat])
        inter = upsample4(blend(im3, im4)) + F.pixel_shuffle(res_t, SCALE)
        inter = inter.view(t_count, b, c, SCALE * h, SCALE * w).transpose(0, 1)
        return torch.cat([centre.unsqueeze(1), inter], dim=1)


def build() -> STVUN:
    """The network with the official hyper-parameters (random init, nothing read from disk)."""
    return STVUN()
