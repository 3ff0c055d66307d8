"""The TensorRT and CUDA calls of the engine builder and backend, checked without a GPU.

* The cache key covers the plugin PTX: changing one kernel's PTX changes the key.
* FP32 engines clear TensorRT's TF32 flag; a timing cache from another GPU is replaced, not
  silently ignored; each GPU model gets its own timing-cache file.
* The TensorRT backend checks ``set_input_shape``/``set_tensor_address``, creates non-blocking
  streams and blocking-sync events (with the real cuda-bindings constants), and refuses a
  ``times`` input its engine was not built for.

``RecordingBuilderConfig`` and ``RecordingCudaRuntime`` are test doubles of ``IBuilderConfig`` and
``cuda.bindings.runtime``; the names they answer to are checked against the real packages (the
strings of TensorRT's compiled bindings, the attributes of cuda.bindings) so they cannot drift.
"""
from __future__ import annotations

import ctypes
import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

from stvsr.engines.builder import EngineBuildError, configure_builder
from stvsr.engines.cache import BuildSettings, CodeInfo, MachineInfo, timing_cache_path
from stvsr.export.graphs import base_metadata
from stvsr.runtime.backends.base import BackendError
from stvsr.runtime.backends.tensorrt import COMPUTE, COPY, CudaDevice, check_times


def _real_cuda_runtime():
    try:
        from cuda.bindings import runtime
    except ImportError:
        return None
    return runtime


# ------------------------------------------------------------------ item 5: plugin code in the cache key

def test_plugin_ptx_fingerprint_follows_the_ptx(tmp_path, monkeypatch):
    pytest.importorskip("triton", reason="triton compiles the plugin kernels")
    from stvsr.plugins import aot, configs

    few = [configs.warp_variant("fp32", "flow", m) for m in ("zeros", "border")]
    monkeypatch.setattr(configs, "variants", lambda: iter(few))
    aot.build([86], tmp_path, keys=[v.key for v in few], log=lambda *_: None)
    monkeypatch.setenv(aot.PTX_DIR_ENV, str(tmp_path))
    aot._prebuilt.cache_clear()
    first = CodeInfo.current("stvsr", 86)
    import stvsr
    import triton

    assert first.stvsr == stvsr.__version__ and first.triton == triton.__version__
    assert first.plugin_configs == aot.configs_digest() and len(first.plugin_ptx) == 64
    # A kernel fix changes the PTX: the fingerprint, hence the cache key, changes with it.
    ptx = tmp_path / "sm_86" / f"{few[1].key}.ptx"
    ptx.write_text(ptx.read_text().replace("\n", "\n// fixed\n", 1))
    aot._prebuilt.cache_clear()
    assert CodeInfo.current("stvsr", 86).plugin_ptx != first.plugin_ptx
    aot._prebuilt.cache_clear()
    # Engines without the stvsr plugins depend on stvsr's version only (no triton needed).
    assert CodeInfo.current("native", 86) == CodeInfo(stvsr.__version__)


# ------------------------------------------------------------------ items 6 and 8: builder config

class RecordingBuilderConfig:
    """Test double of ``tensorrt.IBuilderConfig``: records calls; timing caches are byte strings and
    a cache is accepted only if it was made for ``gpu``."""

    def __init__(self, gpu: bytes = b"H100"):
        self.calls: list[tuple] = []
        self.gpu = gpu
        self.builder_optimization_level = None

    def set_memory_pool_limit(self, pool, size):
        self.calls.append(("set_memory_pool_limit", pool, size))

    def clear_flag(self, flag):
        self.calls.append(("clear_flag", flag))

    def set_flag(self, flag):
        self.calls.append(("set_flag", flag))

    def create_timing_cache(self, data: bytes):
        return bytes(data)

    def set_timing_cache(self, cache: bytes, ignore_mismatch: bool) -> bool:
        ok = cache in (b"", self.gpu)
        self.calls.append(("set_timing_cache", cache, ignore_mismatch, ok))
        return ok


TRT_NAMES = types.SimpleNamespace(MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
                                  BuilderFlag=types.SimpleNamespace(TF32="TF32"))


