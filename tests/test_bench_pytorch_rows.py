"""stvsr-bench's PyTorch rows on CUDA (``stvsr.bench.pytorch_rows``), checked on the CPU.

Where a test needs CUDA to be "present" it patches ``pytorch_rows.on_cuda`` (a test double of the
answer, named as such); the device call itself runs on the CPU. Nothing here is a GPU result.
"""
from __future__ import annotations

import contextlib

import torch

from stvsr.bench import pytorch_rows, runner


class RecordingNet(torch.nn.Module):
    """TEST DOUBLE of a network: records the precision settings it runs under."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.seen: list = []

    def forward(self, frames, times):
        RecordingNet.last = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
                             torch.is_autocast_enabled(frames.device.type))
        return (frames * self.w.view(1, 1, 3, 1, 1)) @ torch.ones(frames.shape[-1], frames.shape[-1])


def _inputs():
    return {"frames": torch.rand(1, 2, 3, 4, 4), "times": torch.tensor([0.5])}


def test_fp32_device_call_turns_tf32_off_until_the_row_ends():
    net = RecordingNet()
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with contextlib.ExitStack() as stack:
        call = pytorch_rows.device_call(net, _inputs(), "fp32", stack, device="cpu")
        out = call()
        assert RecordingNet.last == (False, False, False)
        assert out.dtype == torch.float32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def test_fp16_device_call_runs_under_autocast_on_a_copy():
    net = RecordingNet()
    with contextlib.ExitStack() as stack:
        out = pytorch_rows.device_call(net, _inputs(), "fp16", stack, device="cpu")()
        assert RecordingNet.last[2] is True and out.dtype == torch.float16
    assert net.w.dtype == torch.float32           # the benchmark's own module is left as it was


def _run_without_networks(backends, monkeypatch):
    monkeypatch.setattr(runner, "matmul_peak_gflops", lambda threads=0: {"peak": 1.0, "pytorch": 1.0,
                                                                          "onnxruntime": 1.0})
    cfg = runner.Config(mode="test", models=[], backends=list(backends), repeats=1, warmup=0, threads=0, size=None,
                        video=None, log=lambda s: None)
    return runner.run(cfg), cfg


def test_without_cuda_rows_keep_their_cpu_name_and_fp16_is_skipped(monkeypatch):
    monkeypatch.setattr(pytorch_rows, "on_cuda", lambda: False)      # TEST DOUBLE: no GPU
    assert runner._backend_label("pytorch") == "pytorch"
    result, cfg = _run_without_networks(["pytorch", "pytorch-fp16"], monkeypatch)
    assert cfg.backends == ["pytorch"]
    assert result["skipped"] == ["pytorch-fp16: skipped (PyTorch FP16 rows need a CUDA GPU (torch here sees none))"]
    assert "gpu" not in result["machine"]


def test_with_cuda_rows_are_named_for_it(monkeypatch):
    monkeypatch.setattr(pytorch_rows, "on_cuda", lambda: True)       # TEST DOUBLE: torch "sees" a GPU
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "GPU test double")
    assert runner._backend_label("pytorch") == "pytorch-cuda"
    result, cfg = _run_without_networks(["pytorch", "pytorch-fp16"], monkeypatch)
    assert cfg.backends == ["pytorch", "pytorch-fp16"] and result["skipped"] == []
    assert result["machine"]["gpu"] == "GPU test double" and pytorch_rows.METHOD_NOTE in result["method"]


def test_fps_ratio_uses_the_fp32_gpu_rows():
    def net(ms):
        return {"runs": [{"backend": "pytorch-cuda", "precision": "fp16", "ms_per_frame_paper_size": 1.0},
                         {"backend": "pytorch-cuda", "precision": "fp32", "ms_per_frame_paper_size": ms}]}

    (row,) = runner.fps_ratio_comparison({"zsm": net(10.0), "starnet": net(20.0)})
    assert row["measured"] == 2.0


def test_fps_ratios_of_tmnets_table_and_a_network_note_in_the_report():
    """TMNet's table has zsm 16.50, starnet 14.08 and tmnet 14.69 fps: every pair measured in one run is
    compared; a network's note (e.g. a row measured in a separate run) is printed beside its inputs."""
    from stvsr.bench.report import markdown

    def net(ms):
        return {"runs": [{"backend": "pytorch", "precision": "fp32", "ms_per_frame_paper_size": ms}]}

    rows = runner.fps_ratio_comparison({"zsm": net(10.0), "starnet": net(20.0), "tmnet": net(12.5)})
    assert [(r["name"].split(" (")[0], r["measured"], round(r["published"], 4)) for r in rows] == [
        ("zsm fps / starnet fps", 2.0, round(16.50 / 14.08, 4)), ("zsm fps / tmnet fps", 1.25, round(16.50 / 14.69, 4)),
        ("tmnet fps / starnet fps", 1.6, round(14.69 / 14.08, 4))]
    assert runner.fps_ratio_comparison({"tmnet": net(1.0)}) == []
    result = {"mode": "full", "machine": {"cpu": "c", "cpu_count": 2, "torch": "t", "torch_threads": 2,
                                          "platform": "p"},
              "matmul_peak_gflops": 1.0, "matmul_gflops": {"pytorch": 1.0, "onnxruntime": 1.0}, "method": "m",
              "networks": {"tmnet": {"params": 12_263_523, "weights": "random", "footage": "bikes.mp4",
                                     "lr_size": "180x144", "paper_lr_size": "180x144", "inputs": {},
                                     "note": "measured in a separate run", "runs": []}}}
    text = markdown(result)
    assert "| tmnet | 12,263,523 (12.26M) | 12.26M | yes |" in text
    assert "inputs {}; measured in a separate run" in text and "14.69" in text


def test_without_pyav_the_bench_uses_labelled_synthetic_frames(monkeypatch):
    """GPU hosts may lack PyAV: the default footage is then None (rows say 'synthetic smooth noise')."""
    import sys

    monkeypatch.setitem(sys.modules, "av", None)                      # import av -> ImportError
    assert runner.default_video() is None
    assert runner._footage(None, 4, 8, 8) == (None, "synthetic smooth noise (no video)")
