"""The work folder of a segmented run deletes only what stvsr wrote (issue 21, items 1, 6, 7, 17).

Hostile folders, names and manifests, each through real runs (the CLI in a subprocess where the
message and exit code matter): a folder with the user's own files is refused, an input, an
output or a foreign file is never deleted or joined, a folder stvsr did not create is left in
place, a damaged manifest is discarded with one line, and the lock is held until the clean-up
ends. Test networks and 30-frame crops of bikes from ``tests/test_runtime_segments.py``.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stvsr.runtime.jobs.workdir import LOCK, MANIFEST, WorkDir, WorkDirError
from tests.test_runtime_segments import LOSSLESS, assert_same, clip, decode, make_clip, run, times_model  # noqa: F401

FAST = ["--factor", "1", "--scene-cuts", "off", "--segment-frames", "10", "-q"]   # 30 frames: 3 parts
FFV1 = ["--codec", "ffv1", "--pix-fmt", "yuv444p"]


def cli(*args, cwd: Path | None = None) -> tuple[int, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=180)
    return proc.returncode, proc.stderr.splitlines()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(lines: list[str]) -> str:
    assert len(lines) == 1 and lines[0].startswith("stvsr-run: error: "), lines
    return lines[0]


# -- item 1: a folder stvsr does not own is refused, untouched ---------------------------------------

@pytest.mark.parametrize("case", ["own manifest and part", "input at a part name", "temporary output of another run"])
def test_work_dir_with_files_stvsr_did_not_write_is_refused_untouched(case, times_model, clip, tmp_path):
    """``--work-dir .`` where the user keeps a manifest.json and a part-00001.mp4 of their own; an input
    named u/part-00001.mp4 with --work-dir u; a folder holding another stvsr-run's temporary output."""
    folder = tmp_path / "u"
    folder.mkdir()
    source = Path(clip).read_bytes()
    if case == "own manifest and part":
        (folder / "manifest.json").write_text('{"my": "notes"}')
        (folder / "part-00001.mp4").write_bytes(source)
        (folder / "in.mp4").write_bytes(source)
        args, cwd = ["in.mp4", "-o", "out.mp4", "--work-dir", "."], folder
    elif case == "input at a part name":
        (folder / "part-00001.mp4").write_bytes(source)
        args, cwd = ["u/part-00001.mp4", "-o", "out.mp4", "--work-dir", "u"], tmp_path
    else:
        (folder / ".stvsr-1a2b3c4d.mkv").write_bytes(source)
        args, cwd = [clip, "-o", "out.mp4", "--work-dir", "u"], tmp_path
    before = snapshot(tmp_path)
    code, lines = cli(times_model, *args, *FAST, cwd=cwd)
    assert code == 1
    assert "not empty and holds no stvsr manifest" in one_error(lines) and str(folder) in lines[0], lines
    assert snapshot(tmp_path) == before, "nothing is written, nothing deleted"


def test_a_kept_part_given_as_input_is_refused_not_deleted(times_model, clip, tmp_path):
    work = tmp_path / "w"
    code, lines = cli(times_model, clip, "-o", tmp_path / "a.mkv", "--work-dir", work, "--keep-parts", *FFV1, *FAST)
    assert code == 0, lines
    part = work / "part-00001.mkv"
    before = snapshot(tmp_path)
    code, lines = cli(times_model, part, "-o", tmp_path / "b.mkv", "--work-dir", work, *FFV1, *FAST)
    assert code == 1 and f"the input {part} is a file of the work folder {work}" in one_error(lines), lines
    assert snapshot(tmp_path) == before


def test_output_named_like_a_part_is_kept_and_the_users_empty_folder_stays(times_model, clip, tmp_path):
    """``-o W/part-00099.mp4 --work-dir W`` (W empty, made by the user): the output stays, and so does W."""
    work = tmp_path / "W"
    work.mkdir()
    code, lines = cli(times_model, clip, "-o", work / "part-00099.mp4", "--work-dir", work, *FAST)
    assert code == 0, lines
    assert sorted(os.listdir(work)) == ["part-00099.mp4"]
    frames, _ = decode(str(work / "part-00099.mp4"))
    assert len(frames) == 59


def test_output_where_a_part_goes_is_refused_before_computing(times_model, clip, tmp_path):
    work = tmp_path / "W"
    work.mkdir()
    code, lines = cli(times_model, clip, "-o", work / "part-00002.mp4", "--work-dir", work, *FAST)
    assert code == 1 and f"the output {work / 'part-00002.mp4'} is a file of the work folder" in one_error(lines)
    assert os.listdir(work) == []


def test_new_work_dir_is_printed_normalised_and_a_first_run_says_computing(times_model, clip, tmp_path):
    (tmp_path / "e").mkdir()
    code, lines = cli(times_model, clip, "-o", "out.mp4", "--work-dir", "e/../W", *FAST[:-1], cwd=tmp_path)
    assert code == 0, lines
    assert any(line.endswith(f"in 3 parts (work folder {tmp_path / 'W'})") for line in lines), lines
    assert any(line == "stvsr-run: computing 3 parts, 30 windows" for line in lines), lines
    assert not any("resumed:" in line for line in lines), lines
    assert not (tmp_path / "W").exists(), "a folder stvsr created is removed after the join"


