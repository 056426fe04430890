"""`longact leaderboard`: a static, self-contained HTML page and a Markdown table of all runs.

One row per run, the comparison columns of `harness.report.compare` (recomputed from samples files),
the plots each benchmark declares (`report.plots` in tasks/<bench>/benchmark.py) embedded as base64 PNG, and each run's provenance (model and tokenizer hashes, git
commit, vLLM version, window, mode, data fingerprints) in an expandable row. Runs that have not
finished get a status column and, under the table, how they stand and the command that resumes
them (`harness.records.state`). Checkpoints of an experiment (`longact experiment`) also get
a section per experiment: LongAct and the other arms against the baseline arm aggregated over
seeds (`harness.report.experiment`), training curves per arm and eval score against training step
per arm, each as the mean over seeds with the seeds' range shaded. Columns sort on
click; `index.html#sort=<column>:<asc|desc>` opens the page sorted (used by the browser test).
Nothing is fetched from the network: no external scripts or styles. The page's markup, style and
script are in leaderboard.html.jinja (autoescaped).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import jinja2

from harness.errors import UserError
from harness.records.io import find_runs
from harness.report import tables
from harness.report.compare import cell, label_runs, load, union_columns
from harness.report.tables import Column, fmt
from tasks.benchmarks import all as all_benchmarks


def _provenance(run) -> dict:
    r = run.record
    return {"run": r.run_id, "status": run.state.note, **({"resume": run.state.resume} if run.state.resume else {}),
            "model": r.model.path, "weights_sha256": r.model.weights_sha256,
            "tokenizer_sha256": r.model.tokenizer_sha256, "git": f"{r.code.git_commit} dirty={r.code.git_dirty}",
            "vllm": r.serving.server_version, "window": r.serving.max_model_len, "mode": r.mode,
            "samples_per_item": r.samples_per_item,
            "tasks": {t: {"version": v.version, "config": v.config_hash[:12], "data": v.dataset_fingerprint[:12]}
                      for t, v in r.tasks.items()}}


def build(results_dir: str | Path = "results") -> tuple[list, list[str], list[dict]]:
    paths = find_runs(results_dir)
    if not paths:
        raise UserError(f"no run directories (with run.json) under {results_dir}")
    runs = [load(p) for p in paths]
    label_runs(runs)
    cols = union_columns([run.record for run in runs])
    table = [{"run": run, "values": {c.name: cell(run, c) for c in cols},
              "tasks": {c.name: [task for task, _ in c.parts] for c in cols}} for run in runs]
    return runs, [c.name for c in cols], table


def _has_unfinished(table: list[dict]) -> bool:
    """A status column only when some run has not finished: complete runs are the normal case."""
    return any(not row["run"].state.finished for row in table)


def unfinished_notes(table: list[dict]) -> list[str]:
    """Under the table: each unfinished run, how it stands, and the command that finishes it."""
    return [f"{row['run'].label}: {row['run'].state.note}" + (f"; to resume: `{row['run'].state.resume}`"
                                                               if row["run"].state.resume else "")
            for row in table if not row["run"].state.finished]


def markdown(names: list[str], table: list[dict]) -> str:
    status = _has_unfinished(table)
    cols = ([Column("run")] + ([Column("status")] if status else [])
            + [Column(n, align="right") for n in names])
    rows = [[row["run"].label] + ([row["run"].state.status] if status else [])
            + [tables.marked(fmt(row["values"][n][0]), row["tasks"][n], row["run"].record) for n in names]
            for row in table]
    text = tables.markdown(cols, rows)
    notes = unfinished_notes(table)
    text += ("\n\nUnfinished runs (their cells cover only what they answered):\n" + "\n".join(f"- {n}" for n in notes)
             if notes else "")
    published = tables.published_notes([(row["run"].label, row["run"].record) for row in table])
    return text + (f"\n\n{tables.NOTE_HEAD}\n" + "\n".join(f"- {n}" for n in published) if published else "")


def experiments(runs, results_dir) -> list[dict]:
    """Each experiment manifest some run's checkpoint belongs to: its title, the seed-aggregated
    comparison (or the reason there is none yet) and its figures."""
    from harness.report import plots
    from harness.report.experiment import compare_experiment
    from harness.run.experiments import run_dirs
    from tasks.trainer_layout import manifest_of_checkpoint, read_metrics

    out, loaded = [], {run.path.resolve(): run for run in runs}  # read once, by build()
    for manifest in sorted({m for run in runs if (m := manifest_of_checkpoint(run.record.model.path))}):
        try:
            metrics: dict[str, list[list[dict]]] = {}
            for (arm, _), run_dir in run_dirs(manifest).items():
                if records := read_metrics(run_dir):
                    metrics.setdefault(arm, []).append(records)
            result, problem = compare_experiment(str(manifest), str(results_dir), loaded=loaded), None
        except UserError as e:  # e.g. an arm x seed not evaluated yet: the page still shows the rest
            result, problem = None, str(e)
        figures = {}
        curves = plots.band_panels({tag: {arm: [{r["step"]: r[tag] for r in records if tag in r} for records in per_seed]
                                          for arm, per_seed in metrics.items()} for tag in plots.ARM_TAGS})
        if curves:
            figures["training curves per arm: mean over seeds, shaded: range over seeds"] = curves
        steps = result["steps"] if result else {}
        if steps:
            per_column = {col: {arm: _by_seed({step: v[col] for step, v in by_step.items() if col in v})
                                for arm, by_step in steps.items()} for col in result["columns"]}
            figures["eval score against training step per arm (step 0: the starting checkpoint): mean over "
                    "seeds, shaded: range over seeds"] = plots.band_panels(per_column, ylabel="score", percent=True)
        out.append({"title": f"experiment {manifest.parent.name} ({manifest})", "result": result,
                    "problem": problem, "figures": {k: v for k, v in figures.items() if v}})
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


def page(names: list[str], table: list[dict], plots: dict[str, bytes], exps: list[dict] = ()) -> str:
    """The HTML page (leaderboard.html.jinja): plain values in, escaped by the template."""
    from harness.report.experiment import experiment_tables

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)  # a misspelt name fails instead of rendering empty
    env.filters["b64"] = lambda png: base64.b64encode(png).decode()
    rows = [{"run": row["run"], "provenance": json.dumps(_provenance(row["run"]), indent=1),
             "cells": [(*row["values"][n], tables.marked(fmt(row["values"][n][0]), row["tasks"][n], row["run"].record))
                       for n in names]} for row in table]  # (value, n, text) per column, as in the Markdown table
    return env.get_template("leaderboard.html.jinja").render(
        names=names, status=_has_unfinished(table), rows=rows, unfinished=unfinished_notes(table),
        note_head=tables.NOTE_HEAD, published=tables.published_notes([(row["run"].label, row["run"].record) for row in table]),
        experiments=[{**e, "tables": experiment_tables(e["result"]) if e["result"] else []} for e in exps], plots=plots)


def write_leaderboard(results_dir: str | Path = "results", out: str | Path = "results/leaderboard") -> Path:
    from harness.report import plots

    runs, names, table = build(results_dir)
    figures = {}
    for plot in (p for bench in all_benchmarks() for p in bench.report.plots):
        png = plots.draw(plot, runs)
        if png:
            figures[plot.title] = png
    from tasks.trainer_layout import manifest_of_checkpoint

    exps = experiments(runs, results_dir)
    # an experiment's checkpoints have their curves per arm in its section
    curves = plots.training_curves(plots.trainer_series(runs, skip=manifest_of_checkpoint), plots.TRAINING_TAGS)
    if curves:
        figures["Training curves of the trainer checkpoints"] = curves
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(page(names, table, figures, exps), encoding="utf-8")
    (out / "leaderboard.md").write_text(markdown(names, table) + experiment_markdown(exps) + "\n", encoding="utf-8")
    # A page regenerated with fewer plots (a benchmark's runs removed) must not keep the old files.
    for stale in out.glob("plot_*.png"):
        if re.fullmatch(r"plot_\d+\.png", stale.name):
            stale.unlink()
    pngs = [*figures.values(), *(png for e in exps for png in e["figures"].values())]
    for k, png in enumerate(pngs):
        (out / f"plot_{k}.png").write_bytes(png)
    return out
