"""Each benchmark's headline columns for model rows, as it declares them (`report.headline` in
tasks/<bench>/benchmark.py; kinds in `tasks.benchmarks.Headline`).

`blocks(rows)` gives one `Block` per benchmark some row has results for: its overview columns and
cells (one column group of the leaderboard's overview), and the tables of its own section in the
benchmark's published shape. Tasks no headline reads (tasks of no benchmark here, or a task run
without the field its headline groups by) get the last block, "Other tasks", one column each,
so every score a run holds is on the page. Cells whose scores cannot stand next to published
numbers (the benchmark says so from the run's data sources; a mean over only some of its tasks
or values) carry `tables.MARK` and the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.report.models import ModelRow
from harness.report.tables import MARK, fmt
from tasks.benchmarks import Benchmark, Headline, Split
from tasks.benchmarks import all as all_benchmarks


@dataclass
class Cell:
    value: float | None = None
    """What the column sorts by (None: no result)."""
    n: int = 0
    """Items behind the value."""
    why: tuple[str, ...] = ()
    """Why it cannot stand next to published numbers (empty: it can)."""
    text: str | None = None
    """How it reads when not the value with one decimal (a length)."""

    def shown(self) -> str:
        text = self.text if self.text is not None else fmt(self.value)
        return text + MARK if self.why and self.value is not None else text


@dataclass
class Column:
    key: str
    """Unique on the page: `<benchmark title> <label>` (what `#sort=` and the exports name)."""
    label: str
    detail: bool = False
    """Hidden in the overview until its benchmark's details are opened."""


@dataclass
class Table:
    """A section table: `left` text columns (model, then e.g. the variant or the length), then cells."""

    caption: str
    head: list[str]
    left: int
    rows: list[list] = field(default_factory=list)


@dataclass
class Block:
    title: str
    columns: list[Column]
    cells: list[dict[str, Cell]]
    """Per row (in the rows' order): column key -> cell."""
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bench: Benchmark | None = None

    def has(self, i: int) -> bool:
        return any(c.value is not None for c in self.cells[i].values())


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _short(value: str) -> str:
    """A numeric field value as a column label: 4096 -> 4k, 131072 -> 128k."""
    try:
        v = int(float(value))
    except ValueError:
        return value
    return f"{v // 1024}k" if v >= 1024 and v % 1024 == 0 else str(v)


def _task_cell(row: ModelRow, task: str, where: tuple[str, str] | None = None) -> Cell:
    """The mean of one task (its items matching `where`, read from the run the row picks for that
    slice) and why it cannot stand next to published numbers."""
    mean, n = row.mean(task, where, by=where)
    reason = row.why_not_comparable(task, by=where) if mean is not None else None
    return Cell(mean, n, (f"{task}: {reason}",) if reason else ())


def _mean_of(cells: list[Cell], want: int, what: str, title: str) -> Cell:
    """The unweighted mean of the cells that have a value, marked when fewer than `want` do."""
    got = [c for c in cells if c.value is not None]
    why = tuple(dict.fromkeys(w for c in got for w in c.why)) + _partial(len(got), want, what, title)
    return Cell(_mean([c.value for c in got]), sum(c.n for c in got), why)


def _partial(have: int, want: int, what: str, title: str) -> tuple[str, ...]:
    return (f"{title}: mean over {have} of {want} {what}",) if 0 < have < want else ()


def _splits(bench: Benchmark, h: Headline, rows: list[ModelRow]) -> Block:
    splits = bench.report.splits or (Split("Overall"),)
    cols = [Column(f"{bench.title} {s.label}", s.label) for s in splits]

    def cells_of(row: ModelRow, task: str) -> dict[str, Cell]:
        why = row.why_not_comparable(task)
        out = {}
        for s, col in zip(splits, cols, strict=True):
            value, n = row.mean(task, (s.field, s.value) if s.field else None)
            out[col.key] = Cell(value, n, (f"{task}: {why}",) if why else ())
        return out

    cells = [cells_of(row, h.target) for row in rows]
    table = Table(f"{bench.title}: " + ", ".join(s.label for s in splits) + " (percent)",
                  ["model", "setting"] + [s.label for s in splits] + ["n"], 2)
    for row in rows:
        for task, setting in ((h.target, h.target_label), *h.variants):
            c = cells_of(row, task) if task != h.target else cells[rows.index(row)]
            if any(x.value is not None for x in c.values()):
                table.rows.append([row.label, setting or task] + [c[col.key] for col in cols]
                                  + [Cell(text=str(c[cols[0].key].n))])
    return Block(bench.title, cols, cells, [table], bench=bench)


def _members(bench: Benchmark, h: Headline) -> list[str]:
    return list(bench.groups.get(h.target, ())) or [h.target]


