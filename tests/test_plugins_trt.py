"""TensorRT registration of the plugins.

Without TensorRT (this CI) the registration module is exercised against a stand-in
``tensorrt.plugin`` that records the decorated functions and evaluates shape expressions
as plain ints: it checks what the AOT implementations hand to TensorRT (entry name, PTX,
grid, extra int32 args) against the kernels' PTX signatures. The real-TensorRT test skips.
"""
from __future__ import annotations

import importlib
import os
import sys
import types

import pytest

pytest.importorskip("triton", reason="triton is needed to compile the plugin kernels")

from stvsr.plugins import aot, configs  # noqa: E402

ARCH = 86


class _Desc:
    def __init__(self, shape, dtype):
        self.shape_expr = list(shape)
        self.dtype = dtype

    def like(self):
        return _Desc(self.shape_expr, self.dtype)


def _fake_tensorrt() -> tuple[types.ModuleType, types.ModuleType, dict]:
    trt = types.ModuleType("tensorrt")
    trt.float32, trt.float16 = "float32", "float16"
    trtp = types.ModuleType("tensorrt.plugin")
    registry: dict[tuple[str, str], object] = {}

    def deco(kind):
        def outer(name):
            def inner(fn):
                registry[kind, name] = fn
                return fn
            return inner
        return outer

    trtp.register, trtp.autotune, trtp.impl, trtp.aot_impl = (deco(k) for k in ("register", "autotune", "impl", "aot"))
    trtp.TensorDesc, trtp.Tensor = _Desc, object
    trtp.KernelLaunchParams = types.SimpleNamespace
    trtp.SymExprs = tuple
    trtp.SymInt32 = int
    trtp.SymIntExprs = types.SimpleNamespace(from_tuple=tuple)
    trtp.cdiv = lambda a, b: -(-a // b)
    trtp.AutoTuneCombination = lambda *a: a
    trtp.from_shape_expr = lambda shape, dtype: _Desc(shape, dtype)
    trt.plugin = trtp
    return trt, trtp, registry


@pytest.fixture
def fake_trt(monkeypatch):
    trt, trtp, registry = _fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    monkeypatch.delitem(sys.modules, "stvsr.plugins.trt", raising=False)
    module = importlib.import_module("stvsr.plugins.trt")
    monkeypatch.setattr(module, "_current_arch", lambda: ARCH)
    yield module, registry
    sys.modules.pop("stvsr.plugins.trt", None)


def _check_launch(name, ptx, lp, extra, n_inputs, variant):
    ptx = ptx.decode()
    assert f".entry {name.decode()}(" in ptx and f".target sm_{ARCH}" in ptx
    # TensorRT passes inputs, extra args, outputs: the PTX must declare exactly that many params.
    assert aot.ptx_param_count(ptx, name.decode()) == n_inputs + len(extra) + 1
    assert len(extra) == len(variant.scalar_args)
    assert lp.block_x == variant.num_warps * 32


def test_registers_three_plugins_in_stvsr_namespace(fake_trt):
    _, registry = fake_trt
    for op in ("DeformConv2d", "BackwardWarp", "GridSampleBilinear"):
        for kind in ("register", "autotune", "impl", "aot"):
            assert (kind, f"stvsr::{op}") in registry


def test_deform_conv_aot_matches_kernel_signature(fake_trt):
    module, registry = fake_trt
    x, w = _Desc((2, 64, 30, 41), "float16"), _Desc((64, 64, 3, 3), "float16")
    offset, mask = _Desc((2, 8 * 18, 30, 41), "float16"), _Desc((2, 8 * 9, 30, 41), "float16")
    bias = _Desc((64,), "float16")
    attrs = dict(kernel_h=3, kernel_w=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1, dilation_h=1, dilation_w=1,
                 groups=1, deform_groups=8)
    out = registry["register", "stvsr::DeformConv2d"](x, w, offset, bias, mask, **attrs)
    assert out.shape_expr == [2, 64, 30, 41] and out.dtype == "float16"
    # TensorRT calls aot_impl positionally: inputs, attribute values in field order, outputs, tactic.
    values = [attrs[k] for k in sorted(attrs)]
    name, ptx, lp, extra = registry["aot", "stvsr::DeformConv2d"](x, w, offset, bias, mask, *values, (out,), 0)
    variant = configs.deform_conv_variant("fp16", 3, 3)
    _check_launch(name, ptx, lp, extra, 5, variant)
    assert (lp.grid_x, lp.grid_y, lp.grid_z) == configs.deform_conv_grid(2, 30, 41, 64, 1, configs.DEFORM_CONV["fp16"])
    assert list(extra) == [64, 30, 41, 30, 41, 64, 1, 1, 1, 1, 1, 1, 1, 8]   # order of DEFORM_CONV_SCALARS


def test_warp_aot_uses_prebuilt_ptx(fake_trt, tmp_path, monkeypatch):
    module, registry = fake_trt
    keys = [configs.warp_variant("fp32", "flow", "border").key,
            configs.warp_variant("fp32", "grid_align_corners", "zeros").key]
    aot.build([ARCH], tmp_path, keys=keys, log=lambda *_: None)
    monkeypatch.setenv("STVSR_PLUGIN_PTX_DIR", str(tmp_path))
    monkeypatch.setattr(aot, "compile_variant", None)          # must not compile
    x, flow = _Desc((1, 16, 9, 10), "float32"), _Desc((1, 2, 9, 10), "float32")
    name, ptx, lp, extra = registry["aot", "stvsr::BackwardWarp"](x, flow, "border", outputs=(x.like(),), tactic=0)
    variant = configs.warp_variant("fp32", "flow", "border")
    _check_launch(name, ptx, lp, extra, 2, variant)
    assert ptx == (tmp_path / f"sm_{ARCH}" / f"{variant.key}.ptx").read_bytes()
    assert (lp.grid_x, lp.grid_y) == configs.warp_grid(1, 9, 10) and list(extra) == [16, 9, 10, 9, 10]

    grid = _Desc((1, 5, 7, 2), "float32")
    out = registry["register", "stvsr::GridSampleBilinear"](x, grid, align_corners=1, padding_mode="zeros")
    assert out.shape_expr == [1, 16, 5, 7]
    name, ptx, lp, extra = registry["aot", "stvsr::GridSampleBilinear"](x, grid, 1, "zeros", (out,), 0)
    assert list(extra) == [16, 9, 10, 5, 7]
    assert ptx == (tmp_path / f"sm_{ARCH}" / "warp_grid_align_corners_fp32_fp32coords_zeros.ptx").read_bytes()


@pytest.mark.parametrize("op", ["DeformConv2d", "BackwardWarp", "GridSampleBilinear"])
def test_attribute_order_matches_onnx_nodes(fake_trt, op):
    """aot_impl gets attribute values positionally; ONNX nodes carry them sorted by name."""
    import inspect

    from stvsr.plugins import onnx_nodes

    _, registry = fake_trt
    node = {"DeformConv2d": lambda: onnx_nodes.deform_conv_node(list("xwobm"), "y", kernel_shape=(3, 3)),
            "BackwardWarp": lambda: onnx_nodes.backward_warp_node("x", "f", "y"),
            "GridSampleBilinear": lambda: onnx_nodes.grid_sample_node("x", "g", "y")}[op]()
    onnx_attrs = [a.name for a in node.attribute if a.name not in ("plugin_namespace", "aot")]
    assert onnx_attrs == sorted(onnx_attrs)
    n_inputs = len(node.input)
    for kind in ("register", "impl", "aot"):
        params = list(inspect.signature(registry[kind, f"stvsr::{op}"]).parameters)
        attrs = [p for p in params[n_inputs:] if p not in ("outputs", "stream", "tactic")]
        assert attrs == onnx_attrs, kind


def _real_tensorrt_and_gpu() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


@pytest.mark.skipif(_real_tensorrt_and_gpu() is not None, reason=str(_real_tensorrt_and_gpu()))
def test_real_tensorrt_engine_matches_reference():
    """On a GPU machine: build an engine from the plugin graph (AOT) and compare with stvsr.ops."""
    import subprocess

    res = subprocess.run([sys.executable, "benchmarks/plugins_gpu.py", "--check-only"],
                         capture_output=True, text=True, env=dict(os.environ))
    assert res.returncode == 0, res.stdout + res.stderr
