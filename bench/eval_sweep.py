"""One engine for N checkpoints vs a fresh vLLM server per checkpoint, in one run.

    python bench/eval_sweep.py [--model models/tiny-qwen3] [--n 3] [--tasks tiny_niah,tiny_passkey] [--limit 10]

Both sides evaluate the same N tiny checkpoints (the tiny model and perturbed copies, one
architecture and tokenizer) on the same tasks with the request cache off; one side starts vLLM
once and swaps weights between checkpoints (harness/run/sweep.py), the other starts a server per
checkpoint (what `longact eval --model` does). Prints wall times, the ratio and the samples'
agreement. Goal: ratio >= 2.5 on CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_dir, timed, tiny_model  # noqa: E402
from bench.figures import record_figure  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="tiny model directory (built if missing; default models/tiny-qwen3)")
    ap.add_argument("--n", type=int, default=3, help="checkpoints (default: %(default)s)")
    ap.add_argument("--tasks", default="tiny_niah,tiny_passkey")
    ap.add_argument("--limit", type=int, default=10, help="items per task (default: %(default)s)")
    args = ap.parse_args()

    from harness.run.config import EvalConfig, RunConfig
    from harness.run.runner import run_eval
    from harness.run.sweep import run_sweep
    from longact.tiny.model import perturbed_copy

    base = tiny_model(args.model)
    root = Path(scratch_dir("eval-sweep-"))
    ckpts = [base] + [str(perturbed_copy(base, root / f"ckpt-{i}", seed=i)) for i in range(1, args.n)]
    tasks = args.tasks.split(",")

    def cfg(out: str, model: str | None = None) -> EvalConfig:
        return EvalConfig(model=model, max_model_len=2048,
                          run=RunConfig(tasks=tasks, limit=args.limit, output_dir=out, use_cache=False, progress=False))

    swept, t_one = timed(run_sweep, cfg(str(root / "one")), {f"ck{i}": c for i, c in enumerate(ckpts)})
    fresh, t_each = timed(lambda: [run_eval(cfg(str(root / f"each{i}"), c)) for i, c in enumerate(ckpts)])

    def answers(run_dir: Path) -> list:
        return [[json.loads(line)["response"] for line in (run_dir / f"samples_{t}.jsonl").read_text().splitlines()]
                for t in tasks]

    same = sum(answers(swept[f"ck{i}"]) == answers(fresh[i]) for i in range(len(ckpts)))
    print(f"{len(ckpts)} checkpoints x {len(tasks)} tasks x {args.limit} items")
    print(f"one engine, weights swapped : {t_one:7.1f} s")
    print(f"a server per checkpoint     : {t_each:7.1f} s")
    print(f"ratio                       : {t_each / t_one:7.2f}x   (goal >= 2.5)")
    print(f"checkpoints with identical samples on both sides: {same}/{len(ckpts)}")
    record_figure("eval_sweep.ratio", round(t_each / t_one, 2), "x", f"{len(ckpts)} checkpoints, {same} identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
