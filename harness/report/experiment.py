"""`longact compare --experiment MANIFEST`: arms aggregated over their seeds, against the baseline.

    from harness.report.experiment import compare_experiment, render_experiment
    print(render_experiment(compare_experiment("runs/exp/experiment.json", "results")))

Per column (the same columns as `longact compare`): each arm's mean over seeds with the per-seed
values, and against the baseline arm the difference with a hierarchical bootstrap 95% interval
(seeds, then items within seed) and the exact seed-level sign-flip p-value (harness/report/seeds.py).
Runs must have been evaluated the same way (the checks `longact compare` makes, against the
baseline's first seed); the items of each stratum are those every run has. When the manifest's
intermediate checkpoints were evaluated too (`longact eval --experiment M --all-steps`), a third
table gives each arm's mean over seeds at every training step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from harness.errors import UserError
from harness.report.compare import DETECTABLE, DETECTABLE_NOTE, Run, ScoreColumn, differences, fmt_detectable, load, union_columns
from harness.report.seeds import SeedResult, compare_seeds
from harness.report.stats import stratum_mean
from harness.report.tables import Column, fmt, markdown
from tasks import trainer_layout


class SeedCell(NamedTuple):
    """An arm's value in one column: the mean over its seeds, and each seed's value."""

    mean: float
    per_seed: list[float]


@dataclass
class ArmRow:
    arm: str
    values: dict[str, SeedCell]
    """Column -> the arm's cell."""
    seeds: list[int]
    """The seeds the arm was trained at (an ablation arm may have fewer than the baseline)."""


@dataclass
class ArmDelta:
    """An arm against the baseline arm in one column, over the arm's seeds."""

    arm: str
    column: str
    result: SeedResult


@dataclass
class ExperimentComparison:
    baseline: str
    """The baseline arm (the manifest's first)."""
    seeds: list[int]
    """The baseline's seeds."""
    columns: list[str]
    rows: list[ArmRow]
    deltas: list[ArmDelta]
    steps: dict[str, dict[int, dict[str, list[float]]]] = field(default_factory=dict)
    """arm -> step -> column -> the per-seed values at that step (`_step_curves`); empty unless
    some arm has more than one step."""
    warnings: list[str] = field(default_factory=list)
    """The differences `--force` compared despite."""


class Table(NamedTuple):
    """One table of the report, as text cells."""

    caption: str
    header: list[str]
    rows: list[list[str]]
    n_left: int
    """Columns on the left that hold text (left-aligned)."""


def _strata(runs: list, col: ScoreColumn) -> list[list[list[float]]] | None:
    """[run][stratum][item] on the items every run has, or None when some run lacks a stratum."""
    per_run = [[run.scores(task, where) for task, where in col.parts] for run in runs]
    out = [[] for _ in runs]
    for k in range(len(col.parts)):
        shared = set.intersection(*(set(r[k]) for r in per_run))
        if not shared:
            return None
        for i, r in enumerate(per_run):
            out[i].append([r[k][d] for d in sorted(shared)])
    return out


def _loader(loaded: dict[Path, Run]):
    """load(run_dir), each directory read once: `loaded` (resolved directory -> Run) is the cache,
    pre-filled by a caller that has read the runs already (the leaderboard)."""
    def get(run_dir) -> Run:
        key = Path(run_dir).resolve()
        if key not in loaded:
            loaded[key] = load(run_dir)
        return loaded[key]
    return get


def compare_experiment(manifest: str, results: str, n_resamples: int = 2000, force: bool = False,
                       loaded: dict[Path, Run] | None = None) -> ExperimentComparison:
    """`loaded`: runs already read (resolved run directory -> Run), not read again."""
    from harness.run.experiments import arm_runs

    get = _loader({} if loaded is None else loaded)
    dirs = arm_runs(manifest, results)
    arms = list(dict.fromkeys(arm for arm, _ in dirs))
    seeds_of = {a: sorted(s for arm, s in dirs if arm == a) for a in arms}
    base_name = arms[0]
    seeds = seeds_of[base_name]
    runs = {key: get(path) for key, path in dirs.items()}
    # An arm may train at fewer seeds than the baseline (`--ablation-seeds`): it pairs with the
    # baseline at each of its own seeds, so the baseline needs every seed any arm has.
    missing = [f"{base_name} seed {s}" for a in arms for s in seeds_of[a] if s not in seeds]
    if missing:
        raise UserError(f"every arm pairs with the baseline at its seeds; missing: {', '.join(sorted(set(missing)))}")
    ref = runs[(base_name, seeds[0])]
    problems = []
    for key, run in runs.items():
        if run is not ref:
            shared = sorted(set(ref.record.tasks) & set(run.record.tasks))
            problems += [f"{key[0]} seed {key[1]}: {d}" for d in differences(ref.record, run.record, shared)]
    if problems and not force:
        raise UserError("the arms' runs were not evaluated the same way:\n  - " + "\n  - ".join(problems)
                        + "\nre-evaluate them with one command, or pass --force")
    cols = union_columns([r.record for r in runs.values()])
    keys = list(runs)
    rows, deltas = [], []
    per_column = {}
    for col in cols:
        strata = _strata([runs[k] for k in keys], col)
        if strata is not None:
            per_column[col.name] = dict(zip(keys, strata))
    for arm in arms:
        values = {}
        for name, by_key in per_column.items():
            cells = [stratum_mean(by_key[(arm, s)]) for s in seeds_of[arm]]
            values[name] = SeedCell(sum(cells) / len(cells), cells)
        rows.append(ArmRow(arm, values, seeds_of[arm]))
        if arm == base_name:
            continue
        for name, by_key in per_column.items():
            own = seeds_of[arm]
            res = compare_seeds([by_key[(base_name, s)] for s in own], [by_key[(arm, s)] for s in own],
                                n_resamples=n_resamples)
            deltas.append(ArmDelta(arm, name, res))
    return ExperimentComparison(base_name, seeds, list(per_column), rows, deltas,
                                _step_curves(manifest, results, cols, get), problems)


