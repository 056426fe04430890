"""Compare checkpoints from their result files: one row per run, declared columns, paired stats.

    longact compare results/base results/longact --baseline results/base

Columns come from the result files and what each benchmark declares (`report` in
tasks/<bench>/benchmark.py, read through `tasks.benchmarks.report_for`):
* a group whose benchmark names a `group_field` (RULER: length): the group mean per value of the
  run's group breakdown, then the group mean;
* any other group: each member task, then the group mean;
* a task outside a group: its benchmark's `splits` (LongBench v2: Overall, Easy, Hard, Short,
  Medium, Long), or its primary metric.

Every cell is recomputed from `samples_<task>.jsonl`, so it can be paired item by item with the
baseline: delta (B - A), a paired bootstrap 95% interval on the shared items, and an exact
McNemar (0/100 scores) or sign-flip permutation p-value. Runs whose tasks were not run the same
way (task version, config hash, data fingerprint, window, truncation policy, generation settings,
mode, samples per item, shared items truncated in one run only or sent different prompts) are
refused with the differences listed, unless `force`; before that, runs that have not finished
(failed, interrupted, stopped, incomplete: `harness.records.state`) are refused with their status
and the command that resumes them. Runs are labelled by model, then by what differs between the
runs shown (`label_runs`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from harness.errors import UserError
from harness.records.io import load_run
from harness.records.schema import RunRecord
from harness.records.state import RunState, run_state
from harness.report.stats import format_p, paired_test, stratum_mean
from harness.report.tables import MARK, NOTE_HEAD, Column, fmt, markdown, marked, published_notes
from tasks import trainer_layout
from tasks.benchmarks import group_members, report_for


@dataclass
class Run:
    path: Path
    record: RunRecord
    samples: dict[str, dict[int, dict]] = field(default_factory=dict)
    """task -> doc_id -> samples row."""
    label: str = ""
    """How tables and plots name the run: its model, plus what tells it apart from the other runs
    shown with it (`label_runs`)."""
    state: RunState | None = None
    """How the run stands (complete, stopped, failed, ...; `harness.records.state`)."""

    def primary(self, task: str) -> str:
        return next(iter(self.record.tasks[task].metrics))

    def scores(self, task: str, where: tuple[str, str] | None = None) -> dict[int, float]:
        if task not in self.record.tasks:
            return {}
        metric = self.primary(task)
        out = {}
        for doc_id, row in self.samples.get(task, {}).items():
            if where and str((row.get("doc") or {}).get(where[0])) != where[1]:
                continue
            value = row.get("metrics", {}).get(metric)
            if isinstance(value, (int, float)):
                out[doc_id] = float(value)
        return out


def model_name(record: RunRecord) -> str:
    """The model's directory name; trainer checkpoints keep their arm (`<arm>/step-N`) and, in a
    study with seeds, their seed (`<arm>/seed-S/step-N`)."""
    return trainer_layout.checkpoint_label(record.model.path)


# What can tell two runs of one model apart, in the order labels name it: (value, how it reads).
# A value of None is unknown (a run stopped before its server reported a window) and names nothing.
DISTINGUISHERS = (
    (lambda r: r.serving.max_model_len or None, lambda v: f"window {v}"),
    (lambda r: r.mode, lambda v: f"{v} mode"),
    (lambda r: r.samples_per_item, lambda v: f"{v} samples/item"),
    (lambda r: "full" if r.limit is None else r.limit, lambda v: "full tasks" if v == "full" else f"limit {v:g}"),
    (lambda r: r.serving.backend, lambda v: f"{v} backend"),
)


def label_runs(runs: list[Run]) -> None:
    """Name each run by its model, and runs of one model by what differs between them (window,
    mode, samples per item, limit, backend); the run id's suffix only when nothing else does."""
    by_model: dict[str, list[Run]] = {}
    for run in runs:
        by_model.setdefault(model_name(run.record), []).append(run)
    for name, members in by_model.items():
        parts: list[list[str]] = [[] for _ in members]
        if len(members) > 1:
            for get, show in DISTINGUISHERS:
                values = [get(r.record) for r in members]
                if len({v for v in values if v is not None}) > 1:
                    for p, v in zip(parts, values, strict=True):
                        if v is not None:
                            p.append(show(v))
        labels = [name + (f" ({', '.join(p)})" if p else "") for p in parts]
        for i, run in enumerate(members):
            twins = [m.record.run_id for m, label in zip(members, labels) if label == labels[i]]
            if len(twins) > 1:
                run.label = name + f" ({', '.join(parts[i] + [_distinct_suffix(run.record.run_id, twins)])})"
            else:
                run.label = labels[i]


