"""TensorRT registration of the plugins, through TensorRT's own ``tensorrt.plugin`` sources.

The real ``tensorrt.plugin`` package (from the tensorrt-cu13-bindings wheel, a test dependency)
validates our ``@trtp.register`` / ``@trtp.impl`` / ``@trtp.aot_impl`` signatures exactly as it
does on a GPU machine; only TensorRT's compiled module is replaced by a test double
(``tests/tensorrt_native_double.py``). ONNX plugin nodes are then driven through the calls
TensorRT makes while building an engine (parser fields, create_plugin, shapes, formats,
launch parameters, kernel), and what would go into the engine (entry, PTX, grid, extra int32
args) is checked against the kernels' PTX. The real-TensorRT test skips without a GPU.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import pytest

pytest.importorskip("triton", reason="triton is needed to compile the plugin kernels")

from stvsr.plugins import aot, configs, onnx_nodes  # noqa: E402
from tests.tensorrt_native_double import build_aot_node, plugin_sources_dir, real_plugin_package  # noqa: E402

ARCH = 86
pytestmark = pytest.mark.skipif(plugin_sources_dir() is None,
                                reason="TensorRT's Python plugin sources (tensorrt-cu13-bindings, a [test] extra on "
                                       "Linux x86_64 and Windows) are not installed")


@pytest.fixture(scope="module")
def real_trtp():
    """(native double, real tensorrt.plugin, stvsr.plugins.trt registered through it)."""
    with real_plugin_package() as (native, trtp), pytest.MonkeyPatch.context() as mp:
        mp.delitem(sys.modules, "stvsr.plugins.trt", raising=False)
        module = importlib.import_module("stvsr.plugins.trt")
        module.real_current_arch = module._current_arch
        mp.setattr(module, "_current_arch", lambda: ARCH)
        yield native, trtp, module
        sys.modules.pop("stvsr.plugins.trt", None)


@pytest.fixture(scope="module")
def ptx_dir(tmp_path_factory):
    """Prebuilt PTX of the variants the tests use (so each is compiled once)."""
    d = tmp_path_factory.mktemp("ptx")
    keys = [configs.deform_conv_variant("fp16", 3, 3).key] + \
           [configs.warp_variant("fp32", c, m).key for c in ("flow", "grid_align_corners") for m in ("zeros", "border")]
    aot.build([ARCH], d, keys=keys, log=lambda *_: None)
    return d


@pytest.fixture
def prebuilt(ptx_dir, monkeypatch):
    monkeypatch.setenv(aot.PTX_DIR_ENV, str(ptx_dir))
    monkeypatch.setattr(aot, "compile_variant", None)          # everything must come from the prebuilt dir
    return ptx_dir


def _registry(trtp):
    return sys.modules["tensorrt.plugin._lib"].QDP_REGISTRY


def test_registration_passes_tensorrts_validator(real_trtp):
    """Importing our registrations runs TensorRT's signature validator (this raised
    'TensorDescs args should come first' while the module used ``from __future__ import annotations``)."""
    native, trtp, _ = real_trtp
    reg = _registry(trtp)
    expected = {"DeformConv2d": ["x", "weight", "offset", "bias", "mask"], "BackwardWarp": ["x", "flow"],
                "GridSampleBilinear": ["x", "grid"]}
    for op, tensors in expected.items():
        d = reg[f"stvsr::{op}"]
        assert d.input_tensor_names == tensors
        assert d.impl_func is not None and d.aot_impl_func is not None and d.autotune_func is not None
        assert native.get_plugin_registry().get_creator(op, "1", "stvsr") is not None
    assert reg["stvsr::BackwardWarp"].input_attrs == {"padding_mode": str}


def _check_ptx(launch, n_inputs: int, variant):
    ptx = launch.ptx.decode()
    assert f".entry {launch.entry.decode()}(" in ptx and f".target sm_{ARCH}" in ptx
    # TensorRT passes inputs, extra args, outputs: the PTX must declare exactly that many params.
    assert aot.ptx_param_count(ptx, launch.entry.decode()) == n_inputs + len(launch.extra_args) + 1
    assert len(launch.extra_args) == len(variant.scalar_args)
    assert launch.block == (variant.num_warps * 32, 1, 1)


def test_deform_conv_through_tensorrt_build_calls(real_trtp, prebuilt):
    native, _, _ = real_trtp
    node = onnx_nodes.deform_conv_node(list("xwobm"), "y", kernel_shape=(3, 3), padding=1, deform_groups=8)
    shapes = [(2, 64, 30, 41), (64, 64, 3, 3), (2, 8 * 18, 30, 41), (64,), (2, 8 * 9, 30, 41)]
    launch = build_aot_node(native, node, shapes, [native.float16] * 5)
    variant = configs.deform_conv_variant("fp16", 3, 3)
    _check_ptx(launch, 5, variant)
    assert launch.ptx == (prebuilt / f"sm_{ARCH}" / f"{variant.key}.ptx").read_bytes()
    assert launch.output_shape == (2, 64, 30, 41) and launch.output_type == native.float16
    assert launch.grid == configs.deform_conv_grid(2, 30, 41, 64, 1, configs.DEFORM_CONV["fp16"])
    assert launch.extra_args == [64, 30, 41, 30, 41, 64, 1, 1, 1, 1, 1, 1, 1, 8]   # order of DEFORM_CONV_SCALARS
    # The parser hands INT attributes over as int32 fields; TensorRT's decoding makes them ints again.
    assert launch.attrs["deform_groups"] == 8 and type(launch.attrs["deform_groups"]) is int


@pytest.mark.parametrize("mode", ["border", "zeros"])
def test_padding_mode_survives_the_parsers_nul(real_trtp, prebuilt, mode):
    """The ONNX parser's string fields end in NUL: 'border' arrives as 'border\\x00' and must still
    select the border kernel (it silently selected zero padding before)."""
    native, _, _ = real_trtp
    f32 = [native.float32, native.float32]
    launch = build_aot_node(native, onnx_nodes.backward_warp_node("x", "f", "y", padding_mode=mode),
                            [(1, 16, 9, 10), (1, 2, 9, 10)], f32)
    assert launch.attrs["padding_mode"] == mode + "\x00"          # what TensorRT's decoding yields
    variant = configs.warp_variant("fp32", "flow", mode)
    _check_ptx(launch, 2, variant)
    assert launch.ptx == (prebuilt / f"sm_{ARCH}" / f"{variant.key}.ptx").read_bytes()
    assert launch.grid == (*configs.warp_grid(1, 9, 10), 1) and launch.extra_args == [16, 9, 10, 9, 10]

    node = onnx_nodes.grid_sample_node("x", "g", "y", padding_mode=mode, align_corners=True)
    launch = build_aot_node(native, node, [(1, 16, 9, 10), (1, 5, 7, 2)], f32)
    assert launch.output_shape == (1, 16, 5, 7) and launch.extra_args == [16, 9, 10, 5, 7]
    key = configs.warp_variant("fp32", "grid_align_corners", mode).key
    assert launch.ptx == (prebuilt / f"sm_{ARCH}" / f"{key}.ptx").read_bytes()


def test_unknown_padding_mode_is_refused_at_build(real_trtp):
    native, _, module = real_trtp
    assert module._padding("border\x00") == "border"
    node = onnx_nodes.backward_warp_node("x", "f", "y", padding_mode="border")
    node.attribute[[a.name for a in node.attribute].index("padding_mode")].s = b"reflection"
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        build_aot_node(native, node, [(1, 4, 5, 6), (1, 2, 5, 6)], [native.float32] * 2)
    with pytest.raises(ValueError, match="padding_mode"):
        configs.warp_variant("fp32", "flow", "reflection")


def test_fp16_data_with_fp32_coordinates_is_advertised(real_trtp, monkeypatch):
    native, _, _ = real_trtp
    node = onnx_nodes.backward_warp_node("x", "f", "y")
    monkeypatch.setattr(aot, "kernel_for", lambda v, arch: aot.Kernel(b"k", b"ptx", 128, 0, "t"))
    launch = build_aot_node(native, node, [(1, 4, 5, 6), (1, 2, 5, 6)], [native.float16, native.float32])
    assert launch.output_type == native.float16
    with pytest.raises(TypeError, match="not among"):   # FP16 coordinates are never accepted
        build_aot_node(native, node, [(1, 4, 5, 6), (1, 2, 5, 6)], [native.float16, native.float16])


@pytest.mark.parametrize("op", ["DeformConv2d", "BackwardWarp", "GridSampleBilinear"])
def test_attribute_order_matches_onnx_nodes(real_trtp, op):
    """aot_impl gets attribute values positionally, in the creator's field order (= the register
    function's order, which the parser follows); ONNX nodes carry them sorted by name."""
    import inspect

    native, trtp, _ = real_trtp
    node = {"DeformConv2d": lambda: onnx_nodes.deform_conv_node(list("xwobm"), "y", kernel_shape=(3, 3)),
            "BackwardWarp": lambda: onnx_nodes.backward_warp_node("x", "f", "y"),
            "GridSampleBilinear": lambda: onnx_nodes.grid_sample_node("x", "g", "y")}[op]()
    onnx_attrs = [a.name for a in node.attribute if a.name not in ("plugin_namespace", "aot")]
    assert onnx_attrs == sorted(onnx_attrs)
    d = _registry(trtp)[f"stvsr::{op}"]
    assert list(d.input_attrs) == onnx_attrs
    assert [f.name for f in native.get_plugin_registry().get_creator(op, "1", "stvsr").field_names] == onnx_attrs
    for fn in (d.impl_func, d.aot_impl_func):
        params = list(inspect.signature(fn).parameters)[len(node.input):]
        assert [p for p in params if p not in ("outputs", "stream", "tactic")] == onnx_attrs


