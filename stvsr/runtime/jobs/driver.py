"""The segment driver: one pass for a short video, else segments encoded to parts in a work folder
(resumable), computed here one after another or as Ray tasks, then joined by stream copy.

Data flows one way: plan the whole video once (``plan_video``), split it (``segments.split``),
skip the parts the work folder already holds, compute the rest (``part.run_part``: one
``upscale_video`` call per segment, here or as Ray tasks: ``distributed.run_segments``), join
(``media.join_parts``), commit the output.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from stvsr.outfile import OutputError, SafeOutput, check_output
from stvsr.runtime.backends.base import Backend
from stvsr.runtime.jobs.part import ModelSource, rerun_can_fix, run_part
from stvsr.runtime.jobs.workdir import WorkDir, claim, default_work_dir, file_sha256, input_identity
from stvsr.runtime.media import (JoinError, MediaInfo, OutputColour, count_decoded, join_parts, library_versions,
                                 part_suffix, probe)
from stvsr.runtime.onepass import RunOptions, RunReport, announce, output_colour, plan_video, run_writer, upscale_video
from stvsr.runtime.planning.job import VideoJob
from stvsr.runtime.planning.segments import Segment

DEFAULT_SEGMENT_FRAMES = 1000


@dataclass
class LongRunOptions:
    segment_frames: int | None = DEFAULT_SEGMENT_FRAMES   # input frames per segment (None: one pass)
    work_dir: str | None = None      # default: default_work_dir(output)
    keep_parts: bool = False
    workers: int = 1                 # more than 1, or ``ray`` set: segments run as Ray tasks
    ray: str | None = None           # None: no Ray unless workers > 1; "": start locally; "auto", "ray://h:p", "h:p"
    verbose: bool = False            # Ray's own log lines on stderr

    @property
    def distributed(self) -> bool:
        return self.ray is not None or self.workers > 1


PART_FALLBACKS = (".mov", ".mkv")   # part containers tried when the output's own or NUT cannot be joined


def part_format(job: VideoJob, options: RunOptions, segments: list[Segment], output: str
                ) -> tuple[str, OutputColour, Fraction]:
    """The suffix (so the container) the parts are written in, their colour plan and their encoder's time
    base (what the join gives the output's muxer, as the one-pass writer does): ``join.part_suffix``
    (the output's where it reads back exact, else NUT) when a join trial (``check_join``) of it works,
    else the first of ``PART_FALLBACKS`` that does (ProRes into MXF: NUT cannot hold it, MOV can);
    ``JoinError`` when none does, before any window runs. One value, in the manifest key: parts of
    another format are never joined."""
    first = part_suffix(output)
    failures = []
    for fmt in (first,) + tuple(f for f in PART_FALLBACKS if f != first):
        colour = output_colour(job, options, f"part{fmt}")
        try:
            time_base = check_join(job, options, segments, fmt, output, colour)
        except JoinError as exc:
            failures.append(str(exc))
            continue
        return fmt, colour, time_base
    raise JoinError(f"{failures[0]}; run in one pass (--segment-frames above the video's frame count) or choose "
                    "another --codec or output container")


def pixel_options(options: RunOptions, job: VideoJob, long: LongRunOptions) -> dict:
    """Every option that changes the parts' pixels or timing (new RunOptions fields included)."""
    opts = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("copy_streams", "max_memory")}
    opts.update(factor=job.factor, segment_frames=long.segment_frames, cuts=list(job.cuts))
    return {k: (str(v) if isinstance(v, Fraction) else v) for k, v in sorted(opts.items())}


def run_key(job: VideoJob, model: ModelSource, backend: Backend, options: RunOptions, long: LongRunOptions,
            segments: list[Segment], fmt: str) -> dict:
    """What the parts are computed from (``WorkDir``'s key): input, model, software, options with the
    part format ``fmt``, plan."""
    from stvsr import __version__

    return {"input": input_identity(job.input_path), "model": file_sha256(model.path),
            "backend": type(backend).__name__, "software": f"stvsr {__version__}, {library_versions()}",
            "options": {**pixel_options(options, job, long), "part_format": fmt},
            "plan": [[s.out_start, s.out_end, s.first_frame, s.last_frame] for s in segments]}


class InputChangedError(RuntimeError):
    """The input was replaced or changed while its parts were computed."""


class RunChecks:
    """What must still hold before each segment and before the join: the input is the file the run
    was planned from (same file, size, modification time, first and last MiB), and the output was
    not created meanwhile (without --overwrite)."""

    def __init__(self, job: VideoJob, identity: dict, out: SafeOutput):
        st = os.stat(job.input_path)
        self.path, self.identity, self.out, self.file = job.input_path, identity, out, (st.st_dev, st.st_ino)

    def __call__(self) -> None:
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self.file and input_identity(self.path) == self.identity
        except OSError:
            same = False
        if not same:
            raise InputChangedError(f"the input {self.path} changed during the run (it was replaced, or its size, "
                                    "modification time or content changed)")
        check_output(self.out.path, self.out.inputs, self.out.overwrite)


def note_kept_parts(exc: BaseException, work: WorkDir, segments: list[Segment], out: SafeOutput) -> None:
    """Set ``exc.resume_note`` when a segmented run stopped with finished parts in its work folder:
    ``3 of 8 parts are kept in DIR``, then ``: run the same command again to resume`` only when that
    can succeed (``: run the same command with -y to resume`` when the output appeared meanwhile).
    The command's final line (``stvsr.runtime.cli``) ends with it."""
    kept = sum(work.finished(s.index) is not None for s in segments)
    note = (f"{kept} of {len(segments)} part{'s' * (len(segments) != 1)} {'is' if kept == 1 else 'are'} "
            f"kept in {work.path}")
    if isinstance(exc, OutputError) and not out.overwrite and os.path.lexists(out.path):
        note += ": run the same command with -y to resume"
    elif rerun_can_fix(exc):
        note += ": run the same command again to resume"
    try:
        exc.resume_note = note
    except (AttributeError, TypeError):  # an exception type without attributes: no note
        pass


TRIAL_FRAMES = 4   # per trial part (x265 gave 1- and 2-frame streams garbage decoding times, intermittently)


def check_join(job: VideoJob, options: RunOptions, segments: list[Segment], fmt: str, name: str,
               colour: OutputColour) -> Fraction:
    """Before any window runs: the first frames (``TRIAL_FRAMES``, black) of each of the first two
    segments, encoded into parts as the run writes them (``fmt``) and joined into the output's
    container (``name``), decode again; else ``JoinError`` in one line (a join that cannot work fails
    before the compute, not after it). Returns the parts' encoder time base (a standard-rate codec's is
    one frame, whatever the input's times). The trial files live in a temporary folder of their own."""
    import tempfile

    import numpy as np

    black = np.zeros((job.out_size[0], job.out_size[1], 3), np.uint8)
    why, time_base = None, job.time_base
    with tempfile.TemporaryDirectory(prefix="stvsr-join-trial-") as folder:
        try:
            parts, count = [], 0
            for seg in segments[:2]:
                part = os.path.join(folder, f"part-{seg.index:05d}{fmt}")
                writer = run_writer(job, options, part, part, colour, seg)
                time_base = Fraction(writer.stream.codec_context.time_base)
                try:
                    for _ in range(min(seg.outputs, TRIAL_FRAMES)):
                        writer.write(black)
                    count += writer.count
                    writer.finish()
                finally:
                    writer.close()
                parts.append(part)
            joined = os.path.join(folder, "joined" + os.path.splitext(str(name))[1])
            join_parts(parts, joined, str(name), count, time_base=time_base, rate=job.fps_out)
            decoded = count_decoded(joined)
            if decoded != count:
                why = f"{decoded} of {count} frames decode"
        except Exception as exc:  # the encoder itself was tried when the run was planned: the join failed
            why = " ".join(str(exc).split()) or type(exc).__name__
    if why is not None:
        raise JoinError(f"{options.codec} parts ({fmt}) cannot be joined into {name} by stream copy ({why})")
    return time_base


def check_long_options(long: LongRunOptions) -> None:
    """What can be refused in seconds, before the model loads and before planning (cut detection takes
    minutes on a film): a --work-dir stvsr may not use or another run holds; for Ray, Ray importable
    and a cluster address that answers like Ray."""
    if long.work_dir:
        claim(long.work_dir)
    if long.distributed:
        from stvsr.runtime.jobs.distributed import preflight

        preflight(long)


def run_video(backend: Backend, model: ModelSource, input_path: str, out: SafeOutput, options: RunOptions,
              long: LongRunOptions, progress_factory: Callable[[int], Callable[[int], None]] | None = None,
              status: Callable[[str], None] | None = None, info: MediaInfo | None = None) -> RunReport:
    """Run ``input_path`` into ``out``: one pass when it is one segment and nothing asks for parts.
    ``info``: the input's ``media.probe``, where the caller has it (the CLI probes before the model
    loads); the file is then not probed again."""
    say = status or (lambda message: None)
    check_long_options(long)
    job = plan_video(backend, info if info is not None else probe(input_path), options, status)
    segments = job.segments(long.segment_frames)
    if len(segments) <= 1 and not long.distributed and long.work_dir is None and not long.keep_parts:
        return upscale_video(backend, input_path, out, options, progress_factory, status=status, job=job)
    start = time.perf_counter()
    info = job.info
    fmt, colour, time_base = part_format(job, options, segments, str(out.path))   # a join that cannot work: refused
    key = run_key(job, model, backend, options, long, segments, fmt)
    checks = RunChecks(job, key["input"], out)
    work = WorkDir(long.work_dir or default_work_dir(out.path), key, fmt, say,
                   {"input": input_path, "output": out.path, "model": model.path})
    done = False
    try:
        todo = [s for s in segments if work.finished(s.index) is None]
        announce(job, say, f" in {len(segments)} parts (work folder {work.path})")
        windows = sum(len(s.windows) for s in todo)
        if len(todo) < len(segments):
            say(f"resumed: {len(segments) - len(todo)} of {len(segments)} parts done, {windows} windows to compute")
        else:
            say(f"computing {len(segments)} parts, {windows} windows")
        if colour.note:
            say(f"colour: {colour.note}")   # the parts' plan (their container), said once
        progress = progress_factory(windows) if progress_factory else (lambda k: None)
        if long.distributed:
            from stvsr.runtime.jobs.distributed import run_segments

            run_segments(job, todo, model, options, long, work, progress, say, checks)
        else:
            for seg in todo:
                checks()
                work.record(seg.index, run_part(backend, job, seg, options, work.part_path(seg.index), progress))
        checks()
        tmp = out.create()
        parts = [str(work.finished(s.index)) for s in segments]
        if not join_parts(parts, tmp, str(out.path), job.total, input_path if options.copy_streams else None,
                          job.passthrough_span(), time_base=time_base,
                          rate=job.fps_out, say=say):
            raise RuntimeError("the join stopped before the end")
        out.commit()
        done = True
    except BaseException as exc:  # a signal or a failure: say what a rerun resumes from
        if any(work.finished(s.index) is not None for s in segments):
            note_kept_parts(exc, work, segments, out)
        else:
            work.remove()  # nothing to resume from: leave no work folder behind (only stvsr's files go)
        raise
    finally:
        out.discard()
        if done and not long.keep_parts:
            work.remove()  # the lock is held until this ends
        work.close()
    return RunReport(str(out.path), job.frames, job.total, job.factor, info.fps, job.fps_out,
                     (job.out_size[1], job.out_size[0]), time.perf_counter() - start, windows, info.variable_rate,
                     len(job.cuts))
