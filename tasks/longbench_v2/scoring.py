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


# Aggregation ----------------------------------------------------------------------------

DIFFICULTIES = ("easy", "hard")
LENGTHS = ("short", "medium", "long")
CHOICES = ("A", "B", "C", "D")


def item_score(pred: str | None, gold: str, compensated: bool = False) -> float:
    """1.0 right, 0.0 wrong; with `compensated` (official option) an unparsed answer counts 0.25."""
    if pred is None and compensated:
        return 0.25
    return float(pred == gold)


def item_scores(items: list[dict], compensated: bool = False) -> list[float]:
    """Per-item official scores (fractions) of `pred.py` items, empty responses included."""
    return [item_score(extract_answer(it.get("response") or ""), it["answer"], compensated) for it in items]


def official_report(items: list[dict], compensated: bool = False, drop_empty: bool = False) -> dict:
    """The numbers THUDM/LongBench `result.py` prints, unrounded, in percent, plus breakdowns.

    Each item needs `difficulty`, `length`, `answer` and `response` (`domain` optional). As in
    `result.py`: overall = mean over all items; easy vs everything else (hard); short, medium,
    everything else (long). `drop_empty` reproduces `pred.py` writing no line for an empty
    response (so those items leave the denominator); by default they count as wrong.
    A split with no items reports None instead of dividing by zero.
    """
    rows = []
    n_empty = n_null = 0
    for it in items:
        response = it.get("response") or ""
        if not response.strip():
            n_empty += 1
            if drop_empty:
                continue
        pred = extract_answer(response)
        n_null += pred is None
        rows.append((it, item_score(pred, it["answer"], compensated)))

    def pct(selected):
        selected = list(selected)
        return 100.0 * sum(selected) / len(selected) if selected else None

    report = {
        "overall": pct(s for _, s in rows),
        "easy": pct(s for it, s in rows if it["difficulty"] == "easy"),
        "hard": pct(s for it, s in rows if it["difficulty"] != "easy"),
        "short": pct(s for it, s in rows if it["length"] == "short"),
        "medium": pct(s for it, s in rows if it["length"] == "medium"),
        "long": pct(s for it, s in rows if it["length"] not in ("short", "medium")),
        "n": len(rows),
        "n_empty": n_empty,
        "n_null": n_null,
        "domains": {},
    }
    for domain in sorted({it.get("domain") for it, _ in rows if it.get("domain")}):
        scores = [s for it, s in rows if it.get("domain") == domain]
        report["domains"][domain] = {"acc": pct(scores), "n": len(scores)}
    return report


def read_prediction_file(path) -> list[dict]:
    """Official `pred.py` output: JSONL (or one JSON list) of items with `response`.

    `pred` and `judge`, if present, are ignored: everything is recomputed from `response`.
    """
    from tasks.data_io import one_of, read_records

    spec = {"difficulty": one_of(*DIFFICULTIES), "length": one_of(*LENGTHS),
            "answer": one_of(*CHOICES), "response": str}
    return read_records(path, spec)
