"""LongBench v2: templates, extraction, official aggregation, truncation, loading, end to end."""

import hashlib
import json

import pytest

from tasks import tokens
from tasks.data_io import DataError
from tasks.longbench_v2 import utils
from tasks.longbench_v2.prompts import TEMPLATES, build_prompt, fill
from tasks.longbench_v2.scoring import extract_answer, official_report, read_prediction_file

FIXTURE = utils.FIXTURE


def test_templates_are_pinned_byte_for_byte():
    # SHA-256 of THUDM/LongBench prompts/0shot.txt, 0shot_cot.txt, 0shot_cot_ans.txt, 0shot_no_context.txt
    expected = {
        "0shot": "68a162252bc9ff71d5d7abca3d69bb31aac3c35f832d657a2866f2018b8a6950",
        "cot": "6cc33d92fd8f611662b756c1f10f302c541ca005b58c46d5f3188ac3a939bfe8",
        "cot_answer": "85ec59df4ac0e27aabbc619a7ca5cf3ae1787dd5a76cf51a18944eb52c91955f",
        "nocontext": "125fb44183af01ffc623df19392b80a287db62af3e2a2805e5b2ff9c7b2bee30",
    }
    assert {k: hashlib.sha256(v.encode()).hexdigest() for k, v in TEMPLATES.items()} == expected
    assert "Let\u2019s think step by step" in TEMPLATES["cot"]


def test_fill_strips_fields_and_embeds_cot():
    doc = {"context": "  doc text \n", "question": " Q? ", "choice_A": " a ", "choice_B": "b",
           "choice_C": "c", "choice_D": "d"}
    out = fill(TEMPLATES["0shot"], doc)
    assert "<text>\ndoc text\n</text>" in out and "question: Q?\n" in out and "(A) a\n" in out
    ans = utils.cot_answer_prompt(doc, "  because b  ")  # no truncation length: no tokenizer needed
    assert "step by step: because b\n\nBased on the above" in ans and "doc text" not in ans


@pytest.mark.parametrize("response,expected", [
    ("The correct answer is (A)", "A"),
    ("The correct answer is (D).", "D"),
    ("**The correct answer is (B)**", "B"),
    ("The correct answer is **(C)**", "C"),
    ("The correct answer is C", "C"),
    ("The correct answer is B because ...", "B"),
    ("The correct answer is (b)", None),
    ("the correct answer is (A)", None),
    ("Answer: (A)", None),
    ("", None),
    ("I cannot tell.", None),
    ("The correct answer is (E)", None),
    ("Step 1: The correct answer is not (A). Finally, The correct answer is (C)", "C"),
    ("Let's think. (A) is wrong; (B) fits.\nThe correct answer is (B)", "B"),
    ("The correct answer is (A). Wait, The correct answer is (D)", "A"),
    ("The correct answer is A or B", "A"),
    ("The correct answer is: (A)", None),
])
def test_extraction_on_hand_written_responses(response, expected):
    assert extract_answer(response) == expected


def _item(d, length, gold, response, domain="X"):
    return {"difficulty": d, "length": length, "answer": gold, "response": response, "domain": domain}


def test_official_report_hand_computed():
    items = [
        _item("easy", "short", "A", "The correct answer is (A)"),     # right
        _item("easy", "medium", "B", "The correct answer is (C)"),    # wrong
        _item("hard", "long", "C", "The correct answer is (C)", "Y"),  # right
        _item("hard", "short", "D", "no idea"),                       # null
        _item("hard", "medium", "A", ""),                             # empty (also null)
    ]
    r = official_report(items)
    assert r["n"] == 5 and r["n_null"] == 2 and r["n_empty"] == 1
    assert r["overall"] == pytest.approx(40.0)
    assert r["easy"] == pytest.approx(50.0) and r["hard"] == pytest.approx(100 / 3)
    assert r["short"] == pytest.approx(50.0) and r["medium"] == pytest.approx(0.0) and r["long"] == pytest.approx(100.0)
    assert r["domains"] == {"X": {"acc": pytest.approx(25.0), "n": 4}, "Y": {"acc": pytest.approx(100.0), "n": 1}}
    comp = official_report(items, compensated=True)
    assert comp["overall"] == pytest.approx(100 * (1 + 0 + 1 + 0.25 + 0.25) / 5)
    dropped = official_report(items, drop_empty=True)
    assert dropped["n"] == 4 and dropped["overall"] == pytest.approx(50.0) and dropped["medium"] == pytest.approx(0.0)
    assert official_report(items[:1])["hard"] is None  # empty split: no division by zero


