"""`longact merge RUN...`: join the N runs of `--shard K/N` into the run one unsharded command
would have written.

    from harness.run.merge import merge_runs
    run_dir = merge_runs(["results/shard-1", "results/shard-2"], output_dir="results")

The shards must belong together: shards 1..N of one N, each complete, of one model (weights and
tokenizer), window and result-defining config, with the same task versions, configs and data,
and items that cover every task exactly once. Anything else is refused, naming the shard and
what differs.

Samples rows are the shards' rows in doc_id order, as an unsharded run writes them. Metrics are
not averaged from the shards' metrics: the per-item values go through lm-eval's own aggregation
(harness/run/lm_eval_internals.py `aggregate`, the code `evaluate` ends with) over the loaded tasks, in doc order, so task
and group metrics and their stderr equal those of an unsharded run exactly; breakdowns come from
the same rows by the same code as in a run.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness import interrupt
from harness.errors import UserError
from harness.records.aggregate import unique_sources
from harness.records.io import atomic_write_json, atomic_write_jsonl, create_run_dir, load_run, utc_now, write_run
from harness.records.lm_eval_format import write_lm_eval_results
from harness.records.schema import RunRecord, SampleRecord, SchemaError
from harness.run import lm_eval_internals
from harness.run.config import EvalConfig, config_from_dict
from harness.run.modes import apply_mode
from harness.run.results import REQUEST_KEYS, RequestTotals, group_results, task_result
from harness.run.runner import configure_tasks
from harness.run.tasks import TaskCatalog, dataset_fingerprint, task_config_hash
from tasks.tokens import load_tokenizer, tokenizer_identity

# Config fields that may differ between shards: where and how each reached its server, and
# bookkeeping. Everything else in config.json decides the results and must be equal.
PER_SHARD = {"run": ("shard", "run_id", "output_dir", "command", "progress", "use_cache"),
             "client": ("base_url", "api_key", "concurrency", "max_retries", "request_timeout_s"),
             "serve": ("host", "port", "servers", "startup_timeout_s", "tensor_parallel_size", "data_parallel_size"),
             "top": ("model", "tokenizer")}


@dataclass
class ShardRun:
    path: Path
    record: RunRecord
    config: dict

    @property
    def name(self) -> str:
        return f"{self.path} (shard {self.record.shard})"


def load_shard(path: str | Path) -> ShardRun:
    run_dir = Path(path)
    if run_dir.name == "run.json":
        run_dir = run_dir.parent
    record = load_run(run_dir)
    if not record.shard:
        raise UserError(f"{run_dir} is not a shard (its run.json has no `shard`; runs made with --shard K/N have)")
    if record.status != "complete":
        raise UserError(f"{run_dir} (shard {record.shard}) is {record.status}, not "
                        "complete: rerun its command (it resumes), then merge")
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{run_dir / 'config.json'}: cannot read the shard's config ({e})") from e
    return ShardRun(run_dir, record, config)


def result_config(config: dict) -> dict:
    """The settings of a config.json that decide the results, flat: {"run.seed": 1234, ...}."""
    out = {}
    for section, value in config.items():
        if isinstance(value, dict):
            out.update({f"{section}.{k}": v for k, v in value.items() if k not in PER_SHARD.get(section, ())})
        elif section not in PER_SHARD["top"]:
            out[section] = value
    return out


def identity(record: RunRecord) -> dict:
    return {"model weights": record.model.weights_sha256 or record.model.served_fingerprint,
            "tokenizer": record.model.tokenizer_sha256, "window": record.serving.max_model_len,
            "mode": record.mode, "samples per item": record.samples_per_item, "chat template": record.chat_template,
            "limit": record.limit, "seeds": record.seeds, "shard count": record.shard.count}


def check_shards(shards: list[ShardRun]) -> None:
    """Refuse shards that do not make one run, saying which and how."""
    first = shards[0]
    n = first.record.shard.count
    expected = identity(first.record)
    for s in shards[1:]:
        for what, value in identity(s.record).items():
            if value != expected[what]:
                raise UserError(f"{s.name} and {first.name} differ in {what} ({value!r} vs "
                                f"{expected[what]!r}): they are not shards of one run")
        a, b = result_config(s.config), result_config(first.config)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if diff:
            raise UserError(f"{s.name} and {first.name} were run with different settings ({', '.join(diff)}): "
                            "they are not shards of one run")
    indices = sorted(s.record.shard.index for s in shards)
    twice = sorted({i for i in indices if indices.count(i) > 1})
    if twice:
        raise UserError(f"shard(s) {', '.join(map(str, twice))} of {n} given more than once: "
                        + ", ".join(str(s.path) for s in shards if s.record.shard.index in twice))
    missing = sorted(set(range(1, n + 1)) - set(indices))
    if missing:
        raise UserError(f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing: all {n} shards are needed "
                        f"(given: {', '.join(f'{i}/{n}' for i in indices)})")
    check_items(shards)
    check_task_identity(shards)


def check_items(shards: list[ShardRun]) -> None:
    """Every task's items, over all shards, are 0..of-1, each exactly once."""
    totals = shards[0].record.shard.of
    owner: dict[str, dict[int, ShardRun]] = defaultdict(dict)
    for s in shards:
        if s.record.shard.of != totals:
            raise UserError(f"{s.name} splits other items than {shards[0].name} (items per task "
                            f"{s.record.shard.of} vs {totals})")
        for task, ids in s.record.shard.items.items():
            for i in ids:
                if i in owner[task]:
                    raise UserError(f"{task} item {i} is in two shards: {owner[task][i].name} and {s.name}")
                owner[task][i] = s
    for task, n in totals.items():
        gap = sorted(set(range(n)) - set(owner[task]))
        if gap:
            raise UserError(f"{task}: item(s) {gap[:10]}{' ...' if len(gap) > 10 else ''} are in no shard")


