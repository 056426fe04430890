"""Where SIGINT and SIGTERM become a stop: one process-wide flag, set by our own handlers.

    with interrupt.handling_signals():      # the whole run (run_eval, a sweep)
        ...
        interrupt.check()                   # between phases: raises Interrupted once stopped
        with interrupt.deferred():          # a short write that must not be cut in half
            cache[key] = answer

Why our own handlers rather than Python's default KeyboardInterrupt:

* A process started in the background of a non-interactive shell (`cmd &` in a script, a CI job)
  inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt: `kill -INT` did
  nothing and the run went on to the end (measured: the eval exited 0). While a run is under way
  the harness installs handlers for both signals, whatever it inherited.
* A library that catches KeyboardInterrupt (or BaseException) and carries on would swallow the
  stop. The flag stays set, so the next `check()` (the request dispatcher checks it every 0.2 s;
  the runner between phases) raises again: the stop cannot be lost.
* SIGTERM ends a run exactly like SIGINT (schedulers send it), with its own exit code.

The first signal raises `Interrupted` in the main thread (unless it lands inside `deferred()`,
which finishes its block first and then raises). Later signals only record themselves: clean-up
(stopping vLLM, writing run.json) is bounded and must not be cut short by a second Ctrl-C.
Exit codes follow the shell's convention, 128 + signal number: 130 for SIGINT, 143 for SIGTERM.

What happens between the signal and the exit is written to stderr with timestamps (`log`: the
wall-clock time and the seconds since the stop), and no request starts after it: a request is
admitted (`admit`) under the lock that the stop takes to set its flag, so every admitted request
was admitted before the stop, and none after (`sent_after_stop` counts them, to prove it).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import signal
import sys
import threading
import time
from typing import Callable

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (or `request_stop`); `exit_code` is 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    def __init__(self):
        self.stop = threading.Event()
        self.signum: int | None = None
        self.deferring = 0
        """Depth of `deferred()` blocks on the main thread."""
        self.pending = False
        """The first signal arrived inside a `deferred()` block: raise when it ends."""
        self.scopes = 0
        self.lock = threading.Lock()
        self.gate = threading.RLock()
        """Taken to set the stop and to admit a request: the two are ordered (`admit`). Re-entrant:
        the signal handler runs on the main thread, which may hold it."""
        self.stopped_at: float | None = None
        """time.monotonic() when the stop was requested."""
        self.log_origin: float | None = None
        """The stop's time for `log`: kept after the scope ends (the exit is logged after it) until
        the next scope starts."""


_state = _State()


def requested() -> bool:
    """Has a stop been requested (by a signal or `request_stop`) in the current scope?"""
    return _state.stop.is_set()


def check() -> None:
    """Raise `Interrupted` if a stop was requested: called between phases and by the dispatcher,
    so a stop that a library swallowed still ends the run at the next check."""
    if _state.stop.is_set():
        raise Interrupted(_state.signum or signal.SIGINT)


def wait(seconds: float) -> bool:
    """Sleep up to `seconds` (back-off between retries), waking at once on a stop; True if stopped."""
    return _state.stop.wait(seconds)


def request_stop(signum: int = signal.SIGINT) -> None:
    """Ask the run to stop as a signal would, from any thread, without raising here."""
    with _state.gate:
        if _state.stop.is_set():
            return
        _state.signum = int(signum)
        _state.stopped_at = _state.log_origin = time.monotonic()
        _state.stop.set()
    log(f"{signal.Signals(signum).name} received: no request is sent from now on")


def admit(count: Callable[[float], None] | None = None) -> float | None:
    """May a request start now? The moment it is admitted (time.monotonic()), or None once a stop
    was requested. Decided under the lock `request_stop` takes, so every admitted request was
    admitted before the stop: no request starts after it. `count(t)` runs under that lock too, so
    the tally it keeps is complete whenever the stop is seen."""
    with _state.gate:
        if _state.stop.is_set():
            return None
        t = time.monotonic()
        if count is not None:
            count(t)
        return t


def stopped_at() -> float | None:
    """time.monotonic() of the stop (None: no stop)."""
    return _state.stopped_at


def log(event: str) -> None:
    """One line on stderr about the stop, stamped with the wall-clock time and the seconds since
    the stop (the log of what happens between the signal and the exit); nothing before a stop."""
    if _state.log_origin is None:
        return
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    line = f"[stop {now} +{time.monotonic() - _state.log_origin:.3f} s] {event}\n"
    try:  # straight to the file descriptor: the signal handler calls this, maybe amid another write to stderr
        os.write(sys.stderr.fileno(), line.encode())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # no descriptor (a captured stream)
        with contextlib.suppress(Exception):
            sys.stderr.write(line)


def _on_signal(signum, frame) -> None:
    first = not _state.stop.is_set()
    request_stop(signum)
    if not first:
        print(f"{signal.Signals(signum).name} again: already stopping (stopping the server and saving take a few "
              "seconds)", file=sys.stderr, flush=True)
        return
    if _state.deferring:
        _state.pending = True
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred():
    """A short critical section (a cache write, stopping a server): the first signal that arrives
    inside it is raised as `Interrupted` right after it, never in its middle. Main thread only;
    elsewhere it does nothing (signals are only ever handled on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if not _state.deferring and _state.pending:
        _state.pending = False
        raise Interrupted(_state.signum or signal.SIGINT)


@contextlib.contextmanager
def handling_signals():
    """Install the SIGINT/SIGTERM handlers for the duration (re-entrant: an inner scope, such as
    each run of a sweep, shares the outer one's state) and restore the previous ones after.
    Outside the main thread nothing is installed; `check()` still sees `request_stop`."""
    with _state.lock:
        nested = _state.scopes > 0
        if nested:
            _state.scopes += 1
    if nested:  # runs of a sweep, possibly on several engines' threads at once
        try:
            yield
        finally:
            with _state.lock:
                _state.scopes -= 1
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in HANDLED}
    _state.scopes = 1
    _state.log_origin = None
    try:
        yield
    finally:
        _state.scopes = 0
        for s, handler in previous.items():
            signal.signal(s, handler)
        reset()


def reset() -> None:
    """Forget a stop (a new scope starts clean; tests)."""
    with _state.gate:
        _state.stop.clear()
        _state.signum = None
        _state.stopped_at = None
    _state.pending = False
