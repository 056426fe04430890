"""Leaderboard page and plots from fixture result files; the page checked in a real browser."""

import json
import re
import shutil
import subprocess

import pytest

from harness.records.schema import Metric
from tests.test_compare import write_run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    write_run(root, "base", {"tiny_passkey": [100, 0, 0, 100], "tiny_kv": [0, 0, 0, 0]})
    write_run(root, "longact", {"tiny_passkey": [100, 100, 0, 100], "tiny_kv": [100, 0, 0, 0]})
    write_run(root, "random", {"tiny_passkey": [0, 0, 0, 0], "tiny_kv": [0, 0, 0, 0]})
    return root


def test_page_markdown_and_provenance(results, tmp_path):
    from harness.report.leaderboard import write_leaderboard

    out = write_leaderboard(results, tmp_path / "site")
    md = (out / "leaderboard.md").read_text()
    assert md.splitlines()[0] == "| run     |   tiny_kv |   tiny_passkey |   tiny avg |"
    assert "| longact |      25.0 |           75.0 |       50.0 |" in md
    page = (out / "index.html").read_text()
    assert page.count('<tr class="run"') == 3 and "weights_sha256" in page
    assert "http://" not in page and "https://" not in page          # self-contained


def test_plots_are_png(results, tmp_path):
    from harness.report import plots
    from harness.report.compare import load
    from tasks.benchmarks import get

    runs = [load(p) for p in sorted(results.iterdir())]
    (ruler_vs_length,) = get("ruler").report.plots
    assert plots.draw(ruler_vs_length, runs) is None                 # no RULER results, no plot
    rec = runs[0].record
    rec.group_breakdown["ruler"] = {"length": {"4096": {"score": Metric(80.0, 1.0, 10)},
                                               "8192": {"score": Metric(70.0, 1.0, 10)}}}
    png = plots.draw(ruler_vs_length, runs)
    assert png.startswith(PNG) and len(png) > 2000
    curves = plots.training_curves({"a": [{"step": i, "reward": i / 10, "masked_rows_changed": 0} for i in range(20)],
                                    "b": [{"step": i, "reward": i / 20} for i in range(20)]},
                                   ["reward", "masked_rows_changed", "absent"])
    assert curves.startswith(PNG)
    assert plots.training_curves({"a": [{"step": 0}]}, ["reward"]) is None
    assert plots.trainer_series(runs) == {}                          # no run evaluated a trainer checkpoint
    ckpt = tmp_path / "train" / "step-2"
    ckpt.mkdir(parents=True)
    (ckpt.parent / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "reward": 0.1 * i}) + "\n" for i in (1, 2)))
    rec.model.path = str(ckpt)
    assert plots.trainer_series(runs) == {runs[0].label: [{"step": 1, "reward": 0.1}, {"step": 2, "reward": 0.2}]}


def test_longbench_split_bars_are_png(tmp_path):
    from harness.report import plots
    from harness.report.compare import load
    from tasks.benchmarks import get

    docs = [{"difficulty": d, "length": n} for d, n in (("easy", "short"), ("hard", "long"), ("hard", "medium"))]
    run = load(write_run(tmp_path, "base", {"longbench_v2": [100, 0, 100]}, docs={"longbench_v2": docs}, group=None))
    (splits,) = get("longbench_v2").report.plots
    assert plots.draw(splits, [run]).startswith(PNG)
    assert plots.draw(splits, [load(write_run(tmp_path, "tiny", {"tiny_kv": [0]}))]) is None


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium on this machine (.ci/run installs the "
                                               "distribution's chromium package where apt can reach a mirror)")
def test_page_renders_and_sorts_in_a_real_browser(results, tmp_path):
    from harness.report.leaderboard import write_leaderboard

    out = write_leaderboard(results, tmp_path / "site")
    url = (out / "index.html").resolve().as_uri()

    def rendered(fragment: str) -> list[str]:
        dom = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url + fragment],
                             capture_output=True, text=True, timeout=120).stdout
        assert "<table id=\"board\">" in dom or "id=\"board\"" in dom, dom[:500]
        return re.findall(r'<tr class="run" id="r\d+"><td>([^<]+)</td>', dom)

    assert rendered("") == ["base", "longact", "random"]
    assert rendered("#sort=tiny_passkey:desc") == ["longact", "base", "random"]
    assert rendered("#sort=tiny_passkey:asc")[0] == "random"


