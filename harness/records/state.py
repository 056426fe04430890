"""How a run stands: what run.json says, whether a process still writes it, and what to run to finish it.

run.json says `running` from the start of a run until the run ends and rewrites it; a run that
is killed (SIGKILL, out of memory, a lost machine) never gets to. A live run holds an exclusive
flock on `<run_dir>/.lock` (`harness.records.io.lock_run_dir`) and the operating system drops it
when the process dies, so a `running` record whose lock is free belongs to a dead run: it is
reported as `stopped`, never as still running. Every place a run appears (`longact show`,
`compare`, the leaderboard) reads its state here.

    state = run_state(record, run_dir)
    state.status    # complete | incomplete | failed | interrupted | running | stopped
    state.note      # one line for people
    state.resume    # the command that finishes it (None when finished, live or not rerunnable)
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.records.schema import RunRecord

STOPPED = "stopped"
"""The status shown for a `running` record that no live process holds."""


@dataclass(frozen=True)
class RunState:
    status: str
    """The recorded status, except `stopped` for a `running` record whose writer is gone."""
    note: str
    """One line saying how the run stands, for tables and error messages."""
    resume: str | None = None
    """Shell command that finishes the run in the same directory (None: nothing to resume)."""

    def summary(self, code: bool = False) -> str:
        """The note, then the command that finishes the run when there is one (`code`: in Markdown
        backticks): how an unfinished run is named under every table and in every error."""
        if not self.resume:
            return self.note
        return f"{self.note}; to resume: " + (f"`{self.resume}`" if code else self.resume)

    @property
    def finished(self) -> bool:
        """Every request was answered: the scores cover the whole run."""
        return self.status == "complete"


def writer_pid(run_dir: str | os.PathLike) -> int | None:
    """The pid of the live process holding the run directory's lock, 0 when a live process
    holds it without saying which, None when no live process holds it (or there is no lock file:
    runs written before locking, imported runs).

    Probes with a shared, non-blocking flock that is released at once: a live run's exclusive
    lock refuses it, a dead run's lock is gone. The probe never creates the lock file."""
    import fcntl

    try:
        handle = open(Path(run_dir) / ".lock", encoding="utf-8")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            words = handle.read().split()
            return int(words[1]) if len(words) == 2 and words[0] == "pid" and words[1].isdigit() else 0
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def resume_command(record: RunRecord) -> str | None:
    """The run's own command, writing into its own directory: rerunning it sends only the requests
    that have no answer in the request cache yet. None for runs with no command (imported)."""
    argv = list(record.command)
    if not argv:
        return None
    # Without the run id an `eval` rerun would make a new directory and leave this one unfinished
    # beside it; `--experiment` runs name their arms' directories themselves, and other commands
    # (`longact demo`) have no such flag: they resume as they were typed.
    if argv[1:2] == ["eval"] and not any(a == flag or a.startswith(flag + "=")
                                         for a in argv for flag in ("--run-id", "--experiment")):
        argv += ["--run-id", record.run_id]
    return shlex.join(argv)


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_state(record: RunRecord, run_dir: str | os.PathLike | None = None) -> RunState:
    """How `record` stands; `run_dir` (its directory) lets a `running` record be checked for a
    live writer. Without it a `running` record is taken at its word."""
    status, resume = record.status, resume_command(record)
    if status == "complete":
        return RunState(status, "complete")
    if status == "running":
        pid = writer_pid(run_dir) if run_dir is not None else 0
        if pid is not None:
            return RunState(status, f"running ({f'pid {pid}' if pid else 'a live process holds it'}); "
                                    "its results are not written yet")
        return RunState(STOPPED, "stopped before finishing: run.json still says running but no process holds "
                                 "the run (killed?)", resume)
    if status == "incomplete":
        failed = record.requests.get("failed")
        what = f"{failed} request(s)" if failed else "some requests"
        return RunState(status, f"incomplete: {what} failed and count as wrong", resume)
    if status == "interrupted":
        return RunState(status, "interrupted (Ctrl-C or SIGTERM) before finishing", resume)
    if status == "failed":
        why = _first_line(record.errors[-1]) if record.errors else "no error recorded"
        return RunState(status, f"failed: {why}", resume)
    return RunState(status, status, resume)
