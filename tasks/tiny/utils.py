"""Tiny tasks: small offline sets that exercise the prompt and scoring paths of the benchmarks.

* tiny_mc       LongBench v2 shape: official 0-shot prompt, chat endpoint, official extraction.
* tiny_niah     RULER niah shape: completion endpoint with the answer prefix, string_match_all.
* tiny_passkey  InfiniteBench passkey shape: chat endpoint, first-integer match.
* tiny_kv       InfiniteBench kv_retrieval shape: chat endpoint, whole-word match.

All scores are in percent (100 = correct) so that means and standard errors read as percentages.
"""

from __future__ import annotations

from pathlib import Path

from tasks.data_io import list_of_str, read_jsonl, to_dataset_dict
from tasks.infinitebench.scoring import score_kv_retrieval, score_passkey
from tasks.longbench_v2.prompts import ZERO_SHOT, fill
from tasks.longbench_v2.scoring import extract_answer
from tasks.longbench_v2.utils import ROW_SPEC as LONGBENCH_V2_ROW_SPEC
from tasks.ruler.scoring import postprocess_pred, sample_match_all
from tasks.ruler.sources import NOISE_HAYSTACK

DATA_DIR = Path(__file__).parent / "data"
HAYSTACK = NOISE_HAYSTACK
"""The sentence tiny haystacks repeat (RULER's noise haystack); the skill curriculum uses it too."""

MC_SPEC = LONGBENCH_V2_ROW_SPEC  # tiny_mc rows have exactly LongBench v2's fields
NIAH_SPEC = {"id": str, "length": int, "context": str, "query": str, "outputs": list_of_str}
INF_SPEC = {"id": int, "context": str, "input": str, "answer": list_of_str, "options": list}


def _load(name: str, spec: dict, id_field: str, data_path: str | None = None):
    return to_dataset_dict(read_jsonl(data_path or DATA_DIR / name, spec, id_field=id_field))


# custom_dataset hooks: lm-eval calls them with the task metadata as keyword arguments.
def load_mc(data_path: str | None = None, **_):
    return _load("tiny_mc.jsonl", MC_SPEC, "_id", data_path)


def load_niah(data_path: str | None = None, **_):
    return _load("tiny_niah.jsonl", NIAH_SPEC, "id", data_path)


def load_passkey(data_path: str | None = None, **_):
    return _load("tiny_passkey.jsonl", INF_SPEC, "id", data_path)


def load_passkey_far(data_path: str | None = None, **_):
    return _load("tiny_passkey_far.jsonl", INF_SPEC, "id", data_path)


def load_kv(data_path: str | None = None, **_):
    return _load("tiny_kv.jsonl", INF_SPEC, "id", data_path)


# Prompts ---------------------------------------------------------------------------------

def mc_prompt(doc: dict) -> str:
    """LongBench v2's official 0-shot template (the harness fits it to the window)."""
    return fill(ZERO_SHOT, doc)


def niah_prompt(doc: dict) -> str:
    """RULER niah_single template with its answer prefix appended (completion endpoint)."""
    return (
        "Some special magic numbers are hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the numbers afterwards.\n"
        f"{doc['context']}\n"
        f"What is the special magic number for {doc['query']} mentioned in the provided text? "
        f"The special magic number for {doc['query']} mentioned in the provided text is"
    )


def passkey_prompt(doc: dict) -> str:
    return (
        "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
        "them. I will quiz you about the important information there.\n\n"
        f"{doc['context']}\n\n{doc['input']}"
    )


def kv_prompt(doc: dict) -> str:
    return (
        "Extract the value corresponding to the specified key in the JSON object below.\n\n"
        f"{doc['context']}\n\n{doc['input']}"
    )


# Scoring ---------------------------------------------------------------------------------

def mc_results(doc: dict, results: list[str]) -> dict:
    pred = extract_answer(results[0])
    return {"score": 100.0 * (pred == doc["answer"]), "null_rate": 100.0 * (pred is None)}


def niah_results(doc: dict, results: list[str]) -> dict:
    return {"score": 100.0 * sample_match_all(postprocess_pred(results[0]), doc["outputs"])}


def passkey_results(doc: dict, results: list[str]) -> dict:
    return {"score": 100.0 * score_passkey(results[0], doc["answer"])}


def kv_results(doc: dict, results: list[str]) -> dict:
    return {"score": 100.0 * score_kv_retrieval(results[0], doc["answer"])}
