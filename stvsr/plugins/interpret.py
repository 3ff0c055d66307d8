"""Load private copies of the kernel modules compiled for Triton's CPU interpreter.

Triton 3.7.1 reads ``TRITON_INTERPRET`` through ``triton.knobs.runtime.interpret`` at the
moment ``@triton.jit`` decorates a function (``triton/runtime/jit.py``): with it set the
decorator returns an ``InterpretedFunction``, otherwise a ``JITFunction``. The variable is
read from ``os.environ`` on every access, so setting it only while a fresh copy of a kernel
module executes yields interpreted kernels without touching the normally imported
:mod:`stvsr.plugins.kernels` (used for AOT compilation, which needs real ``JITFunction``\\ s)
and without leaking the variable into other tests of the same process.

Consequence for kernel code: ``triton.language``'s own ``@jit`` helpers (``tl.cdiv``,
``tl.zeros``, ``tl.sigmoid``, most of ``standard.py``) were decorated when triton was
imported, without the interpreter, and fail inside interpreted kernels. The plugin kernels
therefore use builtins only (``tl.load``, ``tl.dot``, ``tl.minimum``, ``tl.floor``, ...).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType, SimpleNamespace

_KERNEL_DIR = Path(__file__).parent / "kernels"
_CACHE: dict[str, ModuleType] = {}


@contextlib.contextmanager
def _interpreter_env():
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old


def _load(stem: str) -> ModuleType:
    # triton's own @jit helpers must be built normally, i.e. before the variable is set.
    import triton  # noqa: F401
    import triton.language  # noqa: F401

    if stem not in _CACHE:
        spec = importlib.util.spec_from_file_location(f"_stvsr_interpreted_{stem}", _KERNEL_DIR / f"{stem}.py")
        module = importlib.util.module_from_spec(spec)
        with _interpreter_env():
            spec.loader.exec_module(module)
        _CACHE[stem] = module
    return _CACHE[stem]


def interpreted_kernels() -> SimpleNamespace:
    """The plugin kernels as ``InterpretedFunction``\\ s (run on CPU torch tensors)."""
    from triton.runtime.interpreter import InterpretedFunction

    ns = SimpleNamespace(
        deform_conv2d_kernel=_load("deform_conv").deform_conv2d_kernel,
        backward_warp_kernel=_load("warp").backward_warp_kernel,
    )
    for name, fn in vars(ns).items():
        if not isinstance(fn, InterpretedFunction):
            raise RuntimeError(f"{name} was not built for the interpreter (triton changed how it reads "
                               "TRITON_INTERPRET?)")
    return ns
