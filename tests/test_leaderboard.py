"""Leaderboard page and plots from fixture result files: one row per model, each benchmark's headline
columns; the page checked in a real browser at 1,400 px."""

import json
import re
import shutil

import pytest

from harness.report.screenshot import find_browser
from tests.leaderboard_data import write_results
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
    assert md.splitlines()[2] == "| model   |   tiny suite Avg |"
    assert "| longact |            50.0† |" in md and "- longact: tiny suite: mean over 2 of 4 tasks" in md
    assert "| longact |    – |      – |      75.0 | 25.0 | 50.0† |" in md          # the suite's own table
    page = (out / "index.html").read_text()
    assert page.count('<tr class="model"') == 3 and "weights_sha256" in page
    assert "http://" not in page and "https://" not in page          # self-contained


def _rows(root):
    from harness.report.compare import load
    from harness.report.models import join_runs

    return join_runs([load(p) for p in sorted(root.iterdir()) if (p / "run.json").is_file()])


def test_plots_are_png(results, tmp_path):
    from harness.report import plots
    from tasks.benchmarks import get

    (ruler_vs_length,) = get("ruler").report.plots
    assert plots.draw(ruler_vs_length, _rows(results)) is None        # no RULER results, no plot
    write_results(tmp_path / "ruler", n_models=2, lengths=(4096, 8192), items=2)
    png = plots.draw(ruler_vs_length, _rows(tmp_path / "ruler"))
    assert png.startswith(PNG) and len(png) > 2000
    curves = plots.training_curves({"a": [{"step": i, "reward": i / 10, "masked_rows_changed": 0} for i in range(20)],
                                    "b": [{"step": i, "reward": i / 20} for i in range(20)]},
                                   ["reward", "masked_rows_changed", "absent"])
    assert curves.startswith(PNG)
    assert plots.training_curves({"a": [{"step": 0}]}, ["reward"]) is None
    runs = [run for row in _rows(results) for run in row.runs]
    assert plots.trainer_series(runs) == {}                          # no run evaluated a trainer checkpoint
    ckpt = tmp_path / "train" / "step-2"
    ckpt.mkdir(parents=True)
    (ckpt.parent / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "reward": 0.1 * i}) + "\n" for i in (1, 2)))
    runs[0].record.model.path = str(ckpt)
    assert plots.trainer_series(runs) == {runs[0].label: [{"step": 1, "reward": 0.1}, {"step": 2, "reward": 0.2}]}


def test_a_models_runs_at_each_length_are_one_line(tmp_path, monkeypatch):
    """RULER's headline curve: one line per model across its runs (2 models x 3 runs: 2 lines of 3
    points), and past MAX_MODELS models the best ones, the legend says so."""
    from harness.report import plots
    from tasks.benchmarks import get

    (ruler_vs_length,) = get("ruler").report.plots
    write_results(tmp_path / "two", n_models=2, lengths=(4096, 8192, 16384), items=2)
    fig = _drawn(monkeypatch, lambda: plots.draw(ruler_vs_length, _rows(tmp_path / "two")))
    lines = fig.axes[0].get_lines()
    assert [list(line.get_xdata()) for line in lines] == [[4096, 8192, 16384]] * 2
    assert sorted(line.get_label() for line in lines) == ["model-000-instruct", "model-001-xinstruct"]
    names = write_results(tmp_path / "many", n_models=plots.MAX_MODELS + 3, lengths=(4096,), items=4)
    fig = _drawn(monkeypatch, lambda: plots.draw(ruler_vs_length, _rows(tmp_path / "many")))
    assert len(fig.axes[0].get_lines()) == plots.MAX_MODELS and names[0] in [x.get_label() for x in fig.axes[0].get_lines()]
    assert fig.axes[0].get_legend().get_title().get_text() == f"12 of {plots.MAX_MODELS + 3} models, highest mean"


# What the injected script reads once the page's own script has run: the overview's layout at
# 1,400 px, the order of the rows after a click on a headline column, the columns a click on
# InfiniteBench's "+N" shows.
MEASURE = """<script>
const o = document.getElementById('overview'), t = document.getElementById('board');
const order = () => Array.from(t.querySelectorAll('tr.model td.name')).map(td => td.textContent);
const before = order();
t.querySelector('tr.cols th[data-key="RULER Avg"]').click();
const desc = order();
t.querySelector('tr.cols th[data-key="RULER Avg"]').click();
const layout = {scroll: o.scrollWidth, client: o.clientWidth, right: t.getBoundingClientRect().right,
  viewport: document.documentElement.clientWidth, page: document.documentElement.scrollWidth};
const shown = () => Array.from(t.querySelectorAll('tr.cols th')).filter(th => th.offsetParent !== null).length;
const closed = shown();
Array.from(t.querySelectorAll('tr.groups th')).find(th => th.textContent.startsWith('InfiniteBench'))
  .querySelector('button.more').click();
document.body.dataset.measured = JSON.stringify({...layout, before: before, desc: desc, asc: order(),
  closed: closed, opened: shown()});
</script></body>"""


