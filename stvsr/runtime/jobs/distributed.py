"""Segments as Ray tasks (``--workers N``, ``--ray [ADDRESS]``); Ray is imported only here.

Without an address Ray starts on this machine; ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``
joins a running cluster. Before the model loads (``preflight``) Ray must import and an address
must answer like Ray (a gRPC server; an HTTP server or a closed port is one line in seconds); a
wrong token fails at the cluster's first answer. Ray's own log lines are kept off the terminal
while it starts, connects and stops (unless ``verbose``), and stvsr's signal handlers are taken
back from ``ray.init``, so SIGTERM ends a Ray run like any other (143, one line, a local Ray shut
down). Each task computes one segment into the shared work folder (the part's file is renamed
into place when complete) and returns its checksum; the driver records it in the manifest as it
arrives, so a resume works as without Ray. A task asks for one GPU when the backend runs on one
(TensorRT, ONNX Runtime with CUDA) and otherwise for a share of the CPU cores, with the ONNX
Runtime threads and the memory budget split the same way; ``--workers`` above the cluster's GPUs
or cores is capped at them. Workers open the model and the input at absolute paths (resolved by
the driver): every node must see them (and the work folder) at the same path. A worker process
keeps its loaded model for its next segments. A dead worker's task is retried once by Ray; a part
that fails twice ends the run with one line and the finished parts are kept.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

from stvsr import cli_signals
from stvsr.outfile import deferred_signals
from stvsr.runtime.onepass import RunOptions
from stvsr.runtime.planning.job import VideoJob
from stvsr.runtime.planning.segments import Segment
from stvsr.runtime.jobs.workdir import input_identity, resolved

MAX_RETRIES = 1          # a part is tried at most twice when its worker dies
CONNECT_TIMEOUT = 5.0    # seconds to reach a cluster address (and hear it answer) before giving up
GCS_TIMEOUT = 15.0       # seconds for the cluster's GCS to answer a first request
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
_SESSION = "STVSR_RAY_SESSION"   # set in the processes of a local Ray start (see _start)
_NEEDS_RAY = "--workers and --ray need Ray: pip install -e \".[ray]\" (or pip install \"ray>=2.40\")"


def _import_ray():
    """Ray, imported without its C++ crash handler in this process (``RAY_DISABLE_FAILURE_SIGNAL_HANDLER``,
    read when Ray's core library loads; Ray's own processes keep theirs): that handler owns SIGTERM at
    the OS level and, when Ray shuts down, sets it back to the default action behind Python's back, so
    a SIGTERM then killed stvsr-run outright (no line; the lock, a temporary file and Ray's agents left)."""
    if "ray" in sys.modules:
        import ray

        return ray
    before = os.environ.get("RAY_DISABLE_FAILURE_SIGNAL_HANDLER")
    os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = "1"
    try:
        import ray
    finally:
        if before is None:
            os.environ.pop("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", None)
        else:
            os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = before
    return ray


class DistributedError(RuntimeError):
    """A Ray run that cannot start or a part that failed; ``resumable``: the same command can get past it
    (a lost worker or connection)."""

    def __init__(self, message: str, resumable: bool = False):
        super().__init__(message)
        self.resumable = resumable


class WorkerError(RuntimeError):
    """A worker that cannot open what it needs (raised on the worker, names its node)."""


def uses_gpu(model) -> bool:
    backend = model.backend
    if backend == "auto":
        backend = "tensorrt" if model.path.lower().endswith((".plan", ".engine", ".trt")) else "onnxruntime"
    return backend == "tensorrt" or any("CUDA" in p or "Tensorrt" in p for p in model.providers)


def preflight(long) -> None:
    """What a Ray run needs, checked in seconds before the model loads: Ray importable, and a cluster
    address that answers like Ray (its GCS, with this machine's token)."""
    try:
        _import_ray()
    except ImportError:
        raise DistributedError(_NEEDS_RAY) from None
    if long.ray not in (None, "", "local", "auto"):
        check_reachable(long.ray)
        if not long.ray.startswith("ray://"):
            with _ray_log(long.verbose):
                _check_gcs(long.ray)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    try:
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:  # a timeout or a reset: what came so far
        pass
    return data


def check_reachable(address: str) -> None:
    """One line, quickly, when nothing listens at ``HOST:PORT`` or what answers is not Ray: Ray's GCS
    and client server speak gRPC, so they answer an HTTP/2 preface with a SETTINGS frame."""
    client = address.startswith("ray://")
    target = address[len("ray://"):] if client else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise DistributedError(f"--ray {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT) as sock:
            sock.sendall(_H2_PREFACE)
            reply = _receive(sock, 9)
    except OSError as exc:
        raise DistributedError(f"no Ray cluster at {address}: {exc.strerror or exc}") from None
    if len(reply) == 9 and reply[3] == 4:   # an HTTP/2 SETTINGS frame: a gRPC server
        return
    hint = ("not a Ray client port (give ray://HEAD:10001 unless ray start --ray-client-server-port said "
            "otherwise)" if client else "not a Ray GCS port (give the cluster's GCS address, HEAD:6379 unless ray "
            "start --port said otherwise)")
    what = "answers HTTP, not Ray" if reply[:5] == b"HTTP/" or reply.lstrip()[:1] == b"<" else \
        "does not answer like Ray (no gRPC reply)"
    raise DistributedError(f"--ray {address} {what}: {hint}")


def _check_gcs(address: str) -> None:
    """Ask the GCS at ``address`` for its cluster id (Ray's own client, in a thread so signals still
    stop the command): a wrong token fails here at once, where ``ray.init`` retries for 20 s."""
    try:
        from ray._raylet import GcsClient
    except ImportError:   # another Ray version: ray.init says what is wrong, later
        return
    failed: list[BaseException] = []

    def ask() -> None:
        try:
            GcsClient(address=address)
        except Exception as exc:  # noqa: BLE001 - examined below
            failed.append(exc)

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(GCS_TIMEOUT)
    if asking.is_alive():
        raise DistributedError(f"--ray {address}: no answer from a Ray GCS within {GCS_TIMEOUT:.0f} s")
    if failed:
        text = f"{type(failed[0]).__name__}: {failed[0]}"
        if "auth" in text.lower():
            raise DistributedError(f"cannot join the Ray cluster at {address}: authentication failed (the cluster "
                                   "uses token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, or "
                                   "~/.ray/auth_token, to the cluster's token)")
        if getattr(failed[0], "rpc_code", None) == 12:   # UNIMPLEMENTED: an HTTP/2 or gRPC server, not the GCS
            raise DistributedError(f"--ray {address} answers HTTP/2 but not as Ray's GCS: not a Ray GCS port (give "
                                   "HEAD:6379 unless ray start --port said otherwise; a Ray client port as "
                                   "ray://HEAD:10001)")


@contextlib.contextmanager
def _ray_log(verbose: bool) -> Iterator[Callable[[], str]]:
    """Ray's own log lines (its C++ core and Python loggers write to file descriptor 2) go to a
    temporary file while Ray starts, connects or shuts down, unless ``verbose``; yields a reader of it."""
    if verbose:
        yield lambda: ""
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)

        def read() -> str:
            log.seek(0)
            return log.read()[-20000:].decode("utf-8", "replace")

        try:
            yield read
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)


