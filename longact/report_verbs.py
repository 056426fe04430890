"""`longact score`, `longact compare`, `longact demo` and `longact leaderboard`: scores and the
reports made from result files. Each verb is an `add_<verb>(sub)` / `cmd_<verb>(args)` pair, as in
longact/cli.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tasks.errors import UserError

# longact score ------------------------------------------------------------------------------

def add_score(sub) -> None:
    """`longact score BENCH FILE`: one sub-command per benchmark that rescores official prediction
    files, its flags the options the benchmark declares (tasks/<bench>/benchmark.py)."""
    from tasks.benchmarks import all as all_benchmarks

    scorable = [b for b in all_benchmarks() if b.score]

    def examples(benches) -> str:  # each benchmark declares its own (`score_examples`)
        return "examples:\n" + "".join(f"  longact score {b.name} {ex}\n" for b in benches for ex in b.score_examples)

    sc = sub.add_parser(
        "score", help="rescore an official prediction file with the official protocol",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=examples(scorable)
        + f"  longact score {scorable[-1].name} {scorable[-1].score_examples[0]} --save-run results"
          "   # joins compare and the leaderboard")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("file", help="prediction file in the official format")
    common.add_argument("--json", action="store_true", help="print one JSON object (percent, unrounded)")
    common.add_argument("--save-run", metavar="RESULTS_DIR",
                        help="also store the per-item scores as an imported run there (joins compare/leaderboard)")
    common.add_argument("--model-name", default="official predictions", help="model label of a saved run")
    benches = sc.add_subparsers(dest="benchmark", metavar="BENCH", required=True,
                                help="which benchmark's format and scorer")
    for bench in scorable:
        bp = benches.add_parser(bench.name, parents=[common], help=f"{bench.title} prediction files",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=examples([bench]))
        for opt in bench.options:
            kw = {"action": "store_true", "default": None} if opt.flag else {"metavar": opt.name.upper()}
            bp.add_argument(opt.flag_name, help=opt.help, **kw)
    sc.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    from tasks.benchmarks import get

    bench = get(args.benchmark)
    scored = bench.score(args.file, **bench.options_from(vars(args)))
    print(json.dumps(scored.summary) if args.json else scored.text)
    if args.save_run:
        _save(args, scored.task, scored.per_item, docs=scored.docs, fields=scored.breakdown_fields)
    return 0


# longact compare / demo / leaderboard -------------------------------------------------------

def add_compare(sub) -> None:
    c = sub.add_parser(
        "compare", help="compare checkpoints: one row per run, deltas with paired intervals and tests",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  longact compare results/20261128T1200Z-base results/20261128T1300Z-longact\n"
               "  longact compare results/*/ --baseline results/20261128T1200Z-base --format csv --out cmp.csv\n"
               "  longact compare --experiment runs/exp/experiment.json --results results   # arms vs baseline arm\n"
               "  longact compare results/ref results/new --fail-if-worse 5   # CI: exit 1 if a task drops > 5 points\n\n"
               "Runs must have been run the same way (task versions and configs, data, window, truncation, generation\n"
               "settings, mode); otherwise the command lists the differences and stops (--force pairs anyway).")
    c.add_argument("runs", nargs="*", help="run directories (or run.json files)")
    c.add_argument("--experiment", metavar="MANIFEST",
                   help="add the evaluated arms of a `longact experiment` manifest (baseline arm = default baseline)")
    c.add_argument("--results", default="results", help="where --experiment's runs are (default: %(default)s)")
    c.add_argument("--baseline", help="run the deltas are computed against (default: the first)")
    c.add_argument("--format", choices=["md", "csv", "latex", "html"], default="md",
                   help="table format (default: %(default)s)")
    c.add_argument("--out", help="write the table here instead of printing it")
    c.add_argument("--force", action="store_true", help="pair runs even when they were not run the same way")
    c.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    c.add_argument("--fail-if-worse", type=float, metavar="POINTS",
                   help="CI gate: exit 1, one line per task, when a run is more than POINTS below the baseline and "
                        "its 95%% interval lies below 0 (worse beyond noise)")
    c.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from harness.report.compare import compare, regressions, render

    runs, baseline, failed = list(args.runs), args.baseline, []
    if args.fail_if_worse is not None and args.fail_if_worse < 0:
        raise UserError(f"--fail-if-worse: {args.fail_if_worse:g} is negative; give the tolerated drop in points (0 or more)")
    if args.experiment and not runs and not baseline:  # the arms alone: aggregated over their seeds
        if args.fail_if_worse is not None:
            raise UserError("--fail-if-worse gates runs against a baseline run: give run directories")
        text = experiment_table(args.experiment, args.results, args.force, args.resamples, args.format)
    else:
        if args.experiment:
            from harness.run.experiments import arm_runs

            arms = [str(d) for d in arm_runs(args.experiment, args.results).values()]
            baseline = baseline or arms[0]
            runs = [r for r in runs if r not in arms] + arms
        if not runs:
            raise UserError("give run directories, or --experiment MANIFEST")
        result = compare(runs, baseline, force=args.force, n_resamples=args.resamples)
        text = render(result, args.format)
        if args.fail_if_worse is not None:
            failed = regressions(result, args.fail_if_worse)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    for line in failed:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if failed else 0


def add_demo(sub) -> None:
    dm = sub.add_parser(
        "demo", help="a small controlled study on the tiny model (RL at 2 seeds, serve, evaluate, compare)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  longact demo                    # what `make demo` runs (~6 min on 2 cores)\n"
               "  longact demo --seeds 0,1,2,3 --out results/demo4 --train-dir runs/demo4   # more seeds")
    dm.add_argument("--base", help="starting checkpoint (default: assets/tiny-qwen3-skilled)")
    dm.add_argument("--steps", type=int, help="RL steps per arm and seed (default: training/configs/tiny-study.yaml's)")
    dm.add_argument("--out", default="results/demo", help="results directory (default: %(default)s)")
    dm.add_argument("--train-dir", default="runs/demo", help="training output (default: %(default)s)")
    dm.add_argument("--seeds", default="0,1", help="comma list of training seeds per arm (default: %(default)s)")
    dm.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from longact.demo import run_demo

    seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip())
    print(run_demo(args.base, args.out, args.train_dir, args.steps, seeds=seeds))
    return 0


def add_leaderboard(sub) -> None:
    lb = sub.add_parser(
        "leaderboard", help="static HTML page of all runs, one row per model in each benchmark's headline columns "
                            "(sortable, plots, provenance) + Markdown; --format: the overview for papers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  longact leaderboard                       # results/ -> results/leaderboard/index.html\n"
               "  longact leaderboard runs/ --out site/\n"
               "  longact leaderboard --format latex > table.tex   # the overview only, for a paper\n"
               "  longact leaderboard results/reference --out /tmp/lb --screenshot docs/leaderboard.png\n\n"
               "Runs join into one row when they evaluated the same weights the same way (mode, chat template,\n"
               "samples per item); a click on a row lists its runs and which run each cell reads.")
    lb.add_argument("results", nargs="?", default="results", help="directory holding run directories, at any depth "
                                                                   "(default: %(default)s)")
    lb.add_argument("--out", help="output directory (default: <results>/leaderboard)")
    lb.add_argument("--format", choices=["md", "csv", "latex"],
                    help="print the overview table in this format instead of writing the page")
    lb.add_argument("--screenshot", metavar="PNG",
                    help="also draw the page's top in headless Chromium, 1400 px wide, into PNG")
    lb.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args) -> int:
    from harness.report.leaderboard import build, export, write_leaderboard

    if args.format:
        print(export(build(args.results), args.format))
        return 0
    out = write_leaderboard(args.results, args.out or Path(args.results) / "leaderboard")
    print(f"wrote {out / 'index.html'} and {out / 'leaderboard.md'}")
    if args.screenshot:
        from harness.report.screenshot import screenshot

        print(f"wrote {screenshot(out / 'index.html', args.screenshot)}")
    return 0


def _save(args, task: str, scores: list[float], docs=None, fields=()) -> None:
    from harness.records.imports import save_imported_run

    run_dir = save_imported_run(args.save_run, task, scores, args.file, args.model_name, docs, fields)
    print(f"saved as imported run {run_dir}", file=sys.stderr)


def experiment_table(manifest: str, results: str, force: bool = False, n_resamples: int = 2000,
                      fmt: str = "md") -> str:
    """One seed: the item-paired comparison of the arms' runs; several: aggregated over seeds."""
    from harness.report.compare import compare, render
    from harness.report.experiment import compare_experiment, render_experiment
    from harness.run.experiments import arm_runs

    dirs = arm_runs(manifest, results)
    if len({seed for _, seed in dirs}) > 1:
        if fmt != "md":
            raise UserError("--format: seed-aggregated tables are Markdown only")
        return render_experiment(compare_experiment(manifest, results, n_resamples=n_resamples, force=force))
    paths = [str(d) for d in dirs.values()]
    return render(compare(paths, baseline=paths[0], force=force, n_resamples=min(n_resamples, 1000)), fmt)
