"""Colour of the picture through stvsr-run: what the input's pixels mean, how they become the
networks' float RGB, and how float RGB becomes the output's pixels and tags.

* Decoding: every frame is converted by FFmpeg's swscale (PyAV ``VideoFrame.reformat``) to planar
  float RGB (``gbrpf32le``) with the input's own matrix (BT.601/709/2020, ...) and range, so no
  depth is lost. swscale's float output is off by a small gain (white comes out as 255/256 or
  1023/1024, depending on the path); the gain is measured once per pixel format by converting a
  black and a white frame through the same call, and removed, so black is 0 and white is 1.
* Untagged input gets FFmpeg's usual guess: the matrix from tagged primaries, else by size (HD:
  BT.709, SD: BT.601), limited range for YUV; the output is tagged with the guess.
* Encoding: float RGB goes through swscale to the output pixel format, with the same matrix and
  range as the input (RGB input: RGB kept where the encoder takes it, else BT.709 full range), its
  levels fitted once per format on a grey ramp (swscale's float input path has its own gain), and
  primaries, transfer, matrix and range written as tags. swscale's full-range float-to-YUV output
  is low by up to one chroma code; nothing here corrects that.
* ``--pix-fmt auto`` keeps the input's chroma layout and bit depth where the encoder takes it,
  else the nearest format it does take (one status line says so). "Takes" is tried, not read
  from the encoder's format list (mjpeg lists yuv420p but refuses it in limited range): a 64x64
  encoder is opened, and one frame encoded and decoded to see which range the decoder reads back,
  from a temporary file of the output's container where it is known (HuffYUV in AVI has no range
  anywhere: read as limited); the codes are written in that range (ProRes and MPEG-2 cannot say
  full range: limited).
* Grey (``gray``, ``gray10le``, ...) is converted through the 4:4:4 YUV format of its depth with
  neutral chroma: swscale's own grey path uses BT.601 full-range weights whatever it is asked,
  so grey output is the input's luma in the input's range, and grey input honours its range.
* Alpha (yuva, rgba input) is dropped, with a note: the networks take RGB.
* HDR (PQ or HLG transfer): the coded signal is what the networks see (no linearisation or tone
  mapping); 10 bits, tags and the mastering-display / content-light-level side data are carried
  (the side data as libx264/libx265 parameters: PyAV cannot attach it to frames or streams).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from stvsr.runtime.media.container import QUIET_OPTIONS, TRIAL_SIZE, VideoError, trial_file

# FFmpeg's enum values: AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic.
SPC_RGB, SPC_BT709, SPC_UNSPECIFIED, SPC_FCC, SPC_BT470BG, SPC_SMPTE170M, SPC_SMPTE240M = 0, 1, 2, 4, 5, 6, 7
SPC_BT2020_NCL, SPC_BT2020_CL = 9, 10
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
PRI_BT709, PRI_UNSPECIFIED, PRI_BT470BG, PRI_SMPTE170M, PRI_BT2020 = 1, 2, 5, 6, 9
TRC_BT709, TRC_UNSPECIFIED, TRC_SMPTE170M, TRC_SRGB, TRC_PQ, TRC_HLG = 1, 2, 6, 13, 16, 18

MATRIX_NAMES = {SPC_RGB: "RGB", SPC_BT709: "BT.709", SPC_FCC: "FCC", SPC_BT470BG: "BT.601", SPC_SMPTE170M: "BT.601",
                SPC_SMPTE240M: "SMPTE 240M", SPC_BT2020_NCL: "BT.2020", SPC_BT2020_CL: "BT.2020"}
HDR_NAMES = {TRC_PQ: "PQ", TRC_HLG: "HLG"}
_RANGE_NAMES = {RANGE_UNSPECIFIED: "unspecified", RANGE_LIMITED: "limited", RANGE_FULL: "full"}
FLOAT_FORMAT = "gbrpf32le"   # planes G, B, R
SIDE_DATA_ENCODERS = {"libx265": ("x265-params", "master-display", "max-cll"),
                      "libx264": ("x264-params", "mastering-display", "cll")}
_MAX_TRIALS = 12   # formats tried per pass before the first is kept (the writer then says why it fails)


def _sws_matrix(matrix: int):
    """swscale's name for an AVColorSpace matrix (one swscale can convert)."""
    from av.video.reformatter import Colorspace

    return {SPC_BT709: Colorspace.ITU709, SPC_FCC: Colorspace.FCC, SPC_BT470BG: Colorspace.ITU601,
            SPC_SMPTE170M: Colorspace.ITU601, SPC_SMPTE240M: Colorspace.SMPTE240M,
            SPC_BT2020_NCL: Colorspace.BT2020, SPC_BT2020_CL: Colorspace.BT2020}[matrix]


