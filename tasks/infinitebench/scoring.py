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


def _first(label):
    """Official labels are often one-element lists; scorers compare against the element."""
    return label[0] if isinstance(label, (list, tuple)) else label


def _to_spaces(text: str, chars, collapse: bool = False) -> str:
    """Replace each of `chars` (characters or words) by a space; optionally collapse runs of
    spaces, as the official scorers' `while "  " in pred` loops do."""
    for c in chars:
        text = text.replace(c, " ")
    if collapse:
        while "  " in text:
            text = text.replace("  ", " ")
    return text


def _text_after_prefix(text: str, prefixes) -> tuple[bool, str | None]:
    """(found, rest) for the first prefix in `prefixes` that occurs in `text`, as the official
    scorers look for answer prefixes: rest skips one character after the prefix and is None when
    the text ends right there."""
    for prefix in prefixes:
        idx = text.find(prefix)
        if idx == -1:
            continue
        if len(text) < idx + len(prefix) + 1:
            return True, None
        return True, text[idx + len(prefix) + 1:]
    return False, None


def split_retrieval_words(pred: str) -> list[str]:
    return _to_spaces(pred, _RETRIEVAL_SEPARATORS).split()


def score_kv_retrieval(pred: str, label) -> float:
    """Official `get_score_one_kv_retrieval`: the label is one of the whitespace words after the
    separators are turned into spaces."""
    return float(_label_str(label) in split_retrieval_words(pred or ""))


# Code, math, dialogue, choice ---------------------------------------------------------------

def score_code_run(pred: str, label) -> float:
    """Official `get_score_one_code_run`: the last whitespace word (after turning newline . ` ' " :
    into spaces) parsed as an integer equals the label."""
    words = _to_spaces((pred or "").strip(), ["\n", ".", "`", "'", '"', ":"]).split()
    if not words:
        return 0.0
    try:
        value = int(words[-1])
    except ValueError:
        return 0.0
    try:
        return float(value == int(_first(label)))
    except (TypeError, ValueError):
        return 0.0


def score_code_debug(pred: str, label) -> float:
    """Official `get_score_one_code_debug`. `label` is [function name, option letter].

    Right if the prediction starts with "X." or "X:"; otherwise the text after the first of the
    prefixes "answer is:", "is:", "answer:" (after cleaning) must start with the letter or the
    function name. No prefix found means wrong.
    """
    fn_name, letter = label[0], label[1]
    pred = pred or ""
    if pred[:2] in (f"{letter}.", f"{letter}:"):
        return 1.0
    text = _to_spaces(pred.strip(), ["\n", "`", "'", '"', "-", "*", "Option", "option"], collapse=True)
    found, rest = _text_after_prefix(text, ("answer is:", "is:", "answer:"))
    if not found or rest is None:
        return 0.0
    return float(rest.startswith(letter) or rest.startswith(fn_name))


_FIRST_NUMBER = re.compile(r"\d+\.\d+|\d+")


def score_math_find(pred: str, label) -> float:
    """Official `get_score_one_math_find`: the first number (float or int) in the prediction equals
    the label, compared as int for integer labels and as float otherwise. (For an integer label
    whose first predicted number has a decimal point the official code raises in `int()`; we
    score it wrong.)"""
    gold = _first(label)
    if isinstance(gold, str):
        gold = float(gold) if "." in gold else int(gold)
    match = _FIRST_NUMBER.search(pred or "")
    if match is None:
        return 0.0
    found = match.group(0)
    if isinstance(gold, bool) or not isinstance(gold, (int, float)):
        raise TypeError(f"math_find label must be a number, got {gold!r}")
    if isinstance(gold, int):
        return float(int(float(found)) == gold) if "." not in found else 0.0
    return float(float(found) == gold)


def score_math_calc(pred: str, label, model_family: str = "gpt4") -> float:
    """Official `get_score_one_math_calc`: fraction of the label sequence matched as a prefix by the
    integers in the prediction. With the `gpt4` prompt family the first integer is dropped (the
    prompt makes the model restate the first value)."""
    if not isinstance(label, (list, tuple)) or not label:
        raise TypeError(f"math_calc label must be a non-empty list of integers, got {label!r}")
    nums = [int(x) for x in _NON_DIGIT.split(pred or "") if x != ""]
    if model_family == "gpt4":
        nums = nums[1:]
    hits = 0
    for i, gold in enumerate(label):
        if i >= len(nums) or nums[i] != int(gold):
            break
        hits += 1
    return hits / len(label)


def score_longdialogue_qa_eng(pred: str, label) -> float:
    """Official `get_score_one_longdialogue_qa_eng`: the (upper-case) name is one of the prediction's
    upper-cased whole words."""
    return float(_first(label) in [w.upper() for w in split_retrieval_words(pred or "")])


