"""LongBench v2 answer extraction and accuracy, as the official THUDM/LongBench code does it.

Reproduces `extract_answer` in THUDM/LongBench `pred.py` (v2): remove every `*` (markdown bold),
look for `The correct answer is (X)`, then for `The correct answer is X`, with X in A-D. Nothing
found means no answer (scored wrong). Matching is case-sensitive, as in the official regexes.
"""

from __future__ import annotations

import re

_WITH_PARENS = re.compile(r"The correct answer is \(([A-D])\)")
_WITHOUT_PARENS = re.compile(r"The correct answer is ([A-D])")


def extract_answer(response: str) -> str | None:
    """The chosen letter A-D, or None when the response names none in the official format."""
    text = (response or "").replace("*", "")
    match = _WITH_PARENS.search(text) or _WITHOUT_PARENS.search(text)
    return match.group(1) if match else None


def is_correct(response: str, gold: str) -> bool:
    return extract_answer(response) == gold
