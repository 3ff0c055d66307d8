"""The runtime's tree with line counts and its import graph, as Markdown (issue 24's closing note).

    python benchmarks/layout_graph.py > graph.md

Reads the imports with tests/test_runtime_layout.py's reader (every import, function-level ones
included) and states its checks' results: no import circle, no module importing a layer above its
own, nothing of the runtime reaching torch, onnx or the export side.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import test_runtime_layout as layout  # noqa: E402

THIRD_PARTY = ("av", "ray", "tensorrt", "cuda", "onnxruntime", "scenedetect", "cv2", "numpy", "click", "tqdm")


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def tree() -> list[str]:
    """stvsr/runtime/ and the shared modules below it, with line counts."""
    out, total = ["```"], 0
    runtime = ROOT / "stvsr" / "runtime"
    for path in sorted(runtime.rglob("*.py"), key=lambda p: (len(p.relative_to(runtime).parts) > 1, str(p))):
        n = _lines(path)
        total += n
        out.append(f"{str(path.relative_to(ROOT)):<44} {n:>5}")
    out.append(f"{'stvsr/runtime (all)':<44} {total:>5}")
    out.append("")
    for name in sorted(layout.BOTTOM - {"stvsr"}):
        path = ROOT.joinpath(*name.split(".")).with_suffix(".py")
        out.append(f"{str(path.relative_to(ROOT)):<44} {_lines(path):>5}   (shared, below the runtime)")
    return out + ["```"]


def graph() -> list[str]:
    """Who imports whom among the runtime's modules and the shared ones (and which heavy packages)."""
    g = layout._graph()
    own = layout._runtime_and_bottom(g)
    out = ["| module | layer | imports (stvsr) | imports (third-party, selected) |", "|---|---|---|---|"]
    for module in own:
        deps = sorted(d for d in g[module] if d in g and d != module and (d in own))
        third = sorted({d.split(".")[0] for d in g[module] if d.split(".")[0] in THIRD_PARTY})
        rank = "shared" if module in layout.BOTTOM else str(layout._layer(module))
        short = [d.replace("stvsr.runtime.", "") for d in deps]
        out.append(f"| {module.replace('stvsr.runtime.', '')} | {rank} | {', '.join(short) or '-'} | "
                   f"{', '.join(third) or '-'} |")
    return out


def checks() -> list[str]:
    out = []
    for name in ("test_every_runtime_module_is_in_a_layer_and_imports_none_above_it",
                 "test_no_import_circle_in_the_runtime_or_below",
                 "test_the_runtime_reaches_no_torch_onnx_or_export_code_and_pyav_ray_tensorrt_stay_in_their_modules"):
        try:
            getattr(layout, name)()
            out.append(f"- `{name}`: holds")
        except AssertionError as exc:
            out.append(f"- `{name}`: FAILS: {exc}")
    g = layout._graph()
    nodes = layout._reached(g, layout._runtime_and_bottom(g))
    out.append(f"- import circles among the {len(nodes)} modules the runtime and the shared modules reach: "
               f"{layout._cycles(g, nodes) or 'none'}")
    return out


def main() -> None:
    layers = ", ".join(f"{k.replace('stvsr.runtime.', '') if k != 'stvsr.runtime' else 'runtime/__init__'} {v}"
                       for k, v in sorted(layout.LAYERS.items(), key=lambda kv: kv[1]))
    print("\n".join(["### Tree (lines)", ""] + tree() + ["", "### Imports", "",
                     f"Layers, lowest first: {layers}; a module imports its own layer's modules and lower ones only.",
                     ""] + graph() + ["", "### Checks (tests/test_runtime_layout.py)", ""] + checks()))


if __name__ == "__main__":
    main()
