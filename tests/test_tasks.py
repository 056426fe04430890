"""Every YAML under tasks/ loads through lm-eval's TaskManager; fixtures match their generator."""


import pytest

from harness.errors import UserError
from harness.run.tasks import TASKS_DIR, check_task_names, task_manager
from tests.conftest import offline_metadata


def _yaml_tasks():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    names = []
    for p in sorted(TASKS_DIR.rglob("*.yaml")):
        cfg = yaml.load(p.read_text(), Loader=Loader) or {}
        name = cfg.get("group") or cfg.get("task")
        if name:
            names.append((name, offline_metadata(p.parent)))
    return names


def test_there_are_task_yamls():
    names = {n for n, _ in _yaml_tasks()}
    assert {"tiny", "tiny_mc", "tiny_niah", "tiny_passkey", "tiny_kv"} <= names
    assert {"longbench_v2", "longbench_v2_cot", "longbench_v2_nocontext"} <= names
    assert {"ruler", "ruler_niah_single_1", "ruler_vt", "ruler_cwe", "ruler_fwe", "ruler_qa_squad"} <= names
    assert {"infinitebench", "infinitebench_passkey", "infinitebench_math_calc", "infinitebench_code_debug"} <= names


@pytest.mark.parametrize("name,metadata", _yaml_tasks(), ids=[n for n, _ in _yaml_tasks()])
def test_every_yaml_loads(name, metadata, tiny_model_dir):
    # The runner always passes the evaluated tokenizer and window; so do we.
    tm = task_manager({"tokenizer": str(tiny_model_dir), "max_model_len": 2048, **metadata})
    loaded = tm.load([name])
    assert loaded["tasks"], name
    for task in loaded["tasks"].values():
        docs = list(task.eval_docs)
        assert docs, f"{name}: no documents"
        assert task.config.metadata.get("version") is not None, f"{name}: no metadata.version"
        assert task.config.metadata.get("endpoint") in ("chat", "completion"), f"{name}: endpoint"
        assert isinstance(task.doc_to_text(docs[0]), str)
        md = task.config.metadata
        if "gen_budget" in md:  # the truncation budget must match what the task generates
            assert md["gen_budget"] == task.config.generation_kwargs["max_gen_toks"], name


def test_tiny_fixtures_match_generator():
    from tasks.tiny import generate

    for name, rows in generate.generate().items():
        assert (generate.DATA_DIR / name).read_text(encoding="utf-8") == generate.serialize(rows), name


def test_tiny_needle_lengths_in_tiny_tokens(tiny_tokenizer):
    import json

    from tasks.tiny.utils import niah_prompt

    rows = [json.loads(l) for l in (TASKS_DIR / "tiny" / "data" / "tiny_niah.jsonl").read_text().splitlines()]
    for r in rows:
        n = len(tiny_tokenizer(niah_prompt(r))["input_ids"])
        assert 0.85 * r["length"] <= n <= r["length"], (r["id"], n)


def test_unknown_task_lists_close_matches():
    with pytest.raises(UserError, match="unknown task 'tiny_nia'.*tiny_niah"):
        check_task_names(task_manager(), ["tiny_nia"])


def test_tiny_scorers_through_task_hooks():
    from tasks.tiny import utils

    doc = {"answer": "B"}
    assert utils.mc_results(doc, ["**The correct answer is (B)**"]) == {"score": 100.0, "null_rate": 0.0}
    assert utils.mc_results(doc, ["B"]) == {"score": 0.0, "null_rate": 100.0}
    assert utils.niah_results({"outputs": ["123"]}, [" 123."])["score"] == 100.0
    assert utils.passkey_results({"answer": ["55"]}, ["55 is it"])["score"] == 100.0
    assert utils.kv_results({"answer": ["k-1"]}, ["k-12"])["score"] == 0.0


def test_catalog_loads_with_runtime_metadata(tiny_model_dir):
    """One index per run: names are checked first, tasks load later with the runtime metadata
    (this guards the lm-eval internals TaskCatalog.load relies on)."""
    from harness.run.tasks import TaskCatalog

    catalog = TaskCatalog()
    with pytest.raises(UserError, match="tiny_nia"):
        catalog.check_names(["tiny_nia"])
    loaded = catalog.load(["tiny"], {"tokenizer": str(tiny_model_dir), "max_model_len": 1234, "extra": "x"})
    assert set(loaded["tasks"]) == {"tiny_mc", "tiny_niah", "tiny_passkey", "tiny_kv"}
    for task in loaded["tasks"].values():
        assert task.config.metadata["max_model_len"] == 1234 and task.config.metadata["extra"] == "x"
    again = catalog.load(["tiny_mc"], {"tokenizer": str(tiny_model_dir), "max_model_len": 999})
    assert again["tasks"]["tiny_mc"].config.metadata["max_model_len"] == 999


def test_managers_share_one_scan_of_tasks_but_not_their_metadata(tiny_model_dir):
    """tasks/ is scanned once per process (a sweep evaluates many checkpoints); a manager's
    metadata never reaches another's tasks, including one built before it."""
    first = task_manager({"tokenizer": str(tiny_model_dir), "max_model_len": 1111})
    second = task_manager({"tokenizer": str(tiny_model_dir), "max_model_len": 2222})
    assert first._index is second._index
    a = second.load(["tiny_mc"])["tasks"]["tiny_mc"]
    b = first.load(["tiny_mc"])["tasks"]["tiny_mc"]
    c = task_manager({"tokenizer": str(tiny_model_dir)}).load(["tiny_mc"])["tasks"]["tiny_mc"]
    assert (a.config.metadata["max_model_len"], b.config.metadata["max_model_len"]) == (2222, 1111)
    assert "max_model_len" not in c.config.metadata