def test_double_uses_names_of_the_real_tensorrt_api():
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None:
        pytest.skip("tensorrt-cu13-bindings is not installed")
    so = next(Path(list(spec.submodule_search_locations)[0]).glob("tensorrt*.so"), None) or \
        next(Path(list(spec.submodule_search_locations)[0]).glob("tensorrt*.pyd"))
    names = so.read_bytes()
    for name in (b"clear_flag", b"TF32", b"set_timing_cache", b"create_timing_cache", b"ignore_mismatch",
                 b"set_memory_pool_limit", b"WORKSPACE", b"builder_optimization_level", b"set_input_shape",
                 b"set_tensor_address", b"execute_async_v3", b"add_optimization_profile", b"create_optimization_profile",
                 b"set_shape", b"create_execution_context", b"deserialize_cuda_engine", b"num_io_tensors",
                 b"get_tensor_name", b"get_tensor_dtype"):
        assert name in names, name


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_fp32_engines_clear_tf32(precision):
    cfg = RecordingBuilderConfig()
    configure_builder(TRT_NAMES, cfg, BuildSettings(precision, "none", workspace_mb=512, opt_level=2), b"H100")
    assert ("set_memory_pool_limit", "WORKSPACE", 512 << 20) in cfg.calls and cfg.builder_optimization_level == 2
    assert (("clear_flag", "TF32") in cfg.calls) == (precision == "fp32")
    assert ("set_flag", "TF32") not in cfg.calls


def test_timing_cache_of_another_gpu_is_replaced_not_ignored():
    log: list[str] = []
    cfg = RecordingBuilderConfig(gpu=b"L4")
    configure_builder(TRT_NAMES, cfg, BuildSettings("fp16", "none"), b"H100", log.append)
    caches = [c for c in cfg.calls if c[0] == "set_timing_cache"]
    assert caches == [("set_timing_cache", b"H100", False, False), ("set_timing_cache", b"", False, True)]
    assert "another GPU" in log[0]

    class Refusing(RecordingBuilderConfig):
        def set_timing_cache(self, cache, ignore_mismatch):
            return False

    with pytest.raises(EngineBuildError, match="timing cache"):
        configure_builder(TRT_NAMES, Refusing(), BuildSettings("fp16", "none"), b"")


def test_timing_cache_file_per_gpu_model(tmp_path):
    h100 = MachineInfo("11.4.0.106", "NVIDIA H100 80GB HBM3", "9.0")
    l4 = MachineInfo("11.4.0.106", "NVIDIA L4", "8.9")
    a, b = timing_cache_path(tmp_path, h100), timing_cache_path(tmp_path, l4)
    assert a != b and a.parent == tmp_path and b.parent == tmp_path
    assert a.name == "timing-NVIDIA_H100_80GB_HBM3-sm90-trt11.4.0.106.cache"


# ------------------------------------------------------------------ item 8: CUDA streams, events, TensorRT results

class RecordingCudaRuntime:
    """Test double of ``cuda.bindings.runtime``: same function names and ``(error, value)`` results;
    pinned host memory is real host memory, device pointers are fake integers."""

    class _Err(int):
        name = "cudaSuccess"

    OK = _Err(0)
    cudaStreamNonBlocking = 1
    cudaEventBlockingSync = 1
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def __init__(self, real=None):
        if real is not None:   # the real flag values, when cuda-bindings is installed
            self.cudaStreamNonBlocking = real.cudaStreamNonBlocking
            self.cudaEventBlockingSync = real.cudaEventBlockingSync
        self.calls: list[tuple] = []
        self._host: dict[int, ctypes.Array] = {}
        self._next = 0x1000

    def _log(self, *call):
        self.calls.append(call)

    def cudaStreamCreateWithFlags(self, flags):
        self._log("cudaStreamCreateWithFlags", flags)
        self._next += 1
        return self.OK, self._next

    def cudaEventCreateWithFlags(self, flags):
        self._log("cudaEventCreateWithFlags", flags)
        self._next += 1
        return self.OK, self._next

    def cudaMallocHost(self, nbytes):
        buf = ctypes.create_string_buffer(nbytes)
        self._host[ctypes.addressof(buf)] = buf
        return self.OK, ctypes.addressof(buf)

    def cudaMalloc(self, nbytes):
        self._next += 1 << 20
        return self.OK, self._next

    def _ok(self, name):
        def call(*args):
            self._log(name, *args)
            return (self.OK,)
        return call

    def __getattr__(self, name):
        if name in ("cudaMemcpyAsync", "cudaEventRecord", "cudaStreamWaitEvent", "cudaEventSynchronize",
                    "cudaEventDestroy", "cudaStreamSynchronize", "cudaFree", "cudaFreeHost", "cudaStreamDestroy"):
            return self._ok(name)
        raise AttributeError(name)