def _interpolation():
    from av.video.reformatter import Interpolation

    return Interpolation.BICUBIC  # only chroma is resampled (the frame size never changes here)


@dataclass(frozen=True)
class Layout:
    """What a pixel format holds: ``kind`` yuv, rgb or gray; bits per sample; chroma subsampling
    as log2 (horizontal, vertical); alpha."""
    kind: str
    bits: int
    sub: tuple[int, int] = (0, 0)
    alpha: bool = False


@lru_cache(maxsize=None)
def layout_of(pix_fmt: str) -> Layout:
    """The ``Layout`` of an FFmpeg pixel format (palette and Bayer formats count as RGB)."""
    import av

    fmt = av.VideoFormat(pix_fmt, 64, 64)
    comps = list(fmt.components)
    bits = max(c.bits for c in comps)
    alpha = any(c.is_alpha for c in comps)
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer:
        return Layout("rgb", bits, (0, 0), alpha)
    colour = [c for c in comps if not c.is_alpha]
    if len(colour) == 1:
        return Layout("gray", bits, (0, 0), alpha)
    chroma = colour[1]
    return Layout("yuv", bits, ((64 // max(chroma.width, 1)).bit_length() - 1,
                                (64 // max(chroma.height, 1)).bit_length() - 1), alpha)


def _full_range_only(pix_fmt: str) -> bool:
    return pix_fmt.startswith("yuvj")


@dataclass(frozen=True)
class Picture:
    """The input's pixels: format, the matrix and range they are converted with (tagged or
    guessed), primaries and transfer for the output tags, and HDR side data (raw FFmpeg structs)."""
    pix_fmt: str
    width: int
    height: int
    matrix: int
    range: int
    primaries: int
    trc: int
    mastering: bytes | None = None      # AVMasteringDisplayMetadata
    light: bytes | None = None          # AVContentLightMetadata

    @property
    def layout(self) -> Layout:
        return layout_of(self.pix_fmt)

    @property
    def hdr(self) -> str | None:
        return HDR_NAMES.get(self.trc)


def _guess_matrix(width: int, height: int, primaries: int) -> int:
    """FFmpeg's usual guess for an untagged matrix: from the primaries if tagged, else by size."""
    if primaries == PRI_BT2020:
        return SPC_BT2020_NCL
    if primaries == PRI_BT709:
        return SPC_BT709
    if primaries in (PRI_BT470BG, PRI_SMPTE170M):
        return SPC_SMPTE170M
    return SPC_BT709 if width >= 1280 or height > 576 else SPC_SMPTE170M


def _default_tags(matrix: int, height: int) -> tuple[int, int]:
    """Primaries and transfer that go with a (guessed) matrix."""
    if matrix in (SPC_BT2020_NCL, SPC_BT2020_CL):
        return PRI_BT2020, TRC_BT709
    if matrix in (SPC_SMPTE170M, SPC_BT470BG):
        return (PRI_BT470BG if height == 576 else PRI_SMPTE170M), TRC_SMPTE170M
    return PRI_BT709, TRC_BT709


def picture_of(frame) -> Picture:
    """The ``Picture`` of a decoded PyAV frame (its tags, with FFmpeg's guesses where untagged)."""
    pix_fmt = frame.format.name
    layout = layout_of(pix_fmt)
    w, h = frame.width, frame.height
    matrix, rng = int(frame.colorspace or 0), int(frame.color_range or 0)
    primaries, trc = int(frame.color_primaries or PRI_UNSPECIFIED), int(frame.color_trc or TRC_UNSPECIFIED)
    if layout.kind == "yuv" and (matrix not in MATRIX_NAMES or matrix == SPC_RGB):
        matrix = _guess_matrix(w, h, primaries)
    elif layout.kind != "yuv":
        matrix = SPC_RGB if layout.kind == "rgb" else SPC_UNSPECIFIED   # grey: luma only, no matrix
    if layout.kind == "rgb" or _full_range_only(pix_fmt):
        rng = RANGE_FULL
    elif rng not in (RANGE_LIMITED, RANGE_FULL):
        rng = RANGE_LIMITED   # FFmpeg's assumption for untagged YUV and grey
    tag_pri, tag_trc = _default_tags(matrix if layout.kind == "yuv" else SPC_BT709, h)
    if primaries in (0, PRI_UNSPECIFIED) or primaries > 22:
        primaries = tag_pri
    if trc in (0, TRC_UNSPECIFIED) or trc > 18:
        trc = TRC_SRGB if layout.kind == "rgb" else tag_trc
    mastering = light = None
    for sd in getattr(frame, "side_data", ()):
        kind = str(getattr(sd, "type", ""))
        if kind.endswith("MASTERING_DISPLAY_METADATA"):
            mastering = bytes(sd)
        elif kind.endswith("CONTENT_LIGHT_LEVEL"):
            light = bytes(sd)
    return Picture(pix_fmt, w, h, matrix, rng, primaries, trc, mastering, light)


def untagged_picture(width: int, height: int) -> Picture:
    """What an unknown 8-bit 4:2:0 input is taken for (FFmpeg's guesses)."""
    matrix = _guess_matrix(width, height, PRI_UNSPECIFIED)
    primaries, trc = _default_tags(matrix, height)
    return Picture("yuv420p", width, height, matrix, RANGE_LIMITED, primaries, trc)


# ---------------------------------------------------------------------------------------------
# Levels: swscale's float RGB for black and white of a pixel format, measured once.

def _uniform_frame(pix_fmt: str, matrix: int, rng: int, white: bool):
    """A 16x16 frame of ``pix_fmt`` that is black or white (chroma neutral): planar formats are
    filled directly, packed ones repacked by swscale from the planar format of the same layout."""
    import av

    layout = layout_of(pix_fmt)
    fmt = av.VideoFormat(pix_fmt)
    planar = _format_name(layout)
    if len(fmt.components) != len({c.plane for c in fmt.components}) or fmt.is_big_endian:
        if planar is None or planar == pix_fmt:
            raise ValueError(f"cannot synthesise {pix_fmt}")
        src = _uniform_frame(planar, matrix, rng, white)
        return src.reformat(format=pix_fmt, src_color_range=rng, dst_color_range=rng)
    frame = av.VideoFrame(16, 16, pix_fmt)
    top = (1 << layout.bits) - 1
    shift = layout.bits - 8
    for comp in fmt.components:
        if comp.is_alpha:
            value = top
        elif comp.index in (1, 2) and layout.kind == "yuv":
            value = 1 << (layout.bits - 1)
        elif layout.kind == "rgb" or rng == RANGE_FULL:
            value = top if white else 0
        else:
            value = (235 if white else 16) << shift
        plane = frame.planes[comp.plane]
        np.frombuffer(plane, "<u2" if layout.bits > 8 else np.uint8)[:] = value
    frame.color_range = rng
    return frame


def _float_planes(frame) -> np.ndarray:
    """A ``gbrpf32le`` frame as float32 ``[3, H, W]`` in R, G, B order."""
    h, w = frame.height, frame.width
    out = np.empty((3, h, w), np.float32)
    for dst, plane in zip((1, 2, 0), frame.planes):  # planes G, B, R
        out[dst] = np.frombuffer(plane, np.float32).reshape(plane.height, plane.line_size // 4)[:h, :w]
    return out


@lru_cache(maxsize=None)
def _yuv_twin(pix_fmt: str) -> str | None:
    """The planar 4:4:4 YUV format of a plain grey format's depth (gray10le: yuv444p10le), else None.
    swscale converts grey to and from RGB with BT.601 full-range weights whatever matrix and range
    it is given, so grey goes through its twin with neutral chroma, which honours both."""
    import av

    layout, fmt = layout_of(pix_fmt), av.VideoFormat(pix_fmt)
    if layout.kind != "gray" or layout.alpha or fmt.is_big_endian or len(fmt.components) != 1 or layout.bits > 16:
        return None
    return _format_name(Layout("yuv", layout.bits, (0, 0)))


def _luma_matrix(matrix: int) -> int:
    """A matrix swscale can convert with (grey without a matrix: any gives R = G = B = Y)."""
    return matrix if matrix in MATRIX_NAMES and matrix != SPC_RGB else SPC_BT709


def _copy_plane(src, dst, bits: int) -> None:
    """Plane 0 of ``src`` into plane 0 of ``dst`` (same size and sample size)."""
    dtype = np.dtype("<u2" if bits > 8 else np.uint8)
    a, b = src.planes[0], dst.planes[0]
    h, w = src.height, src.width
    np.frombuffer(b, dtype).reshape(b.height, b.line_size // dtype.itemsize)[:h, :w] = \
        np.frombuffer(a, dtype).reshape(a.height, a.line_size // dtype.itemsize)[:h, :w]


def _gray_as_yuv(frame, twin: str):
    """A grey frame as its 4:4:4 YUV twin with neutral chroma."""
    import av

    bits = layout_of(twin).bits
    out = av.VideoFrame(frame.width, frame.height, twin)
    _copy_plane(frame, out, bits)
    for plane in out.planes[1:]:
        np.frombuffer(plane, "<u2" if bits > 8 else np.uint8)[:] = 1 << (bits - 1)
    out.color_range = frame.color_range
    return out


def _to_float_raw(frame, matrix: int, rng: int, kind: str):
    twin = _yuv_twin(frame.format.name) if kind == "gray" else None
    if twin is not None:
        frame, kind, matrix = _gray_as_yuv(frame, twin), "yuv", _luma_matrix(matrix)
    if kind == "yuv":
        return frame.reformat(format=FLOAT_FORMAT, src_colorspace=_sws_matrix(matrix), src_color_range=rng,
                              interpolation=_interpolation())
    return frame.reformat(format=FLOAT_FORMAT, src_color_range=rng if kind == "gray" else None,
                          interpolation=_interpolation())


@lru_cache(maxsize=None)
def float_levels(pix_fmt: str, matrix: int, rng: int) -> tuple[float, float]:
    """swscale's float RGB for black and white of ``pix_fmt`` (with this matrix and range):
    ideally (0, 1); measured, since swscale's float paths carry a small gain. (0, 1) when the
    format cannot be synthesised."""
    kind = layout_of(pix_fmt).kind
    try:
        black, white = (float(_float_planes(_to_float_raw(_uniform_frame(pix_fmt, matrix, rng, w), matrix, rng,
                                                          kind)).mean()) for w in (False, True))
    except Exception:
        return 0.0, 1.0
    if not (abs(white - 1.0) < 0.01 and abs(black) < 0.01):
        return 0.0, 1.0   # not the small gain this corrects: leave swscale's values alone
    return black, white


def _ideal_codes(layout: Layout, rng: int) -> tuple[int, int]:
    """Black and white codes of luma (or of each RGB channel)."""
    if layout.kind == "rgb" or rng == RANGE_FULL:
        return 0, (1 << layout.bits) - 1
    return 16 << (layout.bits - 8), 235 << (layout.bits - 8)


@lru_cache(maxsize=None)
def write_levels(pix_fmt: str, matrix: int, rng: int) -> tuple[float, float]:
    """``(offset, gain)``: the float ``offset + gain * x`` that swscale turns into the code of
    ``x`` in ``pix_fmt`` (black at 0, white at 1). Fitted on a grey ramp, because swscale's float
    input path has its own small gain, not always the inverse of its float output's. Planar
    formats only; others use the inverse of ``float_levels``."""
    import av

    layout = layout_of(pix_fmt)
    fmt = av.VideoFormat(pix_fmt)
    black, white = float_levels(pix_fmt, matrix, rng)
    fallback = (black, white - black)
    if len(fmt.components) != len({c.plane for c in fmt.components}) or fmt.is_big_endian or layout.bits > 16:
        return fallback
    try:
        ramp = np.linspace(0.02, 0.95, 64 * 16, dtype=np.float32).reshape(32, 32)
        frame = OutputColour(pix_fmt, matrix, rng, PRI_UNSPECIFIED, TRC_UNSPECIFIED)._convert(
            np.stack([ramp] * 3), (0.0, 1.0))
        plane = frame.planes[fmt.components[0].plane]
        dtype = np.dtype("<u2" if layout.bits > 8 else np.uint8)
        codes = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)[:32, :32]
        slope, intercept = np.polyfit(ramp.ravel().astype(np.float64), codes.ravel().astype(np.float64), 1)
    except Exception:
        return fallback
    lo, hi = _ideal_codes(layout, rng)
    offset, gain = (lo - intercept) / slope, (hi - lo) / slope
    if not (abs(gain - 1.0) < 0.02 and abs(offset) < 0.02):
        return fallback
    return float(offset), float(gain)


class FrameDecoder:
    """Decoded frames -> float32 RGB ``[3, H, W]`` in [0, 1] with the input's matrix and range."""

    def __init__(self, picture: Picture | None = None):
        self.picture = picture

    def __call__(self, frame) -> np.ndarray:
        if self.picture is None:
            self.picture = picture_of(frame)
        p = self.picture
        if frame.format.has_palette or frame.format.is_bayer:
            frame = frame.reformat(format="rgb24")
        kind = p.layout.kind
        fmt = frame.format.name
        black, white = float_levels(fmt, p.matrix, p.range)
        rgb = _float_planes(_to_float_raw(frame, p.matrix, p.range, kind if fmt == p.pix_fmt else
                                          layout_of(fmt).kind))
        if (black, white) != (0.0, 1.0):
            rgb -= black
            rgb *= 1.0 / (white - black)
        return np.clip(rgb, 0.0, 1.0, out=rgb)  # the networks' range (super-white and out-of-gamut clipped)


# ---------------------------------------------------------------------------------------------
# Output: pixel format, tags, side data, and the float RGB -> output frame conversion.

@dataclass(frozen=True)
class OutputColour:
    """How the output is encoded: pixel format, matrix/range used to convert and tagged,
    primaries and transfer tags, HDR side data, and a note for the one status line."""
    pix_fmt: str
    matrix: int
    range: int
    primaries: int
    trc: int
    mastering: bytes | None = None
    light: bytes | None = None
    note: str | None = None

    @property
    def layout(self) -> Layout:
        return layout_of(self.pix_fmt)

    def tag(self, codec_context) -> None:
        """Write the colour tags on the encoder (before it opens)."""
        for name, value in (("colorspace", self.matrix), ("color_range", self.range),
                            ("color_primaries", self.primaries), ("color_trc", self.trc)):
            try:
                setattr(codec_context, name, value)
            except Exception:
                pass

    def encoder_options(self, codec: str) -> dict[str, str]:
        """Encoder options that carry the HDR side data (libx264/libx265 SEI); {} otherwise."""
        params = side_data_params(codec, self.mastering, self.light)
        return {SIDE_DATA_ENCODERS[codec][0]: params} if params else {}

    def frame(self, rgb: np.ndarray, scratch: dict | None = None):
        """Float RGB ``[3, H, W]`` -> a PyAV frame of the output format, tagged. Values outside [0, 1]
        are clipped; ``rgb`` is only read (a view of a padded model output will do). ``scratch``: a dict
        one thread keeps between frames, where swscale's float source frame is kept and refilled (a
        fresh 4K float frame costs about as much in page faults as the conversion itself)."""
        out = self._convert(rgb, write_levels(self.pix_fmt, self.matrix, self.range), scratch)
        out.colorspace, out.color_range = self.matrix, self.range
        out.color_primaries, out.color_trc = self.primaries, self.trc
        return out

    def _convert(self, rgb: np.ndarray, levels: tuple[float, float], scratch: dict | None = None):
        import av

        _, h, w = rgb.shape
        offset, gain = levels
        src = scratch.pop((w, h), None) if scratch is not None else None
        if src is None:
            src = av.VideoFrame(w, h, FLOAT_FORMAT)
        for index, plane in zip((1, 2, 0), src.planes):
            dst = np.frombuffer(plane, np.float32).reshape(plane.height, plane.line_size // 4)[:h, :w]
            np.clip(rgb[index], 0.0, 1.0, out=dst)   # clipped straight into the frame: no copy of the picture
            if (offset, gain) != (0.0, 1.0):
                dst *= gain
                dst += offset
        twin = _yuv_twin(self.pix_fmt)
        if twin is not None:   # grey: the luma of the 4:4:4 twin (swscale's grey ignores matrix and range)
            yuv = src.reformat(format=twin, dst_colorspace=_sws_matrix(_luma_matrix(self.matrix)),
                               dst_color_range=self.range, interpolation=_interpolation())
            out = av.VideoFrame(w, h, self.pix_fmt)
            _copy_plane(yuv, out, self.layout.bits)
        elif self.layout.kind == "yuv":
            out = src.reformat(format=self.pix_fmt, dst_colorspace=_sws_matrix(self.matrix),
                               dst_color_range=self.range, interpolation=_interpolation())
        else:
            out = src.reformat(format=self.pix_fmt, interpolation=_interpolation(),
                               dst_color_range=self.range if self.layout.kind == "gray" else None)
        if scratch is not None and out is not src:   # src itself goes to the encoder when no conversion was needed
            scratch[(w, h)] = src
        return out


def _rational_pairs(raw: bytes) -> list[float]:
    values = struct.unpack("<20i", raw[:80])
    return [n / d if d else 0.0 for n, d in zip(values[0::2], values[1::2])]


def side_data_params(codec: str, mastering: bytes | None, light: bytes | None) -> str | None:
    """x264/x265 parameters (``master-display``/``max-cll`` style) for FFmpeg's mastering-display
    and content-light-level structs; None for other encoders or without side data."""
    if codec not in SIDE_DATA_ENCODERS or not (mastering or light):
        return None
    _, display_key, light_key = SIDE_DATA_ENCODERS[codec]
    parts = []
    if mastering and len(mastering) >= 88:
        has_primaries, has_luminance = struct.unpack("<2i", mastering[80:88])
        v = _rational_pairs(mastering)   # R, G, B, white point (x, y); min, max luminance
        if has_primaries and has_luminance:
            xy = [round(x * 50000) for x in v[:8]]
            parts.append(f"{display_key}=G({xy[2]},{xy[3]})B({xy[4]},{xy[5]})R({xy[0]},{xy[1]})"
                         f"WP({xy[6]},{xy[7]})L({round(v[9] * 10000)},{round(v[8] * 10000)})")
    if light and len(light) >= 8:
        max_cll, max_fall = struct.unpack("<2I", light[:8])
        parts.append(f"{light_key}={max_cll},{max_fall}")
    return ":".join(parts) or None


def merge_params(options: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """``options`` with ``extra`` added; ``x26x-params`` strings are joined with ``:``."""
    merged = dict(options)
    for key, value in extra.items():
        merged[key] = f"{merged[key]}:{value}" if key.endswith("-params") and merged.get(key) else value
    return merged


def _format_name(layout: Layout) -> str | None:
    """The planar pixel format of a layout (None when FFmpeg has none)."""
    import av

    depth = "" if layout.bits <= 8 else f"{layout.bits}le"
    if layout.kind == "rgb":
        name = f"gbrp{depth}"
    elif layout.kind == "gray":
        name = f"gray{depth}"
    else:
        chroma = {(1, 1): "420", (1, 0): "422", (0, 0): "444", (2, 0): "411", (0, 1): "440", (2, 2): "410"}
        if layout.sub not in chroma:
            return None
        name = f"yuv{chroma[layout.sub]}p{depth}"
    try:
        av.VideoFormat(name)
    except Exception:
        return None
    return name


def _encoder_formats(codec: str) -> list[str] | None:
    import av

    try:
        formats = av.Codec(codec, "w").video_formats
    except Exception:
        return None
    return [f.name for f in formats] if formats else None


def _kind(pix_fmt: str) -> str | None:
    try:
        import av

        fmt = av.VideoFormat(pix_fmt)
        return None if fmt.has_palette or fmt.is_bayer or fmt.is_bit_stream else layout_of(pix_fmt).kind
    except Exception:
        return None


def _by_nearness(want: Layout, formats: list[str]) -> list[str]:
    """The encoder's formats, closest to ``want`` first: same kind, no lost depth, no lost chroma first."""
    def score(name: str):
        try:
            got = layout_of(name)
        except Exception:
            return (9,)
        kind = 0 if got.kind == want.kind else (1 if {got.kind, want.kind} <= {"yuv", "rgb"} else 2)
        if got.kind == "gray" and want.kind != "gray":
            kind = 3
        lost_chroma = sum(max(0, g - w) for g, w in zip(got.sub, want.sub)) if got.kind == want.kind else 0
        extra_chroma = sum(max(0, w - g) for g, w in zip(got.sub, want.sub)) if got.kind == want.kind else 0
        return (kind, max(0, want.bits - got.bits), lost_chroma, got.alpha, extra_chroma, got.bits - want.bits,
                _full_range_only(name) or name.startswith(("nv", "p0", "p2", "p4")) or not name.startswith(
                    ("yuv", "gbrp", "gray")))
    return sorted(formats, key=score)


def _conversion(picture: Picture, pix_fmt: str) -> tuple[int, int]:
    """The matrix and range that ``picture`` is written with in ``pix_fmt`` (and tagged with): the
    input's own where the output is YUV or grey like it, else BT.709/BT.2020 full range for RGB input."""
    layout, out = picture.layout, layout_of(pix_fmt)
    if out.kind == "yuv":
        matrix = picture.matrix if layout.kind == "yuv" else _rgb_matrix(picture)
        return matrix, RANGE_FULL if layout.kind != "yuv" or _full_range_only(pix_fmt) else picture.range
    if out.kind == "rgb":
        return SPC_RGB, RANGE_FULL
    if layout.kind == "rgb":   # grey: the luma of the input's matrix (RGB: the one YUV output would get)
        return _rgb_matrix(picture), RANGE_FULL
    return (picture.matrix if layout.kind == "yuv" else SPC_UNSPECIFIED), picture.range


def _trial_encoder(codec: str, pix_fmt: str, rng: int, context=None):
    """A 64x64 ``codec`` encoder for ``pix_fmt`` in range ``rng`` (``context``: a stream's, else a
    bare one), not yet open."""
    import av

    encoder = context if context is not None else av.CodecContext.create(codec, "w")
    encoder.width = encoder.height = TRIAL_SIZE
    encoder.pix_fmt, encoder.time_base, encoder.framerate = pix_fmt, Fraction(1, 25), 25
    encoder.color_range = rng
    if codec in QUIET_OPTIONS:
        encoder.options = dict(QUIET_OPTIONS[codec])
    return encoder


def _trial_frame(pix_fmt: str, rng: int):
    import av

    frame = av.VideoFrame(TRIAL_SIZE, TRIAL_SIZE, pix_fmt)
    frame.pts, frame.color_range = 0, rng
    return frame


@lru_cache(maxsize=None)
def encoder_trial(codec: str, pix_fmt: str, rng: int) -> tuple[bool, int | None]:
    """``(opens, range read back)``: whether ``codec`` opens for ``pix_fmt`` in range ``rng`` (a
    format list is not enough: mjpeg lists yuv420p but refuses it in limited range), and the range
    its own decoder reads from one encoded frame, where it says one (ProRes and MPEG-2 have no
    range flag and read back limited, PNG grey is full range by definition; None when unknown,
    e.g. a range the container carries: see ``container_trial``). An encoder that cannot be tried
    at all counts as opening."""
    import av

    try:
        encoder = _trial_encoder(codec, pix_fmt, rng)
    except Exception:
        return True, None
    try:
        encoder.open()
    except Exception:
        return False, None
    if layout_of(pix_fmt).kind == "rgb" or _full_range_only(pix_fmt):
        return True, None
    try:
        packets = encoder.encode(_trial_frame(pix_fmt, rng)) + encoder.encode(None)
        decoder = av.CodecContext.create(av.Codec(codec, "w").canonical_name, "r")
        if encoder.extradata:
            decoder.extradata = encoder.extradata
        decoded = [f for p in packets for f in decoder.decode(p)] + decoder.decode(None)
        read = int(decoded[0].color_range) if decoded else None
        return True, (read if read in (RANGE_LIMITED, RANGE_FULL) else None)
    except Exception:
        return True, None


@lru_cache(maxsize=None)
def container_trial(codec: str, colour: "OutputColour", muxer: str | None, suffix: str) -> int | None:
    """The range a reader takes ``codec``'s output, encoded and tagged as ``colour`` says, for once it is
    written into the output's container (``muxer``, else the one FFmpeg picks for ``suffix``, as
    ``VideoWriter`` does): one 64x64 frame is written to a temporary file and decoded from it, and
    untagged YUV or grey counts as limited range (FFmpeg's assumption, as for input). Observed:
    HuffYUV, Ut Video, FFV1, rawvideo and MPEG-4 Part 2 keep full range in Matroska, not in AVI or
    NUT (MP4 keeps it for FFV1 and MPEG-4 only with primaries and transfer tagged too, MOV not for
    MPEG-4); H.264, HEVC, VP9, AV1 and MJPEG carry it in their own bitstream, in any container.
    None when the trial cannot be made (the encoder-only trial then decides)."""
    pix_fmt, rng = colour.pix_fmt, colour.range
    if layout_of(pix_fmt).kind == "rgb" or _full_range_only(pix_fmt):
        return None

    def first_frame(stream):
        encoder = _trial_encoder(codec, pix_fmt, rng, stream.codec_context)
        colour.tag(encoder)   # as the writer tags: some containers hold the range only with all tags
        encoder.open()
        frame = _trial_frame(pix_fmt, rng)
        frame.colorspace, frame.color_primaries, frame.color_trc = colour.matrix, colour.primaries, colour.trc
        return frame

    try:
        _, frame, _ = trial_file(codec, muxer, suffix, first_frame)
        return None if frame is None else picture_of(frame).range
    except Exception:
        return None


def _ranked_formats(p: Picture, codec: str, formats: list[str] | None) -> list[tuple[str, str | None]]:
    """``--pix-fmt auto``: the encoder's formats for ``p`` in order of preference, each with the
    note that says why it is used instead of the ideal one (None: it is the ideal one)."""
    layout = p.layout
    ranked: list[tuple[str, str | None]] = []
    if layout.kind == "rgb":
        want = Layout("rgb", layout.bits)
        ideal = _format_name(want)
        if formats is None or ideal in formats:
            ranked.append((ideal, None))
        rgb = [f for f in formats or [] if _kind(f) == "rgb" and layout_of(f).bits >= min(layout.bits, 10)]
        for name in _by_nearness(want, rgb):       # e.g. ffv1: bgr0; libx265: gbrp12le for 16 bits
            ranked.append((name, None if layout_of(name).bits >= layout.bits else
                           f"{codec} cannot encode {ideal}; writing {name} (the nearest format it takes)"))
        yuv = Layout("yuv", max(layout.bits, 10), (0, 0))   # 4:4:4 YUV, >= 10 bits: the RGB values survive
        exact = [_format_name(yuv)] if _format_name(yuv) in (formats or []) else []
        for name in exact + _by_nearness(yuv, formats or []):
            ranked.append((name, f"RGB input: {codec} takes no RGB format, writing {name} "
                                 f"({MATRIX_NAMES[_rgb_matrix(p)]}, full range)"))
    else:
        want = Layout(layout.kind, layout.bits, layout.sub)
        ideal = _format_name(want) or p.pix_fmt
        if _format_name(want) is not None and (formats is None or ideal in formats):
            ranked.append((ideal, None))
        refused = f" in {'full' if p.range == RANGE_FULL else 'limited'} range" if ranked else ""
        for name in _by_nearness(want, formats or []):
            full = ", full range" if _full_range_only(name) and p.range != RANGE_FULL else ""
            ranked.append((name, f"{codec} cannot encode {ideal}{refused}; writing {name}{full} "
                                 "(the nearest format it takes)"))
        if not ranked:
            ranked.append(("yuv420p", f"{codec} cannot encode {ideal}; writing yuv420p"))
    seen: set[str] = set()
    return [(n, note) for n, note in ranked if not (n in seen or seen.add(n))]


def plan_output(picture: Picture | None, codec: str, pix_fmt: str, width: int = 0, height: int = 0,
                output: str | None = None, muxer: str | None = None) -> OutputColour:
    """The output's encoding for ``picture`` with ``codec`` into the file ``output`` (its name picks
    the container, as ``VideoWriter`` does; ``muxer``: a named one); ``pix_fmt`` "auto" keeps the
    input's layout and depth where the encoder takes it, else the nearest format it does take
    (tried: see ``encoder_trial``). The codes are always in the range a reader takes the file for:
    full range is written only where the encoder and the container can say so (tried: see
    ``container_trial``), else limited range, tagged so."""
    import av

    if pix_fmt != "auto":
        try:
            av.VideoFormat(pix_fmt)
        except Exception:
            raise VideoError(f"unknown pixel format {pix_fmt!r}") from None
    p = picture or untagged_picture(width or 16, height or 16)
    notes = []
    if p.layout.alpha and not av.VideoFormat(p.pix_fmt).has_palette:
        notes.append(f"the input's alpha channel ({p.pix_fmt}) is dropped: the networks take RGB, the output is opaque")
    ranked = _ranked_formats(p, codec, _encoder_formats(codec)) if pix_fmt == "auto" else [(pix_fmt, None)]
    pix_fmt, note, (matrix, rng) = _first_accepted(p, codec, ranked)
    notes += [note] if note else []
    rng, note = _range_read_back(codec, OutputColour(pix_fmt, matrix, rng, p.primaries, p.trc), output, muxer)
    notes += [note] if note else []
    out = layout_of(pix_fmt)
    if p.hdr:
        if out.bits < 10:
            notes.append(f"HDR ({p.hdr}) input written in {out.bits} bits ({pix_fmt}) will band")
        if (p.mastering or p.light) and codec not in SIDE_DATA_ENCODERS:
            notes.append(f"{codec} cannot carry the HDR mastering-display/content-light metadata "
                         "(libx264 and libx265 can); colour tags kept")
    return OutputColour(pix_fmt, matrix, rng, p.primaries, p.trc, p.mastering, p.light, "; ".join(notes) or None)


def _range_read_back(codec: str, planned: OutputColour, output: str | None, muxer: str | None
                     ) -> tuple[int, str | None]:
    """The range to write ``planned`` in: its own, or the one a reader will take the file for where that
    differs (ProRes reads full range as limited; HuffYUV in AVI is read as limited), with the note
    that says so. The container's trial decides where it can be made, else the encoder's."""
    pix_fmt, rng = planned.pix_fmt, planned.range
    read = encoder_trial(codec, pix_fmt, rng)[1]
    where = ""
    if output is not None or muxer is not None:
        suffix = os.path.splitext(output or "")[1].lower()
        held = container_trial(codec, planned, muxer, suffix)
        if held is not None and held != read:   # the container, not the codec, decides what is read
            read, where = held, f" in {muxer or suffix or 'this container'}"
    if read is None or read == rng or not encoder_trial(codec, pix_fmt, read)[0]:
        return rng, None
    return read, (f"{codec}{where} cannot signal {_RANGE_NAMES[rng]} range in {pix_fmt}: writing "
                  f"{_RANGE_NAMES[read]} range")


def _first_accepted(p: Picture, codec: str, ranked: list[tuple[str, str | None]]
                    ) -> tuple[str, str | None, tuple[int, int]]:
    """The first of ``ranked`` that ``codec`` opens with its own matrix and range; then the first
    that opens in full range (mjpeg: yuv420p only so); else the first (the writer says why not)."""
    for name, note in ranked[:_MAX_TRIALS]:
        matrix, rng = _conversion(p, name)
        if encoder_trial(codec, name, rng)[0]:
            return name, note, (matrix, rng)
    for name, note in ranked[:_MAX_TRIALS]:
        matrix, rng = _conversion(p, name)
        if rng == RANGE_LIMITED and layout_of(name).kind != "rgb" and encoder_trial(codec, name, RANGE_FULL)[0]:
            note = "; ".join(filter(None, [note, f"{codec} takes {name} in full range only"]))
            return name, note, (matrix, RANGE_FULL)
    name, note = ranked[0]
    return name, note, _conversion(p, name)


def _rgb_matrix(picture: Picture) -> int:
    """The YUV matrix for RGB input: BT.2020 for BT.2020 primaries, else BT.709."""
    return SPC_BT2020_NCL if picture.primaries == PRI_BT2020 else SPC_BT709
