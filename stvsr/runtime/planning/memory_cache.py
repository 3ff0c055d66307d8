"""A cache of the ``--max-memory`` probe: a model's measured working memory (fixed part and bytes
per LR pixel), so a second run of the same model on the same machine does not pay the probe
(13.6 s of a 113 s zsm run on 10 carphone frames).

Key: the model file (real path, size, modification time), ONNX Runtime's version and execution
providers, the machine (CPU model, total memory, architecture) and the window's input shapes
other than height and width (frames per window, number of times). One small JSON file per key
under ``$STVSR_HOME/cache/memory`` (default ``~/.cache/stvsr/cache/memory``), written to a
temporary name and renamed; a file that cannot be read is ignored with a note and measured again.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Callable

import numpy as np

from stvsr.home import stvsr_home

VERSION = 1               # of the file layout


def cache_dir() -> Path:
    return stvsr_home("cache", "memory")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def meminfo(field: str) -> int | None:
    """``field`` of ``/proc/meminfo`` (``MemTotal``, ``MemAvailable``) in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def probe_key(backend, inputs: dict[str, np.ndarray], spatial: set[str]) -> dict | None:
    """What the measurement depends on, or None when ``backend`` has no model file to name."""
    path = getattr(backend, "path", None)
    if not path:
        return None
    try:
        st = os.stat(path)
        import onnxruntime as ort

        session = getattr(backend, "session", None)
        providers = list(session.get_providers()) if session is not None else []
    except Exception:
        return None
    return {"version": VERSION, "model": [os.path.realpath(path), st.st_size, st.st_mtime_ns],
            "onnxruntime": ort.__version__, "providers": providers,
            "machine": [_cpu_model(), meminfo("MemTotal"), platform.machine()],
            "shapes": {k: list(v.shape[:-2] if k in spatial else v.shape) for k, v in sorted(inputs.items())}}


def _file(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / f"{digest}.json"


def load(key: dict | None, say: Callable[[str], None]) -> tuple[float, float] | None:
    """``(fixed, per_pixel)`` bytes measured earlier for ``key``, or None."""
    if key is None:
        return None
    path = _file(key)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data["key"] != key:
            raise ValueError("written for another model or machine")
        fixed, per_pixel = float(data["fixed"]), float(data["per_pixel"])
        if not (np.isfinite(fixed) and np.isfinite(per_pixel) and fixed >= 0 and per_pixel >= 0):
            raise ValueError("values out of range")
        return fixed, per_pixel
    except Exception as exc:
        say(f"memory: ignoring the unreadable probe cache file {path} ({type(exc).__name__}); measuring again")
        return None


def store(key: dict | None, fixed: float, per_pixel: float, say: Callable[[str], None]) -> None:
    """Record a measurement (atomically; a cache that cannot be written only costs the next probe)."""
    if key is None:
        return
    from stvsr.outfile import atomic_output

    path = _file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            Path(tmp).write_text(json.dumps({"key": key, "fixed": fixed, "per_pixel": per_pixel}, sort_keys=True))
    except Exception as exc:
        say(f"memory: cannot write the probe cache {path} ({' '.join(str(exc).split())[:120]}); "
            "the next run measures again")