def test_official_prediction_files_join_as_imported_runs(results, tmp_path, capsys):
    from harness.records.io import load_run
    from harness.report.leaderboard import build
    from longact.cli import main

    preds = tmp_path / "preds_passkey.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "prediction": p, "ground_truth": ["123"]}) + "\n"
                             for i, p in enumerate(["123", "The key is 123.", "456", ""])))
    assert main(["score", "infinitebench", str(preds), "--task", "passkey", "--save-run", str(results),
                 "--model-name", "published-model"]) == 0
    imported = [p for p in results.iterdir() if load_run(p).serving.backend == "imported"]
    assert len(imported) == 1
    rec = load_run(imported[0])
    assert rec.imported_from == str(preds.resolve()) and rec.tasks["infinitebench_passkey"].metrics["score"].value == 50.0
    _, names, table = build(results)
    assert "infinitebench_passkey" in names and any(r["run"].record.imported_from for r in table)


def test_longbench_prediction_file_imports_with_splits(tmp_path):
    from harness.records.io import load_run
    from longact.cli import main

    items = [{"_id": "a", "difficulty": "easy", "length": "short", "answer": "A", "response": "The correct answer is (A)"},
             {"_id": "b", "difficulty": "hard", "length": "long", "answer": "B", "response": "The correct answer is (C)"}]
    f = tmp_path / "Qwen3.jsonl"
    f.write_text("".join(json.dumps(i) + "\n" for i in items))
    assert main(["score", "longbench_v2", str(f), "--save-run", str(tmp_path / "res")]) == 0
    rec = load_run(next((tmp_path / "res").iterdir()))
    t = rec.tasks["longbench_v2"]
    assert t.metrics["score"].value == 50.0
    assert t.breakdown["difficulty"]["easy"]["score"].value == 100.0 and t.breakdown["length"]["long"]["score"].value == 0.0


def _drawn(monkeypatch, draw):
    """The matplotlib figure `draw()` renders, kept open for inspection."""
    from harness.report import plots

    figures = []
    monkeypatch.setattr(plots, "_png", lambda fig: figures.append(fig) or PNG)
    assert draw() == PNG
    return figures[0]


def _colliding_text(fig) -> list[tuple[str, str]]:
    """Tick labels, offset texts, titles and axis labels that overlap one another or another panel."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = []
    for k, ax in enumerate(fig.axes):
        items = [ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text(), ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            slack = (hi - lo) * 1e-6
            items += [t for loc, t in zip(axis.get_ticklocs(), axis.get_ticklabels()) if lo - slack <= loc <= hi + slack]
        texts += [(k, t.get_text(), t.get_window_extent(r)) for t in items if t.get_visible() and t.get_text()]
    bad = []
    for i, (k, text, box) in enumerate(texts):
        bad += [(text, other) for _, other, b in texts[i + 1:] if box.overlaps(b)]
        bad += [(text, f"panel {j}") for j, ax in enumerate(fig.axes) if j != k and box.overlaps(ax.get_window_extent(r))]
    return bad


def test_training_curves_tick_labels_do_not_collide(monkeypatch):
    from harness.report import plots

    steps = [{"step": s, "reward": [0.25, 0.0, 0.125, 0.25][s - 1], "loss": [0.0, 7.45e-9, -3.2e-9, 1.1e-8][s - 1],
              "entropy": 0.1 * s, "grad_norm": [0.83, 0.0, 8.5, 1234.5][s - 1], "mask/masked_rows_changed": 0}
             for s in (1, 2, 3, 4)]
    fig = _drawn(monkeypatch, lambda: plots.training_curves({"baseline/step-4": steps, "longact/step-4": steps[::-1]},
                                                            plots.TRAINING_TAGS))
    assert _colliding_text(fig) == []
    assert all(float(t).is_integer() for ax in fig.axes for t in ax.get_xticks())      # steps: whole numbers


def test_longbench_split_bars_start_at_zero_when_every_score_is_zero(tmp_path, monkeypatch):
    from harness.report import plots
    from harness.report.compare import load
    from tasks.benchmarks import get

    docs = [{"difficulty": "easy", "length": "short"}, {"difficulty": "hard", "length": "long"}]
    run = load(write_run(tmp_path, "base", {"longbench_v2": [0, 0]}, docs={"longbench_v2": docs}, group=None))
    (splits,) = get("longbench_v2").report.plots
    fig = _drawn(monkeypatch, lambda: plots.draw(splits, [run]))
    assert fig.axes[0].get_ylim() == (0.0, 100.0)


def test_regenerating_with_fewer_plots_removes_the_old_files(results, tmp_path):
    from harness.report.leaderboard import write_leaderboard

    site = tmp_path / "site"
    site.mkdir()
    for name in ("plot_0.png", "plot_3.png", "notes.png"):
        (site / name).write_bytes(PNG)
    write_leaderboard(results, site)          # tiny runs only: no benchmark plot, no training curves
    assert sorted(p.name for p in site.glob("*.png")) == ["notes.png"]
