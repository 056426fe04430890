"""The trainer's output layout, written by training/ and read by the harness's reports, in one place.

    <out_dir>/metrics.jsonl                  one {"step": N, tag: value, ...} line per logged step
    <out_dir>/step-N/                        a checkpoint (HF safetensors + trainer state)
    <experiment>/experiment.json             `longact experiment`'s manifest
    <experiment>/<arm>/seed-<s>/step-N/      an arm's checkpoint at one seed
    <experiment>/<arm>/step-N/               the same, in manifests written before seeds existed

It sits at the bottom layer (tasks/) because both halves read it: training writes it, the harness
finds experiments, labels checkpoints and plots training curves from it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.errors import UserError

METRICS_FILE = "metrics.jsonl"
MANIFEST_FILE = "experiment.json"
STEP_PREFIX = "step-"
SEED_PREFIX = "seed-"


def step_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / f"{STEP_PREFIX}{int(step)}"


def step_of(path: str | Path) -> int | None:
    """N for a directory named `step-N`; None for anything else."""
    name = Path(path).name
    tail = name[len(STEP_PREFIX):]
    return int(tail) if name.startswith(STEP_PREFIX) and tail.isdigit() else None


def step_dirs(out_dir: str | Path, complete=lambda p: True) -> list[Path]:
    """The run's `step-N` directories that `complete` accepts, in step order."""
    found = [p for p in Path(out_dir).glob(f"{STEP_PREFIX}*") if step_of(p) is not None and complete(p)]
    return sorted(found, key=step_of)


def arm_seed_dir(experiment_dir: str | Path, arm: str, seed: int) -> Path:
    return Path(experiment_dir) / arm / f"{SEED_PREFIX}{int(seed)}"


def run_dir_of(checkpoint: str | Path) -> Path:
    """The training run a checkpoint belongs to (where its metrics.jsonl is)."""
    return Path(checkpoint).parent


def checkpoint_label(checkpoint: str | Path) -> str:
    """A checkpoint's name that keeps its arm and seed: `step-N` under `<arm>/seed-S/` reads
    `<arm>/seed-S/step-N`, under `<arm>/` `<arm>/step-N`; any other directory its own name."""
    path = Path(checkpoint)
    if step_of(path) is None:
        return path.name
    if path.parent.name.startswith(SEED_PREFIX):
        return f"{path.parent.parent.name}/{path.parent.name}/{path.name}"
    return f"{path.parent.name}/{path.name}"


def manifest_path(experiment: str | Path) -> Path:
    """`experiment.json` of an experiment directory, or the path itself when it names the file."""
    p = Path(experiment)
    return p / MANIFEST_FILE if p.is_dir() else p


def manifest_of_checkpoint(checkpoint: str | Path) -> Path | None:
    """The manifest of the experiment a trainer checkpoint belongs to; None for other directories."""
    ckpt = Path(checkpoint)
    if step_of(ckpt) is None:
        return None
    for root in (ckpt.parent.parent.parent, ckpt.parent.parent):  # with seeds, then before seeds
        if (root / MANIFEST_FILE).is_file():
            return (root / MANIFEST_FILE).resolve()
    return None


def append_metrics(out_dir: str | Path, step: int, scalars: dict) -> None:
    with open(Path(out_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": int(step), **scalars}) + "\n")


def read_metrics(out_dir: str | Path) -> list[dict]:
    """One record per step, in step order, the last one logged for each: a run resumed from a
    checkpoint logs again the steps after it, and those are the ones its weights went through."""
    path = Path(out_dir) / METRICS_FILE
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            by_step[int(record["step"])] = record
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}, line {n}: expected a JSON object with an integer 'step' ({e})") from None
    return [by_step[k] for k in sorted(by_step)]
