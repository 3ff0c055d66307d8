"""stvsr-export and stvsr-bench command lines: --version, the overwrite policy, and help/README agreement.

Every refusal here happens before any network is built, so these tests take seconds.
"""
from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from stvsr import __version__
from stvsr.bench.cli import main as bench_main
from stvsr.export.cli import main as export_main

ROOT = Path(__file__).resolve().parents[1]


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _long_names(command: click.Command) -> list[str]:
    return [o for p in command.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")]


def test_version_on_export_and_bench():
    for command, prog in ((export_main, "stvsr-export"), (bench_main, "stvsr-bench")):
        res = CliRunner().invoke(command, ["--version"])
        assert res.exit_code == 0 and res.output.strip() == f"{prog} {__version__}"


def test_export_refuses_an_existing_output_before_exporting(tmp_path):
    out = tmp_path / "zsm.onnx"
    out.write_bytes(b"keep me")
    res = CliRunner().invoke(export_main, ["--model", "zsm", "--random-weights", "-o", str(out)])
    assert res.exit_code == 1
    assert res.output.strip() == f"stvsr-export: error: {out} already exists; pass --overwrite (-y) to replace it"
    assert out.read_bytes() == b"keep me"
    # With -y the overwrite check passes; the run then stops at the next problem (missing weights),
    # still before anything is written.
    res = CliRunner().invoke(export_main, ["--model", "zsm", "--weights", str(tmp_path / "absent.pth"), "-y",
                                           "-o", str(out)])
    assert res.exit_code == 1 and "weights file not found" in res.output
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zsm.onnx"]


def test_export_refuses_the_calibration_video_as_output(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not really a video, never read")
    res = CliRunner().invoke(export_main, ["--model", "zsm", "--random-weights", "--int8", "--calib", str(video),
                                           "-o", str(video), "-y"])
    assert res.exit_code == 1 and "is the input" in res.output
    assert video.read_bytes() == b"not really a video, never read"


def test_export_opset_outside_what_torch_writes_is_a_usage_error():
    res = CliRunner().invoke(export_main, ["--model", "zsm", "--random-weights", "--opset", "99"])
    assert res.exit_code == 2 and "--opset" in res.output and "Traceback" not in res.output


def test_bench_never_overwrites_results_unless_told(tmp_path, monkeypatch):
    committed = ROOT / "benchmarks" / "results" / "quick"
    before = {p.name: p.read_bytes() for p in committed.iterdir()}
    res = CliRunner().invoke(bench_main, ["--quick", "-o", str(committed)])
    assert res.exit_code == 1 and "already holds results" in res.output and "--overwrite" in res.output
    assert {p.name: p.read_bytes() for p in committed.iterdir()} == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text("{}")
    res = CliRunner().invoke(bench_main, ["--quick", "--out", str(mine)])
    assert res.exit_code == 1 and (mine / "results.json").read_text() == "{}"
    # The default folder is in the current folder, not the committed benchmarks/results.
    from stvsr.bench.cli import default_out

    assert default_out("quick") == Path("stvsr-bench-quick") and not default_out("full").is_absolute()


def test_every_export_and_bench_option_is_in_help_and_readme():
    sections = {export_main: _readme_section("stvsr-export") + _readme_section("TensorRT engines (`stvsr.engines`)"),
                bench_main: _readme_section("Benchmarks (`stvsr-bench`)")}
    for command, readme in sections.items():
        help_text = CliRunner().invoke(command, ["--help"]).output
        for name in _long_names(command):
            assert name in help_text, name
            if name not in ("--help",):
                assert re.search(rf"`[^`]*{re.escape(name)}\b[^`]*`", readme), f"{name} not documented in README"


def test_fp16_line_says_psnr_is_meaningless_on_random_weights():
    """Issue 21: `stvsr-export --fp16 --random-weights` printed `PSNR 16.47 dB` (fmu) as if FP16 were broken. A
    random network's output is not a picture in [0, 1]: the line says so and points at the relative L2. (The CLI
    prints exactly this line; running it costs ~80 s of CPU, so the line is built here from a real comparison.)"""
    import numpy as np

    from stvsr.export.api import precision_line
    from stvsr.export.verify import compare

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 3, (1, 3, 3, 32, 64)).astype(np.float32)   # like a random network's output: far outside [0, 1]
    out = ref + rng.normal(0, 0.01, ref.shape).astype(np.float32)   # a small relative error
    check = compare(out, ref)
    assert check.rel_l2 < 0.01 and check.psnr < 45
    line = precision_line("fp16", check, 1.05, random_weights=True)
    assert line.startswith(f"FP16 graph vs FP32 graph: {check.line()}; speed vs FP32")
    assert ("Random weights: the output is not a picture in [0, 1], so this PSNR says nothing about FP16's error; "
            f"the relative L2 ({check.rel_l2:.3g}) is the figure to read here") in line
    assert "without --random-weights" in line and "\n" not in line
    assert "Random weights" not in precision_line("fp16", check, 1.05, random_weights=False)
