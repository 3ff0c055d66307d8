"""Ahead-of-time compilation of the plugin kernels to PTX, without a GPU.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))`` runs Triton's whole
pipeline (TTIR -> TTGIR -> LLVM -> PTX -> cubin) for a named architecture, no driver needed.

Kernel parameters (checked on triton 3.6.0, 3.7.1, 3.8.0, 3.9.0): the PTX entry declares the kernel's pointer and
int32 arguments in source order (constexprs are baked in and vanish) followed by **two hidden
``.u64`` pointers**, ``global_scratch`` and ``profile_scratch``, which Triton's own launcher
always passes (``metadata.global_scratch_size`` / ``profile_scratch_size`` say how much memory
they need; 0 for our kernels). TensorRT's AOT plugin launcher passes exactly
``inputs + extra int32 args + outputs`` and nothing else, so a kernel declaring two more
parameters would make the driver read two pointers past the end of TensorRT's argument array.
When both scratch sizes are 0 and the PTX body never reads the hidden parameters, we delete
them from the entry's parameter list (:func:`strip_hidden_params`); the PTX then declares
exactly the parameters TensorRT passes. A kernel that needs scratch memory is refused.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path

from stvsr.home import stvsr_home

from . import configs

HIDDEN_PARAMS = ("global_scratch", "profile_scratch")
MANIFEST = "manifest.json"


@dataclasses.dataclass
class CompiledVariant:
    variant: configs.Variant
    arch: int
    name: str                   # PTX entry name
    ptx: str
    num_warps: int
    shared: int                 # dynamic shared memory bytes
    hidden_params_stripped: int
    compile_s: float

    @property
    def block_x(self) -> int:
        return self.num_warps * 32


def _kernel_fn(kernel: str):
    from . import kernels

    return {"deform_conv2d": kernels.deform_conv2d_kernel, "backward_warp": kernels.backward_warp_kernel}[kernel]


def _entry_params(ptx: str, name: str) -> tuple[int, int, list[str]]:
    """(start, end) offsets of the entry's parameter list and its ``.param`` lines."""
    m = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\(", ptx)
    if m is None:
        raise ValueError(f"PTX has no .entry {name}")
    start = m.end()
    end = ptx.index(")", start)
    params = [p.strip() for p in ptx[start:end].split(",") if p.strip()]
    return start, end, params


def strip_hidden_params(ptx: str, name: str, n_visible: int) -> tuple[str, int]:
    """Remove the unused parameters after the first ``n_visible`` from the entry ``name``.

    Returns the new PTX and how many parameters were removed. Raises ValueError when a
    parameter to remove is read anywhere in the PTX.
    """
    start, end, params = _entry_params(ptx, name)
    extra = params[n_visible:]
    if len(extra) > len(HIDDEN_PARAMS):
        raise ValueError(f"{name}: {len(params)} PTX params, expected {n_visible} + at most "
                         f"{len(HIDDEN_PARAMS)} hidden ones")
    for decl in extra:
        pname = decl.split()[-1]
        if ptx.count(pname) != 1:
            raise ValueError(f"{name}: hidden parameter {pname} is used by the kernel; cannot strip it")
    if not extra:
        return ptx, 0
    kept = ",\n\t".join(params[:n_visible])
    return ptx[:start] + "\n\t" + kept + "\n" + ptx[end:], len(extra)


def ptx_param_count(ptx: str, name: str) -> int:
    return len(_entry_params(ptx, name)[2])


def compile_variant(variant: configs.Variant, arch: int, strip: bool = True) -> CompiledVariant:
    """Compile one variant for compute capability ``arch`` (e.g. 86) to PTX."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    fn = _kernel_fn(variant.kernel)
    if not isinstance(fn, JITFunction):
        raise RuntimeError("stvsr.plugins.kernels was imported with TRITON_INTERPRET set; unset it to compile "
                           "kernels ahead of time")
    t0 = time.perf_counter()
    src = ASTSource(fn=fn, signature=variant.signature, constexprs=variant.constexprs)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": variant.num_warps, "num_stages": variant.num_stages})
    md = compiled.metadata
    if getattr(md, "global_scratch_size", 0) or getattr(md, "profile_scratch_size", 0):
        raise RuntimeError(f"{variant.key}: kernel needs Triton scratch memory, which TensorRT does not provide")
    if md.shared > 48 * 1024:
        # Above 48 KiB a launcher must opt in (cuFuncSetAttribute); do not count on TensorRT doing so.
        raise RuntimeError(f"{variant.key}: {md.shared} bytes of shared memory, more than the 48 KiB default")
    ptx = compiled.asm["ptx"]
    n_visible = len(variant.pointer_args) + len(variant.scalar_args)
    stripped = 0
    if strip:
        ptx, stripped = strip_hidden_params(ptx, md.name, n_visible)
    return CompiledVariant(variant, arch, md.name, ptx, md.num_warps, md.shared, stripped,
                           time.perf_counter() - t0)


@contextlib.contextmanager
def _fresh_cache(enabled: bool):
    """Point Triton's cache at a temporary directory so that build times are honest."""
    if not enabled:
        yield
        return
    from triton import knobs

    old = knobs.cache.dir
    with tempfile.TemporaryDirectory(prefix="stvsr-triton-cache-") as tmp:
        knobs.cache.dir = tmp
        try:
            yield
        finally:
            knobs.cache.dir = old


def build(archs: list[int], out_dir: Path, kernels: list[str] | None = None, strip: bool = True,
          fresh_cache: bool = True, log=print, keys: list[str] | None = None) -> dict:
    """Compile every variant for every arch into ``out_dir`` (PTX files + ``manifest.json``).

    ``kernels`` / ``keys`` restrict the build to some kernels / variant keys.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    t0 = time.perf_counter()
    with _fresh_cache(fresh_cache):
        for arch in archs:
            for variant in configs.variants():
                if (kernels and variant.kernel not in kernels) or (keys and variant.key not in keys):
                    continue
                cv = compile_variant(variant, arch, strip=strip)
                rel = f"sm_{arch}/{variant.key}.ptx"
                (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (out_dir / rel).write_text(cv.ptx)
                entries.append({
                    "key": variant.key, "kernel": variant.kernel, "arch": arch, "file": rel,
                    "entry": cv.name, "signature": variant.signature, "constexprs": variant.constexprs,
                    "launch": {"block_x": cv.block_x, "shared_mem": cv.shared, "num_warps": cv.num_warps,
                               "num_stages": variant.num_stages},
                    "params": {"pointers": variant.pointer_args, "int32": variant.scalar_args,
                               "hidden_stripped": cv.hidden_params_stripped},
                    "ptx_bytes": len(cv.ptx.encode()), "compile_s": round(cv.compile_s, 3),
                })
                log(f"sm_{arch} {variant.key}: {len(cv.ptx.encode()) / 1024:.1f} KiB PTX, {cv.compile_s:.2f} s")
    import triton

    manifest = {"triton_version": triton.__version__, "archs": archs, "build_s": round(time.perf_counter() - t0, 2),
                "launch_order": "input pointers, int32 extra args, output pointers (TensorRT AOT plugin order)",
                "kernels": entries}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def load_manifest(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / MANIFEST).read_text())


PTX_DIR_ENV = "STVSR_PLUGIN_PTX_DIR"


@dataclasses.dataclass(frozen=True)
class Kernel:
    """What TensorRT's AOT plugin needs for one variant on one GPU architecture."""
    entry: bytes
    ptx: bytes
    block_x: int
    shared: int
    triton: str                 # Triton version that compiled the PTX


def _prebuilt_dir() -> Path | None:
    d = os.environ.get(PTX_DIR_ENV)
    return Path(d) if d else None


@functools.lru_cache(maxsize=None)
def _prebuilt(directory: str, key: str, arch: int) -> Kernel | None:
    manifest = load_manifest(Path(directory))
    for e in manifest["kernels"]:
        if e["key"] == key and e["arch"] == arch:
            ptx = (Path(directory) / e["file"]).read_bytes()
            return Kernel(e["entry"].encode(), ptx, e["launch"]["block_x"], e["launch"]["shared_mem"],
                          manifest.get("triton_version", "unknown"))
    return None


def ptx_cache_dir() -> Path:
    """``$STVSR_HOME/cache/ptx`` (default ``~/.cache/stvsr/cache/ptx``): PTX compiled on earlier runs."""
    return stvsr_home("cache", "ptx")


@functools.lru_cache(maxsize=None)
def _source_digest() -> str:
    """sha256 of the kernels' Triton sources and of this module (which post-processes the PTX)."""
    from . import kernels

    h = hashlib.sha256()
    for f in sorted(Path(kernels.__file__).parent.glob("*.py")) + [Path(__file__)]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def ptx_cache_file(variant: configs.Variant, arch: int, triton_version: str) -> Path:
    """Where the PTX of ``variant`` for ``arch`` compiled by Triton ``triton_version`` is cached. The name
    covers the Triton version, the architecture, the kernel configuration (signature, constexprs, warps,
    stages) and the kernel sources, so a change to any of them compiles afresh."""
    blob = json.dumps([triton_version, arch, variant.key, variant.signature, variant.constexprs, variant.num_warps,
                       variant.num_stages, _source_digest()], sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:20]
    return ptx_cache_dir() / f"triton-{triton_version}" / f"sm_{arch}" / f"{variant.key}-{digest}.json"


def _read_cached(path: Path) -> Kernel | None:
    try:
        d = json.loads(path.read_text())
        return Kernel(d["entry"].encode(), d["ptx"].encode(), int(d["block_x"]), int(d["shared"]), d["triton"])
    except (OSError, ValueError, KeyError, TypeError):
        return None   # missing or unreadable: compile again (and rewrite it)


def _write_cached(path: Path, k: Kernel) -> None:
    from stvsr.outfile import atomic_output

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:     # written under a temporary name and renamed: never half a file
            Path(tmp).write_text(json.dumps({"entry": k.entry.decode(), "ptx": k.ptx.decode(), "block_x": k.block_x,
                                             "shared": k.shared, "triton": k.triton}))
    except OSError:
        pass    # a cache that cannot be written only costs a compilation next time


@functools.lru_cache(maxsize=None)
def _compiled(key: str, arch: int) -> Kernel:
    """Compiled once per machine: from the PTX cache on disk, else by Triton now (then cached)."""
    import triton

    variant = next(v for v in configs.variants() if v.key == key)
    path = ptx_cache_file(variant, arch, triton.__version__)
    if (cached := _read_cached(path)) is not None:
        return cached
    cv = compile_variant(variant, arch)
    kernel = Kernel(cv.name.encode(), cv.ptx.encode(), cv.block_x, cv.shared, triton.__version__)
    _write_cached(path, kernel)
    return kernel


def kernel_for(variant: configs.Variant, arch: int) -> Kernel:
    """The PTX of ``variant`` for compute capability ``arch``: from the prebuilt directory named by
    ``$STVSR_PLUGIN_PTX_DIR`` (``python -m stvsr.plugins build``) when it has it, else from the PTX cache
    (:func:`ptx_cache_dir`) or compiled by Triton now (needs triton at engine-build time only)."""
    prebuilt = _prebuilt_dir()
    if prebuilt is not None:
        found = _prebuilt(str(prebuilt.resolve()), variant.key, arch)
        if found is not None:
            return found
    if variant.key not in {v.key for v in configs.variants()}:
        cv = compile_variant(variant, arch)    # a variant outside the standard list (tests, tuning)
        import triton

        return Kernel(cv.name.encode(), cv.ptx.encode(), cv.block_x, cv.shared, triton.__version__)
    return _compiled(variant.key, arch)


def configs_digest() -> str:
    """sha256 over every compiled variant's configuration (block sizes, warps, stages, constexprs)."""
    blob = json.dumps([[v.key, v.signature, v.constexprs, v.num_warps, v.num_stages] for v in configs.variants()],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def ptx_fingerprint(arch: int) -> dict:
    """What the stvsr plugins put into an engine built on ``arch``: sha256 of every variant's PTX,
    entry and launch parameters, the Triton version that made them and the configs digest."""
    h = hashlib.sha256()
    tritons = set()
    for variant in configs.variants():
        k = kernel_for(variant, arch)
        tritons.add(k.triton)
        h.update(json.dumps([variant.key, k.entry.decode(), k.block_x, k.shared]).encode())
        h.update(hashlib.sha256(k.ptx).digest())
    return {"plugin_ptx": h.hexdigest(), "triton": ",".join(sorted(tritons)), "plugin_configs": configs_digest()}
