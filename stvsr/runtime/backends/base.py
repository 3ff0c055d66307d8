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

from stvsr.export.metadata import ModelMetadata


class BackendError(RuntimeError):
    """A model file or backend that cannot run here."""


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