def _per_value(bench: Benchmark, h: Headline, rows: list[ModelRow]) -> Block:
    members, fld = _members(bench, h), h.field
    values = sorted({v for row in rows for v in row.field_values(members, fld)},
                    key=lambda v: (float(v) if v.replace(".", "", 1).isdigit() else float("inf"), v))
    what = f"{fld}s"
    value_cols = [Column(f"{bench.title} {_short(v)}", _short(v)) for v in values]
    summary = [Column(f"{bench.title} Avg", "Avg")]
    if h.weighted:
        summary += [Column(f"{bench.title} wAvg (inc)", "wAvg (inc)"), Column(f"{bench.title} wAvg (dec)", "wAvg (dec)")]
    if h.threshold is not None:
        summary.append(Column(f"{bench.title} {h.threshold_label or 'threshold'}", h.threshold_label or "threshold"))
    per_task = Table(f"{bench.title} per task (percent)", ["model", fld] + [h.label_of(t, bench.name) for t in members], 2)
    cells = []
    for row in rows:
        out: dict[str, Cell] = {}
        got: list[tuple[str, Cell]] = []
        for v, col in zip(values, value_cols, strict=True):
            task_cells = [_task_cell(row, t, (fld, v)) for t in members]
            out[col.key] = cell = _mean_of(task_cells, len(members), "tasks", bench.title)
            if cell.value is not None:
                got.append((v, cell))
                per_task.rows.append([row.label, _short(v)] + task_cells)
        scores = [c.value for _, c in got]
        out[summary[0].key] = avg = _mean_of([c for _, c in got], len(values), what, bench.title)
        why_all, n_all = avg.why, avg.n
        if h.weighted:
            inc = list(range(1, len(scores) + 1))
            for col, weights in zip(summary[1:3], (inc, inc[::-1]), strict=True):
                value = sum(w * s for w, s in zip(weights, scores, strict=True)) / sum(weights) if scores else None
                out[col.key] = Cell(value, n_all, why_all)
        if h.threshold is not None:
            out[summary[-1].key] = _threshold_cell(got, h.threshold, why_all)
        cells.append(out)
    head = Table(f"{bench.title}: mean over its tasks per {fld} (percent)",
                 ["model"] + [c.label for c in value_cols + summary], 1,
                 [[row.label] + [cells[i][c.key] for c in value_cols + summary]
                  for i, row in enumerate(rows) if any(cells[i][c.key].value is not None for c in value_cols)])
    notes = [h.threshold_note] if h.threshold_note else []
    if h.weighted:
        notes.append(f"wAvg (inc) and wAvg (dec): averages over the {what} weighted 1, 2, ... by rank, increasing "
                     f"and decreasing with the {fld}")
    return Block(bench.title, value_cols + summary, cells, [head, per_task], notes, bench=bench)


def _threshold_cell(got: list[tuple[str, Cell]], threshold: float, why: tuple[str, ...]) -> Cell:
    """The longest value whose mean, and every shorter value's, is at least `threshold`."""
    if not got:
        return Cell()
    longest = None
    for v, c in got:
        if c.value < threshold:
            break
        longest = v
    if longest is None:
        return Cell(0.0, 0, why, f"<{_short(got[0][0])}")
    return Cell(float(longest), 0, why, _short(longest))


def _task_mean(bench: Benchmark, h: Headline, rows: list[ModelRow]) -> Block:
    members = _members(bench, h)
    task_cols = [Column(f"{bench.title} {h.label_of(t, bench.name)}", h.label_of(t, bench.name), detail=h.details)
                 for t in members]
    avg = Column(f"{bench.title} Avg", "Avg")
    also = [Column(f"{bench.title} {h.label_of(t, bench.name)}", h.label_of(t, bench.name)) for t in h.also]
    cells = []
    for row in rows:
        out = {col.key: _task_cell(row, t) for t, col in zip(h.also, also, strict=True)}
        out |= {col.key: _task_cell(row, t) for t, col in zip(members, task_cols, strict=True)}
        out[avg.key] = _mean_of([out[c.key] for c in task_cols], len(members), "tasks", bench.title)
        cells.append(out)
    shown = task_cols + [avg] + also
    table = Table(f"{bench.title}: each task and their average (percent)", ["model"] + [c.label for c in shown], 1,
                  [[row.label] + [cells[i][c.key] for c in shown] for i, row in enumerate(rows)
                   if any(cells[i][c.key].value is not None for c in shown)])
    # The overview shows the average first, the per-task columns after it once opened.
    return Block(bench.title, [avg] + also + (task_cols if h.details else []), cells, [table], bench=bench)


KINDS = {"splits": _splits, "per_value": _per_value, "task_mean": _task_mean}


def _other(rows: list[ModelRow]) -> Block | None:
    """Tasks no headline read, one column each (mean over items)."""
    tasks: list[str] = []
    for row in rows:
        read = set().union(*row.used.values()) if row.used else set()
        for run in row.runs:
            tasks += [t for t in sorted(run.record.tasks) if t not in read and t not in tasks]
    if not tasks:
        return None
    cols = [Column(f"other {t}", t) for t in tasks]
    cells = [{col.key: _task_cell(row, t) for t, col in zip(tasks, cols, strict=True)} for row in rows]
    table = Table("tasks no benchmark headline reads: mean over items (percent)", ["model"] + tasks, 1,
                  [[row.label] + [cells[i][c.key] for c in cols] for i, row in enumerate(rows)
                   if any(cells[i][c.key].value is not None for c in cols)])
    return Block("Other tasks", cols, cells, [table])


def blocks(rows: list[ModelRow]) -> list[Block]:
    """The column groups and sections of the rows' results, benchmarks in their declared `order`,
    each only when some row has a result in it."""
    out = []
    declared = [b for b in all_benchmarks() if b.report.headline is not None]
    for bench in sorted(declared, key=lambda b: b.report.headline.order):  # stable: ties stay in folder order
        h = bench.report.headline
        block = KINDS[h.kind](bench, h, rows)
        if any(block.has(i) for i in range(len(rows))) or any(t.rows for t in block.tables):
            out.append(block)
    other = _other(rows)
    return out + ([other] if other else [])
