"""Ahead-of-time PTX build of the plugin kernels (no GPU needed)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton", reason="triton is needed to compile the plugin kernels")

from stvsr.plugins import aot, configs  # noqa: E402

ARCH = 86


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ptx")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    subprocess.run([sys.executable, "-m", "stvsr.plugins", "build", "--arch", str(ARCH), "-o", str(out)],
                   check=True, env=env, capture_output=True, text=True, timeout=300)
    return out


def _ptxas() -> str | None:
    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    return str(path) if path.exists() else shutil.which("ptxas")


def test_build_writes_every_variant(built):
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["triton_version"] == triton.__version__
    keys = {e["key"] for e in manifest["kernels"]}
    assert keys == {v.key for v in configs.variants()}
    for e in manifest["kernels"]:
        ptx = (built / e["file"]).read_text()
        assert re.search(rf"^\.target sm_{ARCH}\b", ptx, re.M), e["file"]
        assert f".visible .entry {e['entry']}(" in ptx
        # TensorRT launches with exactly: input pointers, int32 extra args, output pointer.
        assert aot.ptx_param_count(ptx, e["entry"]) == len(e["params"]["pointers"]) + len(e["params"]["int32"])
        assert e["params"]["hidden_stripped"] == 2
        assert e["launch"]["block_x"] == e["launch"]["num_warps"] * 32
        assert e["ptx_bytes"] == len(ptx.encode())


def test_stripped_ptx_assembles(built, tmp_path):
    ptxas = _ptxas()
    if ptxas is None:
        pytest.skip("no ptxas to assemble the PTX")
    manifest = json.loads((built / "manifest.json").read_text())
    for key in ("deform_conv2d_fp16_k3x3", "warp_flow_fp32_fp32coords_zeros"):
        e = next(e for e in manifest["kernels"] if e["key"] == key)
        res = subprocess.run([ptxas, f"-arch=sm_{ARCH}", str(built / e["file"]), "-o", str(tmp_path / "k.cubin")],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_strip_refuses_used_params():
    ptx = (".visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .u64 k_param_1\n)\n{\n"
           "\tld.param.b64 %rd1, [k_param_1];\n}\n")
    with pytest.raises(ValueError, match="used by the kernel"):
        aot.strip_hidden_params(ptx, "k", 1)
    unused = ptx.replace("[k_param_1]", "[k_param_0]")
    stripped, n = aot.strip_hidden_params(unused, "k", 1)
    assert n == 1 and aot.ptx_param_count(stripped, "k") == 1


def test_cli_rejects_bad_arch(capsys):
    from stvsr.plugins.__main__ import main

    with pytest.raises(SystemExit):
        main(["build", "--arch", "sm_x", "-o", "unused"])
    assert "--arch" in capsys.readouterr().err
