"""fmu specifics: the eval path skips RSDN's unused last step and still gives the official outputs."""
from __future__ import annotations

import torch

from stvsr import models
from tests.conftest import official_outputs, seeded


def test_interpolate_skips_the_unused_rsdn_step_with_identical_outputs():
    net = models.create("fmu", weights=seeded("fmu"))
    x = official_outputs("fmu")["input"][..., :16, :16].contiguous()
    steps = []
    hook = net.vsrnet.neuro.register_forward_hook(lambda *_: steps.append(1))
    with torch.no_grad():
        pred, hr_t = net.interpolate(x, torch.tensor([0.5]))
        assert len(steps) == 3  # frames 0, 1, 2; frame 3's step was never used
        steps.clear()
        full_pred, _, _, full_hr, _ = net(x, 0.5)  # the official forward: all four frames
        assert len(steps) == 4
    hook.remove()
    assert pred.shape == (1, 3, 3, 64, 64)
    assert torch.equal(pred, full_pred[:, :3])
    assert torch.equal(hr_t[:, 0], full_hr)
