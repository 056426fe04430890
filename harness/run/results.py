"""Step 5 of a run (harness/run/runner.py): the samples files and the results' fields of run.json.

    fields = write_results(prepared, tasks, outcome)   # tasks, groups, errors, request counts

`longact merge` (harness/run/merge.py) builds a merged run's task and group entries with the
same functions, from its shards' samples.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.backends.lm import RequestRecord
from harness.records.aggregate import breakdown, data_sources, group_breakdown, parse_metrics
from harness.records.io import atomic_write_jsonl
from harness.records.schema import RunRecord, SampleRecord, TaskResult
from harness.run.steps import Outcome, Prepared, Tasks
from harness.run.tasks import dataset_fingerprint, task_config_hash

# Long fields dropped from the `doc` copy kept in samples files (the prompt hash identifies them).
LONG_DOC_FIELDS = ("context", "input_text", "_prompt")


REQUEST_KEYS = ("total", "sent", "answered", "cached", "failed")
"""The keys of a record's `requests` (`request_counts`); a merged run sums each over its shards."""


def request_counts(outcome: Outcome) -> dict[str, int]:
    """The record's `requests`: answers the run has (total), requests sent (HTTP attempts), fresh
    answers received, answers read from the cache, and requests that failed."""
    cached = sum(1 for r in outcome.records if r.from_cache)
    return {"total": len(outcome.records), "sent": outcome.n_sent, "answered": len(outcome.records) - cached -
            len(outcome.failed), "cached": cached, "failed": len(outcome.failed)}


def _strip_doc(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in LONG_DOC_FIELDS and not (isinstance(v, str) and len(v) > 2000)}


def sample_rows(samples: list[dict], records: dict[int, RequestRecord], metric_names: list[str]) -> list[SampleRecord]:
    """One `SampleRecord` per lm-eval sample, joined with its request's record."""
    rows = []
    for s in samples:
        rec = records.get(s["doc_id"])
        resp = s.get("resps", [[""]])
        all_resps = resp[0] if resp and isinstance(resp[0], list) else []
        filtered = s.get("filtered_resps", [None])
        # Benchmarks that truncate officially mark it on the document; count either kind.
        truncated = bool((rec is not None and rec.truncated) or (s.get("doc") or {}).get("_truncated"))
        rows.append(SampleRecord(
            doc_id=s["doc_id"],
            prompt_hash=rec.prompt_hash if rec else None,
            prompt_tokens=rec.prompt_tokens if rec else None,
            truncated=truncated if rec else None,
            response=all_resps[0] if all_resps else "",
            filtered=filtered[0] if isinstance(filtered, list) and filtered else filtered,
            target=s.get("target"),
            metrics={m: s[m] for m in metric_names if m in s},
            error=rec.error if rec else None,
            from_cache=rec.from_cache if rec else False,
            completion_tokens=rec.completion_tokens if rec else None,
            finish_reason=rec.finish_reason if rec else None,
            first_response=rec.first_response if rec else None,
            responses=list(all_resps) if len(all_resps) > 1 else None,
            doc=_strip_doc(s.get("doc", {})),
        ))
    return rows


def _records_by_task(records: list[RequestRecord]) -> tuple[dict[str, list], dict[str, dict[int, RequestRecord]]]:
    """Every request's record per task (k per item with samples per item) and, per item, the one
    its samples row shows: the first, or a failed one if any of the item's requests failed."""
    every: dict[str, list[RequestRecord]] = {}
    shown: dict[str, dict[int, RequestRecord]] = {}
    for rec in records:
        every.setdefault(rec.task, []).append(rec)
        first = shown.setdefault(rec.task, {}).setdefault(rec.doc_id, rec)
        if rec.error and not first.error:
            shown[rec.task][rec.doc_id] = rec
    return every, shown