GENERATED_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-z]{8}")


def _distinct_suffix(run_id: str, ids: list[str]) -> str:
    """What tells run_id apart from the other `ids`: the 8 random hex digits of a generated id
    (harness.records.io.new_run_id) when they do, else the whole id (one chosen with `--run-id`
    names the run; a tail of it may be the same for several, as in `...-fixture-4k`)."""
    tail = run_id[-8:]
    if GENERATED_ID.fullmatch(run_id) and not any(o != run_id and o.endswith(tail) for o in ids):
        return tail
    return run_id


def load(path) -> Run:
    run = Run(Path(path), load_run(path))
    base = run.path if run.path.is_dir() else run.path.parent
    run.label, run.state = model_name(run.record), run_state(run.record, base)
    for name, task in run.record.tasks.items():
        f = base / (task.samples_file or f"samples_{name}.jsonl")
        if not f.is_file():
            raise UserError(f"{f}: missing; comparisons pair per-sample scores, so each run needs its samples files")
        run.samples[name] = {r["doc_id"]: r for r in map(json.loads, f.read_text(encoding="utf-8").splitlines()) if r}
    return run


@dataclass
class ScoreColumn:
    """One score column of the comparison: its header and the strata its cell averages."""

    name: str
    parts: list[tuple[str, tuple[str, str] | None]]
    """(task, optional (field, value) filter) per stratum; the cell is the mean of stratum means."""


def _group_members(record: RunRecord, group: str) -> list[str]:
    """The group's tasks as recorded in run.json; runs written before that was recorded (and
    imported runs) fall back to the members the benchmark declares."""
    if record.group_members.get(group):
        return sorted(t for t in record.group_members[group] if t in record.tasks)
    return group_members(group, record.tasks)


def _group_columns(record: RunRecord, group: str, members: list[str]) -> list[ScoreColumn]:
    fld = report_for(group).group_field
    values = record.group_breakdown.get(group, {}).get(fld) if fld else None
    if values:
        cols = [ScoreColumn(f"{group}@{v}", [(t, (fld, v)) for t in members]) for v in values]
    else:
        cols = [ScoreColumn(t, [(t, None)]) for t in members]
    return cols + [ScoreColumn(f"{group} avg", [(t, None) for t in members])]


def _task_columns(task: str) -> list[ScoreColumn]:
    splits = report_for(task).splits
    return ([ScoreColumn(f"{task} {s.label}", [(task, (s.field, s.value) if s.field else None)]) for s in splits]
            or [ScoreColumn(task, [(task, None)])])


def columns(record: RunRecord) -> list[ScoreColumn]:
    cols, used = [], set()
    for group in sorted(record.groups):
        members = _group_members(record, group)
        if members:
            used.update(members)
            cols += _group_columns(record, group, members)
    for task in sorted(set(record.tasks) - used):
        cols += _task_columns(task)
    return cols


def union_columns(records: list[RunRecord]) -> list[ScoreColumn]:
    """Every record's columns, each name once, in first-seen order (a task only some runs have
    still gets a column; its cells elsewhere are empty)."""
    seen: dict[str, ScoreColumn] = {}
    for record in records:
        for c in columns(record):
            seen.setdefault(c.name, c)
    return list(seen.values())


def differences(a: RunRecord, b: RunRecord, tasks: list[str]) -> list[str]:
    """Why two runs cannot be paired task by task (empty when they can)."""
    out = []
    # 0 is a window never reported (a run stopped before its server came up): not a difference.
    if a.serving.max_model_len and b.serving.max_model_len and a.serving.max_model_len != b.serving.max_model_len:
        out.append(f"window: {a.serving.max_model_len} vs {b.serving.max_model_len} (prompts truncated differently)")
    for attr in ("mode", "samples_per_item"):
        if getattr(a, attr) != getattr(b, attr):
            out.append(f"{attr}: {getattr(a, attr)} vs {getattr(b, attr)}")
    policy_a, policy_b = ({k: v for k, v in r.truncation.items() if k != "max_model_len"} for r in (a, b))
    if policy_a != policy_b:
        out.append(f"truncation policy: {policy_a} vs {policy_b}")
    for t in tasks:
        ta, tb = a.tasks[t], b.tasks[t]
        for attr in ("version", "config_hash", "dataset_fingerprint", "generation_kwargs"):
            va, vb = getattr(ta, attr), getattr(tb, attr)
            if va != vb:
                show = (lambda v: str(v)[:12]) if attr in ("config_hash", "dataset_fingerprint") else str
                out.append(f"{t}: {attr} {show(va)} vs {show(vb)}")
    return out


