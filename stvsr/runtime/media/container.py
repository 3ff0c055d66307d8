"""Containers: opening an input (``open_video``, one-line ``VideoError``), what a muxer can hold and
which muxer an output name gets (``container_format``, the parts' container ``part_suffix``), whether a
file of a muxer and codec decodes again (``unreadable``: a one-frame trial), the
encoder settings stvsr-run refuses before anything opens (``check_encoder``), and the versions of
PyAV and FFmpeg's libraries (``library_versions``)."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")  # libx264 and libx265 know the same names
# Muxers for which FFmpeg cannot say whether they hold a codec (no codec tag table): the codecs their
# demuxer recognises again. Anything else is written as private data, which is read back as a data stream.
KNOWN_CODECS = {"mpegts": frozenset({
    "mpeg1video", "mpeg2video", "mpeg4", "h264", "hevc", "vvc", "cavs", "dirac", "vc1", "av1",
    "mp1", "mp2", "mp3", "aac", "aac_latm", "ac3", "eac3", "dts", "truehd", "opus", "s302m",
    "dvb_subtitle", "dvb_teletext", "arib_caption"})}
FORMAT_NAMES = {"mp4": "an MP4", "mov": "a MOV", "matroska": "a Matroska", "webm": "a WebM", "mpegts": "an MPEG-TS",
                "avi": "an AVI"}
# Containers whose files give back, on reading, the encoder's timestamps (MP4/MOV store decoding and
# presentation times exactly; Matroska/WebM store presentation times in the milliseconds their output
# holds too) and every stream field the output itself can hold: parts are written in these directly.
SAME_CONTAINER_PARTS = (".mp4", ".m4v", ".mov", ".mkv", ".webm")
PART_CONTAINER = ".nut"   # every other output (MPEG-TS, AVI, ...): parts in NUT, exact timestamps


class VideoError(ValueError):
    """A file that cannot be read as a video."""


def _not_a_file(path: str) -> str:
    """Why ``path`` is no video file: missing, a folder, or a pipe or device (read more than once:
    probed, scanned for cuts, decoded, by segments from their own start, so it must be a file)."""
    from stvsr.outfile import not_regular

    kind = not_regular(path)
    if kind is None:
        return "a broken symbolic link" if os.path.islink(path) else "no such file"
    if kind == "a folder":
        return "a folder, not a video file"
    return (f"{kind}, not a regular file: stvsr reads its input several times and seeks in it; "
            "save the stream to a file first")


def open_video(path: str | os.PathLike):
    """Open ``path`` with PyAV and return ``(container, video_stream)``; one-line errors otherwise."""
    import av

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"{path}: {_not_a_file(path)}")
    try:
        container = av.open(path)
    except Exception as exc:
        raise VideoError(f"{path}: not a readable video ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def check_encoder(codec: str, pix_fmt: str, preset: str | None) -> None:
    """Refuse an unknown encoder, pixel format or x264/x265 preset with one line, before opening anything
    (``auto``: chosen later from the input, see ``colour.plan_output``)."""
    import av

    try:
        info = av.Codec(codec, "w")
    except Exception:
        raise VideoError(f"unknown video encoder {codec!r} (not in this FFmpeg build)") from None
    if info.type != "video":
        raise VideoError(f"{codec!r} is not a video encoder")
    try:
        if pix_fmt != "auto":
            av.VideoFormat(pix_fmt)
    except Exception:
        raise VideoError(f"unknown pixel format {pix_fmt!r}") from None
    formats = [f.name for f in (info.video_formats or [])]
    if formats and pix_fmt != "auto" and pix_fmt not in formats:
        raise VideoError(f"the {codec} encoder does not take pixel format {pix_fmt} (it takes {', '.join(formats)})")
    if preset and codec in ("libx264", "libx265") and preset not in X264_PRESETS:
        raise VideoError(f"unknown {codec} preset {preset!r} (one of {', '.join(X264_PRESETS)})")


def format_name(out_container) -> str:
    return out_container.format.name.split(",")[0]


def refuses(muxer: str, codec: str) -> bool:
    """True when muxer ``muxer`` would write ``codec`` in a form its own demuxer does not read back."""
    known = KNOWN_CODECS.get(muxer)
    return known is not None and codec not in known


TRIAL_SIZE = 64   # pixels: the one-frame trials of encoders and containers
QUIET_OPTIONS = {"libx265": {"x265-params": "log-level=error"}}   # x265 writes its banner to stderr itself


def error_text(exc: BaseException) -> str:
    """An FFmpeg (or OS) error as a short line for a one-line message."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(text.split())[:200] or type(exc).__name__


