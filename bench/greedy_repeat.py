"""Are greedy answers from a vLLM CPU server repeatable? One checkpoint, one server, the same
task evaluated several times without the request cache, at several client concurrencies.

    python bench/greedy_repeat.py [--model assets/tiny-qwen3-skilled] [--tasks tiny_niah] [--repeats 3]

For each concurrency it prints, over the repeats, the score of each repeat, and how many items'
greedy answers were not the same in every repeat; then how many differ between concurrency 1 and
the others. A server that batched deterministically would show 0 everywhere. vLLM batches the
requests that are in flight together, and a batch's composition changes the floating-point
reduction order in its kernels, so near-tied greedy tokens can flip from one run to the next.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_dir  # noqa: E402
from bench.figures import record_figure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def answers(run_dir: Path, task: str) -> dict[int, str]:
    rows = [json.loads(x) for x in (run_dir / f"samples_{task}.jsonl").read_text().splitlines() if x.strip()]
    return {r["doc_id"]: r["response"] for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "assets" / "tiny-qwen3-skilled"))
    ap.add_argument("--tasks", default="tiny_niah")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", default="1,8", help="comma-separated client concurrencies (default: %(default)s)")
    args = ap.parse_args()

    from harness.backends.serve import ServerConfig, VLLMServer
    from harness.records.io import load_run
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    tasks = args.tasks.split(",")
    out = Path(scratch_dir("bench-greedy-"))
    by_conc: dict[int, list[dict[str, dict[int, str]]]] = {}
    with VLLMServer(ServerConfig(model=args.model, max_model_len=args.window), log_path=out / "server.log") as srv:
        for conc in map(int, args.concurrency.split(",")):
            for k in range(args.repeats):
                cfg = EvalConfig(tokenizer=args.model, client=ClientConfig(base_url=srv.base_url, concurrency=conc),
                                 run=RunConfig(tasks=tasks, output_dir=str(out), use_cache=False, progress=False))
                run_dir = run_eval(cfg)
                rec = load_run(run_dir)
                scores = {t: round(next(iter(rec.tasks[t].metrics.values())).value, 2) for t in tasks}
                by_conc.setdefault(conc, []).append({t: answers(run_dir, t) for t in tasks})
                print(f"concurrency {conc} repeat {k}: " + ", ".join(f"{t} {v}" for t, v in scores.items()), flush=True)
    changed = set()
    for task in tasks:
        for conc, reps in by_conc.items():
            docs = reps[0][task]
            unstable = [d for d in docs if len({r[task][d] for r in reps}) > 1]
            changed |= {(task, d) for d in unstable}
            print(f"{task} concurrency {conc}: {len(unstable)} of {len(docs)} items' greedy answers differ "
                  f"between {len(reps)} repeats")
        ref = by_conc.get(1)
        for conc, reps in by_conc.items():
            if ref and conc != 1:
                diff = [d for d in ref[0][task] if ref[0][task][d] != reps[0][task][d]]
                changed |= {(task, d) for d in diff}
                print(f"{task}: concurrency 1 vs {conc} (first repeats): {len(diff)} items differ")
    n_items = sum(len(next(iter(by_conc.values()))[0][t]) for t in tasks)
    record_figure("greedy_repeat.changed_items", len(changed), "items",
                  f"of {n_items} ({args.tasks}), {args.repeats} repeats at concurrency {args.concurrency}")


if __name__ == "__main__":
    main()
