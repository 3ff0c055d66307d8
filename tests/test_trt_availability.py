"""stvsr-bench decides whether TensorRT rows can run by asking TensorRT and cuda-bindings, not torch.

The pinned torch is a CPU build, so ``torch.cuda.is_available()`` is False even on a GPU machine
with TensorRT. ``TensorRTModuleDouble`` and ``CudaRuntimeDouble`` are test doubles (no TensorRT,
no GPU): they only stand for "importable" and for cuda-bindings' answers.
"""
from __future__ import annotations

import sys
import types

import pytest
import torch

from stvsr.bench import runner
from stvsr.plugins import cuda_device


class TensorRTModuleDouble(types.ModuleType):
    """Test double: an importable ``tensorrt`` module with nothing in it."""

    def __init__(self):
        super().__init__("tensorrt")


class CudaRuntimeDouble:
    """Test double of ``cuda.bindings.runtime``: one GPU, or the error code a machine without a driver gives."""

    class _Err(int):
        @property
        def name(self):
            return {0: "cudaSuccess", 35: "cudaErrorInsufficientDriver"}[int(self)]

    def __init__(self, gpu: bool):
        self.err = self._Err(0 if gpu else 35)

    def cudaGetDevice(self):
        return self.err, 0 if not self.err else None

    def cudaGetDeviceProperties(self, index):
        return self.err, types.SimpleNamespace(name=b"GPU (test double)", major=9, minor=0)


@pytest.fixture
def tensorrt_importable(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", TensorRTModuleDouble())


def test_tensorrt_rows_run_with_a_gpu_even_on_a_cpu_torch(tensorrt_importable, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # the pinned CPU torch
    monkeypatch.setattr(cuda_device, "_runtime", lambda: CudaRuntimeDouble(gpu=True))
    assert runner.trt_reason() is None


def test_skip_reasons_name_tensorrt_or_the_cuda_driver_not_torch(tensorrt_importable, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda_device, "_runtime", lambda: CudaRuntimeDouble(gpu=False))
    reason = runner.trt_reason()
    assert reason == "no usable CUDA GPU: cudaGetDevice failed with cudaErrorInsufficientDriver"
    monkeypatch.setitem(sys.modules, "tensorrt", None)               # import tensorrt -> ImportError
    assert runner.trt_reason() == "tensorrt is not installed"
