"""Optical flow for networks whose flow comes from outside (STARnet).

The official STARnet evaluation used Ce Liu's coarse-to-fine variational flow (pyflow, alpha
0.012, ratio 0.75, minWidth 20). pyflow is an unmaintained C++ extension; we use OpenCV's
maintained Farneback (default) or DIS implementations instead. Both give dense flow in pixels
with the same convention (``prev(y, x) ~ next(y + v, x + u)``), but they are smoother/less
accurate on large motion than pyflow, so outputs differ slightly from the paper's pipeline.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class FlowProvider(ABC):
    """Dense optical flow between two RGB frames in [0, 1], ``[3, H, W]`` -> ``[2, H, W]`` (dx, dy)."""

    name = "flow"

    @abstractmethod
    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray: ...


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    rgb = np.clip(frame.transpose(1, 2, 0) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class FarnebackFlow(FlowProvider):
    """OpenCV Farneback polynomial-expansion flow (robust default)."""

    name = "farneback"

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        import cv2

        flow = cv2.calcOpticalFlowFarneback(_gray(first), _gray(second), None, pyr_scale=0.75, levels=5,
                                            winsize=15, iterations=5, poly_n=5, poly_sigma=1.1, flags=0)
        return flow.transpose(2, 0, 1).astype(np.float32)


class DISFlow(FlowProvider):
    """OpenCV DIS flow (faster; medium preset)."""

    name = "dis"

    def __init__(self):
        import cv2

        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        flow = self._dis.calc(_gray(first), _gray(second), None)
        return flow.transpose(2, 0, 1).astype(np.float32)


PROVIDERS = {"farneback": FarnebackFlow, "dis": DISFlow}


def flow_provider(name: str = "farneback") -> FlowProvider:
    try:
        import cv2  # noqa: F401
    except ImportError:
        raise RuntimeError("optical flow needs OpenCV: pip install opencv-python-headless") from None
    if name not in PROVIDERS:
        raise ValueError(f"unknown flow method {name!r}; choose one of {', '.join(PROVIDERS)}")
    return PROVIDERS[name]()
