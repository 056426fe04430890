"""The LongAct replication on SmolLM2-135M, end to end, with the project's own verbs
(docs/study-smollm2.md says what it found):

    python bench/study_smollm2.py                   # train every arm, evaluate every checkpoint, compare
    python bench/study_smollm2.py --phase eval      # one phase: train | eval | report
    python bench/study_smollm2.py --dry-run         # print the commands, run nothing

1. train: `longact experiment --config training/configs/smollm2-study.yaml` with baseline and
   LongAct at three seeds, and the random-row control and the 0.1 / 0.5 ratio arms at seed 0.
2. eval: `longact eval --experiment` once per suite (the training task's held-out items at the
   training length and twice it, other RULER tasks at 2k, the tiny / LongBench v2 / InfiniteBench
   fixtures), each into its own folder under the study's results. With --follow it starts on the
   runs the manifest names while the others still train, and goes on until the manifest is complete.
3. report: `longact compare --experiment` per suite into report.md, and the training metrics,
   evidence and manifest copied next to them: what the doc and the leaderboard read.

Every phase resumes: a rerun trains only the runs without a final checkpoint and sends only the
requests that have no cached answer. Needs `make real-model` (models/smollm2-135m).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/study_smollm2.py` puts bench/ first, not the project
CONFIG = "training/configs/smollm2-study.yaml"
SEEDS, ABLATION_SEEDS = "0,1,2", "0"
CONTROLS, RATIOS = "random", "0.1,0.5"
TRAIN_TASK, TRAIN_LENGTH = "ruler_niah_multikey_1", 1152
RULER_DATA = {"squad_path": "tasks/ruler/data/squad_fixture.json", "hotpotqa_path": "tasks/ruler/data/hotpotqa_fixture.json"}

# name -> (tasks, metadata, window, extra flags). Item counts: docs/study-smollm2.md ("Sizes")
# gives the planner's answer that chose them, and the measured cost of an evaluation pass.
SUITES = {
    "train-task": (TRAIN_TASK, {"lengths": [TRAIN_LENGTH, 2 * TRAIN_LENGTH], "num_samples": 60}, 4096, []),
    "ruler-2k": ("ruler_niah_single_2,ruler_niah_multivalue,ruler_vt",
                 {"lengths": [2048], "num_samples": 10, **RULER_DATA}, 4096, []),
    # forgetting: the tiny suite and the LongBench v2 and InfiniteBench fixture rows, middle-truncated
    # to a 2,048-token window; one suite each, since the tiny tasks read `data_path` too. InfiniteBench:
    # one row per task, and 64 new tokens instead of its official budgets (up to 30,000, which leave
    # no room for a prompt in this window), as the test suite runs its fixture.
    "tiny": ("tiny", {}, 2048, ["--limit", "10"]),
    "longbench-v2": ("longbench_v2", {"data_path": "tasks/longbench_v2/data/fixture.jsonl"}, 2048, []),
    "infinitebench": ("infinitebench", {"data_dir": "tasks/infinitebench/data/fixture"}, 2048,
                      ["--limit", "1", "--gen-kwargs", json.dumps({"max_gen_toks": 64})]),
}
# Eager engines: a compiled one took 5 minutes to start on the shared 2-core machine, and these
# prompts are mostly prefill with answers of a few tokens. Every checkpoint is served the same way.
SERVER_ARGS = "--enforce-eager"


def longact(*args: str) -> list[str]:
    return [sys.executable, "-m", "longact", *args]


def train_command(out_dir: str) -> list[str]:
    return longact("experiment", "--config", CONFIG, f"out_dir={out_dir}", "--seeds", SEEDS, "--controls", CONTROLS,
                   "--ratios", RATIOS, "--ablation-seeds", ABLATION_SEEDS)


def eval_command(manifest: str, results: Path, suite: str) -> list[str]:
    tasks, metadata, window, extra = SUITES[suite]
    cmd = longact("eval", "--experiment", manifest, "--tasks", tasks, "--max-model-len", str(window),
                  "--output-dir", str(results / suite), f"--server-args={SERVER_ARGS}", *extra)
    return cmd + (["--metadata", json.dumps(metadata)] if metadata else [])


def start_command(results: Path) -> list[str]:
    """The starting checkpoint on the training task, the same way (its run sits beside the arms':
    the score against step's step 0, and what RL changed at all)."""
    tasks, metadata, window, _ = SUITES["train-task"]
    return longact("eval", "--model", "models/smollm2-135m", "--tasks", tasks, "--max-model-len", str(window),
                   "--output-dir", str(results / "train-task"), "--run-id", "smollm2-study-start",
                   f"--server-args={SERVER_ARGS}", "--metadata", json.dumps(metadata))


def run(cmd: list[str], dry: bool, env: dict | None = None) -> float:
    print("$ " + " ".join(cmd), flush=True)
    if dry:
        return 0.0
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return time.perf_counter() - t0


def manifest_state(path: Path) -> tuple[int, bool] | None:
    """(runs the manifest names, complete?) or None before the first run has finished."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return sum(len(a.get("seeds", {})) for a in data.get("arms", {}).values()), bool(data.get("complete", True))


def disjoint(results: Path) -> dict:
    """Training items against the evaluated items of the training task: the needles (the key a
    question asks for, and its value), shared or not. Both come from RULER's own
    generator: training with the run seed + 1000, evaluation with the benchmark's default seed."""
    import dataclasses
    import re

    from training.config import load_config
    from training.data import load_prompts

    cfg = load_config(str(ROOT / CONFIG))
    train = load_prompts(dataclasses.replace(cfg.data, tokenizer=str(ROOT / cfg.model)))
    key = re.compile(r"special magic numbers? for ([\w-]+)")
    train_keys = {m for p in train for m in key.findall(p.prompt.split("What")[-1])}
    train_values = {a for p in train for a in p.answers}
    rows = []
    for f in sorted((results / "train-task").glob("*/samples_*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    docs = {r["doc"]["id"]: r["doc"] for r in rows}
    eval_keys = {m for d in docs.values() for m in key.findall(d.get("answer_prefix", ""))}
    eval_values = {v for d in docs.values() for v in d.get("outputs", [])}
    return {"train_items": len(train), "eval_items": len(docs), "train_keys": len(train_keys),
            "eval_keys": len(eval_keys), "shared_keys": sorted(train_keys & eval_keys),
            "shared_values": sorted(train_values & eval_values)}


def by_length(manifest: str, results: Path) -> str:
    """The training task's arms against the baseline at each RULER length (the training length and
    twice it), with the same statistics as `longact compare --experiment`: the runs' own samples,
    split by the `length` each item was built at, and the starting checkpoint's score beside them."""
    from harness.report.seeds import compare_seeds
    from harness.run.experiments import arm_runs

    def per_item(run_dir: Path) -> dict[int, dict[int, float]]:
        out: dict[int, dict[int, float]] = {}
        for line in (run_dir / f"samples_{TRAIN_TASK}.jsonl").read_text().splitlines():
            row = json.loads(line)
            out.setdefault(int(row["doc"]["length"]), {})[row["doc_id"]] = float(row["metrics"]["score"])
        return out

    runs = {key: per_item(d) for key, d in arm_runs(manifest, results).items()}
    start = results / "smollm2-study-start"
    start_scores = per_item(start) if (start / "run.json").exists() else {}
    arms = list(dict.fromkeys(a for a, _ in runs))
    lines = ["| length | arm | score (mean over seeds) | delta vs baseline at the arm's seeds | 95% CI | detectable | seeds |",
             "|---|---|---|---|---|---|---|"]
    for length in sorted({n for r in runs.values() for n in r}):
        if start_scores.get(length):
            v = start_scores[length]
            lines.append(f"| {length} | start (step 0) | {sum(v.values()) / len(v):.1f} | | | | |")
        for arm in arms:
            seeds = sorted(s for a, s in runs if a == arm)
            ids = sorted(runs[("baseline", seeds[0])][length])
            arm_items = [[[runs[(arm, s)][length][i] for i in ids]] for s in seeds]
            mean = sum(sum(x[0]) / len(ids) for x in arm_items) / len(seeds)
            if arm == "baseline":
                lines.append(f"| {length} | {arm} | {mean:.1f} | | | | {len(seeds)} |")
                continue
            base_items = [[[runs[("baseline", s)][length][i] for i in ids]] for s in seeds]
            r = compare_seeds(base_items, arm_items)
            lines.append(f"| {length} | {arm} | {mean:.1f} | {r.delta:+.1f} | [{r.low:+.1f}, {r.high:+.1f}] | "
                         f"±{r.detectable:.1f} ({r.detectable_basis}) | {len(seeds)} |".replace("±inf", "±∞"))
    return "\n".join(lines) + "\n"


def record_study_figures(out_dir: Path, results: Path) -> None:
    """The study's costs as measured, into bench/figures.json (docs/figures.md): a training step
    (median over every run's steps), all training steps together, an evaluation request (median
    over the runs of wall time per request sent) and all evaluation runs together."""
    import statistics

    from bench.figures import record_figure

    steps = [json.loads(line).get("time/step_s") for m in sorted(out_dir.glob("*/seed-*/metrics.jsonl"))
             for line in m.read_text().splitlines() if line.strip()]
    steps = [s for s in steps if isinstance(s, (int, float))]
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("*/*/run.json"))]
    per_request = [r["wall_time_s"] / r["requests"]["sent"] for r in runs
                   if r.get("wall_time_s") and (r.get("requests") or {}).get("sent")]
    if steps:
        record_figure("study.train_step_s", round(statistics.median(steps), 1), "s",
                      f"median of {len(steps)} steps, 2 prompts x 4 samples, 1,024-token prompts")
        record_figure("study.train_steps_s", round(sum(steps)), "s", f"{len(steps)} steps of every arm and seed")
    if per_request:
        record_figure("study.eval_request_s", round(statistics.median(per_request), 2), "s",
                      f"median over {len(per_request)} runs of wall time / requests sent (eager engine)")
        record_figure("study.eval_runs_s", round(sum(r["wall_time_s"] for r in runs if r.get("wall_time_s"))), "s",
                      f"{len(runs)} evaluation runs")


def copy_training(out_dir: Path, results: Path) -> None:
    """What the report and the leaderboard read of the training (no checkpoints): the manifest,
    the evidence, and each run's metrics and mask statistics, in a folder named as the experiment
    (run ids are `<experiment>-<arm>-s<seed>`, so the copied manifest finds the evaluated runs)."""
    dest = results / out_dir.name
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("experiment.json", "evidence.json"):
        if (out_dir / name).exists():
            shutil.copy2(out_dir / name, dest / name)
    for metrics in sorted(out_dir.glob("*/seed-*/metrics.jsonl")):
        run_dest = dest / metrics.parent.relative_to(out_dir)
        run_dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(metrics, run_dest / "metrics.jsonl")
        final = sorted(metrics.parent.glob("step-*/longact_mask"))
        for f in (final[-1].glob("*") if final else []):
            if f.suffix in (".json", ".png"):
                shutil.copy2(f, run_dest / f.name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python bench/study_smollm2.py --phase train")
    ap.add_argument("--phase", choices=["all", "train", "eval", "report"], default="all")
    ap.add_argument("--out-dir", default="runs/smollm2-study", help="training runs and checkpoints (not committed)")
    ap.add_argument("--results", default="results/studies/smollm2", help="evaluations and the report (committed)")
    ap.add_argument("--suites", default=",".join(SUITES), help=f"comma list of {', '.join(SUITES)}")
    ap.add_argument("--follow", action="store_true", help="eval: evaluate the finished runs while the others train, "
                                                          "again whenever the manifest names more, until it is complete")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = ap.parse_args(argv)
    suites = [s for s in args.suites.split(",") if s]
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        ap.error(f"--suites: unknown {unknown}; expected any of {', '.join(SUITES)}")
    if not (ROOT / "models/smollm2-135m/config.json").exists() and not args.dry_run:
        print("models/smollm2-135m not found: run `make real-model` first", file=sys.stderr)
        return 2
    out_dir, results = Path(args.out_dir), Path(args.results)  # relative to the project root (cwd of every command)
    manifest = str(out_dir / "experiment.json")
    log_path = ROOT / results / "study.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {"phases": {}}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one torch thread: two on 2 shared cores ran slower
    if args.phase in ("all", "train"):
        log["phases"]["train_s"] = run(train_command(str(out_dir)), args.dry_run, env)
    if args.phase in ("all", "eval"):
        seen: object = "nothing yet"  # differs from every state, None included
        while True:
            state = manifest_state(ROOT / manifest)
            if state != seen:  # new runs finished since the last round (or the first round)
                seen = state
                for suite in suites:
                    spent = run(eval_command(manifest, results, suite), args.dry_run, env)
                    log["phases"][f"eval_{suite}_s"] = log["phases"].get(f"eval_{suite}_s", 0.0) + spent
            if not args.follow or args.dry_run or (state and state[1]):
                break
            time.sleep(30)
        if "train-task" in suites:
            log["phases"]["eval_start_s"] = run(start_command(results), args.dry_run, env)
    if args.phase in ("all", "report"):
        for suite in suites:
            cmd = longact("compare", "--experiment", manifest, "--results", str(results / suite))
            print("$ " + " ".join(cmd), flush=True)
            if not args.dry_run:
                text = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
                (ROOT / results / suite / "report.md").write_text(text)
        if not args.dry_run:
            copy_training(ROOT / out_dir, ROOT / results)
            (ROOT / results / "disjoint.json").write_text(json.dumps(disjoint(ROOT / results), indent=1) + "\n")
            record_study_figures(ROOT / out_dir, ROOT / results)
            if "train-task" in suites:
                (ROOT / results / "train-task" / "by-length.md").write_text(by_length(manifest, ROOT / results / "train-task"))
    if not args.dry_run:
        (ROOT / results).mkdir(parents=True, exist_ok=True)
        log["commands"] = {"train": train_command(str(out_dir))[2:],
                           **{s: eval_command(manifest, results, s)[2:] for s in suites}}
        log_path.write_text(json.dumps(log, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
