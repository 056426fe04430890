"""RULER scorers, as NVIDIA/RULER `scripts/eval/synthetic/constants.py` and `evaluate.py` define them.

* `postprocess_pred`: strip, then replace every control character with a newline (official
  `postprocess_pred` in `scripts/eval/evaluate.py`).
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
    return _CONTROL.sub("\n", (pred or "").strip())


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


def string_match_all(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Official corpus score in percent."""
    return 100.0 * sum(sample_match_all(p, r) for p, r in zip(preds, refs, strict=True)) / len(preds)


def string_match_part(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Official corpus score in percent."""
    return 100.0 * sum(sample_match_part(p, r) for p, r in zip(preds, refs, strict=True)) / len(preds)
