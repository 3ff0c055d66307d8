"""Shared test fixtures: the reference material copied from the official implementations."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).parent / "reference"


def pytest_configure(config):
    """One torch thread per pytest-xdist worker: two workers on two cores with two threads each
    oversubscribe the CPU and make the many small convolutions tens of times slower."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
    # stvsr's caches (probe, PTX) and weights folder: a fresh one per test process, never the user's
    # ~/.cache/stvsr (subprocesses inherit it; tests that need their own set STVSR_HOME themselves)
    import tempfile

    os.environ["STVSR_HOME"] = tempfile.mkdtemp(prefix="stvsr-home-tests-")


# The packages whose versions decide what the tests see (printed at the end of every run: CI's log says what it
# ran with). Each distribution setup.py bounds is among them (tests/test_install_docs.py checks it).
KEY_PACKAGES = ("torch", "onnxruntime", "onnx", "onnxscript", "numpy", "av", "triton", "ray", "scikit-video",
                "opencv-python-headless", "scenedetect-headless", "click", "tensorrt-cu13", "tensorrt-cu13-bindings", "cuda-bindings",
                "cuda-python", "pytest", "pytest-xdist", "vapoursynth")   # vapoursynth: in the 3.12 venv of test_vapoursynth


def environment_line() -> str:
    """Python, the key packages' installed versions, and whether ONNX Runtime's int8 kernels saturate here."""
    import importlib.metadata
    import platform

    versions = []
    for dist in KEY_PACKAGES:
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} absent")
    try:
        from stvsr.ort_session import u8s8_saturates

        int8 = "saturating (sessions use exact U8U8)" if u8s8_saturates() else "exact"
    except Exception as exc:  # noqa: BLE001 - a summary line must not fail the run
        int8 = f"not probed ({type(exc).__name__})"
    return (f"stvsr test environment: Python {platform.python_version()} on {platform.machine()}; "
            f"{', '.join(versions)}; ONNX Runtime int8 kernels on this CPU: {int8}")


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(environment_line())


def _seeded_module():
    spec = importlib.util.spec_from_file_location("stvsr_tests_seeded", REFERENCE / "seeded.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def manifest(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """Official checkpoint keys and shapes of ``name``, in official order."""
    return _seeded_module().read_manifest(REFERENCE / "checkpoint-keys" / f"{name}.tsv")


def seeded(name: str, seed: int = 1234, strip_prefix: str = "module.") -> dict[str, torch.Tensor]:
    """The deterministic stand-in checkpoint the official outputs were computed with."""
    return _seeded_module().seeded_state_dict(REFERENCE / "checkpoint-keys" / f"{name}.tsv", seed=seed,
                                              strip_prefix=strip_prefix)


def official_outputs(name: str) -> dict:
    """Inputs and outputs of the official implementation for ``name``."""
    return torch.load(REFERENCE / "official-outputs" / f"{name}.pt", weights_only=False)


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative L2 error of ``ours`` against ``ref``."""
    return float((ours.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE
