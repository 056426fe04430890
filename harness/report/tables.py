"""Tables are a pure function of result files.

`run_rows` flattens run records into rows through declared columns; `markdown` renders any rows.
The comparison tables of several checkpoints build on the same rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.records.io import load_run
from harness.records.schema import RunRecord


@dataclass(frozen=True)
class Column:
    name: str
    get: Callable[[RunRecord, str, str, object], object]
    align: str = "left"


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


RUN_COLUMNS = [
    Column("task", lambda r, t, m, x: t),
    Column("metric", lambda r, t, m, x: m),
    Column("value", lambda r, t, m, x: x.value, "right"),
    Column("± stderr", lambda r, t, m, x: x.stderr, "right"),
    Column("n", lambda r, t, m, x: x.n, "right"),
    Column("truncated", lambda r, t, m, x: r.tasks[t].n_truncated if t in r.tasks else None, "right"),
    Column("errors", lambda r, t, m, x: r.tasks[t].n_errors if t in r.tasks else None, "right"),
    Column("version", lambda r, t, m, x: r.tasks[t].version if t in r.tasks else "group"),
]


def run_rows(record: RunRecord, columns=RUN_COLUMNS) -> list[dict]:
    rows = []
    for task_name in sorted(record.tasks):
        task = record.tasks[task_name]
        for metric_name, metric in task.metrics.items():
            rows.append({c.name: c.get(record, task_name, metric_name, metric) for c in columns})
        primary = next(iter(task.metrics), None)
        for fld, values in task.breakdown.items():
            for value, metrics in values.items():
                if primary in metrics:
                    row = {c.name: c.get(record, task_name, primary, metrics[primary]) for c in columns}
                    row["task"] = f"  {task_name} {fld}={value}"
                    row["truncated"] = row["errors"] = None
                    rows.append(row)
    for group_name in sorted(record.groups):
        for metric_name, metric in record.groups[group_name].items():
            rows.append({c.name: c.get(record, group_name, metric_name, metric) for c in columns})
        for fld, values in record.group_breakdown.get(group_name, {}).items():
            for value, metrics in values.items():
                for metric_name, metric in metrics.items():
                    row = {c.name: c.get(record, group_name, metric_name, metric) for c in columns}
                    row["task"] = f"  {group_name} {fld}={value} (mean over tasks)"
                    rows.append(row)
    return rows


def markdown(rows: list[dict], columns=RUN_COLUMNS) -> str:
    names = [c.name for c in columns]
    cells = [[_fmt(row.get(n)) for n in names] for row in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) if cells else len(n) for i, n in enumerate(names)]

    def line(values):
        out = []
        for v, w, c in zip(values, widths, columns):
            out.append(v.rjust(w) if c.align == "right" else v.ljust(w))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if c.align == "right" else ("-" * (w + 2)) for w, c in zip(widths, columns)) + "|"
    return "\n".join([line(names), sep] + [line(c) for c in cells])


def run_table(run: str | os.PathLike | RunRecord) -> str:
    record = run if isinstance(run, RunRecord) else load_run(Path(run))
    head = (f"**{record.model.path}** · run `{record.run_id}` · {record.status} · "
            f"backend {record.serving.backend} · window {record.serving.max_model_len}"
            + (f" · limit {record.limit:g}" if record.limit else ""))
    return head + "\n\n" + markdown(run_rows(record))