@pytest.mark.skipif(find_browser() is None, reason="no headless Chromium on this machine (`make browser` installs "
                                                   "the distribution's chromium package where apt can reach a mirror)")
def test_page_fits_1400px_sorts_and_is_drawn_in_a_real_browser(tmp_path):
    """Three benchmarks, ten models, RULER at six lengths: the overview fits a 1,400 px window
    without scrolling sideways, a headline column sorts on click and from the URL, and the page is
    drawn (the screenshot `longact leaderboard --screenshot` takes)."""
    import html

    from harness.report.leaderboard import build, write_leaderboard
    from harness.report.screenshot import WIDTH, dump_dom, screenshot

    names = write_results(tmp_path / "results", n_models=10, lengths=(4096, 8192, 16384, 32768, 65536, 131072),
                          items=4, unofficial=(3,))
    out = write_leaderboard(tmp_path / "results", tmp_path / "site")
    board = build(tmp_path / "results")
    def value(col: str) -> dict[str, float]:
        return {row.label: c.value for b in board.blocks for i, row in enumerate(board.rows)
                for k, c in b.cells[i].items() if k == col}

    by_avg = sorted(names, key=lambda n: -value("RULER Avg")[n])      # stable, as the page's sort
    assert len({b.title for b, _ in board.overview()}) == 3 and len(board.rows) == 10

    page = (out / "index.html").read_text()
    probe = out / "measure.html"
    probe.write_text(page.replace("</body>", MEASURE))
    dom = dump_dom(probe.as_uri())
    found = re.search(r'data-measured="([^"]+)"', dom)
    assert found, dom[:500]
    m = json.loads(html.unescape(found.group(1)))
    assert m["viewport"] <= WIDTH and m["scroll"] <= m["client"], m          # the overview does not scroll sideways
    assert m["right"] <= m["viewport"] and m["page"] <= m["viewport"], m
    assert m["before"] == names and m["desc"] == by_avg and m["asc"] == by_avg[::-1], m
    assert m["opened"] - m["closed"] == 12                                  # InfiniteBench's tasks, one click away

    def rendered(fragment: str) -> list[str]:
        return re.findall(r'<tr class="model" id="m\d+"><td class="name">([^<]+)</td>', dump_dom(out.joinpath("index.html").as_uri() + fragment))

    assert rendered("#sort=RULER%20Avg:desc") == by_avg
    assert rendered("#sort=LongBench%20v2%20Overall:asc") == sorted(names, key=value("LongBench v2 Overall").get)
    png = screenshot(out / "index.html", tmp_path / "shot.png")
    assert png.read_bytes().startswith(PNG)
    assert int.from_bytes(png.read_bytes()[16:20], "big") == WIDTH     # IHDR width
    assert "RULER wAvg (inc)" in page and "model-003-xxxinstruct: ruler_" in page   # the exact-sized model's †


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
    board = build(results)
    (row,) = [row for row in board.rows if row.label == "published-model"]
    (ib,) = [b for b in board.blocks if b.title == "InfiniteBench"]
    assert ib.cells[board.rows.index(row)]["InfiniteBench Retrieve.PassKey"].value == 50.0
    assert row.runs[0].record.imported_from


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
    from tasks.benchmarks import get

    docs = [{"difficulty": "easy", "length": "short"}, {"difficulty": "hard", "length": "long"}]
    write_run(tmp_path / "r", "base", {"longbench_v2": [0, 0]}, docs={"longbench_v2": docs}, group=None)
    (splits,) = get("longbench_v2").report.plots
    fig = _drawn(monkeypatch, lambda: plots.draw(splits, _rows(tmp_path / "r")))
    assert fig.axes[0].get_ylim() == (0.0, 100.0)


def test_regenerating_with_fewer_plots_removes_the_old_files(results, tmp_path):
    from harness.report.leaderboard import write_leaderboard

    site = tmp_path / "site"
    site.mkdir()
    for name in ("plot_0.png", "plot_3.png", "notes.png"):
        (site / name).write_bytes(PNG)
    write_leaderboard(results, site)          # tiny runs only: no benchmark plot, no training curves
    assert sorted(p.name for p in site.glob("*.png")) == ["notes.png"]


def _ruler_run(root, name, per_length: dict[int, list[float]]):
    """One RULER run of model `name`: every task scores `per_length[L]` on its items at length L."""
    from tasks.benchmarks import get

    docs = [{"length": length} for length, scores in per_length.items() for _ in scores]
    values = [v for scores in per_length.values() for v in scores]
    return write_run(root, name, {t: values for t in get("ruler").groups["ruler"]},
                     docs={t: docs for t in get("ruler").groups["ruler"]}, group=None)


