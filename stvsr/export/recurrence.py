"""Recurrences whose length depends on an input, exported as one ONNX ``Loop``.

Tracing unrolls a Python loop into as many copies of its body as the example had steps, which
fixes the sequence length in the graph. A network whose sequence grows with a graph input (TMNet:
4 + 3T ConvLSTM steps for T times) needs the loop itself in the graph: the step is traced once
(shapes stay symbolic) and a scripted loop iterates it over the sequence, which the exporter
writes as ``Loop`` (the step's nodes in its body, the weights read from the outer graph).
"""
from __future__ import annotations

import torch
from torch import nn


class _LSTMLoop(nn.Module):
    """``[B, L, C, H, W]`` -> the hidden state after every step, ``[B, L, C', H, W]``; zero initial states."""

    def __init__(self, step: torch.jit.ScriptModule, hidden: int):
        super().__init__()
        self.step = step
        self.hidden = hidden

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        b, n, h, w = seq.shape[0], seq.shape[1], seq.shape[3], seq.shape[4]
        hid = torch.zeros([b, self.hidden, h, w], dtype=seq.dtype, device=seq.device)
        cell = torch.zeros_like(hid)
        outs = torch.zeros([b, n, self.hidden, h, w], dtype=seq.dtype, device=seq.device)
        for t in range(n):
            hid, cell = self.step(seq[:, t], hid, cell)
            outs[:, t] = hid
        return outs


class _Step(nn.Module):
    def __init__(self, lstm: nn.Module):
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor, hid: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lstm.step(x, hid, cell)


class LoopedConvLSTM(nn.Module):
    """Drop-in for a ConvLSTM module with ``step(x, hid, cell) -> (hid, cell)`` and ``forward(seq)`` over
    any number of steps (:class:`stvsr.models.zsm.DeformableConvLSTM`): same outputs, exported as a Loop.

    The module (and a module holding it) must be traced with ``torch.jit.trace`` before
    ``torch.onnx.export`` (see :func:`stvsr.export.onnx_export.export_graph`)."""

    def __init__(self, lstm: nn.Module, hidden: int, channels: int):
        super().__init__()
        example = torch.zeros(2, channels, 8, 8)
        with torch.no_grad():
            step = torch.jit.trace(_Step(lstm).eval(), (example, example[:, :hidden], example[:, :hidden]),
                                   check_trace=False)
        self.loop = torch.jit.script(_LSTMLoop(step, hidden))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.loop(seq)


def has_script_modules(module: nn.Module) -> bool:
    """Whether ``module`` holds scripted parts (which the ONNX exporter takes only from a traced module)."""
    return any(isinstance(m, torch.jit.ScriptModule) for m in module.modules())
