"""The work folder of a segmented run: finished parts and a manifest, so that a rerun of the same
command after a crash, Ctrl-C, SIGKILL or power loss computes only the missing parts.

The manifest (``manifest.json``, written to a temporary name, fsynced, then renamed) starts with
a format marker and records what the parts were computed from (the run's key: the input's
identity, the model's sha256, every option that changes the parts, the part format and the
segment plan), every part name the plan writes, and each finished part's sha256. A part counts
as finished only when the manifest lists it and the file, a regular file in the folder, still
has that checksum; parts are encoded under a fixed temporary name (``.part-NNNNN.EXT``) and
renamed when complete, so a half-written part is never taken. When the key differs, the old parts
are discarded with one line saying why; a manifest that is not valid (wrong shape, a part name
that is not ``part-NNNNN.EXT``) is discarded with one line too.

Ownership: a folder is stvsr's when stvsr created it or it holds a stvsr manifest; any other
non-empty folder is refused. Only the files a manifest names (parts, their temporary names, the
manifest and lock) are ever deleted, never the input, the output or the model, and the folder
itself only if stvsr created it. One run at a time holds a folder: the lock (``.lock``) is taken
before the manifest is read and released only after the clean-up ends.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Callable, Iterable

from stvsr.outfile import SafeOutput, same_file

MANIFEST, LOCK, VERSION = "manifest.json", ".lock", 2
FORMAT = "stvsr work folder"                      # the manifest's first key: "format": FORMAT
MANIFEST_TMP = ".manifest.json.tmp"
MIB = 1 << 20
MAX_MANIFEST = 64 * MIB
_PART = re.compile(r"part-(\d{5,})(\.[A-Za-z0-9]{1,16})")
_MARKER = re.compile(rb'\s*\{\s*"format"\s*:\s*"' + FORMAT.encode() + rb'"')
_QUOTED_PART = re.compile(rb'"(part-\d{5,}\.[A-Za-z0-9]{1,16})"')
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_META = ("format", "version", "created", "files", "parts")   # manifest fields that are not the run's key


class WorkDirError(OSError):
    """A work folder that cannot be used."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "cannot use the work folder"


def resolved(path: str | os.PathLike) -> Path:
    """``path`` made absolute and normalised as the kernel reads it: ``..`` after a symlink is
    resolved through it (realpath), other symlinks keep their names (paths other nodes share)."""
    if ".." in Path(path).parts:
        return Path(os.path.realpath(path))
    return Path(os.path.abspath(path))


def default_work_dir(output: str | os.PathLike) -> Path:
    """``.<output name>.stvsr-parts`` beside the output (a name that would pass 255 bytes is shortened
    and made unique with a hash of the output's name)."""
    p = Path(os.path.abspath(output))
    name = f".{p.name}.stvsr-parts"
    if len(os.fsencode(name)) > 255:
        digest = hashlib.sha256(os.fsencode(p.name)).hexdigest()[:16]
        stem = os.fsencode(p.name)[:200].decode("utf-8", "ignore")
        name = f".{stem}-{digest}.stvsr-parts"
    return Path(os.path.realpath(p.parent)) / name


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


def temp_part(part: Path) -> Path:
    """The fixed temporary name a part is encoded under (``.part-NNNNN.EXT``: the suffix keeps the container)."""
    return part.with_name("." + part.name)


class PartOutput(SafeOutput):
    """A part's file, written under ``temp_part`` (not a random name), so that what a killed run left
    is a name the manifest implies, and the next run may delete it."""

    def __init__(self, part: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()):
        super().__init__(part, inputs, overwrite=True)
        _unlink(temp_part(self.path.absolute()))   # a killed run's (O_EXCL create below)

    def _temp_name(self) -> str:
        return str(temp_part(self.path.absolute()))


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rmdirs(path: Path, levels: int) -> None:
    """Remove ``path`` and up to ``levels - 1`` of its parents, while each is empty."""
    for _ in range(levels):
        try:
            os.rmdir(path)
        except OSError:
            return
        path = path.parent


def _why(old: dict, new: dict) -> str | None:
    """Why the parts recorded under the key ``old`` do not belong to ``new`` (None: they do)."""
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
    if old != new:
        return "the run's settings changed"
    return None


