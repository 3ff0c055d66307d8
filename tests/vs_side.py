"""The VapourSynth side of tests/test_vapoursynth.py, run by the Python 3.12 environment that has the
``vapoursynth`` wheel (``python vs_side.py CHECK ARGS...``; prints one JSON line). Also imported by the
``.vpy`` scripts that ``vspipe`` runs (``source_clip``)."""
from __future__ import annotations

import json
import random
import sys
import time

import numpy as np
import vapoursynth as vs

from stvsr.runtime.media import FrameDecoder, iter_frames, probe
from stvsr.runtime.media.colour import OutputColour
from stvsr.vapoursynth import clip_cuts, stvsr

core = vs.core


def source_clip(path: str) -> vs.VideoNode:
    """The video ``path`` as an RGBS clip of the float RGB frames ``stvsr-run``'s reader makes of it."""
    info = probe(path)
    frames = list(iter_frames(path, 0, None, info, FrameDecoder(info.picture)))
    blank = core.std.BlankClip(width=info.width, height=info.height, format=vs.RGBS, length=len(frames),
                               fpsnum=info.fps.numerator, fpsden=info.fps.denominator, keep=True)

    def fill(n, f):
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n][p])
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def codes(frame: vs.VideoFrame, pix_fmt: str) -> list[np.ndarray]:
    """An RGBS frame as ``stvsr-run``'s writer codes it in ``pix_fmt`` (RGB: full range)."""
    rgb = np.stack([np.asarray(frame[p]) for p in range(3)]).astype(np.float32)
    out = OutputColour(pix_fmt, 0, 2, 2, 2).frame(rgb)
    return _planes(out)


