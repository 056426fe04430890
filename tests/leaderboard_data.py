"""Generated result directories for leaderboard tests and bench/leaderboard_scale.py: several
models, each evaluated in several runs (LongBench v2 once, RULER once per length, InfiniteBench
once), with per-item scores that fall with the length and differ by model. The scores are made
up; the run.json and samples files are written through the real schema."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from harness.records.io import load_run
from tasks.benchmarks import get
from tests.test_compare import write_run

DIFFICULTY = ("easy", "hard")
LENGTH_CLASS = ("short", "medium", "long")


def _items(rng: random.Random, p: float, n: int) -> list[float]:
    return [100.0 if rng.random() < p else 0.0 for _ in range(n)]


def _as_model(run_dir: Path, model: str, finished_at: str, sizing: str | None = None) -> None:
    """Make the run one of `model`'s: its path, weights and tokenizer hashes, and (RULER) how its
    documents were sized."""
    rec = load_run(run_dir)
    digest = hashlib.sha256(model.encode()).hexdigest()
    rec.model.path, rec.model.weights_sha256, rec.model.tokenizer_sha256 = f"models/{model}", digest, digest
    rec.finished_at = rec.started_at = finished_at
    if sizing:
        for task in rec.tasks.values():
            task.data_sources = [{"sizing": sizing, "sources": []}]
    (run_dir / "run.json").write_text(json.dumps(rec.to_dict()))


def write_results(root: Path, n_models: int = 10, lengths=(4096, 8192), items: int = 8, seed: int = 0,
                  unofficial: tuple[int, ...] = ()) -> list[str]:
    """`n_models` models x (1 + len(lengths) + 1) runs under `root`; the model names, best first
    by construction. Models whose index is in `unofficial` sized RULER exactly (not comparable)."""
    rng = random.Random(seed)
    ruler, infinite = get("ruler"), get("infinitebench")
    names = []
    for m in range(n_models):
        name = f"model-{m:03d}-{'x' * (m % 7)}instruct"
        names.append(name)
        skill = 0.95 - 0.6 * m / max(1, n_models - 1)
        docs = [{"difficulty": DIFFICULTY[i % 2], "length": LENGTH_CLASS[i % 3]} for i in range(items * 3)]
        run = write_run(root, f"{name}-lb", {"longbench_v2": _items(rng, skill / 2, len(docs))},
                        docs={"longbench_v2": docs}, group=None)
        _as_model(run, name, "2026-12-01T00:00:00Z")
        for k, length in enumerate(lengths):
            tasks = ruler.groups["ruler"]
            scores = {t: _items(rng, skill * (1 - 0.1 * k), items) for t in tasks}
            run = write_run(root, f"{name}-ruler-{length}", scores, docs={t: [{"length": length}] * items for t in tasks},
                            window=length, group=None)
            _as_model(run, name, f"2026-12-02T00:00:{k:02d}Z", "exact" if m in unofficial else "official")
        run = write_run(root, f"{name}-ib", {t: _items(rng, skill * 0.5, items) for t in infinite.groups["infinitebench"]},
                        window=max(lengths), group=None)
        _as_model(run, name, "2026-12-03T00:00:00Z")
    return names