def test_score_cli_matches_result_py_on_an_official_file(tmp_path, capsys):
    from longact.cli import main

    rows = [
        {"_id": "1", "difficulty": "easy", "length": "short", "answer": "A", "response": "The correct answer is (A)", "pred": "Z", "judge": False},
        {"_id": "2", "difficulty": "hard", "length": "long", "answer": "B", "response": "**The correct answer is B**"},
        {"_id": "3", "difficulty": "hard", "length": "medium", "answer": "C", "response": "The correct answer is (D)", "judge": True},
        {"_id": "4", "difficulty": "easy", "length": "long", "answer": "D", "response": "hmm"},
    ]
    p = tmp_path / "Model.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", "longbench_v2", str(p), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # result.py by hand (judge recomputed from response): right = items 1 and 2
    assert got == {"overall": 50.0, "easy": 50.0, "hard": 50.0, "short": 100.0, "medium": 0.0, "long": 50.0, "n": 4}
    assert main(["score", "longbench_v2", str(p)]) == 0
    assert "50.0\t50.0\t50.0\t100.0\t0.0\t50.0\t4" in capsys.readouterr().out


def test_score_cli_bad_file(tmp_path, capsys):
    from longact.cli import main

    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"difficulty": "easy", "length": "short", "answer": "E", "response": ""}) + "\n")
    assert main(["score", "longbench_v2", str(p)]) == 2
    assert "bad.jsonl line 1, field 'answer': expected one of A, B, C, D, got 'E'" in capsys.readouterr().err


def test_truncation_keeps_exact_head_and_tail_ids(tiny_tokenizer):
    prompt = "HEAD " + " ".join(f"w{i}" for i in range(3000)) + " TAIL"
    ids = tiny_tokenizer.encode(prompt)
    for max_len in (101, 100):
        fit = utils.PromptTruncator(tiny_tokenizer, max_len)(prompt)
        head, tail = max_len // 2, max_len - max_len // 2
        assert fit.truncated and fit.original_tokens == len(ids) and fit.removed_tokens == len(ids) - max_len
        out = fit.text
        assert out == tiny_tokenizer.decode(ids[:head] + ids[-tail:], skip_special_tokens=True)
        assert out.startswith("HEAD") and out.endswith("TAIL")
    same = utils.PromptTruncator(tiny_tokenizer, len(ids))(prompt)
    assert same.text == prompt and not same.truncated and same.removed_tokens == 0


def test_default_max_length_leaves_room_for_template_and_budget(tiny_tokenizer):
    m = utils.default_max_length(tiny_tokenizer, 2048, 128)
    rendered = tiny_tokenizer.apply_chat_template([{"role": "user", "content": ""}], tokenize=False,
                                                  add_generation_prompt=True)
    overhead = len(tiny_tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert overhead > 2  # ChatML adds more than a couple of tokens around a user turn
    assert m == 2048 - 128 - overhead
    assert utils.default_max_length(tiny_tokenizer, 1_000_000, 128) == 120_000
    assert utils.default_max_length(tiny_tokenizer, None, 128) == 120_000


def _rows():
    return [json.loads(l) for l in FIXTURE.read_text().splitlines()]


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.pop("choice_C"), "line 1, field 'choice_C': missing"),
    (lambda r: r.update(answer="E"), "line 1, field 'answer': expected one of A, B, C, D, got 'E'"),
    (lambda r: r.update(difficulty="medium"), "field 'difficulty': expected one of easy, hard"),
    (lambda r: r.update(context=None), "field 'context': expected str, got NoneType"),
])
def test_bad_rows_are_named(tmp_path, mutate, needle):
    rows = _rows()
    mutate(rows[0])
    p = tmp_path / "lb.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        utils.load_rows(str(p))


def test_non_utf8_and_empty_and_json_list(tmp_path):
    p = tmp_path / "lb.jsonl"
    p.write_bytes(FIXTURE.read_bytes() + b'{"_id": "\xff"}\n')
    with pytest.raises(DataError, match="line 13: not UTF-8"):
        utils.load_rows(str(p))
    e = tmp_path / "empty.jsonl"
    e.write_text("")
    with pytest.raises(DataError, match="empty"):
        utils.load_rows(str(e))
    j = tmp_path / "data.json"
    j.write_text(json.dumps(_rows()))
    assert len(utils.load_rows(str(j))) == 12


def test_offline_official_dataset_error_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="data_path"):
        utils.load_rows(None)


