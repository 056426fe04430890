"""lm-eval hooks for RULER (NVIDIA/RULER protocol; see README.md in this folder).

One loader serves all 13 tasks: the task YAML names the RULER task (`metadata.ruler_task`), the
harness adds the evaluated `tokenizer` and `max_model_len`, and `--metadata` may set:

  lengths            target lengths in tokens (default 4k..128k, those that fit the window)
  num_samples        samples per length (default 500, official)
  seed               generator seed (default 42, official)
  sizing             official (default in official mode: the official search, then fixed steps
                     down per sample) | exact (default in reasoning mode: every sample fills its budget)
  essay_path         essay corpus: directory of .txt, a .txt, or PaulGrahamEssays.json
  squad_path, hotpotqa_path   official SQuAD v2 dev / HotpotQA dev JSON files
  sentence_splitter  regex (default) | nltk
  chat_template      true | false (default: when the tokenizer has one)
  chat_template_kwargs        passed to the chat template (default {"enable_thinking": false})
  cache_dir          where built datasets are cached (default $LONGACT_CACHE/ruler/datasets)

Each document carries its full prompt (`_prompt`: model template + task text + answer prefix,
sent to the completions endpoint as a prefill), gold `outputs`, `length`, `prompt_tokens` and
the data sources and sizing it was built from (`_sources`, run.json `data_sources`).

Without an essay corpus the essay-haystack tasks (niah_single_2/3, multikey_1, multivalue,
multiquery) run on a generated stand-in: loading them warns, and their `_sources` say so
(`benchmark.published_comparable` reads that for the reports).
"""

from __future__ import annotations

import logging

from tasks.data_io import DataError, to_dataset_dict
from tasks.ruler import sources
from tasks.ruler.build import BuildSpec, load_or_build
from tasks.ruler.constants import DEFAULT_LENGTHS, DEFAULT_NUM_SAMPLES, DEFAULT_SEED, METRIC_OF_KIND, TASKS
from tasks.ruler.scoring import item_score
from tasks.ruler.sizing import SIZINGS
from tasks.tokens import task_tokenizer

log = logging.getLogger("longact.ruler")


def resolve_lengths(lengths, max_model_len: int | None) -> list[int]:
    """Explicit lengths must fit the window; the default list keeps those that do."""
    if lengths is None:
        chosen = [n for n in DEFAULT_LENGTHS if not max_model_len or n <= int(max_model_len)]
        if not chosen:
            raise DataError("metadata", None, "lengths",
                            f"no default RULER length (4096..131072) fits the {max_model_len}-token window; pass "
                            "--metadata '{\"lengths\": [1024]}' or raise --max-model-len")
        if max_model_len and len(chosen) < len(DEFAULT_LENGTHS):
            log.warning("RULER: lengths above the %s-token window skipped; evaluating %s", max_model_len, chosen)
        return chosen
    if isinstance(lengths, (int, str)):
        lengths = [lengths]
    try:
        out = sorted({int(x) for x in lengths})
    except (TypeError, ValueError) as e:
        raise DataError("metadata", None, "lengths", f"expected a list of integers, got {lengths!r}") from e
    too_long = [n for n in out if max_model_len and n > int(max_model_len)]
    if too_long:
        raise DataError("metadata", None, "lengths",
                        f"{too_long} exceed the served window of {max_model_len} tokens; raise --max-model-len or drop them")
    return out


def _tokenizer(tokenizer):
    if tokenizer is None:
        raise DataError("metadata", None, "tokenizer",
                        "RULER builds prompts in the evaluated model's tokens; `longact eval` passes it, with plain "
                        "lm_eval add --metadata '{\"tokenizer\": \"/path/to/model\", \"max_model_len\": N}'")
    return task_tokenizer(tokenizer)


def resolve_sizing(sizing, mode: str) -> str:
    """`sizing` as given, else `official` in official mode and `exact` in reasoning mode."""
    if sizing is None:
        return "official" if mode == "official" else "exact"
    if sizing not in SIZINGS:
        raise DataError("metadata", None, "sizing", f"expected one of {', '.join(SIZINGS)}, got {sizing!r}")
    return sizing


def warn_if_generated_essays(ruler_task: str, essay_path=None) -> bool:
    """Warn (once per load) when an essay-haystack task will run on the generated stand-in."""
    if TASKS[ruler_task].args.get("type_haystack") != "essay":
        return False
    if not sources.essay_words(essay_path)[1].origin.startswith(sources.GENERATED_ESSAYS):
        return False
    log.warning("ruler_%s: no essay corpus found, so its haystack is a generated stand-in and its scores are not "
                "comparable with published RULER numbers. Build the essays once with `longact data ruler-essays` "
                "(online) or pass --metadata '{\"essay_path\": \"/path/to/essays\"}'", ruler_task)
    return True


def load(ruler_task: str, tokenizer=None, max_model_len=None, lengths=None, num_samples=DEFAULT_NUM_SAMPLES,
         seed=DEFAULT_SEED, sizing=None, essay_path=None, squad_path=None, hotpotqa_path=None,
         sentence_splitter="regex", chat_template=None, chat_template_kwargs=None, cache_dir=None, mode="official", **_):
    if ruler_task not in TASKS:
        raise DataError("task yaml", None, "metadata.ruler_task", f"unknown RULER task {ruler_task!r}")
    tok = _tokenizer(tokenizer)
    sizing = resolve_sizing(sizing, mode)
    warn_if_generated_essays(ruler_task, essay_path)
    docs = []
    for length in resolve_lengths(lengths, max_model_len):
        spec = BuildSpec(task=ruler_task, length=length, num_samples=int(num_samples), seed=int(seed),
                         essay_path=essay_path, squad_path=squad_path, hotpotqa_path=hotpotqa_path,
                         sentence_splitter=sentence_splitter, use_chat_template=chat_template,
                         chat_template_kwargs=chat_template_kwargs, mode=mode, sizing=sizing)
        try:
            docs += load_or_build(spec, tok, cache_dir=cache_dir, progress=length >= 16384)
        except ValueError as e:
            if isinstance(e, DataError):
                raise
            raise DataError("--metadata lengths", None, None, str(e)) from e
    return to_dataset_dict(docs)


def doc_to_text(doc: dict) -> str:
    return doc["_prompt"]


def process_results(doc: dict, results: list[str]) -> dict:
    kind = TASKS[doc["id"].rsplit("-", 2)[0]].kind
    return {"score": 100.0 * item_score(results[0], doc["outputs"], METRIC_OF_KIND[kind])}