def _invalid(data) -> str | None:
    """What is wrong with a manifest of this version (None: its shape is valid)."""
    def ints(*values) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)

    if not isinstance(data, dict):
        return "not a JSON object"
    created, files, parts, ident = data.get("created"), data.get("files"), data.get("parts"), data.get("input")
    if not ints(created) or created > 64:
        return "'created' is not a folder count"
    if not isinstance(files, list) or not all(isinstance(f, str) and _PART.fullmatch(f) for f in files):
        return "'files' is not a list of part names"
    if not isinstance(ident, dict) or not ints(ident.get("size"), ident.get("mtime_ns")) or not all(
            isinstance(ident.get(k), str) and _HEX64.fullmatch(ident[k]) for k in ("head_sha256", "tail_sha256")):
        return "'input' is not an input identity"
    if not isinstance(data.get("model"), str) or not isinstance(data.get("options"), dict):
        return "'model' or 'options' has the wrong type"
    plan = data.get("plan")
    if not isinstance(plan, list) or not all(isinstance(s, list) and len(s) == 4 and ints(*s) for s in plan):
        return "'plan' is not a list of segments"
    if not isinstance(parts, dict):
        return "'parts' is not an object"
    for index, entry in parts.items():
        if not (index.isdigit() and isinstance(entry, dict) and isinstance(entry.get("file"), str)
                and isinstance(entry.get("sha256"), str) and _HEX64.fullmatch(entry["sha256"])):
            return f"part {index[:20]!r} is not a file name and checksum"
        name = _PART.fullmatch(entry["file"])
        if not name or int(name.group(1)) != int(index):
            return f"part {index} names {entry['file'][:80]!r}, not part-{int(index):05d}.EXT in the folder"
    return None


