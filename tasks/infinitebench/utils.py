"""lm-eval hooks for InfiniteBench (official protocol of OpenBMB/InfiniteBench; README.md here).

Rows come from a local directory of the official files (`--metadata '{"data_dir": DIR}'`, one
`<task>.jsonl` per task) or from the official dataset through `datasets`. Every row is validated
with file, line and field in errors. The prompt is the official GPT-4-family user turn (a system
prompt goes before it through `metadata.chat_prefix`), middle-truncated as a whole in tokens of
the evaluated tokenizer, as `create_msgs` does, to `max_length`:

    default max_length = min(131072, window - chat-template overhead) - the task's generation budget

(`--metadata '{"max_length": N}'` overrides.) What was cut is stored on each document
(`_truncated`, `_original_tokens`), so run.json counts it.
"""

from __future__ import annotations

from pathlib import Path

from tasks import tokens
from tasks.data_io import DataError, list_of_str, read_jsonl, to_dataset_dict, validate_row
from tasks.infinitebench.prompts import MAX_NEW_TOKENS, build_prompt, chat_prefix, labels, row_problem
from tasks.infinitebench.scoring import SCORERS

OFFICIAL_DATASET = "xinrongzhang2022/InfiniteBench"
OFFICIAL_WINDOW = 128 * 1024  # the official local-model scripts truncate to 128k tokens
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
    fitted = [(p, False, None) for p in prompts]
    limit = None
    if tokenizer:
        tok = tokens.task_tokenizer(tokenizer)
        gen = MAX_NEW_TOKENS[ib_task]
        limit = int(max_length) if max_length else tokens.default_max_length(
            tok, max_model_len, gen, cap=OFFICIAL_WINDOW - gen, prefix=chat_prefix(ib_task))
        fitted = tokens.PromptTruncator(tok, limit, skip_special_tokens=False).batch(prompts)
    docs = [{**r, "task": ib_task, "labels": labels(ib_task, r), "_prompt": p, "_truncated": cut,
             "_original_tokens": n, "_max_length": limit} for r, (p, cut, n) in zip(rows, fitted)]
    return to_dataset_dict(docs)


def doc_to_text(doc: dict) -> str:
    return doc["_prompt"]


def process_results(doc: dict, results: list[str]) -> dict:
    return {"score": 100.0 * SCORERS[doc["task"]](results[0] or "", doc["labels"])}
