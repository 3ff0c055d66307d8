"""The engine cache fingerprint reuses PTX compiled on earlier runs instead of compiling every kernel
before every cache lookup (``$STVSR_PLUGIN_PTX_DIR`` unset)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("triton", reason="triton compiles the plugin kernels")

from stvsr.plugins import aot, configs  # noqa: E402

ARCH = 86


@pytest.fixture
def two_kernels(tmp_path, monkeypatch):
    """Two cheap variants stand for the 16; compilations counted; a fresh $STVSR_HOME; no prebuilt dir."""
    few = [configs.warp_variant("fp32", "flow", m) for m in ("zeros", "border")]
    monkeypatch.setattr(configs, "variants", lambda: iter(few))
    monkeypatch.setenv("STVSR_HOME", str(tmp_path))
    monkeypatch.delenv(aot.PTX_DIR_ENV, raising=False)
    compiled: list[str] = []
    real = aot.compile_variant

    def counting(variant, arch, strip=True):
        compiled.append(variant.key)
        return real(variant, arch, strip)

    monkeypatch.setattr(aot, "compile_variant", counting)
    aot._compiled.cache_clear()
    yield few, compiled
    aot._compiled.cache_clear()


def test_second_fingerprint_compiles_nothing(two_kernels, tmp_path):
    few, compiled = two_kernels
    first = aot.ptx_fingerprint(ARCH)
    assert sorted(compiled) == sorted(v.key for v in few)
    aot._compiled.cache_clear()            # a new process: only the disk cache is left
    compiled.clear()
    assert aot.ptx_fingerprint(ARCH) == first and compiled == []
    files = sorted((tmp_path / "cache" / "ptx").rglob("*.json"))
    assert len(files) == 2 and not list((tmp_path / "cache" / "ptx").rglob(".stvsr-*"))   # no temporary left
    import triton

    assert all(f"triton-{triton.__version__}" in str(f) and f"sm_{ARCH}" in str(f) for f in files)


def test_cache_is_keyed_by_triton_version_config_and_arch(two_kernels, tmp_path):
    few, compiled = two_kernels
    v = few[0]
    base = aot.ptx_cache_file(v, ARCH, "3.7.1")
    assert aot.ptx_cache_file(v, 90, "3.7.1") != base and aot.ptx_cache_file(v, ARCH, "3.8.0") != base
    other = configs.warp_variant("fp32", "flow", "zeros", cfg=configs.WarpConfig(block_p=64))
    assert other.key == v.key and aot.ptx_cache_file(other, ARCH, "3.7.1") != base
    # An unreadable cache file is compiled again and rewritten, never trusted.
    aot.ptx_fingerprint(ARCH)
    import triton

    path = aot.ptx_cache_file(v, ARCH, triton.__version__)
    path.write_text("{truncated")
    aot._compiled.cache_clear()
    compiled.clear()
    aot.ptx_fingerprint(ARCH)
    assert compiled == [v.key] and json.loads(path.read_text())["entry"]