def check_task_identity(shards: list[ShardRun]) -> None:
    seen: dict[str, tuple[tuple, ShardRun]] = {}
    for s in shards:
        for task, r in s.record.tasks.items():
            key = (r.version, r.config_hash, r.dataset_fingerprint, r.endpoint, r.generation_kwargs)
            if task in seen and seen[task][0] != key:
                raise UserError(f"{task} differs between {seen[task][1].name} and {s.name} (task version, config, "
                                "data, endpoint or decoding): the shards ran different task code or data")
            seen.setdefault(task, (key, s))


def read_rows(shard: ShardRun, task: str) -> list[SampleRecord]:
    path = shard.path / shard.record.tasks[task].samples_file
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read the shard's samples ({e})") from e
    for n, line in enumerate(lines, 1):
        try:
            rows.append(SampleRecord.from_dict(json.loads(line)))
        except (json.JSONDecodeError, SchemaError) as e:
            raise UserError(f"{path} line {n}: not a samples row ({e})") from e
    ids = sorted(r.doc_id for r in rows)
    if ids != sorted(shard.record.shard.items.get(task, [])):
        raise UserError(f"{path}: its rows are items {ids[:10]}..., not the shard's {task} items in run.json")
    return rows


def load_tasks_like(shard: ShardRun, tokenizer_path: str | None) -> tuple[dict, EvalConfig]:
    """The run's tasks as its shards loaded them (same window, mode and metadata), to aggregate
    with; refused if this machine builds other task code or data than the shards did."""
    cfg = config_from_dict(shard.config)
    record = shard.record
    tok_source = tokenizer_path or record.model.tokenizer
    if not tok_source or not Path(tok_source).exists():
        raise UserError(f"the shards' tokenizer {tok_source!r} is not on this machine; pass --tokenizer PATH "
                        "(the same tokenizer: its hash is checked)")
    tokenizer = load_tokenizer(tok_source)
    if tokenizer_identity(tokenizer) != record.model.tokenizer_sha256:
        raise UserError(f"the tokenizer at {tok_source} is not the one the shards used (it cuts or renders prompts "
                        "differently); pass --tokenizer with theirs")
    metadata = {"tokenizer": tok_source, "max_model_len": record.serving.max_model_len, "mode": cfg.run.mode,
                **cfg.run.task_metadata}
    loaded = TaskCatalog().load(cfg.run.tasks, metadata)
    apply_mode(loaded["tasks"], cfg.run.mode, int(cfg.run.samples_per_item), cfg.run.reasoning_budget, tokenizer)
    configure_tasks(cfg, loaded)
    return loaded, cfg


