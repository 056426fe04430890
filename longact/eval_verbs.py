"""`longact eval`, `longact show` and `longact merge`: run an evaluation (one model, a sweep of an
experiment's checkpoints), print a run, join shards. Each verb is an `add_<verb>(sub)` /
`cmd_<verb>(args)` pair, as in longact/cli.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.run.config import add_flags as add_eval_flags
from longact import report_verbs
from tasks.errors import UserError

# longact eval -------------------------------------------------------------------------------

def add_eval(sub) -> None:
    e = sub.add_parser(
        "eval", help="evaluate a checkpoint on tasks (starts vLLM unless --base-url is given)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  longact eval --model models/tiny-qwen3 --tasks tiny --max-model-len 2048\n"
               "  longact eval --model ckpt/ --tasks tiny_mc,tiny_niah --limit 10\n"
               "  longact eval --base-url http://127.0.0.1:8000 --tokenizer ckpt/ --tasks tiny\n"
               "  longact eval --model ckpt/ --tasks tiny --server-args='--enforce-eager --seed 0'\n"
               "  longact eval --model ckpt/ --tasks longbench_v2 --mode reasoning --samples-per-item 4\n"
               "  longact eval --experiment runs/exp/experiment.json --tasks ruler   # every arm, then compare\n"
               "  longact eval --model Qwen/Qwen3-8B --tokenizer TOK --tasks ruler --max-model-len 131072 \\\n"
               "      --tensor-parallel-size 8 --plan      # KV cache, sequences that fit, wall time; starts nothing\n\n"
               "Rerunning the same command resumes: finished answers come from the request cache\n"
               "in <output-dir>/.cache and only missing (or failed) requests are sent.")
    e.add_argument("--experiment", metavar="MANIFEST",
                   help="evaluate every arm of a `longact experiment` manifest (run ids <exp>-<arm>), then compare them")
    e.add_argument("--all-steps", action="store_true",
                   help="with --experiment: also every intermediate checkpoint the runs saved (score against step)")
    e.add_argument("--plan", action="store_true",
                   help="start nothing: KV cache per sequence, sequences that fit and the wall time of the chosen tasks "
                        "on --gpu, from the model's config.json and the tasks' prompt tokens (exit 2 if none fits)")
    e.add_argument("--gpu", default="h200", help="--plan: h200, h100 or GPU memory in GiB (default: %(default)s)")
    e.add_argument("--mfu", type=float, default=0.4,
                   help="--plan: fraction of 989 dense bf16 TFLOPs per GPU that prefill reaches (default: %(default)s)")
    add_eval_flags(e)
    e.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from harness.report.tables import run_table
    from harness.run.config import from_args
    from harness.run.runner import run_eval

    cfg = from_args(args)
    cfg.run.command = ["longact"] + sys.argv[1:]
    if args.plan:
        from harness.run import plan

        p = plan.plan_eval(cfg, args.gpu, args.mfu)
        print(plan.render(p))
        plan.refuse_unless_fits(p)
        return 0
    if args.experiment:
        return _eval_experiment(args.experiment, cfg, args.all_steps)
    run_dir = run_eval(cfg)
    print(run_table(run_dir))
    print(f"\nresults: {run_dir}/run.json")
    return 0


def _eval_experiment(manifest: str, cfg, all_steps: bool = False) -> int:
    """Every (arm, seed) checkpoint of the manifest (with --all-steps, every saved step too) with
    the same flags on one vLLM engine (weights swapped between checkpoints), each into its own
    resumable run id; then the arms compared."""
    from harness.run.experiments import arm_run_id, manifest_complete, read_manifest
    from harness.run.sweep import run_sweep

    if cfg.model or cfg.client.base_url:
        raise UserError("--experiment evaluates the manifest's checkpoints; drop --model / --base-url")
    complete = manifest_complete(manifest)  # as read with the runs: training may finish during the sweep
    runs = read_manifest(manifest, all_steps=all_steps)
    by_id = run_sweep(cfg, {arm_run_id(manifest, r): r.checkpoint for r in runs})  # one engine
    if complete:
        print(report_verbs.experiment_table(manifest, cfg.run.output_dir))
    else:  # `longact experiment` is still training (it rewrites the manifest after every run)
        print(f"{manifest}: the experiment is still training; these {len(runs)} checkpoint(s) are evaluated. Rerun "
              "this command when it has finished (only the new checkpoints are sent), then compare.")
    print("\nresults: " + ", ".join(str(d) for d in by_id.values()))
    return 0


# longact show / merge --------------------------------------------------------------------------

def add_show(sub) -> None:
    s = sub.add_parser("show", help="print the table of a run directory (and how to resume it when unfinished)",
                       epilog="examples:\n  longact show results/20261128T120000Z-1a2b3c4d\n"
                              "  longact show results/20261128T120000Z-1a2b3c4d --json\n"
                              "  longact show results/20261128T120000Z-1a2b3c4d --lm-eval   # (re)write results_<time>.json\n"
                              "  for d in results/*/; do longact show \"$d\" --lm-eval; done     # every existing run",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("run", help="run directory or run.json")
    s.add_argument("--json", action="store_true", help="print run.json instead")
    s.add_argument("--lm-eval", action="store_true",
                   help="(re)write the run's lm-evaluation-harness results file (results_<time>.json) beside run.json")
    s.set_defaults(func=cmd_show)


def cmd_show(args) -> int:
    from harness.records.io import load_run
    from harness.report.tables import run_table

    if args.lm_eval:
        from harness.records.lm_eval_format import write_lm_eval_results
        from harness.records.state import run_state

        run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
        record = load_run(args.run)
        if not record.tasks:  # lm-eval writes results only for runs that produced some
            state = run_state(record, run_dir)
            raise UserError(f"{run_dir}: no results to write ({state.summary()})")
        print(f"wrote {write_lm_eval_results(run_dir, record)}")
        return 0
    if args.json:
        print(json.dumps(load_run(args.run).to_dict(), indent=2))
    else:
        print(run_table(args.run))
    return 0


def add_merge(sub) -> None:
    mg = sub.add_parser(
        "merge", help="join the N runs of `eval --shard K/N` into one run (equal to an unsharded run of the items)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  longact merge results/shard-1 results/shard-2 results/shard-3\n"
               "  longact merge results/ruler-128k-shard-*/ --run-id ruler-128k --output-dir results\n\n"
               "The shards must be shards 1..N of one command (same model, window, settings, task code and data),\n"
               "each complete; otherwise the command says which one differs and how. Metrics are recomputed\n"
               "from the items by lm-eval's aggregation, so they equal an unsharded run's.")
    mg.add_argument("runs", nargs="+", help="the shards' run directories (or run.json files)")
    mg.add_argument("--output-dir", help="where the merged run goes (default: beside the first shard)")
    mg.add_argument("--run-id", help="the merged run's directory name (default: a new unique id)")
    mg.add_argument("--tokenizer", help="the shards' tokenizer, when its recorded path is not on this machine")
    mg.set_defaults(func=cmd_merge)


def cmd_merge(args) -> int:
    from harness.report.tables import run_table
    from harness.run.merge import merge_runs

    run_dir = merge_runs(args.runs, args.output_dir, args.run_id, args.tokenizer, command=sys.argv)
    print(run_table(run_dir))
    print(f"\nresults: {run_dir / 'run.json'}")
    return 0
