"""Safe, strict loading of official checkpoints.

Checkpoint files are untrusted: they are read with ``torch.load(weights_only=True)`` and only a
few harmless types are allow-listed. A state dict is accepted with a DataParallel ``module.``
prefix and inside the usual wrappers; anything else fails with a readable account of the
missing, unexpected and mis-shaped keys. Values are checked too: a non-float tensor (e.g. int32)
where the network has a float parameter or buffer, and NaN/Inf values, are refused naming the
first such key.
"""
from __future__ import annotations

import collections
import hashlib
import os
import pickle
from typing import Mapping

import torch
from torch import nn

WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model", "net", "network")
PREFIXES = ("module.",)
_SHOWN = 4


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the network."""


def _safe_globals() -> list:
    """Harmless types that training scripts leave in checkpoints (numpy scalars for epoch/metrics)."""
    import numpy as np

    core = np._core if hasattr(np, "_core") else np.core
    dtypes = [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]
    return [collections.OrderedDict, np.dtype, core.multiarray.scalar, *dtypes]


def read_checkpoint(path: str | os.PathLike) -> Mapping:
    """Read a checkpoint file without executing arbitrary pickled code."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            unsafe = []
        if not unsafe:
            raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint file") from None
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling ({', '.join(unsafe[:4])}), which could run "
            "code from the file. Re-save it as a plain state dict: torch.save(model.state_dict(), path)") from None
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint file "
                              f"({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj


def unwrap_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    """Peel ``{"state_dict": ...}``-style wrappers and a common ``module.`` prefix."""
    while not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise CheckpointError(f"no state dict found in checkpoint (top-level keys: {sorted(obj)[:8]})")
        obj = inner
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _few(names: list[str]) -> str:
    more = f", ... (+{len(names) - _SHOWN})" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], name: str = "model") -> None:
    """Load ``sd`` into ``model`` requiring exactly the same keys and shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shaped = [f"{k} {tuple(sd[k].shape)}!={tuple(own[k].shape)}" for k in own
              if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        if shaped:
            parts.append(f"{len(shaped)} mis-shaped ({_few(shaped)})")
        raise CheckpointError(f"checkpoint does not fit {name}: " + "; ".join(parts))
    check_values(own, sd, name)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)


def check_values(own: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor], name: str = "model") -> None:
    """Refuse a non-float tensor where ``own`` (the network's state dict) holds floats, and any
    NaN/Inf value, naming the first such key (in the network's order)."""
    for key, mine in own.items():
        value = sd[key]
        if not mine.is_floating_point():
            continue
        if not value.is_floating_point():
            raise CheckpointError(f"checkpoint key {key} holds {str(value.dtype).replace('torch.', '')} values where "
                                  f"{name} has a {str(mine.dtype).replace('torch.', '')} tensor; not a checkpoint "
                                  "of this network (or a broken one)")
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"checkpoint key {key} holds {bad} NaN/Inf values of {value.numel()}; "
                                  "the weights are broken (a diverged training run?)")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
