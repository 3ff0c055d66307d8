"""Calibration windows for INT8 from a real video, in the graph convention."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stvsr.export.graphs import example_inputs
from stvsr.metadata import ModelMetadata
from stvsr.runtime.media import read_rgb_frames


def calibration_windows(video: str, meta: ModelMetadata, windows: int = 4, height: int = 64,
                        width: int = 64) -> list[dict[str, np.ndarray]]:
    """``windows`` consecutive-frame windows of ``video``, resized to ``height``x``width`` LR frames."""
    frames = read_rgb_frames(video, max_frames=windows * meta.window)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    clip = F.interpolate(clip, size=(height, width), mode="area")
    batches = []
    for k in range(windows):
        idx = [min(k * meta.window + i, clip.shape[0] - 1) for i in range(meta.window)]
        inputs = example_inputs(meta, height, width, frames=clip[idx].unsqueeze(0), seed=k)
        batches.append({name: value.numpy() for name, value in inputs.items()})
    return batches
