"""The segment driver: one pass for a short video, else segments encoded to parts in a work folder
(resumable), computed here one after another or as Ray tasks, then joined by stream copy.

Data flows one way: plan the whole video once (``plan_video``), split it (``segments.split``),
skip the parts the work folder already holds, compute the rest (``run_part``: one
``upscale_video`` call per segment), join (``join.join_parts``), commit the output.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

from stvsr.outfile import SafeOutput
from stvsr.runtime.backends.base import Backend
from stvsr.runtime.join import join_parts, part_suffix
from stvsr.runtime.pipeline import RunOptions, RunReport, VideoJob, announce, plan_video, upscale_video
from stvsr.runtime.segments import Segment
from stvsr.runtime.workdir import WorkDir, default_work_dir, file_sha256, fsync_file, input_identity

DEFAULT_SEGMENT_FRAMES = 1000


@dataclass
class ModelSource:
    """How a worker opens the model itself (``open_backend`` arguments)."""
    path: str
    backend: str = "auto"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: int = 0


@dataclass
class LongRunOptions:
    segment_frames: int | None = DEFAULT_SEGMENT_FRAMES   # input frames per segment (None: one pass)
    work_dir: str | None = None      # default: default_work_dir(output)
    keep_parts: bool = False
    workers: int = 1                 # more than 1, or ``ray`` set: segments run as Ray tasks
    ray: str | None = None           # None: no Ray unless workers > 1; "": start locally; "auto", "ray://h:p", "h:p"

    @property
    def distributed(self) -> bool:
        return self.ray is not None or self.workers > 1


def run_part(backend: Backend, job: VideoJob, segment: Segment, options: RunOptions, part: Path,
             progress: Callable[[int], None] | None = None) -> str:
    """Compute ``segment`` into ``part`` (renamed into place only when complete; fsynced); its sha256."""
    out = SafeOutput(part, [job.input_path], overwrite=True)
    upscale_video(backend, job.input_path, out, options, (lambda windows: progress) if progress else None,
                  job=job, segment=segment)
    fsync_file(part)
    return file_sha256(part)


def pixel_options(options: RunOptions, job: VideoJob, long: LongRunOptions) -> dict:
    """Every option that changes the parts' pixels or timing (new RunOptions fields included)."""
    opts = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("copy_streams", "max_memory")}
    opts.update(factor=job.factor, segment_frames=long.segment_frames, cuts=list(job.cuts))
    return {k: (str(v) if isinstance(v, Fraction) else v) for k, v in sorted(opts.items())}


def run_key(job: VideoJob, model: ModelSource, backend: Backend, options: RunOptions, long: LongRunOptions,
            segments: list[Segment]) -> dict:
    import av

    from stvsr import __version__

    return {"input": input_identity(job.input_path), "model": file_sha256(model.path),
            "backend": type(backend).__name__, "software": f"stvsr {__version__}, PyAV {av.__version__}, "
            f"libavcodec {'.'.join(map(str, av.library_versions.get('libavcodec', ())))}",
            "options": pixel_options(options, job, long),
            "plan": [[s.out_start, s.out_end, s.first_frame, s.last_frame] for s in segments]}


def note_kept_parts(exc: BaseException, work: WorkDir, segments: list[Segment]) -> None:
    """Set ``exc.resume_note`` (``3 of 8 parts are kept in DIR: run the same command again to resume``)
    when a segmented run stopped with finished parts in its work folder; the command's final line
    (``stvsr.runtime.cli``) ends with it."""
    kept = sum(work.finished(s.index) is not None for s in segments)
    if kept:
        note = (f"{kept} of {len(segments)} part{'s' * (len(segments) != 1)} {'is' if kept == 1 else 'are'} "
                f"kept in {work.path}: run the same command again to resume")
        try:
            exc.resume_note = note
        except (AttributeError, TypeError):  # an exception type without attributes: no note
            pass


def run_video(backend: Backend, model: ModelSource, input_path: str, out: SafeOutput, options: RunOptions,
              long: LongRunOptions, progress_factory: Callable[[int], Callable[[int], None]] | None = None,
              status: Callable[[str], None] | None = None) -> RunReport:
    """Run ``input_path`` into ``out``: one pass when it is one segment and nothing asks for parts."""
    say = status or (lambda message: None)
    if long.ray not in (None, "", "local", "auto"):  # a cluster address: fail in seconds, before any work
        from stvsr.runtime.distributed import check_reachable

        check_reachable(long.ray)
    job = plan_video(backend, input_path, options, status)
    segments = job.segments(long.segment_frames)
    if len(segments) <= 1 and not long.distributed and long.work_dir is None and not long.keep_parts:
        return upscale_video(backend, input_path, out, options, progress_factory, status=status, job=job)
    start = time.perf_counter()
    info = job.info
    folder = Path(long.work_dir) if long.work_dir else default_work_dir(out.path)
    work = WorkDir(folder, run_key(job, model, backend, options, long, segments), part_suffix(out.path), say)
    try:
        todo = [s for s in segments if work.finished(s.index) is None]
        announce(job, say, f" in {len(segments)} parts (work folder {folder})")
        windows = sum(len(s.windows) for s in todo)
        say(f"resumed: {len(segments) - len(todo)} of {len(segments)} parts done, {windows} windows to compute")
        progress = progress_factory(windows) if progress_factory else (lambda k: None)
        if long.distributed:
            from stvsr.runtime.distributed import run_segments

            run_segments(job, todo, model, options, long, work, progress, say)
        else:
            for seg in todo:
                work.record(seg.index, run_part(backend, job, seg, options, work.part_path(seg.index), progress))
        tmp = out.create()
        parts = [str(work.finished(s.index)) for s in segments]
        if not join_parts(parts, tmp, str(out.path), job.total, input_path if options.copy_streams else None,
                          job.passthrough_span(), time_base=job.time_base,
                          rate=job.fps_out, say=say):
            raise RuntimeError("the join stopped before the end")
        out.commit()
    except BaseException as exc:  # a signal or a failure: say what a rerun resumes from
        if any(work.finished(s.index) is not None for s in segments):
            note_kept_parts(exc, work, segments)
        else:
            work.remove()  # nothing to resume from: leave no work folder behind (only stvsr's files go)
        raise
    finally:
        out.discard()
        work.close()
    if not long.keep_parts:
        work.remove()
    return RunReport(str(out.path), job.frames, job.total, job.factor, info.fps, job.fps_out,
                     (job.out_size[1], job.out_size[0]), time.perf_counter() - start, windows, info.variable_rate,
                     len(job.cuts))
