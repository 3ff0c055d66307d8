"""The GPU check's kernel launches (``stvsr.plugins.ptx_launch``) use TensorRT's argument layout.

The plans (grid, block, input order, int32 extras, outputs) are compared with what our TensorRT
registration hands TensorRT for the same shapes, driven through TensorRT's own ``tensorrt.plugin``
sources (``tests/tensorrt_native_double.py``); the argument list is checked against a real PTX
entry compiled by Triton, with and without Triton's hidden scratch parameters. No GPU is used.
"""
from __future__ import annotations

import ctypes
import importlib
import sys

import pytest

pytest.importorskip("triton", reason="triton is needed to compile the plugin kernels")

from stvsr.plugins import aot, configs, onnx_nodes, ptx_launch  # noqa: E402
from tests.tensorrt_native_double import build_aot_node, plugin_sources_dir, real_plugin_package  # noqa: E402

ARCH = 90


def _fake_kernel(variant: configs.Variant, arch: int) -> aot.Kernel:
    """A PTX entry with TensorRT's parameter count (the layout, not the code, is under test)."""
    params = [".param .u32" if t == "i32" else ".param .u64" for t in variant.signature.values() if t != "constexpr"]
    ptx = ".version 8.7\n.target sm_90a\n.visible .entry k(\n" + ",\n".join(
        f"\t{p} k_param_{i}" for i, p in enumerate(params)) + "\n)\n{\n\tret;\n}\n"
    return aot.Kernel(b"k", ptx.encode(), variant.num_warps * 32, 0, "test")


@pytest.fixture(scope="module")
def registered():
    if plugin_sources_dir() is None:
        pytest.skip("TensorRT's Python plugin sources (tensorrt-cu13-bindings, a [test] extra) are not installed")
    with real_plugin_package() as (native, trtp), pytest.MonkeyPatch.context() as mp:
        mp.delitem(sys.modules, "stvsr.plugins.trt", raising=False)
        module = importlib.import_module("stvsr.plugins.trt")
        mp.setattr(module, "_current_arch", lambda: ARCH)
        mp.setattr(aot, "kernel_for", _fake_kernel)
        yield native, sys.modules["tensorrt.plugin._lib"].QDP_REGISTRY
        sys.modules.pop("stvsr.plugins.trt", None)


def _same_as_tensorrt(launch, plan: ptx_launch.LaunchPlan, registry, op: str) -> None:
    assert tuple(registry[f"stvsr::{op}"].input_tensor_names) == plan.inputs
    assert launch.grid == plan.grid and launch.block == plan.block
    assert launch.extra_args == list(plan.extras)
    # TensorRT passes exactly inputs + extras + outputs: the PTX of the variant declares that many.
    pointers = {name: 0x1000 * (i + 1) for i, name in enumerate(plan.tensors)}
    args = ptx_launch.arguments(plan, pointers, ptx_launch.ptx_params(launch.ptx.decode(), launch.entry.decode()))
    assert [a.kind for a in args] == ["input"] * len(plan.inputs) + ["int32"] * len(plan.extras) + ["output"]
    assert [a.value for a in args] == [pointers[n] for n in plan.inputs] + list(plan.extras) + [pointers["y"]]
    assert [a.name for a in args[len(plan.inputs):-1]] == plan.variant.scalar_args


@pytest.mark.parametrize("dtype, k, dg, stride, pad", [("fp16", 3, 8, 1, 1), ("fp32", 1, 1, 2, 0)])
def test_deform_conv_plan_is_what_tensorrt_launches(registered, dtype, k, dg, stride, pad):
    native, registry = registered
    n, c, h, w, o = 2, 64, 30, 41, 32
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    shapes = [(n, c, h, w), (o, c, k, k), (n, dg * 2 * k * k, oh, ow), (o,), (n, dg * k * k, oh, ow)]
    node = onnx_nodes.deform_conv_node(list("xwobm"), "y", kernel_shape=(k, k), stride=stride, padding=pad,
                                       deform_groups=dg)
    t = native.float16 if dtype == "fp16" else native.float32
    launch = build_aot_node(native, node, shapes, [t] * 5)
    plan = ptx_launch.deform_conv_plan(dtype, shapes[0], shapes[1], shapes[2], (stride, stride), (pad, pad))
    assert plan.variant == configs.deform_conv_variant(dtype, k, k)
    _same_as_tensorrt(launch, plan, registry, "DeformConv2d")


