"""Encoding: float RGB frames into a video file (``VideoWriter``), with the output's colour, the source's
rotation and real timestamps, and the source's audio, subtitles and attachments copied in time
(``passthrough``). The writer encodes into a file it is given (the temporary file of a
``stvsr.outfile.SafeOutput``); every PyAV object of a writer is used by one thread only."""
from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from stvsr.runtime.media.colour import OutputColour, merge_params, plan_output
from stvsr.runtime.media.container import (FORMAT_NAMES, VideoError, check_encoder, container_format, container_options,
                                           error_text, format_name, refuses, unreadable)
from stvsr.runtime.media.passthrough import Passthrough, StreamPlan, plan_streams
from stvsr.runtime.media.pipe import muxer_options
from stvsr.runtime.media.probe import MediaInfo
from stvsr.runtime.media.timing import scaled_matrix

HARDWARE_ENCODERS = ("nvenc", "qsv", "vaapi", "amf", "videotoolbox", "v4l2m2m", "mediacodec")


def _standard_rate_slots(codec: str, fps: Fraction, pts: list[int], time_base: Fraction) -> list[int] | None:
    """Frame slots (``k`` for ``k/fps``) of ``pts`` for an encoder that takes only standard frame
    rates and a time base of ``1/fps`` (MPEG-1/2 video); None when they are ``0, 1, 2, ...`` (the
    writer's own numbering). A rate it does not take, or times that are not on the rate's grid
    (variable frame rate), are refused in one line."""
    import av

    rates = [Fraction(r) for r in av.Codec(codec, "w").frame_rates]
    if Fraction(fps) not in rates:
        raise VideoError(f"{codec} takes only standard frame rates ({', '.join(f'{float(r):.3f}' for r in rates[:12])}"
                         f"{', ...' if len(rates) > 12 else ''}), not {float(fps):.3f} fps: choose another --codec "
                         "(e.g. libx264) or --factor")
    slots = [t * time_base * fps for t in pts]
    if any(s.denominator != 1 for s in slots):
        raise VideoError(f"{codec} takes only a constant frame rate and this input's timestamps vary: choose "
                         "another --codec (e.g. libx264)")
    slots = [int(s) for s in slots]
    return None if slots == list(range(len(slots))) else slots


