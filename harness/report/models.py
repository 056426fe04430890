"""Runs joined into one row per model: what the leaderboard's overview, sections and plots read.

Runs join when they evaluated the same model the same way (`join_key`): the same weights
identity, mode, chat template and samples per item. Runs of different benchmarks, lengths or
tasks join; the window does not split a row (RULER at 4k and 32k runs at two windows).

Where two runs of a row cover the same slice (a task, or a task at one value of a field such as
RULER's length), the row reads it from one run, chosen by `PREFERENCES` in order: finished,
the whole task (no `--limit`), comparable with published numbers, the newer task version, more
items, the larger window, the newer run. `ModelRow.choices` says, per slice, which run won and
on which preference: the page shows it under the row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.records.schema import RunRecord
from harness.report.compare import Run, model_name
from harness.report.tables import incomparable


def weights_identity(record: RunRecord) -> tuple[str, str]:
    """What says two runs evaluated the same weights: the weights' hash, else the served model's
    probe fingerprint (remote servers), else the model path as given (imported runs, remote
    models without a probe)."""
    m = record.model
    if m.weights_sha256:
        return "weights", m.weights_sha256
    if m.served_fingerprint:
        return "served", m.served_fingerprint
    return "path", m.path


def join_key(record: RunRecord) -> tuple:
    """Runs with equal keys are one model evaluated one way, and share a row."""
    return weights_identity(record), record.mode, record.chat_template, record.samples_per_item


def _version(v: str | None) -> tuple:
    try:
        return tuple(int(p) for p in (v or "").split("."))
    except ValueError:
        return ()


# (what is preferred, how a run reads on it) in order; the first that tells two runs apart decides.
PREFERENCES = (
    ("finished", lambda run, task: run.state.finished, lambda run, task: run.state.status),
    ("the whole task", lambda run, task: run.record.limit is None,
     lambda run, task: "full" if run.record.limit is None else f"limit {run.record.limit:g}"),
    ("comparable with published numbers", lambda run, task: task not in _incomparable(run),
     lambda run, task: "comparable" if task not in _incomparable(run) else "not comparable"),
    ("the newer task version", lambda run, task: _version(run.record.tasks[task].version),
     lambda run, task: f"version {run.record.tasks[task].version}"),
    ("more items", lambda run, task: run.record.tasks[task].n_samples,
     lambda run, task: f"{run.record.tasks[task].n_samples} items"),
    ("the larger window", lambda run, task: run.record.serving.max_model_len,
     lambda run, task: f"window {run.record.serving.max_model_len}"),
    ("the newer run", lambda run, task: run.record.finished_at or run.record.started_at,
     lambda run, task: (run.record.finished_at or run.record.started_at or "?")[:16]),
)


def _incomparable(run: Run) -> dict[str, str]:
    """`tables.incomparable` of the run's record, computed once per run."""
    cached = run.__dict__.get("_incomparable")
    if cached is None:
        cached = run.__dict__["_incomparable"] = incomparable(run.record)
    return cached


