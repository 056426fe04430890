"""lm-eval hooks for LongBench v2 (official protocol of THUDM/LongBench `pred.py`).

Loading validates every row, fills the official template and middle-truncates the *whole filled
prompt* to `max_length` tokens of the evaluated model's tokenizer (first half + last half of the
token ids, decoded skipping special tokens), exactly as `pred.py::query_llm` does. The result is
stored on the document (`_prompt`, `_truncated`, `_original_tokens`), so the harness sees a prompt
that already fits and records what was cut.

`max_length` default: min(120,000, max_model_len - generation budget - chat-template overhead),
where 120,000 is the official value for 128k-window models. Override with
`--metadata '{"max_length": N}'`. Without a tokenizer in the metadata (plain `lm_eval` by hand)
nothing is truncated, and the task README says so.

The CoT task's second pass (`cot_answer_prompt`, the task's `metadata.followup`) goes through the
same middle truncation to the same `max_length` (the document's `_max_length`), as `pred.py`
sends every prompt through `query_llm`. The backend hands it the evaluated tokenizer (the object
the prompts are fitted with); the document names the tokenizer that cut it (`_tokenizer`, its
identity from `tasks.tokens.tokenizer_identity`), and a second pass handed another tokenizer is
refused rather than cut in the wrong tokens. Two evaluations with different tokenizers in one
process (a sweep, a notebook) each truncate in their own.
"""

from __future__ import annotations

from pathlib import Path

from tasks import tokens
from tasks.data_io import DataError, one_of, read_records, to_dataset_dict, validate_row
from tasks.errors import UserError
from tasks.longbench_v2.prompts import COT_ANSWER, build_prompt, fill
from tasks.longbench_v2.scoring import CHOICES, DIFFICULTIES, LENGTHS, extract_answer, item_score
from tasks.tokens import FitResult, PromptTruncator

OFFICIAL_DATASET = "THUDM/LongBench-v2"  # alias zai-org/LongBench-v2; split "train", 503 items
OFFICIAL_MAX_LENGTH = 120_000
FIXTURE = Path(__file__).parent / "data" / "fixture.jsonl"
ROW_SPEC = {
    "_id": str, "domain": str, "sub_domain": str, "difficulty": one_of(*DIFFICULTIES),
    "length": one_of(*LENGTHS), "question": str, "choice_A": str, "choice_B": str,
    "choice_C": str, "choice_D": str, "answer": one_of(*CHOICES), "context": str,
}


def load_rows(data_path: str | None = None) -> list[dict]:
    """Rows from a local JSON/JSONL file, or from the official Hugging Face dataset."""
    if data_path:
        return read_records(data_path, ROW_SPEC, id_field="_id")
    import datasets

    try:
        ds = datasets.load_dataset(OFFICIAL_DATASET, split="train")
    except Exception as e:  # noqa: BLE001 - offline machines raise several kinds
        raise DataError(OFFICIAL_DATASET, None, None,
                        f"cannot load the official dataset ({type(e).__name__}: {str(e)[:200]}). Offline? "
                        "Download data.json once and pass --metadata '{\"data_path\": \"/path/data.json\"}'") from e
    rows = [{k: item[k] for k in ROW_SPEC} for item in ds]
    for i, r in enumerate(rows, start=1):
        validate_row(r, ROW_SPEC, OFFICIAL_DATASET, i)
    return rows


def default_max_length(tokenizer, max_model_len: int | None, gen_budget: int) -> int:
    return tokens.default_max_length(tokenizer, max_model_len, gen_budget, cap=OFFICIAL_MAX_LENGTH)


def _load(variant: str, data_path=None, tokenizer=None, max_model_len=None, max_length=None,
          gen_budget=128, limit_rows=None, **_):
    rows = load_rows(data_path)
    if limit_rows:
        rows = rows[: int(limit_rows)]
    truncate = None
    if tokenizer:
        tok = tokens.task_tokenizer(tokenizer)
        truncate = PromptTruncator(tok, max_length or default_max_length(tok, max_model_len, gen_budget))
    prompts = [build_prompt(r, variant) for r in rows]
    fitted = truncate.batch(prompts) if truncate is not None else [FitResult.uncounted(p) for p in prompts]
    out = [{**r, "_prompt": f.text, "_truncated": f.truncated, "_original_tokens": f.original_tokens,
            "_max_length": truncate.max_length if truncate else None,
            "_tokenizer": tokens.tokenizer_identity(truncate.tok) if truncate else None}
           for r, f in zip(rows, fitted)]
    return to_dataset_dict(out)


# One loader per variant. Their keyword parameters are the metadata keys a user may pass
# (`longact eval` rejects others), so each spells them out.
def load_0shot(data_path=None, tokenizer=None, max_model_len=None, max_length=None, gen_budget=128, limit_rows=None, **_):
    return _load("0shot", data_path, tokenizer, max_model_len, max_length, gen_budget, limit_rows)


def load_cot(data_path=None, tokenizer=None, max_model_len=None, max_length=None, gen_budget=128, limit_rows=None, **_):
    return _load("cot", data_path, tokenizer, max_model_len, max_length, gen_budget, limit_rows)


def load_nocontext(data_path=None, tokenizer=None, max_model_len=None, max_length=None, gen_budget=128,
                   limit_rows=None, **_):
    return _load("nocontext", data_path, tokenizer, max_model_len, max_length, gen_budget, limit_rows)


def doc_to_text(doc: dict) -> str:
    return doc["_prompt"]


def cot_answer_prompt(doc: dict, reasoning: str, tokenizer=None) -> str:
    """Second CoT pass, as `pred.py` builds and sends it: the answer template (document omitted)
    with the stripped first-pass output, then the official middle truncation to the document's
    `_max_length` in `tokenizer`, which must be the one the document was cut with (none needed
    when the task was loaded without one)."""
    prompt = fill(COT_ANSWER, doc, cot=reasoning.strip())
    max_length = doc.get("_max_length")
    if max_length is None:
        return prompt
    if not doc.get("_tokenizer"):
        raise UserError("longbench_v2_cot: the document has a truncation length but names no tokenizer "
                        "(load the task with metadata.tokenizer)")
    if tokenizer is None:
        raise UserError("longbench_v2_cot: the second pass needs the tokenizer the document was cut with "
                        "(the backend hands it over: followup(doc, first_output, tokenizer))")
    tok = tokens.task_tokenizer(tokenizer)
    if tokens.tokenizer_identity(tok) != doc["_tokenizer"]:
        raise UserError(f"longbench_v2_cot: the document was cut by tokenizer {doc['_tokenizer'][:16]}, but the second "
                        f"pass was handed tokenizer {tokens.tokenizer_identity(tok)[:16]}; load the task with the "
                        "evaluated tokenizer (metadata.tokenizer)")
    return PromptTruncator(tok, int(max_length))(prompt).text


def process_results(doc: dict, results: list[str]) -> dict:
    response = (results[0] or "").strip()
    pred = extract_answer(response)
    return {
        "acc": 100.0 * item_score(pred, doc["answer"]),
        "acc_compensated": 100.0 * item_score(pred, doc["answer"], compensated=True),
        "null_rate": 100.0 * (pred is None),
        "empty_rate": 100.0 * (response == ""),
    }
