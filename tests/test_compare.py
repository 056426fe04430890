"""Comparison tables on fixture result files: golden Markdown, pairing refusal, benchmark columns."""

import json

import pytest

from harness.errors import UserError
from harness.records.schema import CodeInfo, Metric, ModelInfo, RunRecord, ServingInfo, TaskResult


def write_run(root, name, scores: dict, config_hash="c" * 64, docs=None, window=2048, group=("tiny", "tiny_")):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    tasks = {}
    for task, values in scores.items():
        rows = [{"doc_id": i, "prompt_hash": "h", "prompt_tokens": 1, "truncated": False, "response": "", "filtered": "",
                 "target": "", "metrics": {"score": v}, "doc": (docs or {}).get(task, [{}] * len(values))[i]}
                for i, v in enumerate(values)]
        (run_dir / f"samples_{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        tasks[task] = TaskResult(version="1.0", config_hash=config_hash, dataset_fingerprint="d" * 64, endpoint="chat",
                                 generation_kwargs={"max_gen_toks": 8}, n_samples=len(values),
                                 metrics={"score": Metric(sum(values) / len(values), None, len(values))},
                                 samples_file=f"samples_{task}.jsonl")
    groups = {group[0]: {"score": Metric(0.0, None, 0)}} if group and any(t.startswith(group[1]) for t in scores) else {}
    rec = RunRecord(run_id=f"20261128T000000Z-{name:0>8}", status="complete",
                    model=ModelInfo(path=f"models/{name}", weights_sha256=None, tokenizer_sha256=None, tokenizer="t"),
                    serving=ServingInfo(backend="server", max_model_len=window), code=CodeInfo(harness_version="0.1.0"),
                    tasks=tasks, groups=groups)
    (run_dir / "run.json").write_text(json.dumps(rec.to_dict()))
    return run_dir


GOLDEN = """baseline: base · scores in percent · delta = run − baseline on shared items

| run     |   tiny_kv |   tiny_passkey |   tiny avg |
|:--------|----------:|---------------:|-----------:|
| base    |       0.0 |           50.0 |       25.0 |
| longact |      25.0 |           75.0 |       50.0 |

| run     | column       |   delta |        95% CI |   detectable |    p |        test |   n |
|:--------|:-------------|--------:|--------------:|-------------:|-----:|------------:|----:|
| longact | tiny_kv      |   +25.0 | [+0.0, +75.0] |           ±∞ |    1 |     mcnemar |   4 |
| longact | tiny_passkey |   +25.0 | [+0.0, +75.0] |           ±∞ |    1 |     mcnemar |   4 |
| longact | tiny avg     |   +25.0 | [+0.0, +62.5] |           ±∞ | 0.51 | permutation |   8 |

detectable: the smallest difference these items (or seeds) could have shown with 80% power at two-sided 5%, from how often the runs disagree (harness/report/power.py); a smaller |delta| is not evidence of no effect"""
# Hand check of "detectable": a task has 1 of 4 items discordant, so under no effect the mean
# difference has variance 100^2 * (1/4) / 4 = 625, and 80% power needs d with
# 1.96 * 25 + 0.8416 * sqrt(625 - d^2 / 4) = d, d = 49.95; but one discordant item in four can move
# the mean by 25 points at most, so no effect these items allow is detectable: ±∞ (the average's
# 42.5 needed against its 25 possible, likewise).
# Hand check of the last row: each task has one item that improved (+100 of 4 items). A resample's
# mean is 12.5 * S with S ~ Bin(8, 1/4) (items improving drawn in both tasks): P(S <= 4) = 0.973,
# P(S <= 5) = 0.996, so the 97.5% point is 62.5. The two tasks' sign flips give |mean| 25 or 0,
# each with probability 1/2: exact p = 0.5.


def test_compare_table_golden(tmp_path):
    from harness.report.compare import compare, render

    base = write_run(tmp_path, "base", {"tiny_passkey": [100, 0, 0, 100], "tiny_kv": [0, 0, 0, 0]})
    other = write_run(tmp_path, "longact", {"tiny_passkey": [100, 100, 0, 100], "tiny_kv": [100, 0, 0, 0]})
    result = compare([str(base), str(other)])
    assert render(result) == GOLDEN
    rows = {d.column: d for d in result.deltas}
    assert rows["tiny_passkey"].delta == 25.0 and rows["tiny_passkey"].p == 1.0   # one discordant pair
    assert rows["tiny avg"].delta == 25.0 and rows["tiny avg"].test == "permutation"
    assert render(result, "csv").startswith("run,tiny_kv,tiny_passkey,tiny avg\n")
    assert "<table" in render(result, "html") and "\\begin{tabular}" in render(result, "latex")


