"""Build TensorRT 11 engines from our ONNX graphs (imported lazily: needs tensorrt and a GPU).

Networks are strongly typed (TensorRT 11 has no FP16/INT8 builder flags): the precision comes
from the graph written by ``stvsr-export --fp16/--int8``. One engine per resolution profile.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Callable

from stvsr.engines.cache import (BuildSettings, CodeInfo, MachineInfo, PlanMetadata, atomic_write_bytes, cache_key,
                                 plan_name, timing_cache_path, write_sidecar)
from stvsr.engines.profiles import MAX_TIMES, OPT_TIMES, Profile
from stvsr.engines.trt_compat import CompatError, check_file
from stvsr.metadata import ModelMetadata, read_onnx_metadata
from stvsr.export.precision import tensorrt_refusal
from stvsr.install_hints import GPU_INSTALL
from stvsr.models.checkpoint import sha256_file


class EngineBuildError(RuntimeError):
    """TensorRT could not parse or build the network."""


def require_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineBuildError(f"building engines needs TensorRT on a machine with an NVIDIA GPU ({GPU_INSTALL}); "
                               "the ONNX file itself runs anywhere with stvsr-run") from None
    return trt


def input_shapes(meta: ModelMetadata, profile: Profile,
                 opt_times: int = OPT_TIMES) -> dict[str, tuple[tuple, tuple, tuple]]:
    """(min, opt, max) shape of every graph input for ``profile`` (batch 1); ``times`` from 1 to
    MAX_TIMES, tuned for ``opt_times``."""
    if not 1 <= opt_times <= MAX_TIMES:
        raise ValueError(f"opt_times must be 1..{MAX_TIMES}, got {opt_times}")
    shapes = {}
    for which, (h, w) in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
        shapes.setdefault("frames", {})[which] = (1, meta.window, 3, h, w)
        if meta.takes_times:
            shapes.setdefault("times", {})[which] = ({"min": 1, "opt": opt_times, "max": MAX_TIMES}[which],)
        for name in meta.flow_inputs:
            shapes.setdefault(name, {})[which] = (1, 2, h, w)
    return {k: (v["min"], v["opt"], v["max"]) for k, v in shapes.items()}


def add_profile(builder, config, meta: ModelMetadata, profile: Profile, opt_times: int = OPT_TIMES) -> int:
    """Add the optimization profile of ``profile`` to ``config``; its index. TensorRT answers -1 for a
    profile it finds invalid (a shape outside min <= opt <= max, an input it does not know): an error here,
    not a build that fails later without saying why."""
    opt_profile = builder.create_optimization_profile()
    shapes = input_shapes(meta, profile, opt_times)
    for name, (lo, opt, hi) in shapes.items():
        opt_profile.set_shape(name, lo, opt, hi)
    index = config.add_optimization_profile(opt_profile)
    if index is None or int(index) < 0:
        described = ", ".join(f"{n} {lo}..{hi}" for n, (lo, _, hi) in shapes.items())
        raise EngineBuildError(f"TensorRT refused the optimization profile {profile.name} ({described})")
    return int(index)


def _progress_monitor(trt, log: Callable[[str], None]):
    class Monitor(trt.IProgressMonitor):
        """Shows TensorRT's build phases and steps."""

        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = num_steps
            log(f"  {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step):
            return True  # keep building

        def phase_finish(self, phase_name):
            self.steps.pop(phase_name, None)

    return Monitor()


def configure_builder(trt, config, settings: BuildSettings, timing_cache: bytes,
                      log: Callable[[str], None] = lambda m: None) -> None:
    """Workspace, optimisation level, TF32 and timing cache of an ``IBuilderConfig``."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    config.builder_optimization_level = settings.opt_level
    if settings.precision == "fp32":
        # TensorRT lets FP32 convolutions and matrix products round their inputs to TF32 (10-bit
        # mantissas) unless told not to: an FP32 engine computes in FP32.
        config.clear_flag(trt.BuilderFlag.TF32)
    if not config.set_timing_cache(config.create_timing_cache(timing_cache), ignore_mismatch=False):
        log("  the timing cache was made for another GPU or TensorRT version; starting a new one")
        if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
            raise EngineBuildError("TensorRT refused a new timing cache")


def build_engine(onnx_path: str, profile: Profile, settings: BuildSettings, out_dir: str | Path,
                 timing_cache: str | Path | None = None, log: Callable[[str], None] = lambda m: None) -> Path:
    """Build (or reuse from the cache folder) one engine for ``profile``; returns the plan path."""
    meta = read_onnx_metadata(onnx_path)
    if (why := tensorrt_refusal(meta)) is not None:  # before TensorRT: refused on any machine
        raise EngineBuildError(f"{onnx_path} is {why}")
    try:   # every node against onnx-tensorrt's operator list, Q/DQ and plugin rules, before TensorRT parses
        check_file(onnx_path)
    except CompatError as exc:
        raise EngineBuildError(f"{onnx_path}: {exc}") from None
    trt = require_tensorrt()
    machine = MachineInfo.current()
    onnx_sha = sha256_file(onnx_path)
    code = CodeInfo.current(settings.plugins, machine.arch)   # plugin PTX, Triton, configs, stvsr version
    key = cache_key(onnx_sha, profile, settings, machine, code)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_path = out_dir / plan_name(meta.model, settings, profile, key)
    if plan_path.is_file() and Path(str(plan_path) + ".json").is_file():
        log(f"cached engine {plan_path}")
        return plan_path
    if meta.precision != settings.precision:
        raise EngineBuildError(f"{onnx_path} is a {meta.precision} graph, not {settings.precision}: TensorRT 11 "
                               "takes the precision from the graph; export it with the matching --fp16/--int8")
    logger = trt.Logger(trt.Logger.WARNING)
    # ONNX DeformConv maps to TensorRT's built-in ModulatedDeformConv2d plugin in every flavour.
    trt.init_libnvinfer_plugins(logger, "")
    if settings.plugins == "stvsr":
        import stvsr.plugins

        stvsr.plugins.register_tensorrt()
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS") and settings.plugins == "stvsr":
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.progress_monitor = _progress_monitor(trt, log)
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    configure_builder(trt, config, settings, cache_bytes, log)
    add_profile(builder, config, meta, profile, settings.opt_times)
    log(f"building {plan_path.name} for LR {profile.min[1]}x{profile.min[0]} .. {profile.max[1]}x{profile.max[0]}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build {onnx_path} for profile {profile.name}")
    plan_bytes = bytes(serialized)
    atomic_write_bytes(plan_path, plan_bytes)
    if timing_cache:
        atomic_write_bytes(Path(timing_cache), bytes(config.get_timing_cache().serialize()))
    write_sidecar(plan_path, PlanMetadata(meta, profile, settings, machine, onnx_sha, key,
                                          hashlib.sha256(plan_bytes).hexdigest(), code))
    return plan_path


def build_engines(onnx_path: str, profiles: list[Profile], settings: BuildSettings, out_dir: str | Path,
                  log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> list[Path]:
    """One engine per profile, sharing a persistent timing cache (one per GPU model) in ``out_dir``."""
    require_tensorrt()
    cache = timing_cache_path(out_dir, MachineInfo.current())
    return [build_engine(onnx_path, p, settings, out_dir, cache, log) for p in profiles]
