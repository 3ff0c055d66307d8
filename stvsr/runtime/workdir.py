"""The work folder of a segmented run: finished parts and a manifest, so that a rerun of the same
command after a crash, Ctrl-C, SIGKILL or power loss computes only the missing parts.

The manifest (``manifest.json``, written to a temporary name, fsynced, then renamed) records
what the parts were computed from: the input's identity (size, mtime, sha256 of its first and
last MiB), the model's sha256, every option that changes pixels, the segment plan, and each
finished part's sha256. A part counts as finished only when the manifest lists it and the file
still has that checksum; parts are encoded under a temporary name and renamed when complete, so
a half-written part is never taken. When the input, model, options or plan differ, the old
parts are discarded with one line saying why. One run at a time holds a folder (a lock file).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Callable

MANIFEST, LOCK, VERSION = "manifest.json", ".lock", 1
MIB = 1 << 20
_PART = re.compile(r"part-\d{5,}\.[A-Za-z0-9]+")


class WorkDirError(OSError):
    """A work folder that cannot be used."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "cannot use the work folder"


def default_work_dir(output: str | os.PathLike) -> Path:
    """``.<output name>.stvsr-parts`` beside the output."""
    p = Path(output).absolute()
    return p.with_name(f".{p.name}.stvsr-parts")


def file_sha256(path: str | os.PathLike, limit: int | None = None, tail: bool = False) -> str:
    """sha256 of a file, or of its first (``tail``: last) ``limit`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if limit is not None and tail:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - limit))
        left = limit
        while left is None or left > 0:
            block = f.read(MIB if left is None else min(MIB, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()


def input_identity(path: str | os.PathLike) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": file_sha256(path, MIB),
            "tail_sha256": file_sha256(path, MIB, tail=True)}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _why(old: dict, new: dict) -> str | None:
    """Why the parts recorded under ``old`` do not belong to ``new`` (None: they do)."""
    if old.get("version") != new["version"]:
        return "it was written by another stvsr version"
    if old.get("input") != new["input"]:
        return "the input changed (size, modification time or content)"
    if old.get("model") != new["model"]:
        return "the model changed"
    if old.get("backend") != new.get("backend") or old.get("software") != new.get("software"):
        return "the backend or the stvsr/FFmpeg version changed"
    if old.get("options") != new["options"]:
        names = sorted(k for k in set(old.get("options", {})) | set(new["options"])
                       if old.get("options", {}).get(k) != new["options"].get(k))
        return f"options changed ({', '.join(names)})"
    if old.get("plan") != new["plan"]:
        return "the segment plan changed"
    if {k: v for k, v in old.items() if k != "parts"} != new:
        return "the run's settings changed"
    return None


class WorkDir:
    """Open (create) ``path`` for a run described by ``key`` (input, model, options, plan)."""

    def __init__(self, path: str | os.PathLike, key: dict, suffix: str, say: Callable[[str], None] = lambda m: None):
        import fcntl

        self.path = Path(path)
        self.suffix = suffix
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / LOCK, "a")
        except OSError as exc:
            raise WorkDirError(f"cannot use work folder {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise WorkDirError(f"another stvsr-run is using the work folder {self.path}") from None
        self.key = json.loads(json.dumps({"version": VERSION, **key}, default=str))  # as it reads back
        self.parts: dict[int, dict] = {}
        old = self._load()
        reason = _why(old, self.key) if old is not None else None
        if reason is not None and old.get("parts"):
            say(f"discarding {len(old['parts'])} finished part(s) in {self.path}: {reason}")
        elif old is not None:
            self.parts = {int(k): v for k, v in old.get("parts", {}).items()}
        self._clean()
        self.save()

    def _load(self) -> dict | None:
        try:
            with open(self.path / MANIFEST, encoding="utf-8") as f:
                data = json.load(f)
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def _clean(self) -> None:
        """Drop parts whose file is missing or changed, and every file no manifest entry names
        (temporary files of a killed run, stale parts)."""
        for index, entry in list(self.parts.items()):
            f = self.path / str(entry.get("file", ""))
            try:
                ok = f.is_file() and file_sha256(f) == entry.get("sha256")
            except OSError:
                ok = False
            if not ok:
                del self.parts[index]
        keep = {MANIFEST, LOCK} | {e["file"] for e in self.parts.values()}
        for f in self._ours():
            if f.name not in keep:
                try:
                    f.unlink()
                except OSError:
                    pass

    def _ours(self) -> list[Path]:
        """The files stvsr writes here (parts, temporary files, manifest, lock); nothing else is touched,
        so a --work-dir that holds other files keeps them."""
        return [f for f in self.path.iterdir() if (f.is_file() or f.is_symlink()) and (
            _PART.fullmatch(f.name) or f.name.startswith((".stvsr-", ".manifest-")) or f.name in (MANIFEST, LOCK))]

    def save(self) -> None:
        data = {**self.key, "parts": {str(k): v for k, v in sorted(self.parts.items())}}
        tmp = self.path / f".manifest-{secrets.token_hex(4)}.json"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / MANIFEST)
        finally:
            if tmp.exists():
                tmp.unlink()
        _fsync_dir(self.path)

    def part_path(self, index: int) -> Path:
        return self.path / f"part-{index:05d}{self.suffix}"

    def finished(self, index: int) -> Path | None:
        entry = self.parts.get(index)
        return self.path / entry["file"] if entry else None

    def record(self, index: int, sha256: str) -> None:
        """Note a finished part (its file already renamed into place and fsynced)."""
        _fsync_dir(self.path)
        self.parts[index] = {"file": self.part_path(index).name, "sha256": sha256}
        self.save()

    def close(self) -> None:
        if not self._lock.closed:
            self._lock.close()

    def remove(self) -> None:
        """Delete the parts, manifest and lock, then the folder if that left it empty."""
        self.close()
        for f in self._ours():
            try:
                f.unlink()
            except OSError:
                pass
        try:
            self.path.rmdir()
        except OSError:
            pass
