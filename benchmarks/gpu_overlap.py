#!/usr/bin/env python
"""Double buffering on real CUDA streams, without TensorRT: stvsr-run's TensorRT backend code
(``CudaDevice``: pinned host buffers, device buffers, two non-blocking streams, blocking-sync events;
``DoubleBufferSchedule``: the order of copies, inference and events) driven with a TensorRT context
TEST DOUBLE (:class:`TorchContextDouble`) whose ``execute_async_v3`` runs torch ops on the stream
it is given.

    python benchmarks/gpu_overlap.py --out overlap.json [--windows 16] [--size 960x540]
    python benchmarks/gpu_overlap.py --dry-run

It measures, per window, the host-to-device and device-to-host copies (pinned memory, CUDA events),
the compute on the compute stream (the schedule's own events) and the host's copies into and out
of the pinned buffers; then the wall time of N windows run one at a time (submit, collect) and
double-buffered as stvsr-run does (window k+1 submitted before window k is collected). The
compute is sized to take about as long as the copies (device and host) of a window, where double
buffering gains most. Each window's output is checked (inputs differ per window), so a slot reused
too early is a failure.
The context double is not TensorRT: these are stream and copy timings, not inference results.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from stvsr.timing import cuda_median_ms  # noqa: E402 (after the path set-up)

FRAMES, OUTPUT = "frames", "frames_out"


class _CudaArray:
    """A device address seen as a float32 array (``__cuda_array_interface__``, no stream sync)."""

    def __init__(self, ptr: int, shape: tuple):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": "<f4", "data": (int(ptr), False),
                                         "version": 3, "strides": None}


class TorchContextDouble:
    """TEST DOUBLE of a TensorRT execution context: ``execute_async_v3(stream)`` enqueues torch work
    on that stream (``reps`` FP32 matrix products as load, then ``out = 2 * frames + 1``)."""

    def __init__(self, reps: int, side: int = 2048):
        import torch

        self.torch, self.reps = torch, reps
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.a = torch.randn(side, side, device="cuda") / side ** 0.5

    def set_input_shape(self, name: str, shape) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = int(ptr)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        return self.shapes[FRAMES]

    def execute_async_v3(self, stream_handle: int) -> bool:
        torch = self.torch
        with torch.cuda.stream(torch.cuda.ExternalStream(stream_handle)):
            x = torch.as_tensor(_CudaArray(self.addresses[FRAMES], self.shapes[FRAMES]), device="cuda")
            y = torch.as_tensor(_CudaArray(self.addresses[OUTPUT], self.shapes[FRAMES]), device="cuda")
            z = self.a
            for _ in range(self.reps):
                z = torch.tanh(z @ self.a)       # bounded: 0 * z below is exactly 0
            y.copy_(x * 2 + 1 + 0 * z[0, 0])    # the load is a dependency of the output
        return True




def _open(shape: tuple, reps: int):
    from stvsr.runtime.backends.tensorrt import CudaDevice, DoubleBufferSchedule

    context = TorchContextDouble(reps)
    device = CudaDevice(None, context, {FRAMES: shape}, OUTPUT, shape)   # engine: unused by CudaDevice
    return context, device, DoubleBufferSchedule(device)


def measure(shape: tuple, windows: int, log=print) -> dict:
    import numpy as np
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape, dtype=np.float32) for _ in range(windows)]
    nbytes = int(np.prod(shape)) * 4
    pinned = torch.empty(shape, pin_memory=True)
    dev = torch.empty(shape, device="cuda")
    h2d = cuda_median_ms(lambda: dev.copy_(pinned, non_blocking=True), 5, 1)
    d2h = cuda_median_ms(lambda: pinned.copy_(dev, non_blocking=True), 5, 1)
    t = time.perf_counter()
    for _ in range(5):
        pinned.numpy().ravel()[:] = inputs[0].ravel()
        pinned.numpy().copy()
    host = (time.perf_counter() - t) / 5 * 1e3

    # Size the compute to about both copies: one window with 8 products gives the time per product.
    context, device, sched = _open(shape, 8)
    sched.collect(sched.submit({FRAMES: inputs[0]}))
    ticket = sched.submit({FRAMES: inputs[0]})
    sched.collect(ticket)
    per_rep = ticket.gpu_ms / 8
    context.reps = max(1, round((h2d + d2h + host) / per_rep))
    log(f"copies: H2D {h2d:.2f} ms, D2H {d2h:.2f} ms ({nbytes / 2**20:.1f} MiB each way), host {host:.2f} ms; "
        f"compute sized to {context.reps} products ({per_rep:.3f} ms each)")

    wrong = []

    def check(i, out):
        if not np.array_equal(out, inputs[i] * 2 + 1):
            wrong.append(i)

    sched.collect(sched.submit({FRAMES: inputs[0]}))          # warm-up at the final size
    computes = []
    t = time.perf_counter()
    for i in range(windows):
        ticket = sched.submit({FRAMES: inputs[i]})
        check(i, sched.collect(ticket))
        computes.append(ticket.gpu_ms)
    serial = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    pending = sched.submit({FRAMES: inputs[0]})
    for i in range(1, windows):
        nxt = sched.submit({FRAMES: inputs[i]})
        check(i - 1, sched.collect(pending))
        pending = nxt
    check(windows - 1, sched.collect(pending))
    piped = (time.perf_counter() - t) * 1e3
    sched.close()
    device.close()
    compute = statistics.median(computes)
    gpu_sum = windows * (h2d + compute + d2h)
    result = {
        "windows": windows, "shape": list(shape), "mib_each_way": nbytes / 2**20, "reps": context.reps,
        "h2d_ms": h2d, "d2h_ms": d2h, "compute_ms": compute, "host_copy_ms": host,
        "sum_copies_and_compute_ms": gpu_sum, "serial_wall_ms": serial, "double_buffered_wall_ms": piped,
        "double_buffered_over_serial": piped / serial, "double_buffered_over_sum": piped / gpu_sum,
        "wrong_windows": wrong, "device": torch.cuda.get_device_name(),
        "note": "TensorRT context TEST DOUBLE (torch matmuls as load); stvsr's CudaDevice and DoubleBufferSchedule",
    }
    log(f"{windows} windows: one at a time {serial:.1f} ms, double-buffered {piped:.1f} ms "
        f"({piped / serial:.2f}x); copies + compute summed {gpu_sum:.1f} ms ({piped / gpu_sum:.2f}x); "
        f"wrong outputs: {wrong or 'none'}")
    return result


def _shape(size: str) -> tuple:
    w, h = (int(v) for v in size.lower().split("x"))
    return (1, 4, 3, h, w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--size", default="960x540", help="frame WxH of the 4-frame windows")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--dry-run", action="store_true", help="say what would run; use no GPU")
    args = ap.parse_args(argv)
    try:
        shape = _shape(args.size)
    except ValueError:
        print(f"gpu_overlap: --size must be WxH, got {args.size!r}", file=sys.stderr)
        return 2
    if args.windows < 2:
        print("gpu_overlap: --windows must be at least 2", file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"gpu_overlap: no GPU (dry run): would run {args.windows} windows of {shape} through CudaDevice + "
              "DoubleBufferSchedule with a TensorRT context test double")
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_overlap: no CUDA GPU visible to torch; nothing was measured", file=sys.stderr)
        return 2
    result = measure(shape, args.windows)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    if result["wrong_windows"]:
        print(f"gpu_overlap: FAILED: wrong output for windows {result['wrong_windows']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
