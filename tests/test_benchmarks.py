"""The benchmarks' one surface (tasks/benchmarks.py): its shape, training built from it (prompts the
evaluation sends, rewards that are the eval scorers), and no benchmark named outside tasks/."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tasks import benchmarks

ROOT = Path(__file__).resolve().parent.parent


def test_every_folder_with_tasks_is_a_benchmark_of_the_same_shape():
    folders = sorted(p.parent.name for p in (ROOT / "tasks").glob("*/*.yaml"))
    assert [b.name for b in benchmarks.all()] == sorted(set(folders))
    for bench in benchmarks.all():
        assert isinstance(bench, benchmarks.Benchmark) and bench.tasks and benchmarks.get(bench.name) is bench
        for task in bench.tasks:
            assert benchmarks.for_task(task) is bench
        for group, members in bench.groups.items():
            assert set(members) <= set(bench.tasks) and benchmarks.for_task(group) is bench
        assert (bench.score is None) == (not bench.options)
    assert {b.name for b in benchmarks.all() if b.score} == {"longbench_v2", "ruler", "infinitebench"}
    with pytest.raises(benchmarks.UserError, match="unknown benchmark 'nope'; known: infinitebench, longbench_v2"):
        benchmarks.get("nope")


def test_report_settings_come_from_the_benchmark():
    assert [s.label for s in benchmarks.report_for("longbench_v2_cot").splits] == [
        "Overall", "Easy", "Hard", "Short", "Medium", "Long"]
    assert benchmarks.report_for("ruler").group_field == "length"
    assert benchmarks.report_for("ruler_vt").splits == () and benchmarks.report_for("someone_elses_task").splits == ()
    # group membership: what the group YAML declares; lm-eval's `<group>_` naming for groups not ours
    assert benchmarks.group_members("tiny", ["tiny_kv", "other", "tiny_mc", "tinyx"]) == ["tiny_kv", "tiny_mc"]
    assert benchmarks.group_members("mine", ["mine_a", "tiny_kv"]) == ["mine_a"]


# One unit ---------------------------------------------------------------------------------------

def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_scored_files_give_fractions_per_item_and_percent_summaries(tmp_path):
    ruler = _write(tmp_path / "vt.jsonl", [{"pred": "A B", "outputs": ["A", "C"]}, {"pred": "A C", "outputs": ["A", "C"]}])
    ib = _write(tmp_path / "pk.jsonl", [{"prediction": "7", "ground_truth": ["7"]}, {"prediction": "8", "ground_truth": ["7"]}])
    lb = _write(tmp_path / "lb.jsonl", [{"difficulty": "easy", "length": "short", "answer": "A", "response": "The correct answer is (A)"},
                                        {"difficulty": "hard", "length": "long", "answer": "B", "response": "nothing"}])
    cases = [("ruler", ruler, {"task": "vt"}, "score", [0.5, 1.0], "ruler_vt"),
             ("infinitebench", ib, {"task": "passkey"}, "score", [1.0, 0.0], "infinitebench_passkey"),
             ("longbench_v2", lb, {}, "overall", [1.0, 0.0], "longbench_v2")]
    for name, path, given, key, per_item, task in cases:
        bench = benchmarks.get(name)
        scored = bench.score(path, **bench.options_from(given))
        assert (scored.task, scored.per_item) == (task, per_item)
        assert scored.summary[key] == pytest.approx(100 * sum(per_item) / len(per_item))
    lb_bench = benchmarks.get("longbench_v2")
    assert lb_bench.score(lb, **lb_bench.options_from({"compensated": True})).per_item == [1.0, 0.25]
    with pytest.raises(benchmarks.UserError, match=r"--task must be one of .*qa_1, qa_2 \(got 'nope'\)"):
        benchmarks.get("ruler").options_from({"task": "nope"})


def test_score_cli_flags_are_the_declared_options(tmp_path, capsys):
    from longact.cli import main

    f = _write(tmp_path / "qa_1.jsonl", [{"pred": "teal", "outputs": ["teal"]}, {"pred": "x", "outputs": ["amber"]}])
    assert main(["score", "ruler", str(f), "--task", "qa_1", "--save-run", str(tmp_path / "res")]) == 0
    assert capsys.readouterr().out == "qa_1: 50.00 (n=2, empty predictions: 0)\n"
    run = next((tmp_path / "res").iterdir())
    rows = [json.loads(line) for line in (run / "samples_ruler_qa_squad.jsonl").read_text().splitlines()]
    assert [r["metrics"]["score"] for r in rows] == [100.0, 0.0]           # fractions stored as percent
    with pytest.raises(SystemExit):                                         # LongBench v2's option, not RULER's
        main(["score", "ruler", str(f), "--task", "qa_1", "--compensated"])
    assert "--compensated" in capsys.readouterr().err


# Training reads the same surface -----------------------------------------------------------------

def test_longbench_training_prompt_is_the_eval_prompt():
    """RL trained on a LongBench v2 prompt the evaluation never sends (no instruction line, no
    <text> tags, no "Choices:"); now both come from one builder."""
    from tasks.longbench_v2 import utils
    from tasks.longbench_v2.benchmark import FIXTURE
    from training.data import DataConfig, load_prompts

    docs = list(utils.load_0shot(data_path=str(FIXTURE))["test"])
    prompts = load_prompts(DataConfig(source="longbench_mc", n=len(docs)))
    assert len(prompts) == len(docs) > 0
    for doc, p in zip(docs, prompts, strict=True):
        assert p.id == doc["_id"] and p.answers == [doc["answer"]]
        assert p.prompt == utils.doc_to_text(doc)
    assert prompts[0].prompt.startswith("Please read the following text and answer the question below.\n\n<text>\n")
    assert "\nChoices:\n(A) " in prompts[0].prompt


def test_qa_f1_reward_is_the_infinitebench_scorer():
    """The reward's own SQuAD F1 turned "don't" into `don t`; the scorer drops the apostrophe."""
    from tasks.infinitebench import scoring
    from training.rewards import REWARDS

    assert REWARDS["qa_f1"]("I don't know", ["i dont know"]) == 1.0
    for pred, golds in [("The cat's hat!", ["cats hat"]), ("rock-and-roll", ["rockandroll", "x"]), ("", ["a"])]:
        assert REWARDS["qa_f1"](pred, golds) == scoring.qa_f1(pred, golds)


