"""Engine cache keys, plan sidecar metadata and refusal of plans built for another machine.

A plan is valid for one TensorRT version, one GPU model (compute capability), one shape range,
one precision, one plugin flavour, one ONNX file and the code that went into it (stvsr's version
and, for the stvsr plugins, the PTX of every kernel, the Triton that compiled it and the kernel
configurations); the cache key covers all of them and the sidecar ``<plan>.json`` records them so
``stvsr-run engine.plan`` needs nothing else.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from stvsr.engines.profiles import OPT_TIMES, Profile
from stvsr.metadata import ModelMetadata
from stvsr.outfile import atomic_output

SIDECAR_SUFFIX = ".json"


class EngineMismatch(RuntimeError):
    """A plan that cannot run on this machine."""


@dataclass(frozen=True)
class MachineInfo:
    tensorrt: str
    gpu: str
    compute_capability: str   # e.g. "9.0"

    @classmethod
    def current(cls) -> "MachineInfo":
        """TensorRT version and current GPU of this machine (needs tensorrt and cuda-python)."""
        import tensorrt as trt

        from stvsr.plugins.cuda_device import CudaUnavailable, current_gpu

        try:
            gpu = current_gpu()
        except CudaUnavailable as exc:
            raise EngineMismatch(str(exc)) from None
        return cls(trt.__version__, gpu.name, f"{gpu.major}.{gpu.minor}")

    @property
    def arch(self) -> int:
        major, minor = self.compute_capability.split(".")
        return int(major) * 10 + int(minor)


@dataclass(frozen=True)
class BuildSettings:
    precision: str
    plugins: str
    workspace_mb: int = 4096
    opt_level: int = 3
    opt_times: int = OPT_TIMES     # the ``times`` length (new frames per gap) TensorRT tunes for


@dataclass(frozen=True)
class CodeInfo:
    """The code that goes into a plan besides TensorRT: stvsr's version and, for the stvsr plugin
    flavour, the sha256 of every plugin PTX for this GPU, the Triton that compiled it and the
    kernel configurations (so a kernel fix never reuses a stale plan)."""
    stvsr: str
    plugin_ptx: str = ""
    triton: str = ""
    plugin_configs: str = ""

    @classmethod
    def current(cls, plugins: str, arch: int) -> "CodeInfo":
        import stvsr

        if plugins != "stvsr":
            return cls(stvsr.__version__)
        from stvsr.plugins import aot

        return cls(stvsr.__version__, **aot.ptx_fingerprint(arch))


def cache_key(onnx_sha256: str, profile: Profile, settings: BuildSettings, machine: MachineInfo,
              code: CodeInfo) -> str:
    """sha256 over everything that invalidates a plan."""
    blob = json.dumps({"onnx": onnx_sha256, "profile": profile.to_dict(), "settings": asdict(settings),
                       "machine": asdict(machine), "code": asdict(code)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def timing_cache_path(out_dir: str | os.PathLike, machine: MachineInfo) -> Path:
    """The persistent timing cache of one GPU model and TensorRT version in ``out_dir`` (a cache is
    only valid for the GPU it was measured on)."""
    gpu = "".join(c if c.isalnum() else "_" for c in machine.gpu).strip("_") or "gpu"
    return Path(out_dir) / f"timing-{gpu}-sm{machine.arch}-trt{machine.tensorrt}.cache"


def plan_name(model: str, settings: BuildSettings, profile: Profile, key: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in profile.name)
    return f"{model}-{settings.precision}-{settings.plugins}-{safe}-{key[:12]}.plan"


@dataclass
class PlanMetadata:
    model: ModelMetadata
    profile: Profile
    settings: BuildSettings
    machine: MachineInfo
    onnx_sha256: str
    key: str
    plan_sha256: str = ""    # of the plan file itself: a replaced or truncated plan is refused
    code: CodeInfo | None = None

    def to_json(self) -> str:
        return json.dumps({"model": json.loads(self.model.to_json()), "profile": self.profile.to_dict(),
                           "settings": asdict(self.settings), "machine": asdict(self.machine),
                           "onnx_sha256": self.onnx_sha256, "key": self.key, "plan_sha256": self.plan_sha256,
                           "code": asdict(self.code) if self.code else None},
                          indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PlanMetadata":
        d = json.loads(text)
        return cls(ModelMetadata.from_json(json.dumps(d["model"])), Profile.from_dict(d["profile"]),
                   BuildSettings(**d["settings"]), MachineInfo(**d["machine"]), d["onnx_sha256"], d["key"],
                   d.get("plan_sha256", ""), CodeInfo(**d["code"]) if d.get("code") else None)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:  # short temp name, umask mode, removed on any error
        Path(tmp).write_bytes(data)


def write_sidecar(plan_path: Path, meta: PlanMetadata) -> Path:
    side = Path(str(plan_path) + SIDECAR_SUFFIX)
    atomic_write_bytes(side, meta.to_json().encode())
    return side


def read_sidecar(plan_path: str | os.PathLike) -> PlanMetadata:
    side = Path(str(plan_path) + SIDECAR_SUFFIX)
    if not side.is_file():
        raise EngineMismatch(f"{plan_path}: no {side.name} beside it; engines must be built with stvsr-export --profile")
    try:
        return PlanMetadata.from_json(side.read_text())
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineMismatch(f"{side}: unreadable engine metadata ({exc})") from None


def check_plan(meta: PlanMetadata, machine: MachineInfo) -> None:
    """Refuse a plan built for another TensorRT version or GPU, saying why and how to rebuild."""
    problems = []
    if meta.machine.tensorrt != machine.tensorrt:
        problems.append(f"TensorRT {meta.machine.tensorrt} (this machine: {machine.tensorrt})")
    if meta.machine.gpu != machine.gpu or meta.machine.compute_capability != machine.compute_capability:
        problems.append(f"GPU {meta.machine.gpu} sm_{meta.machine.compute_capability.replace('.', '')} "
                        f"(this machine: {machine.gpu} sm_{machine.compute_capability.replace('.', '')})")
    if problems:
        flag = {"fp16": " --fp16", "int8": " --int8 --calib VIDEO"}.get(meta.settings.precision, "")
        raise EngineMismatch(f"engine was built for {' and '.join(problems)}; rebuild it here: stvsr-export "
                             f"--model {meta.model.model}{flag} --plugins {meta.settings.plugins} "
                             f"--profile {meta.profile.name}")


def check_plan_file(plan_path: str | os.PathLike, meta: PlanMetadata) -> None:
    """Refuse a plan file that is not the one its sidecar describes (replaced, truncated, copied over)."""
    if not meta.plan_sha256:
        return
    digest = hashlib.sha256(Path(plan_path).read_bytes()).hexdigest()
    if digest != meta.plan_sha256:
        raise EngineMismatch(f"{plan_path} does not match its {Path(str(plan_path) + SIDECAR_SUFFIX).name} "
                             f"(sha256 {digest[:12]}, expected {meta.plan_sha256[:12]}); delete both and rebuild "
                             f"with stvsr-export --profile {meta.profile.name}")