@dataclass
class ModelRow:
    """One model evaluated one way, and the runs behind it."""

    key: tuple
    name: str
    """The model's readable name (its directory; trainer checkpoints keep arm and seed)."""
    runs: list[Run]
    label: str = ""
    """`name`, plus what tells the row apart from other rows of the same name (`label_rows`)."""
    choices: dict[tuple, str] = field(default_factory=dict)
    """(task, slice) -> which run the row reads it from and why, where several runs cover it."""
    used: dict[int, set[str]] = field(default_factory=dict)
    """id(run) -> the tasks a cell of the page read from that run."""
    _picked: dict = field(default_factory=dict, repr=False)
    _scores: dict = field(default_factory=dict, repr=False)

    def _run_scores(self, run: Run, task: str, where) -> dict[int, float]:
        key = (id(run), task, where)
        if key not in self._scores:
            self._scores[key] = run.scores(task, where)
        return self._scores[key]

    def pick(self, task: str, by: tuple[str, str] | None = None) -> Run | None:
        """The run the row reads `task` (restricted to items whose doc field `by[0]` is `by[1]`) from."""
        if (task, by) not in self._picked:
            found = [r for r in self.runs if self._run_scores(r, task, by)]
            found.sort(key=lambda r: tuple(prefer(r, task) for _, prefer, _ in PREFERENCES), reverse=True)
            if len(found) > 1:
                self.choices[(task, by)] = _why(found, task, by)
            self._picked[(task, by)] = found[0] if found else None
        return self._picked[(task, by)]

    def scores(self, task: str, where: tuple[str, str] | None = None,
               by: tuple[str, str] | None = None) -> dict[int, float]:
        """Per-item scores of `task` (items matching `where`) from the run `pick(task, by)` chooses."""
        run = self.pick(task, by)
        if run is None:
            return {}
        self.used.setdefault(id(run), set()).add(task)
        return self._run_scores(run, task, where)

    def mean(self, task: str, where=None, by=None) -> tuple[float | None, int]:
        s = self.scores(task, where, by)
        return (sum(s.values()) / len(s), len(s)) if s else (None, 0)

    def why_not_comparable(self, task: str, by=None) -> str | None:
        """Why the scores read for `task` cannot stand next to published numbers (None: they can)."""
        run = self.pick(task, by)
        return _incomparable(run).get(task) if run else None

    def field_values(self, tasks, fld: str) -> list[str]:
        """Values of doc field `fld` among the items of `tasks` in any run of the row, numeric order."""
        values = set()
        for run in self.runs:
            for task in tasks:
                for row in run.samples.get(task, {}).values():
                    v = (row.get("doc") or {}).get(fld)
                    if v is not None:
                        values.add(str(v))
        return sorted(values, key=_numeric)

    @property
    def unfinished(self) -> list[Run]:
        return [r for r in self.runs if not r.state.finished]


def _numeric(v: str):
    try:
        return 0, float(v), v
    except ValueError:
        return 1, 0.0, v


def _why(found: list[Run], task: str, by) -> str:
    """`<slice>: read from W; over L: <preference> (<W's value> vs <L's value>); ...`, per losing run
    the first preference on which it loses."""
    winner = found[0]
    where = f"{task}" + (f" {by[0]}={by[1]}" if by else "")
    parts = []
    for other in found[1:]:
        lost = next(((what, show) for what, prefer, show in PREFERENCES if prefer(winner, task) != prefer(other, task)),
                    None)
        parts.append(f"over {other.record.run_id}: " + (f"{lost[0]} ({lost[1](winner, task)} vs {lost[1](other, task)})"
                                                         if lost else "alike; the first found"))
    return f"{where}: read from {winner.record.run_id}; " + "; ".join(parts)


# What can tell two rows of one name apart, in the order labels name it.
ROW_DISTINGUISHERS = (
    (lambda r: r.mode, lambda v: f"{v} mode"),
    (lambda r: r.chat_template, lambda v: f"chat template {v}"),
    (lambda r: r.samples_per_item, lambda v: f"{v} samples/item"),
    (lambda r: weights_identity(r)[1][:12], lambda v: v),
)


def join_runs(runs: list[Run]) -> list[ModelRow]:
    """One row per `join_key`, in the order the runs' models are first seen, labelled apart."""
    rows: dict[tuple, ModelRow] = {}
    for run in runs:
        key = join_key(run.record)
        rows.setdefault(key, ModelRow(key, "", [])).runs.append(run)
    for row in rows.values():  # the name most of its runs give the model (a copy elsewhere joins by its weights)
        row.name = Counter(model_name(run.record) for run in row.runs).most_common(1)[0][0]
    label_rows(list(rows.values()))
    return list(rows.values())


def label_rows(rows: list[ModelRow]) -> None:
    """Each row by its model's name, and rows of one name by the first settings that differ."""
    by_name: dict[str, list[ModelRow]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    for name, members in by_name.items():
        parts: list[list[str]] = [[] for _ in members]
        for get, show in ROW_DISTINGUISHERS:
            if len({label for label in map(tuple, parts)}) == len(members):
                break
            values = [get(m.runs[0].record) for m in members]
            if len(set(values)) > 1:
                for p, v in zip(parts, values, strict=True):
                    p.append(show(v))
        for row, p in zip(members, parts, strict=True):
            row.label = name + (f" ({', '.join(p)})" if p else "")