def _read_manifest(folder: Path) -> bytes | None:
    """The bytes of ``folder``'s manifest (None: there is none; b"": not a regular file, never stvsr's)."""
    try:
        fd = os.open(folder / MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return b""
        raise WorkDirError(f"cannot read {folder / MANIFEST}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):   # a folder, a FIFO, ...: not stvsr's
        os.close(fd)
        return b""
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_MANIFEST + 1)


def _check_unlocked(folder: Path) -> None:
    """Refuse a folder another run holds (a probe of its lock: nothing is created or kept)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        raise WorkDirError(f"another stvsr-run is using the work folder {folder}") from None
    finally:
        os.close(fd)


def claim(path: str | os.PathLike) -> bytes | None:
    """Refuse a folder that is not stvsr's: it exists, is not empty and holds no stvsr manifest (a
    missing folder is fine: stvsr will create it). Returns the manifest's bytes, if any. Cheap: the
    driver calls it for ``--work-dir`` before planning."""
    folder = resolved(path)
    if not os.path.lexists(folder):
        return None
    if not folder.is_dir():
        raise WorkDirError(f"cannot use work folder {folder}: not a folder")
    raw = _read_manifest(folder)
    if raw is not None and _MARKER.match(raw):
        _check_unlocked(folder)
        return raw
    try:
        empty = not any(os.scandir(folder))
    except OSError as exc:
        raise WorkDirError(f"cannot use work folder {folder}: {exc.strerror or exc}") from None
    if not empty:
        raise WorkDirError(f"cannot use {folder} as the work folder: it is not empty and holds no stvsr manifest "
                           "(stvsr writes its parts only into a new or empty folder, or one it made before); "
                           "choose another --work-dir")
    return None


class WorkDir:
    """Open (create) ``path`` for a run described by ``key`` (input, model, options, plan); parts are
    written as ``part-NNNNN<suffix>``. ``protected`` (the input, the output, the model) are never
    deleted or written: a run whose parts would land on one is refused."""

    def __init__(self, path: str | os.PathLike, key: dict, suffix: str, say: Callable[[str], None] = lambda m: None,
                 protected: dict[str, str | os.PathLike] | None = None):
        self.path = resolved(path)
        self.suffix = suffix
        self.protected = {what: Path(p) for what, p in (protected or {}).items()}
        self.key = json.loads(json.dumps(key, default=str))  # as it reads back
        if not _PART.fullmatch(self.part_path(0).name):
            raise WorkDirError(f"cannot name the parts {self.part_path(0).name} (the output's suffix {suffix!r})")
        self.parts: dict[int, dict] = {}
        self._lock_fd: int | None = None
        created = self._make()
        try:
            raw = None if created else claim(self.path)
            self._lock()
            if created == 0:
                raw = _read_manifest(self.path)   # again, under the lock
            self._open(raw, created, say)
        except BaseException:   # refused (or failed) before any part: release, and remove the folders made now
            self.close()
            _rmdirs(self.path, created)
            raise

    # -- opening ------------------------------------------------------------------------------------
    def _make(self) -> int:
        """Create the folder (and missing parents); how many levels were created (0: it existed)."""
        missing, p = [], self.path
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        for level in reversed(missing):
            try:
                os.mkdir(level)
            except FileExistsError:
                missing.remove(level)   # made meanwhile by someone else: not ours
            except OSError as exc:
                raise WorkDirError(f"cannot use work folder {self.path}: {exc.strerror or exc}") from None
        if not self.path.is_dir():
            raise WorkDirError(f"cannot use work folder {self.path}: not a folder")
        return len(missing)

    def _lock(self) -> None:
        """Take the folder's lock (flock on ``.lock``; a lock file unlinked by a finishing run is retried)."""
        for _ in range(10):
            try:
                fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                             0o644)
            except OSError as exc:
                raise WorkDirError(f"cannot use work folder {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise WorkDirError(f"another stvsr-run is using the work folder {self.path}") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path / LOCK, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)
        raise WorkDirError(f"another stvsr-run is using the work folder {self.path}")

    def _open(self, raw: bytes | None, created: int, say: Callable[[str], None]) -> None:
        """Read the old manifest, keep the parts that still belong to this run, delete the named rest."""
        old: dict | None = None
        named: set[str] = set()
        self.created = created
        if raw is not None:
            try:
                old = json.loads(raw) if len(raw) <= MAX_MANIFEST else None
                problem = None if old is not None else "it is damaged (larger than 64 MiB)"
            except ValueError:
                problem = "it is damaged (not valid JSON: truncated?)"
            if problem is None and isinstance(old, dict) and old.get("version") != VERSION:
                problem = f"another stvsr version wrote it ({str(old.get('version'))[:20]})"
            elif problem is None and _invalid(old):
                problem = f"it is damaged ({_invalid(old)})"
            if problem:   # its part names are all a rerun may delete; its folder count only if it reads
                named = {m.decode() for m in _QUOTED_PART.findall(raw)}
                found = re.search(rb'"created"\s*:\s*(\d{1,2})\b', raw)
                self.created = created or (int(found.group(1)) if found else 0)
                say(f"discarding the manifest in {self.path}: {problem}; its parts are computed again")
                old = None
            else:
                named = set(old["files"]) | {e["file"] for e in old["parts"].values()}
                self.created = created or old["created"]
        if old is not None:
            reason = _why({k: v for k, v in old.items() if k not in _KEY_META}, self.key)
            if reason is None:
                self.parts = {int(k): v for k, v in old["parts"].items() if self._intact(v)}
            elif old["parts"]:
                say(f"discarding {len(old['parts'])} finished part(s) in {self.path}: {reason}")
        planned = {self.part_path(i).name for i in range(len(self.key.get("plan", [])))}
        self._check_protected(named | planned)
        for name in sorted(planned - named):
            if os.path.lexists(self.path / name) or os.path.lexists(temp_part(self.path / name)):
                raise WorkDirError(f"{self.path / name} is in the way of a part and stvsr did not write it; move "
                                   "it away or choose another --work-dir")
        keep = {e["file"] for e in self.parts.values()}
        self._delete(n for n in named if n not in keep)
        self.files = planned | {n for n in named if os.path.lexists(self.path / n)}   # what could not go
        _unlink(self.path / MANIFEST_TMP)
        self.save()

    def _intact(self, entry: dict) -> bool:
        """A recorded part still there: a regular file (not a link) with its checksum."""
        f = self.path / entry["file"]
        try:
            return stat.S_ISREG(os.lstat(f).st_mode) and file_sha256(f) == entry["sha256"]
        except OSError:
            return False

    def _check_protected(self, names: set[str]) -> None:
        """Refuse when the input, output or model is (or would be) one of the folder's part files, by
        name or as the same file (a link)."""
        ours = names | {temp_part(Path(n)).name for n in names}
        existing = [self.path / n for n in ours if os.path.lexists(self.path / n)]
        folder = os.path.realpath(self.path)
        for what, path in self.protected.items():
            real = os.path.realpath(path)
            if real == folder:
                raise WorkDirError(f"the {what} {path} is the work folder; choose another --work-dir")
            if (os.path.dirname(real) == folder and os.path.basename(real) in ours) or (
                    os.path.exists(path) and any(same_file(p, path) for p in existing)):
                raise WorkDirError(f"the {what} {path} is a file of the work folder {self.path} (a part stvsr "
                                   "writes and deletes there); choose another --work-dir")

    def _delete(self, names: Iterable[str]) -> None:
        """Delete these part names and their temporary names (never a protected file)."""
        for name in names:
            for p in (self.path / name, temp_part(self.path / name)):
                if os.path.lexists(p) and not any(os.path.lexists(q) and same_file(p, q)
                                                  for q in self.protected.values()):
                    try:
                        os.unlink(p)
                    except OSError:
                        pass

    # -- while running --------------------------------------------------------------------------------
    def save(self) -> None:
        data = {"format": FORMAT, "version": VERSION, "created": self.created, "files": sorted(self.files),
                **self.key, "parts": {str(k): v for k, v in sorted(self.parts.items())}}
        tmp = self.path / MANIFEST_TMP
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / MANIFEST)
        finally:
            _unlink(tmp)
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

    # -- ending ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Keep the parts and manifest; remove the lock file and release the lock."""
        if self._lock_fd is not None:
            _unlink(self.path / LOCK)
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        """Delete the files the manifest names, the manifest and the lock, then the folders stvsr
        created (if that left them empty); the lock is held until this ends."""
        if self._lock_fd is None:
            return
        try:
            self._delete(set(self.files) | {e["file"] for e in self.parts.values()})
            self.parts.clear()
            _unlink(self.path / MANIFEST)
            _unlink(self.path / MANIFEST_TMP)
            _unlink(self.path / LOCK)
            _rmdirs(self.path, self.created)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = None
