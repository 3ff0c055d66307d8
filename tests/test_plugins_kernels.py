"""Plugin kernels in Triton's CPU interpreter against the reference operators (stvsr.ops)."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="triton is needed for the plugin kernels")

from stvsr.ops import backward_warp, deform_conv2d  # noqa: E402
from stvsr.plugins import configs, launch  # noqa: E402
from stvsr.plugins.interpret import interpreted_kernels, interpreter_unavailable  # noqa: E402

# Small blocks so that even tiny tensors span several programs and masked tails.
SMALL_WARP = configs.WarpConfig(block_p=16, block_c=4)
SMALL_DCN = configs.DeformConvConfig(block_p=16, block_o=16, block_c=16)
# Bounds, relative to the largest reference magnitude. FP32: reference rounding only.
# FP16 data: output rounding (2^-11) plus, for the conv, FP16 operands of the product.
REL_TOL = {torch.float32: 1e-5, torch.float16: 4e-3}


@pytest.fixture(scope="module")
def kernels():
    if (why := interpreter_unavailable()) is not None:
        pytest.skip(why)
    return interpreted_kernels()


def _rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-12))


def test_interpreter_does_not_leak(kernels):
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    from stvsr.plugins import kernels as compiled

    assert "TRITON_INTERPRET" not in os.environ
    assert isinstance(kernels.deform_conv2d_kernel, InterpretedFunction)
    assert isinstance(compiled.deform_conv2d_kernel, JITFunction)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
@pytest.mark.parametrize("size", [(2, 5, 7, 9), (1, 3, 1, 6), (1, 9, 6, 1)])
def test_backward_warp(kernels, dtype, padding_mode, size):
    g = torch.Generator().manual_seed(sum(size) * 10 + len(padding_mode))
    n, c, h, w = size
    x = torch.randn(size, generator=g).to(dtype)
    # Large flows: many samples land outside the image (and some far outside).
    flow = torch.randn(n, 2, h, w, generator=g) * 4
    flow[..., 0, 0] = 1e6
    out = launch.backward_warp(x, flow, padding_mode, kernels=kernels, config=SMALL_WARP)
    ref = backward_warp(x, flow, padding_mode)
    assert out.dtype == dtype and out.shape == ref.shape
    assert _rel_err(out, ref) <= REL_TOL[dtype]


def test_backward_warp_fp16_flow_keeps_fp32_coordinates(kernels):
    """An FP16 flow is widened before any arithmetic: same result as the FP32 copy of it."""
    x = torch.randn(1, 4, 40, 300)
    flow = (torch.rand(1, 2, 40, 300) * 200 - 100).half()
    out = launch.backward_warp(x, flow, kernels=kernels)
    ref = backward_warp(x, flow.float())
    assert _rel_err(out, ref) <= 1e-4


def test_backward_warp_dynamic_sizes_same_kernel(kernels):
    for h, w in [(3, 4), (8, 5), (11, 13)]:
        x = torch.randn(1, 2, h, w)
        flow = torch.randn(1, 2, h, w) * 2
        assert _rel_err(launch.backward_warp(x, flow, kernels=kernels), backward_warp(x, flow)) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
@pytest.mark.parametrize("align_corners", [True, False])
def test_grid_sample(kernels, dtype, padding_mode, align_corners):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 5, 7, generator=g).to(dtype)
    grid = torch.rand(2, 4, 9, 2, generator=g) * 2.8 - 1.4     # output size differs from input
    out = launch.grid_sample(x, grid, padding_mode, align_corners, kernels=kernels, config=SMALL_WARP)
    ref = F.grid_sample(x.float(), grid, "bilinear", padding_mode, align_corners).to(dtype)
    assert out.shape == (2, 3, 4, 9)
    assert _rel_err(out, ref) <= REL_TOL[dtype]


DCN_CASES = {
    # name: (N, C, H, W, O, (kh, kw), stride, pad, dilation, groups, deformable groups)
    "zsm": (1, 64, 5, 6, 64, (3, 3), 1, 1, 1, 1, 8),
    "odd": (2, 6, 7, 5, 5, (3, 3), 1, 1, 1, 1, 3),
    "groups": (1, 8, 6, 6, 6, (3, 3), 1, 1, 1, 2, 4),
    "stride_dilation": (1, 4, 9, 8, 3, (3, 3), 2, 2, 2, 1, 2),
    "pointwise_rect": (1, 4, 5, 7, 4, (1, 3), 1, (0, 1), 1, 1, 1),
}


def _dcn_inputs(case, dtype, offset_scale=3.0, seed=0):
    n, c, h, w, o, (kh, kw), s, p, d, groups, dg = case
    (ph, pw) = (p, p) if isinstance(p, int) else p
    oh = (h + 2 * ph - d * (kh - 1) - 1) // s + 1
    ow = (w + 2 * pw - d * (kw - 1) - 1) // s + 1
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    offset = torch.randn(n, dg * 2 * kh * kw, oh, ow, generator=g) * offset_scale
    mask = torch.rand(n, dg * kh * kw, oh, ow, generator=g)
    weight = torch.randn(o, c // groups, kh, kw, generator=g) / (c // groups * kh * kw) ** 0.5
    bias = torch.randn(o, generator=g)
    tensors = [t.to(dtype) for t in (x, offset, mask, weight, bias)]
    return tensors, dict(stride=s, padding=p, dilation=d, groups=groups)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("case", sorted(DCN_CASES))
def test_deform_conv2d(kernels, dtype, case):
    (x, offset, mask, weight, bias), kw = _dcn_inputs(DCN_CASES[case], dtype)
    config = None if case == "zsm" else SMALL_DCN    # zsm: the production tiles (faster here too)
    out = launch.deform_conv2d(x, offset, mask, weight, bias, **kw, kernels=kernels, config=config)
    ref = deform_conv2d(x, offset, mask, weight, bias, **kw)
    assert out.dtype == dtype and out.shape == ref.shape
    assert _rel_err(out, ref) <= REL_TOL[dtype]


def test_deform_conv2d_offsets_far_outside_and_default_blocks(kernels):
    """Offsets of +-1e4 pixels read zeros (no int overflow); no bias; production block sizes."""
    (x, offset, mask, weight, _), kw = _dcn_inputs(DCN_CASES["odd"], torch.float32)
    offset[:, ::3] = 1e4
    offset[:, 1::5] = -1e4
    out = launch.deform_conv2d(x, offset, mask, weight, None, **kw, kernels=kernels)
    ref = deform_conv2d(x, offset, mask, weight, None, **kw)
    assert _rel_err(out, ref) <= 1e-5


def test_deform_conv2d_rejects_bad_offset(kernels):
    (x, offset, mask, weight, bias), kw = _dcn_inputs(DCN_CASES["odd"], torch.float32)
    with pytest.raises(ValueError, match="deformable_groups"):
        launch.deform_conv2d(x, offset[:, :-1], mask, weight, bias, **kw, kernels=kernels)


def test_launchers_write_into_given_output(kernels):
    x, flow = torch.randn(1, 3, 4, 5), torch.randn(1, 2, 4, 5)
    out = torch.full_like(x, float("nan"))
    assert launch.backward_warp(x, flow, kernels=kernels, out=out) is out
    assert _rel_err(out, backward_warp(x, flow)) <= 1e-5
    with pytest.raises(ValueError, match="out must be"):
        launch.backward_warp(x, flow, kernels=kernels, out=out.half())


def test_interpreter_needs_triton_3_7_and_says_so_on_3_6(monkeypatch):
    """Triton 3.6 (GPU hosts) compiles the kernels, but its CPU interpreter fails on their loops with numpy 2.4:
    the interpreter tests skip there with that reason instead of failing (checked with triton 3.6.0 installed)."""
    import triton

    monkeypatch.setattr(triton, "__version__", "3.6.0")
    why = interpreter_unavailable()
    assert why and why.startswith("Triton 3.6.0's CPU interpreter cannot run the kernels") and "Triton >= 3.7" in why
    with pytest.raises(RuntimeError, match="3.6.0 still compiles them to PTX"):
        interpreted_kernels()
    for version in ("3.7.1", "3.8.0"):
        monkeypatch.setattr(triton, "__version__", version)
        assert interpreter_unavailable() is None
