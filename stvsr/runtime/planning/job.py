"""A whole video planned once: ``VideoJob`` holds what any run of it (one pass, or a segment on this
machine or a Ray worker) needs besides the model, and ``plan_job`` makes it from the probed input and
the model's metadata alone (a pure function: the cuts come resolved, ``shots.resolve_cuts``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

from stvsr.metadata import ModelMetadata
from stvsr.runtime.media import MediaInfo, output_timestamps
from stvsr.runtime.planning.segments import Segment, split
from stvsr.runtime.planning.windows import Window, plan


@dataclass
class VideoJob:
    """A whole video planned once (by the driver): what any segment run needs besides the backend."""
    input_path: str
    info: MediaInfo
    frames: int                     # input frames used (``--frames`` applied)
    windows: list[Window]
    times: list[float]
    factor: int
    outputs: int                    # model outputs per window
    total: int                      # output frames of the whole video
    out_size: tuple[int, int]       # (height, width)
    fps_out: Fraction
    timestamps: tuple[Fraction, list[int]] | None
    cuts: list[int] = field(default_factory=list)  # first frame of each shot after the first
    limited: bool = False           # --frames given: copied audio/subtitles end with the video in every case

    @property
    def time_base(self) -> Fraction:
        """The encoder's time base: the real timestamps', or one output frame at a constant rate."""
        return self.timestamps[0] if self.timestamps is not None else 1 / self.fps_out

    def segments(self, segment_frames: int | None) -> list[Segment]:
        return split(self.windows, self.total, segment_frames, self.cuts)

    def passthrough_span(self) -> tuple[Fraction, Fraction | None]:
        """The source span (seconds) whose audio and subtitles go with the output, a one-pass file
        or the join of its parts alike: from the first frame's time to the end of the used frames."""
        return self.info.start, video_end(self.info, self.frames, self.fps_out, self.limited)


def part_timestamps(job: VideoJob, seg: Segment, segment: Segment | None) -> tuple[Fraction, list[int]] | None:
    """The encoder's timestamps: the whole run's, or a segment's slice of them (constant rate: frame
    indices in ``1/fps_out``, which is what the encoder uses when it is given no timestamps)."""
    if segment is None:
        return job.timestamps
    if job.timestamps is None:
        return job.time_base, list(range(seg.out_start, seg.out_end))
    return job.timestamps[0], job.timestamps[1][seg.out_start:seg.out_end]


def _timestamps(info: MediaInfo, n: int, factor: int) -> tuple[Fraction, list[int]] | None:
    """Output times from the input's real presentation times (None: unknown, use a constant rate)."""
    if not info.pts or not info.time_base or len(info.pts) < n:
        return None
    return info.time_base / (factor + 1), output_timestamps(info.pts[:n], factor)


def video_end(info: MediaInfo, frames: int, fps_out: Fraction, limited: bool = False) -> Fraction | None:
    """Source time (s) where the output video of the first ``frames`` frames of ``info`` ends: its last frame's time plus one output frame. None when all frames are
    used and no frame limit was asked for (``limited``: ``--frames``; then the copied streams run
    to their own end, as in the input)."""
    if frames >= info.frames and not limited:
        return None
    frames = min(frames, info.frames)
    if info.pts and info.time_base and len(info.pts) >= frames:
        last = Fraction(info.pts[frames - 1]) * info.time_base
    else:
        last = Fraction(frames - 1) / info.fps
    return info.start + last + 1 / Fraction(fps_out)


def used_frames(info: MediaInfo, max_frames: int | None = None) -> int:
    """Input frames a run uses: all, or the first ``max_frames`` (``--frames``)."""
    return min(info.frames, max_frames) if max_frames else info.frames


def plan_job(info: MediaInfo, meta: ModelMetadata, factor: int | None = None, dense: bool = False,
             max_frames: int | None = None, max_factor: int | None = None, cuts: Sequence[int] = ()) -> VideoJob:
    """Every window of a run over ``info`` with the model ``meta`` (``windows.plan``), its output size,
    rate and timestamps. ``factor``: new frames per gap (None: the model's default); ``dense``: windows
    at every start; ``max_frames``: only the first frames; ``max_factor``: the largest factor the
    backend serves; ``cuts``: the first frame of every shot after the first."""
    n = used_frames(info, max_frames)
    windows, times, factor = plan(meta, n, factor, dense, max_factor, cuts)
    outputs = meta.output_count(len(times or [0.5]))
    return VideoJob(info.path, info, n, windows, times, factor, outputs, n + (n - 1) * factor,
                    (info.height * meta.scale, info.width * meta.scale), info.fps * (factor + 1),
                    _timestamps(info, n, factor), list(cuts), max_frames is not None)