def _planes(frame) -> list[np.ndarray]:
    """The 16-bit planes of a PyAV frame."""
    return [np.frombuffer(p, "<u2").reshape(p.height, p.line_size // 2)[:, :frame.width].copy() for p in frame.planes]


def decoded_codes(path: str) -> list[list[np.ndarray]]:
    import av

    with av.open(path) as c:
        return [_planes(f) for f in c.decode(video=0)]


def _flagged(f: vs.VideoFrame, cut: bool) -> vs.VideoFrame:
    out = f.copy()
    out.props["_SceneChangePrev"] = int(cut)
    return out


def compare(model: str, source: str, reference: str, factor: int, cuts: str) -> dict:
    """Frame for frame against ``stvsr-run``'s output ``reference`` (FFV1 gbrp16le), in order, in a
    shuffled order with a one-window cache, and with every frame asked at once from 4 threads."""
    as_props = cuts.startswith("props:")   # the cuts as _SceneChangePrev properties (misc.SCDetect's convention)
    cut_list = [int(c) for c in cuts.removeprefix("props:").split(",") if c]
    want = decoded_codes(reference)
    clip = source_clip(source)
    if as_props:
        clip = core.std.ModifyFrame(clip, clip, lambda n, f, flagged=tuple(cut_list): _flagged(f, n in flagged))
        cut_list = []   # scene_cuts="off": the properties alone must give the cuts
    out = stvsr(clip, model, factor=factor, scene_cuts=cut_list or "off")
    shifted_equal = sum(all((a == b).all() for a, b in zip(codes(out.get_frame(n), "gbrp16le"), want[n + 1]))
                        for n in range(min(out.num_frames, len(want)) - 1)   # but the repeats at a cut
                        if any((a != b).any() for a, b in zip(want[n], want[n + 1])))
    mismatched = [n for n in range(out.num_frames)
                  if n >= len(want) or any((a != b).any() for a, b in zip(codes(out.get_frame(n), "gbrp16le"), want[n]))]
    order = list(range(out.num_frames))
    random.Random(5).shuffle(order)
    shuffled = stvsr(clip, model, factor=factor, scene_cuts=cut_list or "off", cache_windows=1)
    reordered = [n for n in order if any((a != b).any() for a, b in
                                         zip(codes(shuffled.get_frame(n), "gbrp16le"), want[n]))]
    core.num_threads = 4
    threaded = stvsr(clip, model, factor=factor, scene_cuts=cut_list or "off", cache_windows=2)
    futures = [threaded.get_frame_async(n) for n in order]
    in_threads = [n for n, fut in zip(order, futures)
                  if any((a != b).any() for a, b in zip(codes(fut.result(), "gbrp16le"), want[n]))]
    fps = out.fps
    return {"frames": out.num_frames, "reference_frames": len(want), "fps": [fps.numerator, fps.denominator],
            "mismatched": mismatched, "shifted_equal": shifted_equal, "reordered_mismatched": reordered, "threaded_mismatched": in_threads}


def yuv(model: str, source: str) -> dict:
    """YUV 4:2:0 8 and 10 bits, GRAY8, and RGB24 in: the format, size, count and colour properties come
    back, and the picture is the input's (the test network's key frames are x4 copies of the input)."""
    rgb = source_clip(source)
    cases = {
        "yuv420p8": core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix=1, range_s="limited"),
        "yuv420p10": core.resize.Bicubic(rgb, format=vs.YUV420P10, matrix=6, range_s="full"),
        "gray8": core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix=1).std.ShufflePlanes(0, vs.GRAY),
        "rgb24": core.resize.Point(rgb, format=vs.RGB24),
        "untagged": core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix=6, range_s="limited").std.RemoveFrameProps(
            ["_Matrix", "_Range", "_ColorRange", "_Primaries", "_Transfer"]),
    }
    cases["yuv420p8"] = core.std.SetFrameProps(cases["yuv420p8"], _Primaries=1, _Transfer=1, Custom=7)
    cases["yuv420p10"] = core.std.SetFrameProps(cases["yuv420p10"], _Primaries=9, _Transfer=16, _ChromaLocation=2)
    result = {}
    for name, clip in cases.items():
        out = stvsr(clip, model, factor=1, scene_cuts="off")
        keys = ("_Matrix", "_Range", "_Primaries", "_Transfer", "_ChromaLocation", "Custom")
        f_in, f_out = clip.get_frame(1), out.get_frame(2)
        err = 0.0
        for p in range(clip.format.num_planes):
            a = np.asarray(f_in[p]).astype(np.float64)
            b = np.asarray(f_out[p]).astype(np.float64)
            b = b.reshape(a.shape[0], b.shape[0] // a.shape[0], a.shape[1], b.shape[1] // a.shape[1]).mean(axis=(1, 3))
            err = max(err, float(np.abs(a - b).mean()) / ((1 << clip.format.bits_per_sample) - 1))
        result[name] = {"format_in": clip.format.name, "format_out": out.format.name,
                        "size": [out.width, out.height], "size_in": [clip.width, clip.height],
                        "frames": [clip.num_frames, out.num_frames],
                        "props_in": {k: int(f_in.props[k]) for k in keys if k in f_in.props},
                        "props_out": {k: int(f_out.props[k]) for k in keys if k in f_out.props},
                        "error": err}
    return result


if __name__ == "__main__":
    check, *args = sys.argv[1:]
    if check == "compare":
        print(json.dumps(compare(args[0], args[1], args[2], int(args[3]), args[4] if len(args) > 4 else "")))
    elif check == "cuts":   # scene_cuts="auto" on a clip: the detector fed VapourSynth's frames
        print(json.dumps({"auto": clip_cuts(source_clip(args[0]), "auto"),
                          "yuv": clip_cuts(core.resize.Bicubic(source_clip(args[0]), format=vs.YUV420P8, matrix=1))}))
    elif check == "once":   # every frame asked at once, shuffled, from 8 threads: each window computed once
        from stvsr.runtime.onepass.compute import WindowCompute

        starts, run = [], WindowCompute.run

        def slow_run(self, window, frames):   # a network that takes a while: other threads ask meanwhile
            starts.append(window.start)
            time.sleep(0.2)
            return run(self, window, frames)

        WindowCompute.run = slow_run
        core.num_threads = 8
        out = stvsr(source_clip(args[1]), args[0], factor=3, scene_cuts="off", cache_windows=64)
        order = list(range(out.num_frames))
        random.Random(1).shuffle(order)
        for future in [out.get_frame_async(n) for n in order]:
            future.result()
        print(json.dumps({"frames": out.num_frames, "runs": len(starts), "windows": len(set(starts))}))
    elif check == "errors":   # bad arguments: one vs.Error line starting "stvsr:", before the clip is read
        clip = source_clip(args[1])
        said = []
        for call in (lambda: stvsr(clip, args[0] + ".missing"), lambda: stvsr(clip, args[0], factor=0),
                     lambda: stvsr(clip, args[0], scene_cuts=[3, 99])):
            try:
                call()
                said.append(None)
            except vs.Error as exc:
                said.append(str(exc))
        print(json.dumps(said))
    elif check == "yuv":
        print(json.dumps(yuv(*args)))
