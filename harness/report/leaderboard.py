"""`longact leaderboard`: a static, self-contained HTML page of every run under a results directory,
one row per model, in each benchmark's own headline columns.

* Rows: runs join when they evaluated the same model the same way (`harness.report.models`: weights
  identity, mode, chat template, samples per item); where two runs of a model cover the same slice,
  the row names which one it reads and why. A click on a row opens its runs, each with its
  provenance (model and tokenizer hashes, git commit, vLLM version, window, mode, data
  fingerprints), its status and, when it has not finished, the command that resumes it.
* Columns: each benchmark's `report.headline` (tasks/<bench>/benchmark.py; computed in
  `harness.report.headline`), one column group per benchmark; per-task columns a benchmark marks
  as details open with a click on its group. Cells recomputed from the samples files; cells that
  cannot stand next to published numbers carry a dagger and the reasons under the table.
* Sections: each benchmark's full table in its published shape and its plots (one line or bar set
  per model, `harness.report.plots`); tasks no headline reads; per experiment (`longact
  experiment`) the arms against the baseline arm over seeds, training curves per arm and eval
  score against training step (`harness.report.experiment`).

Columns sort on click; `index.html#sort=<column key>:<asc|desc>` opens the page sorted (the key is
`<benchmark title> <column>`, e.g. `RULER Avg`). A filter box narrows the rows by model name.
`export` gives the overview as Markdown, CSV or LaTeX (`longact leaderboard --format`). Nothing is
fetched from the network: the page's markup, style and script are in leaderboard.html.jinja
(autoescaped).
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jinja2

from harness.errors import UserError
from harness.records.io import find_runs
from harness.report import tables
from harness.report.compare import Run, label_runs, load
from harness.report.headline import Block, blocks
from harness.report.headline import Column as HeadColumn
from harness.report.models import ModelRow, join_runs
from harness.report.tables import Column


def _provenance(run) -> dict:
    r = run.record
    return {"run": r.run_id, "status": run.state.note, **({"resume": run.state.resume} if run.state.resume else {}),
            "model": r.model.path, "weights_sha256": r.model.weights_sha256,
            "tokenizer_sha256": r.model.tokenizer_sha256, "git": f"{r.code.git_commit} dirty={r.code.git_dirty}",
            "vllm": r.serving.server_version, "window": r.serving.max_model_len, "mode": r.mode,
            "samples_per_item": r.samples_per_item,
            "tasks": {t: {"version": v.version, "config": v.config_hash[:12], "data": v.dataset_fingerprint[:12]}
                      for t, v in r.tasks.items()}}


OTHER_IN_OVERVIEW = 4
"""Tasks no benchmark headline reads get overview columns up to this many (one column each)."""


@dataclass
class Board:
    """What the page, the Markdown file and the exports show."""

    runs: list[Run]
    rows: list[ModelRow]
    """One per model evaluated one way (`harness.report.models`)."""
    blocks: list[Block]
    """One per benchmark with results (`harness.report.headline`), then "Other tasks"."""

    @property
    def status(self) -> bool:
        """A status column only when some run has not finished: complete runs are the normal case."""
        return any(row.unfinished for row in self.rows)

    def overview(self, details: bool = False) -> list[tuple[Block, HeadColumn]]:
        """The overview's columns: each benchmark's headline columns that some row has a value in
        (`details`: with the per-task columns one click away), then the tasks no headline reads
        when they are few (else they are in their own section only)."""
        return [(b, c) for b in self.blocks if b.bench is not None or len(b.columns) <= OTHER_IN_OVERVIEW
                for c in b.columns if (details or not c.detail) and any(cells[c.key].value is not None
                                                                          for cells in b.cells)]


def build(results_dir: str | Path = "results") -> Board:
    """Every run under `results_dir` (at any depth), joined into model rows with each benchmark's
    headline columns."""
    paths = find_runs(results_dir)
    if not paths:
        raise UserError(f"no run directories (with run.json) under {results_dir}")
    runs = [load(p) for p in paths]
    label_runs(runs)
    rows = join_runs(runs)
    return Board(runs, rows, blocks(rows))


def row_status(row: ModelRow) -> str:
    """`complete`, a lone run's status, or how many runs stand how ("2 complete, 1 stopped")."""
    counts = Counter(run.state.status for run in row.runs)
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def unfinished_notes(board: Board) -> list[str]:
    """Under the table: each unfinished run, how it stands, and the command that finishes it."""
    return [f"{row.label}: {run.record.run_id}: {run.state.summary(code=True)}"
            for row in board.rows for run in row.unfinished]