def _start(address: str | None, cpus: int, verbose: bool = False) -> Callable[[], None] | None:
    """Connect to (or start) Ray; returns how to stop what this call started (None: Ray was up already).

    Ray's ``init`` sets its own SIGTERM handler: stvsr's handlers are taken back (``cli_signals``)
    and a SIGTERM that Ray's handler caught meanwhile becomes the usual ``Interrupted``. The
    processes a local start makes inherit a variable naming this start (``_SESSION``), so stopping
    ends every one of them and their descendants, also those of an ``init`` that a signal cut short
    (``ray.shutdown`` does not know those)."""
    import logging

    ray = _import_ray()
    if ray.is_initialized():
        return None
    token = None if address else uuid.uuid4().hex
    level = logging.INFO if verbose else logging.ERROR

    def stop() -> None:
        with _ray_log(verbose), deferred_signals():   # a second signal does not cut the shutdown short
            started = _session_processes(token) if token else []   # before the shutdown orphans Ray's agents
            _shutdown(ray)
            if token:
                _end_processes(token, started)

    with _ray_log(verbose) as log:
        try:
            if token:
                os.environ[_SESSION] = token
                # "local": a new Ray here, never the cluster a `ray start` on this machine left on record
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=level,
                         log_to_driver=verbose)
            else:
                ray.init(address=address, logging_level=level, log_to_driver=verbose)
            cli_signals.active().reclaim()
        except BaseException as exc:
            cli_signals.active().reclaim()
            stop()
            if isinstance(exc, SystemExit) and exc.code == signal.SIGTERM:
                raise cli_signals.Interrupted(signal.SIGTERM) from None
            if not isinstance(exc, Exception) or isinstance(exc, DistributedError):
                raise
            found = (f"{type(exc).__name__}: {exc} " + log()).lower()
            if "authenticat" in found or "auth token" in found:
                reason = "authentication failed (set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's token)"
            else:
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise DistributedError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                                   f"{reason}") from None
        finally:
            os.environ.pop(_SESSION, None)
    return stop


