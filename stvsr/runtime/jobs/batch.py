"""Several videos in one ``stvsr-run``: the videos of a folder, or a list of files, each written to
its own output with the model loaded once.

Each input is one unit, run exactly as a single input would be (``process``: the command's own
per-file call, ``upscale_video`` through the segment driver). Resume is per file: an output that
exists under its final name is finished and skipped, because outputs appear there only by the
final rename of ``stvsr.outfile.SafeOutput`` (an interrupted run leaves nothing at that name; a
killed one at most a hidden ``.stvsr-*`` temporary file, never taken for an output). ``overwrite``
recomputes them. A failed input is recorded with its one-line reason and the next one runs; a
signal stops the whole batch. Planning creates nothing (``run_batch`` creates a missing output
folder as the batch starts, so a refused one leaves none), and an output that is one of the
inputs (``-o`` of an input's own folder) is refused, never taken for a finished output.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from stvsr.outfile import same_file

# Files of a folder that are taken as videos (files named explicitly are taken whatever their name);
# stvsr-run's own default outputs (NAME.stvsr.mp4, written beside the inputs without -o) are not.
OWN_OUTPUT = ".stvsr.mp4"
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg",
                            ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".y4m", ".vob", ".dv"})


class BatchError(ValueError):
    """Inputs or an output folder that cannot make a batch (one line)."""


@dataclass(frozen=True)
class Item:
    input: str
    output: str


@dataclass
class BatchResult:
    written: list[str] = field(default_factory=list)           # outputs made by this run
    skipped: list[str] = field(default_factory=list)           # outputs that were already there
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, one-line reason)


def names_folder(output: str | None) -> bool:
    """``-o`` names a folder: an existing one, or a name that ends with ``/`` (or ``/.``, ``/..``),
    which means a folder to cp, rsync and FFmpeg users (created if missing, never a file named so)."""
    return bool(output) and (os.path.isdir(output) or os.path.basename(output) in ("", ".", ".."))


def is_batch(inputs: Sequence[str], output: str | None) -> bool:
    """Several inputs, a folder as input, or a folder as output (``names_folder``)."""
    return len(inputs) > 1 or any(os.path.isdir(p) for p in inputs) or names_folder(output)


def expand_inputs(paths: Sequence[str]) -> list[str]:
    """Files as given (duplicates dropped); a folder gives its video files (by suffix, not hidden,
    not in subfolders, not stvsr-run's own ``*.stvsr.mp4`` outputs), sorted by name."""
    found: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted(e.name for e in os.scandir(p) if not e.name.startswith(".") and e.is_file()
                           and Path(e.name).suffix.lower() in VIDEO_SUFFIXES and not e.name.endswith(OWN_OUTPUT))
            if not names:
                raise BatchError(f"{p}: no video files in this folder (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
            found += [os.path.join(p, n) for n in names]
        else:
            found.append(p)
    seen: set[str] = set()
    unique = []
    for p in found:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def plan_batch(paths: Sequence[str], out_dir: str | None, default_output: Callable[[str], str]) -> list[Item]:
    """Inputs and their outputs: ``out_dir/<input name>.mp4``, or ``default_output(input)`` beside
    each input without ``out_dir``. Nothing is created (``run_batch`` creates a missing ``out_dir``
    before the first output), so a refused batch leaves no folder. Refused: an ``out_dir`` that is
    an input folder, a file, or cannot be created; two inputs that would write the same output; an
    output that is one of the inputs (``-o`` of an input's own folder: never taken as finished)."""
    inputs = expand_inputs(paths)
    if out_dir is not None:
        _check_out_dir(paths, out_dir)
    items = [Item(p, os.path.join(out_dir, Path(p).stem + ".mp4") if out_dir is not None else default_output(p))
             for p in inputs]
    owner: dict[str, str] = {}
    for item in items:
        key = os.path.realpath(item.output)
        if key in owner:
            raise BatchError(f"{owner[key]} and {item.input} would both be written to {item.output}; "
                             "rename one of them or run them separately")
        owner[key] = item.input
    for item in items:
        taken = next((p for p in inputs if os.path.lexists(item.output) and same_file(item.output, p)), None)
        if taken is not None:
            what = "itself" if same_file(taken, item.input) else f"the input {taken}"
            raise BatchError(f"{item.input} would be written over {what} ({item.output}); write the outputs to "
                             "another folder (-o)")
    return items


def _check_out_dir(paths: Sequence[str], out_dir: str) -> None:
    """Refuse an output folder that is an input folder, is not a folder, names a video file, or
    cannot be created where it is missing (its nearest existing parent is not a writable folder)."""
    if any(os.path.isdir(p) and os.path.realpath(p) == os.path.realpath(out_dir) for p in paths):
        raise BatchError(f"-o {out_dir} is an input folder: write the outputs to another folder")
    if os.path.lexists(out_dir.rstrip(os.sep) or out_dir):   # "file.mp4/" names an existing file too
        if not os.path.isdir(out_dir):
            raise BatchError(f"-o {out_dir}: not a folder (the outputs are written into a folder here: several "
                             "inputs, a folder as input, or a name ending with /)")
        return
    if Path(out_dir).suffix.lower() in VIDEO_SUFFIXES:
        raise BatchError(f"-o {out_dir}: names a video file, but the outputs are written into a folder here "
                         "(several inputs, a folder as input, or a name ending with /); give a folder (created if "
                         "missing)")
    parent = Path(os.path.abspath(out_dir)).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BatchError(f"-o {out_dir}: cannot create the folder ({parent} is not a writable folder)")


def make_output_folders(items: Sequence[Item]) -> None:
    """Create the missing folders of ``items``' outputs (``-o DIR``), as a batch starts."""
    for folder in sorted({os.path.dirname(os.path.abspath(i.output)) for i in items}):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise BatchError(f"cannot create the folder {folder} ({exc.strerror or exc})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    note = getattr(exc, "resume_note", None)  # a segmented run's finished parts (stvsr.runtime.jobs.driver)
    tail = f"; {note}" if note else ""
    if isinstance(exc, (RuntimeError, ValueError, OSError)):
        return (text or type(exc).__name__) + tail
    return f"unexpected {type(exc).__name__}: {text[:300]}{tail}"


def run_batch(items: Sequence[Item], process: Callable[[Item], object], overwrite: bool = False,
              status: Callable[[str], None] | None = None,
              fatal: Callable[[BaseException], bool] = lambda exc: False) -> BatchResult:
    """Run ``process`` for every item whose output is not there yet (every item with
    ``overwrite``). An exception fails that item only, unless it is a ``KeyboardInterrupt``
    (signals) or ``fatal(exc)`` says it ends the batch; then it propagates."""
    say = status or (lambda message: None)
    result = BatchResult()
    make_output_folders([i for i in items if overwrite or not os.path.isfile(i.output)])
    for k, item in enumerate(items, 1):
        tag = f"[{k}/{len(items)}]"
        if not overwrite and os.path.isfile(item.output):
            say(f"{tag} {item.output} is already there (finished earlier): skipped; -y recomputes it")
            result.skipped.append(item.output)
            continue
        say(f"{tag} {item.input} -> {item.output}")
        try:
            process(item)
        except Exception as exc:
            if fatal(exc):
                raise
            result.failed.append((item.input, _one_line(exc).removeprefix(f"{item.input}: ")))
            say(f"{tag} failed: {item.input}: {result.failed[-1][1]}")
        else:
            result.written.append(item.output)
    return result