def published_notes(board: Board) -> list[str]:
    """`model: tasks: reason` for the marked cells of the page, the tasks of one model and one
    reason on one line (a reason is `<task or benchmark>: <why>`)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for b in board.blocks:
        for i, row in enumerate(board.rows):
            for why in (w for cell in b.cells[i].values() if cell.value is not None for w in cell.why):
                what, _, reason = why.partition(": ")
                tasks = grouped.setdefault((row.label, reason), [])
                tasks += [what] if what not in tasks else []
    return [f"{label}: {', '.join(tasks)}: {reason}" for (label, reason), tasks in grouped.items()]


def overview_table(board: Board) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """((group, column) headers, text rows) of the overview: model, status when some run has not
    finished, then each benchmark's headline columns."""
    head = [("", "model")] + ([("", "status")] if board.status else []) + [(b.title, c.label) for b, c in board.overview()]
    rows = [[row.label] + ([row_status(row)] if board.status else []) + [b.cells[i][c.key].shown() for b, c in board.overview()]
            for i, row in enumerate(board.rows)]
    return head, rows


def export(board: Board, fmt: str = "md") -> str:
    """The overview as Markdown, CSV or LaTeX (`longact leaderboard --format`), notes included
    (as `%` comment lines in LaTeX, `#` lines after the CSV rows)."""
    head, rows = overview_table(board)
    flat = [f"{group} {label}".strip() for group, label in head]
    published = published_notes(board)
    notes = [tables.NOTE_HEAD] + [f"- {n}" for n in published] if published else []
    notes += [n for b in board.blocks if b.bench is not None and any(map(b.has, range(len(board.rows))))
              for n in b.notes]
    if fmt == "md":
        cols = [Column(name, align="left" if i < 1 + board.status else "right") for i, name in enumerate(flat)]
        return tables.markdown(cols, rows) + ("\n\n" + "\n".join(notes) if notes else "")
    import pandas as pd

    if fmt == "csv":
        return pd.DataFrame(rows, columns=flat).to_csv(index=False) + "".join(f"# {n}\n" for n in notes)
    if fmt == "latex":
        frame = pd.DataFrame(rows, columns=pd.MultiIndex.from_tuples(head))
        text = frame.to_latex(index=False, escape=True, multicolumn=True, multicolumn_format="c",
                              column_format="l" * (1 + board.status) + "r" * (len(head) - 1 - board.status))
        # `<2k` (no length reached the threshold) would print as an inverted exclamation mark in text mode
        return text.replace(tables.MARK, r"\textsuperscript{\dag}").replace("<", "$<$") + "".join(
            f"% {n}\n" for n in notes)
    raise UserError(f"unknown format {fmt!r}; expected md, csv or latex")


def markdown(board: Board) -> str:
    """leaderboard.md: the overview, the unfinished runs, the notes, then each benchmark's section."""
    text = "# Leaderboard\n\n" + export(board, "md")
    notes = unfinished_notes(board)
    if notes:
        text += "\n\nUnfinished runs (their cells cover only what they answered):\n" + "\n".join(f"- {n}" for n in notes)
    for b in board.blocks:
        shown = [t for t in b.tables if t.rows]
        if shown:
            text += f"\n\n## {b.title}"
        for t in shown:
            cols = [Column(h, align="left" if i < t.left else "right") for i, h in enumerate(t.head)]
            text += f"\n\n{t.caption}\n\n" + tables.markdown(cols, [[c if isinstance(c, str) else c.shown() for c in r]
                                                                     for r in t.rows])
        if shown and b.notes:
            text += "\n\n" + "\n".join(b.notes)
    return text


