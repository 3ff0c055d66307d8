"""Forward splatting against a brute-force loop (flows pointing outside the image included)."""
from __future__ import annotations

import math

import torch

from stvsr.ops import forward_splat, reverse_flow


def _brute(x, flow):
    n, c, h, w = x.shape
    out = torch.zeros(n, c, h, w, dtype=torch.float64)
    norm = torch.zeros(n, 1, h, w, dtype=torch.float64)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                tx, ty = j + float(flow[b, 0, i, j]), i + float(flow[b, 1, i, j])
                for cy in (math.floor(ty), math.floor(ty) + 1):
                    for cx in (math.floor(tx), math.floor(tx) + 1):
                        if 0 <= cx < w and 0 <= cy < h:
                            wgt = math.exp(-((tx - cx) ** 2 + (ty - cy) ** 2))
                            out[b, :, cy, cx] += wgt * x[b, :, i, j].double()
                            norm[b, 0, cy, cx] += wgt
    return out, norm


def test_forward_splat_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=g)
    flow = torch.randn(2, 2, 5, 6, generator=g) * 3
    ours, norm = forward_splat(x, flow)
    ref, ref_norm = _brute(x, flow)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm.double(), ref_norm, rtol=1e-5, atol=1e-5)


def test_reverse_of_constant_flow_is_its_negative_where_covered():
    flow = torch.zeros(1, 2, 6, 7)
    flow[:, 0] = 2.0  # everything moves two pixels right
    rev = reverse_flow(flow)
    torch.testing.assert_close(rev[:, 0, :, 2:], torch.full((1, 6, 5), -2.0))
    assert torch.all(rev[:, :, :, :2] == 0)  # nothing lands on the first two columns
