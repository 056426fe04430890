"""RL prompt sets behind one small registry: name -> function(DataConfig) -> list[Prompt].

Sources:
- every benchmark's own training set (`tasks.benchmarks.training_sets()`: `synthetic`, the tiny
  suite's offline passkey / key-value retrieval, the CPU default; `ruler`, the RULER generators
  at `lengths` tokens of the trained model's tokenizer; `longbench_mc`, LongBench-v2-format
  multiple choice with the eval task's own prompt), built by the benchmark's prompt builder;
- `docqa`: DocQA-RL JSONL (`Tongyi-Zhiwen/DocQA-RL-1.6K` via `datasets`, or a local file).
Every file row is validated with tasks/data_io, so a bad row names file, line and field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from tasks.benchmarks import training_sets
from tasks.data_io import DataError, list_of_str, read_jsonl
from tasks.errors import ConfigError


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


def _benchmark_source(training):
    """A source that is a benchmark's own training set (tasks/<bench>/benchmark.py)."""
    def load(cfg: DataConfig) -> list[Prompt]:
        return [Prompt(it.id, it.prompt, list(it.answers), it.reward) for it in training.items(**asdict(cfg))]
    return load


SOURCES.update({name: _benchmark_source(training) for name, training in training_sets().items()})


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


def run_order(prompts: list[Prompt], seed: int) -> list[Prompt]:
    """The prompts in the order a run with this seed uses them (and calibrates the mask on): one
    shuffle by the run seed, so replicate seeds differ in data order as well as in sampling, while
    arms at one seed see the same prompts in the same order."""
    import random

    return random.Random(seed).sample(prompts, len(prompts))


def load_prompts(cfg: DataConfig) -> list[Prompt]:
    if cfg.source not in SOURCES:
        raise ConfigError(f"data.source: unknown {cfg.source!r}, expected one of {', '.join(SOURCES)}")
    prompts = SOURCES[cfg.source](cfg)
    if not prompts:
        raise DataError(cfg.path or cfg.source, None, None, "no prompts")
    return prompts
