"""The current CUDA GPU, read with NVIDIA's cuda-bindings (``cuda.bindings.runtime``), not torch.

The pinned torch is a CPU build, so ``torch.cuda`` cannot say which GPU an engine is built on.
cuda-bindings (``pip install cuda-python>=12.6.1``) imports anywhere and answers with an error
code where there is no driver or no GPU; :func:`current_gpu` turns that into one clear error.
"""
from __future__ import annotations

from dataclasses import dataclass


class CudaUnavailable(RuntimeError):
    """No CUDA driver, no GPU, or no cuda-bindings."""


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    major: int
    minor: int

    @property
    def arch(self) -> int:
        """Compute capability as one number (sm_90 -> 90)."""
        return self.major * 10 + self.minor


def _runtime():
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise CudaUnavailable("needs NVIDIA's cuda-bindings (pip install 'cuda-python>=12.6.1')") from None
    return runtime


def _ok(result, what: str):
    err, value = result
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        raise CudaUnavailable(f"no usable CUDA GPU: {what} failed with {name}")
    return value


def current_gpu(runtime=None) -> GpuInfo:
    """Name and compute capability of the current CUDA device (``runtime``: cuda.bindings.runtime)."""
    rt = runtime or _runtime()
    index = int(_ok(rt.cudaGetDevice(), "cudaGetDevice"))
    props = _ok(rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, (bytes, bytearray)) else str(props.name)
    return GpuInfo(index, name.strip("\x00 "), int(props.major), int(props.minor))