def experiments(runs, results_dir) -> list[dict]:
    """Each experiment manifest some run's checkpoint belongs to: its title, the seed-aggregated
    comparison (or the reason there is none yet) and its figures."""
    from harness.report import plots
    from harness.report.experiment import compare_experiment
    from harness.run.experiments import run_dirs
    from tasks.trainer_layout import manifest_of_checkpoint, read_metrics

    out, loaded = [], {run.path.resolve(): run for run in runs}  # read once, by build()
    for manifest, where in experiment_sources(runs, results_dir, manifest_of_checkpoint):
        try:
            metrics: dict[str, list[list[dict]]] = {}
            for (arm, _), run_dir in run_dirs(manifest).items():
                if records := read_metrics(run_dir):
                    metrics.setdefault(arm, []).append(records)
            result, problem = compare_experiment(str(manifest), str(where), loaded=loaded), None
        except UserError as e:  # e.g. an arm x seed not evaluated yet: the page still shows the rest
            result, problem = None, str(e)
        figures = {}
        curves = plots.band_panels({tag: {arm: [{r["step"]: r[tag] for r in records if tag in r} for records in per_seed]
                                          for arm, per_seed in metrics.items()} for tag in plots.ARM_TAGS})
        if curves:
            figures["training curves per arm: mean over seeds, shaded: range over seeds"] = curves
        steps = result.steps if result else {}
        if steps:
            per_column = {col: {arm: _by_seed({step: v[col] for step, v in by_step.items() if col in v})
                                for arm, by_step in steps.items()} for col in result.columns}
            figures["eval score against training step per arm (step 0: the starting checkpoint): mean over "
                    "seeds, shaded: range over seeds"] = plots.band_panels(per_column, ylabel="score", percent=True)
        shown = f"{manifest}" if where == Path(results_dir) else f"{manifest}; evaluated in {where}"
        out.append({"title": f"experiment {manifest.parent.name} ({shown})", "result": result,
                    "problem": problem, "figures": {k: v for k, v in figures.items() if v}})
    return out


def experiment_sources(runs, results_dir, manifest_of_checkpoint) -> list[tuple[Path, Path]]:
    """(manifest, folder of its evaluated runs) pairs. Manifests: those the runs' checkpoints
    belong to, and copies committed under `results_dir` (a study keeps `experiment.json` beside
    its results, the checkpoints staying out of git); one file's copies count once. Folders: every
    folder holding runs of the experiment (`<experiment>-<arm>-s<seed>`; a study evaluates each
    suite into its own), else `results_dir`."""
    import hashlib

    from tasks.trainer_layout import MANIFEST_FILE

    found = {m for run in runs if (m := manifest_of_checkpoint(run.record.model.path))}
    found |= {p for p in Path(results_dir).rglob(MANIFEST_FILE)
              if not any(part.startswith(".") for part in p.relative_to(results_dir).parts)}
    by_content: dict[str, Path] = {}
    for m in sorted(found, key=lambda p: (not Path(p).is_relative_to(results_dir), str(p))):
        by_content.setdefault(hashlib.sha256(Path(m).read_bytes()).hexdigest(), Path(m))
    out = []
    for manifest in sorted(by_content.values()):
        prefix = f"{manifest.parent.name}-"
        folders = sorted({run.path.parent for run in runs if run.path.name.startswith(prefix)})
        out += [(manifest, f) for f in folders] or [(manifest, Path(results_dir))]
    return out


def _by_seed(values: dict[int, list[float]]) -> list[dict[int, float]]:
    """step -> the seeds' values, as one {step: value} per position (what plots.band_panels takes;
    a step's mean and range do not depend on which series holds which seed)."""
    n = max((len(v) for v in values.values()), default=0)
    return [{step: v[i] for step, v in values.items() if i < len(v)} for i in range(n)]