def test_output_name_of_250_bytes_runs_in_segments(times_model, clip, tmp_path):
    """The default work folder ``.NAME.stvsr-parts`` would be 263 bytes: its name is shortened."""
    (tmp_path / "sub").mkdir()
    name = "n" * 246 + ".mp4"
    code, lines = cli(times_model, clip, "-o", f"sub/../{name}", *FAST[:-1], cwd=tmp_path)
    assert code == 0, lines
    folder = [line for line in lines if "work folder" in line]
    assert folder and "/../" not in folder[0] and f"(work folder {tmp_path}/." in folder[0], lines
    assert sorted(os.listdir(tmp_path)) == [name, "sub"]


# -- the lock ----------------------------------------------------------------------------------------

def test_lock_is_held_until_the_clean_up_ends(tmp_path):
    """While remove() deletes the manifest, another open of the lock cannot take it (observed through an
    audit hook on the deletion, from a second open file description)."""
    work = tmp_path / "w"
    seen: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event == "os.remove" and Path(os.fsdecode(args[0])).name == MANIFEST:
            fd = os.open(work / LOCK, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("another run got the lock")
            except BlockingIOError:
                seen.append("held")
            finally:
                os.close(fd)

    sys.addaudithook(hook)
    try:
        w = WorkDir(work, {"input": {}, "model": "0", "options": {}, "plan": []}, ".mkv")
        with pytest.raises(WorkDirError, match="another stvsr-run is using"):
            WorkDir(work, {"input": {}, "model": "0", "options": {}, "plan": []}, ".mkv")
        w.remove()
    finally:
        active[0] = False
    assert seen == ["held"] and not work.exists()


# -- item 6: the manifest is validated ---------------------------------------------------------------

@pytest.fixture(scope="module")
def kept_parts(times_model, clip, tmp_path_factory):
    """A work folder with the 3 finished FFV1 parts of ``clip`` and the one-pass reference."""
    tmp = tmp_path_factory.mktemp("kept")
    run(times_model, clip, tmp / "ref.mkv", None, **LOSSLESS)
    run(times_model, clip, tmp / "parts.mkv", 10, work_dir=str(tmp / "w"), keep_parts=True, **LOSSLESS)
    return tmp


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DAMAGES = ("../x.mkv", "absolute path", "symlink", "parts is a list", "input is a string", "truncated")


def damage_manifest(work: Path, foreign: Path, damage: str) -> None:
    """Damage the manifest of the work folder ``work`` (.mkv parts) as a hostile user would: a part
    pointing at ``foreign`` (a real video outside it: by ``../``, an absolute path, or a symlink in
    place of a part, sha256 adjusted), valid JSON of the wrong shape, or cut short."""
    path = work / MANIFEST
    manifest = json.loads(path.read_text())
    if damage == "../x.mkv":
        manifest["parts"]["1"] = {"file": f"../{foreign.name}", "sha256": _sha(foreign)}
    elif damage == "absolute path":
        manifest["parts"]["1"] = {"file": str(foreign), "sha256": _sha(foreign)}
    elif damage == "symlink":
        (work / "part-00001.mkv").unlink()
        (work / "part-00001.mkv").symlink_to(foreign)
        manifest["parts"]["1"]["sha256"] = _sha(foreign)
    elif damage == "parts is a list":
        manifest["parts"] = list(manifest["parts"].values())
    elif damage == "input is a string":
        manifest["input"] = "bikes"
    text = json.dumps(manifest, indent=1)
    path.write_text(text[:len(text) // 2] if damage == "truncated" else text)


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_manifest_is_discarded_and_no_foreign_file_is_joined_or_deleted(damage, kept_parts, times_model,
                                                                                 clip, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(kept_parts / "w", work)
    foreign = tmp_path / "x.mkv"
    shutil.copy(kept_parts / "w" / "part-00002.mkv", foreign)   # a real video: the join would take it
    damage_manifest(work, foreign, damage)
    lines: list[str] = []
    run(times_model, clip, tmp_path / "out.mkv", 10, status=lines.append, work_dir=str(work), **LOSSLESS)
    if damage != "symlink":  # a link where a part was: that part is recomputed, the rest of the manifest holds
        assert any(f"discarding the manifest in {work}: it is damaged" in m for m in lines), lines
    assert_same(str(kept_parts / "ref.mkv"), str(tmp_path / "out.mkv"))
    assert _sha(foreign) == _sha(kept_parts / "w" / "part-00002.mkv"), "the foreign file is untouched"
    assert not work.exists(), os.listdir(work)


# -- item 7: the parts' format is part of the key ----------------------------------------------------

def test_changing_the_output_container_discards_the_old_parts(kept_parts, times_model, clip, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(kept_parts / "w", work)
    lines: list[str] = []
    run(times_model, clip, tmp_path / "out.mp4", 10, status=lines.append, work_dir=str(work), **LOSSLESS)
    assert any("discarding 3 finished part(s)" in m and "options changed (part_format)" in m for m in lines), lines
    run(times_model, clip, tmp_path / "ref.mp4", None, **LOSSLESS)
    assert_same(str(tmp_path / "ref.mp4"), str(tmp_path / "out.mp4"))
    assert not work.exists()
