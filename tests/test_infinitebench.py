"""InfiniteBench tasks: official prompts, truncation, row validation, fixtures end to end."""

import hashlib
import json
from pathlib import Path

import pytest

from tasks.data_io import DataError
from tasks.infinitebench import fixtures, prompts, utils

FIXTURE = Path(__file__).resolve().parent.parent / "tasks" / "infinitebench" / "data" / "fixture"
# SHA-256 of each template in OpenBMB/InfiniteBench src/prompt.py::gpt4_templates (commit 88b3daa6).
OFFICIAL_SHA = {
    "passkey": "a1d265268f61d448425d7bc1193f7be3adddbdf24e9a439013c47aeced7d25ac",
    "number_string": "7f84f8637ed441f6471fec8299e9a72c70957d6251f5fcdc11b9dde20bf5c08f",
    "kv_retrieval": "afa97419dd69cd749842c629df9555857891cab7f7d794fe1c5c904da23d2515",
    "longbook_qa_eng": "3d0b2296b8712aaa5cae7cf466c26a97e150fc127e56bd681ccf3284978577bb",
    "longbook_choice_eng": "7df117e8c610080b33e372b84964300d4b1c208c934fa9c7ba95194c19330716",
    "longbook_sum_eng": "73463436d5d11a9a73af4f1c08551b2641c51018f1077c9716cd2499bbb2efb5",
    "longbook_qa_chn": "751d02a1547551de554110d994ed46cf0225f5b84e819f38475616d951ab9df5",
    "math_find": "df2334891e94023ef2eb94f6ca9632e59b31075b0fd5eef9f7e26d4de8ad3a43",
    "math_calc": "35f11b1c997f869956287e0b54ce492fded10df0af340a95569935f69cff078b",
    "code_run": "e566fbaa9fa7dbcbeb3c6ec70ae09894a0410f73979cad510e06105dafeeff8a",
    "code_debug": "94ffaeb0375fe01b1e1d49b43e458b80a7981f0e33f09f1b1b1a02513996a88b",
    "longdialogue_qa_eng": "f6dadd7709f11572ba0338b7cd9de636a7094fe9aeef902ceb3d5c869089185f",
}
MATH_CALC_SYSTEM_SHA = "63ab8ca3b783bf1b64193f3f85379d498cbd735449cf4677fcc1b96f7d81f18a"


def test_templates_and_system_prompts_are_official():
    assert {k: hashlib.sha256(v.encode()).hexdigest() for k, v in prompts.TEMPLATES.items()} == OFFICIAL_SHA
    assert hashlib.sha256(prompts.MATH_CALC_SYSTEM.encode()).hexdigest() == MATH_CALC_SYSTEM_SHA
    assert prompts.MAX_NEW_TOKENS["passkey"] == 6 and prompts.MAX_NEW_TOKENS["math_calc"] == 30000


def test_fixtures_match_their_generator():
    for task, items in fixtures.generate().items():
        assert (FIXTURE / f"{task}.jsonl").read_text(encoding="utf-8") == fixtures.serialize(items), task


def _row(task, i=0):
    return utils.load_rows(task, str(FIXTURE))[i]


def test_prompts_follow_create_prompt():
    run = _row("code_run")
    p = prompts.build_prompt("code_run", run)
    call = run["input"].split("value of ")[1]
    assert f"There is a function called named {call.split('(')[0]}." in p and f"return value of {call}." in p
    find = prompts.build_prompt("math_find", _row("math_find"))
    assert find.startswith("What is the largest number in the following list?\n\n[")
    assert prompts.build_prompt("math_calc", _row("math_calc")) == _row("math_calc")["context"]
    choice = prompts.build_prompt("longbook_choice_eng", _row("longbook_choice_eng"))
    assert "\nA. the mill\nB. the harbor\nC. the orchard\nD. the tower" in choice
    assert prompts.labels("longbook_choice_eng", _row("longbook_choice_eng")) == ["the tower", "D"]
    assert prompts.chat_prefix("passkey") == [{"role": "system", "content": "You are a helpful assistant"}]
    assert [m["role"] for m in prompts.chat_prefix("math_calc")] == ["system", "user", "system"]


def test_truncation_keeps_the_official_head_and_tail(tiny_tokenizer):
    docs = utils.load("passkey", data_dir=str(FIXTURE), tokenizer=tiny_tokenizer, max_length=41)["test"]
    for d in docs:
        full = prompts.build_prompt("passkey", d)
        ids = tiny_tokenizer(full)["input_ids"]
        assert d["_truncated"] and d["_original_tokens"] == len(ids)
        assert d["_prompt"] == tiny_tokenizer.decode(ids[:20] + ids[-21:])  # m//2 head, ceil(m/2) tail
    roomy = utils.load("passkey", data_dir=str(FIXTURE), tokenizer=tiny_tokenizer, max_model_len=200_000)["test"]
    assert not any(d["_truncated"] for d in roomy)
    assert roomy[0]["_max_length"] == 127_000


