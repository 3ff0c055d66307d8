"""Registry and checkpoint loading: strict keys, wrappers, prefixes, untrusted files."""
from __future__ import annotations

import collections
import importlib.util

import pytest
import torch
from torch import nn

from stvsr import models
from stvsr.models.checkpoint import CheckpointError, load_state_dict_strict, read_checkpoint, unwrap_state_dict
from tests.conftest import manifest

BUILT = [n for n in models.NAMES if importlib.util.find_spec(f"stvsr.models.{n}") is not None]


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 2)


def _sd():
    return {k: torch.randn_like(v) for k, v in Tiny().state_dict().items()}


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"module." + k: v for k, v in sd.items()},
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"params": sd},
    lambda sd: {"model": {"module." + k: v for k, v in sd.items()}},
    lambda sd: collections.OrderedDict(sd),
])
def test_wrappers_and_prefix_load(tmp_path, wrap):
    sd = _sd()
    path = tmp_path / "ck.pth"
    torch.save(wrap(sd), path)
    model = Tiny()
    load_state_dict_strict(model, unwrap_state_dict(read_checkpoint(path)))
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k])


def test_mismatch_error_counts_and_names_keys():
    sd = _sd()
    sd.pop("conv.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["head.weight"] = torch.zeros(3, 4)
    with pytest.raises(CheckpointError) as err:
        load_state_dict_strict(Tiny(), sd, "tiny")
    msg = str(err.value)
    assert "1 missing (conv.bias)" in msg and "1 unexpected (extra.weight)" in msg
    assert "1 mis-shaped (head.weight (3, 4)!=(2, 4))" in msg


def test_refuses_arbitrary_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(CheckpointError, match="arbitrary unpickling"):
        read_checkpoint(path)


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        unwrap_state_dict({"epoch": 1, "meta": {"lr": 0.1}})


def test_numpy_scalars_in_training_checkpoint_are_allowed(tmp_path):
    import numpy as np

    path = tmp_path / "ck.pth"
    torch.save({"state_dict": _sd(), "best_psnr": np.float64(30.5), "epoch": np.int64(7)}, path)
    load_state_dict_strict(Tiny(), unwrap_state_dict(read_checkpoint(path)))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'edvr'; choose one of: zsm, stvun, starnet, fmu"):
        models.create("edvr")


@pytest.mark.parametrize("name", BUILT)
def test_official_key_set_loads_from_file(tmp_path, name):
    """A file with exactly the official keys (official prefix included) loads through create()."""
    entries = manifest(name)
    sd = {k: (torch.zeros(s, dtype=torch.long) if k.endswith("num_batches_tracked") else torch.full(s, 0.5))
          for k, s in entries}
    path = tmp_path / models.info(name).weights_file
    torch.save(sd, path)
    model = models.create(name, weights=path)
    assert not model.training
    own = model.state_dict()
    assert len(own) == len(entries)
    assert all(torch.all(v == 0.5) for k, v in own.items() if v.is_floating_point())


@pytest.mark.parametrize("name", BUILT)
def test_registry_lists_parameter_counts(name):
    entry = models.info(name)
    assert entry.params == sum(p.numel() for p in models.create(name).parameters())
    assert entry.weights_file.endswith(".pth")


@pytest.mark.skipif(len(BUILT) < len(models.NAMES), reason="not every network is built yet")
def test_available_lists_all_networks():
    assert [i.name for i in models.available()] == list(models.NAMES)
