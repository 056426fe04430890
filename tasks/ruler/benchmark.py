"""RULER's surface (see tasks/benchmarks.py): official prediction files, the per-length group
columns and plot, the RL prompt set from the benchmark's own generators, its two scorers as
rewards, and whether a run's documents are comparable with published RULER numbers."""

from __future__ import annotations

from functools import partial

from tasks.benchmarks import Benchmark, Headline, Need, Option, Plot, Report, Scored, Training, TrainingItem
from tasks.errors import ConfigError
from tasks.ruler.constants import METRIC_OF_KIND, TASKS
from tasks.ruler.scoring import OFFICIAL_ALIASES, item_score, score_file
from tasks.ruler.sources import GENERATED_ESSAYS, HOTPOTQA_DATASET, HOTPOTQA_URL, SQUAD_DATASET, SQUAD_URL


def score(path, task: str) -> Scored:
    """NVIDIA/RULER `evaluate.py` on one task's prediction file (official or our task name)."""
    result = score_file(path, task)
    return Scored(task=f"ruler_{OFFICIAL_ALIASES.get(task, task)}", per_item=result["per_item"],
                  summary={"score": result["score"], "n": result["n"]},
                  text=f"{task}: {result['score']:.2f} (n={result['n']}, empty predictions: {result['nulls']})")


def training_items(tokenizer: str = "", ruler_tasks=(), lengths=(), n: int = 64, seed: int = 0, **_) -> list[TrainingItem]:
    """RULER samples from the benchmark's own generators, as chat user turns sized (chat template
    included, thinking on) to each length, `n` per (task, length), seeded apart from the
    evaluation sets (seed + 1000). Rewards: the task's official scorer."""
    from tasks.ruler.build import BuildSpec, load_or_build
    from tasks.tokens import task_tokenizer

    if not tokenizer:
        raise ConfigError("data.tokenizer: needed to size RULER prompts (train.py fills in the model)")
    unknown = [t for t in ruler_tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"data.ruler_tasks: unknown {unknown}; known: {', '.join(TASKS)}")
    tok = task_tokenizer(tokenizer)
    items = []
    for task in ruler_tasks:
        for length in lengths:
            spec = BuildSpec(task, int(length), n, seed=seed + 1000, mode="reasoning")
            items += [TrainingItem(f"ruler-{d['id']}", d["_prompt"], list(d["outputs"]), METRIC_OF_KIND[TASKS[task].kind])
                      for d in load_or_build(spec, tok)]
    return items