def test_compare_refuses_runs_not_run_the_same_way(tmp_path):
    from harness.report.compare import compare

    base = write_run(tmp_path, "base", {"tiny_passkey": [100, 0]})
    other = write_run(tmp_path, "other", {"tiny_passkey": [100, 100]}, config_hash="e" * 64, window=4096)
    with pytest.raises(UserError, match=r"(?s)not run the same way.*window: 2048 vs 4096.*tiny_passkey: config_hash cccc"):
        compare([str(base), str(other)])
    forced = compare([str(base), str(other)], force=True)
    assert forced.warnings and forced.deltas


def _edit_samples(run_dir, task, edit):
    f = run_dir / f"samples_{task}.jsonl"
    rows = [json.loads(line) for line in f.read_text().splitlines()]
    f.write_text("".join(json.dumps(edit(r)) + "\n" for r in rows))


def test_compare_refuses_items_truncated_or_prompted_differently(tmp_path):
    from harness.report.compare import compare

    base = write_run(tmp_path, "base", {"tiny_passkey": [100, 0, 0]})
    other = write_run(tmp_path, "other", {"tiny_passkey": [100, 100, 0]})
    _edit_samples(other, "tiny_passkey", lambda r: {**r, "truncated": r["doc_id"] == 1,
                                                    "prompt_hash": "x" if r["doc_id"] == 2 else r["prompt_hash"]})
    with pytest.raises(UserError, match=r"(?s)tiny_passkey: 1 of 3 shared items truncated in one run only: doc_id 1"
                                        r".*tiny_passkey: 1 of 3 shared items sent different prompts \(prompt_hash\): doc_id 2"):
        compare([str(base), str(other)])
    assert len(compare([str(base), str(other)], force=True).warnings) == 2
    _edit_samples(other, "tiny_passkey", lambda r: {**r, "truncated": False, "prompt_hash": "h"})
    assert compare([str(base), str(other)]).warnings == []        # same prompts again: paired silently


