"""The committed reference results (results/reference/, written by bench/reference.py) are whole,
were run the way bench/reference.py says, and every table shown of them is generated, not typed:
results/reference/README.md and the README's summary block equal what the generator writes from
the run files today, and the leaderboard renders every run (one model, one row)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import reference
from bench.peer_ruler import PAIRS
from harness.records.io import find_runs, load_run

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / reference.OUT


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # bench/reference.py names its paths relative to the project root


def test_every_reference_run_is_committed_complete_and_run_as_declared():
    assert sorted(p.name for p in find_runs(REF)) == sorted(reference.RUNS)
    for run_id, (_, _, args) in reference.RUNS.items():
        record = load_run(REF / run_id)
        assert record.status == "complete", run_id
        assert record.model.path == reference.MODEL and record.model.tokenizer_sha256, run_id
        assert record.serving.max_model_len == reference.WINDOW, run_id
        config = json.loads((REF / run_id / "config.json").read_text())["run"]
        declared = dict(zip(args[::2], args[1::2]))
        assert ",".join(config["tasks"]) == declared["--tasks"], run_id
        if "--metadata" in declared:
            assert config["task_metadata"] == json.loads(declared["--metadata"]), run_id
        for task, result in record.tasks.items():
            assert result.n_errors == 0 and all(m.n > 0 for m in result.metrics.values()), (run_id, task)


def test_reference_readme_and_the_project_summary_are_generated_from_the_runs():
    assert (REF / "README.md").read_text() == reference.readme_text(), \
        "results/reference/README.md is stale or edited by hand: run `python bench/reference.py --write-only`"
    readme = (ROOT / "README.md").read_text()
    assert readme == reference.project_readme_text(readme), \
        "README.md's reference block is stale or edited by hand: run `python bench/reference.py --write-only`"
    for run_id in reference.RUNS:
        assert f"results/reference/{run_id}/run.json" in readme


def test_peer_files_hold_both_sides_for_every_task():
    peer = json.loads((REF / "peer_ruler.json").read_text())
    assert [r["task"] for r in peer["rows"]] == list(PAIRS)
    for r in peer["rows"]:
        assert r["n_ours"] == r["n_lm_eval"] == peer["samples"], r["task"]
        assert r["lm_eval_ci"][0] <= r["lm_eval"] <= r["lm_eval_ci"][1]
        assert r["longact_ci"][0] <= r["longact"] <= r["longact_ci"][1]
    agree = json.loads((REF / "server_vs_hf_agreement.json").read_text())
    assert agree["total"]["n"] == sum(t["n"] for t in agree["tasks"].values()) > 0 and agree["missing"] == 0


def test_the_leaderboard_renders_the_reference_runs_as_one_model(tmp_path, monkeypatch):
    """Five runs of one model (same weights, mode, chat template, samples per item): one row with
    every benchmark's headline columns, and one RULER line over 2k and 4k."""
    from harness.report import plots
    from harness.report.leaderboard import build, write_leaderboard
    from tasks.benchmarks import get

    out = write_leaderboard(REF, tmp_path / "leaderboard")
    page, table = (out / "index.html").read_text(), (out / "leaderboard.md").read_text()
    for run_id in reference.RUNS:   # each run's provenance is on the page
        assert run_id in page
    overview = table.split("\n\n")[1].splitlines()
    assert [line.split("|")[1].strip() for line in overview[2:]] == ["smollm2-135m"]
    head = [c.strip() for c in overview[0].split("|")[1:-1]]
    for col in ("LongBench v2 Overall", "LongBench v2 Easy", "LongBench v2 Hard", "LongBench v2 Short",
                "LongBench v2 Medium", "LongBench v2 Long", "RULER 2k", "RULER 4k", "RULER Avg", "RULER wAvg (inc)",
                "RULER wAvg (dec)", "RULER Eff. length", "InfiniteBench Avg", "tiny suite Avg"):
        assert col in head, (col, head)
    cells = dict(zip(head, (c.strip() for c in overview[2].split("|")[1:-1]), strict=True))
    assert cells["RULER 2k"] == "42.1†" and cells["RULER 4k"] == "29.1†"   # the group means of the two runs
    assert cells["LongBench v2 Overall"] == "16.7" and cells["tiny suite Avg"] == "27.5"

    figures = []
    monkeypatch.setattr(plots, "_png", lambda fig: figures.append(fig) or b"png")
    (ruler_vs_length,) = get("ruler").report.plots
    plots.draw(ruler_vs_length, build(REF).rows)
    (line,) = figures[0].axes[0].get_lines()
    assert list(line.get_xdata()) == [2048, 4096] and line.get_label() == "smollm2-135m"


