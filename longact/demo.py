"""`longact demo` (what `make demo` runs): the whole controlled comparison on the tiny model.

1. RL from the skilled tiny base (assets/tiny-qwen3-skilled, which has learned the passkey
   skill): a baseline arm and a LongAct arm from one config and seed (training/experiment.py).
2. Serve and evaluate the base and both arms on the tiny suite through real vLLM servers.
3. Print the comparison against the base (paired intervals and tests) and write the
   leaderboard page with its plots.

Reruns reuse finished work: training resumes from its checkpoints and evaluation answers come
from the request cache.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKILLED = ROOT / "assets" / "tiny-qwen3-skilled"
DEMO_CONFIG = ROOT / "training" / "configs" / "tiny-cpu.yaml"


def run_demo(base: str | None = None, out: str = "results/demo", train_dir: str = "runs/demo", steps: int = 4,
             window: int = 2048, tasks: tuple[str, ...] = ("tiny",)) -> str:
    from harness.report.compare import compare, render
    from harness.report.leaderboard import write_leaderboard
    from harness.run.config import EvalConfig, RunConfig
    from harness.run.runner import run_eval
    from training.config import load_config
    from training.experiment import run_experiment

    base = str(base or SKILLED)
    print(f"== 1/3 RL on CPU from {base}: baseline and LongAct arms, {steps} steps each", file=sys.stderr)
    cfg = load_config(str(DEMO_CONFIG), [f"model={base}", f"out_dir={train_dir}", f"steps={steps}",
                                         "data.kinds=[passkey]"])
    manifest = json.loads(run_experiment(cfg, log=lambda *a: print(*a, file=sys.stderr)).read_text())
    models = {"base": base, **{arm: info["checkpoint"] for arm, info in manifest["arms"].items()}}

    print("== 2/3 serve and evaluate each checkpoint on the tiny suite", file=sys.stderr)
    runs = {}
    for name, path in models.items():
        runs[name] = str(run_eval(EvalConfig(model=path, max_model_len=window, run=RunConfig(tasks=list(tasks), output_dir=out, command=["longact", "demo"]))))
    print("== 3/3 comparison against the base", file=sys.stderr)
    table = render(compare([runs["base"], runs["baseline"], runs["longact"]], baseline=runs["base"]))
    site = write_leaderboard(out, Path(out) / "leaderboard")
    return f"{table}\n\nleaderboard: {site / 'index.html'}\nruns: {', '.join(f'{k}={v}' for k, v in runs.items())}"