class VideoWriter:
    """Encode frames into ``path`` (a temporary file the caller renames or removes).

    The encoder is opened in the constructor, so bad settings fail before any frame is computed.
    Construct, ``write``, ``finish`` and ``close`` from one thread: PyAV objects are not thread-safe.
    """

    def __init__(self, path: str, source: MediaInfo, fps: Fraction, width: int, height: int,
                 codec: str = "libx264", crf: int | None = 18, preset: str | None = "medium",
                 pix_fmt: str = "auto", copy_streams: bool = True,
                 timestamps: tuple[Fraction, list[int]] | None = None, name: str | None = None,
                 passthrough_end: Fraction | None = None, colour: OutputColour | None = None,
                 streams: StreamPlan | None = None, muxer: str | None = None):
        import av

        self.path = Path(path)
        self.name = name or str(path)   # the user's output, named in errors
        self.source = source
        self.container = None
        self.copied: Passthrough | None = None
        self.passthrough_end = passthrough_end  # source time (s) where copied streams stop; None: their end
        # the source's audio/subtitles/attachments kept (plan_streams: the caller says its notes)
        self.streams = streams if streams is not None or not copy_streams else plan_streams(source.path, self.name)
        self.count = 0
        self._scratch: dict = {}   # the colour conversion's float frame, reused frame after frame
        # Pixel format ("auto": the input's layout and depth), matrix, range, tags, HDR side data.
        self.colour = colour or plan_output(source.picture, codec, pix_fmt, source.width, source.height, self.name,
                                            muxer)
        pix_fmt = self.colour.pix_fmt
        check_encoder(codec, pix_fmt, preset)
        fmt = muxer or container_format(self.name)   # ``muxer``: named (a pipe: ``pipe.OUTPUT_FORMATS``)
        self.muxer_options = muxer_options(muxer) if muxer else container_options(self.name)
        options = {}
        if crf is not None and codec in ("libx264", "libx265", "libvpx-vp9", "libaom-av1"):
            options["crf"] = str(crf)
        if preset and codec in ("libx264", "libx265"):
            options["preset"] = preset
        if codec == "libx265":  # x265 prints its [info] banner straight to stderr: errors only
            options["x265-params"] = ":".join(filter(None, [options.get("x265-params"), "log-level=error"]))
        options = merge_params(options, self.colour.encoder_options(codec))  # HDR mastering display, light level
        try:
            self._open(av, fmt, codec, fps, options, width, height, pix_fmt, timestamps)
        except BaseException as exc:
            self.close()
            if isinstance(exc, Exception) and not isinstance(exc, VideoError):
                hint = "; a hardware encoder needs its device and driver" if any(
                    tag in codec for tag in HARDWARE_ENCODERS) else ""
                raise VideoError(f"cannot encode {codec} ({pix_fmt}, {width}x{height}) into {self.name}: "
                                 f"{error_text(exc)}{hint}") from None
            raise

    def _open(self, av, fmt, codec, fps, options, width, height, pix_fmt, timestamps) -> None:
        source = self.source
        self.container = av.open(str(self.path), "w", format=fmt, container_options=self.muxer_options)
        if refuses(format_name(self.container), av.Codec(codec, "w").canonical_name):
            raise VideoError(f"cannot encode {codec} into {self.name}: the {format_name(self.container)} format "
                             f"cannot hold it (players would read a data stream); choose another --codec or output")
        why = unreadable(format_name(self.container), av.Codec(codec, "w").name, pix_fmt)
        if why is not None:
            muxer = format_name(self.container)
            raise VideoError(f"cannot encode {codec} into {self.name}: {FORMAT_NAMES.get(muxer, 'a ' + muxer)} file "
                             f"holding it does not decode again ({why}); choose another --codec or output")
        self.stream = self.container.add_stream(codec, rate=fps, options=options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        # Frame and slice threads where the encoder has them, as the FFmpeg CLI (PyAV's default is slices
        # only: for x264, sliced threads, which cost more CPU per frame and keep fewer cores busy).
        self.stream.thread_type = "AUTO"
        # Real presentation times (variable frame rate kept) in a time base that holds them exactly;
        # without them frame k is at k/fps and PyAV derives the time base from the rate.
        self.time_base, self.timestamps = timestamps if timestamps else (None, None)
        if self.time_base is not None and av.Codec(codec, "w").frame_rates:
            self.timestamps = _standard_rate_slots(codec, fps, self.timestamps, self.time_base)
            self.time_base = None
        if self.time_base is not None:
            self.stream.codec_context.time_base = self.time_base
        if source.display_matrix is not None:  # rotation/flip of the source (a phone clip shot upright)
            self.stream.set_display_matrix(scaled_matrix(source.display_matrix, max(1, width // source.width)))
        self.colour.tag(self.stream.codec_context)  # primaries, transfer, matrix, range: as the pixels
        self.stream.codec_context.open()  # now: a preset, pixel format or device the encoder refuses fails here
        if self.streams is not None:
            # The video's first frame is at 0: the copied streams are shifted by the same start (sync kept).
            self.copied = Passthrough(self.streams, self.container, source.start, self.passthrough_end)
        self.container.start_encoding()   # and a codec the container refuses (VP9 in MOV), before any window

    def _mux(self, packets, stop: threading.Event | None = None) -> bool:
        """Mux encoded video packets, each after the copied packets that come before it in time."""
        for packet in packets:
            if self.copied is not None and not self.copied.feed(packet.dts * packet.time_base
                                                                if packet.dts is not None else None, stop):
                return False
            if stop is not None and stop.is_set():
                return False
            self.container.mux(packet)
        return True

    def write(self, rgb: np.ndarray) -> None:
        """Encode one frame: float RGB ``[3, H, W]`` in [0, 1], values outside clipped (or uint8 RGB ``[H, W, 3]``)."""
        if rgb.dtype == np.uint8:
            rgb = rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
        frame = self.colour.frame(rgb, self._scratch)
        if self.timestamps is None:
            frame.pts = self.count  # in 1/fps units: PyAV derives the codec time base from the rate
        elif self.time_base is None:
            frame.pts = self.timestamps[self.count]  # frame slots of a standard-rate encoder, also 1/fps
        else:
            frame.pts, frame.time_base = self.timestamps[self.count], self.time_base
        self._mux(self.stream.encode(frame))
        self.count += 1

    def finish(self, stop: threading.Event | None = None) -> bool:
        """Flush the encoder, copy the rest of the passthrough streams and close the file; False
        (and nothing more written) as soon as ``stop`` is set."""
        if not self._mux(self.stream.encode(None), stop):
            return False
        if self.copied is not None and not self.copied.feed(None, stop):
            return False
        self.container.close()
        self.container = None
        self._close_source()
        return True

    def _close_source(self) -> None:
        if self.copied is not None:
            self.copied.close()
        if self.streams is not None:
            self.streams.close()  # a plan's source no copy took (the writer failed before it)

    def close(self) -> None:
        """Release the file and the source (idempotent); the caller removes an unfinished file."""
        try:
            self._close_source()
        except Exception:
            pass
        try:
            if self.container is not None:
                self.container.close()
        except Exception:
            pass
        self.container = None
