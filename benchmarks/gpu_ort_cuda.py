#!/usr/bin/env python
"""Which nodes of each network's ONNX graph ONNX Runtime's CUDA provider leaves on the CPU.

    python benchmarks/gpu_ort_cuda.py --out ort_cuda.json [--onnx-dir DIR]
    python benchmarks/gpu_ort_cuda.py --dry-run

Needs onnxruntime with ``CUDAExecutionProvider`` (the onnxruntime-gpu build); with the CPU build it
says so and exits 0 with nothing measured (``"skipped"`` in the JSON). Graphs: ``DIR/<net>-fp32.onnx``
exported beforehand (``stvsr-export --model NET -o DIR/NET-fp32.onnx`` on any machine), or else zsm
alone, exported here at 32x32 (exporting all four takes minutes). Each graph runs once with
profiling on; the profile names the provider of every node that ran (``DeformConv`` and
``GridSample`` are the ones expected on the CPU). Exit status 1 when a session fails.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NETWORKS = ("zsm", "stvun", "starnet", "fmu")
CUDA_EP = "CUDAExecutionProvider"


def unavailable() -> str | None:
    """Why the CUDA provider cannot run here, or None."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if CUDA_EP not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} has no {CUDA_EP} (a CPU build; onnxruntime-gpu has it)"
    return None


def graphs(onnx_dir: Path | None) -> dict[str, str]:
    """network -> ONNX path: the pre-exported files, else zsm exported now at 32x32."""
    if onnx_dir is not None:
        found = {n: str(onnx_dir / f"{n}-fp32.onnx") for n in NETWORKS if (onnx_dir / f"{n}-fp32.onnx").is_file()}
        if found:
            return found
    from stvsr.export.graphs import base_metadata, example_inputs, graph_module
    from stvsr.export.onnx_export import DEFAULT_OPSET, atomic_save, export_graph
    from stvsr.export.weights import seeded_state_dict

    meta = base_metadata("zsm")
    side = max(32, meta.size_multiple)
    proto = export_graph(graph_module("zsm", seeded_state_dict("zsm", seed=0)), example_inputs(meta, side, side), meta,
                         DEFAULT_OPSET)
    path = Path(tempfile.mkdtemp(prefix="stvsr-ort-cuda-")) / "zsm-fp32.onnx"
    atomic_save(proto, path)
    return {"zsm": str(path)}


def placement(path: str, profile_dir: str) -> dict:
    """{op_type: {provider: nodes run}} of one profiled run at a small input size."""
    import onnxruntime as ort

    from stvsr.export.graphs import example_inputs
    from stvsr.metadata import read_onnx_metadata

    meta = read_onnx_metadata(path)
    side = max(32, meta.size_multiple)
    feeds = {k: v.numpy() for k, v in example_inputs(meta, side, side).items()}
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(profile_dir) / Path(path).stem)
    session = ort.InferenceSession(path, opts, providers=[CUDA_EP, "CPUExecutionProvider"])
    session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    counts: dict = collections.defaultdict(collections.Counter)
    for e in events:
        args = e.get("args") or {}
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and "provider" in args:
            counts[args.get("op_name", "?")][args["provider"]] += 1
    return {op: dict(c) for op, c in sorted(counts.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx-dir", type=Path, help="folder with <net>-fp32.onnx exported beforehand")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--dry-run", action="store_true", help="say what would run; load nothing")
    args = ap.parse_args(argv)
    if args.onnx_dir is not None and not args.onnx_dir.is_dir():
        print(f"gpu_ort_cuda: --onnx-dir {args.onnx_dir} is not a folder", file=sys.stderr)
        return 2
    reason = unavailable()
    if args.dry_run:
        src = f"ONNX files in {args.onnx_dir}" if args.onnx_dir else "zsm exported at 32x32"
        print(f"gpu_ort_cuda: no GPU (dry run): would profile {src} with {CUDA_EP}"
              + (f"; here: {reason}" if reason else ""))
        return 0
    result: dict = {"networks": {}}
    if reason:
        result["skipped"] = reason
        print(f"gpu_ort_cuda: skipped: {reason}")
    else:
        failed = False
        with tempfile.TemporaryDirectory(prefix="stvsr-ort-profile-") as tmp:
            for name, path in graphs(args.onnx_dir).items():
                try:
                    ops = placement(path, tmp)
                    on_cpu = {op: p["CPUExecutionProvider"] for op, p in ops.items() if "CPUExecutionProvider" in p}
                    result["networks"][name] = {"onnx": path, "ops": ops, "cpu_nodes": on_cpu}
                    print(f"gpu_ort_cuda: {name}: nodes on the CPU: {on_cpu or 'none'}", flush=True)
                except Exception as exc:  # noqa: BLE001 - one failing graph must not hide the others
                    failed = True
                    result["networks"][name] = {"onnx": path, "error": f"{type(exc).__name__}: {exc}"}
                    print(f"gpu_ort_cuda: {name}: FAILED: {exc}", file=sys.stderr)
        if failed:
            result["failed"] = True
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 1 if result.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
