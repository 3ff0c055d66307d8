"""ONNX Runtime backend: any exported ``.onnx`` file, CPU by default."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

import numpy as np

from stvsr.metadata import ModelMetadata, read_onnx_metadata
from stvsr.ort_session import exact_int8
from stvsr.runtime.backends.base import Backend, BackendError, check_graph_inputs, one_line


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    max_in_flight = 2

    def __init__(self, path: str, providers: Sequence[str] | None = None, threads: int = 0,
                 metadata: ModelMetadata | None = None):
        import onnxruntime as ort

        self.path = str(path)  # names the model in the --max-memory probe cache (stvsr.runtime.planning.memory_cache)
        self.metadata = metadata or read_onnx_metadata(path)
        available = ort.get_available_providers()
        providers = list(providers or ["CPUExecutionProvider"])
        unknown = [p for p in providers if p not in available]
        if unknown:
            raise BackendError(f"execution provider(s) {', '.join(unknown)} not available here "
                               f"(available: {', '.join(available)})")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # No memory pattern: with it the second run of a shape adds one block as large as the
        # first run's arena (stvun, 3 times: 40 -> 90 KiB per LR pixel), so a video's steady state
        # is twice what one run needs and is not predictable from small crops (stvsr.runtime.planning.memory).
        opts.enable_mem_pattern = False
        if threads:
            opts.intra_op_num_threads = threads
        if self.metadata.precision == "int8":
            exact_int8(opts)  # int8 products summed without saturation on CPUs without VNNI (stvsr.ort_session)
        try:
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except Exception as exc:
            raise BackendError(f"{path}: ONNX Runtime cannot load it ({one_line(exc)})") from None
        check_graph_inputs(path, self.metadata, {i.name: i.shape for i in self.session.get_inputs()})
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stvsr-ort")
        self._run_options = ort.RunOptions
        self._active: set = set()  # RunOptions of submitted, unfinished runs (close() terminates them)
        self._lock = threading.Lock()

    def submit(self, inputs: dict[str, np.ndarray]) -> Future:
        run_options = self._run_options()
        with self._lock:
            self._active.add(run_options)
        return self._pool.submit(self._run, run_options, inputs)

    def _run(self, run_options, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            if run_options.terminate:  # closed before this window started
                raise BackendError("ONNX Runtime run cancelled")
            return self.session.run(None, inputs, run_options)
        finally:
            with self._lock:
                self._active.discard(run_options)

    def collect(self, ticket: Future) -> np.ndarray:
        try:
            return ticket.result()[0]
        except Exception as exc:  # onnxruntime's own exception types are not RuntimeError
            raise BackendError(f"ONNX Runtime failed on a window: {one_line(exc)}") from None

    def close(self) -> None:
        """Stop at once: runs still in flight (an error or a signal ended the video) are terminated
        between two graph nodes instead of being waited for, which at HD sizes can take minutes."""
        with self._lock:
            for run_options in self._active:
                run_options.terminate = True
        self._pool.shutdown(wait=True, cancel_futures=True)
