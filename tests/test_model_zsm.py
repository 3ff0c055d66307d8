"""Zooming Slow-Mo specifics (layout and official outputs are in test_models_official.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stvsr.models import zsm
from tests.conftest import rel_l2, seeded



@pytest.fixture(scope="module")
def seeded_net() -> torch.nn.Module:
    net = zsm.build()
    net.load_state_dict(seeded("zsm"), strict=True)
    return net.eval()


def test_dcn_sep_with_zero_offsets_is_half_a_plain_conv():
    """Zero offsets and zero mask logits (sigmoid 0.5): DCN_sep reduces to 0.5 * conv3x3 (bias unscaled)."""
    torch.manual_seed(0)
    dcn = zsm.DCNSep(nf=16, deformable_groups=8)
    torch.nn.init.zeros_(dcn.conv_offset_mask.weight)
    torch.nn.init.zeros_(dcn.conv_offset_mask.bias)
    torch.nn.init.normal_(dcn.weight)
    torch.nn.init.normal_(dcn.bias)
    assert dcn.conv_offset_mask.out_channels == 8 * 27
    x, fea = torch.randn(2, 16, 8, 12), torch.randn(2, 16, 8, 12)
    with torch.no_grad():
        expected = 0.5 * F.conv2d(x, dcn.weight, None, padding=1) + dcn.bias.view(1, -1, 1, 1)
        assert rel_l2(dcn(x, fea), expected) < 1e-6


def test_any_frame_count_batch_independence_and_determinism(seeded_net):
    torch.manual_seed(0)
    x = torch.rand(2, 2, 3, 8, 12)
    with torch.no_grad():
        pair = seeded_net(x)
        single = seeded_net(x[1:])
        again = seeded_net(x[1:])
        three = seeded_net(torch.rand(1, 3, 3, 4, 4))
    assert pair.shape == (2, 3, 3, 32, 48)
    assert three.shape == (1, 5, 3, 16, 16)
    assert rel_l2(pair[1:], single) < 1e-5
    assert torch.equal(single, again)
    assert torch.isfinite(pair).all()


@pytest.mark.parametrize(
    ("shape", "dtype", "match"),
    [
        ((1, 2, 3, 10, 12), torch.float32, "multiples of 4"),
        ((1, 2, 3, 8, 14), torch.float32, "multiples of 4"),
        ((1, 1, 3, 8, 8), torch.float32, "at least 2 input frames"),
        ((1, 2, 4, 8, 8), torch.float32, "RGB"),
        ((2, 3, 8, 8), torch.float32, "RGB"),
        ((1, 2, 3, 8, 8), torch.uint8, "floating-point"),
    ],
)
def test_bad_input_raises_value_error(shape, dtype, match):
    net = zsm.build().eval()
    with pytest.raises(ValueError, match=match):
        net(torch.zeros(shape, dtype=dtype))


def test_skip_last_reconstructs_all_but_the_last_output_unchanged(seeded_net):
    x = torch.rand(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = seeded_net(x)
        tiled = seeded_net(x, skip_last=True)
    assert full.shape[1] == 7 and tiled.shape[1] == 6
    assert rel_l2(tiled, full[:, :-1]) < 1e-6


def test_windows_of_the_tiled_graph_compute_each_output_once():
    """Planned from metadata alone: 6 outputs per 4-frame window at stride 3 tile time (today's
    7-output graph computes 700 outputs for a 300-frame video's 599)."""
    from stvsr.export.graphs import base_metadata
    from stvsr.runtime.planning.windows import plan

    for tiled, computed in ((False, 700), (True, 600)):
        meta = base_metadata("zsm", tiled)
        windows, _, _ = plan(meta, 300)
        kept = sorted(g for w in windows for _, g in w.keep)
        assert kept == list(range(599))
        assert len(windows) * len(meta.output_positions) == computed
