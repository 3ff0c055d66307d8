"""Signals and exit codes shared by ``stvsr-run`` and ``stvsr-export``.

Exit codes: 0 done, 1 error (one line on stderr), 2 usage error, 128+N stopped by signal N:
130 SIGINT (Ctrl-C), 143 SIGTERM, 129 SIGHUP, 131 SIGQUIT, 138 SIGUSR1, 140 SIGUSR2, 141 SIGPIPE
(Linux numbers).

While a command runs, each of those signals raises ``Interrupted`` (a ``KeyboardInterrupt``) in
the main thread, so the clean-up of Ctrl-C runs for all of them (``stvsr.outfile`` removes the
temporary file) and the command ends with one line. Once the outcome is settled (an error or
interruption printed, or the command done) a later signal only is recorded; if the command had
succeeded, it is reported (``... after OUT was completely written``) and the exit code becomes
128+N. A command started from the command line then runs the ``atexit`` callbacks and ends with
``os._exit`` after flushing stdout and stderr, so no signal can arrive during the interpreter's
shutdown (where Python restores the default handlers: exit -2/-15 without a message, or
"Exception ignored ... KeyboardInterrupt").
"""
from __future__ import annotations

import _thread
import atexit
import os
import signal
import sys
import threading
from typing import NoReturn

import click

from stvsr import outfile

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
HANDLED = outfile.HELD_SIGNALS
_WORDS = {"SIGINT": "interrupted", "SIGTERM": "terminated"}


def signal_exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


def signal_words(signum: int) -> str:
    """``interrupted`` (SIGINT), ``terminated`` (SIGTERM), else ``stopped by SIGNAME``."""
    name = signal.Signals(signum).name
    return _WORDS.get(name, f"stopped by {name}")


class Interrupted(KeyboardInterrupt):
    """A handled signal, raised in the main thread so that the clean-up of Ctrl-C runs."""

    def __init__(self, signum: int):
        super().__init__(signal_words(signum))
        self.signum = int(signum)


class SignalGuard:
    """The signal state of one command invocation (see the module docstring)."""

    def __init__(self, prog: str, nothing_written: str):
        self.prog, self.nothing_written = prog, nothing_written
        self.received: list[int] = []
        self.settled = False
        self._first_output = len(outfile.COMMITTED)
        self._watched: set[str] = set()
        self._finished = 0  # signals already accounted for by ``finish``
        self._previous: dict[int, object] = {}
        self._previous_hook = None

    def _on_signal(self, signum: int, frame) -> None:
        self.received.append(signum)
        if not self.settled:
            raise Interrupted(signum)

    def _unraisable(self, unraisable) -> None:
        """An ``Interrupted`` raised where Python can only print it (a ``__del__``): no traceback;
        delivered again 10 ms later from a timer thread, so that it stops the command in the main
        flow once the ``__del__`` is done (re-delivered from here, the handler would run right here)."""
        if not isinstance(unraisable.exc_value, Interrupted):
            (self._previous_hook or sys.__unraisablehook__)(unraisable)
            return
        while not self.settled:  # settled: the signal is recorded, and ``finish`` reports it
            try:
                timer = threading.Timer(0.01, self._redeliver, (unraisable.exc_value.signum,))
                timer.daemon = True
                timer.start()
                return
            except KeyboardInterrupt:  # yet another signal, inside this hook: try again
                continue

    def _redeliver(self, signum: int) -> None:
        if not self.settled and self._previous:  # still this command's handlers
            _thread.interrupt_main(signum)

    def install(self) -> None:
        for sig in HANDLED:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except (ValueError, OSError):  # not the main thread, or a signal this platform refuses
                pass
        self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable

    def reclaim(self) -> None:
        """Set this command's handlers again after a library replaced them (``ray.init`` sets its own
        SIGTERM handler); nothing when none were installed (a library call)."""
        for sig in self._previous:
            try:
                signal.signal(sig, self._on_signal)
            except (ValueError, OSError):  # not the main thread
                pass

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        if self._previous_hook is not None:
            sys.unraisablehook, self._previous_hook = self._previous_hook, None

    def settle(self) -> None:
        """The outcome is decided: from now on signals are only recorded."""
        self.settled = True

    def signal_of(self, exc: BaseException | None = None) -> int | None:
        """The signal that stopped the command: the first one received (a signal can also surface
        as another exception, e.g. from a C extension), else ``exc``'s; None when none did."""
        if self.received:
            return self.received[0]
        if isinstance(exc, Interrupted):
            return exc.signum
        if isinstance(exc, KeyboardInterrupt):
            return signal.SIGINT
        return None

    def watch(self, path: str | os.PathLike) -> None:
        """Name the command's output: ``written`` then ignores other files (work parts, sidecars)."""
        self._watched.add(os.path.abspath(path))

    def written(self) -> str | None:
        """The last (watched) output this invocation renamed into place, if any."""
        new = [p for p in outfile.COMMITTED[self._first_output:]
               if not self._watched or os.path.abspath(p) in self._watched]
        return new[-1] if new else None

    def say(self, message: str) -> None:
        try:  # stderr may be a closed pipe (SIGPIPE): nothing more to say then
            click.echo(f"{self.prog}: {message}", err=True)
        except Exception:
            pass

    def fail(self, message: str, code: int = EXIT_ERROR) -> NoReturn:
        self.settle()
        self.say(f"error: {message}")
        raise SystemExit(code)

    def stopped_line(self, signum: int, note: str | None = None) -> str:
        """``interrupted; no output written[; note]``, or ``... after OUT was completely written``."""
        out = self.written()
        what = signal_words(signum)
        if out:
            return f"{what} after {out} was completely written"
        return f"{what}; {self.nothing_written}" + (f"; {note}" if note else "")

    def interrupted(self, signum: int, note: str | None = None) -> NoReturn:
        """Print the one line for a command stopped by ``signum`` (``note``: what a rerun resumes from,
        when nothing was written) and exit 128+N."""
        self.settle()
        self.fail(self.stopped_line(signum, note), signal_exit_code(signum))

    def finish(self, code: int) -> int:
        """Settle, and turn a success that a signal hit at its very end into 128+N with its line."""
        self.settle()
        if code == EXIT_OK and self.received:
            self.say(f"error: {self.stopped_line(self.received[0])}")
            code = signal_exit_code(self.received[0])
        self._finished = len(self.received)
        return code

    def exit_process(self, code: int) -> NoReturn:
        """Run the ``atexit`` callbacks (e.g. a local Ray cluster's shutdown), flush stdout/stderr and
        end the process, without the rest of the interpreter's shutdown (see module docstring). A
        signal that came after ``finish`` (or meanwhile: the handler is still ours) is reported like
        one before it."""
        try:
            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001 - nothing may stop the exit now
            pass
        while True:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            if len(self.received) == self._finished:
                break
            code = self.finish(code)
        os._exit(code)


