"""One segment of a long job, shared by the driver (segments one after another here) and the Ray
layer (segments as tasks on workers): how a worker opens the model (``ModelSource``), what one
segment computes (``run_part``: ``upscale_video`` over the segment's windows into its part file)
and which failures the same command gets past when run again (``rerun_can_fix``)."""
from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from stvsr import cli_signals
from stvsr.runtime.backends.base import Backend
from stvsr.runtime.jobs.workdir import PartOutput, file_sha256, fsync_file
from stvsr.runtime.onepass import RunOptions, upscale_video
from stvsr.runtime.planning.job import VideoJob
from stvsr.runtime.planning.segments import Segment


@dataclass
class ModelSource:
    """How a worker opens the model itself (``open_backend`` arguments)."""
    path: str
    backend: str = "auto"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: int = 0


def run_part(backend: Backend, job: VideoJob, segment: Segment, options: RunOptions, part: Path,
             progress: Callable[[int], None] | None = None) -> str:
    """Compute ``segment`` into ``part`` (encoded under its fixed temporary name, renamed into place only
    when complete; fsynced); its sha256."""
    out = PartOutput(part, [job.input_path])
    upscale_video(backend, job.input_path, out, options, (lambda windows: progress) if progress else None,
                  job=job, segment=segment)
    fsync_file(part)
    return file_sha256(part)


_TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT,
              errno.ECONNRESET, errno.ECONNREFUSED, errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH,
              errno.ESTALE}


def rerun_can_fix(exc: BaseException) -> bool:
    """A stop the same command can get past: a signal, memory or disk space running out, a lost
    worker or connection (``exc.resumable``). Not: bad input, a join that cannot work, a bug."""
    if isinstance(exc, (KeyboardInterrupt, MemoryError)) or cli_signals.active().signal_of(exc) is not None:
        return True
    return bool(getattr(exc, "resumable", False)) or (isinstance(exc, OSError) and exc.errno in _TRANSIENT)
