"""InfiniteBench scorers, as OpenBMB/InfiniteBench `src/compute_scores.py` defines them.

Official per-sample scores are booleans or fractions; tasks report their mean in percent.
No scorer executes or evaluates model output: everything is parsed as text.
"""

from __future__ import annotations

import re

_NON_DIGIT = re.compile(r"[^0-9]")
# Characters the official kv/dialogue scorers turn into spaces before splitting into words.
_RETRIEVAL_SEPARATORS = ["\n", ":", '"', "'", ".", ",", "?", "!", "{", "}"]


def first_int_match(prediction: str) -> str:
    """The first run of ASCII digits in `prediction`, or "" (official `first_int_match`)."""
    for item in _NON_DIGIT.split(prediction or ""):
        if item != "":
            return item
    return ""


def _label_str(label) -> str:
    # The official data stores answers as one-element lists; prediction files may hold either.
    if isinstance(label, (list, tuple)):
        return str(label[0]) if label else ""
    return str(label)


def score_passkey(pred: str, label) -> float:
    """Official `get_score_one_passkey`: first integer in the prediction equals the label."""
    return float(_label_str(label) == first_int_match(pred))


def score_number_string(pred: str, label) -> float:
    """Official `get_score_one_number_string` (same rule as passkey)."""
    return score_passkey(pred, label)


def split_retrieval_words(pred: str) -> list[str]:
    for c in _RETRIEVAL_SEPARATORS:
        pred = pred.replace(c, " ")
    return pred.split()


def score_kv_retrieval(pred: str, label) -> float:
    """Official `get_score_one_kv_retrieval`: the label is one of the whitespace words after the
    separators are turned into spaces."""
    return float(_label_str(label) in split_retrieval_words(pred or ""))
