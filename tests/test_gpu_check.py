"""benchmarks/gpu_check.sh without a GPU: its dry run (in CI), its refusal without a GPU, its summary.

The dry run builds every step's command line and runs each step's own argument handling with
``--dry-run`` (no GPU is touched). Without a driver the real run stops before writing anything;
a test-double ``nvidia-smi`` stands in for a driver that lists no GPU. The summary is checked on
step outputs written by the tests (test doubles of the steps' JSON, named as such): nothing here
is a GPU result.
"""
from __future__ import annotations

import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ("env", "ptx", "kernels", "bench", "overlap", "ort-cuda", "trt-plugins", "trt-validate")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and timeout")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path, *args, path: str | None = None, extra_env: dict | None = None, out: Path | None = None):
    """gpu_check.sh with ``STVSR_GPU_OUT`` set to ``out`` (default tmp_path/gpu; ``False``: unset, with
    ``TMPDIR`` in tmp_path so that a dry run's own folder lands there)."""
    out = tmp_path / "gpu" if out is None else out
    env = {**os.environ, "PYTHON": sys.executable, **(extra_env or {})}
    env.pop("STVSR_GPU_OUT", None)
    if out:
        env["STVSR_GPU_OUT"] = str(out)
    else:
        env["TMPDIR"] = str(tmp_path)
    if path is not None:
        env["PATH"] = path
    res = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)
    return res, out


def test_dry_run_builds_every_step_and_writes_one_summary_and_one_archive(tmp_path):
    onnx_dir = tmp_path / "onnx"                       # placeholders: the dry run only checks they exist
    onnx_dir.mkdir()
    for name in ("zsm-fp32.onnx", "zsm-fp16.onnx"):
        (onnx_dir / name).write_bytes(b"placeholder")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res, _ = _run(tmp_path, "--dry-run", "--onnx-dir", str(onnx_dir), out=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "gpu_check: no GPU (dry run)" in res.stdout
    # Issue 21: without STVSR_GPU_OUT a dry run writes to a fresh folder of its own (never a fixed
    # /tmp/stvsr-gpu-check-dry another user or run may hold) and says which.
    last = res.stdout.strip().splitlines()[-1]
    out = Path(last.split("written to ", 1)[1].split(": summary.md")[0])
    assert out.parent == tmp_path and out.name.startswith("stvsr-gpu-check-dry.") and out.name != "stvsr-gpu-check-dry"
    assert last.endswith(f"written to {out}: summary.md and logs.tar.gz"), last
    # Under 10 s of work (CPU time: the wall time on a shared 2-core CI machine varies with its load).
    assert cpu < 10, (cpu, wall)
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "summary.md"]
    summary = (out / "summary.md").read_text()
    assert "Dry run: no GPU was used and nothing was measured" in summary
    for step in STEPS:
        assert f"| {step} | planned (dry run) |" in summary, step
    for line in ("gpu_kernels: no GPU (dry run): 24 launches planned", "bench: no GPU (dry run)",
                 "gpu_overlap: no GPU (dry run)", "gpu_ort_cuda: no GPU (dry run)", "plugins_gpu: no GPU (dry run)",
                 "validate_gpu: no GPU (dry run): would build zsm x fp32,fp16 x native,stvsr",
                 "gpu_check: dry run: time limits add up to 470 s, the summary's included (budget 480 s)"):
        assert line in res.stdout, line
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = tar.getnames()
    assert "./logs/dry-run.log" in names and "./steps.tsv" in names


def test_dry_run_refuses_a_step_whose_arguments_are_wrong(tmp_path):
    plan = tmp_path / "plan.tsv"
    plan.write_text(f"kernels\t90\t{sys.executable} benchmarks/gpu_kernels.py --sizes 720p\n")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "dry-run", "--plan", str(plan)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 1 and "the arguments of kernels were refused" in res.stderr


def test_without_a_driver_nothing_runs_and_nothing_is_written(tmp_path):
    if shutil.which("nvidia-smi", path="/usr/bin:/bin"):
        pytest.skip("this machine has nvidia-smi")
    res, out = _run(tmp_path, path="/usr/bin:/bin")
    assert res.returncode == 2 and "gpu_check: no NVIDIA driver" in res.stderr, res.stderr
    assert not out.exists()


