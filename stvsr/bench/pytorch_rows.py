"""stvsr-bench's PyTorch rows on the device torch has: CUDA when it sees a GPU, else the CPU.

On CUDA the network and its inputs live on the GPU and one call is timed up to
``torch.cuda.synchronize()``; FP32 rows run with TF32 off (an FP32 row computes in FP32, like the
FP32 TensorRT engines), FP16 rows under ``torch.autocast(float16)`` (PyTorch keeps its FP32-listed
ops, such as ``grid_sample``, in FP32). Rows are named ``pytorch-cuda`` there and ``pytorch`` on the
CPU; FP16 rows (``--backends pytorch-fp16``) run on CUDA only.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch


def on_cuda() -> bool:
    """Whether torch here can run the PyTorch rows on a CUDA GPU."""
    return torch.cuda.is_available()


def label() -> str:
    return "pytorch-cuda" if on_cuda() else "pytorch"


def skip_reason(precision: str) -> str | None:
    """Why a PyTorch row of ``precision`` cannot run here, or None."""
    if precision == "fp16" and not on_cuda():
        return "PyTorch FP16 rows need a CUDA GPU (torch here sees none)"
    if precision not in ("fp32", "fp16"):
        return f"PyTorch rows are FP32 or FP16, not {precision}"
    return None


def _fp32_only(stack: contextlib.ExitStack) -> None:
    """TF32 off until ``stack`` closes (torch's cuDNN convolutions use TF32 by default)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    def restore():
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

    stack.callback(restore)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def device_call(module: torch.nn.Module, inputs: dict[str, torch.Tensor], precision: str,
                stack: contextlib.ExitStack, device: str = "cuda") -> Callable[[], torch.Tensor]:
    """One timed call of a copy of ``module`` on ``device`` (inputs moved there once); the copy and
    the precision settings last until ``stack`` closes."""
    net = copy.deepcopy(module).to(device).eval()
    feed = [v.to(device) for v in inputs.values()]
    stack.callback(lambda: feed.clear())
    if precision == "fp32":
        _fp32_only(stack)
    dev_type = torch.device(device).type

    def call() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(dev_type, dtype=torch.float16, enabled=precision == "fp16"):
            out = net(*feed)
        if dev_type == "cuda":
            torch.cuda.synchronize()
        return out

    return call


METHOD_NOTE = ("PyTorch CUDA rows: network and inputs resident on the GPU, one window timed to "
               "torch.cuda.synchronize(); FP32 with TF32 off, FP16 under torch.autocast")
