"""Scorers against hand-computed values from the official definitions."""

import pytest

from tasks.infinitebench.scoring import first_int_match, score_kv_retrieval, score_passkey
from tasks.longbench_v2.scoring import extract_answer
from tasks.ruler.scoring import postprocess_pred, string_match_all, string_match_part


@pytest.mark.parametrize("response,expected", [
    ("The correct answer is (B)", "B"),
    ("**The correct answer is (C)**", "C"),            # markdown bold removed first
    ("The correct answer is D.", "D"),                 # fallback without parentheses
    ("I think (A). The correct answer is (B)", "B"),
    ("the correct answer is (B)", None),               # official regex is case-sensitive
    ("The correct answer is (E)", None),
    ("", None),
    ("The correct answer is (A) or The correct answer is (B)", "A"),  # first match wins
])
def test_longbench_v2_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_ruler_string_match_all_and_part_hand_computed():
    preds = ["The numbers are 123 and 456.", "only 789", "nothing"]
    refs = [["123", "456"], ["789", "000"], ["111"]]
    # all: (2/2 + 1/2 + 0/1) / 3 * 100 = 50.0
    assert string_match_all(preds, refs) == pytest.approx(50.0)
    # part: (1 + 1 + 0) / 3 * 100
    assert string_match_part(preds, refs) == pytest.approx(200.0 / 3)


def test_ruler_matching_is_case_insensitive_and_postprocess_replaces_controls():
    assert string_match_all(["ANSWER: Paris"], [["paris"]]) == 100.0
    assert postprocess_pred("  a\tb\x00c  ") == "a\nb\nc"


def test_infinitebench_first_int_and_passkey():
    assert first_int_match("The pass key is 71432. Remember") == "71432"
    assert first_int_match("no digits") == ""
    assert first_int_match("12a34") == "12"
    assert score_passkey("71432", ["71432"]) == 1.0
    assert score_passkey("The key: 7143 2", "71432") == 0.0
    assert score_passkey("", ["1"]) == 0.0


def test_infinitebench_kv_whole_word_after_separators():
    label = "a1b2-c3"
    assert score_kv_retrieval('The value is: "a1b2-c3".', [label]) == 1.0
    assert score_kv_retrieval("xa1b2-c3", [label]) == 0.0       # substring is not enough
    assert score_kv_retrieval("{a1b2-c3}", label) == 1.0
