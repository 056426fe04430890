"""`longact demo` (what `make demo` runs): a small controlled study on the tiny model.

1. RL from the skilled tiny base (assets/tiny-qwen3-skilled, which retrieves a passkey over short
   distances) on the tiny learning task (training/configs/tiny-study.yaml: the needle 27-33
   sentences before the question, where the base is right about half the time): a baseline arm
   and a LongAct arm from one config, at each seed (training/experiment.py), with a checkpoint
   every `save_every` steps (the preset's 6).
2. Evaluate the base and every arm x seed checkpoint (the intermediate ones too) on the tiny suite
   and tiny_passkey_far with one real vLLM engine whose weights are swapped between checkpoints
   (harness/run/sweep.py).
3. Print the comparison against the base (paired intervals and tests), LongAct against the
   baseline arm aggregated over seeds (hierarchical interval, seed-level test, score against
   step), and write the leaderboard page with its plots (training curves and score against step
   per arm, mean and band over seeds).

Reruns reuse finished work: training resumes from its checkpoints, finished evaluations are not
redone and the others resume from the request cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKILLED = ROOT / "assets" / "tiny-qwen3-skilled"
DEMO_CONFIG = ROOT / "training" / "configs" / "tiny-study.yaml"
DEMO_TASKS = ("tiny", "tiny_passkey_far")


def run_demo(base: str | None = None, out: str = "results/demo", train_dir: str = "runs/demo",
             steps: int | None = None, window: int = 2048, tasks: tuple[str, ...] = DEMO_TASKS,
             seeds: tuple[int, ...] = (0, 1)) -> str:
    from harness.backends.serve import ServerConfig, env_server_args
    from harness.report.compare import compare, render
    from harness.report.experiment import compare_experiment, render_experiment
    from harness.report.leaderboard import write_leaderboard
    from harness.run.config import EvalConfig, RunConfig
    from harness.run.experiments import arm_run_id, read_manifest
    from harness.run.sweep import launch_early, run_sweep
    from training.config import load_config
    from training.experiment import run_experiment

    base = str(base or SKILLED)
    overrides = [f"model={base}", f"out_dir={train_dir}"] + ([f"steps={steps}"] if steps else [])
    cfg = load_config(str(DEMO_CONFIG), overrides)
    # The tiny model runs eager unless $LONGACT_SERVER_ARGS says otherwise: torch.compile would
    # lengthen the engine's start and decode it no faster (docs/evaluating.md).
    serve = ServerConfig(extra_args=env_server_args() or ["--enforce-eager"])
    eval_cfg = EvalConfig(max_model_len=window, serve=serve,
                          run=RunConfig(tasks=list(tasks), output_dir=out, command=["longact", "demo"]))
    # The engine boots on the starting checkpoint while the arms train (its start is mostly
    # imports on one core); the sweep below takes it.
    with launch_early(eval_cfg, {"demo-base": base}) as early:
        print(f"== 1/3 RL on CPU from {base}: baseline and LongAct arms at seeds {list(seeds)}, {cfg.steps} steps each "
              f"({cfg.prompts_per_step} prompts x {cfg.group_size} samples per step, data.kinds={cfg.data.kinds})",
              file=sys.stderr)
        manifest = run_experiment(cfg, log=lambda *a: print(*a, file=sys.stderr), seeds=list(seeds))

        print("== 2/3 evaluate the base and every arm x seed x saved step on one vLLM engine (weights swapped)",
              file=sys.stderr)
        ckpts = {"demo-base": base,
                 **{arm_run_id(manifest, r): r.checkpoint for r in read_manifest(manifest, all_steps=True)}}
        runs = {rid: str(path) for rid, path in run_sweep(eval_cfg, ckpts, early=early).items()}

    print("== 3/3 comparisons", file=sys.stderr)
    first_seed = [runs[arm_run_id(manifest, r)] for r in read_manifest(manifest) if r.seed == seeds[0]]
    vs_base = render(compare([runs["demo-base"], *first_seed], baseline=runs["demo-base"]))
    arms = render_experiment(compare_experiment(str(manifest), out))
    site = write_leaderboard(out, Path(out) / "leaderboard")
    return (f"Against the starting checkpoint (seed {seeds[0]}):\n\n{vs_base}\n\nLongAct against the baseline arm, over "
            f"seeds:\n\n{arms}\n\n{checkpoint_hashes(runs)}\n\nleaderboard: {site / 'index.html'}")


def checkpoint_hashes(runs: dict[str, str]) -> str:
    """Each evaluated checkpoint's weight hash (from its run.json), so that two machines can tell
    whether they trained the same weights before they compare scores: RL on CPU is repeatable on
    one machine, but CPUs with other vector units round differently, the sampled rollouts part
    ways, and the checkpoints (and so the scores) differ (docs/demo.md, "Reproducing these numbers")."""
    from harness.records.io import load_run
    from harness.report.tables import Column, markdown
    from tasks.trainer_layout import checkpoint_label

    rows = []
    for run_id, run_dir in runs.items():
        model = load_run(run_dir).model
        rows.append([run_id, checkpoint_label(model.path), (model.weights_sha256 or "?")[:16]])
    table = markdown([Column("run"), Column("checkpoint"), Column("weights sha256")], rows)
    return ("Checkpoints (same hashes = same weights; compare scores across machines only where they agree):\n\n"
            + table)