def _step_curves(manifest, results, cols, get) -> dict:
    """arm -> step -> column -> the per-seed values at that step (finished runs only), with step 0
    from any finished run of the checkpoint the arms started from (the same values in every arm).
    Empty unless some arm has more than one step."""
    from harness.records.io import find_runs, load_run
    from harness.run.experiments import arm_run_id, base_model, read_manifest

    def values(run_dir) -> dict[str, float]:
        run = get(run_dir)
        return {col.name: stratum_mean(strata[0]) for col in cols if (strata := _strata([run], col))}

    curves: dict[str, dict[int, dict[str, list[float]]]] = {}
    for run in read_manifest(manifest, all_steps=True, need_checkpoints=False):
        run_dir = Path(results) / arm_run_id(manifest, run)
        if not (run_dir / "run.json").exists() or load_run(run_dir).status != "complete":
            continue
        step = run.step if run.step is not None else trainer_layout.step_of(run.checkpoint)
        step = -1 if step is None else step
        for name, value in values(run_dir).items():
            curves.setdefault(run.arm, {}).setdefault(step, {}).setdefault(name, []).append(value)
    base = base_model(manifest)
    start: dict[str, float] = {}
    for run_dir in find_runs(results) if base else []:
        record = load_run(run_dir)
        if record.status == "complete" and str(Path(record.model.path).resolve()) == base:
            start = {**values(run_dir), **start}
    if start:
        for by_step in curves.values():
            by_step[0] = {name: [v] for name, v in start.items()}
    curves = {arm: dict(sorted(by_step.items())) for arm, by_step in curves.items()}
    return curves if any(len(v) > 1 for v in curves.values()) else {}


def experiment_tables(result: ExperimentComparison) -> list[Table]:
    """The report as tables: arms over seeds, deltas against the baseline arm, score against training step (the last two when there
    is something to show)."""
    cols, n_seeds = result.columns, len(result.seeds)
    out = [Table(f"baseline arm: {result.baseline} · seeds {', '.join(map(str, result.seeds))} · scores in percent, "
                 "mean over seeds [per seed]", ["arm", *cols],
                 [[r.arm] + [f"{fmt(r.values[c].mean)} [{', '.join(fmt(x) for x in r.values[c].per_seed)}]" for c in cols]
                  for r in result.rows], 1)]
    if result.deltas:
        out.append(Table("delta = arm − baseline, mean over the arm's seeds · 95% CI: hierarchical bootstrap (seeds, then "
                    "items) · p: exact sign flip over the arm's seeds (smallest possible with "
                    f"{n_seeds} seeds: {2 / 2 ** n_seeds:.3g}) · " + DETECTABLE_NOTE,
                    ["arm", "column", "delta", "95% CI", DETECTABLE, "from", "p", "per seed", "seeds", "items"],
                    [[d.arm, d.column, f"{d.result.delta:+.1f}", f"[{d.result.low:+.1f}, {d.result.high:+.1f}]",
                      fmt_detectable(d.result.detectable), d.result.detectable_basis, f"{d.result.p_value:.3g}",
                      ", ".join(f"{x:+.1f}" for x in d.result.per_seed), str(d.result.n_seeds),
                      str(d.result.n_items)] for d in result.deltas], 2))
    if result.steps:
        out.append(Table("score against training step (mean over seeds; step 0: the starting checkpoint)",
                    ["arm", "step", *cols],
                    [[arm, str(step)] + [fmt(sum(v[c]) / len(v[c]) if v.get(c) else None) for c in cols]
                     for arm, by_step in result.steps.items() for step, v in by_step.items()], 1))
    return out


def render_experiment(result: ExperimentComparison) -> str:
    blocks = [f"{t.caption}\n\n" + markdown([Column(h, align="left" if i < t.n_left else "right")
                                              for i, h in enumerate(t.header)], t.rows)
              for t in experiment_tables(result)]
    out = "\n\n".join(blocks)
    if result.warnings:
        out += "\n\nforced despite differences:\n" + "\n".join(f"- {w}" for w in result.warnings)
    return out
