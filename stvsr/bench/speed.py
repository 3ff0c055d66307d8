"""Speed changes measured against today's graphs in one run (``stvsr-bench --speed``).

Each row times a baseline graph and its replacement on ONNX Runtime CPU the same way: the same
real frames at the papers' LR size, the same thread count, a warm-up, then timed runs of the two
alternated (A B A B ...) so that load from other processes hits both alike; the ratio is baseline
median / candidate median per *used* output frame, beside the check that the change is exact (or,
for INT8, its fidelity against FP32).

Rows: fmu without RSDN's unused frame-3 step; zsm without the duplicate boundary output; zsm CPU
INT8 (uint8 activations) and TensorRT-style symmetric INT8 against FP32; ONNX ``DeformConv``
against a standard-op decomposition (``GridSample`` bilinear gather + one ``MatMul``) at zsm's
deformable-conv sizes.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from stvsr.bench.measure import machine_info
from stvsr.bench.runner import Config, Graphs, _footage, _weights, default_video, lr_size
from stvsr.export.graphs import base_metadata, example_inputs, graph_module
from stvsr.export.verify import compare, ort_session
from stvsr.timing import Timing, time_interleaved_clocks

ZSM_CALIB_SIDE = 32   # zsm INT8 calibration at 32x32: ORT's calibrator holds every activation (64x64: >16 GB)
GOALS = {"fmu-rsdn": 1.15, "zsm-tiled": 1.05, "zsm-int8-cpu": 2.0}


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _row(network: str, change: str, key: str | None, size: str, clocks: dict[str, dict[str, Timing]],
         baseline: str, candidate: str, used: dict[str, int], check: str, extra: dict | None = None) -> dict:
    """Ratio from CPU time (single-threaded runs: other processes' load barely changes it), wall time beside."""
    def per(clock: str) -> dict[str, float]:
        return {k: clocks[clock][k].median / used[k] for k in (baseline, candidate)}

    cpu, wall = per("cpu"), per("wall")
    return {"network": network, "change": change, "size": size, "baseline": baseline, "candidate": candidate,
            "baseline_ms": 1000 * cpu[baseline], "candidate_ms": 1000 * cpu[candidate],
            "ratio": cpu[baseline] / cpu[candidate], "wall_ratio": wall[baseline] / wall[candidate],
            "goal": GOALS.get(key or ""), "check": check, "used_frames": used,
            "timings": {clock: {k: clocks[clock][k].to_dict() for k in (baseline, candidate)} for clock in clocks},
            **(extra or {})}


def _sessions(protos: dict[str, object], threads: int) -> dict[str, object]:
    return {k: ort_session(p, threads=threads) for k, p in protos.items()}


def _time_sessions(sessions: dict, feed: dict, cfg: Config) -> tuple[dict[str, dict[str, Timing]], dict[str, np.ndarray]]:
    outs = {k: s.run(None, feed)[0] for k, s in sessions.items()}  # first call: output sample, untimed
    fns: dict[str, Callable] = {k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}
    return time_interleaved_clocks(fns, max(0, cfg.warmup - 1), cfg.repeats), outs


def _network_inputs(name: str, meta, cfg: Config) -> tuple[dict[str, np.ndarray], str]:
    w, h = lr_size(name, cfg)
    frames, _ = _footage(cfg.video, meta.window, w, h)
    inputs = example_inputs(meta, h, w, times=cfg.times, frames=frames)
    return {k: v.numpy() for k, v in inputs.items()}, f"{w}x{h}"


def _pick(clocks: dict[str, dict[str, Timing]], *keys: str) -> dict[str, dict[str, Timing]]:
    return {clock: {k: t[k] for k in keys} for clock, t in clocks.items()}


def fmu_rows(cfg: Config) -> list[dict]:
    """fmu's graph with and without RSDN's step for frame 3 (its output was never used)."""
    weights, _ = _weights("fmu")
    meta = base_metadata("fmu")
    today = graph_module("fmu", weights)
    today.net.interpolate_sr_frames = None          # the graph as exported before: all four RSDN steps
    new = graph_module("fmu", weights)
    feed, size = _network_inputs("fmu", meta, cfg)
    cfg.log("[fmu] exporting both graphs")
    protos = {"all 4 RSDN steps": Graphs(today, meta, cfg).get("fp32"),
              "3 RSDN steps": Graphs(new, meta, cfg).get("fp32")}
    timings, outs = _time_sessions(_sessions(protos, cfg.threads), feed, cfg)
    diff = float(np.abs(outs["3 RSDN steps"] - outs["all 4 RSDN steps"]).max())
    n = outs["3 RSDN steps"].shape[1]
    row = _row("fmu", "skip RSDN's unused frame-3 step", "fmu-rsdn", size, timings, "all 4 RSDN steps",
               "3 RSDN steps", {"all 4 RSDN steps": n, "3 RSDN steps": n},
               f"outputs equal: max abs difference {diff:.2g}", {"max_abs_diff": diff})
    cfg.log(f"[fmu] ratio {row['ratio']:.3f} (CPU time), {row['wall_ratio']:.3f} (wall)")
    return [row]


def zsm_rows(cfg: Config) -> list[dict]:
    """zsm: 7-output vs 6-output (tiled) graph, then FP32 vs the two INT8 targets on the tiled graph."""
    weights, _ = _weights("zsm")
    meta_all, meta_tiled = base_metadata("zsm"), base_metadata("zsm", tiled=True)
    g_all = Graphs(graph_module("zsm", weights), meta_all, cfg)
    g_tiled = Graphs(graph_module("zsm", weights, tiled=True), meta_tiled, cfg)
    g_tiled.calib_side = ZSM_CALIB_SIDE
    feed, size = _network_inputs("zsm", meta_all, cfg)
    cfg.log("[zsm] exporting the 7-output and 6-output graphs")
    protos = {"7 outputs (6 used at stride 3)": g_all.get("fp32"), "6 outputs (tiled)": g_tiled.get("fp32")}
    cfg.log("[zsm] quantizing the 6-output graph for both INT8 targets")
    protos["int8 tensorrt (symmetric)"] = g_tiled.get("int8", "tensorrt")
    protos["int8 cpu (uint8 activations)"] = g_tiled.get("int8", "cpu")
    timings, outs = _time_sessions(_sessions(protos, cfg.threads), feed, cfg)
    a, b = "7 outputs (6 used at stride 3)", "6 outputs (tiled)"
    diff = float(np.abs(outs[b] - outs[a][:, :-1]).max())
    rows = [_row("zsm", "drop the duplicate boundary output (stride 3 windows)", "zsm-tiled", size,
                 _pick(timings, a, b), a, b, {a: 6, b: 6},
                 f"the 6 outputs equal the first 6 of 7: max abs difference {diff:.2g}", {"max_abs_diff": diff})]
    for label, key in (("int8 cpu (uint8 activations)", "zsm-int8-cpu"), ("int8 tensorrt (symmetric)", None)):
        fid = compare(outs[label], outs[b])
        rows.append(_row("zsm", f"INT8 on ONNX Runtime CPU: {label}", key, size, _pick(timings, b, label),
                         b, label, {b: 6, label: 6},
                         f"vs FP32 graph: PSNR {fid.psnr:.2f} dB, relative L2 {fid.rel_l2:.3g}",
                         {"psnr_vs_fp32": fid.psnr, "rel_l2_vs_fp32": fid.rel_l2}))
    for r in rows:
        cfg.log(f"[zsm] {r['change']}: ratio {r['ratio']:.3f} (CPU time), {r['wall_ratio']:.3f} (wall)")
    return rows


class _DeformLayer(nn.Module):
    """One of zsm's deformable convolutions (DCN_sep: offsets and mask from a second feature map)."""

    def __init__(self, dcn: nn.Module, decomposed: bool):
        super().__init__()
        self.dcn, self.decomposed = dcn, decomposed

    def forward(self, x: torch.Tensor, fea: torch.Tensor) -> torch.Tensor:
        from stvsr.ops.deform_conv import deform_conv2d, deform_conv2d_reference

        o1, o2, m = torch.chunk(self.dcn.conv_offset_mask(fea), 3, dim=1)
        offset, mask = torch.cat((o1, o2), dim=1), torch.sigmoid(m)
        if self.decomposed:   # bilinear gather (GridSample) + one MatMul, standard ONNX ops only
            return deform_conv2d_reference(x, offset, mask, self.dcn.weight, self.dcn.bias, (1, 1), (1, 1), (1, 1), 1)
        return deform_conv2d(x, offset, mask, self.dcn.weight, self.dcn.bias, padding=1)


def deform_rows(cfg: Config) -> list[dict]:
    """ONNX DeformConv vs the standard-op decomposition, at zsm's three pyramid levels."""
    import onnx

    from stvsr.export.onnx_export import register_symbolics

    weights, _ = _weights("zsm")
    net = graph_module("zsm", weights).net
    w, h = lr_size("zsm", cfg)
    rows = []
    register_symbolics(19)
    for level, div in (("L1", 1), ("L2", 2), ("L3", 4)):
        dcn = getattr(net.pcd_align, f"{level}_dcnpack_1")
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 64, h // div, w // div, generator=g)
        fea = torch.randn(1, 64, h // div, w // div, generator=g)
        protos = {}
        for label, dec in (("ONNX DeformConv", False), ("GridSample + MatMul", True)):
            path = Path(os.environ.get("TMPDIR", "/tmp")) / f"stvsr-speed-dcn-{os.getpid()}.onnx"
            with torch.no_grad():
                torch.onnx.export(_DeformLayer(dcn, dec).eval(), (x, fea), str(path), dynamo=False, opset_version=19,
                                  input_names=["x", "fea"], output_names=["y"])
            protos[label] = onnx.load(str(path))
            path.unlink()
        feed = {"x": x.numpy(), "fea": fea.numpy()}
        timings, outs = _time_sessions(_sessions(protos, cfg.threads), feed, cfg)
        diff = float(np.abs(outs["GridSample + MatMul"] - outs["ONNX DeformConv"]).max())
        ops = sorted({n.op_type for n in protos["GridSample + MatMul"].graph.node} - {"Constant"})
        rows.append(_row("zsm", f"DeformConv {level} (64 ch, 8 deformable groups) as standard ops", None,
                         f"{w // div}x{h // div}", timings, "ONNX DeformConv", "GridSample + MatMul",
                         {"ONNX DeformConv": 1, "GridSample + MatMul": 1},
                         f"equal: max abs difference {diff:.2g}; decomposition ops: {', '.join(ops)}",
                         {"max_abs_diff": diff}))
        cfg.log(f"[deform] {level}: ratio {rows[-1]['ratio']:.3f} (CPU time), {rows[-1]['wall_ratio']:.3f} (wall)")
    return rows


SECTIONS = {"fmu": fmu_rows, "zsm": zsm_rows, "deform": deform_rows}


def run_speed(cfg: Config, sections: list[str]) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start, load_before = time.perf_counter(), _load()
    rows = []
    for s in sections:
        rows += SECTIONS[s](cfg)
    info = machine_info()
    return {"mode": "speed", "machine": info, "load_average_before": load_before, "load_average_after": _load(),
            "config": {"sections": sections, "threads": cfg.threads, "warmup": cfg.warmup, "repeats": cfg.repeats,
                       "size": cfg.size, "video": cfg.video, "times": cfg.times},
            "rows": rows, "wall_seconds": time.perf_counter() - start}


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def write_speed(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    cfg = result["config"]
    m = result["machine"]
    lines = [
        "# stvsr speed changes against today's graphs (each ratio measured in one run)", "",
        f"Machine: {m.get('cpu')}, {m.get('cpu_count')} CPUs shared with other processes; onnxruntime "
        f"{m.get('onnxruntime')}, torch {m.get('torch')}. Load average (1, 5, 15 min) before "
        f"{result['load_average_before']}, after {result['load_average_after']}.",
        f"Method: ONNX Runtime CPU, {cfg['threads'] or 'default'} intra-op thread(s); real frames ({cfg['video'] and os.path.basename(cfg['video'])}) "
        f"at the papers' LR size; {cfg['warmup']} warm-up call(s) (the first is the output checked), then "
        f"{cfg['repeats']} timed runs of each graph alternated A B A B; medians of this process's CPU time "
        "(single-threaded ONNX Runtime runs on the calling thread, so other processes' load barely changes it; "
        "the wall-clock ratio, which it does change, is beside). Time per *used* output frame: "
        "a zsm window at stride 3 yields 6 new frames with either graph. Ratio = baseline / candidate "
        "(above 1: the candidate is faster). Weights random (seeded); INT8 calibrated on 2 windows of the "
        "footage (zsm at 32x32).", "",
        "| network | change | LR size | baseline | candidate | baseline ms/frame | candidate ms/frame | ratio | wall-clock ratio | goal | check |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['network']} | {r['change']} | {r['size']} | {r['baseline']} | {r['candidate']} | "
                     f"{r['baseline_ms']:.1f} | {r['candidate_ms']:.1f} | {r['ratio']:.3f} | {r['wall_ratio']:.3f} | "
                     f"{_fmt(r['goal'], '.2f')} | {r['check']} |")
    lines += ["", f"Wall time {result['wall_seconds']:.0f} s." + (f" {result['note']}" if result.get("note") else ""), ""]
    md, js = out / "results.md", out / "results.json"
    md.write_text("\n".join(lines))
    js.write_text(json.dumps(result, indent=1, default=str))
    return [md, js]


def merge(results: list[dict], note: str = "") -> dict:
    """One report from runs of different sections (each ratio still comes from one run)."""
    first, last = results[0], results[-1]
    config = dict(first["config"], sections=[s for r in results for s in r["config"]["sections"]])
    return {**first, "config": config, "rows": [row for r in results for row in r["rows"]],
            "load_average_after": last["load_average_after"], "note": note,
            "wall_seconds": max(r["wall_seconds"] for r in results)}


def config(threads: int = 1, warmup: int = 1, repeats: int = 3, size=None, video: str | None = None,
           log=print) -> Config:
    return Config(mode="speed", models=["zsm", "fmu"], backends=["ort-fp32"], repeats=repeats, warmup=warmup,
                  threads=threads, size=size, video=video or default_video(), log=log)


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="fmu,zsm,deform")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--size", default=None, help="LR WxH instead of the papers' sizes")
    ap.add_argument("--out", default="stvsr-bench-speed", help="output folder (results.md, results.json)")
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.split("x")) if a.size else None
    cfg = config(a.threads, a.warmup, a.repeats, size, log=lambda s: print(s, file=sys.stderr, flush=True))
    res = run_speed(cfg, a.sections.split(","))
    for p in write_speed(res, Path(a.out)):
        print(p)
