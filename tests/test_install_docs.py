"""The install commands in the README match setup.py and CI (issue 12, items 4 and 9).

* The two commands install torch from PyTorch's CPU wheel index first: plain pip resolves
  ``torch==2.13.0`` to the multi-GB CUDA build on a normal Linux machine.
* CI runs exactly the README's test command.
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


def _setup_call() -> dict:
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            pass
    return out


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


def test_ci_runs_exactly_the_readme_test_command():
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.startswith("#") and not ln.startswith(("set ", "cd "))]
    assert ci == [_two_commands()[1]]


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
        for url in re.findall(r"https://\S+", weights):
            assert url.rstrip(")") in row, (url, row)                     # and the released-model link
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
