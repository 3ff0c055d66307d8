"""Segments as Ray tasks (``--workers N``, ``--ray [ADDRESS]``); Ray is imported only here.

Without an address Ray starts on this machine; ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``
joins a running cluster. Each task computes one segment into the shared work folder (the part's
file is renamed into place when complete) and returns its checksum; the driver records it in the
manifest as it arrives, so a resume works as without Ray. A task asks for one GPU when the
backend runs on one (TensorRT, ONNX Runtime with CUDA) and otherwise for a share of the CPU
cores, with the ONNX Runtime threads and the memory budget split the same way. Workers open the
model and the input from the paths the driver was given: every node must see them (and the
work folder) at the same path. A worker process keeps its loaded model for its next segments.
A dead worker's task is retried once by Ray; a part that fails twice ends the run with one line
and the finished parts are kept.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Callable

from stvsr.runtime.pipeline import RunOptions, VideoJob
from stvsr.runtime.segments import Segment

MAX_RETRIES = 1          # a part is tried at most twice when its worker dies
CONNECT_TIMEOUT = 5.0    # seconds to reach a cluster address before giving up


class DistributedError(RuntimeError):
    """A Ray run that cannot start or a part that failed."""


class WorkerError(RuntimeError):
    """A worker that cannot open what it needs (raised on the worker, names its node)."""


def uses_gpu(model) -> bool:
    backend = model.backend
    if backend == "auto":
        backend = "tensorrt" if model.path.lower().endswith((".plan", ".engine", ".trt")) else "onnxruntime"
    return backend == "tensorrt" or any("CUDA" in p or "Tensorrt" in p for p in model.providers)


def check_reachable(address: str) -> None:
    """One line, quickly, when nothing listens at ``HOST:PORT`` (Ray itself waits much longer)."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise DistributedError(f"--ray {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise DistributedError(f"no Ray cluster at {address}: {exc.strerror or exc}") from None


def _start(address: str | None, cpus: int) -> bool:
    """Connect to (or start) Ray; True when this call started it (and must shut it down)."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    if address:
        if address != "auto":
            check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as exc:
            raise DistributedError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())[:200]}") \
                from None
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    return True


_BACKENDS: dict = {}


def _backend(model):
    """The model, opened once per worker process (Ray reuses workers for later tasks)."""
    from stvsr.runtime.backends import open_backend

    key = dataclasses.astuple(model)
    if key not in _BACKENDS:
        for old in _BACKENDS.values():
            old.close()
        _BACKENDS.clear()
        _BACKENDS[key] = open_backend(model.path, model.backend, list(model.providers), model.threads)
    return _BACKENDS[key]


def segment_task(model, job: VideoJob, segment: Segment, options: RunOptions, part: str) -> tuple[int, str, str]:
    """Body of one Ray task: (segment index, part sha256, node name)."""
    from stvsr.runtime.driver import run_part

    node = socket.gethostname()
    for path, what in ((model.path, "the model"), (job.input_path, "the input")):
        if not os.access(path, os.R_OK):
            raise WorkerError(f"node {node}: cannot open {what} {path} (every node must see it at this path)")
    folder = Path(part).parent
    if not os.access(folder, os.W_OK):
        raise WorkerError(f"node {node}: cannot write the work folder {folder} (every node must see it at this path)")
    return segment.index, run_part(_backend(model), job, segment, options, Path(part)), node


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None and not isinstance(cause, type(exc)):
        exc = cause
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if isinstance(exc, Exception) and lines else str(exc)
    return " ".join(text.split())[:300] or type(exc).__name__


def run_segments(job: VideoJob, todo: list[Segment], model, options: RunOptions, long, work,
                 progress: Callable[[int], None], say: Callable[[str], None]) -> None:
    """Compute ``todo`` as Ray tasks; record every finished part in ``work`` as it arrives."""
    try:
        import ray
    except ImportError:
        raise DistributedError("--workers and --ray need Ray: pip install -e \".[ray]\" (or pip install \"ray>=2.40\")") \
            from None

    workers = max(1, long.workers)
    local_cpus = os.cpu_count() or 1
    started = _start(long.ray or None, max(local_cpus, workers))
    refs: dict = {}
    try:
        gpu = uses_gpu(model)
        total_cpus = int(ray.cluster_resources().get("CPU", local_cpus))
        cores = max(1, total_cpus // workers)
        if gpu:
            resources = {"num_gpus": 1, "num_cpus": 1}
            task_model, task_opts = model, options
        else:
            resources = {"num_cpus": cores}
            task_model = dataclasses.replace(model, threads=model.threads or cores)
            budget = options.max_memory // workers if options.max_memory and not long.ray else options.max_memory
            task_opts = dataclasses.replace(options, max_memory=budget)
        say(f"ray: {len(todo)} part(s) as tasks of {'1 GPU' if gpu else f'{cores} CPU core(s)'} each "
            f"({int(ray.cluster_resources().get('GPU' if gpu else 'CPU', 0))} in the cluster)")
        remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(segment_task)
        job_ref = ray.put(job)
        for seg in todo:
            ref = remote.options(**resources).remote(task_model, job_ref, seg, task_opts, str(work.part_path(seg.index)))
            refs[ref] = seg
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            for ref in done:
                seg = refs.pop(ref)
                try:
                    index, sha, node = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise DistributedError(f"part {seg.index} failed: {_reason(exc)}") from None
                except ray.exceptions.RayError as exc:
                    raise DistributedError(f"part {seg.index} failed twice ({type(exc).__name__}: "
                                           f"{_reason(exc)[:150]}); finished parts are kept for a rerun") from None
                if not work.part_path(index).is_file():
                    raise DistributedError(f"node {node} wrote {work.part_path(index)}, which this machine does not see: "
                                           "the work folder must be on a path every node shares")
                work.record(index, sha)
                progress(len(seg.windows))
    finally:
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        if started:
            ray.shutdown()