def _official_create_msgs_prompt(tok, prompt):
    """OpenBMB/InfiniteBench src/eval_utils.py::create_msgs (the GPT-4 family), restated: encode
    the filled prompt, truncate_input(tokens, 128_000 - 1000, "middle") (keep tokens[:m//2] and
    tokens[-m//2:] when longer), decode."""
    ids, m = tok.encode(prompt), 128_000 - 1000
    if len(ids) > m:
        ids = ids[: m // 2] + ids[-m // 2:]
    return tok.decode(ids)


def test_default_cut_is_the_gpt4_familys_127000_tokens(tiny_tokenizer, tmp_path):
    row = {"id": 0, "context": " ".join(f"w{i}" for i in range(70_000)), "input": "What is the pass key?",
           "answer": ["71432"], "options": []}
    (tmp_path / "passkey.jsonl").write_text(json.dumps(row) + "\n")
    doc = utils.load("passkey", data_dir=str(tmp_path), tokenizer=tiny_tokenizer, max_model_len=131_072)["test"][0]
    full = prompts.build_prompt("passkey", row)
    assert doc["_original_tokens"] == len(tiny_tokenizer.encode(full)) > 131_072 - 6  # the old default kept more
    assert doc["_truncated"] and doc["_max_length"] == 127_000
    assert doc["_prompt"] == _official_create_msgs_prompt(tiny_tokenizer, full)
    sources = json.loads(doc["_sources"])
    assert sources["truncation"]["max_length"] == 127_000 and "official GPT-4-family cut" in sources["truncation"]["rule"]
    # A window too small for the official cut: what it leaves after the template and the budget.
    small = utils.load("math_calc", data_dir=str(FIXTURE), tokenizer=tiny_tokenizer, max_model_len=131_072)["test"][0]
    assert small["_max_length"] < 131_072 - 30_000 and "131072-token window" in json.loads(small["_sources"])["truncation"]["rule"]
    forced = utils.load("passkey", data_dir=str(FIXTURE), tokenizer=tiny_tokenizer, max_length=128_000)["test"][0]
    assert forced["_max_length"] == 128_000 and json.loads(forced["_sources"])["truncation"]["rule"] == "metadata max_length"


@pytest.mark.parametrize("mutate,field,message", [
    (lambda r: r.pop("context"), "context", "missing"),
    (lambda r: r.update(id="7"), "id", "expected int"),
    (lambda r: r.update(answer=[]), "answer", "non-empty list"),
    (lambda r: r.update(answer=["the moon"]), "answer", "not one of the options"),
    (lambda r: r.update(options=["a", "b"]), "options", "expected 4 options"),
])
def test_bad_choice_rows_name_file_line_and_field(tmp_path, mutate, field, message):
    good = [json.loads(line) for line in (FIXTURE / "longbook_choice_eng.jsonl").read_text().splitlines()]
    mutate(good[1])
    (tmp_path / "longbook_choice_eng.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good))
    with pytest.raises(DataError, match=rf"longbook_choice_eng.jsonl line 2, field '{field}'.*{message}"):
        utils.load_rows("longbook_choice_eng", str(tmp_path))


def test_bad_code_run_call_and_duplicate_ids(tmp_path):
    rows = [json.loads(line) for line in (FIXTURE / "code_run.jsonl").read_text().splitlines()]
    rows[0]["input"] = "What does it return?"
    (tmp_path / "code_run.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="line 1, field 'input'.*func_12"):
        utils.load_rows("code_run", str(tmp_path))
    rows = [json.loads(line) for line in (FIXTURE / "passkey.jsonl").read_text().splitlines()]
    rows[2]["id"] = rows[0]["id"]
    (tmp_path / "passkey.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="line 3.*duplicate"):
        utils.load_rows("passkey", str(tmp_path))


def test_offline_without_data_dir_says_how_to_get_the_files():
    with pytest.raises(DataError, match="data_dir"):
        utils.load_rows("passkey", None)


def test_process_results_uses_the_task_scorer():
    doc = {"task": "longbook_choice_eng", "labels": ["the tower", "D"]}
    assert utils.process_results(doc, ["D"])["score"] == 100.0
    assert utils.process_results({"task": "passkey", "labels": ["12345"]}, ["The pass key is 12345."])["score"] == 100.0
    assert utils.process_results({"task": "passkey", "labels": ["12345"]}, [""])["score"] == 0.0


@pytest.mark.server
def test_fixtures_end_to_end_through_vllm(vllm_server, tiny_model_dir, tmp_path):
    from harness.records.io import load_run
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url), run=RunConfig(tasks=["infinitebench"], output_dir=str(tmp_path), task_metadata={"data_dir": str(FIXTURE)}, gen_kwargs={"max_gen_toks": 64}, progress=False))
    rec = load_run(run_eval(cfg))
    assert rec.status == "complete" and len(rec.tasks) == 12
    for name, t in rec.tasks.items():
        assert t.n_samples == 3 and t.n_errors == 0 and t.endpoint == "chat", name
        rows = [json.loads(line) for line in (tmp_path / rec.run_id / t.samples_file).read_text().splitlines()]
        for r in rows:
            assert r["metrics"]["score"] == utils.process_results(r["doc"], [r["filtered"]])["score"]
    mean = sum(t.metrics["score"].value for t in rec.tasks.values()) / 12
    assert rec.groups["infinitebench"]["score"].value == pytest.approx(mean)