@pytest.mark.parametrize("op, coords, mode", [("BackwardWarp", "flow", "border"), ("BackwardWarp", "flow", "zeros"),
                                              ("GridSampleBilinear", "grid", "zeros"),
                                              ("GridSampleBilinear", "grid_align_corners", "border")])
def test_warp_plan_is_what_tensorrt_launches(registered, op, coords, mode):
    native, registry = registered
    x = (1, 16, 9, 10)
    if op == "BackwardWarp":
        node, second, out_hw = onnx_nodes.backward_warp_node("x", "f", "y", padding_mode=mode), (1, 2, 9, 10), None
    else:
        node = onnx_nodes.grid_sample_node("x", "g", "y", padding_mode=mode, align_corners=coords != "grid")
        second, out_hw = (1, 5, 7, 2), (5, 7)
    launch = build_aot_node(native, node, [x, second], [native.float32] * 2)
    plan = ptx_launch.warp_plan("fp32", coords, mode, x, out_hw)
    _same_as_tensorrt(launch, plan, registry, op)


@pytest.fixture(scope="module")
def real_ptx():
    """One variant compiled by Triton with its hidden scratch parameters kept (as Triton emits it)."""
    cv = aot.compile_variant(configs.warp_variant("fp32", "flow", "border"), ARCH, strip=False)
    return cv.name, cv.ptx


def test_real_ptx_arguments_with_and_without_hidden_params(real_ptx):
    entry, ptx = real_ptx
    plan = ptx_launch.warp_plan("fp32", "flow", "border", (1, 16, 9, 10))
    pointers = {"x": 16, "flow": 32, "y": 48}
    kept = ptx_launch.arguments(plan, pointers, ptx_launch.ptx_params(ptx, entry))
    assert [a.kind for a in kept] == ["input", "input"] + ["int32"] * 5 + ["output", "hidden", "hidden"]
    assert [a.value for a in kept[-2:]] == [0, 0]                          # null scratch pointers
    stripped, n = aot.strip_hidden_params(ptx, entry, 8)
    assert n == 2 and len(ptx_launch.arguments(plan, pointers, ptx_launch.ptx_params(stripped, entry))) == 8
    assert ptx_launch.ptx_version(ptx) is not None
    # int32 extras are 4-byte values, pointers 8-byte, in this order.
    array, storage = ptx_launch.pack(kept)
    assert [type(s) for s in storage[:3]] == [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int32]
    assert [s.value for s in storage[2:7]] == [16, 9, 10, 9, 10]
    assert ctypes.cast(array[2], ctypes.POINTER(ctypes.c_int32)).contents.value == 16


def test_layouts_that_tensorrt_cannot_launch_are_refused(real_ptx):
    entry, ptx = real_ptx
    plan = ptx_launch.warp_plan("fp32", "flow", "border", (1, 16, 9, 10))
    pointers = {"x": 16, "flow": 32, "y": 48}
    types = ptx_launch.ptx_params(ptx, entry)
    with pytest.raises(ValueError, match="declares 7 parameters"):
        ptx_launch.arguments(plan, pointers, types[:7])
    with pytest.raises(ValueError, match="declares 11 parameters"):
        ptx_launch.arguments(plan, pointers, types + ["u64"])
    with pytest.raises(ValueError, match=r"parameter C \(int32\) is .u64"):
        ptx_launch.arguments(plan, pointers, types[:2] + ["u64"] + types[3:])
