"""Rewards are the harness's scorers, so a reward of 1 means what an eval score of 1 means.

REWARDS[name](completion, answers) -> float in [0, 1].
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable

from tasks.longbench_v2.scoring import extract_answer, item_score
from tasks.ruler.scoring import sample_match_all, sample_match_part


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
