"""RL prompt sets behind one small registry: name -> function(DataConfig) -> list[Prompt].

Sources:
- `synthetic`: passkey / key-value retrieval built offline by tasks/tiny/generate.py, worded by
  the tiny tasks' own prompt functions (the CPU default);
- `ruler`: the RULER generators (tasks/ruler) at `lengths` tokens of the trained model's tokenizer;
- `longbench_mc`: LongBench-v2-format multiple choice from a JSONL file (default: the fixture);
- `docqa`: DocQA-RL JSONL (`Tongyi-Zhiwen/DocQA-RL-1.6K` via `datasets`, or a local file).
Every file row is validated with tasks/data_io, so a bad row names file, line and field.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tasks.data_io import DataError, list_of_str, read_jsonl

LONGBENCH_FIXTURE = Path(__file__).resolve().parent.parent / "tasks" / "longbench_v2" / "data" / "fixture.jsonl"


@dataclass
class Prompt:
    id: str
    prompt: str  # the user turn; the chat template is applied by the rollout
    answers: list[str]  # gold strings (RULER/QA) or one letter (multiple choice)
    reward: str  # name in training.rewards.REWARDS


@dataclass
class DataConfig:
    source: str = "synthetic"
    path: str = ""  # local file for longbench_mc / docqa; empty = built-in default
    n: int = 64
    seed: int = 0
    kinds: list[str] = field(default_factory=lambda: ["passkey", "kv"])
    ruler_tasks: list[str] = field(default_factory=lambda: ["niah_single_1", "niah_multikey_2", "vt", "fwe"])
    lengths: list[int] = field(default_factory=lambda: [1024])
    tokenizer: str = ""  # RULER sizes prompts in this tokenizer's tokens; empty = the trained model's


SOURCES: dict[str, Callable[[DataConfig], list[Prompt]]] = {}


def source(name: str):
    def wrap(fn):
        SOURCES[name] = fn
        return fn
    return wrap


@source("synthetic")
def synthetic(cfg: DataConfig) -> list[Prompt]:
    from tasks.tiny.generate import gen_kv, gen_passkey
    from tasks.tiny.utils import kv_prompt, passkey_prompt

    makers = {"passkey": (gen_passkey, passkey_prompt), "kv": (gen_kv, kv_prompt)}
    bad = [k for k in cfg.kinds if k not in makers]
    if bad:
        raise ValueError(f"data.kinds: unknown {bad}, expected any of {', '.join(makers)}")
    rng = random.Random(cfg.seed)
    rows = []
    for i in range(cfg.n):
        kind = cfg.kinds[i % len(cfg.kinds)]
        make, to_text = makers[kind]
        r = make(rng, n=1)[0]  # the prompt text is the tiny task's own, so reward = eval score
        rows.append(Prompt(f"{kind}-{i}", to_text(r), r["answer"], "string_match_all"))
    return rows


@source("ruler")
def ruler(cfg: DataConfig) -> list[Prompt]:
    """RULER samples from the benchmark's own generators, as chat user turns sized (chat template
    included, thinking on) to each length, `cfg.n` per (task, length), seeded apart from the
    evaluation sets (seed + 1000). Rewards use the task's official scorer."""
    from tasks.tokens import task_tokenizer
    from tasks.ruler.build import BuildSpec, load_or_build
    from tasks.ruler.constants import METRIC_OF_KIND, TASKS

    if not cfg.tokenizer:
        raise ValueError("data.tokenizer: needed to size RULER prompts (train.py fills in the model)")
    unknown = [t for t in cfg.ruler_tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"data.ruler_tasks: unknown {unknown}; known: {', '.join(TASKS)}")
    tok = task_tokenizer(cfg.tokenizer)
    rows = []
    for task in cfg.ruler_tasks:
        for length in cfg.lengths:
            spec = BuildSpec(task, int(length), cfg.n, seed=cfg.seed + 1000, mode="reasoning")
            for d in load_or_build(spec, tok):
                rows.append(Prompt(f"ruler-{d['id']}", d["_prompt"], list(d["outputs"]),
                                   METRIC_OF_KIND[TASKS[task].kind]))
    return rows


@source("longbench_mc")
def longbench_mc(cfg: DataConfig) -> list[Prompt]:
    from tasks.longbench_v2.scoring import CHOICES
    from tasks.data_io import one_of

    spec = {"_id": str, "question": str, "context": str, "choice_A": str, "choice_B": str,
            "choice_C": str, "choice_D": str, "answer": one_of(*CHOICES)}
    rows = read_jsonl(cfg.path or LONGBENCH_FIXTURE, spec, id_field="_id")
    out = []
    for r in rows[: cfg.n]:
        text = (f"{r['context']}\n\nWhat is the correct answer to this question: {r['question']}\n"
                + "".join(f"({c}) {r['choice_' + c]}\n" for c in CHOICES)
                + 'Format your response as follows: "The correct answer is (insert answer here)".')
        out.append(Prompt(r["_id"], text, [r["answer"]], "longbench_choice"))
    return out


DOCQA_SPEC = {"prompt": str, "answers": list_of_str}


def _docqa_row(row):
    """Our {"prompt", "answers"} from either our layout or the hub's (verl layout: `prompt` is a
    list of chat messages, the answer is `reward_model.ground_truth`, a string or a list)."""
    if not isinstance(row, dict):
        return row
    if isinstance(row.get("prompt"), list):
        user = [m.get("content") for m in row["prompt"] if isinstance(m, dict) and m.get("role") == "user"]
        row = {**row, "prompt": user[-1] if user else None}
    if "answers" not in row and isinstance(row.get("reward_model"), dict):
        truth = row["reward_model"].get("ground_truth")
        row = {**row, "answers": [truth] if isinstance(truth, str) else truth}
    return row


@source("docqa")
def docqa(cfg: DataConfig) -> list[Prompt]:
    """DocQA-RL rows, from a local JSONL file (`data.path`) or the hub id; either layout (see
    `_docqa_row`). Rewards: token F1 against the answers."""
    from tasks.data_io import validate_row

    where = cfg.path or "Tongyi-Zhiwen/DocQA-RL-1.6K"
    if cfg.path:
        raw = read_jsonl(cfg.path, {})  # JSON errors name the line; fields are checked below
    else:
        import datasets  # only when asked for; tests always pass a local file

        raw = list(datasets.load_dataset("Tongyi-Zhiwen/DocQA-RL-1.6K", split="train"))
    rows = [validate_row(_docqa_row(r), DOCQA_SPEC, where, i + 1) for i, r in enumerate(raw)]
    return [Prompt(f"docqa-{i}", r["prompt"], r["answers"], "qa_f1") for i, r in enumerate(rows[: cfg.n])]


def load_prompts(cfg: DataConfig) -> list[Prompt]:
    if cfg.source not in SOURCES:
        raise ValueError(f"data.source: unknown {cfg.source!r}, expected one of {', '.join(SOURCES)}")
    prompts = SOURCES[cfg.source](cfg)
    if not prompts:
        raise DataError(cfg.path or cfg.source, None, None, "no prompts")
    return prompts
