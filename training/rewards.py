"""Rewards are the harness's scorers, so a reward of 1 means what an eval score of 1 means.

REWARDS[name](answer, answers) -> float in [0, 1].
score(name, completion, answers) -> (reward, thinking_unclosed): the completion's thinking is
removed first (tasks.thinking.strip_thinking, the evaluation's reasoning mode does the same).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable

from tasks.longbench_v2.scoring import extract_answer, item_score
from tasks.ruler.scoring import sample_match_all, sample_match_part
from tasks.thinking import strip_thinking


def _normalize(text: str) -> list[str]:
    """SQuAD-style normalisation (lower, drop punctuation and articles) before token F1."""
    text = re.sub(r"\b(a|an|the)\b", " ", re.sub(r"[^\w\s]", " ", text.lower()))
    return text.split()


def qa_f1(completion: str, answers: list[str]) -> float:
    """Best token F1 against any gold answer (SQuAD v1.1 `f1_score`, max over golds)."""
    pred = _normalize(completion)
    best = 0.0
    for gold in answers:
        g = _normalize(gold)
        common = sum((Counter(pred) & Counter(g)).values())
        if common:
            p, r = common / len(pred), common / len(g)
            best = max(best, 2 * p * r / (p + r))
    return best


REWARDS: dict[str, Callable[[str, list[str]], float]] = {
    "string_match_all": lambda c, a: float(sample_match_all(c, a)),
    "string_match_part": lambda c, a: float(sample_match_part(c, a)),
    "longbench_choice": lambda c, a: item_score(extract_answer(c), a[0]),
    "qa_f1": qa_f1,
}


def score(name: str, completion: str, answers: list[str], opened_in_prompt: bool = False) -> tuple[float, bool]:
    """The reward of one completion: REWARDS[name] on the text after the last `</think>` (all of
    it when the model did not think). Thinking that never closed scores 0, as in the evaluation's
    reasoning mode; the second value says so, for the count the trainer logs.
    opened_in_prompt: the chat template opens the thinking block itself."""
    split = strip_thinking(completion, opened_in_prompt)
    if not split.closed:
        return 0.0, True
    return REWARDS[name](split.answer, answers), False
