"""STARnet specifics: official keys/outputs, the flow-refinement quirk, eval-mode BatchNorm, sizes, validation."""
from __future__ import annotations

import builtins

import pytest
import torch

from stvsr.models import starnet
from tests.conftest import official_outputs, rel_l2, seeded


@pytest.fixture(scope="module")
def seeded_net() -> starnet.STARnet:
    net = starnet.build()
    net.load_state_dict(seeded("starnet"), strict=True)
    return net.eval()


@pytest.fixture(scope="module")
def official() -> dict:
    return official_outputs("starnet")


@pytest.fixture(scope="module")
def official_run(seeded_net, official) -> tuple[torch.Tensor, ...]:
    """Our outputs on the official-output inputs (one 32x32 forward shared by several tests)."""
    with torch.no_grad():
        return seeded_net(official["x1"], official["x2"], official["flow_f"], official["flow_b"])


def test_build_touches_no_file(monkeypatch):
    """The official constructor loads pretrained parts from disk; ours must not open anything."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"build() opened a file: {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert isinstance(starnet.build(), torch.nn.Module)


def test_flow_refinement_adds_a_sigmoid_in_unit_interval(seeded_net, official, official_run):
    """Official quirk: the UNet's sigmoid output (always in (0, 1)) is added to the given flow."""
    x1, x2, ff, fb = official["x1"], official["x2"], official["flow_f"], official["flow_b"]
    with torch.no_grad():
        corr_f = seeded_net.flow_net(torch.cat((ff, x1, x2), 1))
        corr_b = seeded_net.flow_net(torch.cat((fb, x2, x1), 1))
        core = seeded_net.model(x1, x2, ff + corr_f, fb + corr_b)
    assert corr_f.shape == ff.shape and bool(((corr_f > 0) & (corr_f < 1)).all())
    assert bool(((corr_b > 0) & (corr_b < 1)).all())
    for ours, direct in zip(official_run, core):
        assert torch.equal(ours, direct)


def test_batchnorm_uses_running_stats_and_stays_in_eval(seeded_net):
    """Eval-mode BatchNorm: a sample's output does not depend on the rest of the batch; forward changes no state."""
    torch.manual_seed(0)
    unet = seeded_net.flow_net
    assert not unet.training
    x = torch.randn(2, 8, 32, 32)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    with torch.no_grad():
        pair, single = unet(x), unet(x[1:])
    assert rel_l2(pair[1:], single) < 1e-6
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in before.items())


def test_any_size_of_at_least_32_works(seeded_net):
    """Sizes that are not multiples of 32 (or 4) work, as officially: the UNet pads after each upsampling."""
    torch.manual_seed(0)
    x1, x2 = torch.randn(1, 3, 33, 34), torch.randn(1, 3, 33, 34)
    ff, fb = torch.randn(1, 2, 33, 34) * 0.02, torch.randn(1, 2, 33, 34) * 0.02
    with torch.no_grad():
        out = seeded_net(x1, x2, ff, fb)
    assert [tuple(o.shape) for o in out] == [(1, 3, 132, 136)] * 3 + [(1, 3, 33, 34)]
    assert all(torch.isfinite(o).all() for o in out)


def _inputs(h: int = 32, w: int = 32, b: int = 1):
    return [torch.zeros(b, 3, h, w), torch.zeros(b, 3, h, w), torch.zeros(b, 2, h, w), torch.zeros(b, 2, h, w)]


def _replace(i: int, value) -> list:
    args = _inputs()
    args[i] = value
    return args


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (_replace(0, torch.zeros(1, 4, 32, 32)), r"x1 must be \[B, 3, H, W\]"),
        (_replace(1, torch.zeros(3, 32, 32)), r"x2 must be \[B, 3, H, W\]"),
        (_replace(2, torch.zeros(1, 3, 32, 32)), r"flow_f must be \[B, 2, H, W\]"),
        (_replace(3, torch.zeros(1, 2, 32, 36)), "flow_b .* does not match x1"),
        (_replace(1, torch.zeros(2, 3, 32, 32)), "x2 .* does not match x1"),
        (_replace(0, torch.zeros(1, 3, 32, 32, dtype=torch.uint8)), "x1 must be a floating-point tensor"),
        (_replace(2, torch.zeros(1, 2, 32, 32, dtype=torch.float64)), "flow_f has dtype torch.float64"),
        (_replace(3, None), "flow_b must be a floating-point tensor"),
        (_inputs(16, 64), "at least 32"),
        (_inputs(64, 31), "at least 32"),
    ],
)
def test_bad_input_raises_value_error(seeded_net, args, match):
    with pytest.raises(ValueError, match=match):
        seeded_net(*args)
