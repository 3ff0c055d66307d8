"""Safe output files: every user-visible file stvsr writes goes through here.

A file is written under a short temporary name in its own folder (``.stvsr-<8 hex><suffix>``,
so names of up to 255 bytes work), created with mode ``0666 & ~umask`` like any new file, and
renamed into place only when complete; on any error or signal the temporary file is removed.
Before anything is written the target is checked: not a folder, nothing but a regular file
(a FIFO, a device such as ``/dev/null`` or a socket, symlinks resolved, is refused even when
overwriting: a rename would replace it), folder writable, not the same file as any input
(``os.path.samefile``, so symlinks, hard links and ``/proc/self/cwd/...`` are caught), and not an
existing file unless overwriting was asked for.

Creating the temporary file and renaming it are short critical sections in which the signals
the commands handle (``HELD_SIGNALS``) are held and re-delivered right after (main thread), so a
signal can neither leave a temporary file behind nor arrive between the rename and ``committed``
becoming true. Every completed output is appended to ``COMMITTED`` (so a command interrupted
after its rename can say that the file is complete).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import stat
import threading
from pathlib import Path
from typing import Iterable, Iterator

# The signals stvsr's commands turn into a clean stop (stvsr.cli_signals); held in critical sections.
HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1",
                                                        "SIGUSR2", "SIGPIPE") if hasattr(signal, name))
_SIGNALS = HELD_SIGNALS
_MAX_SUFFIX = 16
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO}  # a write that cannot complete
COMMITTED: list[str] = []  # every output renamed into place by this process, in order


class OutputError(OSError):
    """An output path that cannot, or must not, be written."""

    def __str__(self) -> str:  # one plain line, without OSError's "[Errno ...]" decoration
        return str(self.args[0]) if self.args else "cannot write the output"


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold ``HELD_SIGNALS`` during a short critical section and re-deliver them afterwards.

    Only the main thread runs Python signal handlers, so elsewhere this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous: dict[int, object] = {}
    try:
        for sig in _SIGNALS:
            previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in pending:
            signal.raise_signal(sig)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file (symlinks and hard links resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_regular(p: str | os.PathLike) -> str | None:
    """What ``p`` is (symlinks resolved) when it exists and is not a regular file (``a named pipe
    (FIFO)``, ``a character device``, ...), else None. Inputs are checked with it too."""
    try:
        mode = os.stat(p).st_mode
    except OSError:  # absent, or a dangling symlink: a new file
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), overwrite: bool = True) -> Path:
    """Refuse an output that is a folder or anything but a regular file (FIFO, device, socket;
    also with ``overwrite``), sits in a missing or read-only folder, is one of ``inputs``, or
    exists while ``overwrite`` is false. Returns the path."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    kind = not_regular(p)
    if kind is not None:
        raise OutputError(f"cannot write {path}: it is {kind}, not a regular file (never replaced, even with "
                          "--overwrite); choose a file name")
    parent = p.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist (not writable)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: folder {parent} is not writable")
    for inp in inputs:
        if inp is not None and os.path.lexists(p) and same_file(p, inp):
            raise OutputError(f"the output {path} is the input {inp}; choose another output")
    if not overwrite and os.path.lexists(p):
        raise OutputError(f"{path} already exists; pass --overwrite (-y) to replace it")
    return p


class SafeOutput:
    """One output file: ``create`` a temporary file, write it, ``commit`` (rename) or ``discard``."""

    def __init__(self, path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), overwrite: bool = True):
        self.inputs = [os.fspath(i) for i in inputs if i is not None]
        self.overwrite = overwrite
        self.path = check_output(path, self.inputs, overwrite)
        self.tmp: str | None = None
        self.committed = False

    def _temp_name(self) -> str:
        suffix = self.path.suffix
        if len(os.fsencode(suffix)) > _MAX_SUFFIX or not suffix.isascii():
            suffix = ".tmp"
        return str(self.path.absolute().parent / f".stvsr-{secrets.token_hex(4)}{suffix}")

    def create(self) -> str:
        """Create the (empty) temporary file and return its path."""
        if self.tmp is not None:
            return self.tmp
        for _ in range(100):
            with deferred_signals():
                name = self._temp_name()
                try:
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
                os.close(fd)
                self.tmp = name
            return name
        raise OutputError(f"cannot write {self.path}: no free temporary name in its folder")

    def commit(self) -> Path:
        """Rename the finished temporary file to the output path."""
        if self.tmp is None:
            raise OutputError(f"cannot commit {self.path}: nothing was written")
        check_output(self.path, self.inputs, self.overwrite)  # again: the folder may have changed meanwhile
        with deferred_signals():
            if self.overwrite:
                os.replace(self.tmp, self.path)
            else:
                self._link_no_clobber()
            self.tmp, self.committed = None, True
            COMMITTED.append(str(self.path))
        return self.path

    def _link_no_clobber(self) -> None:
        try:
            os.link(self.tmp, self.path)  # fails if the path appeared meanwhile: never replaces a file
        except FileExistsError:
            raise OutputError(f"{self.path} already exists; pass --overwrite (-y) to replace it") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
                raise
            if os.path.lexists(self.path):  # a file system without hard links
                raise OutputError(f"{self.path} already exists; pass --overwrite (-y) to replace it") from None
            os.replace(self.tmp, self.path)
            return
        os.unlink(self.tmp)

    def discard(self) -> None:
        """Remove the temporary file, if any (idempotent; a committed output is kept)."""
        with deferred_signals():
            if self.tmp is not None:
                try:
                    os.unlink(self.tmp)
                except FileNotFoundError:
                    pass
                self.tmp = None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                  overwrite: bool = True) -> Iterator[str]:
    """``with atomic_output(path) as tmp: write(tmp)`` — ``path`` appears only if the block succeeds.

    A write that cannot complete (disk full, file too large, read-only or failing disk) becomes one
    ``OutputError`` line naming ``path``; the temporary file is removed."""
    out = SafeOutput(path, inputs, overwrite)
    try:
        yield out.create()
        out.commit()
    except OutputError:
        raise
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(f"cannot write {out.path}: {exc.strerror or exc}") from None
    finally:
        out.discard()