def _shutdown(ray) -> None:
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - a half-started Ray: nothing more to stop
        pass


Process = tuple[int, int]   # (pid, start time in clock ticks since boot): a pid the system reuses is not it


def _session_processes(token: str) -> list[Process]:
    """This user's live processes (not this one) whose environment holds ``_SESSION=token``, and their
    descendants: Ray's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) write their process
    title over their environment, so only their parent (the raylet) tells them apart."""
    mark, marked, stats = f"{_SESSION}={token}".encode(), set(), {}
    for entry in Path("/proc").iterdir() if os.path.isdir("/proc") else ():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                if fields[0] == b"Z":   # a zombie has ended
                    continue
                stats[int(entry.name)] = (int(fields[1]), int(fields[19]))   # parent, start time
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    marked.add(int(entry.name))
            except (OSError, IndexError, ValueError):   # gone, or another user's
                continue
    found = set(marked)
    while True:
        more = {pid for pid, (parent, _) in stats.items() if parent in found} - found
        if not more:
            return [(pid, stats[pid][1]) for pid in sorted(found) if pid in stats]
        found |= more


def _end_processes(token: str, known: list[Process] = (), grace: float = 3.0) -> None:
    """SIGTERM the processes of a local start that are still there (those found now and the ``known``
    ones found before Ray's shutdown orphaned them), then SIGKILL what outlives ``grace``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = [p for p in {*known, *_session_processes(token)} if _alive(p)]
        for pid, _ in procs:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while procs and time.monotonic() < deadline:
            time.sleep(0.05)
            procs = [p for p in procs if _alive(p)]
        if not procs:
            return


def _alive(process: Process) -> bool:
    """Whether the process is still running (not a zombie, and its pid not reused since)."""
    pid, started = process
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0] != b"Z" and int(fields[19]) == started
    except (OSError, IndexError, ValueError):
        return False


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


def segment_task(model, job: VideoJob, segment: Segment, options: RunOptions, part: str,
                 identity: dict | None = None) -> tuple[int, str, str]:
    """Body of one Ray task: (segment index, part sha256, node name). ``identity``: the input's, as the
    driver planned from it (a replaced input is refused, not mixed in)."""
    from stvsr.runtime.jobs.part import run_part

    node = socket.gethostname()
    for path, what in ((model.path, "the model"), (job.input_path, "the input")):
        if not os.access(path, os.R_OK):
            raise WorkerError(f"node {node}: cannot open {what} {path} (every node must see it at this path)")
    folder = Path(part).parent
    if not os.access(folder, os.W_OK):
        raise WorkerError(f"node {node}: cannot write the work folder {folder} (every node must see it at this path)")
    if identity is not None and input_identity(job.input_path) != identity:
        raise WorkerError(f"node {node}: the input {job.input_path} changed during the run")
    return segment.index, run_part(_backend(model), job, segment, options, Path(part)), node


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None and not isinstance(cause, type(exc)):
        exc = cause
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if isinstance(exc, Exception) and lines else str(exc)
    return " ".join(text.split())[:300] or type(exc).__name__


def run_segments(job: VideoJob, todo: list[Segment], model, options: RunOptions, long, work,
                 progress: Callable[[int], None], say: Callable[[str], None],
                 check: Callable[[], None] = lambda: None) -> None:
    """Compute ``todo`` as Ray tasks; record every finished part in ``work`` as it arrives. ``check``
    (the input unchanged, no output meanwhile) runs before the tasks start and as each part arrives.
    Ray is started (or joined) here unless the caller already did, and then shut down here."""
    try:
        ray = _import_ray()
    except ImportError:
        raise DistributedError(_NEEDS_RAY) from None

    # workers may run elsewhere (another node, another working folder): absolute paths
    job = dataclasses.replace(job, input_path=str(resolved(job.input_path)))
    model = dataclasses.replace(model, path=str(resolved(model.path)))
    quiet = long.verbose or ray.is_initialized()   # a caller's own Ray keeps its own settings
    with contextlib.nullcontext() if quiet else _driver_messages_off():
        stop = _start(long.ray or None, os.cpu_count() or 1, long.verbose)
        try:
            _run_tasks(ray, job, todo, model, options, long, work, progress, say, check)
        finally:
            # Tasks still running end with this driver: ray.shutdown stops a local Ray's workers, and a
            # cluster ends a job's tasks when its driver leaves. (ray.cancel(force=True) here raced with
            # their replies: Ray 2.60's driver then failed "Tried to complete task that was not pending"
            # and exited 1 at once, saying nothing, the lock and Ray's processes left.)
            if stop is not None:
                stop()


@contextlib.contextmanager
def _driver_messages_off() -> Iterator[None]:
    """Ray's driver prints its cluster's error messages (``(raylet) A worker died ...``) to stdout from a
    thread of its own; while this is entered they are dropped (stvsr says what failed, in one line)."""
    try:
        from ray._private import worker as ray_worker
        original = ray_worker.print_to_stdstream
    except (ImportError, AttributeError):   # another Ray version: its messages are printed
        yield
        return
    ray_worker.print_to_stdstream = lambda data, ignore_prefix: None
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = original


def _run_tasks(ray, job: VideoJob, todo: list[Segment], model, options: RunOptions, long, work,
               progress: Callable[[int], None], say: Callable[[str], None], check: Callable[[], None]) -> None:
    """Size the tasks to the cluster (``--workers`` capped at its GPUs or cores), submit them and record
    each part as it arrives."""
    from stvsr.runtime.jobs.part import rerun_can_fix

    gpu = uses_gpu(model)
    unit = "GPU" if gpu else "CPU"
    have = int(ray.cluster_resources().get(unit, 0))
    if have < 1:
        raise DistributedError(f"the Ray cluster has no {unit}, and the model's backend runs on "
                               f"{'a GPU' if gpu else 'CPU cores'}")
    workers = max(1, long.workers)
    if workers > have:
        say(f"ray: --workers {workers} capped at {have}: the cluster has {have} {'GPU(s)' if gpu else 'CPU core(s)'}")
        workers = have
    cores = max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)) // workers)
    if gpu:
        resources = {"num_gpus": 1, "num_cpus": 1}
        task_model, task_opts = model, options
    else:
        resources = {"num_cpus": cores}
        task_model = dataclasses.replace(model, threads=model.threads or cores)
        budget = options.max_memory // workers if options.max_memory and not long.ray else options.max_memory
        task_opts = dataclasses.replace(options, max_memory=budget)
    say(f"ray: {len(todo)} part(s) as tasks of {'1 GPU' if gpu else f'{cores} CPU core(s)'} each "
        f"({have} in the cluster)")
    check()
    remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(segment_task)
    job_ref = ray.put(job)
    refs: dict = {}
    for seg in todo:
        ref = remote.options(**resources).remote(task_model, job_ref, seg, task_opts, str(work.part_path(seg.index)),
                                                 work.key["input"])
        refs[ref] = seg
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
        for ref in done:
            seg = refs.pop(ref)
            try:
                index, sha, node = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                raise DistributedError(f"part {seg.index} failed: {_reason(exc)}",
                                       cause is not None and rerun_can_fix(cause)) from None
            except ray.exceptions.RayError as exc:
                raise DistributedError(f"part {seg.index} failed twice ({type(exc).__name__}: "
                                       f"{_reason(exc)[:150]})", resumable=True) from None
            if not work.part_path(index).is_file():
                raise DistributedError(f"node {node} wrote {work.part_path(index)}, which this machine does not "
                                       "see: the work folder must be on a path every node shares")
            work.record(index, sha)
            progress(len(seg.windows))
            check()
