"""Launch the AOT plugin PTX the way TensorRT does, with NVIDIA's cuda-bindings (no TensorRT).

TensorRT's AOT plugin launcher loads the PTX that ``aot_impl`` returns and passes the kernel,
in this order: the input tensors' device pointers (registration order), the int32 extra
arguments ``aot_impl`` returns, the output tensors' device pointers. :func:`deform_conv_plan`
and :func:`warp_plan` compute that layout, the grid and the block from :mod:`configs`, for
concrete shapes; :mod:`stvsr.plugins.trt` computes the same from shape expressions, and
``tests/test_ptx_launch.py`` checks through TensorRT's own ``tensorrt.plugin`` sources that the
two agree. :func:`arguments` then orders the pointers and values for one launch.

The PTX ``.entry`` says how many parameters the kernel reads. Parameters after TensorRT's
(Triton's hidden ``global_scratch``/``profile_scratch`` pointers, when a PTX kept them) get null
pointers, which is only sound because our kernels use no scratch memory
(:func:`stvsr.plugins.aot.compile_variant` refuses kernels that do).

:class:`PtxModule` loads PTX with ``cuModuleLoadData`` and launches with ``cuLaunchKernel`` on
a given stream (e.g. ``torch.cuda.current_stream().cuda_stream``): used by the GPU check
(``benchmarks/gpu_kernels.py``). Importing this module imports neither CUDA nor triton.
"""
from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from typing import Sequence

from . import aot, configs

POINTER_PTX_TYPES = ("u64", "b64", "s64")
INT32_PTX_TYPES = ("u32", "s32", "b32")


@dataclass(frozen=True)
class Arg:
    """One kernel parameter: ``kind`` is "input", "int32", "output" or "hidden" (a null pointer)."""
    kind: str
    name: str
    value: int


@dataclass(frozen=True)
class LaunchPlan:
    """What TensorRT launches for one plugin node on concrete shapes."""
    variant: configs.Variant
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    inputs: tuple[str, ...]     # the plugin's input tensors, registration order (= kernel pointer order)
    extras: tuple[int, ...]     # int32 extra arguments, in the kernel's scalar order
    outputs: tuple[str, ...]

    @property
    def tensors(self) -> tuple[str, ...]:
        return self.inputs + self.outputs


DEFORM_CONV_INPUTS = ("x", "weight", "offset", "bias", "mask")     # stvsr::DeformConv2d / ONNX DeformConv order


def deform_conv_plan(dtype: str, x_shape: Sequence[int], weight_shape: Sequence[int], offset_shape: Sequence[int],
                     stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                     dilation: tuple[int, int] = (1, 1), groups: int = 1) -> LaunchPlan:
    """``stvsr::DeformConv2d``: offset ``[N, 2*K*DG, OH, OW]`` gives the output size and deformable groups."""
    n, c, h, w = (int(v) for v in x_shape)
    out_c, _, kh, kw = (int(v) for v in weight_shape)
    oh, ow = int(offset_shape[2]), int(offset_shape[3])
    dg = int(offset_shape[1]) // (2 * kh * kw)
    variant = configs.deform_conv_variant(dtype, kh, kw)
    cfg = configs.DEFORM_CONV[dtype]
    grid = configs.deform_conv_grid(n, oh, ow, out_c, groups, cfg)
    extras = (c, h, w, oh, ow, out_c, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
              groups, dg)
    return LaunchPlan(variant, grid, (variant.num_warps * 32, 1, 1), DEFORM_CONV_INPUTS, extras, ("y",))


def warp_plan(dtype: str, coords: str, padding_mode: str, x_shape: Sequence[int],
              out_hw: tuple[int, int] | None = None) -> LaunchPlan:
    """``stvsr::BackwardWarp`` (coords "flow") or ``stvsr::GridSampleBilinear`` ("grid", "grid_align_corners")."""
    n, c, h, w = (int(v) for v in x_shape)
    oh, ow = out_hw or (h, w)
    variant = configs.warp_variant(dtype, coords, padding_mode)
    gx, gy = configs.warp_grid(n, oh, ow)
    second = "flow" if coords == "flow" else "grid"
    return LaunchPlan(variant, (gx, gy, 1), (variant.num_warps * 32, 1, 1), ("x", second), (c, h, w, oh, ow),
                      ("y",))


def ptx_params(ptx: str, entry: str) -> list[str]:
    """PTX types (``u64``, ``u32``, ...) of the parameters of ``.entry entry``, in order."""
    types = []
    for decl in aot._entry_params(ptx, entry)[2]:
        m = re.match(r"\.param\s+\.(\w+)", decl)
        if m is None:
            raise ValueError(f"{entry}: cannot read the PTX parameter {decl!r}")
        types.append(m.group(1))
    return types


def ptx_version(ptx: str) -> str | None:
    """The PTX ISA version the text declares (``.version 8.7`` -> "8.7")."""
    m = re.search(r"^\s*\.version\s+(\d+\.\d+)", ptx, re.M)
    return m.group(1) if m else None


