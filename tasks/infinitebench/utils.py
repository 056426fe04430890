"""lm-eval hooks for InfiniteBench (official protocol of OpenBMB/InfiniteBench; README.md here).

Rows come from a local directory of the official files (`--metadata '{"data_dir": DIR}'`, one
`<task>.jsonl` per task) or from the official dataset through `datasets`. Every row is validated
with file, line and field in errors. The prompt is the official GPT-4-family user turn (a system
prompt goes before it through `metadata.chat_prefix`), middle-truncated as a whole in tokens of
the evaluated tokenizer, as `create_msgs` does, to `max_length`:

    default max_length = min(127,000, window - chat-template overhead - the task's generation budget)

127,000 = 128,000 - 1,000 is the GPT-4-family cut of `create_msgs`; a smaller window cuts further
so that every request fits. (`--metadata '{"max_length": N}'` overrides.) What was cut is stored on
each document (`_truncated`, `_original_tokens`), so run.json counts it, and the cut and why it was
chosen go into each document's `_sources` (run.json `data_sources`).
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks import tokens
from tasks.data_io import DataError, list_of_str, read_jsonl, to_dataset_dict, validate_row
from tasks.infinitebench.prompts import MAX_NEW_TOKENS, build_prompt, chat_prefix, labels, row_problem
from tasks.infinitebench.scoring import SCORERS

OFFICIAL_DATASET = "xinrongzhang2022/InfiniteBench"
GPT4_CUT = 128_000 - 1_000
"""`create_msgs` (the GPT-4 family, our default) cuts the filled prompt to this many tokens."""
CHOICE_TASKS = ("longbook_choice_eng", "code_debug")


def _answer(value) -> str | None:
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        return None
    return f"expected a string or a non-empty list of strings, got {str(value)[:60]!r}"


ROW_SPEC = {"id": int, "context": str, "input": str, "answer": _answer, "options": list_of_str}


def _check(task: str, row: dict, path, line: int | None) -> dict:
    validate_row(row, ROW_SPEC, path, line)
    row = {k: row[k] for k in ROW_SPEC}
    if isinstance(row["answer"], str):
        row["answer"] = [row["answer"]]
    problem = row_problem(task, row)
    if problem:
        field, message = problem.split(": ", 1)
        raise DataError(path, line, field, message)
    if task in CHOICE_TASKS:
        ans = row["answer"]
        if not (len(ans) == 2 and ans[1] in ("A", "B", "C", "D")) and ans[0] not in row["options"]:
            raise DataError(path, line, "answer", f"{ans[0][:60]!r} is not one of the options")
    return row


def _official_features():
    import datasets

    return datasets.Features({"id": datasets.Value("int64"), "context": datasets.Value("string"),
                              "input": datasets.Value("string"), "answer": datasets.Sequence(datasets.Value("string")),
                              "options": datasets.Sequence(datasets.Value("string"))})


def load_rows(task: str, data_dir: str | None = None) -> list[dict]:
    if data_dir:
        path = Path(data_dir) / f"{task}.jsonl"
        rows = read_jsonl(path, {}, id_field="id")
        return [_check(task, r, path, i) for i, r in enumerate(rows, start=1)]
    import datasets

    try:
        ds = datasets.load_dataset(OFFICIAL_DATASET, data_files={task: f"{task}.jsonl"}, split=task,
                                   features=_official_features())
    except Exception as e:  # noqa: BLE001 - offline machines raise several kinds
        raise DataError(OFFICIAL_DATASET, None, None,
                        f"cannot load {task} from the official dataset ({type(e).__name__}). Offline? Download "
                        f"the files once (huggingface-cli download {OFFICIAL_DATASET} --repo-type dataset "
                        "--local-dir DIR) and pass --metadata '{\"data_dir\": \"DIR\"}'") from e
    return [_check(task, dict(r), OFFICIAL_DATASET, i) for i, r in enumerate(ds, start=1)]


def load(ib_task: str, data_dir=None, tokenizer=None, max_model_len=None, max_length=None, limit_rows=None, **_):
    rows = load_rows(ib_task, data_dir)
    if limit_rows:
        rows = rows[: int(limit_rows)]
    prompts = [build_prompt(ib_task, r) for r in rows]
    fitted = [tokens.FitResult.uncounted(p) for p in prompts]
    limit, why = None, "none: no tokenizer in the task metadata"
    if tokenizer:
        tok = tokens.task_tokenizer(tokenizer)
        limit, why = truncation_limit(tok, ib_task, max_model_len, max_length)
        fitted = tokens.PromptTruncator(tok, limit, skip_special_tokens=False).batch(prompts)
    sources = json.dumps({"prompt_family": "gpt4", "truncation": {"max_length": limit, "rule": why}}, sort_keys=True)
    docs = [{**r, "task": ib_task, "labels": labels(ib_task, r), "_prompt": f.text, "_truncated": f.truncated,
             "_original_tokens": f.original_tokens, "_max_length": limit, "_sources": sources}
            for r, f in zip(rows, fitted)]
    return to_dataset_dict(docs)


def truncation_limit(tok, ib_task: str, max_model_len=None, max_length=None) -> tuple[int, str]:
    """(max_length, why): the metadata's value, else the official GPT-4-family cut when the
    window leaves room for it, else what the window leaves after the chat template and the
    task's generation budget."""
    if max_length:
        return int(max_length), "metadata max_length"
    gen = MAX_NEW_TOKENS[ib_task]
    limit = tokens.default_max_length(tok, max_model_len, gen, cap=GPT4_CUT, prefix=chat_prefix(ib_task))
    if limit == GPT4_CUT:
        return limit, "official GPT-4-family cut (create_msgs: 128,000 - 1,000 tokens)"
    return limit, (f"the {max_model_len}-token window minus the chat template and {gen} tokens to generate "
                   f"(below the official {GPT4_CUT:,}-token cut)")


def doc_to_text(doc: dict) -> str:
    return doc["_prompt"]


def process_results(doc: dict, results: list[str]) -> dict:
    return {"score": 100.0 * SCORERS[doc["task"]](results[0] or "", doc["labels"])}