def score_longbook_choice_eng(pred: str, label) -> float:
    """Official `get_score_one_longbook_choice_eng`: first character if it is A-D; else the text
    after an answer prefix; else the first whole word that is one of A-D."""
    labels = list(label) if isinstance(label, (list, tuple)) else [label]
    pred = pred or ""
    if pred and pred[0] in "ABCD":
        return float(pred[0] in labels)
    text = _to_spaces(pred, ["\n", '"', "'", ".", ",", "?", "!", "{", "}"], collapse=True)
    found, rest = _text_after_prefix(text, ("answer is:", "answer:", "answer is", "option is"))
    if found:
        return float(rest is not None and any(rest.startswith(s) for s in labels))
    for word in text.split():
        if word in ("A", "B", "C", "D"):
            return float(word in labels)
    return 0.0


# QA F1 and ROUGE -------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ZH_PUNCT = ("！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—"
             "\u2018\u2019\u201b\u201c\u201d\u201e\u201f…‧﹏.")


def normalize_answer(s: str) -> str:
    """English: lower-case, drop ASCII punctuation, drop articles, collapse whitespace."""
    import string

    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def normalize_zh_answer(s: str) -> str:
    """Chinese: lower-case, drop ASCII and Chinese punctuation (curly quotes included), drop all
    whitespace."""
    import string

    drop = set(string.punctuation + _ZH_PUNCT)
    return "".join("".join(ch for ch in s.lower() if ch not in drop).split())


def _f1(pred_tokens: list, gold_tokens: list) -> float:
    from collections import Counter

    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_f1(pred: str, golds) -> float:
    """Official `qa_f1_score`: max over gold answers of token F1 after `normalize_answer`."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    return max((_f1(normalize_answer(pred or "").split(), normalize_answer(g).split()) for g in golds), default=0.0)


def qa_f1_zh(pred: str, golds) -> float:
    """Official `qa_f1_score_zh`: max over gold answers of character F1 after `normalize_zh_answer`."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    return max((_f1(list(normalize_zh_answer(pred or "")), list(normalize_zh_answer(g))) for g in golds), default=0.0)


def rouge_lsum(pred: str, label) -> float:
    """Official `get_score_one_longbook_sum_eng`: ROUGE-Lsum F-measure from `evaluate`'s rouge,
    i.e. rouge_score with no stemming, summaries split into sentences on newlines."""
    from rouge_score import rouge_scorer

    gold = _first(label)
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=False)
    return scorer.score(gold, pred or "")["rougeLsum"].fmeasure


SCORERS = {
    "passkey": score_passkey,
    "number_string": score_number_string,
    "kv_retrieval": score_kv_retrieval,
    "longbook_sum_eng": rouge_lsum,
    "longbook_choice_eng": score_longbook_choice_eng,
    "longbook_qa_eng": qa_f1,
    "longbook_qa_chn": qa_f1_zh,
    "longdialogue_qa_eng": score_longdialogue_qa_eng,
    "math_find": score_math_find,
    "math_calc": score_math_calc,
    "code_run": score_code_run,
    "code_debug": score_code_debug,
}
"""Task name -> per-sample scorer returning a fraction in [0, 1] (tasks report the mean x100)."""


# Rescoring official prediction files ----------------------------------------------------------

def read_prediction_file(path) -> tuple[list[str], list]:
    """(predictions, labels) from an official prediction file, as `get_preds`/`get_labels` read it:
    one JSON object per line with `prediction` or `pred`, and `ground_truth` or `label`."""
    from tasks.data_io import DataError, read_jsonl

    rows = read_jsonl(path, {})
    label_key = next((k for k in ("ground_truth", "label") if k in rows[0]), None)
    if label_key is None:
        raise DataError(path, 1, "ground_truth", "missing (expected `ground_truth` or `label`)")
    preds, labels = [], []
    for line_no, row in enumerate(rows, start=1):
        pred_key = next((k for k in ("prediction", "pred") if k in row), None)
        if pred_key is None:
            raise DataError(path, line_no, "prediction", "missing (expected `prediction` or `pred`)")
        if not isinstance(row[pred_key], str):
            raise DataError(path, line_no, pred_key, f"expected str, got {type(row[pred_key]).__name__}")
        if label_key not in row:
            raise DataError(path, line_no, label_key, "missing")
        preds.append(row[pred_key])
        labels.append(row[label_key])
    return preds, labels


def score_file(path, task: str, model_family: str = "gpt4") -> dict:
    """Official `compute_scores` for one task, in percent (unrounded), with n."""
    if task not in SCORERS:
        raise ValueError(f"unknown InfiniteBench task {task!r}; expected one of {', '.join(SCORERS)}")
    preds, labels = read_prediction_file(path)
    scorer = SCORERS[task]
    if task == "math_calc":
        scores = [scorer(p, l, model_family=model_family) for p, l in zip(preds, labels)]
    else:
        scores = [scorer(p, l) for p, l in zip(preds, labels)]
    return {"score": 100.0 * sum(scores) / len(scores), "n": len(scores), "per_item": [float(x) for x in scores]}