def item_differences(a: Run, b: Run, tasks: list[str]) -> list[str]:
    """Shared items that were not sent the same prompt: truncated in one run only, or a different
    prompt hash (another tokenizer or chat template fits and renders prompts differently even at
    the same window and task config). Imported runs carry no prompt hash and are not checked."""
    out = []
    for t in tasks:
        sa, sb = a.samples.get(t, {}), b.samples.get(t, {})
        shared = sorted(sa.keys() & sb.keys())
        cut = [i for i in shared if bool(sa[i].get("truncated")) != bool(sb[i].get("truncated"))]
        sent = [i for i in shared if sa[i].get("prompt_hash") and sb[i].get("prompt_hash")
                and sa[i]["prompt_hash"] != sb[i]["prompt_hash"]]
        for ids, what in ((cut, "truncated in one run only"), (sent, "sent different prompts (prompt_hash)")):
            if ids:
                shown = ", ".join(map(str, ids[:5])) + (", ..." if len(ids) > 5 else "")
                out.append(f"{t}: {len(ids)} of {len(shared)} shared items {what}: doc_id {shown}")
    return out


class Cell(NamedTuple):
    """A run's value in one column and the items behind it."""

    value: float | None
    """The mean of the column's stratum means; None when the run lacks one of its strata."""
    n: int


@dataclass
class RunRow:
    """One run's line of the comparison."""

    run: str
    """The run's label."""
    status: str
    path: str
    values: dict[str, Cell]
    """Column -> the run's cell."""
    marked: list[str] = field(default_factory=list)
    """Columns whose value is not the benchmark's published setting (shown with a mark)."""


@dataclass
class Delta:
    """A run against the baseline in one column, paired item by item (harness/report/stats.py)."""

    run: str
    column: str
    delta: float
    """Run − baseline, in points, on the shared items."""
    low: float
    high: float
    """The 95% interval of `delta`."""
    p: float
    p_floor: float | None
    test: str
    n: int
    detectable: float
    """The smallest difference these items could have shown (harness/report/power.py)."""


@dataclass
class Comparison:
    """What `compare` found: each run's cells, each run against the baseline, and what was forced."""

    baseline: str
    columns: list[str]
    rows: list[RunRow]
    deltas: list[Delta]
    warnings: list[str]
    """The differences `--force` compared despite."""
    published: list[str] = field(default_factory=list)
    """Notes on columns not in the benchmark's published setting."""


def cell(run: Run, col: ScoreColumn) -> Cell:
    strata = [list(s.values()) for task, where in col.parts if (s := run.scores(task, where))]
    value = stratum_mean(strata) if strata and len(strata) == len(col.parts) else None
    return Cell(value, sum(map(len, strata)))


def paired(base: Run, other: Run, col: ScoreColumn, n_resamples: int = 1000):
    a_strata, b_strata = [], []
    for task, where in col.parts:
        sa, sb = base.scores(task, where), other.scores(task, where)
        shared = sorted(set(sa) & set(sb))
        if not shared:
            return None
        a_strata.append([sa[i] for i in shared])
        b_strata.append([sb[i] for i in shared])
    return paired_test(a_strata, b_strata, n_resamples=n_resamples)


def unfinished(runs: list[Run]) -> list[str]:
    """One line per run that has not finished (its scores cover only what it answered), with the
    command that finishes it."""
    return [f"{r.path}: {r.state.summary()}" for r in runs if not r.state.finished]


def compare(paths: list[str], baseline: str | None = None, force: bool = False, n_resamples: int = 1000) -> Comparison:
    """Each run's cells, and each run against the baseline (`baseline`, else the first run)."""
    if not paths:
        raise UserError("give at least one run directory")
    runs = [load(p) for p in paths]
    base = load(baseline) if baseline and all(Path(baseline) != r.path for r in runs) else \
        next((r for r in runs if baseline and Path(baseline) == r.path), runs[0])
    if base not in runs:
        runs.insert(0, base)
    label_runs(runs)
    # An unfinished run differs from the others in everything it never got to (its window, its
    # items): say that first, and do not go on to list those differences as if they were choices.
    open_runs = unfinished(runs)
    if open_runs and not force:
        raise UserError("not every run has finished:\n  - " + "\n  - ".join(open_runs)
                        + "\nFinish them first (each command resumes from the request cache), or pass --force "
                          "to compare what they have.")
    warnings = [f"{r.label}: {r.state.note}" for r in runs if not r.state.finished]
    cols = union_columns([base.record] + [r.record for r in runs])  # the baseline's columns first
    for r in runs:
        if r is base:
            continue
        shared = sorted(set(base.record.tasks) & set(r.record.tasks))
        diff = differences(base.record, r.record, shared) + item_differences(base, r, shared)
        if diff and not force:
            raise UserError(f"{r.path} was not run the same way as the baseline {base.path}:\n  - " + "\n  - ".join(diff)
                            + "\nPairing them would compare different benchmarks; rerun one of them, or pass --force.")
        warnings += [f"{r.label}: {d}" for d in diff]
    rows = [RunRow(r.label, r.state.status, str(r.path), {c.name: cell(r, c) for c in cols},
                   [c.name for c in cols if marked("x", [t for t, _ in c.parts], r.record) != "x"])
            for r in runs]
    deltas = []
    for r in runs:
        if r is base:
            continue
        for c in cols:
            res = paired(base, r, c, n_resamples)
            if res is not None:
                deltas.append(Delta(r.label, c.name, res.delta, res.low, res.high, res.p_value, res.p_floor, res.test,
                                    res.n, res.detectable))
    return Comparison(base.label, [c.name for c in cols], rows, deltas, warnings,
                      published_notes([(r.label, r.record) for r in runs]))