def test_ruler_headline_columns_are_its_published_ones(tmp_path):
    """Per length the mean over the 13 tasks, Avg, the rank-weighted averages and the effective
    length at 85.6, by hand: 100, 90, 70 -> Avg 86.7, wAvg (inc) (100 + 2*90 + 3*70)/6 = 81.7,
    wAvg (dec) (3*100 + 2*90 + 70)/6 = 91.7, effective length 8k (70 < 85.6 at 16k)."""
    from harness.report.leaderboard import build, export

    _ruler_run(tmp_path, "good", {4096: [100] * 10, 8192: [100] * 9 + [0], 16384: [100] * 7 + [0] * 3})
    _ruler_run(tmp_path, "weak", {4096: [100] * 8 + [0] * 2, 8192: [100] * 9 + [0]})
    board = build(tmp_path)
    (ruler,) = [b for b in board.blocks if b.title == "RULER"]
    good, weak = (ruler.cells[[r.label for r in board.rows].index(n)] for n in ("good", "weak"))
    assert [good[f"RULER {k}"].shown() for k in ("4k", "8k", "16k", "Avg", "wAvg (inc)", "wAvg (dec)", "Eff. length")] \
        == ["100.0", "90.0", "70.0", "86.7", "81.7", "91.7", "8k"]
    assert weak["RULER Eff. length"].shown() == "<4k†" and weak["RULER 8k"].value == 90.0
    # the weak model has no 16k run: its averages cover 2 of the 3 lengths, and say so
    assert weak["RULER Avg"].shown() == "85.0†" and "RULER: mean over 2 of 3 lengths" in weak["RULER Avg"].why
    md = export(board, "md")
    assert md.splitlines()[0].split("|")[1:4] == [" model   ", "   RULER 4k ", "   RULER 8k "]


def test_runs_join_into_one_row_per_model_evaluated_one_way(tmp_path):
    """Same weights (even at another path), mode, chat template and samples per item: one row;
    another chat template: a row of its own, labelled by it. Runs are found at any depth."""
    from harness.report.leaderboard import build
    from tests.test_run_status import edit_record

    root = tmp_path / "results"
    (name,) = write_results(root / "studies" / "s1", n_models=1, lengths=(4096, 8192), items=2)
    moved = write_run(root, "moved", {"tiny_kv": [100, 0]})
    twin = json.loads((root / "studies" / "s1" / f"{name}-lb" / "run.json").read_text())["model"]
    edit_record(moved, model={**twin, "path": "/elsewhere/copy-of-it"})
    edit_record(write_run(root, "templated", {"tiny_kv": [0, 0]}), model=twin, chat_template="on")
    board = build(root)
    assert [(row.label, len(row.runs)) for row in board.rows] == [
        (f"{name} (chat template task)", 5), (f"{name} (chat template on)", 1)]


def test_where_runs_overlap_the_row_reads_the_finished_whole_run(tmp_path):
    from harness.report.leaderboard import build
    from tests.test_run_status import edit_record

    same = {"weights_sha256": "f" * 64, "path": "models/m", "tokenizer_sha256": None, "tokenizer": "t"}
    edit_record(write_run(tmp_path, "full", {"tiny_kv": [100, 100, 0, 0]}), model=same)
    edit_record(write_run(tmp_path, "limited", {"tiny_kv": [100, 100]}), model=same, limit=2)
    edit_record(write_run(tmp_path, "stopped", {"tiny_kv": [100, 100, 100, 100]}), model=same, status="failed")
    (row,) = build(tmp_path).rows
    assert row.mean("tiny_kv") == (50.0, 4)
    (why,) = row.choices.values()
    assert why == ("tiny_kv: read from 20261128T000000Z-0000full; over 20261128T000000Z-0limited: the whole task "
                   "(full vs limit 2); over 20261128T000000Z-0stopped: finished (complete vs failed)")
    shutil.rmtree(tmp_path / "full")
    (row,) = build(tmp_path).rows
    assert row.mean("tiny_kv") == (100.0, 2)                         # a limited run beats a failed one
    assert list(row.choices.values()) == ["tiny_kv: read from 20261128T000000Z-0limited; over "
                                          "20261128T000000Z-0stopped: finished (complete vs failed)"]


def test_the_overview_exports_for_papers(results, capsys):
    from longact.cli import main

    assert main(["leaderboard", str(results), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == ["model,tiny suite Avg", "base,25.0†"]
    assert "# - base: tiny suite: mean over 2 of 4 tasks" in out
    assert main(["leaderboard", str(results), "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert "\\begin{tabular}{lr}" in out and "longact & 50.0\\textsuperscript{\\dag} \\\\" in out
    assert main(["leaderboard", str(results), "--format", "md"]) == 0
    assert "| random  |             0.0† |" in capsys.readouterr().out


def test_the_demos_task_and_tasks_of_no_benchmark_get_overview_columns(tmp_path):
    """tiny_passkey_far (outside the tiny group; the demo's RL task) is a column of its own beside
    the suite's average; a task no benchmark declares (an lm-eval task) gets one in "Other tasks"."""
    from harness.report.leaderboard import build, export

    write_run(tmp_path, "m", {"tiny_passkey_far": [100, 0], "tiny_kv": [100, 100], "lambada": [0, 100]})
    head = export(build(tmp_path), "md").splitlines()[0]
    assert [c.strip() for c in head.split("|")[1:-1]] == ["model", "tiny suite Avg", "tiny suite passkey_far",
                                                          "Other tasks lambada"]
