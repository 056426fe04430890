"""How even `--shard K/N` splits the work: the items of a run split into N shards balanced in
prompt tokens (harness/run/shard.py) against splits by item count (every N-th item; N equal runs of items), on RULER
tasks built offline at several lengths with the tiny model's tokenizer.

    python bench/shard_balance.py [--lengths 2048,4096,8192] [--num-samples 16] [--shards 2,4,8]

For each N it prints the largest shard's prompt tokens over the mean (1.00 = perfectly even;
a shard's time goes with its tokens, so the run waits for the largest). Both splits are
computed from the same tokens, in one process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import tiny_model  # noqa: E402
from bench.figures import record_figure  # noqa: E402


def strided(weights: dict[str, list[tuple[int, int]]], n: int) -> list[int]:
    """Tokens of each shard when shard k takes every n-th item of each task (k, k + n, ...)."""
    loads = [0] * n
    for pairs in weights.values():
        for pos, (_, tokens) in enumerate(pairs):
            loads[pos % n] += tokens
    return loads


def contiguous(weights: dict[str, list[tuple[int, int]]], n: int) -> list[int]:
    """Tokens of each shard when shard k takes the k-th of n equal runs of each task's items."""
    loads = [0] * n
    for pairs in weights.values():
        for pos, (_, tokens) in enumerate(pairs):
            loads[pos * n // len(pairs)] += tokens
    return loads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="2048,4096,8192")
    ap.add_argument("--num-samples", type=int, default=16)
    ap.add_argument("--shards", default="2,4,8")
    ap.add_argument("--model", help="tokenizer directory (default: the tiny model, built when missing)")
    ap.add_argument("--tasks", default="ruler_niah_single_1,ruler_niah_multikey_3,ruler_niah_multivalue,ruler_vt,ruler_fwe")
    args = ap.parse_args()

    from harness.run.shard import balanced_partition, prompt_weights
    from harness.run.tasks import TaskCatalog
    from tasks.tokens import load_tokenizer
    from tests.conftest import offline_metadata

    model = tiny_model(args.model)
    tok = load_tokenizer(str(model))
    lengths = [int(x) for x in args.lengths.split(",")]
    md = {**offline_metadata(ROOT / "tasks" / "ruler"), "lengths": lengths, "num_samples": args.num_samples,
          "tokenizer": str(model), "max_model_len": max(lengths) + 256}
    t0 = time.perf_counter()
    loaded = TaskCatalog().load(args.tasks.split(","), md)
    t1 = time.perf_counter()
    weights, totals = prompt_weights(loaded["tasks"], tok, None)
    t2 = time.perf_counter()
    n_items = sum(totals.values())
    t3 = time.perf_counter()
    exact = {name: [len(ids) for ids in tok([str(task.doc_to_text(d)) for d in task.eval_docs],
                                            add_special_tokens=False)["input_ids"]] for name, task in loaded["tasks"].items()}
    t4 = time.perf_counter()
    errors = [abs(w - exact[name][i]) / exact[name][i] for name, pairs in weights.items() for i, w in pairs]
    print(f"estimate vs tokenizing every prompt ({t4 - t3:.2f} s): mean error {100 * sum(errors) / len(errors):.1f}%, "
          f"largest {100 * max(errors):.1f}%")
    print(f"{len(loaded['tasks'])} RULER tasks x lengths {lengths} x {args.num_samples}: {n_items} items, "
          f"{sum(t for p in weights.values() for _, t in p)} prompt tokens (estimated; built in {t1 - t0:.1f} s, "
          f"weighed in {t2 - t1:.2f} s)")
    print("largest shard's prompt tokens / mean (1.000 = even)")
    worst = {"balanced": 0.0, "every_nth": 0.0, "equal_runs": 0.0}
    print(f"{'N':>3}  {'balanced in tokens':>18}  {'every N-th item':>15}  {'equal runs of items':>19}")
    for n in (int(x) for x in args.shards.split(",")):
        parts = balanced_partition(weights, n)
        tokens = {t: dict(p) for t, p in weights.items()}
        balanced = [sum(tokens[t][i] for t, ids in part.items() for i in ids) for part in parts]
        mean = sum(balanced) / n
        print(f"{n:>3}  {max(balanced) / mean:>18.3f}  {max(strided(weights, n)) / mean:>15.3f}  "
              f"{max(contiguous(weights, n)) / mean:>19.3f}")
        for key, loads in (("balanced", balanced), ("every_nth", strided(weights, n)), ("equal_runs", contiguous(weights, n))):
            worst[key] = max(worst[key], max(loads) / mean)
    for key, ratio in worst.items():
        record_figure(f"shard_balance.{key}", round(ratio, 3), "", f"N = {args.shards}, {n_items} RULER items at {args.lengths}")
    record_figure("shard_balance.estimate_error_mean", round(100 * sum(errors) / len(errors), 1), "%")
    record_figure("shard_balance.estimate_error_max", round(100 * max(errors), 1), "%")


if __name__ == "__main__":
    main()