def merge_runs(paths: list[str | Path], output_dir: str | Path | None = None, run_id: str | None = None,
               tokenizer: str | None = None, command: list[str] | None = None) -> Path:
    """Check the shards, then write the merged run; returns its directory."""
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # as in a run: no per-task --metadata advice
    if not paths:
        raise UserError("name the shard runs to merge: longact merge RUN_DIR RUN_DIR ...")
    shards = sorted((load_shard(p) for p in paths), key=lambda s: s.record.shard.index)
    check_shards(shards)
    first = shards[0]
    loaded, cfg = load_tasks_like(first, tokenizer)
    expected = set(first.record.shard.of)
    if set(loaded["tasks"]) != expected:
        raise UserError(f"the shards' tasks {sorted(expected)} are not those {cfg.run.tasks} loads here "
                        f"({sorted(loaded['tasks'])}): another version of the task code")
    rows, sources, totals = {}, {}, {}
    acc = {}
    for name, task in loaded["tasks"].items():
        have = [s for s in shards if name in s.record.tasks]
        for s in have:
            r = s.record.tasks[name]
            if (r.config_hash, r.dataset_fingerprint) != (task_config_hash(task), dataset_fingerprint(task)):
                raise UserError(f"{name} as loaded here differs from {s.name} (config or data hash): merge where the "
                                "shards ran, with the same code and data")
        rows[name] = sorted((row for s in have for row in read_rows(s, name)), key=lambda r: r.doc_id)
        sources[name] = unique_sources(src for s in have for src in s.record.tasks[name].data_sources)
        totals[name] = RequestTotals(*(sum(getattr(s.record.tasks[name], f) for s in have)
                                       for f in ("n_errors", "n_cached", "prompt_tokens", "completion_tokens")))
        filters = lm_eval_internals.filter_names(task)
        if len(filters) != 1:
            raise UserError(f"{name} has {len(filters)} filters; merging supports tasks with one")
        raw = defaultdict(list)
        for row in rows[name]:
            for metric, value in row.metrics.items():
                raw[(metric, filters[0])].append(value)
        acc[name] = {"task": task, "raw_metrics": raw, "logged_samples": []}
    results = lm_eval_internals.aggregate(acc, loaded.get("groups", {}), bootstrap_iters=1000)

    record = merged_record(shards, command)
    for name, task in loaded["tasks"].items():
        endpoint = next(s.record.tasks[name].endpoint for s in shards if name in s.record.tasks)
        record.tasks[name] = task_result(name, task, endpoint, rows[name], results["results"].get(name, {}),
                                         sources[name], totals[name])
    group_results(record, loaded, results)

    out_root = Path(output_dir) if output_dir is not None else first.path.parent
    with interrupt.deferred():
        record.run_id, run_dir = create_run_dir(out_root, run_id)
        config = copy.deepcopy(first.config)
        config["run"].update(shard=None, run_id=record.run_id, output_dir=str(out_root), command=record.command)
        atomic_write_json(run_dir / "config.json", config)
        for name in loaded["tasks"]:
            atomic_write_jsonl(run_dir / f"samples_{name}.jsonl", [r.to_dict() for r in rows[name]])
        record.finished_at = utc_now()
        write_run(run_dir, record)
        write_lm_eval_results(run_dir, record)
    print(f"merged {len(shards)} shards -> {run_dir}", file=sys.stderr)
    return run_dir


def merged_record(shards: list[ShardRun], command: list[str] | None) -> RunRecord:
    """The first shard's record with what the shards add up to; results are filled in after."""
    record = copy.deepcopy(shards[0].record)
    record.status, record.shard = "complete", None
    record.tasks, record.groups, record.group_members, record.group_breakdown = {}, {}, {}, {}
    record.errors = [e for s in shards for e in s.record.errors]
    record.requests = {k: sum(s.record.requests.get(k, 0) for s in shards) for k in REQUEST_KEYS}
    record.serving.servers = [srv for s in shards for srv in s.record.serving.servers]
    record.started_at = min(s.record.started_at for s in shards)
    # Shards run side by side: the merged run took as long as its longest shard.
    record.wall_time_s = max((s.record.wall_time_s or 0.0) for s in shards)
    record.command = list(command or sys.argv)
    record.merged_from = [{"run_id": s.record.run_id, "path": str(s.path),
                           "shard": str(s.record.shard),
                           "started_at": s.record.started_at, "wall_time_s": s.record.wall_time_s} for s in shards]
    return record
