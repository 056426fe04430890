"""The tiny suite's surface (see tasks/benchmarks.py): its group columns (the defaults) and the
offline RL prompt set (`synthetic`), worded and rewarded by the tiny tasks' own prompt and scoring
functions."""

from __future__ import annotations

import random
from functools import partial

from tasks.benchmarks import Benchmark, Headline, Report, Training, TrainingItem
from tasks.errors import ConfigError
from tasks.tiny.utils import kv_prompt, kv_results, passkey_prompt, passkey_results

KINDS = ("passkey", "kv")


def training_items(kinds=KINDS, n: int = 64, seed: int = 0, **_) -> list[TrainingItem]:
    """Passkey / key-value retrieval built offline by tasks/tiny/generate.py, `n` in turn over
    `kinds`, each prompt and reward the tiny task's own. `passkey_far` is tiny_passkey_far's
    shape (the needle 27-33 sentences before the question; other keys than its fixture's)."""
    from tasks.tiny.generate import FAR_AFTER, FAR_BEFORE, gen_kv, gen_passkey

    makers = {"passkey": (gen_passkey, passkey_prompt, "tiny_passkey"), "kv": (gen_kv, kv_prompt, "tiny_kv"),
              "passkey_far": (partial(gen_passkey, reps=FAR_BEFORE, after=FAR_AFTER), passkey_prompt, "tiny_passkey")}
    bad = [k for k in kinds if k not in makers]
    if bad:
        raise ConfigError(f"data.kinds: unknown {bad}, expected any of {', '.join(makers)}")
    rng = random.Random(seed)
    items = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        make, to_text, task = makers[kind]
        row = make(rng, n=1)[0]
        items.append(TrainingItem(f"{kind}-{i}", to_text(row), row["answer"], task))
    return items


def _reward(results, completion: str, answers: list) -> float:
    """The tiny task's eval score of `completion` (its `process_results` / 100)."""
    return results({"answer": answers}, [completion])["score"] / 100


DESCRIPTIONS = {
    "tiny": "four small sets shaped like the three benchmarks, for the tiny model, the demo and CI; mean of the four",
    "tiny_mc": "LongBench-v2-shaped four-choice questions (40 items, chat, official answer extraction)",
    "tiny_niah": "RULER-niah-shaped needle retrieval at 256/512/1024 tokens (45 items, completion with answer prefix)",
    "tiny_passkey": "InfiniteBench-passkey-shaped passkey retrieval (30 items, chat, first-integer match)",
    "tiny_kv": "InfiniteBench-kv_retrieval-shaped key-value retrieval (30 items, chat, whole-word match)",
    "tiny_passkey_far": "passkey retrieval with the needle 27-33 sentences before the question, past the skilled "
                        "base's training distances (30 items, chat, first-integer match; the demo's RL task; "
                        "not in the tiny group)",
}

# No `needs`: the items are generated offline and shipped in tasks/tiny/data.
BENCHMARK = Benchmark(name="tiny", title="tiny suite", training=Training("synthetic", training_items),
                      # tiny_passkey_far is the demo's RL task: its own column beside the suite's average
                      report=Report(headline=Headline("task_mean", "tiny", details=True, also=("tiny_passkey_far",))),
                      rewards={"tiny_passkey": partial(_reward, passkey_results), "tiny_kv": partial(_reward, kv_results)},
                      descriptions=DESCRIPTIONS)
