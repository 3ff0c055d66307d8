"""Reference operators against independent references (onnx.reference and brute-force loops)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from stvsr.ops import backward_warp, correlation, deform_conv2d


def _onnx_deform_conv(x, w, b, offset, mask, pads, strides, dilations, group, offset_group):
    names = ["X", "W", "offset", "B", "mask"]
    node = helper.make_node("DeformConv", names, ["Y"], pads=pads, strides=strides, dilations=dilations,
                            group=group, offset_group=offset_group, kernel_shape=list(w.shape[2:]))
    vals = [x, w, offset, b, mask]
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, v.shape) for n, v in zip(names, vals)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return ReferenceEvaluator(model).run(None, dict(zip(names, [v.numpy() for v in vals])))[0]


@pytest.mark.parametrize("groups,dg,stride,pad,dil,size", [
    (1, 1, 1, 1, 1, (5, 6)),
    (1, 2, 1, 1, 1, (4, 5)),
    (2, 2, 2, 0, 1, (7, 6)),
    (1, 4, 1, 2, 2, (5, 4)),
])
def test_deform_conv_matches_onnx_reference(groups, dg, stride, pad, dil, size):
    g = torch.Generator().manual_seed(0)
    n, c, o, k = 1, 4, 4, 3
    h, w = size
    oh = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
    x = torch.randn(n, c, h, w, generator=g)
    weight = torch.randn(o, c // groups, k, k, generator=g)
    bias = torch.randn(o, generator=g)
    # Large offsets: many samples land outside the image, some exactly on the border.
    offset = torch.randn(n, dg * 2 * k * k, oh, ow, generator=g) * 4
    offset[:, :4] = torch.round(offset[:, :4])
    mask = torch.rand(n, dg * k * k, oh, ow, generator=g)
    ours = deform_conv2d(x, offset, mask, weight, bias, stride=stride, padding=pad, dilation=dil, groups=groups)
    ref = _onnx_deform_conv(x, weight, bias, offset, mask, [pad] * 4, [stride] * 2, [dil] * 2, groups, dg)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-4, atol=1e-4)


def test_deform_conv_zero_offset_is_conv():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(1, 4, 5, 6, generator=g), torch.randn(3, 4, 3, 3, generator=g)
    out = deform_conv2d(x, torch.zeros(1, 18, 5, 6), torch.ones(1, 9, 5, 6), w, padding=1)
    torch.testing.assert_close(out, torch.nn.functional.conv2d(x, w, padding=1), rtol=1e-5, atol=1e-5)


def test_deform_conv_half_input_keeps_dtype():
    x = torch.randn(1, 4, 5, 5).half()
    out = deform_conv2d(x, torch.zeros(1, 18, 5, 5).half(), torch.ones(1, 9, 5, 5).half(),
                        torch.randn(2, 4, 3, 3).half(), padding=1)
    assert out.dtype == torch.float16


def test_deform_conv_rejects_bad_shapes():
    x, w = torch.randn(1, 4, 5, 5), torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="offset channels"):
        deform_conv2d(x, torch.zeros(1, 17, 5, 5), torch.ones(1, 9, 5, 5), w, padding=1)
    with pytest.raises(ValueError, match="cover the output"):
        deform_conv2d(x, torch.zeros(1, 18, 4, 5), torch.ones(1, 9, 4, 5), w, padding=1)


def _brute_warp(x, flow, padding_mode):
    n, c, h, w = x.shape
    out = torch.zeros_like(x, dtype=torch.float64)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                px, py = j + float(flow[b, 0, i, j]), i + float(flow[b, 1, i, j])
                if padding_mode == "border":
                    px, py = min(max(px, 0.0), w - 1.0), min(max(py, 0.0), h - 1.0)
                x0, y0 = math.floor(px), math.floor(py)
                for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                    for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                        if 0 <= yy < h and 0 <= xx < w:
                            out[b, :, i, j] += wy * wx * x[b, :, yy, xx].double()
    return out.float()


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_backward_warp_matches_brute_force(padding_mode):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 5, 7, generator=g)
    flow = torch.randn(2, 2, 5, 7, generator=g) * 3  # many samples outside the image
    torch.testing.assert_close(backward_warp(x, flow, padding_mode), _brute_warp(x, flow, padding_mode),
                               rtol=1e-5, atol=1e-5)


def test_backward_warp_matches_onnx_gridsample():
    from stvsr.ops import flow_to_grid

    g = torch.Generator().manual_seed(3)
    x, flow = torch.randn(1, 2, 6, 5, generator=g), torch.randn(1, 2, 6, 5, generator=g) * 2
    grid = flow_to_grid(flow)
    node = helper.make_node("GridSample", ["X", "G"], ["Y"], align_corners=1, mode="linear", padding_mode="zeros")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape),
                                            helper.make_tensor_value_info("G", TensorProto.FLOAT, grid.shape)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    ref = ReferenceEvaluator(model).run(None, {"X": x.numpy(), "G": grid.numpy()})[0]
    np.testing.assert_allclose(backward_warp(x, flow).numpy(), ref, rtol=1e-5, atol=1e-5)


def test_backward_warp_integer_shift_and_errors():
    x = torch.arange(20.0).view(1, 1, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1.0  # read one pixel to the right
    out = backward_warp(x, flow)
    torch.testing.assert_close(out[..., :4], x[..., 1:])
    assert torch.all(out[..., 4] == 0)
    with pytest.raises(ValueError, match="padding_mode"):
        backward_warp(x, flow, "reflection")
    with pytest.raises(ValueError, match="flow"):
        backward_warp(x, flow[:, :1])


def test_correlation_matches_brute_force():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(1, 3, 5, 6, generator=g), torch.randn(1, 3, 5, 6, generator=g)
    d = 2
    out = correlation(a, b, d)
    assert out.shape == (1, 25, 5, 6)
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            ch = (dy + d) * (2 * d + 1) + (dx + d)
            for i in range(5):
                for j in range(6):
                    y, x = i + dy, j + dx
                    want = (a[0, :, i, j] * b[0, :, y, x]).mean() if 0 <= y < 5 and 0 <= x < 6 else 0.0
                    assert abs(float(out[0, ch, i, j]) - float(want)) < 1e-5
