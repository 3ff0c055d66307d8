"""Block sizes, grids and the list of compiled kernel variants: one source for JIT launch and AOT
(no torch: the TensorRT backend reads it through the AOT plugins on a runtime-only install).

Every variant the AOT build compiles is a (kernel, dtype combination, constexpr values) tuple
listed by :func:`variants`; the TensorRT AOT implementation looks a variant up by the same key.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

WARP_PADDING_MODES = ("zeros", "border")
DTYPES = ("fp32", "fp16")
# Kernel shapes compiled ahead of time for the deformable convolution (KH, KW).
DEFORM_CONV_KERNEL_SIZES = ((3, 3), (1, 1))


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclasses.dataclass(frozen=True)
class WarpConfig:
    block_p: int = 128
    block_c: int = 8
    num_warps: int = 4

    def launch_options(self) -> dict:
        return {"num_warps": self.num_warps}


@dataclasses.dataclass(frozen=True)
class DeformConvConfig:
    block_p: int = 64
    block_o: int = 64
    block_c: int = 16
    num_warps: int = 4
    num_stages: int = 1

    def launch_options(self) -> dict:
        return {"num_warps": self.num_warps, "num_stages": self.num_stages}


WARP = WarpConfig()
# tl.dot needs every block dimension >= 16. FP32 tiles use IEEE FP32 products. Chosen without a
# GPU from ptxas's report for sm_86 (no spills in any): 64x64x16 tiles with 8 warps use ~105
# registers per thread (fp16 and fp32), with 4 warps 167 (fp16) / 184 (fp32) -> lower occupancy.
# To be tuned on a GPU with benchmarks/plugins_gpu.py.
DEFORM_CONV = {"fp32": DeformConvConfig(num_warps=8), "fp16": DeformConvConfig(num_warps=8)}


def warp_grid(n: int, h: int, w: int, cfg: WarpConfig = WARP) -> tuple[int, int]:
    return cdiv(h * w, cfg.block_p), n


def deform_conv_grid(n: int, oh: int, ow: int, out_c: int, groups: int,
                     cfg: DeformConvConfig) -> tuple[int, int, int]:
    return cdiv(oh * ow, cfg.block_p), groups * cdiv(out_c // groups, cfg.block_o), n


@dataclasses.dataclass(frozen=True)
class Variant:
    """One kernel specialisation compiled to PTX."""
    kernel: str                 # "deform_conv2d" or "backward_warp"
    signature: dict             # argument name -> Triton type ("*fp16", "i32", "constexpr")
    constexprs: dict            # constexpr name -> value
    num_warps: int
    num_stages: int
    key: str                    # unique, file-name safe

    @property
    def pointer_args(self) -> list[str]:
        return [a for a, t in self.signature.items() if t.startswith("*")]

    @property
    def scalar_args(self) -> list[str]:
        return [a for a, t in self.signature.items() if t == "i32"]


# COORDS constexpr of the warp kernel (see stvsr.plugins.kernels.warp).
WARP_COORDS = {"flow": 0, "grid_align_corners": 1, "grid": 2}


def warp_variant(x_dtype: str, coords: str, padding_mode: str, coord_dtype: str = "fp32",
                 cfg: WarpConfig = WARP) -> Variant:
    if padding_mode not in WARP_PADDING_MODES:   # never fall back to zeros silently
        raise ValueError(f"padding_mode must be one of {WARP_PADDING_MODES}, got {padding_mode!r}")
    sig = {"x_ptr": f"*{x_dtype}", "coord_ptr": f"*{coord_dtype}", "C": "i32", "H": "i32", "W": "i32",
           "OH": "i32", "OW": "i32", "out_ptr": f"*{x_dtype}",
           "COORDS": "constexpr", "BORDER": "constexpr", "BLOCK_P": "constexpr", "BLOCK_C": "constexpr"}
    consts = {"COORDS": WARP_COORDS[coords], "BORDER": padding_mode == "border",
              "BLOCK_P": cfg.block_p, "BLOCK_C": cfg.block_c}
    return Variant("backward_warp", sig, consts, cfg.num_warps, 1,
                   f"warp_{coords}_{x_dtype}_{coord_dtype}coords_{padding_mode}")


DEFORM_CONV_SCALARS = ("C", "H", "W", "OH", "OW", "O", "stride_h", "stride_w", "pad_h", "pad_w",
                       "dil_h", "dil_w", "groups", "deform_groups")


def deform_conv_variant(dtype: str, kh: int, kw: int, cfg: DeformConvConfig | None = None) -> Variant:
    cfg = cfg or DEFORM_CONV[dtype]
    sig = {name: f"*{dtype}" for name in ("x_ptr", "w_ptr", "offset_ptr", "bias_ptr", "mask_ptr")}
    sig.update({name: "i32" for name in DEFORM_CONV_SCALARS})
    sig["out_ptr"] = f"*{dtype}"
    sig.update({name: "constexpr" for name in ("KH", "KW", "BLOCK_P", "BLOCK_O", "BLOCK_C")})
    consts = {"KH": kh, "KW": kw, "BLOCK_P": cfg.block_p, "BLOCK_O": cfg.block_o, "BLOCK_C": cfg.block_c}
    return Variant("deform_conv2d", sig, consts, cfg.num_warps, cfg.num_stages,
                   f"deform_conv2d_{dtype}_k{kh}x{kw}")


def variants() -> Iterator[Variant]:
    """Every variant the AOT build compiles."""
    for dtype in DTYPES:
        for kh, kw in DEFORM_CONV_KERNEL_SIZES:
            yield deform_conv_variant(dtype, kh, kw)
    # Coordinates (flow or grid) are always FP32 in compiled plugins, whatever the data type.
    for x_dtype in DTYPES:
        for coords in WARP_COORDS:
            for mode in WARP_PADDING_MODES:
                yield warp_variant(x_dtype, coords, mode)
