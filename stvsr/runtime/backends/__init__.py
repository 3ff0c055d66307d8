"""Backends that run an exported model: ONNX Runtime (``.onnx``) and TensorRT (``.plan``/``.engine``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from stvsr.metadata import ModelMetadata
from stvsr.runtime.backends.base import Backend, BackendError

ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


def _backend_name(path: str, backend: str) -> str:
    if backend == "auto":
        return "tensorrt" if path.lower().endswith(ENGINE_SUFFIXES) else "onnxruntime"
    return backend


@dataclass(frozen=True)
class PeekedModel:
    metadata: ModelMetadata
    max_factor: int | None   # the largest --factor the model file serves (a TensorRT engine's times profile)


def peek_model(path: str, backend: str = "auto") -> PeekedModel | None:
    """A model's metadata read without a runtime, for checks before it loads: an ONNX file's
    metadata entry alone (``peek_onnx_metadata``: the graph and weights are skipped), a TensorRT
    plan's sidecar JSON (no TensorRT, no GPU, no engine deserialisation). None when it cannot be
    read so; ``open_backend`` then says why."""
    if not os.path.isfile(path):
        return None
    if _backend_name(path, backend) == "tensorrt":
        from stvsr.engines.cache import read_sidecar
        from stvsr.engines.profiles import engine_max_factor

        try:
            meta = read_sidecar(path).model
        except Exception:
            return None
        return PeekedModel(meta, engine_max_factor(meta.takes_times))
    from stvsr.metadata import peek_onnx_metadata

    meta = peek_onnx_metadata(path)
    return None if meta is None else PeekedModel(meta, None)


def open_backend(path: str, backend: str = "auto", providers: Sequence[str] | None = None,
                 threads: int = 0) -> Backend:
    """Open ``path`` with the named backend; ``auto`` picks by file extension."""
    if not os.path.isfile(path):
        raise BackendError(f"{path}: no such model file")
    backend = _backend_name(path, backend)
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


__all__ = ["Backend", "BackendError", "PeekedModel", "open_backend", "peek_model"]