_DORMANT = SignalGuard("stvsr", "no output written")  # stands in when a command runs without the wrapper
_active: SignalGuard | None = None


def active() -> SignalGuard:
    """The guard of the command running now (a dormant one outside ``SignalSafeCommand``)."""
    return _active or _DORMANT


def _exit_code(value) -> int:
    if value is None:
        return EXIT_OK
    return value if isinstance(value, int) else EXIT_ERROR


class SignalSafeCommand(click.Command):
    """A click command whose signals and exit codes follow the module docstring, also while click
    parses the command line (no "Aborted!" with exit 1, no bare SIGTERM).

    Subclasses set ``prog`` and ``nothing_written`` (the end of the line after an early signal)."""

    prog = "stvsr"
    nothing_written = "no output written"

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        global _active
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        guard, outer = SignalGuard(self.prog, self.nothing_written), _active
        _active = guard
        guard.install()
        try:
            try:
                code = self._invoke(guard, args, prog_name, complete_var, **extra)
            except KeyboardInterrupt:  # a signal in the few bytecodes before an error handler settled
                guard.settled = True
                code = signal_exit_code(guard.signal_of() or signal.SIGINT)
                guard.say(f"error: {guard.stopped_line(guard.signal_of() or signal.SIGINT)}")
            code = guard.finish(code)
            if args is None:  # started from the command line: end here (nothing of a caller to return to)
                guard.exit_process(code)
        finally:  # called from Python (click's test runner, a script): its handlers come back
            _active = outer
            guard.restore()
        sys.exit(code)

    def _invoke(self, guard: SignalGuard, args, prog_name, complete_var, **extra) -> int:
        try:
            try:
                return _exit_code(super().main(args, prog_name, complete_var, standalone_mode=False, **extra))
            except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt into Abort
                guard.interrupted(guard.signal_of(exc.__cause__) or signal.SIGINT)
            except click.ClickException as exc:
                guard.settle()
                exc.show()
                return exc.exit_code
            except KeyboardInterrupt as exc:
                guard.interrupted(guard.signal_of(exc) or signal.SIGINT)
            except Exception as exc:  # a bug: still one line, never a traceback
                guard.settle()
                signum = guard.signal_of(exc)
                if signum is not None:
                    guard.interrupted(signum)
                guard.fail(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        except SystemExit as exc:
            return _exit_code(exc.code)
