"""Tables are a pure function of result files.

`run_rows` flattens run records into rows through declared columns; `markdown` renders every
Markdown table of the project (this one, the comparison tables and the leaderboard).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tabulate import tabulate

from harness.records.io import load_run
from harness.records.schema import RunRecord
from harness.records.state import run_state


@dataclass(frozen=True)
class Column:
    """A declared table column: its header, how a row's cell is read (`run_rows`), and its
    Markdown alignment: "left" or "right"."""

    name: str
    get: Callable[..., object] | None = None
    align: str = "left"


def fmt(v) -> str:
    """A cell as text: "–" for a missing value, one decimal for floats."""
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


def markdown(columns: list[Column], rows: list[list[str]]) -> str:
    """A Markdown table of text cells in tabulate's `pipe` format: every table of the project is
    rendered here. The cells are text already (`fmt`): no number parsing, and the leading spaces
    that indent breakdown rows are kept."""
    if any(len(row) != len(columns) for row in rows):  # tabulate would pad a short row silently
        raise ValueError(f"every row needs {len(columns)} cells")
    return tabulate(rows, [c.name for c in columns], tablefmt="pipe", colalign=[c.align for c in columns],
                    disable_numparse=True, preserve_whitespace=True)


MARK = "†"
"""Marks a cell that includes a task whose scores cannot stand next to the published numbers."""


def incomparable(record: RunRecord) -> dict[str, str]:
    """Task -> why its scores cannot be compared with the benchmark's published numbers (e.g. RULER
    on a generated essay haystack), as the task's benchmark judges from the run's data sources."""
    from tasks.benchmarks import published_comparable

    out = {}
    for task, result in sorted(record.tasks.items()):
        ok, why = published_comparable(task, result.data_sources)
        if not ok:
            out[task] = why
        elif record.shard:
            out[task] = (f"shard {record.shard}: {result.n_samples} of "
                         f"{record.shard.of.get(task, '?')} items (join the shards with `longact merge`)")
    return out


def published_notes(pairs) -> list[str]:
    """`label: task: reason` lines for (label, record) pairs, for the note under a table."""
    return [f"{label}: {task}: {why}" if label else f"{task}: {why}"
            for label, record in pairs for task, why in incomparable(record).items()]


def marked(value: str, tasks, record: RunRecord) -> str:
    """`value` with MARK when any of `tasks` is incomparable in `record`."""
    bad = incomparable(record)
    return value + MARK if any(t in bad for t in tasks) and value != "–" else value


NOTE_HEAD = f"{MARK} not comparable with published numbers:"


def run_table(run: str | os.PathLike | RunRecord) -> str:
    """`longact show`: a header line, how the run stands when it is not complete (with the command
    that resumes it), and one row per metric, breakdown value and group."""
    if isinstance(run, RunRecord):
        record, run_dir = run, None
    else:
        record = load_run(Path(run))
        run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    state = run_state(record, run_dir)
    head = " · ".join([f"**{record.model.path}**", f"run `{record.run_id}`", state.status,
                       f"backend {record.serving.backend}"]
                      # A run stopped before its server came up has no window yet: 0 would read as a setting.
                      + ([f"window {record.serving.max_model_len}"] if record.serving.max_model_len else [])
                      + ([f"limit {record.limit:g}"] if record.limit else [])
                      + ([f"shard {record.shard}"] if record.shard else []))
    if not state.finished:
        head += f"\n\n{state.note}" + (f"\nto resume: {state.resume}" if state.resume else "")
    rows = run_rows(record)
    if not rows:
        return head + "\n\nno results written yet"
    notes = published_notes([(None, record)])
    return (head + "\n\n" + markdown(RUN_COLUMNS, [[fmt(row.get(c.name)) for c in RUN_COLUMNS] for row in rows])
            + (f"\n\n{NOTE_HEAD}\n" + "\n".join(f"- {n}" for n in notes) if notes else ""))
