"""``export_model``: one network to one verified, self-describing ONNX file."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stvsr import __version__
from stvsr.export.graphs import (base_metadata, choose_window, example_inputs, graph_module, has_tiled_variant,
                                 weights_file_for_window)
from stvsr.export.onnx_export import DEFAULT_OPSET, MIN_OPSET, ExportError, atomic_save, export_graph, finalize
from stvsr.export.precision import INT8_TARGETS, to_fp16, to_int8
from stvsr.export.verify import Comparison, compare, ort_session, run_ort, run_torch
from stvsr.export.weights import resolve_weights
from stvsr.outfile import OutputError, check_output
from stvsr.timing import time_interleaved

PRECISIONS = ("fp32", "fp16", "int8")
FLAVOURS = ("none", "native", "stvsr")
TRACE_SIZE = (32, 32)     # every network's size multiple divides it
VERIFY_SIZE = (32, 64)    # a different width checks the dynamic axes
FP32_TOLERANCE = 1e-4     # relative L2 against PyTorch
FP16_TOLERANCE = 2e-2     # relative L2 against the FP32 graph
SPEED_WARMUP, SPEED_REPEATS = 1, 3   # the speed-vs-FP32 line: both graphs timed alike, interleaved


@dataclass
class ExportReport:
    path: Path
    seconds: float
    size_bytes: int
    fp32_check: Comparison | None = None
    precision_check: Comparison | None = None
    speed_ratio: float | None = None          # FP32 median time / this precision's on ONNX Runtime CPU
    notes: list[str] = field(default_factory=list)


def precision_line(precision: str, check: Comparison, speed_ratio: float, random_weights: bool) -> str:
    """The line comparing an FP16/INT8 graph with its FP32 graph. With random weights the network's output is
    not a picture in [0, 1] (values far outside it), so a PSNR with peak 1 reads low whatever the precision
    does: the line says so and points at the relative L2 and at how to get the real figure."""
    line = (f"{precision.upper()} graph vs FP32 graph: {check.line()}; speed vs FP32 on ONNX Runtime CPU at "
            f"{VERIFY_SIZE[1]}x{VERIFY_SIZE[0]} (median of {SPEED_REPEATS} after {SPEED_WARMUP} warm-up): "
            f"x{speed_ratio:.2f}")
    if random_weights:
        line += (f". Random weights: the output is not a picture in [0, 1], so this PSNR says nothing about "
                 f"{precision.upper()}'s error; the relative L2 ({check.rel_l2:.3g}) is the figure to read here. "
                 f"The error on real pictures needs the official checkpoint: the same command without "
                 f"--random-weights prints it")
    return line


def default_output(name: str, precision: str, plugins: str) -> Path:
    suffix = "" if precision == "fp32" else f"-{precision}"
    suffix += "" if plugins == "none" else f"-{plugins}"
    return Path(f"{name}{suffix}.onnx")


def export_model(name: str, weights: str | None = None, random_weights: bool = False, precision: str = "fp32",
                 calib: str | None = None, opset: int = DEFAULT_OPSET, output: str | os.PathLike | None = None,
                 verify: bool = True, plugins: str = "none", calib_windows: int = 4,
                 log: Callable[[str], None] = lambda msg: None, int8_target: str = "cpu",
                 all_outputs: bool = False, overwrite: bool = True, for_tensorrt: bool = False,
                 window: int | None = None) -> ExportReport:
    """Export ``name`` and return what was written and measured. Raises ``ExportError``/``ValueError``.

    ``int8_target``: ``cpu`` (uint8 activations, fast on ONNX Runtime) or ``tensorrt`` (symmetric
    int8). ``all_outputs``: keep every fixed output; by default a network with a tiled variant (zsm,
    tmnet) drops the last one so that windows tile time without computing any output twice.
    ``overwrite``: replace an existing output (otherwise refused, also if one appears meanwhile).
    ``for_tensorrt`` (implied by ``plugins`` native/stvsr): the graph must pass the static TensorRT check
    (``stvsr.engines.trt_compat``) before it is written, e.g. no opset-20 GridSample TensorRT would read as nearest.
    ``window``: frames per window where the network is exported for several (tmnet: 4 or 2); default
    from the weights file name (``tmnet_multiple_frames.pth``: 2), else the network's default.
    """
    start = time.perf_counter()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    if plugins not in FLAVOURS:
        raise ValueError(f"--plugins must be one of {FLAVOURS}")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too low: ONNX DeformConv needs opset {MIN_OPSET} or newer")
    if precision == "int8" and not calib:
        raise ExportError("--int8 needs --calib VIDEO: INT8 scales are calibrated on real frames")
    if int8_target not in INT8_TARGETS:
        raise ValueError(f"INT8 target must be one of {INT8_TARGETS}")
    if precision == "int8" and int8_target == "cpu" and plugins != "none":
        raise ExportError(f"--plugins {plugins} is for TensorRT: use --int8 --target tensorrt")
    path = Path(output) if output else default_output(name, precision, plugins)
    try:  # before the slow work: a folder, a missing folder, an input, an existing file
        check_output(path, [weights, calib], overwrite)
    except OutputError as exc:
        raise ExportError(str(exc)) from None
    tiled = not all_outputs and has_tiled_variant(name)
    window = choose_window(name, window, weights)
    meta = base_metadata(name, tiled, window)
    if precision == "int8":  # read the calibration video early: a bad file fails before the slow work
        from stvsr.export.calibration import calibration_windows

        calibration = calibration_windows(calib, meta, windows=calib_windows)
    choice = resolve_weights(name, weights, random_weights, weights_file_for_window(name, window))
    log(f"building {name} ({'random weights' if choice.random else choice.source}; windows of {window} frames)")
    module = graph_module(name, choice.state, tiled)
    meta.weights_source, meta.weights_sha256, meta.random_weights = choice.source, choice.sha256, choice.random
    meta.exporter, meta.precision, meta.plugins = f"stvsr {__version__}", precision, plugins
    meta.int8_target = int8_target if precision == "int8" else ""
    log(f"tracing at {TRACE_SIZE[0]}x{TRACE_SIZE[1]} (opset {opset})")
    fp32 = export_graph(module, example_inputs(meta, *TRACE_SIZE, times=2), meta, opset)
    report = ExportReport(path, 0.0, 0)
    check_inputs = example_inputs(meta, *VERIFY_SIZE, times=3, seed=1)
    fp32_out = None
    if verify or precision != "fp32":
        log("running ONNX Runtime (CPU) on the FP32 graph")
        fp32_out, fp32_s = run_ort(ort_session(fp32), check_inputs)
    if verify:
        report.fp32_check = compare(fp32_out, run_torch(module, check_inputs), fp32_s)
        log(f"FP32 graph vs PyTorch: {report.fp32_check.line()}")
        if report.fp32_check.rel_l2 > FP32_TOLERANCE:
            raise ExportError(f"verification failed: relative error {report.fp32_check.rel_l2:.3g} > {FP32_TOLERANCE}")
    model = fp32
    if precision == "fp16":
        log("converting to FP16 (FP32 islands for grid/flow/warp arithmetic)")
        model = to_fp16(fp32)
    elif precision == "int8":
        log(f"quantizing to INT8 for {int8_target} on {len(calibration)} windows of {calib}")
        model = to_int8(fp32, calibration, int8_target)
    if precision != "fp32":
        finalize(model, meta)
        sess, fp32_sess = ort_session(model), ort_session(fp32)
        out, secs = run_ort(sess, check_inputs)
        report.precision_check = compare(out, fp32_out, secs)
        # Both graphs timed alike: warm-up, then the median of interleaved runs.
        feed = {k: v.numpy() for k, v in check_inputs.items()}
        t = time_interleaved({"fp32": lambda: fp32_sess.run(None, feed), precision: lambda: sess.run(None, feed)},
                             SPEED_WARMUP, SPEED_REPEATS)
        report.speed_ratio = t["fp32"].median / t[precision].median
        log(precision_line(precision, report.precision_check, report.speed_ratio, choice.random))
        if precision == "fp16" and report.precision_check.rel_l2 > FP16_TOLERANCE:
            raise ExportError(f"FP16 verification failed: relative error {report.precision_check.rel_l2:.3g} "
                              f"> {FP16_TOLERANCE}")
    if plugins == "stvsr":
        from stvsr.plugins.onnx_nodes import apply_flavour

        model, counts = apply_flavour(model, "stvsr")
        report.notes.append(f"plugin nodes: {counts} (ONNX Runtime cannot run them; verified before the rewrite)")
        log(report.notes[-1])
    finalize(model, meta)
    if for_tensorrt or plugins != "none":   # a graph for TensorRT that TensorRT would refuse or misread: not written
        from stvsr.engines.trt_compat import CompatError, check_graph

        try:
            check_graph(model)
        except CompatError as exc:
            raise ExportError(f"{exc} (the graph is for TensorRT: --plugins {plugins}"
                              f"{' or --profile' if for_tensorrt else ''})") from None
    try:
        atomic_save(model, path, overwrite)
    except OutputError as exc:
        raise ExportError(str(exc)) from None
    report.seconds = time.perf_counter() - start
    report.size_bytes = path.stat().st_size
    log(f"wrote {path} ({report.size_bytes / 1e6:.1f} MB) in {report.seconds:.1f} s")
    return report