def test_a_driver_that_lists_no_gpu_stops_the_check(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"                          # TEST DOUBLE of nvidia-smi: a driver without GPUs
    smi.write_text('#!/bin/sh\necho "No devices were found"; exit 6\n')
    smi.chmod(0o755)
    res, out = _run(tmp_path, path=f"{bindir}:/usr/bin:/bin")
    assert res.returncode == 2 and "nvidia-smi sees no GPU" in res.stderr
    assert not out.exists()


def test_bad_arguments_are_one_line(tmp_path):
    res, out = _run(tmp_path, "--onnx-dir", str(tmp_path / "missing"))
    assert res.returncode == 2 and res.stderr.strip() == f"gpu_check: {tmp_path / 'missing'} is not a folder"
    res, _ = _run(tmp_path, "--fast")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "unknown argument '--fast'" in res.stderr


def test_summary_tables_from_step_outputs(tmp_path):
    """TEST DOUBLES of the steps' JSON outputs (made-up numbers): the summary renders each part."""
    gpu_check = _module("gpu_check")
    work = tmp_path / "work"
    (work / "bench").mkdir(parents=True)
    (work / "steps.tsv").write_text("kernels\tok\t12\t90\t\nbench\t**FAILED** (exit 1)\t3\t120\tsee logs/bench.log\n")
    (work / "env.json").write_text(json.dumps({"packages": {"torch": "test"}, "gpu": "GPU test double", "arch": 90}))
    (work / "kernels.json").write_text(json.dumps({"device": "GPU test double", "arch": 90, "tolerance": {}, "rows": [
        {"op": "backward_warp", "detail": "border", "size": "540p", "dtype": "fp32", "triton": "t", "ptx_version": "8.7",
         "params": 8, "hidden": 0, "ptx_ms": 0.1, "torch_ms": 0.3, "speedup_vs_torch": 3.0, "max_rel": 1e-7,
         "nonfinite": 0, "ok": True},
        {"op": "deform_conv2d", "detail": "3x3", "size": "540p", "dtype": "fp16", "triton": "t", "ok": False,
         "error": "CudaCallError: cuModuleLoadData failed with CUDA_ERROR_UNSUPPORTED_PTX_VERSION"}]}))
    (work / "ort_cuda.json").write_text(json.dumps({"networks": {}, "skipped": "a CPU build"}))
    (work / "logs").mkdir()
    (work / "logs" / "bench.log").write_text("[zsm] pytorch-fp16: 1.0 ms/frame (IQR 0.1), 1 GFLOP/s\n")
    out = tmp_path / "summary.md"
    assert gpu_check.main(["summary", "--work", str(work), "--out", str(out)]) == 0
    text = out.read_text()
    assert "(from the log: the run did not finish)" in text and "[zsm] pytorch-fp16: 1.0 ms/frame" in text

    overlap = _module("gpu_overlap")
    keys = ("h2d_ms", "d2h_ms", "compute_ms", "host_copy_ms", "sum_copies_and_compute_ms", "serial_wall_ms",
            "double_buffered_wall_ms", "double_buffered_over_serial", "mib_each_way")
    (work / "overlap.json").write_text(json.dumps({**{k: 1.0 for k in keys}, "windows": 16, "wrong_windows": [],
                                                   "device": "GPU test double"}))
    assert overlap.FRAMES == "frames"
    (work / "bench" / "results.json").write_text(json.dumps({
        "machine": {"gpu": "GPU test double", "torch": "test"}, "method": "m", "skipped": ["pytorch-fp16: skipped"],
        "networks": {"zsm": {"footage": "synthetic smooth noise (no video)", "runs": [
            {"backend": "pytorch-cuda", "precision": "fp32", "size": "180x144", "ms_per_frame": 2.0, "fps": 500.0,
             "psnr": None, "psnr_exact": False, "rel_l2": 1e-6},
            {"backend": "pytorch-cuda", "precision": "fp16", "size": "180x144", "error": "RuntimeError: x"}]}}}))
    assert gpu_check.main(["summary", "--work", str(work), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| zsm | 180x144 | pytorch-cuda | fp32 | 2.00 | 500.0 | synthetic smooth noise (no video) | - | 1e-06 |" \
        in text
    assert "**error**: RuntimeError: x" in text and "Not run: pytorch-fp16: skipped" in text
    assert "TensorRT context **test double**" in text and "| 1.00 | 1.00 | 1.00 | 1.00 | 1.0 | 1.0 | 1.0 | 1.00 | none |" \
        in text
    assert "| bench | **FAILED** (exit 1) | 3 | 120 | see logs/bench.log |" in text
    assert "| backward_warp border | 540p | fp32 | t .version 8.7 | 8 (0) | 0.100 | 0.300 | 3.0 | 1.0e-07 | 0 | yes |" \
        in text
    assert "CUDA_ERROR_UNSUPPORTED_PTX_VERSION" in text
    assert "Not run: a CPU build." in text


def test_ort_placement_reads_the_provider_of_every_node(tmp_path):
    """The profile parsing, on the CPU build (every node on the CPU provider)."""
    import onnx
    from onnx import TensorProto, helper

    from stvsr.export.metadata import ModelMetadata, write_onnx_metadata

    ort_cuda = _module("gpu_ort_cuda")
    if ort_cuda.unavailable() is None:
        pytest.skip("onnxruntime here has the CUDA provider: the GPU check itself covers it")
    frames = helper.make_tensor_value_info("frames", TensorProto.FLOAT, [1, 2, 3, "h", "w"])
    out = helper.make_tensor_value_info("frames_out", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Relu", ["frames"], ["r"]), helper.make_node("Neg", ["r"], ["frames_out"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [frames], [out]), opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    write_onnx_metadata(model, ModelMetadata(model="test", window=2, output_positions=[0.0, 1.0], scale=1,
                                             size_multiple=8))
    onnx.save(model, str(tmp_path / "test-fp32.onnx"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # "CUDAExecutionProvider is not available"
        ops = ort_cuda.placement(str(tmp_path / "test-fp32.onnx"), str(tmp_path))
    assert ops == {"Neg": {"CPUExecutionProvider": 1}, "Relu": {"CPUExecutionProvider": 1}}


# ------------------------------------------------------------------ issue 21, item 19

def test_bench_step_needs_click_and_onnx_and_says_so():
    """stvsr-bench imports click (its CLI) and onnx (its graphs' metadata): a host without them skips the bench
    step with the reason instead of running it into a traceback."""
    gpu_check = _module("gpu_check")
    have = {"torch": "2.13.0", "triton": "3.6.0", "cuda.bindings": "13.0", "onnxruntime": "1.32.0", "click": "8.1",
            "onnx": "1.23.2"}
    env = {"packages": dict(have), "missing": {}, "torch_cuda": True, "ort_providers": []}
    assert gpu_check.capabilities(env)["bench"] is None
    for module in ("click", "onnx"):
        env = {"packages": {k: v for k, v in have.items() if k != module}, "torch_cuda": True, "ort_providers": [],
               "missing": {module: f"ModuleNotFoundError: No module named '{module}'"}}
        why = gpu_check.capabilities(env)["bench"]
        assert why == f"stvsr-bench needs {module} (ModuleNotFoundError: No module named '{module}')", why
    script = SCRIPT.read_text()
    assert 'if [ "$HAVE_BENCH" = 1 ]; then' in script and 'skip bench 120 "$WHY_BENCH"' in script


def test_summary_total_counts_only_the_steps_that_ran(tmp_path):
    """A host without TensorRT: the total row's limit is that of the steps that ran, not 470 s."""
    gpu_check = _module("gpu_check")
    work = tmp_path / "work"
    work.mkdir()
    rows = [("env", "ok", 4, 30), ("ptx", "ok", 41, 60), ("kernels", "ok", 50, 80), ("bench", "ok", 90, 120),
            ("overlap", "ok", 9, 30), ("ort-cuda", "ok", 5, 30), ("trt-plugins", "skipped", 0, 45),
            ("trt-validate", "skipped", 0, 65)]
    (work / "steps.tsv").write_text("".join(f"{n}\t{s}\t{t}\t{lim}\t\n" for n, s, t, lim in rows)
                                    + "total\t-\t201\t-\t\n")
    out = tmp_path / "summary.md"
    assert gpu_check.main(["summary", "--work", str(work), "--out", str(out)]) == 0
    total = next(ln for ln in out.read_text().splitlines() if ln.startswith("| total |"))
    assert total.startswith("| total | - | 201 | 360 |"), total        # 350 s of steps + the summary's 10 s
    assert "not those of the skipped trt-plugins, trt-validate" in total, total


def _without_pyav(tmp_path) -> dict:
    """The environment of a host without PyAV: ``import av`` fails (a shadowing package that raises)."""
    stub = tmp_path / "no_pyav" / "av"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text('raise ImportError("PyAV is not installed on this host (test double)")\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub.parent), str(ROOT)])}


def test_validate_gpu_checks_pyav_before_picking_scikit_videos_clip(tmp_path):
    script = [sys.executable, str(ROOT / "benchmarks" / "validate_gpu.py")]
    res = subprocess.run(script + ["--dry-run"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0 and res.stdout.rstrip().endswith("bikes.mp4"), res.stdout + res.stderr
    res = subprocess.run(script + ["--dry-run"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env=_without_pyav(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "on seeded random frames (PyAV is not installed (ImportError: PyAV is not installed" in res.stdout, \
        res.stdout
    res = subprocess.run(script + ["--dry-run", "--video", "clip.mp4"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env=_without_pyav(tmp_path))
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("validate_gpu: --video clip.mp4 needs PyAV to read it"), res.stderr
