"""`--shard K/N`: one of N runs that together evaluate every item once (Slurm arrays, several
machines without a shared server); `longact merge` (harness/run/merge.py) joins them.

Which shard an item belongs to depends only on the items and their prompt lengths, never on
K: every shard computes the same partition, so N runs of one command cover each item exactly
once. Shards are balanced in prompt tokens, not in item count: long-context tasks mix 4k and
128k prompts, and a shard's time goes with its tokens. Items are placed longest first on the
shard with the fewest tokens so far (greedy "longest processing time" scheduling), across all
tasks of the run, so a shard's total is within one item of the mean.

lm-eval evaluates a subset through `evaluate(samples={task: [doc_id, ...]})`, but numbers the
subset's requests by their position in it; `TrueDocIds` gives each request back its real doc_id
before it reaches the backend, so per-request seeds, request records and samples rows are those
of an unsharded run.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from harness.errors import UserError

SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    """1-based: shard K of N (Slurm: `--shard $SLURM_ARRAY_TASK_ID/N` with `--array=1-N`)."""
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = SHARD.match(str(text))
        if not m:
            raise UserError(f"--shard {text!r}: expected K/N, e.g. 1/4 (shard K of N, K from 1 to N)")
        k, n = int(m.group(1)), int(m.group(2))
        if not 1 <= k <= n:
            raise UserError(f"--shard {text}: K must be between 1 and N={n} (shards are numbered from 1)")
        return cls(k, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def balanced_partition(weights: dict[str, list[tuple[int, int]]], count: int) -> list[dict[str, list[int]]]:
    """Split items {task: [(doc_id, tokens), ...]} into `count` parts of near-equal total tokens.

    Longest first, each on the part with the fewest tokens so far (ties: the lower part); the
    order of equal-length items is fixed by (task, doc_id), so the result depends on nothing else."""
    items = sorted(((tokens, task, doc_id) for task, pairs in weights.items() for doc_id, tokens in pairs),
                   key=lambda x: (-x[0], x[1], x[2]))
    loads = [0] * count
    parts: list[dict[str, list[int]]] = [{} for _ in range(count)]
    for tokens, task, doc_id in items:
        k = min(range(count), key=lambda i: (loads[i], i))
        loads[k] += tokens
        parts[k].setdefault(task, []).append(doc_id)
    for part in parts:
        for ids in part.values():
            ids.sort()  # lm-eval maps subset positions back to doc ids through a sorted list
    return parts


SAMPLED_ITEMS = 8
"""Items per task whose prompts are tokenized to learn the task's tokens per character."""


def prompt_weights(tasks: dict, tokenizer, limit: float | None) -> tuple[dict[str, list[tuple[int, int]]], dict[str, int]]:
    """Per task, (doc_id, prompt tokens) of the items a run with `limit` evaluates, and their count.

    The prompt is the task's `doc_to_text` (before any chat template, which adds the same few
    tokens to every item). Tokens are estimated: a task's prompts share their kind of text, so
    its first few prompts give its tokens per character, and each item's length in characters
    times that is its weight. Tokenizing every prompt instead would cost each shard minutes at
    128k (LongBench v2: ~64M tokens); the estimate needs only string lengths."""
    from lm_eval.evaluator_utils import get_sample_size

    weights, totals = {}, {}
    for name, task in tasks.items():
        docs = task.eval_docs
        n = min(len(docs), get_sample_size(task, limit) or len(docs))
        texts = [str(task.doc_to_text(docs[i])) for i in range(n)]
        sample = texts[:SAMPLED_ITEMS]
        chars = sum(map(len, sample))
        tokens = sum(len(ids) for ids in tokenizer(sample, add_special_tokens=False)["input_ids"]) if sample else 0
        per_char = tokens / chars if chars else 0.0
        weights[name], totals[name] = [(i, max(1, round(len(t) * per_char))) for i, t in enumerate(texts)], n
    return weights, totals


def restrict(loaded: dict, items: dict[str, list[int]]) -> None:
    """Drop the tasks this shard has no item of (lm-eval reads an empty selection as "all")
    from the loaded tasks and their groups; a group left without members goes too."""
    for name in [t for t in loaded["tasks"] if not items.get(t)]:
        del loaded["tasks"][name]
        for group in loaded.get("groups", {}).values():
            group.pop(name)
        for members in loaded.get("group_map", {}).values():
            if name in members:
                members.remove(name)
    for gname in [g for g, members in loaded.get("group_map", {}).items() if not members]:
        loaded["group_map"].pop(gname)
        loaded.get("groups", {}).pop(gname, None)
        for group in loaded.get("groups", {}).values():
            group.pop(gname)


class TrueDocIds:
    """Wraps an lm-eval LM: requests of a subset reach the backend with their real doc_id
    (lm-eval numbers them 0..len(subset)-1). Copies are sent; lm-eval keeps its own numbering."""

    def __init__(self, lm, items: dict[str, list[int]]):
        self.lm = lm
        self.items = items

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def _renumbered(self, requests) -> list:
        out = []
        for req in requests:
            c = copy.copy(req)
            c.doc_id = self.items[req.task_name][req.doc_id]
            out.append(c)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False):
        return self.lm.generate_until(self._renumbered(requests), disable_tqdm=disable_tqdm)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self.lm.loglikelihood(self._renumbered(requests), disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self.lm.loglikelihood_rolling(self._renumbered(requests), disable_tqdm=disable_tqdm)