class FakeContext:
    """Test double of ``IExecutionContext``: answers set_input_shape/set_tensor_address like TensorRT."""

    def __init__(self, accept_shapes=True, accept_addresses=True):
        self.accept_shapes, self.accept_addresses = accept_shapes, accept_addresses
        self.shapes: dict = {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = shape
        return self.accept_shapes

    def set_tensor_address(self, name, ptr):
        return self.accept_addresses

    def execute_async_v3(self, stream):
        return True

    def get_tensor_shape(self, name):
        return (1, 2, 3, 8, 8)


def test_cuda_runtime_double_matches_real_bindings():
    real = _real_cuda_runtime()
    if real is None:
        pytest.skip("cuda-bindings is not installed")
    for name in ("cudaStreamCreateWithFlags", "cudaEventCreateWithFlags", "cudaMallocHost", "cudaMalloc",
                 "cudaMemcpyAsync", "cudaEventRecord", "cudaStreamWaitEvent", "cudaEventSynchronize",
                 "cudaEventDestroy", "cudaStreamSynchronize", "cudaFree", "cudaFreeHost", "cudaStreamDestroy",
                 "cudaEventElapsedTime", "cudaStreamNonBlocking", "cudaEventBlockingSync", "cudaMemcpyKind"):
        assert hasattr(real, name), name
    # Without a driver the real bindings answer with an error code, which the backend turns into an error.
    err, _ = real.cudaStreamCreateWithFlags(real.cudaStreamNonBlocking)
    assert int(err) != 0
    with pytest.raises(BackendError, match="CUDA error"):
        CudaDevice(None, FakeContext(), {"frames": (1, 2, 3, 8, 8)}, "frames_out", (1, 3, 3, 32, 32), runtime=real)


def _device(ctx, rt):
    return CudaDevice(None, ctx, {"frames": (1, 2, 3, 8, 8)}, "frames_out", (1, 3, 3, 32, 32), runtime=rt)


def test_streams_are_non_blocking_and_events_block_the_host_without_spinning():
    real = _real_cuda_runtime()
    rt = RecordingCudaRuntime(real)
    dev = _device(FakeContext(), rt)
    assert [c for c in rt.calls if c[0] == "cudaStreamCreateWithFlags"] == \
        [("cudaStreamCreateWithFlags", rt.cudaStreamNonBlocking)] * 2
    if real is not None:
        assert rt.cudaStreamNonBlocking == real.cudaStreamNonBlocking and int(real.cudaStreamNonBlocking) != 0
    dev.record(COPY)
    dev.record(COMPUTE)
    assert [c for c in rt.calls if c[0] == "cudaEventCreateWithFlags"] == \
        [("cudaEventCreateWithFlags", rt.cudaEventBlockingSync)] * 2
    dev.close()


def test_refused_shapes_and_addresses_are_errors():
    frames = np.zeros((1, 2, 3, 8, 8), np.float32)
    dev = _device(FakeContext(accept_shapes=False), RecordingCudaRuntime())
    with pytest.raises(BackendError, match="refused input 'frames' of shape"):
        dev.upload(0, {"frames": frames})
    dev = _device(FakeContext(accept_addresses=False), RecordingCudaRuntime())
    dev.upload(0, {"frames": frames})
    with pytest.raises(BackendError, match="device address of tensor"):
        dev.execute(0, {"frames": frames.shape})
    ok = _device(FakeContext(), RecordingCudaRuntime())
    ok.upload(0, {"frames": frames})
    assert ok.execute(0, {"frames": frames.shape}) == (1, 2, 3, 8, 8)


# ------------------------------------------------------------------ item 7: the engine's times range

def test_engine_refuses_times_outside_its_profile():
    meta = base_metadata("stvun")
    frames = np.zeros((1, 7, 3, 16, 16), np.float32)
    check_times(meta, {"frames": frames, "times": np.array([0.5], np.float32)}, 8)
    for bad in (np.zeros(0, np.float32), np.linspace(0.1, 0.9, 9, dtype=np.float32)):
        with pytest.raises(BackendError, match="1 to 8 new frames per gap"):
            check_times(meta, {"frames": frames, "times": bad}, 8)
    check_times(base_metadata("zsm"), {"frames": frames}, None)   # no times input: nothing to check


# ------------------------------------------------------------------ round 2, item 4: unchecked TensorRT results

class RecordingProfileBuilder:
    """Test double of ``IBuilder``/``IOptimizationProfile``/``IBuilderConfig`` for profiles:
    ``add_optimization_profile`` answers ``answer`` (TensorRT: the index, or -1 for an invalid profile)."""

    def __init__(self, answer: int):
        self.answer, self.shapes = answer, {}

    def create_optimization_profile(self):
        return self

    def set_shape(self, name, lo, opt, hi):
        self.shapes[name] = (lo, opt, hi)

    def add_optimization_profile(self, profile):
        return self.answer


def test_an_optimization_profile_tensorrt_refuses_is_an_error():
    from stvsr.engines.builder import add_profile
    from stvsr.engines.profiles import parse_profile

    meta, profile = base_metadata("stvun"), parse_profile("64x64", 16, 16)
    ok = RecordingProfileBuilder(0)
    assert add_profile(ok, ok, meta, profile) == 0 and set(ok.shapes) == {"frames", "times"}
    bad = RecordingProfileBuilder(-1)
    with pytest.raises(EngineBuildError, match="TensorRT refused the optimization profile 64x64 .*frames"):
        add_profile(bad, bad, meta, profile)


class EngineDouble:
    """Test double of ``ICudaEngine``: named I/O tensors with data types; ``create_execution_context``
    answers ``context`` (TensorRT answers None when it cannot allocate one)."""

    def __init__(self, dtypes: dict, context=True):
        self.dtypes, self.context = dtypes, context
        self.num_io_tensors = len(dtypes)

    def get_tensor_name(self, i):
        return list(self.dtypes)[i]

    def get_tensor_dtype(self, name):
        return self.dtypes[name]

    def create_execution_context(self):
        return FakeContext() if self.context else None


def _trt_double(engine):
    """Just the names of the tensorrt module that ``open_engine`` uses (a test double, no TensorRT)."""
    dtype = types.SimpleNamespace
    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda plan: engine)
    return types.SimpleNamespace(float32=dtype(name="FLOAT"), float16=dtype(name="HALF"), int8=dtype(name="INT8"),
                                 Runtime=lambda logger: runtime)


def test_engine_io_types_and_execution_context_are_checked():
    from stvsr.runtime.backends.tensorrt import open_engine

    trt = _trt_double(None)
    with pytest.raises(BackendError, match="could not deserialize"):
        open_engine(trt, b"plan", None, "z.plan")
    good = EngineDouble({"frames": trt.float32, "frames_out": trt.float32})
    trt = _trt_double(good)
    engine, context = open_engine(trt, b"plan", None, "z.plan")
    assert engine is good and isinstance(context, FakeContext)
    good.dtypes["frames_out"] = trt.float16   # the backend's buffers are float32: refused, not misread
    with pytest.raises(BackendError, match="engine tensor 'frames_out' is HALF; the TensorRT backend handles float32"):
        open_engine(trt, b"plan", None, "z.plan")
    trt = _trt_double(EngineDouble({"frames": trt.float32}, context=False))
    with pytest.raises(BackendError, match="could not create an execution context"):
        open_engine(trt, b"plan", None, "z.plan")