def test_loader_truncates_with_the_evaluated_tokenizer(tiny_model_dir, tiny_tokenizer):
    ds = utils.load_0shot(data_path=str(FIXTURE), tokenizer=str(tiny_model_dir), max_model_len=1024, gen_budget=128)["test"]
    assert any(d["_truncated"] for d in ds) and not all(d["_truncated"] for d in ds)
    for d in ds:
        assert len(tiny_tokenizer.encode(d["_prompt"])) <= d["_max_length"] + 2  # decode/re-encode slack
        # the recorded count is the whole filled prompt's, middle included, not a bound from its ends
        full = tiny_tokenizer.encode(build_prompt({k: v for k, v in d.items() if not k.startswith("_")}, "0shot"))
        assert d["_original_tokens"] == len(full) and d["_truncated"] == (len(full) > d["_max_length"])



def _official_pass2(tok, doc, output, max_len):
    """THUDM/LongBench pred.py, CoT pass 2, restated: the answer template filled with the stripped
    fields and the stripped first output, then query_llm's cut: encode, keep ids[:m//2] and
    ids[-m//2:] when longer than m, decode skipping special tokens."""
    prompt = TEMPLATES["cot_answer"]
    for key, field in (("$Q$", "question"), ("$C_A$", "choice_A"), ("$C_B$", "choice_B"),
                       ("$C_C$", "choice_C"), ("$C_D$", "choice_D")):
        prompt = prompt.replace(key, doc[field].strip())
    prompt = prompt.replace("$COT$", output.strip())
    ids = tok.encode(prompt)
    if len(ids) > max_len:
        ids = ids[:max_len // 2] + ids[-max_len // 2:]
        prompt = tok.decode(ids, skip_special_tokens=True)
    return prompt


def test_cot_second_pass_is_truncated_as_pred_py(tiny_model_dir, tiny_tokenizer):
    docs = utils.load_cot(data_path=str(FIXTURE), tokenizer=str(tiny_model_dir), max_model_len=2048, gen_budget=1024)["test"]
    doc = docs[0]
    assert doc["_max_length"] == 1011  # 2048 - 1024 - the ChatML overhead: pass 1's limit, and pass 2's
    reasoning = " " + " ".join(f"step{i} because" for i in range(400)) + "\n"
    second = utils.cot_answer_prompt(doc, reasoning, tiny_tokenizer)
    assert len(tiny_tokenizer.encode(fill(TEMPLATES["cot_answer"], doc, cot=reasoning.strip()))) > 1011
    assert second == _official_pass2(tiny_tokenizer, doc, reasoning, 1011)
    assert second.startswith("Please read") and second.endswith('"The correct answer is (insert answer here)".')
    short = utils.cot_answer_prompt(doc, "  because b  ", tiny_tokenizer)  # under the limit: untouched
    assert short == fill(TEMPLATES["cot_answer"], doc, cot="because b") == _official_pass2(tiny_tokenizer, doc, "because b", 1011)
    explicit = utils.load_cot(data_path=str(FIXTURE), tokenizer=tiny_tokenizer, max_length=300, limit_rows=1)["test"][0]
    assert utils.cot_answer_prompt(explicit, reasoning, tiny_tokenizer) == _official_pass2(tiny_tokenizer, doc, reasoning, 300)


def test_cot_second_pass_without_the_loading_tokenizer_says_so(tiny_tokenizer):
    from tasks.errors import UserError

    doc = {**_rows()[0], "_max_length": 500}
    with pytest.raises(UserError, match="metadata.tokenizer"):
        utils.cot_answer_prompt(doc, "because", tiny_tokenizer)
    named = {**doc, "_tokenizer": tokens.tokenizer_identity(tiny_tokenizer)}
    with pytest.raises(UserError, match="needs the tokenizer the document was cut with"):
        utils.cot_answer_prompt(named, "because")
    with pytest.raises(UserError, match="was cut by tokenizer 0123456789abcdef, but the second pass was handed"):
        utils.cot_answer_prompt({**doc, "_tokenizer": "0123456789abcdef" * 4}, "because", tiny_tokenizer)


def test_two_tokenizers_in_one_process_each_truncate_their_own_second_pass(tiny_model_dir, tiny_tokenizer, tmp_path):
    """Two evaluations with different tokenizers in one process (a sweep, a notebook): the second
    pass of each document is cut in the tokens of the tokenizer handed to it, and a document cut
    by the other tokenizer is refused, never cut in the wrong tokens."""
    from longact.tiny.model import TinyModelSpec, build_tokenizer
    from tasks.errors import UserError

    build_tokenizer(TinyModelSpec(vocab_size=400)).save_pretrained(tmp_path / "other")
    other = tokens.load_tokenizer(str(tmp_path / "other"))
    reasoning = " " + " ".join(f"step{i} because" for i in range(400))
    first = utils.load_cot(data_path=str(FIXTURE), tokenizer=str(tiny_model_dir), max_length=300, limit_rows=1)["test"][0]
    second = utils.load_cot(data_path=str(FIXTURE), tokenizer=str(tmp_path / "other"), max_length=300, limit_rows=1)["test"][0]
    assert _official_pass2(tiny_tokenizer, first, reasoning, 300) != _official_pass2(other, first, reasoning, 300)
    assert utils.cot_answer_prompt(first, reasoning, tiny_tokenizer) == _official_pass2(tiny_tokenizer, first, reasoning, 300)
    assert utils.cot_answer_prompt(second, reasoning, other) == _official_pass2(other, second, reasoning, 300)
    with pytest.raises(UserError, match="was cut by tokenizer"):
        utils.cot_answer_prompt(first, reasoning, other)
    assert first["_tokenizer"] != second["_tokenizer"]
    # the name is the tokenizer's content, not its object or path: equal in another load
    assert first["_tokenizer"] == tokens.tokenizer_identity(tiny_tokenizer)


def test_a_tokenizer_has_one_identity_whatever_its_files_or_call_state(tiny_model_dir, tiny_tokenizer, tmp_path):
    """Re-saved files (other bytes, same tokenizer) keep the identity; a tokenizer that cuts or
    renders differently (another vocabulary, another chat template) gets another."""
    from transformers import AutoTokenizer

    ident = tokens.tokenizer_identity(tiny_tokenizer)
    tiny_tokenizer("x " * 50, truncation=True, max_length=4)  # call state, not definition
    assert tokens.tokenizer_identity.__wrapped__(tiny_tokenizer) == ident
    resaved = AutoTokenizer.from_pretrained(tiny_model_dir)
    resaved.save_pretrained(tmp_path / "resaved")
    (tmp_path / "resaved" / "README.md").write_text("notes")
    assert tokens.tokenizer_identity(AutoTokenizer.from_pretrained(tmp_path / "resaved")) == ident
    templated = AutoTokenizer.from_pretrained(tiny_model_dir)
    templated.chat_template = "{{ messages[0]['content'] }}"
    assert tokens.tokenizer_identity(templated) != ident


@pytest.mark.server
def test_fixture_end_to_end_through_vllm(vllm_server, tiny_model_dir, tmp_path):
    from harness.records.io import load_run
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url), run=RunConfig(tasks=["longbench_v2", "longbench_v2_cot", "longbench_v2_nocontext"], task_metadata={"data_path": str(FIXTURE)}, output_dir=str(tmp_path), progress=False))
    run_dir = run_eval(cfg)
    rec = load_run(run_dir)
    assert rec.status == "complete"
    for name in cfg.run.tasks:
        t = rec.tasks[name]
        assert t.n_samples == 12 and t.endpoint == "chat"
        bd = t.breakdown
        assert set(bd["difficulty"]) == {"easy", "hard"} and set(bd["length"]) == {"short", "medium", "long"}
        assert sum(m["acc"].n for m in bd["difficulty"].values()) == 12
        rows = [json.loads(l) for l in (run_dir / t.samples_file).read_text().splitlines()]
        items = [{**r["doc"], "response": r["response"]} for r in rows]
        report = official_report(items)
        assert t.metrics["acc"].value == pytest.approx(report["overall"])
        assert bd["difficulty"]["easy"]["acc"].value == pytest.approx(report["easy"])
        assert t.metrics["null_rate"].value == pytest.approx(100 * report["n_null"] / 12)
    cot_rows = [json.loads(l) for l in (run_dir / rec.tasks["longbench_v2_cot"].samples_file).read_text().splitlines()]
    assert all(r["first_response"] is not None for r in cot_rows)
    assert rec.tasks["longbench_v2_cot"].generation_kwargs["max_gen_toks"] == 1024


def test_prediction_file_as_json_list_and_empty(tmp_path):
    rows = [{"difficulty": "hard", "length": "medium", "answer": "C", "response": "The correct answer is (C)"}]
    p = tmp_path / "preds.json"
    p.write_text(json.dumps(rows, indent=1))
    assert official_report(read_prediction_file(p))["overall"] == 100.0
    e = tmp_path / "empty.jsonl"
    e.write_text("\n")
    with pytest.raises(DataError, match="empty"):
        read_prediction_file(e)
