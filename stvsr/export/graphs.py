"""The one graph convention every exported network follows, and each network's adapter to it.

Inputs: ``frames`` float32 ``[B, N, 3, H, W]`` RGB in [0, 1]; ``times`` float32 ``[T]`` for networks
that render arbitrary times; ``flow_fwd``/``flow_bwd`` ``[B, 2, H, W]`` in LR pixels (dx, dy) for
networks whose flow comes from outside. Output: ``frames_out`` ``[B, M, 3, 4H, 4W]`` RGB in [0, 1]
(not clamped). Colour order, normalisation and output range of each network happen in here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from stvsr import models
from stvsr.export.metadata import FRAMES_INPUT, TIMES_INPUT, ModelMetadata


class ZSMGraph(nn.Module):
    def __init__(self, net: nn.Module, skip_last: bool = False):
        super().__init__()
        self.net, self.skip_last = net, skip_last

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames, skip_last=self.skip_last)


def _zsm_tiled(net: nn.Module) -> nn.Module:
    return ZSMGraph(net, skip_last=True)


class STVUNGraph(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        return (self.net(frames * 2 - 1, times) + 1) / 2


class FMUGraph(nn.Module):
    """RGB in and out; the network itself works in BGR. Outputs frame 1 then one frame per time."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        pred, hr_t = self.net.interpolate(frames.flip(2), times)
        return torch.cat([pred[:, 1:2], hr_t], dim=1).flip(2)


class STARnetGraph(nn.Module):
    """ImageNet normalisation and the official flow scaling (clip to +-150 px, divide by 150) inside."""

    def __init__(self, net: nn.Module):
        super().__init__()
        from stvsr.models.starnet import FLOW_CLIP, FLOW_DIV, IMAGENET_MEAN, IMAGENET_STD

        self.net = net
        self.flow_clip, self.flow_div = FLOW_CLIP, FLOW_DIV
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor, flow_fwd: torch.Tensor, flow_bwd: torch.Tensor) -> torch.Tensor:
        x1 = (frames[:, 0] - self.mean) / self.std
        x2 = (frames[:, 1] - self.mean) / self.std
        ff = flow_fwd.clamp(-self.flow_clip, self.flow_clip) / self.flow_div
        fb = flow_bwd.clamp(-self.flow_clip, self.flow_clip) / self.flow_div
        ht, h1, h2, _ = self.net(x1, x2, ff, fb)
        return torch.stack([h1, ht, h2], dim=1) * self.std.unsqueeze(1) + self.mean.unsqueeze(1)


@dataclass(frozen=True)
class GraphSpec:
    """How one network is wrapped, fed and described."""

    wrap: Callable[[nn.Module], nn.Module]
    window: int
    output_positions: tuple[float, ...]
    size_multiple: int
    time_gap: int | None = None
    flow_inputs: tuple[str, ...] = ()
    flow_pairs: tuple[tuple[int, int], ...] = ()
    # Variant without the last fixed output, so that windows at a stride tile time with no output
    # computed twice (the last output of one window is the first of the next); None: no such variant.
    tiled_wrap: Callable[[nn.Module], nn.Module] | None = None

    def positions(self, tiled: bool) -> tuple[float, ...]:
        return self.output_positions[:-1] if tiled and self.tiled_wrap else self.output_positions


SPECS: dict[str, GraphSpec] = {
    "zsm": GraphSpec(ZSMGraph, 4, (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), 4, tiled_wrap=_zsm_tiled),
    "stvun": GraphSpec(STVUNGraph, 7, (3.0,), 16, time_gap=3),
    "fmu": GraphSpec(FMUGraph, 4, (1.0,), 4, time_gap=1),
    "starnet": GraphSpec(STARnetGraph, 2, (0.0, 0.5, 1.0), 32,
                         flow_inputs=("flow_fwd", "flow_bwd"), flow_pairs=((0, 1), (1, 0))),
}


def graph_module(name: str, weights=None, tiled: bool = False) -> nn.Module:
    """Network ``name`` (official weights, a state dict or random) wrapped in the graph convention;
    ``tiled``: the variant without the last fixed output where the network has one (zsm)."""
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(models.NAMES)}")
    spec = SPECS[name]
    wrap = spec.tiled_wrap if tiled and spec.tiled_wrap else spec.wrap
    return wrap(models.create(name, weights)).eval()


def has_tiled_variant(name: str) -> bool:
    return SPECS[name].tiled_wrap is not None


def base_metadata(name: str, tiled: bool = False) -> ModelMetadata:
    """The metadata fields that follow from the network alone (``tiled``: see ``graph_module``)."""
    spec = SPECS[name]
    inputs = {"frames": FRAMES_INPUT}
    if spec.time_gap is not None:
        inputs["times"] = TIMES_INPUT
    return ModelMetadata(
        model=name, window=spec.window, output_positions=list(spec.positions(tiled)), scale=4,
        size_multiple=spec.size_multiple, time_gap=spec.time_gap, flow_inputs=list(spec.flow_inputs),
        flow_pairs=[list(p) for p in spec.flow_pairs], inputs=inputs)


def input_names(meta: ModelMetadata) -> list[str]:
    names = [FRAMES_INPUT]
    if meta.takes_times:
        names.append(TIMES_INPUT)
    return names + list(meta.flow_inputs)


def example_inputs(meta: ModelMetadata, height: int, width: int, batch: int = 1, times: int = 1,
                   frames: torch.Tensor | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs of the right names and shapes: smooth random frames (or ``frames``), times, small flows."""
    g = torch.Generator().manual_seed(seed)
    if frames is None:
        coarse = torch.rand(batch, meta.window * 3, max(1, height // 4), max(1, width // 4), generator=g)
        frames = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear",
                                                 align_corners=False).view(batch, meta.window, 3, height, width)
    inputs = {FRAMES_INPUT: frames.float()}
    if meta.takes_times:
        inputs[TIMES_INPUT] = torch.arange(1, times + 1, dtype=torch.float32) / (times + 1)
    for name in meta.flow_inputs:
        inputs[name] = torch.randn(frames.shape[0], 2, height, width, generator=g) * 2
    return inputs
