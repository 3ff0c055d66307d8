"""The backend interface of the streaming runtime.

A backend runs one model file. ``submit`` starts inference on one window and returns at once
with a ticket; ``collect`` waits for that ticket's output. Up to ``max_in_flight`` tickets may be
outstanding, so a backend with its own streams (TensorRT: upload of window k+1 while window k
computes, download of k-1) overlaps transfers and compute; a CPU backend overlaps inference with
the pipeline's pre- and post-processing.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from stvsr.metadata import ModelMetadata


class BackendError(RuntimeError):
    """A model file or backend that cannot run here."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message as one line (runtimes print multi-line messages)."""
    text = " ".join(str(exc).split())
    return (text[:limit] + "...") if len(text) > limit else (text or type(exc).__name__)


def check_graph_inputs(path: str, meta: ModelMetadata, graph_inputs: dict[str, list]) -> None:
    """Refuse a model whose stvsr metadata names inputs the graph lacks (or the other way round),
    or whose ``frames`` input has a fixed frame count other than the metadata's window."""
    fed = [meta.inputs.get("frames", "frames")] + ([meta.inputs.get("times", "times")] if meta.takes_times else [])
    fed += list(meta.flow_inputs)
    missing = [name for name in fed if name not in graph_inputs]
    extra = [name for name in graph_inputs if name not in fed]
    if missing or extra:
        raise BackendError(f"{path}: its stvsr metadata does not match the graph (metadata inputs {fed}, "
                           f"graph inputs {list(graph_inputs)})")
    shape = graph_inputs[fed[0]]
    if shape is not None and len(shape) != 5:
        raise BackendError(f"{path}: input {fed[0]!r} has {len(shape)} dimensions, expected 5 [B, N, 3, H, W]")
    if shape is not None and isinstance(shape[1], int) and shape[1] != meta.window:
        raise BackendError(f"{path}: the graph takes windows of {shape[1]} frames but its stvsr metadata says "
                           f"{meta.window}")


class Backend(ABC):
    metadata: ModelMetadata
    max_in_flight: int = 1
    name: str = "backend"

    @abstractmethod
    def submit(self, inputs: dict[str, np.ndarray]) -> Any:
        """Start inference on one window's inputs (float32 arrays keyed by input name)."""

    @abstractmethod
    def collect(self, ticket: Any) -> np.ndarray:
        """Wait for ``ticket`` and return ``frames_out`` as float32 ``[B, M, 3, sH, sW]``."""

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.collect(self.submit(inputs))

    def close(self) -> None:
        """Release resources (idempotent)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
