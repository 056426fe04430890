"""Helpers shared by the bench scripts: build or reuse the tiny model, start one server."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def tiny_model(path: str | None) -> str:
    """The model to bench: PATH when it is a model directory already (a real checkpoint is used as
    it is), else the tiny model built at PATH (default models/tiny-qwen3)."""
    from longact.tiny.model import build_tiny_model, is_tiny_model_dir

    p = Path(path or "models/tiny-qwen3")
    if not is_tiny_model_dir(p) and not (p / "config.json").is_file():
        build_tiny_model(p)
    return str(p)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def scratch_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


FIGURES = Path(__file__).resolve().parent / "figures.json"


def record_figure(name: str, value: float, unit: str, note: str = "", *, path: Path | str | None = None) -> dict:
    """Merge one measured figure into bench/figures.json (and rewrite docs/figures.md from it).

    The entry keeps the value with the date, the commit (and whether the tree was dirty), the load
    average `uptime` prints and the CPU count, so a reader knows what the number was measured on.
    `name` should be in bench/figures.py's CATALOG (which says what it measures); another name is
    recorded with a warning and listed apart. `path` (tests) writes elsewhere and skips the page.
    """
    import datetime
    import fcntl
    import json
    import os
    import subprocess
    import sys

    from bench.figures import CATALOG, write_page

    if name not in CATALOG:
        print(f"record_figure: {name!r} is not in bench/figures.py's CATALOG; add it there", file=sys.stderr)
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    # dirty: changes other than the figures this function writes
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/figures.json", ":!docs/figures.md")
    entry = {"value": value, "unit": unit, "note": note,
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(status) if status is not None else None,
             "load": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    target = Path(path) if path is not None else FIGURES
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(target.parent, os.O_RDONLY)  # two bench runs may finish at once: one writes at a time
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        figures = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
        figures[name] = entry
        tmp = target.with_name(target.name + ".tmp")
        rows = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(figures.items())]  # one line each: easy diffs
        tmp.write_text("{\n" + ",\n".join(rows) + "\n}\n", encoding="utf-8")
        os.replace(tmp, target)
        if path is None:
            write_page(figures)
    finally:
        os.close(lock)
    return entry
