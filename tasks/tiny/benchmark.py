"""The tiny suite's surface (see tasks/benchmarks.py): its group columns (the defaults) and the
offline RL prompt set (`synthetic`), worded by the tiny tasks' own prompt functions."""

from __future__ import annotations

import random

from tasks.benchmarks import Benchmark, Training, TrainingItem

KINDS = ("passkey", "kv")


def training_items(kinds=KINDS, n: int = 64, seed: int = 0, **_) -> list[TrainingItem]:
    """Passkey / key-value retrieval built offline by tasks/tiny/generate.py, `n` in turn over
    `kinds`, each prompt the tiny task's own."""
    from tasks.tiny.generate import gen_kv, gen_passkey
    from tasks.tiny.utils import kv_prompt, passkey_prompt

    makers = {"passkey": (gen_passkey, passkey_prompt), "kv": (gen_kv, kv_prompt)}
    bad = [k for k in kinds if k not in makers]
    if bad:
        raise ValueError(f"data.kinds: unknown {bad}, expected any of {', '.join(makers)}")
    rng = random.Random(seed)
    items = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        make, to_text = makers[kind]
        row = make(rng, n=1)[0]
        items.append(TrainingItem(f"{kind}-{i}", to_text(row), row["answer"], "string_match_all"))
    return items


BENCHMARK = Benchmark(name="tiny", title="tiny suite", training=Training("synthetic", training_items))
