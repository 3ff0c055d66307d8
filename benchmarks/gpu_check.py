#!/usr/bin/env python
"""The Python side of ``benchmarks/gpu_check.sh``: what the host can run, the dry run, the summary.

    python benchmarks/gpu_check.py env --out WORK/env.json --shell WORK/env.sh
    python benchmarks/gpu_check.py dry-run --plan WORK/plan.tsv
    python benchmarks/gpu_check.py summary --work WORK --out OUT/summary.md [--dry-run]

``env`` imports each package the steps use and asks torch and cuda-bindings about the GPU, and
writes ``HAVE_*`` flags that the shell script reads. ``dry-run`` takes the steps the script
planned (one per line: name, time limit, command) and runs each step's own argument handling
with ``--dry-run`` in this one process (no GPU is touched). ``summary`` writes the one table of
results from the JSON files the steps left in WORK.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

BUDGET_S = 480          # every step's time limit together stays under this (8 minutes on an H100-class GPU)
SUMMARY_S = 10          # the summary's own limit (gpu_check.sh: timeout 10)


# ----------------------------------------------------------------------------- env

def _version(module: str) -> tuple[str | None, str | None]:
    """(version, None) or (None, why not importable)."""
    try:
        m = __import__(module, fromlist=["_"])
    except Exception as exc:  # noqa: BLE001 - any import failure means "cannot use"
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
    return str(getattr(m, "__version__", "?")), None


def _installed(module: str) -> tuple[str | None, str | None]:
    """(version, None) or (None, "not installed") from package metadata alone (no import: fast)."""
    import importlib.metadata
    import importlib.util

    dist = {"cuda.bindings": "cuda-bindings", "skvideo": "scikit-video"}.get(module, module)
    try:
        if importlib.util.find_spec(module) is None:
            return None, "not installed"
    except (ImportError, ValueError):
        return None, "not installed"
    try:
        return importlib.metadata.version(dist), None
    except importlib.metadata.PackageNotFoundError:
        return "?", None


def host_env(query_gpu: bool = True) -> dict:
    """Packages, GPU and driver as this host has them; ``query_gpu=False`` imports nothing and asks
    nothing of a driver (package metadata only)."""
    env: dict = {"packages": {}, "missing": {}}
    for mod in ("torch", "triton", "cuda.bindings", "tensorrt", "onnxruntime", "click", "onnx", "numpy", "av",
                "skvideo"):
        # The steps import the first six (click: quick); the rest only need to be there (metadata: no slow import).
        imported = query_gpu and mod in ("torch", "triton", "cuda.bindings", "tensorrt", "onnxruntime", "click")
        version, why = _version(mod) if imported else _installed(mod)
        if version is None:
            env["missing"][mod] = why
        else:
            env["packages"][mod] = version
    env["torch_cuda"] = False
    if query_gpu and "torch" in env["packages"]:
        import torch

        env["torch_cuda_build"] = torch.version.cuda
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            env.update(torch_cuda=True, gpu=torch.cuda.get_device_name(), arch=major * 10 + minor)
    if query_gpu and "cuda.bindings" in env["packages"]:
        try:
            from stvsr.plugins.ptx_launch import driver_version

            v = driver_version()
            env["driver_cuda"] = f"{v // 1000}.{v % 1000 // 10}"
        except Exception as exc:  # noqa: BLE001
            env["missing"]["cuda driver"] = str(exc)[:160]
    env["ort_providers"] = []
    if query_gpu and "onnxruntime" in env["packages"]:
        import onnxruntime

        env["ort_providers"] = list(onnxruntime.get_available_providers())
    return env


def capabilities(env: dict) -> dict[str, str | None]:
    """step -> None when it can run here, else the reason it cannot."""
    have = env["packages"]
    gpu = None if env.get("torch_cuda") else "torch sees no CUDA GPU (a CPU build of torch, or no driver)"

    def missing(*modules: str) -> str | None:
        gone = [f"{m} ({env['missing'].get(m, 'not installed')})" for m in modules if m not in have]
        return f"stvsr-bench needs {', '.join(gone)}" if gone else None

    need = {
        "ptx": None if "triton" in have else "triton is not installed",
        "kernels": gpu or ("cuda-bindings is not installed" if "cuda.bindings" not in have else None)
        or ("no CUDA driver: " + env["missing"]["cuda driver"] if "cuda driver" in env["missing"] else None),
        "bench": gpu or missing("click", "onnx"),   # the stvsr-bench CLI (click) and its graphs' metadata (onnx)
        "overlap": gpu or ("cuda-bindings is not installed" if "cuda.bindings" not in have else None),
        "ort-cuda": None if "CUDAExecutionProvider" in env.get("ort_providers", []) else
        "onnxruntime has no CUDAExecutionProvider (the CPU build)",
        "tensorrt": gpu or (None if "tensorrt" in have else "tensorrt is not installed"),
    }
    if need["kernels"] is None and need["ptx"] is not None:
        need["kernels"] = need["ptx"]
    return need


def cmd_env(args) -> int:
    env = host_env(query_gpu=not args.dry_run)
    if args.dry_run:
        env["dry_run"] = True
    can = capabilities(env)
    env["can_run"] = {k: ("yes" if v is None else f"no: {v}") for k, v in can.items()}
    print(f"GPU: {env.get('gpu', 'none')} (sm_{env.get('arch', '?')}), driver CUDA {env.get('driver_cuda', '?')}")
    print("packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()))
    print("missing: " + (", ".join(env["missing"]) or "none"))
    for step, what in env["can_run"].items():
        print(f"  {step:9} {what}")
    if args.out:
        args.out.write_text(json.dumps(env, indent=1))
    if args.shell:
        flags = {"HAVE_TORCH_CUDA": env.get("torch_cuda"), "HAVE_BENCH": can["bench"] is None,
                 "HAVE_TRITON": can["ptx"] is None,
                 "HAVE_KERNELS": can["kernels"] is None, "HAVE_OVERLAP": can["overlap"] is None,
                 "HAVE_TENSORRT": can["tensorrt"] is None, "HAVE_ORT_CUDA": can["ort-cuda"] is None}
        lines = [f"{k}={1 if v else 0}" for k, v in flags.items()] + [f"ARCH={int(env.get('arch', 90))}"]
        lines += [f"WHY_{k.upper().replace('-', '_')}={shlex.quote(v or '')}" for k, v in can.items()]
        args.shell.write_text("\n".join(lines) + "\n")
    return 0


# ----------------------------------------------------------------------------- dry run

def _dry_step(argv: list[str]) -> int:
    """Run one planned command's argument handling with --dry-run, in this process."""
    import importlib

    if argv[:3] == [argv[0], "-m", "stvsr.plugins"]:
        from stvsr.plugins import configs
        from stvsr.plugins.__main__ import _archs

        rest = argv[3:]
        archs = _archs(rest[rest.index("--arch") + 1]) if "--arch" in rest else [80, 86, 89, 90]
        print(f"ptx: no GPU (dry run): would compile {len(list(configs.variants()))} variants for "
              f"{', '.join(f'sm_{a}' for a in archs)} -> {rest[rest.index('-o') + 1]}")
        return 0
    if argv[:3] == [argv[0], "-m", "stvsr.bench.cli"]:
        from stvsr.bench.cli import main as bench_main

        ctx = bench_main.make_context("stvsr-bench", argv[3:])          # parses and checks the options only
        from stvsr.bench.runner import BACKENDS

        backends = ctx.params["backends"].split(",")
        bad = [b for b in backends if b not in BACKENDS]
        if bad:
            print(f"bench: unknown backends {bad}", file=sys.stderr)
            return 2
        print(f"bench: no GPU (dry run): would run stvsr-bench {' '.join(argv[3:])}")
        return 0
    script = Path(argv[1])
    module = importlib.import_module(script.stem)
    return int(module.main(argv[2:] + ["--dry-run"]) or 0)


