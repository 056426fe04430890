"""An experiment (arm x seed x saved step) as the reports see it: `compare --experiment`'s
seed-aggregated tables and score against step, and the leaderboard's experiment section, on
hand-made result files whose numbers are worked out below."""

import json

import pytest

from harness.report.plots import seed_band
from tests.test_compare import write_run

# tiny_passkey per-item scores (4 items) of each evaluated checkpoint: (arm, seed, step) -> scores
SCORES = {
    ("baseline", 0, 2): [0, 0, 0, 0], ("baseline", 1, 2): [100, 0, 0, 0],          # 0, 25
    ("baseline", 0, 4): [100, 0, 0, 0], ("baseline", 1, 4): [100, 100, 0, 0],      # 25, 50
    ("longact", 0, 2): [100, 0, 0, 0], ("longact", 1, 2): [100, 100, 0, 0],        # 25, 50
    ("longact", 0, 4): [100, 100, 100, 0], ("longact", 1, 4): [100, 100, 0, 0],    # 75, 50
}
BASE = [100, 0, 0, 0]  # the starting checkpoint: 25


def _point_at(run_dir, checkpoint):
    """write_run's record with model.path set to the evaluated checkpoint."""
    rec = json.loads((run_dir / "run.json").read_text())
    rec["model"]["path"] = str(checkpoint)
    (run_dir / "run.json").write_text(json.dumps(rec))


@pytest.fixture
def experiment(tmp_path):
    from harness.run.experiments import ArmRun, arm_run_id

    exp, results, base = tmp_path / "exp", tmp_path / "results", tmp_path / "base"
    base.mkdir()
    arms = {}
    for arm in ("baseline", "longact"):
        seeds = {}
        for seed in (0, 1):
            run = exp / arm / f"seed-{seed}"
            for step in (2, 4):
                (run / f"step-{step}").mkdir(parents=True)
            rewards = [0.25, 0.5, 0.5, 0.75] if seed == 0 else [0.5, 0.5, 0.75, 1.0]
            (run / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "reward": r, "grad_norm": 1.0}) + "\n"
                                                       for i, r in enumerate(rewards)))
            seeds[str(seed)] = {"checkpoint": str(run / "step-4"),
                                "steps": {str(s): str(run / f"step-{s}") for s in (2, 4)}}
        arms[arm] = {"mask_strategy": "none" if arm == "baseline" else "longact",
                     "checkpoint": seeds["0"]["checkpoint"], "seeds": seeds}
    manifest = exp / "experiment.json"
    manifest.write_text(json.dumps({"config": {"model": str(base)}, "seeds": [0, 1], "arms": arms}))
    results.mkdir()
    for (arm, seed, step), scores in SCORES.items():
        ckpt = exp / arm / f"seed-{seed}" / f"step-{step}"
        rid = arm_run_id(manifest, ArmRun(arm, seed, str(ckpt), None if step == 4 else step))
        _point_at(write_run(results, rid, {"tiny_passkey": scores}), ckpt)
    _point_at(write_run(results, "start", {"tiny_passkey": BASE}), base)
    return manifest, results


def test_seed_band_is_mean_and_range_over_the_seeds_that_have_each_step():
    assert seed_band([{1: 0.0, 2: 1.0}, {1: 1.0}]) == [(1, 0.5, 0.0, 1.0), (2, 1.0, 1.0, 1.0)]


