"""RULER scorers, as NVIDIA/RULER `scripts/eval/synthetic/constants.py` and `evaluate.py` define them.

* `postprocess_pred`: strip, replace every control character with a newline, strip again
  (official `postprocess_pred` in `scripts/eval/evaluate.py`).
* `string_match_all` (niah, vt, cwe, fwe): per sample, the fraction of references that occur in
  the prediction (case-insensitive substring); mean over samples; x100.
* `string_match_part` (qa): per sample, 1 if *any* reference occurs, else 0; mean; x100.
  lm-eval's `ruler` instead scores part as a fraction and takes a max over samples; we follow the
  official definition.
"""

from __future__ import annotations

import re
from typing import Sequence

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess_pred(pred: str) -> str:
    return _CONTROL.sub("\n", (pred or "").strip()).strip()


def sample_match_all(pred: str, refs: Sequence[str]) -> float:
    """Fraction of `refs` found in `pred` (0..1), case-insensitive."""
    if not refs:
        raise ValueError("a RULER sample needs at least one reference answer")
    p = pred.lower()
    return sum(1.0 for r in refs if r.lower() in p) / len(refs)


def sample_match_part(pred: str, refs: Sequence[str]) -> float:
    """1.0 if any of `refs` is found in `pred`, else 0.0, case-insensitive."""
    if not refs:
        raise ValueError("a RULER sample needs at least one reference answer")
    p = pred.lower()
    return max(1.0 if r.lower() in p else 0.0 for r in refs)


def item_score(pred: str, refs: Sequence[str], metric: str) -> float:
    """One sample's official score (0..1) of a raw prediction: `postprocess_pred`, then the
    `metric` ("string_match_all" or "string_match_part") of `evaluate.py`."""
    match = {"string_match_all": sample_match_all, "string_match_part": sample_match_part}[metric]
    return match(postprocess_pred(pred), refs)


def string_match_all(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Official corpus score in percent."""
    return 100.0 * sum(sample_match_all(p, r) for p, r in zip(preds, refs, strict=True)) / len(preds)


def string_match_part(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Official corpus score in percent."""
    return 100.0 * sum(sample_match_part(p, r) for p, r in zip(preds, refs, strict=True)) / len(preds)


# Official prediction files ---------------------------------------------------------------

# Official task names (scripts/synthetic.yaml) that differ from ours.
OFFICIAL_ALIASES = {"qa_1": "qa_squad", "qa_2": "qa_hotpot"}


def read_prediction_file(path) -> list[tuple[str, list[str]]]:
    """(pred, outputs) per line of an official RULER prediction JSONL (`pred`, `outputs`; like the
    official reader, a single `output` string stands in when `outputs` is absent)."""
    from tasks.data_io import DataError, read_jsonl

    def refs(row, line):
        value = row.get("outputs", [row.get("output")] if "output" in row else None)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise DataError(path, line, "outputs", f"expected a non-empty list of strings, got {str(value)[:60]!r}")
        return value

    rows = read_jsonl(path, {"pred": str})
    return [(r["pred"], refs(r, i)) for i, r in enumerate(rows, start=1)]


def score_file(path, task: str) -> dict:
    """Official score of a prediction file: {"score": percent (unrounded), "n": N, "nulls": empty
    preds, "per_item": fractions in [0, 1]}."""
    from tasks.ruler.constants import METRIC_OF_KIND, TASKS

    name = OFFICIAL_ALIASES.get(task, task)
    if name not in TASKS:
        raise KeyError(task)
    pairs = read_prediction_file(path)
    preds = [postprocess_pred(p) for p, _ in pairs]
    refs = [r for _, r in pairs]
    metric = METRIC_OF_KIND[TASKS[name].kind]
    corpus = string_match_part if metric == "string_match_part" else string_match_all
    return {"score": corpus(preds, refs), "n": len(preds), "nulls": sum(1 for p in preds if not p),
            "per_item": [item_score(p, r, metric) for p, r in pairs]}
