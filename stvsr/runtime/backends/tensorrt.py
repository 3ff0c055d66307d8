"""TensorRT backend of stvsr-run on cuda-python: pinned host buffers, two CUDA streams, two buffer sets.

The double-buffering schedule is a pure component (``DoubleBufferSchedule``) driving a device
object; ``CudaDevice`` is the real one. Window k+1's upload is enqueued on the copy stream
before window k's download, so the upload of k+1 and the download of k-1 overlap inference on k.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from stvsr.runtime.backends.base import Backend, BackendError
from stvsr.install_hints import GPU_INSTALL

COPY, COMPUTE = "copy", "compute"


class Device(Protocol):
    """What the schedule needs from a GPU (``CudaDevice``) or from a test double."""

    def upload(self, slot: int, inputs: dict[str, np.ndarray]) -> None: ...      # host -> pinned -> device, on COPY
    def execute(self, slot: int, shapes: dict[str, tuple]) -> tuple: ...         # on COMPUTE; returns output shape
    def download(self, slot: int, shape: tuple) -> None: ...                      # device -> pinned, on COPY
    def record(self, stream: str) -> Any: ...                                     # new event recorded on stream
    def wait(self, stream: str, event: Any) -> None: ...                          # stream waits for event (no host block)
    def synchronize(self, event: Any) -> None: ...                                # host waits for event
    def elapsed_ms(self, start: Any, end: Any) -> float: ...
    def release(self, event: Any) -> None: ...                                    # destroy (safe while pending)
    def host_output(self, slot: int, shape: tuple) -> np.ndarray: ...


@dataclass
class _Ticket:
    index: int
    slot: int
    shape: tuple = ()
    started: Any = None
    executed: Any = None
    downloaded: Any = None
    gpu_ms: float | None = None     # inference time on the compute stream (CUDA events), set by collect


@dataclass
class DoubleBufferSchedule:
    """Order of copies, inference and events for ``slots`` buffer sets on a copy and a compute stream.

    Invariants (checked in tests with a recording test double): compute waits for its window's
    upload event; the copy stream waits for a window's execution event before downloading it;
    window k+1's upload is enqueued before window k's download; a slot is reused only after the
    host has waited for the download of the window that last used it, and only once that window's
    result has been collected (a ``submit`` that would overwrite an uncollected result is refused);
    every event is released.
    """

    device: Device
    slots: int = 2
    _count: int = 0
    _pending: list = field(default_factory=list)      # tickets whose download is not enqueued yet
    _slot_free: dict = field(default_factory=dict)    # slot -> event after its last download
    _uncollected: dict = field(default_factory=dict)  # slot -> ticket whose result is still in that slot

    def submit(self, inputs: dict[str, np.ndarray]) -> _Ticket:
        slot = self._count % self.slots
        if (held := self._uncollected.get(slot)) is not None:   # checked before any work is enqueued
            raise BackendError(f"window {self._count} would overwrite the result of window {held.index}, which "
                               f"has not been collected: at most {self.slots} windows may be in flight")
        ticket = _Ticket(self._count, slot)
        self._count += 1
        self._uncollected[slot] = ticket
        if ticket.slot in self._slot_free:            # the slot's previous window must be fully downloaded
            event = self._slot_free.pop(ticket.slot)
            self.device.synchronize(event)
            self.device.release(event)
        self.device.upload(ticket.slot, inputs)
        uploaded = self.device.record(COPY)
        # The previous window's download goes after this upload on the copy stream.
        self._flush_downloads()
        self.device.wait(COMPUTE, uploaded)
        self.device.release(uploaded)
        ticket.started = self.device.record(COMPUTE)
        ticket.shape = self.device.execute(ticket.slot, {k: v.shape for k, v in inputs.items()})
        ticket.executed = self.device.record(COMPUTE)
        self._pending.append(ticket)
        return ticket

    def _flush_downloads(self) -> None:
        for t in self._pending:
            self.device.wait(COPY, t.executed)
            self.device.download(t.slot, t.shape)
            t.downloaded = self.device.record(COPY)
            self._slot_free[t.slot] = t.downloaded
        self._pending.clear()

    def collect(self, ticket: _Ticket) -> np.ndarray:
        if self._uncollected.get(ticket.slot) is not ticket:
            raise BackendError(f"window {ticket.index} was already collected (or belongs to another schedule)")
        if ticket.downloaded is None:
            self._flush_downloads()
        self.device.synchronize(ticket.downloaded)
        out = self.device.host_output(ticket.slot, ticket.shape).copy()
        if ticket.started is not None:
            ticket.gpu_ms = self.device.elapsed_ms(ticket.started, ticket.executed)
            self.device.release(ticket.started)
            self.device.release(ticket.executed)
            ticket.started = ticket.executed = None
        if self._slot_free.get(ticket.slot) is ticket.downloaded:
            del self._slot_free[ticket.slot]
            self.device.release(ticket.downloaded)
        del self._uncollected[ticket.slot]
        return out

    def close(self) -> None:
        """Wait for and release everything still outstanding."""
        self._flush_downloads()
        for event in self._slot_free.values():
            self.device.synchronize(event)
            self.device.release(event)
        self._slot_free.clear()
        self._uncollected.clear()


def check_times(meta, inputs: dict[str, np.ndarray], max_factor: int | None) -> None:
    """Refuse a ``times`` input an engine cannot take (empty, or longer than its profile allows)."""
    if not meta.takes_times:
        return
    n = int(np.asarray(inputs[meta.inputs.get("times", "times")]).size)
    if n < 1 or (max_factor is not None and n > max_factor):
        raise BackendError(f"this engine makes 1 to {max_factor} new frames per gap (--factor 1..{max_factor}); "
                           f"got {n}")


def _check(result):
    err = result[0] if isinstance(result, tuple) else result
    if int(err) != 0:
        raise BackendError(f"CUDA error {err}")
    return result[1] if isinstance(result, tuple) and len(result) == 2 else result[1:] if isinstance(result, tuple) else None


class CudaDevice:
    """Two streams, pinned host buffers and device buffers for ``slots`` windows (cuda.bindings).

    Both streams are non-blocking (no implicit synchronisation with the legacy default stream)
    and events are created with ``cudaEventBlockingSync``, so a host wait sleeps instead of
    spinning a CPU core that decoding and encoding need. ``runtime`` is ``cuda.bindings.runtime``
    (a test double in tests)."""

    def __init__(self, engine, context, max_shapes: dict[str, tuple], output: str, max_out: tuple, slots: int = 2,
                 runtime=None):
        if runtime is None:
            from cuda.bindings import runtime
        cudart = runtime
        self.rt, self.engine, self.context, self.output = cudart, engine, context, output
        self.streams = {s: _check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking))
                        for s in (COPY, COMPUTE)}
        self.host: list[dict[str, np.ndarray]] = []
        self.dev: list[dict[str, int]] = []
        for _ in range(slots):
            h, d = {}, {}
            for name, shape in list(max_shapes.items()) + [(output, max_out)]:
                nbytes = int(np.prod(shape)) * 4
                ptr = _check(cudart.cudaMallocHost(nbytes))
                h[name] = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * (nbytes // 4)).from_address(ptr))
                d[name] = _check(cudart.cudaMalloc(nbytes))
            self.host.append(h)
            self.dev.append(d)

    def upload(self, slot, inputs):
        for name, arr in inputs.items():
            flat = self.host[slot][name][: arr.size]
            flat[:] = arr.ravel()
            _check(self.rt.cudaMemcpyAsync(self.dev[slot][name], flat.ctypes.data, arr.nbytes,
                                           self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.streams[COPY]))
            if not self.context.set_input_shape(name, tuple(arr.shape)):
                raise BackendError(f"TensorRT refused input {name!r} of shape {tuple(arr.shape)} (outside the "
                                   "engine's optimization profile?)")

    def execute(self, slot, shapes):
        for name, ptr in self.dev[slot].items():
            if not self.context.set_tensor_address(name, int(ptr)):
                raise BackendError(f"TensorRT refused the device address of tensor {name!r}")
        if not self.context.execute_async_v3(int(self.streams[COMPUTE])):
            raise BackendError("TensorRT execution failed")
        return tuple(self.context.get_tensor_shape(self.output))

    def download(self, slot, shape):
        nbytes = int(np.prod(shape)) * 4
        _check(self.rt.cudaMemcpyAsync(self.host[slot][self.output].ctypes.data, self.dev[slot][self.output], nbytes,
                                       self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.streams[COPY]))

    def record(self, stream):
        event = _check(self.rt.cudaEventCreateWithFlags(self.rt.cudaEventBlockingSync))
        _check(self.rt.cudaEventRecord(event, self.streams[stream]))
        return event

    def wait(self, stream, event):
        _check(self.rt.cudaStreamWaitEvent(self.streams[stream], event, 0))

    def synchronize(self, event):
        _check(self.rt.cudaEventSynchronize(event))

    def elapsed_ms(self, start, end):
        return float(_check(self.rt.cudaEventElapsedTime(start, end)))

    def release(self, event):
        _check(self.rt.cudaEventDestroy(event))

    def close(self):
        """Free pinned and device buffers and the streams (after the streams are idle)."""
        for stream in self.streams.values():
            _check(self.rt.cudaStreamSynchronize(stream))
        for h, d in zip(self.host, self.dev):
            for name in d:
                _check(self.rt.cudaFree(d[name]))
                _check(self.rt.cudaFreeHost(h[name].ctypes.data))
        for stream in self.streams.values():
            _check(self.rt.cudaStreamDestroy(stream))
        self.host, self.dev, self.streams = [], [], {}

    def host_output(self, slot, shape):
        return self.host[slot][self.output][: int(np.prod(shape))].reshape(shape)


def check_io_dtypes(trt, engine, path: str = "engine") -> None:
    """Refuse an engine whose inputs or outputs are not float32: the backend's pinned and device
    buffers, copies and output arrays are float32 (4 bytes per element). Graphs from stvsr-export
    keep FP32 I/O in every precision (FP16 and INT8 cast inside the graph)."""
    for i in range(int(engine.num_io_tensors)):
        name = engine.get_tensor_name(i)
        dtype = engine.get_tensor_dtype(name)
        if dtype != trt.float32:
            raise BackendError(f"{path}: engine tensor {name!r} is {getattr(dtype, 'name', dtype)}; the TensorRT backend "
                               "handles float32 inputs and outputs only (export the graph with stvsr-export)")


def open_engine(trt, plan: bytes, logger, path: str = "engine"):
    """(engine, execution context) of a serialized plan, every TensorRT answer checked."""
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    if engine is None:
        raise BackendError(f"{path}: TensorRT could not deserialize the engine")
    check_io_dtypes(trt, engine, path)
    context = engine.create_execution_context()
    if context is None:
        raise BackendError(f"{path}: TensorRT could not create an execution context (not enough free GPU memory "
                           "for the engine's activations?)")
    return engine, context


class TensorRTBackend(Backend):
    """Runs a ``.plan`` built by ``stvsr-export --profile``; refuses plans built for another machine."""

    name = "tensorrt"
    max_in_flight = 2

    def __init__(self, path: str):
        try:
            import tensorrt as trt
        except ImportError:
            raise BackendError("the TensorRT backend needs TensorRT and an NVIDIA GPU: install the gpu extra, "
                               f"{GPU_INSTALL} (README: TensorRT engines)") from None
        from stvsr.engines.cache import MachineInfo, check_plan, check_plan_file, read_sidecar
        from stvsr.engines.profiles import MAX_TIMES, engine_max_factor

        plan = read_sidecar(path)
        check_plan(plan, MachineInfo.current())
        check_plan_file(path, plan)
        self.metadata, self.profile = plan.model, plan.profile
        logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(logger, "")  # DeformConv maps to a built-in plugin in every flavour
        if plan.settings.plugins == "stvsr":
            import stvsr.plugins

            stvsr.plugins.register_tensorrt()
        with open(path, "rb") as f:
            self.engine, self.context = open_engine(trt, f.read(), logger, path)
        h, w = self.profile.max
        meta = self.metadata
        shapes = {meta.inputs.get("frames", "frames"): (1, meta.window, 3, h, w)}
        if meta.takes_times:
            shapes[meta.inputs.get("times", "times")] = (MAX_TIMES,)
        for name in meta.flow_inputs:
            shapes[name] = (1, 2, h, w)
        outputs = meta.output_count(MAX_TIMES)
        max_out = (1, outputs, 3, h * meta.scale, w * meta.scale)
        # An engine's times input ranges over 1..MAX_TIMES (its optimization profile): the largest --factor.
        self.max_factor = engine_max_factor(meta.takes_times)
        self.device = CudaDevice(self.engine, self.context, shapes, meta.output, max_out)
        self.schedule = DoubleBufferSchedule(self.device)
        self.gpu_ms: list[float] = []   # per collected window: inference time on the compute stream (CUDA events)

    def submit(self, inputs: dict[str, np.ndarray]):
        check_times(self.metadata, inputs, self.max_factor)
        h, w = inputs[self.metadata.inputs.get("frames", "frames")].shape[-2:]
        if not self.profile.contains(h, w):
            raise BackendError(f"LR frames {w}x{h} are outside this engine's profile {self.profile.name} "
                               f"({self.profile.min[1]}x{self.profile.min[0]} .. {self.profile.max[1]}x{self.profile.max[0]}); "
                               "use --tile or build another --profile")
        return self.schedule.submit({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()})

    def collect(self, ticket) -> np.ndarray:
        out = self.schedule.collect(ticket)
        if ticket.gpu_ms is not None:
            self.gpu_ms.append(ticket.gpu_ms)
        return out

    def close(self) -> None:
        if getattr(self, "schedule", None) is not None:
            self.schedule.close()
            self.device.close()
            self.schedule = None
