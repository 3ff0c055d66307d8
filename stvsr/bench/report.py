"""Write benchmark results as Markdown, JSON and a plot."""
from __future__ import annotations

import json
from pathlib import Path

from stvsr.bench.published import PUBLISHED
from stvsr.outfile import atomic_output


def _atomic_write(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:  # short temp name, umask mode, removed on any error
        Path(tmp).write_text(text)


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(result: dict) -> str:
    """The human-readable report: machine, method, per-network tables, comparisons."""
    m = result["machine"]
    lines = [
        f"# stvsr benchmark ({result['mode']} mode)", "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), "
        f"onnxruntime {m.get('onnxruntime')}, tensorrt {m.get('tensorrt') or 'absent'}; {m['platform']}"
        + (f"; GPU {m['gpu']} (the pytorch-cuda rows)." if m.get("gpu") else "."),
        f"Matrix-multiply peak measured in this run: {result['matmul_peak_gflops']:.1f} GFLOP/s "
        f"(float32 2048x2048 matmul, best of PyTorch {result['matmul_gflops']['pytorch']:.1f} and ONNX Runtime "
        f"{result['matmul_gflops']['onnxruntime']:.1f}).",
        f"Method: {result['method']}", "",
        "## Parameters", "",
        "| network | ours | paper | match |", "|---|---:|---:|---|",
    ]
    for name, net in result["networks"].items():
        paper = PUBLISHED.get(name, {}).get("params_m")
        ours_m = net["params"] / 1e6
        match = "yes" if paper is not None and abs(round(ours_m, 2) - paper) < 0.051 else ("-" if paper is None else "no")
        lines.append(f"| {name} | {net['params']:,} ({ours_m:.2f}M) | {_fmt(paper, '.2f')}M | {match} |")
    lines += [""] + [f"- {name}: weights {net['weights']}; footage {net['footage']}; LR {net['lr_size']} "
                     f"(paper {net['paper_lr_size']}); inputs {net['inputs']}"
                     + (f"; {net['note']}" if net.get("note") else "") for name, net in result["networks"].items()]
    if result.get("skipped"):
        lines += ["", "Backends not run: " + "; ".join(result["skipped"]) + "."]
    lines += ["", "## Speed and fidelity", "",
              "Latency is per output frame (one window's latency divided by the frames it yields); "
              "fidelity is PSNR (peak 1) and relative L2 error against PyTorch FP32 on real footage "
              "(with random weights the outputs are not images in [0, 1], so the relative error is the "
              "meaningful figure); efficiency is achieved GFLOP/s over the matmul peak above.", "",
              "| network | LR size | backend | precision | ms / out frame | spread (IQR) | out fps | "
              "GFLOPs / out frame | GFLOP/s | efficiency | PSNR vs FP32 (dB) | rel. L2 vs FP32 |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, net in result["networks"].items():
        for row in net["runs"]:
            if row.get("error"):
                lines.append(f"| {name} | {row['size']} | {row['backend']} | {row['precision']} | "
                             f"failed: {row['error']} | | | | | | | |")
                continue
            lines.append(
                f"| {name} | {row['size']} | {row['backend']} | {row['precision']} | "
                f"{row['ms_per_frame']:.1f} | {row['iqr_ms']:.1f} | {row['fps']:.3f} | "
                f"{_fmt(net.get('gflops_per_frame'), '.1f')} | {_fmt(row.get('gflops_per_s'), '.1f')} | "
                f"{_fmt(row.get('efficiency'), '.0%')} | {'exact' if row.get('psnr_exact') else _fmt(row.get('psnr'), '.2f')} | "
                f"{_fmt(row.get('rel_l2'), '.2g')} |")
    if result.get("comparisons"):
        lines += ["", "## The papers' runtime comparisons, reproduced here", "",
                  "| comparison | measured here | published | note |", "|---|---:|---:|---|"]
        for c in result["comparisons"]:
            lines.append(f"| {c['name']} | {_fmt(c.get('measured'), '.2f')} | {_fmt(c.get('published'), '.2f')} | "
                         f"{c.get('note', '')} |")
    lines += ["", "## Published figures", "", "| network | figures | source |", "|---|---|---|"]
    for name, pub in PUBLISHED.items():
        figs = ", ".join(f"{k}={v}" for k, v in pub.items() if k != "source")
        lines.append(f"| {name} | {figs} | {pub['source']} |")
    if result.get("not_compared"):
        lines += ["", "## Not compared", ""] + [f"- {x}" for x in result["not_compared"]]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> bool:
    """Bar chart of ms per output frame per network and backend; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    short = {"pytorch": "PyTorch", "onnxruntime-cpu": "ORT", "tensorrt": "TRT"}
    labels, values, colours = [], [], []
    palette = {"fp32": "tab:blue", "fp16": "tab:orange", "int8": "tab:green"}
    for name, net in result["networks"].items():
        for row in net["runs"]:
            if not row.get("error"):
                labels.append(f"{name}\n{short.get(row['backend'], row['backend'])}\n{row['precision']}")
                values.append(row["ms_per_frame"])
                colours.append(palette.get(row["precision"], "tab:gray"))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 4))
    ax.bar(range(len(values)), values, color=colours)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("ms per output frame (lower is better)")
    ax.set_yscale("log")
    ax.set_title(f"stvsr latency on {result['machine']['cpu']} ({result['mode']} mode)")
    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return True


def write_all(result: dict, out_dir: Path) -> list[Path]:
    """results.md, results.json and latency.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "results.md", out_dir / "results.json"]
    _atomic_write(written[0], markdown(result))
    _atomic_write(written[1], json.dumps(result, indent=2, sort_keys=True) + "\n")
    if plot(result, out_dir / "latency.png"):
        written.append(out_dir / "latency.png")
    return written
