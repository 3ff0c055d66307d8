"""Load private copies of the kernel modules compiled for Triton's CPU interpreter.

Triton 3.7 to 3.9 read ``TRITON_INTERPRET`` through ``triton.knobs.runtime.interpret`` at the
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
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace

_KERNEL_DIR = Path(__file__).parent / "kernels"
_CACHE: dict[str, ModuleType] = {}
# Triton 3.6's interpreter turns a scalar kernel argument used as a loop bound (``range(0, C, BLOCK_C)``) into
# an int with ``int()`` on a 1-element array, which numpy 2.4 refuses (TypeError); 3.7.1, 3.8.0 and 3.9.0
# run the kernels. Triton 3.6 still compiles and launches them (AOT PTX): setup.py's range starts at 3.6.
INTERPRETER_MIN_TRITON = (3, 7)


def interpreter_unavailable() -> str | None:
    """Why Triton's CPU interpreter cannot run the plugin kernels here, or None."""
    try:
        import triton
    except ImportError:
        return "triton is not installed"
    version = tuple(int(v) for v in re.findall(r"\d+", triton.__version__)[:2])
    if version < INTERPRETER_MIN_TRITON:
        return (f"Triton {triton.__version__}'s CPU interpreter cannot run the kernels (a loop over a runtime bound "
                f"fails with numpy 2.4); Triton >= {'.'.join(map(str, INTERPRETER_MIN_TRITON))} runs them, and "
                f"{triton.__version__} still compiles them to PTX")
    return None


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
    """The plugin kernels as ``InterpretedFunction``\\ s (run on CPU torch tensors); ``RuntimeError`` naming the
    reason where the interpreter cannot run them (``interpreter_unavailable``)."""
    if (why := interpreter_unavailable()) is not None:
        raise RuntimeError(why)
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
