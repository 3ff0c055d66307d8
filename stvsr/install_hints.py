"""Install commands named in error messages; the README gives the same ones (tests/test_install_docs.py checks).

``require_export``: the base install is the runtime alone (no torch, no onnx), so ``stvsr-export`` and
``stvsr-bench`` (``stvsr.export.entry``) first check for the export extra and, without it, say in one
line what to install (exit 2) instead of a traceback.
"""
from __future__ import annotations

import importlib
import sys

# README "TensorRT engines": TensorRT, cuda-python, Polygraphy and Triton from the gpu extra (NVIDIA's index).
GPU_INSTALL = 'pip install -e ".[gpu]" --extra-index-url https://pypi.nvidia.com'
# README "Two commands": the export extra, after the CPU torch build from PyTorch's index.
EXPORT_INSTALL = ('pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && '
                  'pip install -e ".[export]"')
EXPORT_MODULES = ("torch", "onnx", "onnxscript")  # setup.py's export extra


def require_export(prog: str) -> None:
    """Exit 2 with one line naming the export extra when one of its packages cannot be imported."""
    missing = []
    for name in EXPORT_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(f"{prog}: error: {prog} needs the export extra ({', '.join(missing)} not installed; "
              f"the base install is the runtime, stvsr-run): {EXPORT_INSTALL}", file=sys.stderr)
        sys.exit(2)