def arguments(plan: LaunchPlan, pointers: dict[str, int], param_types: Sequence[str]) -> list[Arg]:
    """TensorRT's layout (inputs, int32 extras, outputs), then null pointers for hidden parameters.

    ``pointers`` maps every tensor of ``plan`` to its device address; ``param_types`` is
    :func:`ptx_params` of the kernel. Refuses a PTX that declares fewer parameters than TensorRT
    passes, more hidden ones than Triton adds, or a type that does not match its argument.
    """
    scalar_names = plan.variant.scalar_args
    if len(plan.extras) != len(scalar_names):
        raise ValueError(f"{plan.variant.key}: {len(plan.extras)} extra args for {len(scalar_names)} int32 params")
    if len(plan.tensors) != len(plan.variant.pointer_args):
        raise ValueError(f"{plan.variant.key}: {len(plan.tensors)} tensors for {len(plan.variant.pointer_args)} "
                         "pointer params")
    args = [Arg("input", name, int(pointers[name])) for name in plan.inputs]
    args += [Arg("int32", name, int(v)) for name, v in zip(scalar_names, plan.extras)]
    args += [Arg("output", name, int(pointers[name])) for name in plan.outputs]
    hidden = len(param_types) - len(args)
    if hidden < 0 or hidden > len(aot.HIDDEN_PARAMS):
        raise ValueError(f"{plan.variant.key}: the PTX entry declares {len(param_types)} parameters; TensorRT passes "
                         f"{len(args)} (plus at most {len(aot.HIDDEN_PARAMS)} hidden scratch pointers)")
    args += [Arg("hidden", aot.HIDDEN_PARAMS[i], 0) for i in range(hidden)]
    for arg, ptx_type in zip(args, param_types):
        wanted = INT32_PTX_TYPES if arg.kind == "int32" else POINTER_PTX_TYPES
        if ptx_type not in wanted:
            raise ValueError(f"{plan.variant.key}: parameter {arg.name} ({arg.kind}) is .{ptx_type} in the PTX")
    return args


def pack(args: Sequence[Arg]) -> tuple[ctypes.Array, list]:
    """``void*[]`` of pointers to each argument's value (int32 as 4 bytes, pointers as 8), and the
    storage it points to (keep it alive until the launch returns)."""
    storage = [ctypes.c_int32(a.value) if a.kind == "int32" else ctypes.c_uint64(a.value) for a in args]
    array = (ctypes.c_void_p * len(storage))(*[ctypes.addressof(s) for s in storage])
    return array, storage


class CudaCallError(RuntimeError):
    """A CUDA driver call failed (its CUresult name is in the message)."""


def _ok(result, what: str):
    err = result[0] if isinstance(result, tuple) else result
    if int(err) != 0:
        raise CudaCallError(f"{what} failed with {getattr(err, 'name', err)}")
    if isinstance(result, tuple):
        return result[1] if len(result) == 2 else result[1:]
    return None


def driver_version() -> int:
    """The CUDA version the driver supports, as 1000*major + 10*minor (e.g. 13000)."""
    from cuda.bindings import driver

    _ok(driver.cuInit(0), "cuInit")
    return int(_ok(driver.cuDriverGetVersion(), "cuDriverGetVersion"))


def ensure_context(device: int = 0) -> None:
    """Make sure the calling thread has a current CUDA context: the device's primary context, the
    one the CUDA runtime (torch, cuda.bindings.runtime) uses too."""
    from cuda.bindings import driver

    _ok(driver.cuInit(0), "cuInit")
    if int(_ok(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")):
        return
    dev = _ok(driver.cuDeviceGet(device), "cuDeviceGet")
    ctx = _ok(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
    _ok(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")


class PtxModule:
    """One PTX text loaded into the current CUDA context (the device's primary context if none is current)."""

    def __init__(self, ptx: bytes | str, device: int = 0):
        from cuda.bindings import driver

        self.driver = driver
        data = ptx.encode() if isinstance(ptx, str) else bytes(ptx)
        ensure_context(device)
        self.module = _ok(driver.cuModuleLoadData(data + b"\0"), "cuModuleLoadData")
        self.functions: dict[str, object] = {}

    def function(self, entry: str):
        if entry not in self.functions:
            self.functions[entry] = _ok(self.driver.cuModuleGetFunction(self.module, entry.encode()),
                                        f"cuModuleGetFunction({entry})")
        return self.functions[entry]

    def launch(self, entry: str, plan: LaunchPlan, args: Sequence[Arg], shared: int, stream: int) -> None:
        array, storage = pack(args)
        _ok(self.driver.cuLaunchKernel(self.function(entry), *plan.grid, *plan.block, shared,
                                       self.driver.CUstream(int(stream)), ctypes.addressof(array), 0),
            f"cuLaunchKernel({entry})")
        del storage

    def close(self) -> None:
        if getattr(self, "module", None) is not None:
            _ok(self.driver.cuModuleUnload(self.module), "cuModuleUnload")
            self.module = None
