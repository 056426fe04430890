"""`--shard K/N` and `longact merge`: the partition (pure), then N real shard runs of the tiny
suite and one RULER task on the skilled tiny model, merged, against one unsharded run of the
same items; then the shards that must be refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.run.shard import Shard, balanced_partition, restrict

ROOT = Path(__file__).resolve().parent.parent
SKILLED = ROOT / "assets" / "tiny-qwen3-skilled"


# The partition ------------------------------------------------------------------------------

def test_partition_by_hand():
    # Longest first onto the lightest part: a0 (10) -> 0; a1 (7) -> 1; b0 (6) -> 1 (7 < 10);
    # a2 (5) -> 0 (10 < 13); b1 (4) -> 1 (13 < 15). Totals 15 and 17.
    weights = {"a": [(0, 10), (1, 7), (2, 5)], "b": [(0, 6), (1, 4)]}
    assert balanced_partition(weights, 2) == [{"a": [0, 2]}, {"a": [1], "b": [0, 1]}]


def test_partition_covers_every_item_once_and_balances_tokens():
    import random

    rng = random.Random(0)
    weights = {f"t{t}": [(i, rng.randint(100, 20_000)) for i in range(rng.randint(1, 40))] for t in range(5)}
    total = sum(w for pairs in weights.values() for _, w in pairs)
    biggest = max(w for pairs in weights.values() for _, w in pairs)
    for n in (1, 2, 3, 7):
        parts = balanced_partition(weights, n)
        assert parts == balanced_partition(weights, n)  # the same partition in every shard's process
        for task, pairs in weights.items():
            got = sorted(i for part in parts for i in part.get(task, []))
            assert got == [i for i, _ in pairs]
        loads = [sum(dict(weights[t])[i] for t, ids in part.items() for i in ids) for part in parts]
        assert max(loads) - min(loads) <= biggest, (n, loads)
        assert max(loads) <= total / n + biggest


def test_shard_flag_parsing():
    assert str(Shard.parse(" 2 / 4 ")) == "2/4"
    for bad in ("0/4", "5/4", "2", "a/b", "1/0"):
        with pytest.raises(UserError, match="--shard"):
            Shard.parse(bad)


def test_a_shard_without_items_of_a_task_drops_it_and_an_emptied_group():
    class Group:
        def __init__(self, *children):
            self.children = list(children)

        def pop(self, name):
            if name in self.children:
                self.children.remove(name)

    suite, other = Group("a", "b"), Group("c")
    loaded = {"tasks": {"a": 1, "b": 2, "c": 3}, "groups": {"suite": suite, "other": other},
              "group_map": {"suite": ["a", "b"], "other": ["c"]}}
    restrict(loaded, {"a": [0], "b": []})
    assert list(loaded["tasks"]) == ["a"]
    assert loaded["group_map"] == {"suite": ["a"]} and list(loaded["groups"]) == ["suite"] and suite.children == ["a"]


# Real shards, merged ----------------------------------------------------------------------------

TASKS = ["tiny", "ruler_niah_single_1"]
N = 3


def ruler_metadata() -> dict:
    from tests.conftest import offline_metadata

    return {**offline_metadata(ROOT / "tasks" / "ruler"), "num_samples": 8, "lengths": [1024]}


def eval_config(out: Path, run_id: str, shard: str | None = None, **run):
    from harness.run.config import EvalConfig, RunConfig

    return EvalConfig(model=str(SKILLED), max_model_len=2048, backend="hf",
                      run=RunConfig(tasks=list(TASKS), task_metadata=ruler_metadata(), output_dir=str(out), run_id=run_id,
                                    shard=shard, progress=False, **run))


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """N shard runs and one unsharded run of the same command, each in its own results folder
    (no shared request cache: every answer is computed where it is recorded)."""
    from harness.run.runner import run_eval

    root = tmp_path_factory.mktemp("shards")
    shards = [run_eval(eval_config(root / f"s{k}", f"shard-{k}", f"{k}/{N}")) for k in range(1, N + 1)]
    whole = run_eval(eval_config(root / "whole", "whole"))
    return root, shards, whole


# Fields that describe how and when a run went, not what it found.
RUN_SPECIFIC = {"run_id", "started_at", "finished_at", "wall_time_s", "command", "host", "shard", "merged_from", "code"}


def comparable(run_dir: Path) -> dict:
    data = json.loads((run_dir / "run.json").read_text())
    return {k: v for k, v in data.items() if k not in RUN_SPECIFIC}


@pytest.mark.slow
def test_merged_shards_equal_one_unsharded_run(sharded, tmp_path):
    from harness.run.merge import merge_runs

    root, shards, whole = sharded
    records = [json.loads((s / "run.json").read_text()) for s in shards]
    counts = [sum(map(len, r["shard"]["items"].values())) for r in records]
    assert sum(counts) == sum(records[0]["shard"]["of"].values()) and min(counts) > 0
    tokens = [r["shard"]["prompt_tokens"] for r in records]
    assert max(tokens) - min(tokens) < 0.1 * max(tokens), tokens  # balanced in prompt tokens

    merged = merge_runs(list(reversed(shards)), output_dir=tmp_path, run_id="merged")
    a, b = comparable(merged), comparable(whole)
    assert a == b
    # Not a comparison of zeros: the skilled model gets some items and misses others.
    scores = [m["value"] for t in b["tasks"].values() for m in t["metrics"].values()]
    assert any(0 < s < 100 for s in scores), scores
    for task in b["tasks"]:
        assert (merged / f"samples_{task}.jsonl").read_bytes() == (whole / f"samples_{task}.jsonl").read_bytes(), task
    merged_record = json.loads((merged / "run.json").read_text())
    assert [m["shard"] for m in merged_record["merged_from"]] == [f"{k}/{N}" for k in range(1, N + 1)]
    assert merged_record["shard"] is None and merged_record["status"] == "complete"


@pytest.mark.slow
def test_a_shard_says_what_it_holds_in_tables(sharded):
    from harness.report.tables import run_table

    _, shards, _ = sharded
    table = run_table(shards[0])
    assert f"shard 1/{N}" in table and "longact merge" in table


def _copy(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


def _edit(run_dir: Path, name: str, change) -> None:
    path = run_dir / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.slow
def test_merge_refuses_shards_that_do_not_make_one_run(sharded, tmp_path):
    from harness.run.merge import merge_runs

    _, (s1, s2, s3), whole = sharded
    with pytest.raises(UserError, match=f"shard\\(s\\) 3/{N} missing"):
        merge_runs([s1, s2], output_dir=tmp_path)
    with pytest.raises(UserError, match="given more than once"):
        merge_runs([s1, s2, s2, s3], output_dir=tmp_path)
    with pytest.raises(UserError, match="is not a shard"):
        merge_runs([s1, s2, whole], output_dir=tmp_path)

    seed = _copy(s3, tmp_path / "seed")
    _edit(seed, "config.json", lambda c: c["run"].update(seed=7))
    with pytest.raises(UserError, match=r"different settings \(run.seed\)"):
        merge_runs([s1, s2, seed], output_dir=tmp_path)

    model = _copy(s3, tmp_path / "model")
    _edit(model, "run.json", lambda r: r["model"].update(weights_sha256="0" * 64))
    with pytest.raises(UserError, match="differ in model weights"):
        merge_runs([s1, s2, model], output_dir=tmp_path)

    overlap = _copy(s3, tmp_path / "overlap")
    first_task, first_ids = next(iter(json.loads((s1 / "run.json").read_text())["shard"]["items"].items()))
    _edit(overlap, "run.json", lambda r: r["shard"]["items"].setdefault(first_task, []).append(first_ids[0]))
    with pytest.raises(UserError, match=f"{first_task} item {first_ids[0]} is in two shards"):
        merge_runs([s1, s2, overlap], output_dir=tmp_path)

    gap = _copy(s3, tmp_path / "gap")
    _edit(gap, "run.json", lambda r: next(iter(r["shard"]["items"].values())).pop())
    with pytest.raises(UserError, match="are in no shard"):
        merge_runs([s1, s2, gap], output_dir=tmp_path)

    stopped = _copy(s3, tmp_path / "stopped")
    _edit(stopped, "run.json", lambda r: r.update(status="interrupted"))
    with pytest.raises(UserError, match="interrupted, not complete: rerun its command"):
        merge_runs([s1, s2, stopped], output_dir=tmp_path)
    assert not (tmp_path / "merged").exists()
