"""InfiniteBench scorers against hand-computed cases from OpenBMB/InfiniteBench compute_scores.py."""

import pytest

from tasks.infinitebench import scoring as s


def test_code_run_last_word_integer():
    assert s.score_code_run("The output is: 42.", 42) == 1.0
    assert s.score_code_run("`42`", [42]) == 1.0
    assert s.score_code_run("42 is printed", 42) == 0.0   # last word is "printed"
    assert s.score_code_run("", 1) == 0.0


def test_code_debug_prefixes():
    label = ["func_b", "B"]
    assert s.score_code_debug("B. func_b has the bug", label) == 1.0
    assert s.score_code_debug("The answer is: B", label) == 1.0
    assert s.score_code_debug("The answer is: func_b", label) == 1.0
    assert s.score_code_debug("The answer is: Option B", label) == 1.0   # "Option" removed
    assert s.score_code_debug("The answer is: C", label) == 0.0
    assert s.score_code_debug("I think B", label) == 0.0                 # no prefix at all
    assert s.score_code_debug("answer:", label) == 0.0                   # prefix at the very end


def test_math_find_and_calc():
    assert s.score_math_find("The largest is 17 then 3", 17) == 1.0
    assert s.score_math_find("It is 2.5", 2.5) == 1.0
    assert s.score_math_find("It is 2.5", 2) == 0.0
    assert s.score_math_find("none", 1) == 0.0
    # gpt4 family: the first integer is dropped; prefix match of the rest
    assert s.score_math_calc("1, 3, 6, 10", [3, 6, 11]) == pytest.approx(2 / 3)
    assert s.score_math_calc("3, 6, 11", [3, 6, 11], model_family="other") == 1.0
    assert s.score_math_calc("", [1, 2]) == 0.0


def test_dialogue_and_choice():
    assert s.score_longdialogue_qa_eng("I believe it was Hamlet.", ["HAMLET"]) == 1.0
    assert s.score_longdialogue_qa_eng("hamletish", ["HAMLET"]) == 0.0
    assert s.score_longbook_choice_eng("B) the dog", ["B"]) == 1.0
    assert s.score_longbook_choice_eng("The answer is: C", ["C"]) == 1.0
    assert s.score_longbook_choice_eng("I pick option is D", ["D"]) == 1.0
    assert s.score_longbook_choice_eng("so maybe C or D", ["D"]) == 0.0   # first A-D word is C
    assert s.score_longbook_choice_eng("", ["A"]) == 0.0


def test_qa_f1_english_and_chinese():
    # "the cat sat" vs "a cat sat down": tokens [cat, sat] vs [cat, sat, down] -> P=1, R=2/3, F1=0.8
    assert s.qa_f1("The cat sat!", ["a cat sat down"]) == pytest.approx(0.8)
    assert s.qa_f1("dog", ["cat", "dog"]) == 1.0
    assert s.qa_f1("", ["cat"]) == 0.0
    # Chinese: punctuation (incl. curly quotes) removed, characters compared
    assert s.qa_f1_zh("“北京”。", ["北京"]) == 1.0
    assert s.qa_f1_zh("北京市", ["北京"]) == pytest.approx(0.8)  # P=2/3, R=1


def test_rouge_lsum_no_stemming():
    assert s.rouge_lsum("the cat sat", "the cat sat") == pytest.approx(1.0)
    # stemming would match "running"/"runs"; without it only "the" and "dog" match: P=R=2/3
    assert s.rouge_lsum("the dog running", "the dog runs") == pytest.approx(2 / 3)


def test_registry_covers_the_twelve_tasks():
    assert len(s.SCORERS) == 12


def test_score_cli_reads_official_prediction_files(tmp_path, capsys):
    import json

    from longact.cli import main

    p = tmp_path / "preds_kv_retrieval.jsonl"
    rows = [{"id": 0, "prediction": 'The value is "abc-1".', "ground_truth": "abc-1"},
            {"id": 1, "pred": "abc-2x", "ground_truth": "abc-2"},
            {"id": 2, "prediction": "", "ground_truth": "abc-3"}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", "infinitebench", str(p), "--task", "kv_retrieval", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"score": pytest.approx(100 / 3), "n": 3}
    calc = tmp_path / "preds_math_calc.jsonl"
    calc.write_text(json.dumps({"prediction": "5, 7, 9", "label": [7, 9, 2]}) + "\n")
    assert main(["score", "infinitebench", str(calc), "--task", "math_calc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(200 / 3)


def test_score_cli_bad_prediction_file(tmp_path, capsys):
    import json

    from longact.cli import main

    p = tmp_path / "preds.jsonl"
    p.write_text(json.dumps({"ground_truth": "1", "prediction": "1"}) + "\n" + json.dumps({"ground_truth": "2"}) + "\n")
    assert main(["score", "infinitebench", str(p), "--task", "passkey"]) == 2
    assert "preds.jsonl line 2, field 'prediction': missing" in capsys.readouterr().err
    assert main(["score", "infinitebench", str(p), "--task", "nope"]) == 2
