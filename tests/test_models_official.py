"""Every network reproduces the official implementation's outputs under the seeded weights."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from stvsr import models
from tests.conftest import manifest, official_outputs, rel_l2, seeded

TOL = 1e-4


def _built(name: str) -> bool:
    return importlib.util.find_spec(f"stvsr.models.{name}") is not None


def _run_official_case(name: str, net: torch.nn.Module, ref: dict) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, ours, official) for every output tensor of ``name``'s reference file."""
    with torch.no_grad():
        if name == "zsm":
            return [("output", net(ref["input"]), ref["output"])]
        if name == "stvun":
            out = net(ref["input"], torch.as_tensor(ref["times"], dtype=torch.float32))
            return [("output", out.transpose(0, 1), ref["output"])]
        if name == "starnet":
            outs = net(ref["x1"], ref["x2"], ref["flow_f"], ref["flow_b"])
            return [(f"outputs[{i}]", o, r) for i, (o, r) in enumerate(zip(outs, ref["outputs"]))]
        if name == "fmu":
            cases = []
            for t, expected in ref["outputs"].items():
                outs = net(ref["input"], float(t))
                cases += [(f"t={t}[{i}]", o, r) for i, (o, r) in enumerate(zip(outs, expected))]
            return cases
        if name == "tmnet":  # t=None (the single-frame call) and t=[[0.25, 0.5, 0.75]] ([B, T])
            return [(f"t={key}", net(ref["input"], ref["t"][key]), expected)
                    for key, expected in ref["outputs"].items()]
    raise AssertionError(name)


@pytest.mark.parametrize("name", [n for n in models.NAMES if _built(n)])
def test_reproduces_official_outputs(name):
    net = models.create(name, weights=seeded(name))
    cases = _run_official_case(name, net, official_outputs(name))
    assert cases
    for label, ours, ref in cases:
        assert ours.shape == ref.shape, label
        err = rel_l2(ours, ref)
        assert err <= TOL, f"{name} {label}: relative L2 error {err:.2e} > {TOL}"


@pytest.mark.parametrize("name", [n for n in models.NAMES if _built(n)])
def test_keys_shapes_and_parameter_count_are_official(name):
    net = models.create(name)
    own = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    official = {k.removeprefix("module."): s for k, s in manifest(name)}
    assert own == official
    assert sum(p.numel() for p in net.parameters()) == models.info(name).params


@pytest.mark.skipif(not _built("stvun"), reason="stvun not built")
def test_stvun_input_validation_and_time_batching():
    net = models.create("stvun", weights=seeded("stvun"))
    times = torch.tensor([0.5])
    with pytest.raises(ValueError, match=r"\[B, 7, 3, H, W\]"):
        net(torch.rand(1, 6, 3, 16, 16), times)
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.rand(1, 7, 3, 16, 24), times)
    with pytest.raises(ValueError, match="1-D"):
        net(torch.rand(1, 7, 3, 16, 16), 0.5)
    x = torch.rand(1, 7, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        many = net(x, torch.tensor([0.25, 0.5, 0.75]))
        one = net(x, torch.tensor([0.5]))
    assert many.shape == (1, 4, 3, 64, 64)
    assert rel_l2(many[:, 0], one[:, 0]) < 1e-6 and rel_l2(many[:, 2], one[:, 1]) < 1e-5


@pytest.mark.skipif(not _built("fmu"), reason="fmu not built")
def test_fmu_validation_and_vectorised_times_match_forward():
    net = models.create("fmu", weights=seeded("fmu"))
    with pytest.raises(ValueError, match=r"\[B, 4, 3, H, W\]"):
        net(torch.rand(1, 3, 3, 16, 16), 0.5)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 4, 3, 16, 18), 0.5)
    x = official_outputs("fmu")["input"][..., :16, :16].contiguous()
    with torch.no_grad():
        pred, hr_t = net.interpolate(x, torch.tensor([0.3, 0.5]))
        single = net(x, 0.3)
    assert hr_t.shape == (1, 2, 3, 64, 64)
    assert rel_l2(pred, single[0][:, :3]) < 1e-6  # interpolate skips the unused frame-3 step
    assert rel_l2(hr_t[:, 0], single[3]) < 1e-5
