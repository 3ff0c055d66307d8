"""Timing with warm-ups and repeats, and the machine's own matrix-multiply peak."""
from __future__ import annotations

import os
import platform

from stvsr.timing import Timing, time_call  # noqa: F401  (re-exported: the benchmark's timing)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5, threads: int = 0) -> dict[str, float]:
    """Achieved float32 GFLOP/s of a square matmul in PyTorch and in ONNX Runtime (best of ``repeats``),
    and their maximum under ``peak``: this machine's practical limit for every backend that runs here."""
    import numpy as np
    import torch
    from onnx import TensorProto, helper

    from stvsr.export.verify import ort_session

    flop = 2 * size**3
    a, b = torch.randn(size, size), torch.randn(size, size)
    result = {"pytorch": flop / time_call(lambda: a @ b, warmup=2, repeats=repeats).minimum / 1e9}
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort_session(model, threads=threads)
    feed = {"a": a.numpy(), "b": np.ascontiguousarray(b.numpy())}
    result["onnxruntime"] = flop / time_call(lambda: session.run(None, feed), warmup=2, repeats=repeats).minimum / 1e9
    result["peak"] = max(result["pytorch"], result["onnxruntime"])
    return result


def thread_candidates() -> list[int]:
    """1, 2, 4, ... up to the CPUs this process may use, and that number itself."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    out, k = [], 1
    while k < n:
        out.append(k)
        k *= 2
    return out + [n]


def fastest_threads(repeats: int = 5) -> dict:
    """The PyTorch thread count that runs a convolution fastest on this machine now, and each count's time.

    On a machine shared with other work, more threads than free cores make every parallel region wait
    for a descheduled thread: 2 threads on 2 busy cores measured zsm 17x slower than 1. The probe (a
    3x3 convolution, 32 channels at 96x96, the networks' staple, median of ``repeats`` after a warm-up)
    takes well under a second. Returns ``{"threads": best, "tried_ms": {count: median ms}}`` and leaves
    torch set to ``best``."""
    import torch

    x, w = torch.randn(1, 32, 96, 96), torch.randn(32, 32, 3, 3)
    tried = {}
    with torch.no_grad():
        for n in thread_candidates():
            torch.set_num_threads(n)
            conv = lambda: torch.nn.functional.conv2d(x, w, padding=1)  # noqa: E731
            tried[n] = time_call(conv, warmup=1, repeats=repeats).median * 1000
    best = min(tried, key=tried.get)
    torch.set_num_threads(best)
    return {"threads": best, "tried_ms": {str(n): round(ms, 3) for n, ms in tried.items()}}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Machine, CPU, thread count and library versions, recorded beside every result."""
    import numpy
    import torch

    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
    }
    for mod in ("onnx", "onnxruntime", "tensorrt", "triton"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    return info
