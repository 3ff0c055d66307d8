"""Where the weights of an export come from: a given file, the cache folder, or an explicit random init."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from stvsr import models
from stvsr.home import HOME_ENV as CACHE_ENV, stvsr_home
from stvsr.models.checkpoint import sha256_file

# Where each network's official checkpoint is published: the authors' repository and the
# released-model link as that repository's README gives it (README table "Weights" says the same).
OFFICIAL_SOURCES = {
    "zsm": ("https://github.com/Mukosame/Zooming-Slow-Mo-CVPR-2020",
            "https://github.com/Mukosame/Zooming-Slow-Mo-CVPR-2020/blob/master/experiments/pretrained_models/"
            "xiang2020zooming.pth (or Google Drive: https://drive.google.com/open?id=1xeOoZclGeSI1urY6mVCcApfCqOPgxMBK)"),
    "stvun": ("https://github.com/JaeYeonKang/STVUN-Pytorch",
              "the README's \"pretrained model\" Google Drive link (Quickstart, step 4)"),
    "starnet": ("https://github.com/alterzero/STARnet",
                "https://drive.google.com/drive/folders/1cLZhlx4PLhF75qIZYxuVKLRKzN5_6i8r "
                "(the README's \"Pretrained Model and Testset\" folder)"),
    "fmu": ("https://github.com/saikatdutta/FMU_STSR",
            "checkpoints/gridnet/stsr-21-11279.pth in that repository"),
    "tmnet": ("https://github.com/CS-GangXu/TMNet",
              "tmnet_single_frame.pth and tmnet_multiple_frames.pth from the README's Google Drive folder "
              "https://drive.google.com/drive/folders/1PjXClB-S8pyB6y1UWJQnZK7fela5Lcu1 (or Baidu Netdisk "
              "https://pan.baidu.com/s/15yzRVzuZia0Fi76KWOWuig, access code wiq7)"),
}


def official_source(name: str) -> str:
    """One phrase: where the official checkpoint of ``name`` is published."""
    repo, weights = OFFICIAL_SOURCES.get(name, ("", ""))
    return f"official source {repo}, weights: {weights}" if repo else ""


def cache_dir() -> Path:
    """``$STVSR_HOME/weights``, default ``~/.cache/stvsr/weights``."""
    return stvsr_home("weights")


@dataclass
class WeightsChoice:
    state: object            # a path, a state dict, or None
    source: str              # what the metadata records
    sha256: str
    random: bool


def seeded_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic stand-in weights shaped like the official checkpoint (for tests and benchmarks)."""
    net = models.create(name)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.zeros_like(value)
        elif key.endswith("running_var"):
            sd[key] = 1.0 + 0.1 * torch.rand(value.shape, generator=g)
        elif key.endswith("running_mean"):
            sd[key] = 0.05 * torch.randn(value.shape, generator=g)
        elif value.dim() >= 2:
            sd[key] = torch.randn(value.shape, generator=g) / value[0].numel() ** 0.5
        elif key.endswith("weight"):
            sd[key] = 0.25 + 0.05 * torch.randn(value.shape, generator=g)
        else:
            sd[key] = 0.01 * torch.randn(value.shape, generator=g)
    return sd


def resolve_weights(name: str, weights: str | None, random_weights: bool,
                    file_name: str | None = None) -> WeightsChoice:
    """Pick the weights for ``name``; raise ``FileNotFoundError`` saying what to obtain when none is found.
    ``file_name``: the official file to look for in the cache folder (default the network's first)."""
    if weights and random_weights:
        raise ValueError("give either --weights or --random-weights, not both")
    if random_weights:
        return WeightsChoice(seeded_state_dict(name), "random (seeded, seed=0)", "", True)
    if weights is None:
        file_name = file_name or models.info(name).weights_file
        wanted = cache_dir() / file_name
        if not wanted.is_file():
            raise FileNotFoundError(
                f"no weights for {name}: put the official checkpoint {file_name} in "
                f"{wanted.parent} (or set ${CACHE_ENV}), pass --weights PATH, or --random-weights for a test export"
                f"; {official_source(name)}")
        weights = str(wanted)
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file not found: {weights}")
    return WeightsChoice(weights, os.path.basename(weights), sha256_file(weights), False)
