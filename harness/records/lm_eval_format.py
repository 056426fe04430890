"""A run in lm-evaluation-harness's results layout: `results_<timestamp>.json` beside `run.json`.

Tools written for lm-eval (its `make_table`, the W&B and Zeno loggers, leaderboard scripts) read
the aggregated file `lm_eval --output_path` writes. This writes the same layout from a RunRecord,
so they read our runs too; `run.json` stays the record of truth and this file is derived from it
(a pure function, `lm_eval_results`), rewritten whenever the run is.

Layout as lm-eval 0.4.13 writes it (lm_eval/evaluator_utils.py `EvalAcc._to_eval_results`,
lm_eval/evaluator.py `simple_evaluate`, lm_eval/loggers/evaluation_tracker.py
`save_results_aggregated`, lm_eval/result_schema.py `EvalResults`):

* `results`: task and group -> {"alias", "name", "sample_len", "<metric>,<filter>": value,
  "<metric>_stderr,<filter>": stderr or "N/A"}; our metric `m` is lm-eval's `m,none`, and
  `m[f]` (a metric under filter f, see harness.records.aggregate.parse_metrics) is `m,f`.
  Values keep the record's scale (percent for the three benchmarks, as their tasks report).
* `groups`: the group entries again; `group_subtasks`: group -> member tasks.
* `configs`: what run.json keeps of each task's config (task, generation kwargs, version, config
  hash, data fingerprint, endpoint), not the full YAML.
* `versions`, `n-samples` ({"original", "effective"}; original is None under `--limit`, which
  run.json does not size), `config` (model, model_args, limit, seeds), `git_hash`, `date`,
  `model_source`, `model_name`, `model_name_sanitized`, `max_length`,
  `total_evaluation_time_seconds`, `lm_eval_version`, `transformers_version`.
* Not in run.json, so written empty: `n-shot`, `higher_is_better` (lm-eval's readers treat a
  missing entry as unknown), `task_hashes`; no per-sample `samples` key (ours are
  `samples_<task>.jsonl`).
* `longact`: what lm-eval has no key for (run id, status, mode, samples per item, weight and
  tokenizer hashes, serving): extra keys are ignored by lm-eval's readers.

The file name is lm-eval's, `results_<date_id>.json` with `date_id = datetime.isoformat()` with
":" replaced by "-", from the run's finish time (its start time while unfinished), so writing a
record twice gives the same file.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from harness.records.io import atomic_write_json
from harness.records.schema import Metric, RunRecord
from tasks.benchmarks import group_members

FILE_PREFIX = "results_"


def _metric_key(name: str) -> tuple[str, str]:
    """Our metric name -> lm-eval's (metric, filter): `acc` -> (acc, none), `acc[strict]` -> (acc, strict)."""
    m = re.fullmatch(r"(.+)\[(.+)\]", name)
    return (m.group(1), m.group(2)) if m else (name, "none")


def _entry(name: str, metrics: dict[str, Metric], n: int) -> dict:
    out: dict = {"alias": name, "name": name, "sample_len": n}
    for metric_name, metric in metrics.items():
        m, f = _metric_key(metric_name)
        out[f"{m},{f}"] = metric.value
        out[f"{m}_stderr,{f}"] = "N/A" if metric.stderr is None else metric.stderr
    return out


def _version(v: str | None):
    """lm-eval writes the YAML's `metadata.version` as YAML read it (1.0 -> 1.0, a float)."""
    if v is None:
        return "N/A"
    try:
        return float(v)
    except ValueError:
        return v