def regressions(result: Comparison, margin: float) -> list[str]:
    """The CI gate (`longact compare --fail-if-worse MARGIN`): one line per (run, column) that is
    worse than the baseline by more than `margin` points AND beyond noise (its whole 95% interval
    below 0). A drop inside the margin, or one the interval cannot tell from 0, passes."""
    out = []
    for d in result.deltas:
        if d.delta < -margin and d.high < 0:
            out.append(f"{d.column}: {d.run} is {-d.delta:.1f} points below the baseline {result.baseline} "
                       f"(95% CI [{d.low:+.1f}, {d.high:+.1f}], n={d.n}), more than the {margin:g}-point margin")
    return out


DETECTABLE = "detectable"
DETECTABLE_NOTE = ("detectable: the smallest difference these items (or seeds) could have shown with 80% power at "
                   "two-sided 5%, from how often the runs disagree (harness/report/power.py); a smaller |delta| is "
                   "not evidence of no effect")


def fmt_detectable(value: float) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "±" + ("∞" if math.isinf(value) else f"{value:.1f}")


def to_frames(result: Comparison):
    import pandas as pd

    # A status column only when some run has not finished: complete runs are the normal case.
    status = any(r.status != "complete" for r in result.rows)
    values = pd.DataFrame([{"run": r.run, **({"status": r.status} if status else {}),
                            **{c: fmt(r.values[c].value) + (MARK if c in r.marked else "") for c in result.columns}}
                           for r in result.rows]).set_index("run")
    deltas = pd.DataFrame([asdict(d) for d in result.deltas], columns=["run", "column", "delta", "low", "high", "p", "p_floor", "test", "n",
                                                     "detectable"])
    if not deltas.empty:
        deltas["95% CI"] = deltas.apply(lambda d: f"[{d['low']:+.1f}, {d['high']:+.1f}]", axis=1)
        deltas["delta"] = deltas["delta"].map(lambda v: f"{v:+.1f}")
        deltas["p"] = [format_p(p, None if pd.isna(f) else f) for p, f in zip(deltas["p"], deltas["p_floor"])]
        deltas[DETECTABLE] = deltas["detectable"].map(fmt_detectable)
        deltas = deltas[["run", "column", "delta", "95% CI", DETECTABLE, "p", "test", "n"]]
    return values, deltas


def render(result: Comparison, fmt: str = "md") -> str:
    values, deltas = to_frames(result)
    if fmt == "csv":
        return values.to_csv() + "\n" + deltas.to_csv(index=False)
    if fmt == "latex":
        return values.to_latex() + "\n" + deltas.to_latex(index=False)
    if fmt == "html":
        return values.to_html() + "\n" + deltas.to_html(index=False)
    head = f"baseline: {result.baseline} · scores in percent · delta = run − baseline on shared items\n\n"
    out = head + _markdown(values.reset_index(), 2 if "status" in values.columns else 1)
    if not deltas.empty:
        out += "\n\n" + _markdown(deltas, 2) + "\n\n" + DETECTABLE_NOTE
    if result.warnings:
        out += "\n\nforced (--force) despite:\n" + "\n".join(f"- {w}" for w in result.warnings)
    if result.published:
        out += f"\n\n{NOTE_HEAD}\n" + "\n".join(f"- {n}" for n in result.published)
    return out


def _markdown(frame, n_left: int) -> str:
    """A frame of text cells as a Markdown table, its first `n_left` columns left-aligned."""
    cols = [Column(str(name), align="left" if i < n_left else "right") for i, name in enumerate(frame.columns)]
    return markdown(cols, [[str(v) for v in row] for row in frame.itertuples(index=False)])