def cmd_dry_run(args) -> int:
    total, failed = SUMMARY_S, []
    for line in args.plan.read_text().splitlines():
        if not line.strip():
            continue
        name, limit, command = line.split("\t", 2)
        total += int(limit)
        argv = shlex.split(command)
        try:
            rc = _dry_step(argv)
        except SystemExit as exc:          # argparse / click refusing the arguments
            rc = exc.code if isinstance(exc.code, int) else 2
        except Exception as exc:  # noqa: BLE001
            print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            rc = 1
        if rc:
            failed.append(name)
    print(f"gpu_check: dry run: time limits add up to {total} s, the summary's included (budget {BUDGET_S} s)")
    if total >= BUDGET_S:
        print(f"gpu_check: the steps' time limits ({total} s) exceed the {BUDGET_S} s budget", file=sys.stderr)
        return 1
    if failed:
        print(f"gpu_check: dry run: the arguments of {', '.join(failed)} were refused", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- summary

def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _f(v, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def _steps_table(work: Path) -> list[str]:
    """The step table; its ``total`` row (seconds from the script) gets the limits of the steps that ran or
    were planned, and the summary's own, never those of skipped steps."""
    lines = ["| step | status | seconds | limit (s) | note |", "|---|---|---:|---:|---|"]
    path = work / "steps.tsv"
    limits, skipped = SUMMARY_S, []
    for row in (path.read_text().splitlines() if path.is_file() else []):
        name, status, seconds, limit, note = (row.split("\t") + [""] * 5)[:5]
        if name == "total":
            note = f"time limits of the steps that ran or were planned, and the summary's {SUMMARY_S} s" + \
                (f" (not those of the skipped {', '.join(skipped)})" if skipped else "")
            limit = str(limits)
        elif status == "skipped":
            skipped.append(name)
        elif limit.isdigit():
            limits += int(limit)
        lines.append(f"| {name} | {status} | {seconds} | {limit} | {note} |")
    return lines


def _kernels(data: dict) -> list[str]:
    lines = ["## Plugin kernels as TensorRT launches them (AOT PTX, cuda-bindings, no TensorRT)", "",
             f"{data.get('device')} (sm_{data.get('arch')}), driver CUDA {data.get('driver_cuda')}. Each PTX loaded "
             "with cuModuleLoadData and launched with cuLaunchKernel in TensorRT's argument layout (inputs, int32 "
             "extras, outputs, then null pointers for any hidden Triton parameters) on fresh random inputs into "
             f"NaN-filled outputs, compared with the PyTorch ops in FP32; bounds {data.get('tolerance')} of the "
             "reference's largest magnitude. Times: CUDA events, median.", "",
             "| kernel | size | dtype | PTX (Triton) | params (hidden) | PTX ms | PyTorch ms | speed-up | max rel. err | "
             "non-finite | ok |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in data.get("rows", []):
        if "error" in r:
            lines.append(f"| {r['op']} {r['detail']} | {r['size']} | {r['dtype']} | {r.get('triton')} | | | | | | | "
                         f"**error**: {r['error']} |")
            continue
        lines.append(f"| {r['op']} {r['detail']} | {r['size']} | {r['dtype']} | {r.get('triton')} .version "
                     f"{r.get('ptx_version')} | {r.get('params')} ({r.get('hidden')}) | {_f(r.get('ptx_ms'), '.3f')} | "
                     f"{_f(r.get('torch_ms'), '.3f')} | {_f(r.get('speedup_vs_torch'), '.1f')} | "
                     f"{_f(r.get('max_rel'), '.1e')} | {r.get('nonfinite')} | {'yes' if r.get('ok') else '**no**'} |")
    return lines + [""]


def _bench(data: dict) -> list[str]:
    lines = ["## PyTorch latency at the papers' sizes", "",
             f"GPU {data['machine'].get('gpu', '-')}, torch {data['machine'].get('torch')}. {data.get('method', '')}", "",
             "| network | LR size | backend | precision | ms / out frame | out fps | footage | PSNR vs CPU FP32 (dB) | "
             "rel. L2 |", "|---|---|---|---|---:|---:|---|---:|---:|"]
    for name, net in data.get("networks", {}).items():
        for r in net.get("runs", []):
            if r.get("error"):
                lines.append(f"| {name} | {r.get('size')} | {r['backend']} | {r['precision']} | **error**: "
                             f"{r['error']} | | | | |")
                continue
            psnr = "exact" if r.get("psnr_exact") else _f(r.get("psnr"))
            lines.append(f"| {name} | {r['size']} | {r['backend']} | {r['precision']} | {_f(r['ms_per_frame'])} | "
                         f"{_f(r['fps'], '.1f')} | {net.get('footage')} | {psnr} | {_f(r.get('rel_l2'), '.2g')} |")
    if data.get("skipped"):
        lines += ["", "Not run: " + "; ".join(data["skipped"])]
    return lines + [""]


def _bench_from_log(log: Path) -> list[str]:
    """The per-row lines of a bench run cut short (its results.json is written only at the end)."""
    rows = [ln for ln in log.read_text(errors="replace").splitlines() if "ms/frame" in ln] if log.is_file() else []
    if not rows:
        return []
    return ["## PyTorch latency at the papers' sizes (from the log: the run did not finish)", ""] + \
        [f"- `{ln.strip()}`" for ln in rows] + [""]


def _overlap(d: dict) -> list[str]:
    return ["## Double buffering on real CUDA streams", "",
            f"{d['device']}: stvsr-run's `CudaDevice` and `DoubleBufferSchedule` with a TensorRT context **test "
            f"double** (torch matrix products as the compute; not TensorRT). {d['windows']} windows of "
            f"{d['mib_each_way']:.1f} MiB each way.", "",
            "| H2D ms | compute ms | D2H ms | host copies ms | copies + compute, summed (ms) | one at a time (ms) | "
            "double-buffered (ms) | double-buffered / one at a time | wrong outputs |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            f"| {d['h2d_ms']:.2f} | {d['compute_ms']:.2f} | {d['d2h_ms']:.2f} | {d['host_copy_ms']:.2f} | "
            f"{d['sum_copies_and_compute_ms']:.1f} | {d['serial_wall_ms']:.1f} | {d['double_buffered_wall_ms']:.1f} | "
            f"{d['double_buffered_over_serial']:.2f} | {d['wrong_windows'] or 'none'} |", ""]


def _ort(d: dict) -> list[str]:
    lines = ["## ONNX Runtime CUDA provider: nodes left on the CPU", ""]
    if d.get("skipped"):
        return lines + [f"Not run: {d['skipped']}.", ""]
    for name, net in d.get("networks", {}).items():
        what = net.get("error") or (", ".join(f"{op} x{n}" for op, n in net["cpu_nodes"].items()) or "none")
        lines.append(f"- {name}: {what}")
    return lines + [""]


def cmd_summary(args) -> int:
    work = args.work
    env = _load(work / "env.json") or {}
    lines = ["# stvsr GPU check", ""]
    if args.dry_run:
        lines += ["**Dry run: no GPU was used and nothing was measured.** Every step's arguments were built and "
                  "checked.", ""]
    lines += [f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; GPU {env.get('gpu', 'none')}"
              f"{' (sm_%s)' % env['arch'] if env.get('arch') else ''}; driver CUDA {env.get('driver_cuda', '-')}; "
              + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items()) + f"; git {args.git}", ""]
    lines += ["## Steps", ""] + _steps_table(work) + [""]
    if env.get("can_run"):
        lines += [("Dry run, from the installed packages alone (no GPU or driver was asked): " if env.get("dry_run")
                   else "") + "what this host can run: " + "; ".join(f"{k}: {v}" for k, v in env["can_run"].items()), ""]
    kernels = _load(work / "kernels.json")
    if kernels:
        lines += _kernels(kernels)
    bench = _load(work / "bench" / "results.json")
    lines += _bench(bench) if bench else _bench_from_log(work / "logs" / "bench.log")
    overlap = _load(work / "overlap.json")
    if overlap:
        lines += _overlap(overlap)
    ort = _load(work / "ort_cuda.json")
    if ort:
        lines += _ort(ort)
    plugins = _load(work / "plugins_gpu.json")
    if plugins:
        lines += ["## TensorRT plugins (benchmarks/plugins_gpu.py)", "", f"{plugins.get('device')}", "",
                  "| op | impl | size | dtype | ms | max rel. err | note |", "|---|---|---|---|---:|---:|---|"]
        lines += [f"| {r['op']} | {r['impl']} | {r['size']} | {r['dtype']} | {_f(r.get('ms'), '.3f')} | "
                  f"{_f(r.get('max_rel'), '.1e')} | {r.get('error') or r.get('skipped') or ''} |"
                  for r in plugins.get("rows", [])] + [""]
    validate = work / "validate_gpu.md"
    if validate.is_file():
        lines += ["## TensorRT engines (benchmarks/validate_gpu.py)", ""] + \
            ["#" + ln if ln.startswith("#") else ln for ln in validate.read_text().splitlines()] + [""]
    lines += ["Logs and each step's raw output: `logs.tar.gz` beside this file.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(args.out)
    print(f"gpu_check: wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("env", help="what this host has and which steps can run")
    e.add_argument("--out", type=Path)
    e.add_argument("--shell", type=Path, help="write HAVE_*=0/1 flags for the shell script here")
    e.add_argument("--dry-run", action="store_true", help="packages only: ask no driver or GPU")
    d = sub.add_parser("dry-run", help="run every planned step's argument handling, no GPU")
    d.add_argument("--plan", type=Path, required=True)
    s = sub.add_parser("summary", help="write the summary table")
    s.add_argument("--work", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--git", default="?")
    s.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    return {"env": cmd_env, "dry-run": cmd_dry_run, "summary": cmd_summary}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