def write_results(prep: Prepared, tasks: Tasks, outcome: Outcome) -> dict:
    """Write each task's samples file; return the record's results fields (tasks, groups, errors,
    request counts)."""
    results = outcome.results
    every, shown = _records_by_task(outcome.records)
    task_results, errors = {}, []
    for name, task in tasks.loaded["tasks"].items():
        samples = results.get("samples", {}).get(name, [])
        rows = sample_rows(samples, shown.get(name, {}), metric_names(task))
        atomic_write_jsonl(prep.run_dir / f"samples_{name}.jsonl", [r.to_dict() for r in rows])
        recs = every.get(name, [])
        errs = [r for r in recs if r.error]
        task_results[name] = task_result(
            name, task, tasks.specs[name].endpoint, rows, results["results"].get(name, {}), data_sources(samples),
            RequestTotals(n_errors=len(errs), n_cached=sum(1 for r in recs if r.from_cache),
                          prompt_tokens=sum(r.prompt_tokens for r in recs),
                          completion_tokens=sum(r.completion_tokens or 0 for r in recs)))
        errors += [f"{name} doc {r.doc_id}: {r.error}" for r in errs[:5]]
    return {"tasks": task_results, "errors": errors, "requests": request_counts(outcome),
            **group_fields(task_results, tasks.loaded, results)}


def metric_names(task) -> list[str]:
    return [m["metric"] for m in task.config.metric_list or []]


@dataclass
class RequestTotals:
    """A task's requests, counted over every request (k per item with samples per item)."""

    n_errors: int = 0
    n_cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def task_result(name: str, task, endpoint: str, rows: list[SampleRecord], entry: dict, sources: list[dict],
                totals: RequestTotals) -> TaskResult:
    """A task's entry in run.json: its identity, lm-eval's aggregate `entry`, its documents'
    `sources`, and what its samples rows and requests add up to."""
    names = metric_names(task)
    row_dicts = [r.to_dict() for r in rows]
    return TaskResult(
        version=str((task.config.metadata or {}).get("version")),
        config_hash=task_config_hash(task),
        dataset_fingerprint=dataset_fingerprint(task),
        endpoint=endpoint,
        generation_kwargs=dict(task.config.generation_kwargs or {}),
        n_samples=len(rows),
        n_truncated=sum(1 for r in rows if r.truncated),
        n_errors=totals.n_errors,
        n_cached=totals.n_cached,
        prompt_tokens=totals.prompt_tokens,
        completion_tokens=totals.completion_tokens,
        metrics=parse_metrics(entry, len(rows)),
        breakdown=breakdown(row_dicts, list((task.config.metadata or {}).get("breakdown") or []), names),
        samples_file=f"samples_{name}.jsonl",
        data_sources=sources,
        n_thinking_unclosed=(sum(1 for r in rows if (r.metrics.get("thinking_unclosed") or 0) > 0)
                             if "thinking_unclosed" in names else None),
    )


def group_fields(task_results: dict[str, TaskResult], loaded: dict, results: dict) -> dict:
    """Each group's aggregate (lm-eval's), members and per-breakdown-value means: the record's
    `groups`, `group_members` and `group_breakdown`."""
    groups, members_of, breakdowns = {}, {}, {}
    for gname in loaded.get("groups", {}):
        entry = results["results"].get(gname) or results.get("groups", {}).get(gname, {})
        members = [t for t in loaded["group_map"].get(gname, []) if t in task_results]
        groups[gname] = parse_metrics(entry, sum(task_results[t].n_samples for t in members))
        members_of[gname] = members
        primary = next(iter(groups[gname]), None)
        if primary:
            breakdowns[gname] = group_breakdown([task_results[t] for t in members], primary)
    return {"groups": groups, "group_members": members_of, "group_breakdown": breakdowns}


def group_results(record: RunRecord, loaded: dict, results: dict) -> None:
    """`group_fields` into `record` (harness/run/merge.py)."""
    for name, value in group_fields(record.tasks, loaded, results).items():
        getattr(record, name).update(value)
