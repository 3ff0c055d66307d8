"""The input is opened once to be described, then only to be read (issue 24).

``stvsr-run`` runs in a subprocess whose ``av.open`` is wrapped to record every open of the input
(the stvsr modules on the stack at each open). A one-pass run opens it once for ``media.probe``
(picture, timing and the other streams), once for the cut detector's decode (``--scene-cuts auto``;
a cut file is checked against the probe, not the file), and then only for the data passes: the
reader's decode and the audio copy (whose stream plan and packet copy share one open). A segmented
run: the probe, the detector, one reader per part, and the join's audio copy.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import av
import pytest

from tests.test_runtime import clip_with_audio, times_model  # noqa: F401 - fixtures

# Runs stvsr-run's main in this process with av.open recording the opens of argv's input.
RUNNER = """
import atexit, json, os, sys, av
log, input_path = sys.argv.pop(1), os.path.realpath(sys.argv[2])
opened, real_open = [], av.open

def recording_open(file, *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and os.path.realpath(os.fspath(file)) == input_path:
        stack, frame = [], sys._getframe(1)
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            if name.startswith("stvsr") and (not stack or stack[-1] != name):
                stack.append(name)
            frame = frame.f_back
        opened.append(stack)
    return real_open(file, *args, **kwargs)

av.open = recording_open
atexit.register(lambda: open(log, "w").write(json.dumps(opened)))
from stvsr.runtime.cli import main
main()
"""


def _opens(tmp_path, model, clip, *options) -> tuple[list[list[str]], str]:
    """The stacks of the input's opens in one ``stvsr-run``, and its messages."""
    log = tmp_path / "opens.json"
    out = tmp_path / "out.mkv"
    r = subprocess.run([sys.executable, "-c", RUNNER, str(log), model, clip, "-o", str(out), *options],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert r.returncode == 0, r.stderr
    assert out.is_file()
    return json.loads(log.read_text()), r.stderr


def _by(opens: list[list[str]], module: str) -> int:
    return sum(any(name == module for name in stack) for stack in opens)


@pytest.mark.parametrize("cuts", ["auto", "file"])
def test_a_one_pass_run_opens_its_input_once_to_probe_then_only_to_read(times_model, clip_with_audio, tmp_path, cuts):
    options = ["--scene-cuts", "auto"]
    if cuts == "file":
        (tmp_path / "cuts.txt").write_text("3\n")
        options = ["--scene-cuts", str(tmp_path / "cuts.txt")]
    opens, _ = _opens(tmp_path, times_model, clip_with_audio, *options)
    detector = 1 if cuts == "auto" else 0
    described = "\n".join(" <- ".join(stack) for stack in opens)
    assert len(opens) == 3 + detector, described                       # probe, (detector), reader, audio copy
    assert _by(opens, "stvsr.runtime.media.probe") == 1, described      # picture, timing, streams: one open
    assert _by(opens, "stvsr.runtime.planning.shots") == detector, described
    assert _by(opens, "stvsr.runtime.media.decode") == 1 + detector, described  # the reader's decode (+ detector's)
    assert _by(opens, "stvsr.runtime.media.passthrough") == 1, described  # the audio planned and copied: one open
    with av.open(str(tmp_path / "out.mkv")) as out:                     # and the audio was copied
        assert len(out.streams.audio) == 1 and sum(1 for _ in out.demux(out.streams.audio[0])) > 1


def test_a_segmented_run_opens_its_input_once_to_probe_then_once_per_part_and_for_the_joins_audio(
        times_model, clip_with_audio, tmp_path):
    opens, said = _opens(tmp_path, times_model, clip_with_audio, "--segment-frames", "2", "--scene-cuts", "off")
    parts = int(re.search(r" in (\d+) parts \(work folder", said).group(1))
    described = "\n".join(" <- ".join(stack) for stack in opens)
    assert parts >= 2 and len(opens) == 1 + parts + 1, described
    assert _by(opens, "stvsr.runtime.media.probe") == 1, described
    assert _by(opens, "stvsr.runtime.onepass.threads") == parts, described           # each part's reader
    assert _by(opens, "stvsr.runtime.media.join") == 1, described                    # the audio, planned and copied