def trial_file(codec: str, muxer: str | None, suffix: str, first_frame: Callable) -> tuple[bool, object, str | None]:
    """One ``TRIAL_SIZE`` square frame of ``codec`` written into a temporary file of ``muxer`` (None: the
    muxer FFmpeg picks for ``suffix``, as ``VideoWriter``) and decoded from it: ``(written, the frame read
    back or None, why reading failed or None)``. ``first_frame(stream)`` sets the new stream's encoder up
    and returns the frame to encode."""
    import tempfile

    import av

    with tempfile.TemporaryDirectory(prefix="stvsr-trial-") as folder:
        path = os.path.join(folder, f"trial{suffix}")
        try:
            with av.open(path, "w", format=muxer or container_format(path)) as out:
                stream = out.add_stream(codec, rate=25, options=QUIET_OPTIONS.get(codec, {}))
                stream.width = stream.height = TRIAL_SIZE
                frame = first_frame(stream)
                for packet in stream.encode(frame) + stream.encode(None):
                    out.mux(packet)
        except Exception:  # noqa: BLE001 - no trial
            return False, None, None
        try:
            with av.open(path) as back:
                return True, next(back.decode(video=0), None), None
        except Exception as exc:  # noqa: BLE001 - any reading error is the answer
            return True, None, error_text(exc)


@functools.lru_cache(maxsize=None)
def unreadable(muxer: str, codec: str, pix_fmt: str) -> str | None:
    """Why a ``muxer`` file holding ``codec`` in ``pix_fmt`` does not decode again (e.g. Ut Video in
    MPEG-PS: no decoder for the stream; raw video in MOV: an invalid pixel format), found by a one-frame
    ``trial_file``; None when it decodes, or when the trial itself cannot be written (the real encode
    then says why). Cached per process."""
    import av

    def first_frame(stream):
        stream.pix_fmt = pix_fmt
        frame = av.VideoFrame(TRIAL_SIZE, TRIAL_SIZE, pix_fmt)
        frame.pts = 0
        return frame

    written, frame, why = trial_file(codec, muxer, "", first_frame)
    if not written:
        return None
    return why or (None if frame is not None else "no frame decodes")


def container_format(name: str) -> str | None:
    """The muxer for an output name: MP4 for .mp4/.m4v or no suffix, else FFmpeg's guess (as VideoWriter)."""
    return "mp4" if Path(name).suffix.lower() in ("", ".mp4", ".m4v") else None


def container_options(name: str | Path) -> dict[str, str]:
    """Muxer options for an output name: NUT (the parts' container) keeps negative decoding times as
    they are, so its presentation times are the encoder's (by default the first part's would shift)."""
    return {"avoid_negative_ts": "disabled"} if Path(name).suffix.lower() == PART_CONTAINER else {}


def part_suffix(output: str | Path) -> str:
    """The suffix (container) of the parts of a segmented run into ``output``."""
    suffix = Path(output).suffix.lower()
    if suffix == "":
        return ".mp4"
    return suffix if suffix in SAME_CONTAINER_PARTS else PART_CONTAINER


def library_versions() -> str:
    """``PyAV 18.1.0, libavcodec 61.19.101``: what decodes and encodes here (a segmented run's key)."""
    import av

    return f"PyAV {av.__version__}, libavcodec {'.'.join(map(str, av.library_versions.get('libavcodec', ())))}"
