"""The measured figures the bench scripts record, and the page that lists them.

    python -m bench.figures                      # rewrite docs/figures.md from bench/figures.json
    python -m bench.figures --check              # exit 1 when docs/figures.md is not what the JSON gives
    python -m bench.figures time make.demo_s -- make demo   # run a command, record its wall time

Each bench script calls `record_figure(name, value, unit, note)` (below) for its headline
figures; the entry keeps the date, commit and load it was measured at. CATALOG names every figure
a script records and says what it is; a figure never measured shows as "not measured yet". The
README and docs/ link to docs/figures.md instead of restating numbers, which go stale.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "figures.md"

# name -> (the command that records it, what it is). Grouped by command, in the page's order.
CATALOG: dict[str, tuple[str, str]] = {
    "make.setup_s": ("python3 -m bench.figures time make.setup_s -- make setup",
                     "`make setup` into a new .venv (pip's download cache warm)"),
    "make.demo_s": ("python -m bench.figures time make.demo_s -- make demo", "`make demo` from a built .venv"),
    "make.test_s": ("python -m bench.figures time make.test_s -- make test", "`make test` from a built .venv"),
    "serve_overhead.ratio": ("bench/serve_overhead.py",
                             "`longact eval` wall time / a raw client's, same prompts and server (median per-pair ratio)"),
    "serve_overhead.harness_s": ("bench/serve_overhead.py", "`longact eval` wall time, one pass (median)"),
    "serve_overhead.raw_s": ("bench/serve_overhead.py", "the raw client's wall time, one pass (median)"),
    "serve_overhead.server_start_s": ("bench/serve_overhead.py", "vLLM CPU server start, tiny model"),
    "server_vs_hf.speedup": ("bench/server_vs_hf.py", "lm-eval `hf` backend time / the vLLM server path's (start excluded)"),
    "server_vs_hf.agreement": ("bench/server_vs_hf.py", "greedy answers equal, vLLM server vs `hf` backend (model in the note)"),
    "stop_time.idle_max_s": ("bench/stop_time.py", "SIGINT to exit of `longact eval` (own vLLM server), worst trial, idle-ish"),
    "stop_time.burners_max_s": ("bench/stop_time.py", "SIGINT to exit, worst trial, beside two CPU-burning processes"),
    "stop_time.margin_s": ("bench/stop_time.py", "10 s promise minus the worst SIGINT-to-exit time measured"),
    "identity_probe.per_run_s": ("bench/stop_time.py", "the served identity probe's cost per run (run.json `identity_probe_s`)"),
    "identity_probe.warm_s": ("bench/stop_time.py", "the identity probe on a warm server (no first-request warm-up)"),
    "weight_sync.old_extra_peak_mib": ("bench/weight_sync.py", "extra peak RSS of one sync, full float32 gather"),
    "weight_sync.new_extra_peak_mib": ("bench/weight_sync.py", "extra peak RSS of one sync, streamed buckets"),
    "weight_sync.identical": ("bench/weight_sync.py", "engine answers identical after the full and the streamed sync"),
    "eval_sweep.ratio": ("bench/eval_sweep.py", "a server per checkpoint / one engine swapping weights"),
    "greedy_repeat.changed_items": ("bench/greedy_repeat.py",
                                    "items whose greedy answer changed between repeats or concurrencies"),
    "soak.answered": ("bench/soak.py", "requests answered"),
    "soak.failed": ("bench/soak.py", "requests failed"),
    "soak.lost": ("bench/soak.py", "requests with neither an answer nor an error"),
    "soak.p50_ms": ("bench/soak.py", "latency, median"),
    "soak.p99_ms": ("bench/soak.py", "latency, 99th percentile"),
    "soak.throughput": ("bench/soak.py", "throughput"),
    "multi_server.efficiency": ("bench/multi_server.py", "dispatch efficiency at the largest N stub servers"),
    "multi_server.efficiency_after_kill": ("bench/multi_server.py",
                                           "efficiency for the survivors, one server killed at half-time"),
    "shard_balance.balanced": ("bench/shard_balance.py",
                               "`--shard K/N` (balanced in tokens): largest shard's prompt tokens / mean, worst N"),
    "shard_balance.every_nth": ("bench/shard_balance.py", "every N-th item: largest shard / mean, worst N"),
    "shard_balance.equal_runs": ("bench/shard_balance.py", "N equal runs of items: largest shard / mean, worst N"),
    "shard_balance.estimate_error_mean": ("bench/shard_balance.py", "token estimate vs tokenizing, mean error"),
    "shard_balance.estimate_error_max": ("bench/shard_balance.py", "token estimate vs tokenizing, largest error"),
    "ruler_build.speedup": ("bench/ruler_build.py", "lm-eval's niah_single_1 build time / ours, one 128k sample"),
    "ruler_build.slowest_s": ("bench/ruler_build.py", "slowest RULER task, one 128k sample"),
    "longbench_v2_prep.batched_s": ("bench/longbench_v2_prep.py", "LongBench v2 prompt preparation, 503 items of ~128k tokens"),
    "longbench_v2_prep.tokenizer_passes": ("bench/longbench_v2_prep.py", "tokenizer passes per prompt"),
    "longbench_v2_prep.batched_cpu_s": ("bench/longbench_v2_prep.py", "the same, CPU seconds (all threads)"),
    "longbench_v2_prep.head_tail_floor_cpu_s": ("bench/longbench_v2_prep.py",
                                                "CPU seconds left if only the kept head and tail were tokenized"),
    "compare.bootstrap_s": ("bench/compare.py", "paired bootstrap, 20 runs x 10,000 items x 1,000 resamples"),
    "compare.by_index_ratio": ("bench/compare.py", "the same resampling item indices / counting resampled values"),
    "compare.mcnemar_s": ("bench/compare.py", "exact McNemar, 20 runs (includes the first scipy import)"),
    "compare.sign_flip_s": ("bench/compare.py", "sign-flip permutation test (1,000 resamples), 20 runs"),
    "study.train_step_s": ("python bench/study_smollm2.py", "the SmolLM2 study: one training step (median over every run)"),
    "study.train_steps_s": ("python bench/study_smollm2.py", "the same: every training step of every arm and seed"),
    "study.eval_request_s": ("python bench/study_smollm2.py", "the same: one evaluation request (median over the runs)"),
    "study.eval_runs_s": ("python bench/study_smollm2.py", "the same: every evaluation run together"),
    "leaderboard_scale.page_s": ("bench/leaderboard_scale.py",
                                 "`longact leaderboard` page (runs read, joined, headline columns, plots, HTML), 204 runs"),
    "leaderboard_scale.build_s": ("bench/leaderboard_scale.py", "the same, reading and joining the runs only"),
    "leaderboard_scale.per_run_ratio": ("bench/leaderboard_scale.py", "build time per run, 204 runs / 36 runs (1 = linear)"),
    "real_model_dtype.prefill_float32": ("bench/real_model_dtype.py", "SmolLM2-135M on vLLM CPU, float32: prefill"),
    "real_model_dtype.prefill_bfloat16": ("bench/real_model_dtype.py", "the same, bfloat16: prefill"),
    "real_model_dtype.decode_float32": ("bench/real_model_dtype.py", "the same, float32: decode"),
    "real_model_dtype.decode_bfloat16": ("bench/real_model_dtype.py", "the same, bfloat16: decode"),
    "shared_prompts.speedup": ("bench/shared_prompts.py",
                               "one update's forward + backward, row by row / each group's prompt packed once"),
    "shared_prompts.max_logp_diff": ("bench/shared_prompts.py",
                                     "largest log-prob difference between the two layouts"),
    "train_step.mask_ratio": ("bench/train_step.py", "trainer step time, LongAct mask / no mask"),
    "train_step.ours_over_trl": ("bench/train_step.py", "trainer step time, ours / TRL's GRPOTrainer"),
    "train_step.vllm_over_hf": ("bench/train_step.py", "step time with vLLM rollouts / HF rollouts"),
    "train_memory.old_bytes_per_token": ("bench/train_memory.py", "one update's peak memory growth, full-logits path"),
    "train_memory.new_bytes_per_token": ("bench/train_memory.py", "one update's peak memory growth, today's path"),
    "train_plan.8b_grpo_peak_gib": ("python bench/train_plan.py", "`longact train --plan`, qwen3-8b-grpo: simulated per-rank peak of the trainer"),
    "train_plan.8b_grpo_s": ("python bench/train_plan.py", "the same: the planner's wall time on this machine"),
    "train_plan.8b_grpo_update_s_per_step": ("python bench/train_plan.py", "the same: planned update time per step at 40% of peak"),
    "train_plan.8b_dapo_peak_gib": ("python bench/train_plan.py", "`longact train --plan`, qwen3-8b-dapo: simulated per-rank peak of the trainer"),
    "train_plan.8b_dapo_s": ("python bench/train_plan.py", "the same: the planner's wall time on this machine"),
    "train_plan.8b_dapo_update_s_per_step": ("python bench/train_plan.py", "the same: planned update time per step at 40% of peak"),
    "train_plan.4b_grpo_peak_gib": ("python bench/train_plan.py", "`longact train --plan`, qwen3-4b-grpo: simulated per-rank peak of the trainer"),
    "train_plan.4b_grpo_s": ("python bench/train_plan.py", "the same: the planner's wall time on this machine"),
    "train_plan.4b_grpo_update_s_per_step": ("python bench/train_plan.py", "the same: planned update time per step at 40% of peak"),
    "train_plan.4b_dapo_peak_gib": ("python bench/train_plan.py", "`longact train --plan`, qwen3-4b-dapo: simulated per-rank peak of the trainer"),
    "train_plan.4b_dapo_s": ("python bench/train_plan.py", "the same: the planner's wall time on this machine"),
    "train_plan.4b_dapo_update_s_per_step": ("python bench/train_plan.py", "the same: planned update time per step at 40% of peak"),
    "gpu_check.fsdp_update_s": ("bench/gpu_check.py", "one FSDP2 (NCCL, one rank, bf16 mixed precision) update, Qwen3-1.7B shape, 32k + 4k tokens"),
    "gpu_check.fsdp_tokens_per_s": ("bench/gpu_check.py", "the same: tokens per second"),
    "gpu_check.fsdp_mfu": ("bench/gpu_check.py", "the same: model FLOPs utilisation"),
    "gpu_check.fsdp_peak_allocated_gib": ("bench/gpu_check.py", "the same: peak allocated GPU memory"),
    "gpu_check.fsdp_real_over_simulated": ("bench/gpu_check.py", "the same: real peak / training.plan's simulated peak"),
}


FIGURES = ROOT / "bench" / "figures.json"


def record_figure(name: str, value: float, unit: str, note: str = "", *, path: Path | str | None = None) -> dict:
    """Merge one measured figure into bench/figures.json (and rewrite docs/figures.md from it).

    The entry keeps the value with the date, the commit (and whether the tree was dirty), the load
    average `uptime` prints and the CPU count, so a reader knows what the number was measured on.
    `name` should be in CATALOG (which says what it measures); another name is recorded with a
    warning and listed apart. `path` (tests) writes elsewhere and skips the page.
    """
    import datetime
    import fcntl
    import os

    from harness.records.provenance import git_info
    from tasks.data_io import atomic_write_text

    if name not in CATALOG:
        print(f"record_figure: {name!r} is not in bench/figures.py's CATALOG; add it there", file=sys.stderr)
    # dirty: changes other than the figures this function writes
    commit, dirty = git_info(ROOT, ignore=("bench/figures.json", "docs/figures.md"))
    entry = {"value": value, "unit": unit, "note": note,
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "commit": commit[:7] if commit else None, "dirty": dirty,
             "load": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    target = Path(path) if path is not None else FIGURES
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(target.parent, os.O_RDONLY)  # two bench runs may finish at once: one writes at a time
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        figures = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
        figures[name] = entry
        rows = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(figures.items())]  # one line each: easy diffs
        atomic_write_text(target, "{\n" + ",\n".join(rows) + "\n}\n")
        if path is None:
            write_page(figures)
    finally:
        os.close(lock)
    return entry


def load(path: Path | None = None) -> dict:
    p = path or FIGURES
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}


def _value(e: dict) -> str:
    v, unit = e["value"], e.get("unit", "")
    if unit == "s" and isinstance(v, (int, float)) and v >= 120:
        return f"{int(v // 60)} min {round(v % 60)} s"
    text = f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
    return f"{text} {unit}".strip()


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(figures: dict) -> str:
    """The page for `figures` (name -> entry): every CATALOG figure, measured or not, then others."""
    lines = ["# Measured figures", "",
             "Generated by `python -m bench.figures` from `bench/figures.json`; do not edit by hand. Each bench",
             "script records its headline figures when it runs ([bench/README.md](../bench/README.md) says what",
             "each one measures and its goal). A figure holds for the commit, machine and load it was measured",
             "at; run the command again to refresh it.", ""]
    head = ["| figure | value | note | measured | commit | load (1/5/15 min) | CPUs |", "|---|---|---|---|---|---|---|"]

    def row(name: str, what: str) -> str:
        e = figures.get(name)
        if e is None:
            return f"| {_cell(what)} (`{name}`) | not measured yet | | | | | |"
        commit = (e.get("commit") or "?") + (" (dirty)" if e.get("dirty") else "")
        load_avg = " / ".join(str(x) for x in e.get("load") or [])
        return (f"| {_cell(what)} (`{name}`) | {_cell(_value(e))} | {_cell(e.get('note', ''))} | {e.get('date', '')} "
                f"| {commit} | {load_avg} | {e.get('cpus', '')} |")

    commands: dict[str, list[str]] = {}
    for name, (command, _) in CATALOG.items():
        commands.setdefault(command, []).append(name)
    for command, names in commands.items():
        lines += [f"## `{command}`", "", *head, *(row(n, CATALOG[n][1]) for n in names), ""]
    others = sorted(set(figures) - set(CATALOG))
    if others:
        lines += ["## Other figures (not in bench/figures.py's CATALOG)", "", *head, *(row(n, n) for n in others), ""]
    return "\n".join(lines)


def write_page(figures: dict | None = None, page: Path | None = None) -> Path:
    page = page or PAGE
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(load() if figures is None else figures), encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/figures.md is stale")
    sub = ap.add_subparsers(dest="verb")
    t = sub.add_parser("time", help="run a command and record its wall time in seconds, e.g. "
                                    "`python -m bench.figures time make.demo_s -- make demo`")
    t.add_argument("name")
    t.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.verb == "time":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            ap.error("time: give the command after --")
        t0 = time.perf_counter()
        rc = subprocess.call(command, cwd=ROOT)
        seconds = time.perf_counter() - t0
        if rc:
            print(f"{' '.join(command)} exited {rc}; nothing recorded", file=sys.stderr)
            return rc
        record_figure(args.name, round(seconds, 1), "s", " ".join(command))
        print(f"{args.name}: {seconds:.1f} s recorded in bench/figures.json and docs/figures.md")
        return 0
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != render(load()):
            print("docs/figures.md is stale: run `python -m bench.figures`", file=sys.stderr)
            return 1
        return 0
    print(f"wrote {write_page()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