def _timestamp(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _sanitize_model_name(name: str) -> str:
    """lm_eval.utils.sanitize_model_name (copied: harness/records stays importable without lm-eval)."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def lm_eval_results(record: RunRecord) -> dict:
    """The lm-eval 0.4 results dict of a run (see the module docstring for what maps to what)."""
    results = {t: _entry(t, r.metrics, r.n_samples) for t, r in sorted(record.tasks.items())}
    # Runs written before run.json kept group members: those the benchmark declares (as compare does).
    members = {g: list(record.group_members.get(g) or group_members(g, record.tasks)) for g in sorted(record.groups)}
    groups = {g: _entry(g, metrics, sum(record.tasks[t].n_samples for t in members[g] if t in record.tasks))
              for g, metrics in sorted(record.groups.items())}
    results.update(groups)
    started = _timestamp(record.started_at)
    s = record.serving
    model_args = ",".join(f"{k}={v}" for k, v in (("model", record.model.path), ("base_url", s.base_url),
                                                    ("tokenizer", record.model.tokenizer),
                                                    ("max_length", s.max_model_len or None)) if v)
    return {
        "results": results,
        **({"groups": groups} if groups else {}),
        "group_subtasks": members,
        "configs": {t: {"task": t, "generation_kwargs": dict(r.generation_kwargs),
                        "metadata": {"version": _version(r.version), "config_hash": r.config_hash,
                                     "dataset_fingerprint": r.dataset_fingerprint, "endpoint": r.endpoint}}
                    for t, r in sorted(record.tasks.items())},
        "versions": {t: _version(r.version) for t, r in sorted(record.tasks.items())},
        "n-shot": {},
        "higher_is_better": {},
        "n-samples": {t: {"original": r.n_samples if record.limit is None else None, "effective": r.n_samples}
                      for t, r in sorted(record.tasks.items())},
        "config": {"model": f"longact-{s.backend}", "model_args": model_args, "batch_size": s.concurrency,
                   "batch_sizes": [], "device": None, "use_cache": None, "limit": record.limit,
                   "bootstrap_iters": 0, "gen_kwargs": None,
                   "random_seed": record.seeds.get("python"), "numpy_seed": record.seeds.get("numpy"),
                   "torch_seed": record.seeds.get("torch"), "fewshot_seed": record.seeds.get("fewshot")},
        "git_hash": record.code.git_commit,
        "date": started.timestamp() if started else None,
        "lm_eval_version": record.packages.get("lm_eval"),
        "transformers_version": record.packages.get("transformers"),
        "max_length": s.max_model_len or None,
        "task_hashes": {},
        "model_source": f"longact-{s.backend}",
        "model_name": record.model.path,
        "model_name_sanitized": _sanitize_model_name(record.model.path),
        "system_instruction": None,
        "system_instruction_sha": None,
        "fewshot_as_multiturn": None,
        "chat_template": None,
        "chat_template_sha": None,
        "total_evaluation_time_seconds": None if record.wall_time_s is None else str(record.wall_time_s),
        "longact": {"run_id": record.run_id, "status": record.status, "mode": record.mode,
                    "samples_per_item": record.samples_per_item, "weights_sha256": record.model.weights_sha256,
                    "tokenizer_sha256": record.model.tokenizer_sha256, "backend": s.backend,
                    "server_version": s.server_version, "harness_version": record.code.harness_version,
                    "git_dirty": record.code.git_dirty, "run_json": "run.json"},
    }


def results_file_name(record: RunRecord) -> str:
    """lm-eval's `results_<date_id>.json`, dated by when the run finished (started, while unfinished)."""
    when = _timestamp(record.finished_at) or _timestamp(record.started_at) or datetime(1970, 1, 1, tzinfo=timezone.utc)
    return f"{FILE_PREFIX}{when.replace(tzinfo=None).isoformat().replace(':', '-')}.json"


def write_lm_eval_results(run_dir: str | os.PathLike, record: RunRecord) -> Path:
    """Write `results_<timestamp>.json` into the run directory and remove older ones (a resumed
    run finishes later; lm-eval's readers take the newest file as the run's results)."""
    run_dir = Path(run_dir)
    path = run_dir / results_file_name(record)
    atomic_write_json(path, lm_eval_results(record))
    for old in run_dir.glob(f"{FILE_PREFIX}*.json"):
        if old != path and re.fullmatch(r"results_\d{4}-\d\d-\d\dT[\d.-]+\.json", old.name):
            old.unlink()
    return path
