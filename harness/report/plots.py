"""Plots from result files (matplotlib, Agg backend, PNG bytes).

* `draw`: a figure a benchmark declares (`report.plots` in tasks/<bench>/benchmark.py), one
  line or bar set per model row (`harness.report.models`: a model's runs joined, so its 2k and
  4k runs are one line): `group_lines` (mean over tasks per value of a numeric field) or
  `split_bars` (a task's report splits with bootstrap 95% intervals of each split's mean).
* `training_curves`: scalar series per tag (e.g. reward, masked rows changed), one line per run,
  from {"step": int, tag: value, ...} records (a trainer's metrics.jsonl; `trainer_series` finds
  them for evaluated trainer checkpoints that belong to no experiment).
* `band_panels`: an experiment's arms over seeds, one panel per series (a training scalar, or an
  eval column against training step): per arm the mean over seeds as a line and the seeds' range
  as a shaded band (`seed_band` computes them).
"""

from __future__ import annotations

import io
from pathlib import Path

from tasks import trainer_layout


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)
    return buf.getvalue()


MAX_MODELS = 12
"""Lines or bar sets one figure draws; past it, the models with the highest mean (the caption says so)."""


def draw(plot, rows) -> bytes | None:
    """The figure a benchmark declares (`tasks.benchmarks.Plot`) for model rows
    (`harness.report.models.ModelRow`: one line or bar set per model, across its runs); None when
    no row has its results."""
    return {"group_lines": group_lines, "splits": split_bars}[plot.kind](plot, rows)


def _best(series: list[tuple[str, list[float], object]]) -> tuple[list, str]:
    """At most MAX_MODELS of (label, values, payload), by mean value, and the note that says so."""
    if len(series) <= MAX_MODELS:
        return series, ""
    best = sorted(series, key=lambda s: -sum(s[1]) / len(s[1]))[:MAX_MODELS]
    return [s for s in series if s in best], f"{MAX_MODELS} of {len(series)} models, highest mean"


def group_lines(plot, rows) -> bytes | None:
    """The group's mean over its tasks per value of a numeric doc field (RULER: context length),
    one line per model joining its runs, log2 x axis, percent y axis."""
    from tasks.benchmarks import for_task

    bench = for_task(plot.target)
    members = list(bench.groups.get(plot.target, ())) if bench else []
    series = []
    for row in rows:
        pts = []
        for v in row.field_values(members, plot.field):
            means = [m for m, _ in (row.mean(t, (plot.field, v), by=(plot.field, v)) for t in members) if m is not None]
            if means:
                pts.append((float(v), sum(means) / len(means)))
        if pts:
            series.append((row.label, [y for _, y in pts], pts))
    if not series:
        return None
    series, note = _best(series)
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, _, pts in series:
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=note or None, title_fontsize=7)
    return _png(fig)


def split_bars(plot, rows) -> bytes | None:
    """The report splits of task `plot.target` (LongBench v2: Overall/Easy/Hard/Short/Medium/Long)
    as bars per model with bootstrap 95% intervals of each split's mean."""
    import numpy as np

    from harness.report.stats import paired_bootstrap
    from tasks.benchmarks import report_for

    splits = report_for(plot.target).splits
    if not splits:
        return None
    series = []
    for row in rows:
        per_split = [np.array(list(row.scores(plot.target, (s.field, s.value) if s.field else None).values()))
                     for s in splits]
        if len(per_split[0]):
            series.append((row.label, [float(x.mean()) if len(x) else 0.0 for x in per_split], per_split))
    if not series:
        return None
    series, note = _best(series)
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(series)
    for k, (label, means, per_split) in enumerate(series):
        errs = []
        for scores, mean in zip(per_split, means, strict=True):
            low, high = paired_bootstrap(scores, n_resamples=1000) if len(scores) else (0.0, 0.0)
            errs.append((mean - low, high - mean) if len(scores) else (0.0, 0.0))
        x = np.arange(len(splits)) + k * width
        ax.bar(x, means, width, yerr=np.array(errs).T, capsize=2, label=label)
    ax.set_xticks(np.arange(len(splits)) + width * (len(series) - 1) / 2, [s.label for s in splits])
    ax.set_ylabel(plot.ylabel)
    ax.set_ylim(0, 100)  # scores are percent; autoscaling all-zero bars would show an axis below 0
    ax.legend(fontsize=7, title=note or None, title_fontsize=7)
    return _png(fig)


def training_curves(series: dict[str, list[dict]], tags: list[str]) -> bytes | None:
    """One panel per tag, one line per run (label -> its metrics.jsonl records)."""
    plt = _figure()
    tags = [t for t in tags if any(t in r for records in series.values() for r in records)]
    if not tags:
        return None
    from matplotlib.ticker import MaxNLocator

    # Constrained layout leaves room for each panel's tick labels: without it a wide label of one
    # panel (grad_norm 1200, a negative loss) is drawn over the panel to its left.
    fig, axes = plt.subplots(1, len(tags), figsize=(3.2 * len(tags), 2.8), squeeze=False, layout="constrained")
    for ax, tag in zip(axes[0], tags):
        for label, records in series.items():
            pts = [(r["step"], r[tag]) for r in records if tag in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
        ax.set_title(tag, fontsize=9)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))   # steps are whole numbers
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _png(fig)


TRAINING_TAGS = ["reward", "loss", "entropy", "grad_norm", "mask/masked_rows_changed"]
ARM_TAGS = ["reward", "entropy", "grad_norm", "mask/masked_rows_changed"]


def trainer_series(runs, skip=lambda ckpt: False) -> dict[str, list[dict]]:
    """Training metrics of evaluated checkpoints that came from this project's trainer (a `step-N`
    directory whose run logged metrics, tasks/trainer_layout.py), keyed by the run's label; one line
    per training run (its intermediate checkpoints share it), none for checkpoints `skip` names."""
    series, seen = {}, set()
    for run in runs:
        ckpt = Path(run.record.model.path)
        run_dir = trainer_layout.run_dir_of(ckpt).resolve()
        if trainer_layout.step_of(ckpt) is None or run_dir in seen or skip(ckpt):
            continue
        if records := trainer_layout.read_metrics(run_dir):
            seen.add(run_dir)
            series[run.label] = records
    return series


def seed_band(per_seed: list[dict[int, float]]) -> list[tuple[int, float, float, float]]:
    """(step, mean, min, max) over the seeds that have the step, in step order."""
    steps = sorted({s for series in per_seed for s in series})
    out = []
    for step in steps:
        vals = [series[step] for series in per_seed if step in series]
        out.append((step, sum(vals) / len(vals), min(vals), max(vals)))
    return out


def band_panels(panels: dict[str, dict[str, list[dict[int, float]]]], ylabel: str = "", percent: bool = False,
                xlabel: str = "step") -> bytes | None:
    """One panel per title; in each, per arm the mean over seeds (line, markers) and the range over
    seeds (shaded). panels: title -> arm -> one {step: value} per seed."""
    panels = {t: arms for t, arms in panels.items() if any(s for series in arms.values() for s in series)}
    if not panels:
        return None
    plt = _figure()
    from matplotlib.ticker import MaxNLocator

    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.9 * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, arms) in zip(axes.flat, panels.items()):
        for arm, per_seed in arms.items():
            pts = seed_band(per_seed)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            line, = ax.plot(xs, [p[1] for p in pts], marker="o", markersize=3, label=f"{arm} (n={len(per_seed)})")
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if percent:
            ax.set_ylim(0, 100)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _png(fig)
