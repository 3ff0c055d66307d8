"""stvsr-bench's parts: FLOP counting, the machine peak, the two-stage pipelines and the CLI's errors."""
from __future__ import annotations

import torch
from click.testing import CliRunner

from stvsr.bench.cli import main
from stvsr.bench.flops import count_flops
from stvsr.bench.measure import matmul_peak_gflops, time_call
from stvsr.bench.twostage import FIThenVSR, VSRThenFI
from stvsr.export.graphs import base_metadata, example_inputs, graph_module
from stvsr.export.weights import seeded_state_dict
from stvsr.ops import deform_conv2d


def test_count_flops_counts_convolutions_exactly_and_returns_the_output():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.rand(2, 3, 16, 16)
    flops, out = count_flops(conv, x)
    assert flops == 2 * 2 * 8 * 3 * 9 * 16 * 16
    assert torch.equal(out, conv(x).detach())


def test_count_flops_knows_the_deformable_convolution():
    """Our custom op is opaque to PyTorch: without its formula it would count as zero FLOPs."""
    x, w = torch.rand(1, 4, 8, 8), torch.rand(6, 4, 3, 3)
    offset, mask = torch.zeros(1, 18, 8, 8), torch.ones(1, 9, 8, 8)
    flops, out = count_flops(deform_conv2d, x, offset, mask, w, None, 1, 1)
    gemm = 2 * 6 * 4 * 9 * 64
    assert flops == gemm + 8 * 4 * 9 * 64
    assert torch.allclose(out, torch.nn.functional.conv2d(x, w, padding=1), atol=1e-5)


def test_time_call_reports_median_and_spread_over_repeats():
    calls = []
    timing = time_call(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7 and timing.repeats == 5
    assert 0 <= timing.minimum <= timing.q1 <= timing.median <= timing.q3


def test_matmul_peak_is_measured_on_both_cpu_backends():
    peaks = matmul_peak_gflops(size=256, repeats=2)
    assert peaks["pytorch"] > 0 and peaks["onnxruntime"] > 0
    assert peaks["peak"] == max(peaks["pytorch"], peaks["onnxruntime"])


def test_two_stage_pipelines_yield_the_one_stage_frames():
    """Same frames out as the one-stage graph; VSR->FI's first frame is exactly fmu's super-resolved frame 1."""
    torch.manual_seed(0)
    one = graph_module("fmu", seeded_state_dict("fmu", seed=0))
    inputs = example_inputs(base_metadata("fmu"), 16, 16, times=2)
    with torch.no_grad():
        ref = one(*inputs.values())
        vsr_fi = VSRThenFI(one.net).eval()(*inputs.values())
        fi_vsr = FIThenVSR(one.net).eval()(*inputs.values())
    assert ref.shape == vsr_fi.shape == fi_vsr.shape == (1, 3, 3, 64, 64)
    assert torch.allclose(vsr_fi[:, 0], ref[:, 0], atol=1e-5)
    assert torch.isfinite(fi_vsr).all()


def test_cli_rejects_bad_input_in_one_line(tmp_path):
    runner = CliRunner()
    cases = [
        (["--models", "zsm,nope"], "unknown model nope"),
        (["--backends", "cuda"], "unknown backend cuda"),
        (["--size", "0x10"], "size must be positive"),
        (["--size", "wide"], "size must be WIDTHxHEIGHT"),
        (["--video", str(tmp_path / "missing.mp4")], "video not found"),
    ]
    for args, message in cases:
        result = runner.invoke(main, ["--quick", "--out", str(tmp_path / "out"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
    assert not (tmp_path / "out").exists()
