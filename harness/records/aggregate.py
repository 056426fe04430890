"""Per-sample scores -> metrics: means with standard errors, per-field breakdowns (LongBench v2
difficulty/length), per-length group means (RULER) and lm-eval's result entries parsed."""

from __future__ import annotations

import json
import math

from harness.records.schema import Metric


def breakdown(samples: list[dict], fields: list[str], metric_names: list[str]) -> dict:
    """Per-field-value mean, stderr and n of each metric (e.g. LongBench v2 easy/hard).

    `samples` are samples.jsonl rows (`doc` and `metrics` keys).
    """
    out: dict[str, dict[str, dict[str, Metric]]] = {}
    for fld in fields:
        groups: dict[str, list[dict]] = {}
        for s in samples:
            value = (s.get("doc") or {}).get(fld)
            if value is not None:
                groups.setdefault(str(value), []).append(s)
        for value, members in sorted(groups.items(), key=lambda kv: _value_order(kv[0])):
            for m in metric_names:
                xs = [float(x["metrics"][m]) for x in members if isinstance(x["metrics"].get(m), (int, float))]
                if not xs:
                    continue
                out.setdefault(fld, {}).setdefault(value, {})[m] = mean_metric(xs)
    return out


def mean_metric(xs: list[float]) -> Metric:
    """Mean, standard error of the mean (sample std / sqrt(n); None for one value) and n."""
    mean = sum(xs) / len(xs)
    se = (math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs))) if len(xs) > 1 else None
    return Metric(mean, se, len(xs))


def _value_order(value: str):
    """Numbers in numeric order (lengths 2048 < 16384), then text."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def group_breakdown(task_results: list, metric: str) -> dict:
    """Mean over tasks of each (field, value) all of them report: RULER's per-length headline.

    stderr combines the tasks' standard errors as independent: sqrt(sum se^2) / k.
    """
    if not task_results:
        return {}
    out: dict[str, dict[str, dict[str, Metric]]] = {}
    shared = set.intersection(*(set(t.breakdown) for t in task_results))
    for fld in sorted(shared):
        values = set.intersection(*(set(t.breakdown[fld]) for t in task_results))
        for value in sorted(values, key=_value_order):
            ms = [t.breakdown[fld][value].get(metric) for t in task_results]
            if any(m is None for m in ms):
                continue
            ses = [m.stderr for m in ms]
            se = math.sqrt(sum(x * x for x in ses)) / len(ms) if all(x is not None for x in ses) else None
            out.setdefault(fld, {})[value] = {metric: Metric(sum(m.value for m in ms) / len(ms), se, sum(m.n for m in ms))}
    return out


def data_sources(samples: list[dict]) -> list[dict]:
    """The distinct `_sources` of the samples' documents, in a fixed order (sorted), so that runs of
    the same items list them alike however the items were split (shards: harness/run/merge.py)."""
    return unique_sources(json.loads(raw) for raw in {(s.get("doc") or {}).get("_sources") for s in samples} if raw)


def unique_sources(sources) -> list[dict]:
    by_key = {json.dumps(src, sort_keys=True): src for src in sources}
    return [by_key[k] for k in sorted(by_key)]


def parse_metrics(entry: dict, n: int) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for key, value in entry.items():
        if "," not in key or "_stderr" in key.split(",")[0]:
            continue
        metric, filt = key.split(",", 1)
        if not isinstance(value, (int, float)):
            continue
        stderr = entry.get(f"{metric}_stderr,{filt}")
        name = metric if filt == "none" else f"{metric}[{filt}]"
        out[name] = Metric(float(value), float(stderr) if isinstance(stderr, (int, float)) else None, n)
    return out
