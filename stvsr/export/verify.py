"""Compare an exported graph on ONNX Runtime (CPU) with the PyTorch module it came from.

An output with NaN or Inf values fails verification (``NonFiniteOutput``): errors and PSNR of such
an output would read "nan" and pass no threshold test. Sessions sum INT8 products exactly on every x86
CPU (``stvsr.export.ort_cpu``), so an INT8 graph's error is the graph's, not the host's."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx

from stvsr.export.ort_cpu import exact_int8

if TYPE_CHECKING:
    import torch


class NonFiniteOutput(ValueError):
    """A graph or module that returned NaN or Inf values on the verification input."""


def require_finite(out: np.ndarray, what: str) -> np.ndarray:
    """Return ``out``, or raise ``NonFiniteOutput`` (one line naming ``what``) if any value is NaN/Inf."""
    finite = np.isfinite(out)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise NonFiniteOutput(f"verification failed: {what} returned {bad} NaN/Inf values of {finite.size} on the "
                              "check input (broken weights or graph)")
    return out


@dataclass
class Comparison:
    max_abs: float
    rel_l2: float
    psnr: float          # against the reference, peak 1.0 (images in [0, 1])
    ort_seconds: float

    def line(self) -> str:
        return (f"max abs error {self.max_abs:.3g}, relative L2 {self.rel_l2:.3g}, PSNR {self.psnr:.2f} dB "
                f"(ONNX Runtime CPU {self.ort_seconds * 1000:.0f} ms)")


def psnr(ours: np.ndarray, ref: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((ours.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def compare(ours: np.ndarray, ref: np.ndarray, seconds: float = 0.0) -> Comparison:
    diff = ours.astype(np.float64) - ref.astype(np.float64)
    rel = float(np.linalg.norm(diff) / max(np.linalg.norm(ref.astype(np.float64)), 1e-30))
    return Comparison(float(np.abs(diff).max()), rel, psnr(ours, ref), seconds)


def ort_session(model: onnx.ModelProto | str, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    exact_int8(opts)
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_ort(session, inputs: dict[str, torch.Tensor]) -> tuple[np.ndarray, float]:
    """The graph's output on ONNX Runtime and its time; NaN/Inf in it raise ``NonFiniteOutput``."""
    feed = {k: v.numpy() for k, v in inputs.items()}
    start = time.perf_counter()
    out = session.run(None, feed)[0]
    seconds = time.perf_counter() - start
    return require_finite(out, "the exported graph on ONNX Runtime"), seconds


def run_torch(module: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    """The PyTorch module's output; NaN/Inf in it raise ``NonFiniteOutput``."""
    import torch

    with torch.no_grad():
        return require_finite(module(*inputs.values()).numpy(), "the PyTorch network")
