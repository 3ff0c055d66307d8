"""The input described once (``probe``): size, frame rate, frame count (by demuxing), presentation
times, colour (the first frame's pixel format, matrix, range, tags and HDR side data), rotation,
the other streams and the damage of a truncated or corrupt file."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from stvsr.runtime.media.colour import Picture, picture_of
from stvsr.runtime.media.container import VideoError, open_video
from stvsr.runtime.media.timing import display_matrix, is_variable_rate, presentation_pts

COLOUR_FIELDS = ("color_range", "colorspace", "color_primaries", "color_trc")


@dataclass
class MediaInfo:
    """One description of an input file (``probe``): its video stream's size, rate and frames, their
    presentation times, picture (pixel format, colour, HDR side data), rotation, the other streams, damage."""
    path: str
    width: int
    height: int
    fps: Fraction
    frames: int                     # counted from the demuxed packets
    colour: dict
    passthrough: int                # audio + subtitle streams
    time_base: Fraction | None = None
    pts: list[int] | None = None    # presentation times of the frames (time_base units, from 0); None: unknown
    display_matrix: list[int] | None = None  # rotation/flip side data (FFmpeg layout); None: identity
    start: Fraction = Fraction(0)   # source time (s) of the first presented frame: written at 0, streams shifted alike
    damage: str | None = None       # one warning line: truncated file or concealed decoding errors
    picture: Picture | None = None  # pixel format, matrix, range, tags, HDR side data (``colour.Picture``)

    @property
    def variable_rate(self) -> bool:
        return is_variable_rate(self.pts, self.time_base, self.fps)


def probe(path: str) -> MediaInfo:
    """Size, frame rate, frame count (by demuxing), timestamps, rotation, colour (the first frame's pixel
    format, matrix, range, tags and HDR side data) and damage of ``path``, from one open of the file."""
    container, stream = open_video(path)
    try:
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise VideoError(f"{path}: cannot determine the frame rate")
        cc = stream.codec_context
        colour = {f: getattr(cc, f, None) for f in COLOUR_FIELDS}
        width, height = cc.width, cc.height
        if not width or not height:
            raise VideoError(f"{path}: the video stream has no frame size")
        tail: list = []
        frames, packet_pts, matrix, hidden, picture = scan_stream(container, stream, tail)
        time_base = stream.time_base
        declared = declared_frames(stream, float(_start_time(packet_pts, time_base)), hidden)
        # The last group of pictures is decoded again to see whether the file was cut mid-packet; an
        # MP4 declares its frames in its index, so only a cut one (fewer packets) needs that decode.
        if "mp4" not in (container.format.name or "") or (declared or 0) > frames:
            undecodable, concealed = tail_damage(stream, tail)
        else:
            undecodable = concealed = 0
        others = len(container.streams.audio) + len(container.streams.subtitles)
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f"{path}: cannot read the video ({type(exc).__name__})") from None
    finally:
        container.close()
    damage = damage_warning(path, frames, declared, undecodable, concealed)
    frames -= min(undecodable, frames)
    if frames == 0:
        raise VideoError(f"{path}: the video stream has no frames")
    pts = presentation_pts(packet_pts)
    return MediaInfo(path, width, height, Fraction(fps), frames, colour, others,
                     Fraction(time_base) if time_base else None, pts[:frames] if pts else pts, matrix,
                     _start_time(packet_pts, time_base), damage, picture=picture)


def _start_time(packet_pts: list, time_base) -> Fraction:
    """Seconds of the first presented frame (0 when the packets carry no times)."""
    known = [p for p in packet_pts if p is not None]
    return Fraction(min(known)) * Fraction(time_base) if known and time_base else Fraction(0)


TAIL_LIMIT = 1000  # packets of the last group of pictures decoded again by ``tail_damage``


def scan_stream(container, stream, tail: list | None = None
                ) -> tuple[int, list[int | None], list[int] | None, int, Picture | None]:
    """Demux ``stream`` once: the number of non-empty packets shown, their pts, the display matrix
    of the first decodable frame (only the packets up to that frame are decoded), the number of
    packets an edit list hides (``is_discard``: decoded, never shown) and the ``Picture`` of the first
    frame (pixel format, colour, HDR side data; None when none decodes, or it has another size than
    the stream says). With ``tail`` (a list), it receives the packets from the last keyframe on (for
    ``tail_damage``)."""
    count, pts, matrix, looking, hidden, picture = 0, [], None, True, 0, None
    size = (stream.codec_context.width, stream.codec_context.height)
    for packet in container.demux(stream):
        if not packet.size:
            if looking and picture is None:  # the end: frames the decoder still holds (a very short video)
                picture = _first_picture(packet, size)
            continue
        if tail is not None:
            if packet.is_keyframe:
                tail.clear()
            if len(tail) < TAIL_LIMIT:  # a stream without keyframe flags is not decoded again whole
                tail.append(packet)
        if packet.is_discard:  # edit-list pre-roll is decoded but never shown
            hidden += 1
        else:
            count += 1
            pts.append(packet.pts)
        if looking:
            try:
                frames = packet.decode()
            except Exception:  # corrupt data is reported by the decoder that reads the frames
                frames, looking = [], False
            if frames:
                matrix, looking = display_matrix(frames[0]), False
                picture = _picture(frames[0], size)
    return count, pts, matrix, hidden, picture


def _picture(frame, size: tuple[int, int]) -> Picture | None:
    """The ``Picture`` of the first decoded frame; None when its size is not the stream's (the reader
    refuses such a frame) or its pixel format cannot be described."""
    if (frame.width, frame.height) != size:
        return None
    try:
        return picture_of(frame)
    except Exception:  # noqa: BLE001 - an odd pixel format: FFmpeg's guesses (colour.untagged_picture)
        return None


def _first_picture(packet, size: tuple[int, int]) -> Picture | None:
    """The picture of the first frame the end-of-stream packet drains from the decoder (None: none)."""
    try:
        frames = packet.decode()
    except Exception:  # noqa: BLE001 - corrupt data is reported by the decoder that reads the frames
        return None
    return _picture(frames[0], size) if frames else None


def tail_damage(stream, tail: list | None) -> tuple[int, int]:
    """Decode the last group of pictures (``tail`` from ``scan_stream``) and return ``(frames
    that did not decode, frames the decoder concealed errors in)``: a file cut in the middle of
    its bytes ends in a partial packet. A packet the decoder refuses ends the decode, as it ends
    the reader's: frames still held in the decoder then count as not decoded. Frames shown before the keyframe (open-GOP leading
    pictures, which need the previous group) are not counted."""
    if not tail or tail[0].pts is None or len(tail) >= TAIL_LIMIT:
        return 0, 0
    key = tail[0].pts
    expected = sum(1 for p in tail if not p.is_discard and p.pts is not None and p.pts >= key)
    decoded = concealed = 0
    ctx = stream.codec_context
    try:
        ctx.flush_buffers()
    except Exception:
        pass
    frames: list = []
    for packet in tail + [None]:  # None: drain the decoder
        try:
            frames.extend(ctx.decode(packet))
        except Exception:  # the cut packet: a reader stops here too, so later frames never come out
            break
    for f in frames:
        if f.pts is not None and f.pts >= key:
            decoded += 1
            concealed += bool(getattr(f, "is_corrupt", False))
    return max(0, expected - decoded), concealed


def declared_frames(stream, start: float, hidden: int = 0) -> int | None:
    """Frames the container declares for ``stream`` (MP4's sample count less the ``hidden``
    samples its edit list does not present, or MKV's per-track ``DURATION`` tag, the end time of
    the track, times the frame rate); None when it declares none."""
    if stream.frames:
        return max(0, int(stream.frames) - hidden)
    tag = (stream.metadata or {}).get("DURATION")
    rate = stream.average_rate or stream.guessed_rate
    if not tag or not rate:
        return None
    try:
        h, m, sec = tag.split(":")
        end = int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None
    return max(0, round((end - start) * float(rate)))


def damage_warning(path: str, count: int, declared: int | None, undecodable: int, concealed: int) -> str | None:
    """One warning line for a truncated or damaged input, or None when nothing is wrong."""
    parts = []
    if declared is not None and declared - count > max(1, declared // 50):
        parts.append(f"the container declares {declared} frames but only {count} are in the file")
    if undecodable:
        parts.append(f"{undecodable} of the last frames could not be decoded")
    if concealed:
        parts.append(f"{concealed} frame{'s' if concealed > 1 else ''} decoded with concealed errors")
    if not parts:
        return None
    return f"{path}: truncated or damaged video: {'; '.join(parts)}; continuing with the frames that decode"
