"""The install commands in the README match setup.py and CI (issue 12, items 4 and 9; issue 21, item 0).

* The two commands install torch from PyTorch's CPU wheel index first: plain pip resolves
  ``torch==2.13.0`` to the multi-GB CUDA build on a normal Linux machine.
* CI makes a fresh virtual environment on every run (packages left on the CI machine hid a failure once)
  and runs exactly the README's test command in it.
* Version bounds live in setup.py only: the README's commands and CI install through them (no other
  version in either), the known-broken releases are excluded there, the environment the tests run in
  satisfies them, and every bounded package's version is printed at the end of the run.
* The GPU install names the pinned TensorRT for CUDA 13, NVIDIA's index for its libraries, and
  cuda-python >= 12.6.1; the TensorRT Python sources the tests run are the same TensorRT version.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
VENV = "python3 -m venv .venv && . .venv/bin/activate"


def _setup_constants(tree: ast.Module) -> dict[str, object]:
    """setup.py's module-level ``NAME = <literal>`` assignments (e.g. ``TRITON``)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def _setup_call() -> dict:
    tree = ast.parse((ROOT / "setup.py").read_text())
    constants = _setup_constants(tree)

    class Inline(ast.NodeTransformer):
        def visit_Name(self, node):
            return ast.Constant(constants[node.id]) if node.id in constants else node

    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(Inline().visit(kw.value))
        except ValueError:
            pass
    return out


def _requirements() -> list:
    """Every requirement setup.py declares (base and extras), parsed."""
    from packaging.requirements import Requirement

    call = _setup_call()
    reqs = list(call["install_requires"]) + [r for extra in call["extras_require"].values() for r in extra]
    return [Requirement(r) for r in reqs]


def _two_commands() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == VENV, lines  # the commands run in a virtual environment (issue 16, item 15)
    assert len(lines) == 3, lines
    return lines[1], lines[2]


def _pip_installs(command: str) -> list[str]:
    return [c.strip() for c in command.split("&&") if " pip install " in f" {c.strip()} "]


def test_readme_installs_the_cpu_torch_from_pytorchs_cpu_index():
    torch_pin = next(r for r in _setup_call()["install_requires"] if r.startswith("torch"))
    assert torch_pin == "torch==2.13.0"
    for command in _two_commands():
        installs = _pip_installs(command)
        first = installs[0]
        assert f"{torch_pin} --index-url {CPU_INDEX}" in first, first      # CPU build, before anything else
        assert installs[1:] and all(re.search(r'-e "?\.', c) and "index-url" not in c for c in installs[1:]), \
            installs                                                         # the rest from PyPI


def test_ci_runs_the_readme_test_command_in_a_fresh_virtual_environment():
    """.ci/run: a new virtual environment in a new temporary folder every run, removed on exit, made and
    activated as the README's first line does; then exactly the README's test command."""
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.startswith("#") and not ln.startswith(("set ", "cd "))]
    assert ci[0] == 'VENV=$(mktemp -d "${TMPDIR:-/tmp}/stvsr-ci-venv.XXXXXX")', ci
    assert ci[1] == """trap 'rm -rf "$VENV"' EXIT""", ci
    assert ci[2] == VENV.replace(".venv", '"$VENV"'), ci              # the README's venv line, in the fresh folder
    assert ci[3:] == [_two_commands()[1]], ci


def test_version_bounds_live_in_setup_py_and_exclude_the_known_broken_releases():
    """The README's commands and CI pin nothing but torch (as setup.py does) and install setup.py's extras, so
    they share its bounds. onnxruntime < 1.25 has no CPU DeformConv (zsm's graphs do not load); onnx < 1.18
    lacks FLOAT4E2M1 (trt_compat); Triton 3.6 (GPU hosts) to 3.8 is the supported range, one range for every
    extra, and 3.9's PTX (.version 9.4) does not load on the R580 driver the README names."""
    readme = (ROOT / "README.md").read_text()
    for command in _two_commands():
        versions = re.findall(r"[\w.-]+(?:==|>=|<=|~=|<|>)[\w.*]+", command)
        assert versions == ["torch==2.13.0"], versions
    reqs = {}
    for r in _requirements():
        reqs.setdefault(r.name, set()).add(str(r.specifier))
    assert reqs["torch"] == {"==2.13.0"}
    assert reqs["onnxruntime"] == {">=1.25"} and reqs["onnx"] == {">=1.18"}
    for old in ("1.20.0", "1.24.1"):
        assert not next(iter(_requirement("onnxruntime").specifier.filter([old])), None)
    assert list(_requirement("onnx").specifier.filter(["1.17.0", "1.18.0"])) == ["1.18.0"]
    assert reqs["triton"] == {"<3.9,>=3.6"}, reqs["triton"]                 # test, plugins and gpu alike
    triton = _requirement("triton").specifier
    assert [v for v in ("3.5.1", "3.6.0", "3.7.1", "3.8.0", "3.9.0") if v in triton] == ["3.6.0", "3.7.1", "3.8.0"]
    assert "`triton>=3.6,<3.9`" in readme and "Triton 3.6 to 3.8" in readme
    # The newest releases the bounds were chosen with are admitted (new releases get tested, not pinned out).
    for name, newest in (("onnxruntime", "1.32.0"), ("onnx", "1.23.2"), ("numpy", "2.4.6"), ("av", "18.1.0")):
        assert newest in _requirement(name).specifier, name