@pytest.mark.parametrize("reward,task,doc,completion", [
    ("longbench_choice", "longbench_v2", {"answer": "B"}, "**The correct answer is (B)**"),
    ("longbench_choice", "longbench_v2", {"answer": "B"}, "B"),
    ("string_match_all", "ruler", {"id": "vt-4096-0", "outputs": ["VAR A\nB", "VAR C"]}, " VAR A\tB and VAR C "),
    ("string_match_part", "ruler", {"id": "qa_squad-4096-0", "outputs": ["teal\nblue", "x"]}, "teal\x0bblue"),
    ("qa_f1", "infinitebench", {"task": "longbook_qa_eng", "labels": ["Don't panic"]}, "dont panic!"),
])
def test_rewards_are_the_eval_scores(reward, task, doc, completion):
    """A reward is the eval task's `process_results` score / 100 for the same output (RULER's
    rewards skipped `postprocess_pred`, so control characters counted differently)."""
    import importlib

    from training.rewards import REWARDS

    utils = importlib.import_module(f"tasks.{task}.utils")
    metric = "acc" if task == "longbench_v2" else "score"
    answers = [doc["answer"]] if "answer" in doc else doc.get("outputs") or doc["labels"]
    assert REWARDS[reward](completion, answers) == pytest.approx(utils.process_results(doc, [completion])[metric] / 100)


def test_synthetic_prompts_are_rewarded_by_the_tiny_tasks_scorers():
    """The `synthetic` set (tiny passkey / kv prompts) was rewarded by RULER's substring match, so
    "1234512" for pass key 12345 earned 1 where tiny_passkey's first-integer match scores 0."""
    from tasks.tiny import utils
    from training.data import DataConfig, load_prompts
    from training.rewards import REWARDS

    prompts = load_prompts(DataConfig(source="synthetic", n=4))
    assert [p.reward for p in prompts] == ["tiny_passkey", "tiny_kv", "tiny_passkey", "tiny_kv"]
    results = {"tiny_passkey": utils.passkey_results, "tiny_kv": utils.kv_results}
    for p in prompts:
        gold = p.answers[0]
        for completion in (gold, f"{gold}12", f"x{gold}", f"The value is {gold}.", "nothing"):
            expected = results[p.reward]({"answer": p.answers}, [completion])["score"] / 100
            assert REWARDS[p.reward](completion, p.answers) == expected
    passkey = prompts[0]
    assert REWARDS[passkey.reward](passkey.answers[0] + "12", passkey.answers) == 0.0


# Nothing outside tasks/ names a benchmark -------------------------------------------------------

ALLOWED_NAMES = {
    ("training/data.py", "ruler_tasks"),        # the trainer's config key (data.ruler_tasks), passed on as is
    ("longact/setup_verbs.py", "tasks.ruler.essays"),   # `longact data ruler-essays` (a download verb, not a report)
    ("longact/setup_verbs.py", "tasks.ruler.sources"),
    ("longact/setup_verbs.py", "cmd_ruler_essays"),     # that verb's handler
}


def _names(path: Path, strings: bool):
    """Identifiers, imported modules and (with `strings`) string constants other than docstrings
    (of modules, functions, classes and attributes: strings standing alone as statements)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.arg)):
            yield getattr(node, "name", None) or node.arg
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def test_nothing_outside_tasks_names_a_benchmark():
    """Benchmark knowledge lives in tasks/<bench>/; harness/ and training/ (code and strings) and
    the app (code; its help text may give examples) read the surface instead."""
    names = [b.name for b in benchmarks.all() if b.name != "tiny"] + ["longbench"]
    found = []
    for pkg, strings in (("harness", True), ("training", True), ("longact", False)):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            found += [(rel, n) for n in set(_names(path, strings))
                      if any(b in n.lower() for b in names) and (rel, n) not in ALLOWED_NAMES]
    assert found == []


def test_every_task_and_group_is_described_and_its_needs_are_keys_its_loader_reads():
    """`longact tasks` shows one line per task and group, and how to run offline: each need's
    `--metadata` key must be one the tasks it names actually read."""
    import inspect

    from harness.run.tasks import TaskCatalog

    catalog = TaskCatalog()
    for bench in benchmarks.all():
        for name in (*bench.tasks, *bench.groups):
            assert bench.descriptions.get(name, "").strip(), f"{name}: no description in tasks/{bench.name}/benchmark.py"
            assert "\n" not in bench.descriptions[name]
        assert set(bench.descriptions) <= {*bench.tasks, *bench.groups}
        for need in bench.needs:
            assert set(need.tasks) <= set(bench.tasks)
            for task in need.tasks or bench.tasks:
                (loader, _), = catalog.loaders([task])
                assert need.key in inspect.signature(loader).parameters, (task, need.key)