def test_jit_plugins_say_they_need_cuda_torch(real_trtp):
    """The JIT implementations launch through torch.cuda; with the CPU build they fail with a
    clear message instead of a deep torch error."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch has CUDA here")
    _, trtp, _ = real_trtp
    impl = _registry(trtp)["stvsr::BackwardWarp"].impl_func
    with pytest.raises(RuntimeError, match="need a CUDA build of torch.*aot=1"):
        impl(None, None, "zeros\x00", (None,), 0)


def test_current_arch_comes_from_cuda_bindings(real_trtp, monkeypatch):
    """The building GPU's architecture is read with cuda-bindings (the pinned torch has no CUDA)."""
    from stvsr.plugins.cuda_device import CudaUnavailable, GpuInfo

    _, _, module = real_trtp
    arch = module.real_current_arch.__wrapped__          # uncached
    monkeypatch.setattr(module, "current_gpu", lambda: GpuInfo(0, "NVIDIA H100 80GB HBM3", 9, 0))
    assert arch() == 90
    monkeypatch.undo()
    if importlib.util.find_spec("cuda") is not None and importlib.util.find_spec("cuda.bindings") is not None:
        with pytest.raises(CudaUnavailable, match="no usable CUDA GPU"):
            arch()                                       # this machine: no driver, a clear error


def _real_tensorrt_and_gpu() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed"
    from stvsr.plugins.cuda_device import CudaUnavailable, current_gpu

    try:
        current_gpu()
    except CudaUnavailable as exc:
        return str(exc)
    return None


@pytest.mark.skipif(_real_tensorrt_and_gpu() is not None, reason=str(_real_tensorrt_and_gpu()))
def test_real_tensorrt_engine_matches_reference():
    """On a GPU machine: build an engine from the plugin graph (AOT) and compare with stvsr.ops."""
    import subprocess

    res = subprocess.run([sys.executable, "benchmarks/plugins_gpu.py", "--check-only"],
                         capture_output=True, text=True, env=dict(os.environ))
    assert res.returncode == 0, res.stdout + res.stderr
