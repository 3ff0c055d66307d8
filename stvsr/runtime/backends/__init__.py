"""Backends that run an exported model: ONNX Runtime (``.onnx``) and TensorRT (``.plan``/``.engine``)."""
from __future__ import annotations

import os
from typing import Sequence

from stvsr.runtime.backends.base import Backend, BackendError

ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


def open_backend(path: str, backend: str = "auto", providers: Sequence[str] | None = None,
                 threads: int = 0) -> Backend:
    """Open ``path`` with the named backend; ``auto`` picks by file extension."""
    if not os.path.isfile(path):
        raise BackendError(f"{path}: no such model file")
    if backend == "auto":
        backend = "tensorrt" if path.lower().endswith(ENGINE_SUFFIXES) else "onnxruntime"
    if backend == "onnxruntime":
        from stvsr.runtime.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, providers, threads)
    if backend == "tensorrt":
        try:
            from stvsr.runtime.backends.tensorrt import TensorRTBackend
        except ImportError as exc:
            raise BackendError(f"the TensorRT backend needs tensorrt and cuda-python ({exc})") from None
        return TensorRTBackend(path)
    raise BackendError(f"unknown backend {backend!r}")


__all__ = ["Backend", "BackendError", "open_backend"]