def test_experiment_tables_aggregate_seeds_and_give_score_against_step(experiment):
    from harness.report.experiment import compare_experiment, render_experiment

    manifest, results = experiment
    result = compare_experiment(str(manifest), str(results), n_resamples=200)
    values = {r.arm: r.values["tiny_passkey"] for r in result.rows}
    assert values == {"baseline": (37.5, [25.0, 50.0]), "longact": (62.5, [75.0, 50.0])}
    (delta,) = [d.result for d in result.deltas if d.column == "tiny_passkey"]
    # per seed: 75 - 25 = +50 and 50 - 50 = 0; all four sign flips give |mean| >= 25, so p = 1
    assert (delta.delta, list(delta.per_seed), delta.p_value) == (25.0, [50.0, 0.0], 1.0)
    # step 0 is the starting checkpoint's score, in every arm
    means = {arm: {step: sum(v["tiny_passkey"]) / len(v["tiny_passkey"]) for step, v in by_step.items()}
             for arm, by_step in result.steps.items()}
    assert means == {"baseline": {0: 25.0, 2: 12.5, 4: 37.5}, "longact": {0: 25.0, 2: 37.5, 4: 62.5}}
    text = render_experiment(result)
    assert "| baseline | 37.5 [25.0, 50.0] | 37.5 [25.0, 50.0] |" in text
    # detectable over two seeds: sd of (+50, 0) = 35.4; a t-test with 1 degree of freedom reaches 80% power
    # only at a mean difference of 190 points (noncentral t, harness/report/power.py)
    assert ("| longact | tiny_passkey |   +25.0 | [+0.0, +75.0] |       ±190.4 | seeds: sd 35 over 2 |   1 | "
            "+50.0, +0.0 |       2 |       4 |") in text
    assert "| longact  |      2 |           37.5 |       37.5 |" in text  # score against step, mean of 25 and 50


def test_leaderboard_has_the_experiment_section_with_its_curves(experiment, tmp_path):
    from harness.report.leaderboard import write_leaderboard

    manifest, results = experiment
    out = write_leaderboard(results, tmp_path / "site")
    page = (out / "index.html").read_text()
    md = (out / "leaderboard.md").read_text()
    assert f"experiment exp ({manifest.resolve()})" in page and "## experiment exp" in md
    assert "<td>+25.0</td>" in page and "| longact | tiny_passkey |   +25.0 |" in md
    assert "training curves per arm" in page and "eval score against training step per arm" in page
    # the arms' checkpoints have their curves in the section, not one line per run above it
    assert "Training curves of the trainer checkpoints" not in page
    pngs = sorted(p.name for p in out.glob("plot_*.png"))
    assert len(pngs) == 2 and all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_an_experiment_not_fully_evaluated_says_what_is_missing(experiment, tmp_path):
    import shutil

    from harness.report.leaderboard import write_leaderboard

    manifest, results = experiment
    shutil.rmtree(results / "exp-longact-s1")
    out = write_leaderboard(results, tmp_path / "site")
    page = (out / "index.html").read_text()
    assert "no finished evaluation for longact seed 1" in page
    assert "training curves per arm" in page  # the training side does not need the evaluation


def test_an_experiment_whose_checkpoints_are_gone_still_reports_from_its_results(experiment, tmp_path):
    """Reports read results only: a checkpoint deleted after its evaluation (a study commits its
    results and a copy of its manifest, never the checkpoints) leaves the comparison whole."""
    import shutil

    from harness.report.leaderboard import write_leaderboard

    manifest, results = experiment
    shutil.rmtree(manifest.parent / "longact" / "seed-1")
    page = (write_leaderboard(results, tmp_path / "site") / "index.html").read_text()
    assert "<h1>Leaderboard</h1>" in page and "hierarchical bootstrap" in page and "does not exist" not in page


def test_a_committed_manifest_copy_finds_its_runs_in_each_suite_folder(experiment, tmp_path):
    """A study copies its manifest beside its results, in a folder named as the experiment, and
    evaluates each suite into its own folder; the leaderboard shows one section per suite folder,
    once per manifest however many copies exist."""
    import shutil

    from harness.report.leaderboard import write_leaderboard

    manifest, results = experiment
    root = tmp_path / "committed"
    study = root / "studies" / "s1"
    shutil.copytree(results, study / "suite-a")
    (study / "exp").mkdir(parents=True)
    shutil.copy2(manifest, study / "exp" / "experiment.json")
    shutil.rmtree(manifest.parent)  # the checkpoints (and the original manifest) are gone
    page = (write_leaderboard(root, tmp_path / "site") / "index.html").read_text()
    assert page.count("<h2>experiment exp") == 1 and f"evaluated in {study / 'suite-a'}" in page
    assert "hierarchical bootstrap" in page
