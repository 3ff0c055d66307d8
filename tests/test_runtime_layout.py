"""The runtime's layout is its data path, and its imports say so (issue 24).

Every import in stvsr's source (function-level ones included: a lazy import is still a dependency)
is read with ``ast``, and:

* data flows one way: ``runtime.cli`` -> ``runtime.jobs`` -> ``runtime.onepass`` -> ``runtime.planning``
  -> ``runtime.media``, with ``runtime.backends`` beside planning (used by onepass and jobs); no module
  imports a layer above its own, and planning and backends do not import each other;
* below the runtime sit the shared modules (``stvsr.metadata``, ``stvsr.outfile``, ...), which import
  nothing of stvsr above them;
* there is no import circle among these modules (the segment driver and the Ray layer were one);
* neither the runtime nor anything it reaches imports torch, onnx, onnxscript or the export side
  (``stvsr.export``, ``stvsr.models``, ``stvsr.ops``, ``stvsr.bench``); PyAV is imported only in
  ``runtime.media``, Ray only in ``runtime.jobs.distributed``, TensorRT and CUDA only in the TensorRT
  backend.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stvsr"

# The runtime's layers, lowest first; a module may import its own layer's modules and lower layers only.
LAYERS = {"stvsr.runtime.media": 1, "stvsr.runtime.planning": 2, "stvsr.runtime.backends": 2,
          "stvsr.runtime.onepass": 3, "stvsr.runtime.jobs": 4, "stvsr.runtime.cli": 5, "stvsr.runtime": 6}
BOTTOM = {"stvsr", "stvsr.metadata", "stvsr.outfile", "stvsr.home", "stvsr.cli_signals", "stvsr.cli_common",
          "stvsr.install_hints", "stvsr.ort_session"}
EXPORT_SIDE = ("torch", "onnx", "onnxscript", "stvsr.export", "stvsr.models", "stvsr.ops", "stvsr.bench")
ONLY_IN = {"av": ("stvsr.runtime.media",), "ray": ("stvsr.runtime.jobs.distributed",),
           "tensorrt": ("stvsr.runtime.backends.tensorrt",), "cuda": ("stvsr.runtime.backends.tensorrt",)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from p import m`` counts as ``p.m`` where ``m`` is a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}"))
    return {m for m in found if m}


def _graph() -> dict[str, set[str]]:
    """stvsr module -> the modules it imports (stvsr's own and third-party ones)."""
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(name: str) -> int | None:
    return max((rank for prefix, rank in LAYERS.items() if _within(name, prefix) and prefix != "stvsr.runtime"),
               default=LAYERS["stvsr.runtime"] if name == "stvsr.runtime" else None)


def _group(name: str) -> str:
    return next(p for p in sorted(LAYERS, key=len, reverse=True) if _within(name, p))


def _runtime_and_bottom(graph: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in graph if _within(m, "stvsr.runtime") or m in BOTTOM)


def _reached(graph: dict[str, set[str]], start: list[str]) -> set[str]:
    """The stvsr modules ``start`` imports, directly or through others."""
    seen, todo = set(start), list(start)
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep in graph and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _cycles(graph: dict[str, set[str]], nodes: set[str]) -> list[list[str]]:
    """The import circles among ``nodes`` (strongly connected components of more than one module, or a
    module importing itself), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, set()) & nodes):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, set()):
                circles.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return circles


def test_every_runtime_module_is_in_a_layer_and_imports_none_above_it():
    graph = _graph()
    wrong = []
    for module in _runtime_and_bottom(graph):
        if module in BOTTOM:
            wrong += [f"{module} (shared, below the runtime) imports {dep}" for dep in sorted(graph[module])
                      if dep.startswith("stvsr") and dep not in BOTTOM]
            continue
        rank = _layer(module)
        if rank is None:
            wrong.append(f"{module} is in none of the runtime's layers {sorted(LAYERS)}")
            continue
        for dep in sorted(graph[module]):
            dep_rank = _layer(dep) if _within(dep, "stvsr.runtime") else None
            if dep_rank is None:
                continue
            if dep_rank > rank or (dep_rank == rank and _group(dep) != _group(module)):
                wrong.append(f"{module} imports {dep} (a layer above it, or beside it)")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle_in_the_runtime_or_below():
    graph = _graph()
    nodes = _reached(graph, _runtime_and_bottom(graph))
    assert not _cycles(graph, nodes), _cycles(graph, nodes)


def test_the_runtime_reaches_no_torch_onnx_or_export_code_and_pyav_ray_tensorrt_stay_in_their_modules():
    graph = _graph()
    own = _runtime_and_bottom(graph)
    wrong = []
    for module in sorted(_reached(graph, own)):   # the runtime, and what it imports of the rest of stvsr
        for dep in sorted(graph[module]):
            if any(_within(dep, banned) for banned in EXPORT_SIDE):
                wrong.append(f"{module} imports {dep}")
    for module in sorted(graph):   # PyAV and Ray: in all of stvsr (export's INT8 calibration decodes through media)
        for dep in sorted(graph[module]):
            for top, homes in ONLY_IN.items():
                if top in ("tensorrt", "cuda") and module not in own:
                    continue       # the engine builder and the plugins use TensorRT too
                if _within(dep, top) and not any(_within(module, home) for home in homes):
                    wrong.append(f"{module} imports {dep} (only {', '.join(homes)} may)")
    assert not wrong, "\n".join(wrong)


def test_the_checks_see_a_circle_an_upward_import_and_torch():
    """The checker itself: a made-up graph with each fault is caught."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": set()}
    assert _cycles(graph, set(graph)) == [["a", "b", "c"]]
    assert _layer("stvsr.runtime.media.probe") == 1 and _layer("stvsr.runtime.jobs.driver") == 4
    assert _layer("stvsr.runtime.cli") == 5 and _layer("stvsr.runtime.flow") is None
    assert _group("stvsr.runtime.planning.shots") == "stvsr.runtime.planning"
    assert _imports(PACKAGE / "runtime" / "jobs" / "distributed.py") >= {"ray", "stvsr.runtime.jobs.part"}