def experiment_markdown(exps: list[dict]) -> str:
    from harness.report.experiment import render_experiment

    return "".join(f"\n\n## {e['title']}\n\n" + (render_experiment(e["result"]) if e["result"] else e["problem"])
                   for e in exps)


def _page_rows(board: Board) -> list[dict]:
    """Per model row what the template shows: its cells in overview order and, under it, its runs
    (label, status, what the row reads from each, provenance) and the choices between runs."""
    out = []
    for i, row in enumerate(board.rows):
        runs = [{"label": run.label, "run_id": run.record.run_id, "status": run.state.status, "note": run.state.note,
                 "resume": run.state.resume, "path": str(run.path),
                 "reads": sorted(row.used.get(id(run), ())), "tasks": sorted(run.record.tasks),
                 "provenance": json.dumps(_provenance(run), indent=1)} for run in row.runs]
        out.append({"id": f"m{i}", "label": row.label, "status": row_status(row), "unfinished": bool(row.unfinished),
                    "cells": [(b, c, b.cells[i][c.key]) for b, c in board.overview(details=True)],
                    "runs": runs, "choices": list(row.choices.values())})
    return out


def page(board: Board, figures: dict[str, dict[str, bytes]], exps: list[dict] = ()) -> str:
    """The HTML page (leaderboard.html.jinja): plain values in, escaped by the template.
    `figures`: section title -> plot title -> PNG."""
    from harness.report.experiment import experiment_tables

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)  # a misspelt name fails instead of rendering empty
    env.filters["b64"] = lambda png: base64.b64encode(png).decode()
    groups: dict[str, dict] = {}
    for b, c in board.overview(details=True):
        g = groups.setdefault(b.title, {"title": b.title, "n": 0, "n_all": 0, "n_detail": 0})
        g["n_all"] += 1
        g["n" if not c.detail else "n_detail"] += 1
    groups = list(groups.values())
    return env.get_template("leaderboard.html.jinja").render(
        board=board, groups=groups, groups_index={g["title"]: i for i, g in enumerate(groups)}, columns=board.overview(details=True), status=board.status,
        rows=_page_rows(board), unfinished=unfinished_notes(board), note_head=tables.NOTE_HEAD,
        published=published_notes(board), figures=figures,
        experiments=[{**e, "tables": experiment_tables(e["result"]) if e["result"] else []} for e in exps])


def write_leaderboard(results_dir: str | Path = "results", out: str | Path = "results/leaderboard") -> Path:
    from harness.report import plots
    from tasks.trainer_layout import manifest_of_checkpoint

    board = build(results_dir)
    figures: dict[str, dict[str, bytes]] = {}
    for b in board.blocks:
        for plot in (b.bench.report.plots if b.bench else ()):
            png = plots.draw(plot, board.rows)
            if png:
                figures.setdefault(b.title, {})[plot.title] = png
    exps = experiments(board.runs, results_dir)
    # an experiment's checkpoints have their curves per arm in its section
    curves = plots.training_curves(plots.trainer_series(board.runs, skip=manifest_of_checkpoint), plots.TRAINING_TAGS)
    if curves:
        figures.setdefault("Training", {})["Training curves of the trainer checkpoints"] = curves
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(page(board, figures, exps), encoding="utf-8")
    (out / "leaderboard.md").write_text(markdown(board) + experiment_markdown(exps) + "\n", encoding="utf-8")
    # A page regenerated with fewer plots (a benchmark's runs removed) must not keep the old files.
    for stale in out.glob("plot_*.png"):
        if re.fullmatch(r"plot_\d+\.png", stale.name):
            stale.unlink()
    pngs = [*(png for section in figures.values() for png in section.values()),
            *(png for e in exps for png in e["figures"].values())]
    for k, png in enumerate(pngs):
        (out / f"plot_{k}.png").write_bytes(png)
    return out