def test_compare_refuses_another_truncation_policy(tmp_path):
    from harness.report.compare import compare

    base = write_run(tmp_path, "base", {"tiny_passkey": [100, 0]})
    other = write_run(tmp_path, "other", {"tiny_passkey": [100, 100]})
    data = json.loads((other / "run.json").read_text())
    data["truncation"] = {"policy": "left", "max_model_len": 2048}
    (other / "run.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"truncation policy: \{\} vs \{'policy': 'left'\}"):
        compare([str(base), str(other)])


def test_longbench_splits_and_ruler_lengths(tmp_path):
    from harness.report.compare import compare

    docs = [{"difficulty": d, "length": l} for d, l in (("easy", "short"), ("hard", "short"), ("hard", "long"), ("easy", "medium"))]
    base = write_run(tmp_path, "base", {"longbench_v2": [100, 0, 0, 100]}, docs={"longbench_v2": docs}, group=None)
    res = compare([str(base)])
    values = res.rows[0].values
    assert values["longbench_v2 Overall"] == (50.0, 4)
    assert values["longbench_v2 Easy"] == (100.0, 2) and values["longbench_v2 Hard"] == (0.0, 2)
    assert values["longbench_v2 Long"] == (0.0, 1) and values["longbench_v2 Medium"] == (100.0, 1)


def test_missing_samples_file_is_a_clear_error(tmp_path):
    from harness.report.compare import compare

    base = write_run(tmp_path, "base", {"tiny_passkey": [100]})
    (base / "samples_tiny_passkey.jsonl").unlink()
    with pytest.raises(UserError, match="samples_tiny_passkey.jsonl: missing"):
        compare([str(base)])


def test_group_columns_follow_the_recorded_members(tmp_path):
    from harness.records.io import load_run
    from harness.report.compare import columns

    run = write_run(tmp_path, "base", {"tiny_kv": [100, 0], "tiny_mc": [0, 0], "other_task": [100, 100]})
    rec = load_run(run)
    by_prefix = {c.name: [t for t, _ in c.parts] for c in columns(rec)}  # older runs: the name prefix
    assert by_prefix["tiny avg"] == ["tiny_kv", "tiny_mc"] and "other_task" in by_prefix
    rec.group_members = {"tiny": ["tiny_kv", "other_task"]}  # what lm-eval resolved, recorded in run.json
    recorded = {c.name: [t for t, _ in c.parts] for c in columns(rec)}
    assert recorded["tiny avg"] == ["other_task", "tiny_kv"] and "tiny_mc" in recorded


def test_tasks_only_another_run_has_get_a_column(tmp_path):
    from harness.report.compare import compare, render

    base = write_run(tmp_path, "base", {"tiny_kv": [0, 100]})
    other = write_run(tmp_path, "longact", {"tiny_kv": [100, 100], "tiny_mc": [100, 0]})
    res = compare([str(base), str(other)])
    assert res.columns[:2] == ["tiny_kv", "tiny avg"] and "tiny_mc" in res.columns
    assert res.rows[0].values["tiny_mc"] == (None, 0) and res.rows[1].values["tiny_mc"] == (50.0, 2)
    assert {d.column for d in res.deltas} == {"tiny_kv", "tiny avg"}   # nothing to pair tiny_mc with
    assert "–" in render(res)


def test_one_markdown_renderer_for_every_table():
    """`longact show`, `longact compare`, the experiment tables and the leaderboard all render
    through `tables.markdown` (tabulate's pipe layout); cells stay text, indents are kept."""
    from harness.report.tables import Column, markdown

    cols = [Column("run"), Column("x", align="right"), Column("note")]
    rows = [["a", "1.0", "ok"], ["bb", "12.5", "–"], ["  bb k=1", "007", " "]]
    assert markdown(cols, rows).splitlines() == [
        "| run      |    x | note   |", "|:---------|-----:|:-------|", "| a        |  1.0 | ok     |",
        "| bb       | 12.5 | –      |", "|   bb k=1 |  007 |        |"]
    assert markdown(cols, []).splitlines() == ["| run   | x   | note   |", "|-------|-----|--------|"]
    with pytest.raises(ValueError, match="every row needs 3 cells"):
        markdown(cols, [["a", "1.0"]])


def test_cells_on_a_generated_essay_haystack_are_marked_everywhere(tmp_path, capsys):
    """RULER essay-haystack tasks built on the generated corpus are not the published benchmark:
    show, compare and the leaderboard mark their cells and say why."""
    from harness.records.io import load_run
    from harness.report.compare import compare, render
    from harness.report.leaderboard import build, markdown
    from harness.report.tables import MARK, run_table
    from tasks.ruler.sources import GENERATED_ESSAYS

    dirs = []
    for name in ("base", "other"):
        run_dir = write_run(tmp_path, name, {"ruler_niah_single_2": [100, 0], "ruler_niah_single_1": [0, 100]}, group=None)
        rec = load_run(run_dir)
        rec.tasks["ruler_niah_single_2"].data_sources = [
            {"sizing": "official", "sources": [{"kind": "essay", "origin": f"{GENERATED_ESSAYS} (test)"}]}]
        rec.tasks["ruler_niah_single_1"].data_sources = [
            {"sizing": "official", "sources": [{"kind": "noise", "origin": "RULER noise sentence"}]}]
        (run_dir / "run.json").write_text(json.dumps(rec.to_dict()))
        dirs.append(run_dir)
    shown = run_table(dirs[0])
    assert "not comparable with published numbers" in shown and "ruler_niah_single_2:" in shown
    table = render(compare([str(d) for d in dirs]))
    head = table.split("\n\n")[1]
    assert f"50.0{MARK}" in head and "ruler_niah_single_1" in head
    assert table.count("ruler_niah_single_2:") == 2 and "ruler_niah_single_1:" not in table
    board = markdown(build(tmp_path))
    assert f"50.0{MARK}" in board and "ruler_niah_single_2:" in board


def test_the_demo_prints_each_checkpoints_weight_hash(tmp_path):
    """Two machines can only compare the demo's scores where they trained the same weights: the
    demo names each evaluated checkpoint with its weights' hash (from run.json)."""
    from longact.demo import checkpoint_hashes

    runs = {}
    for name, digest in (("base", "a" * 64), ("longact", "b" * 64)):
        run_dir = write_run(tmp_path, name, {"tiny_kv": [1.0]})
        rec = json.loads((run_dir / "run.json").read_text())
        rec["model"].update(path=f"runs/demo/{name}/seed-0/step-12", weights_sha256=digest)
        (run_dir / "run.json").write_text(json.dumps(rec))
        runs[f"demo-{name}"] = str(run_dir)
    text = checkpoint_hashes(runs)
    assert "| demo-base    | base/seed-0/step-12    | aaaaaaaaaaaaaaaa |" in text, text
    assert "| demo-longact | longact/seed-0/step-12 | bbbbbbbbbbbbbbbb |" in text, text
