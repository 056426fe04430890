"""Helpers shared by the bench scripts: build or reuse the tiny model, time a call, a scratch directory.

Figures are recorded with bench/figures.py's `record_figure`."""

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
