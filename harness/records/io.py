"""Result files: unique run ids, atomic writes, loading and validating run directories.

A run directory `results/<run_id>/` holds `run.json` (see harness.records.schema), one
`samples_<task>.jsonl` per task, `server.log` for managed servers and `config.json` (the resolved
command-line config). Every file is written to a temporary name in the same directory and then
renamed, so a reader (or a crash) never sees half a file; `run.json` says `complete` only after
everything else is on disk.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from harness.errors import UserError
from harness.records.schema import RunRecord, SchemaError
from tasks.data_io import atomic_write_text


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id() -> str:
    """UTC second + 8 random hex digits: sortable by time and unique across concurrent runs."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


def create_run_dir(output_dir: str | os.PathLike, run_id: str | None = None) -> tuple[str, Path]:
    """Make `output_dir/<run_id>`; with no id, pick a fresh one (mkdir fails if it exists, so two
    concurrent runs can never share a directory)."""
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as e:
        raise UserError(f"cannot write to output directory {out}: {e.strerror or e}. "
                        "Choose another with --output-dir.") from e
    if run_id is not None:
        d = out / run_id
        d.mkdir(exist_ok=True)
        return run_id, d
    for _ in range(100):
        rid = new_run_id()
        try:
            (out / rid).mkdir()
            return rid, out / rid
        except FileExistsError:
            continue
    raise UserError(f"could not create a unique run directory under {out}")


def lock_run_dir(run_dir: Path):
    """Hold an exclusive lock on a run directory for as long as the returned file stays open.

    Two runs writing one directory would overwrite each other's results; the second is refused.
    The lock is the operating system's (flock), so a killed run never leaves a stale one."""
    import fcntl

    handle = open(run_dir / ".lock", "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"run directory {run_dir} is in use by a running evaluation ({owner}); wait for it, "
                        "or pass another --run-id") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def write_run(run_dir: str | os.PathLike, record: RunRecord) -> Path:
    path = Path(run_dir) / "run.json"
    atomic_write_json(path, record.to_dict())
    return path


def load_run(path: str | os.PathLike) -> RunRecord:
    """Load `run.json` (or a run directory) and validate it against the schema."""
    p = Path(path)
    if p.is_dir():
        p = p / "run.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UserError(f"{p}: no such result file") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{p}: not valid JSON ({e})") from e
    try:
        return RunRecord.from_dict(data)
    except SchemaError as e:
        raise UserError(f"{p}: {e}") from e


def find_runs(root: str | os.PathLike) -> list[Path]:
    """All run directories (holding run.json) under `root` at any depth (`results/reference/<run>`,
    a study's `results/studies/<study>/<run>`), sorted by path. Hidden directories (the request
    cache) and the inside of a run directory are not searched."""
    root = Path(root)
    found = []
    for here, dirs, files in os.walk(root):
        if "run.json" in files:
            found.append(Path(here))
            dirs.clear()
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found)
