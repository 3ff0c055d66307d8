"""The STVSR networks, loadable from their official checkpoints.

>>> from stvsr import models
>>> net = models.create("zsm", weights="xiang2020zooming.pth")
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from stvsr.models.checkpoint import CheckpointError, load_state_dict_strict, read_checkpoint, unwrap_state_dict

NAMES = ("zsm", "stvun", "starnet", "fmu", "tmnet")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one network without building it."""

    name: str
    params: int
    weights_file: str
    title: str
    # Where a network has several official checkpoints: every file with the frames per window of its
    # official test (TMNet: single_frame 4, multiple_frames 2); empty otherwise.
    weights_windows: tuple[tuple[str, int], ...] = ()


def _module(name: str):
    if name not in NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(NAMES)}")
    return importlib.import_module(f"stvsr.models.{name}")


def info(name: str) -> ModelInfo:
    """Registry entry of ``name``."""
    mod = _module(name)
    return ModelInfo(name, mod.PARAMS, mod.WEIGHTS_FILE, (mod.__doc__ or name).strip().splitlines()[0],
                     tuple(getattr(mod, "WEIGHTS_WINDOWS", {}).items()))


def available() -> list[ModelInfo]:
    """All networks with their parameter counts and official weight file names."""
    return [info(n) for n in NAMES]


def create(name: str, weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """Build network ``name`` in eval mode; load an official checkpoint (path or state dict) strictly."""
    model = _module(name).build()
    if weights is not None:
        obj = weights if isinstance(weights, Mapping) else read_checkpoint(weights)
        load_state_dict_strict(model, unwrap_state_dict(obj), name)
    return model.eval()


__all__ = ["CheckpointError", "ModelInfo", "NAMES", "available", "create", "info"]