def _requirement(name: str):
    return next(r for r in _requirements() if r.name == name)


def test_the_tests_run_inside_the_bounds_and_print_the_versions():
    """What is installed here satisfies setup.py (a stale environment fails here, by name), and the run's
    last lines name each bounded package's version (CI's log says what it ran with)."""
    import importlib.metadata
    import subprocess
    import sys

    from tests.conftest import KEY_PACKAGES

    outside = []
    for r in _requirements():
        if r.marker is not None and not r.marker.evaluate():
            continue
        try:
            version = importlib.metadata.version(r.name)
        except importlib.metadata.PackageNotFoundError:
            continue                                      # an extra this environment did not install
        if version.split("+")[0] not in r.specifier:
            outside.append(f"{r.name} {version} (setup.py: {r.specifier})")
    assert not outside, outside
    bounded = {r.name for r in _requirements() if r.specifier}
    assert bounded <= set(KEY_PACKAGES), bounded - set(KEY_PACKAGES)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"{Path(__file__)}::test_no_weights_error_names_the_official_source"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("stvsr test environment: Python "))
    for name in ("torch", "onnxruntime", "onnx", "numpy", "av", "triton"):
        assert f" {name} {importlib.metadata.version(name)}" in line, (name, line)
    assert "ONNX Runtime int8 kernels on this CPU: " in line


def test_gpu_install_is_documented_and_consistent():
    extras = _setup_call()["extras_require"]
    gpu = extras["gpu"]
    assert "tensorrt-cu13==11.4.0.106" in gpu and "cuda-python>=12.6.1" in gpu
    bindings = next(r for r in extras["test"] if r.startswith("tensorrt-cu13-bindings"))
    assert re.match(r"tensorrt-cu13-bindings==11\.4\.0\.106;", bindings)     # the same TensorRT as on the GPU
    readme = (ROOT / "README.md").read_text()
    assert 'python -m pip install -e ".[test,gpu]" --extra-index-url https://pypi.nvidia.com' in readme
    assert "R580" in readme and "bash benchmarks/gpu_check.sh" in readme


def test_newcomer_facts_links_and_messages_match_the_readme():
    """Issue 16, items 14-15: official sources with links, times and size stated, the real GPU install
    in the TensorRT errors, the first command's output ignored by git."""
    from stvsr.export.weights import OFFICIAL_SOURCES
    from stvsr.install_hints import GPU_INSTALL

    readme = (ROOT / "README.md").read_text()
    intro = readme.split("## Two commands", 1)[0]
    for name, (repo, weights) in OFFICIAL_SOURCES.items():
        row = next(ln for ln in intro.splitlines() if ln.startswith(f"| `{name}` |"))
        assert f"]({repo})" in row, row                                   # the authors' repository, linked
        for url in re.findall(r"https://[^\s,;)]+", weights):
            assert url in row, (url, row)                     # and the released-model link
    two = readme.split("## Two commands", 1)[1].split("## Weights", 1)[0]
    for fact in (r"installation takes about [\d.]+ min", r"the rest \d+ s", r"tests take about \d+ min",
                 r"[\d.]+ GB after the\s+second"):  # install time, run time, test time, environment size
        assert re.search(fact, two), fact
    assert f"python -m {GPU_INSTALL.replace('.[gpu]', '.[test,gpu]')}" in readme
    for path in ("stvsr/runtime/backends/tensorrt.py", "stvsr/engines/builder.py"):
        source = (ROOT / path).read_text()
        assert "pip install tensorrt" not in source and "GPU_INSTALL" in source, path
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "carphone_zsm.mp4" in ignored and "/.venv/" in ignored


def test_no_weights_error_names_the_official_source(tmp_path, monkeypatch):
    import pytest

    from stvsr.export.weights import OFFICIAL_SOURCES, resolve_weights

    monkeypatch.setenv("STVSR_HOME", str(tmp_path))
    for name, (repo, _) in OFFICIAL_SOURCES.items():
        with pytest.raises(FileNotFoundError, match=re.escape(repo)):
            resolve_weights(name, None, False)