def published_comparable(data_sources: list[dict]) -> tuple[bool, str]:
    """(comparable, reason): can a RULER task's scores stand next to published RULER numbers?

    `data_sources` is the task's run.json `data_sources` (its documents' `_sources`). Not
    comparable: a generated essay haystack (no corpus was found; `longact data ruler-essays` or
    metadata `essay_path` gives the real one) or a sizing other than `official` (`exact` fills
    every sample to its budget; task version 1.0 recorded no sizing and sized exactly). The reason
    names each cause; it is empty when comparable (or when nothing was recorded)."""
    reasons: list[str] = []

    def add(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    for entry in data_sources or []:
        for src in entry.get("sources") or []:
            if src.get("kind") == "essay" and str(src.get("origin", "")).startswith(GENERATED_ESSAYS):
                add("generated essay haystack (build the essays with `longact data ruler-essays` or pass "
                    "metadata essay_path)")
        sizing = entry.get("sizing") or "exact (task version 1.0)"
        if sizing != "official":
            add(f"{sizing} sizing fills every sample to its budget (published numbers: sizing official)")
    return not reasons, "; ".join(reasons)


def _reward(metric: str, completion: str, answers: list) -> float:
    """The eval score of one sample (`process_results` / 100)."""
    return item_score(completion, answers, metric)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def describe(task) -> str:
    """One line from the task's official arguments (`constants.TASKS`)."""
    a = task.args
    if task.kind == "niah":
        k, v = a["type_needle_k"].rstrip("s"), a["type_needle_v"].rstrip("s")
        haystack = {"noise": "repeated filler sentences", "essay": "essays", "needle": "distractor needles"}
        return (f"needle in a haystack of {haystack[a['type_haystack']]}: {_count(a['num_needle_k'], k + ' key')}, "
                f"{_count(a['num_needle_v'], v + ' value')} each, {a['num_needle_q']} asked")
    return {
        "variable_tracking": f"variable tracking: {_count(a.get('num_chains', 1), 'chain')} of {a.get('num_hops')} "
                             "assignments hidden in filler sentences",
        "common_words_extraction": f"common words extraction: the {a.get('num_cw')} most frequent words of a long list",
        "freq_words_extraction": "frequent words extraction: the 3 most frequent coded words of a long text",
        "qa": f"question answering on {'SQuAD v2' if a.get('dataset') == 'squad' else 'HotpotQA'} documents among "
              "distractors",
    }[task.kind]


EFFECTIVE_THRESHOLD = 85.6
"""RULER's published effective-length threshold: Llama2-7B's mean at 4k (the paper, Table 3)."""

ESSAY_TASKS = tuple(f"ruler_{name}" for name, t in TASKS.items() if t.args.get("type_haystack") == "essay")
"""The tasks whose haystack is the official essay corpus."""

BENCHMARK = Benchmark(
    name="ruler",
    title="RULER",
    score=score,
    options=(Option("task", "task name (niah_single_1, vt, cwe, ...; official qa_1/qa_2 too)",
                    choices=tuple(TASKS) + tuple(OFFICIAL_ALIASES)),),
    report=Report(group_field="length",
                  plots=(Plot("RULER score vs context length", "group_lines", "ruler", "RULER mean over tasks (%)",
                              field="length", xlabel="context length (tokens)"),),
                  # RULER's README table: one column per length, Avg, wAvg (inc/dec), effective length
                  headline=Headline("per_value", "ruler", field="length", weighted=True, order=2,
                                    threshold=EFFECTIVE_THRESHOLD, threshold_label="Eff. length",
                                    threshold_note=f"Eff. length: the longest length whose score (and every shorter "
                                                   f"length's) is at least {EFFECTIVE_THRESHOLD}, RULER's threshold "
                                                   "(Llama2-7B's score at 4k)")),
    training=Training("ruler", training_items),
    rewards={m: partial(_reward, m) for m in ("string_match_all", "string_match_part")},
    descriptions={"ruler": "13 synthetic tasks at 4k to 128k tokens (the lengths that fit the window), 500 samples "
                           "per task and length, prompts built in the model's tokens; mean of the task scores",
                  **{f"ruler_{name}": describe(t) for name, t in TASKS.items()}},
    needs=(
        Need("the official essay haystack (Paul Graham essays from the URL list of NVIDIA/RULER)", "essay_path",
             "/data/ruler/essays", tasks=ESSAY_TASKS,
             how="`longact data ruler-essays` once", found_without_key=True,
             fallback="a generated haystack stands in, recorded as such in run.json (not the published benchmark)"),
        Need(f"SQuAD v2 dev from the Hugging Face Hub ({SQUAD_DATASET[0]})", "squad_path", "/data/dev-v2.0.json",
             how=f"get {SQUAD_URL} once", tasks=("ruler_qa_squad",)),
        Need(f"HotpotQA dev, distractor setting, from the Hugging Face Hub ({HOTPOTQA_DATASET[0]})", "hotpotqa_path",
             "/data/hotpot_dev_distractor_v1.json", how=f"get {HOTPOTQA_URL} once", tasks=("ruler_qa_hotpot",)),
    ),
    score_examples=("pred/niah_single_1.jsonl --task niah_single_1 --json",),
    published_comparable=published_comparable,
)
