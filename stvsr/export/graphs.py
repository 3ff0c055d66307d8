"""The one graph convention every exported network follows, and each network's adapter to it.

Inputs: ``frames`` float32 ``[B, N, 3, H, W]`` RGB in [0, 1]; ``times`` float32 ``[T]`` for networks
that render arbitrary times; ``flow_fwd``/``flow_bwd`` ``[B, 2, H, W]`` in LR pixels (dx, dy) for
networks whose flow comes from outside. Output: ``frames_out`` ``[B, M, 3, 4H, 4W]`` RGB in [0, 1]
(not clamped). Colour order, normalisation and output range of each network happen in here.

A graph module whose traced form must differ from its eager one (a recurrence over a sequence whose
length depends on an input) has ``export_form()``, the module the exporter traces instead; the eager
module stays the reference the graph is verified against.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from stvsr import models
from stvsr.export.metadata import FRAMES_INPUT, GAP, TIMES_INPUT, ModelMetadata


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


class TMNetGraph(nn.Module):
    """The same ``times`` in every gap; outputs frame 0, the frames of gap 0 at the times, frame 1, ...
    (``skip_last``: without the last frame)."""

    def __init__(self, net: nn.Module, skip_last: bool = False):
        super().__init__()
        self.net, self.skip_last = net, skip_last

    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        return self.net(frames, times.unsqueeze(0).expand(frames.shape[0], -1), skip_last=self.skip_last)

    def export_form(self) -> nn.Module:
        """A copy whose ConvLSTM runs as one ONNX Loop: its sequence (N + (N-1)T steps) grows with T."""
        from stvsr.export.recurrence import LoopedConvLSTM

        net = copy.deepcopy(self.net)
        lstm = net.ConvBLSTM.forward_net
        hidden = lstm.cell_list[0].hidden_dim
        net.ConvBLSTM.forward_net = LoopedConvLSTM(lstm, hidden, hidden)
        return TMNetGraph(net, self.skip_last)


def _tmnet_tiled(net: nn.Module) -> nn.Module:
    return TMNetGraph(net, skip_last=True)


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
    # Renders the times in every gap of its window, after the frame that starts the gap (TMNet): its
    # outputs are every input frame with each gap's frames between them (output_positions unused).
    times_in_every_gap: bool = False
    # Windows (frames) the network is also exported for, besides ``window`` (TMNet's two checkpoints).
    other_windows: tuple[int, ...] = ()

    @property
    def windows(self) -> tuple[int, ...]:
        return (self.window,) + self.other_windows

    def _cut(self, entries: list, tiled: bool) -> list:
        return entries[:-1] if tiled and self.tiled_wrap else entries

    def positions(self, tiled: bool, window: int | None = None) -> tuple[float, ...]:
        fixed = [float(i) for i in range(window or self.window)] if self.times_in_every_gap else self.output_positions
        return tuple(self._cut(list(fixed), tiled))

    def layout(self, tiled: bool, window: int | None = None) -> list:
        """The metadata's ``output_layout`` (empty: fixed outputs first, then the times of ``time_gap``)."""
        if not self.times_in_every_gap:
            return []
        n = window or self.window
        entries = [e for i in range(n) for e in ([float(i), {GAP: i}] if i < n - 1 else [float(i)])]
        return self._cut(entries, tiled)


SPECS: dict[str, GraphSpec] = {
    "zsm": GraphSpec(ZSMGraph, 4, (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), 4, tiled_wrap=_zsm_tiled),
    "stvun": GraphSpec(STVUNGraph, 7, (3.0,), 16, time_gap=3),
    "fmu": GraphSpec(FMUGraph, 4, (1.0,), 4, time_gap=1),
    "starnet": GraphSpec(STARnetGraph, 2, (0.0, 0.5, 1.0), 32,
                         flow_inputs=("flow_fwd", "flow_bwd"), flow_pairs=((0, 1), (1, 0))),
    "tmnet": GraphSpec(TMNetGraph, 4, (), 4, tiled_wrap=_tmnet_tiled, times_in_every_gap=True, other_windows=(2,)),
}


def _spec(name: str) -> GraphSpec:
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(models.NAMES)}")
    return SPECS[name]


def choose_window(name: str, window: int | None = None, weights: str | os.PathLike | None = None) -> int:
    """Frames per window of ``name``'s graph: ``window`` if given (one the network is exported for), else the
    one its official checkpoint of that file name was tested with (``models.info(name).weights_windows``:
    TMNet's ``tmnet_multiple_frames.pth`` -> 2), else the network's default."""
    spec = _spec(name)
    if window is not None:
        if window not in spec.windows:
            raise ValueError(f"{name} is exported for windows of {' or '.join(map(str, spec.windows))} frames, "
                             f"not {window}")
        return window
    if isinstance(weights, (str, os.PathLike)):
        return dict(models.info(name).weights_windows).get(os.path.basename(os.fspath(weights)), spec.window)
    return spec.window


def weights_file_for_window(name: str, window: int) -> str:
    """The official checkpoint file name for ``name`` exported with ``window`` frames."""
    info = models.info(name)
    return next((f for f, w in info.weights_windows if w == window), info.weights_file)


def graph_module(name: str, weights=None, tiled: bool = False) -> nn.Module:
    """Network ``name`` (official weights, a state dict or random) wrapped in the graph convention;
    ``tiled``: the variant without the last fixed output where the network has one (zsm, tmnet)."""
    spec = _spec(name)
    wrap = spec.tiled_wrap if tiled and spec.tiled_wrap else spec.wrap
    return wrap(models.create(name, weights)).eval()


def has_tiled_variant(name: str) -> bool:
    return SPECS[name].tiled_wrap is not None


def base_metadata(name: str, tiled: bool = False, window: int | None = None) -> ModelMetadata:
    """The metadata fields that follow from the network alone (``tiled``: see ``graph_module``;
    ``window``: frames per window, one of the network's, default its first)."""
    spec = _spec(name)
    window = choose_window(name, window)
    inputs = {"frames": FRAMES_INPUT}
    layout = spec.layout(tiled, window)
    if spec.time_gap is not None or layout:
        inputs["times"] = TIMES_INPUT
    return ModelMetadata(
        model=name, window=window, output_positions=list(spec.positions(tiled, window)), scale=4,
        size_multiple=spec.size_multiple, time_gap=spec.time_gap, output_layout=layout,
        flow_inputs=list(spec.flow_inputs), flow_pairs=[list(p) for p in spec.flow_pairs], inputs=inputs)


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
