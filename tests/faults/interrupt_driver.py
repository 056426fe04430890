"""Run `longact ARGS` with a signal injected at one phase of the eval (tests/faults/test_interrupts.py).

    python tests/faults/interrupt_driver.py PHASE SIGNAL STAMP -- eval --base-url ... --tasks ...

The phase's entry point is wrapped so that the process sends itself SIGNAL exactly there (no
sleeping and hoping), and the moment is written to the file STAMP. Phases:

  startup     vLLM has been launched and the harness waits for it to become healthy
  probe       the tokenizer probe against the server
  tasks       lm-eval task loading
  swallowed   task loading, by a library that catches the KeyboardInterrupt and carries on
  cache       the third answer's write into the request cache
  results     the first samples file has just been written
  none        nothing injected (the test sends the signal from outside)
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def fire(sig: int, stamp: str) -> None:
    Path(stamp).write_text(str(time.time()))
    os.kill(os.getpid(), sig)


def before(owner, name: str, sig: int, stamp: str, nth: int = 1, swallow: bool = False, after: bool = False):
    """Wrap owner.name: on its nth call, fire the signal before (or after) the original runs."""
    original = getattr(owner, name)
    calls = [0]

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] != nth:
            return original(*args, **kwargs)
        if after:
            out = original(*args, **kwargs)
            fire(sig, stamp)
            return out
        if swallow:
            try:
                fire(sig, stamp)
                time.sleep(1.0)
            except KeyboardInterrupt:  # what a careless library does
                pass
            return original(*args, **kwargs)
        fire(sig, stamp)
        return original(*args, **kwargs)

    setattr(owner, name, wrapped)


def main() -> int:
    phase, sig_name, stamp, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: interrupt_driver.py PHASE SIGNAL STAMP -- ARGS"
    sig = getattr(signal, sig_name)
    from harness.backends import serve
    from harness.run import tasks

    if phase == "startup":
        before(serve.VLLMServer, "_wait_healthy", sig, stamp)
    elif phase == "probe":
        before(serve, "check_same_tokenizer", sig, stamp)
    elif phase == "tasks":
        before(tasks.TaskCatalog, "load", sig, stamp)
    elif phase == "swallowed":
        before(tasks.TaskCatalog, "load", sig, stamp, swallow=True)
    elif phase == "cache":
        from sqlitedict import SqliteDict

        before(SqliteDict, "__setitem__", sig, stamp, nth=4)  # the cache's identity claim, then three answers
    elif phase == "results":
        from harness.run import results

        before(results, "atomic_write_jsonl", sig, stamp, after=True)
    elif phase != "none":
        raise SystemExit(f"unknown phase {phase}")
    from longact.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
