"""The same tasks through the vLLM server and through lm-eval's in-process `hf` backend: speed, and
whether the two give the same greedy answers.

    python bench/server_vs_hf.py [--model models/tiny-qwen3] [--tasks tiny_niah]
    python bench/server_vs_hf.py --model models/smollm2-135m --tasks tiny --limit 10 --window 4096 \\
        --base-url http://127.0.0.1:8000 --warmup 0          # a real model, a server already running

Server start-up and a warm-up pass (`--warmup` requests, default 16) are excluded from the server
side and reported separately. Default tasks: the needle task, whose prompts are 256-1024 tokens.
Goal: server path >= 3x faster.

Agreement: per item (same task, same doc_id), the raw answers are compared exactly and after the
task's own filter (what is scored). Greedy decoding on two engines can still differ where two
tokens' logits are within float rounding of each other; each disagreement is printed with where
the two answers part.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_dir, timed, tiny_model  # noqa: E402
from bench.figures import record_figure  # noqa: E402


def answers(run_dir: str) -> dict[tuple[str, int], dict]:
    """(task, doc_id) -> that item's samples row, for every task of a run."""
    rows = {}
    for f in sorted(Path(run_dir).glob("samples_*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            rows[(f.stem.removeprefix("samples_"), r["doc_id"])] = r
    return rows


def parting(a: str, b: str) -> int:
    """Index of the first character where a and b differ."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def agreement(server_dir: str, hf_dir: str) -> dict:
    """Per task and overall: items compared, raw answers equal, filtered answers equal."""
    srv, hf = answers(server_dir), answers(hf_dir)
    keys = sorted(srv.keys() & hf.keys())
    per_task: dict[str, dict] = {}
    differ = []
    for key in keys:
        t = per_task.setdefault(key[0], {"n": 0, "raw": 0, "filtered": 0})
        a, b = srv[key], hf[key]
        t["n"] += 1
        t["raw"] += a["response"] == b["response"]
        t["filtered"] += json.dumps(a["filtered"]) == json.dumps(b["filtered"])
        if a["response"] != b["response"]:
            i = parting(a["response"], b["response"])
            differ.append(f"{key[0]} doc {key[1]} at char {i}: server {a['response'][i:i + 40]!r} / hf {b['response'][i:i + 40]!r}")
    total = {k: sum(t[k] for t in per_task.values()) for k in ("n", "raw", "filtered")}
    return {"tasks": per_task, "total": total, "differ": differ, "missing": len(srv.keys() ^ hf.keys())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: the tiny model, built if absent)")
    ap.add_argument("--tasks", default="tiny_niah")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--metadata", type=json.loads, default={}, help="JSON passed to the task loaders (both sides)")
    ap.add_argument("--base-url", help="a running server with this model (default: start one)")
    ap.add_argument("--warmup", type=int, default=16, help="warm-up requests before the timed server pass")
    ap.add_argument("--out", help="where the runs go (default: a scratch directory)")
    args = ap.parse_args()

    from harness.backends.serve import ServerConfig, VLLMServer
    from harness.records.io import load_run
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    model = tiny_model(args.model)
    tasks = args.tasks.split(",")
    out = args.out or scratch_dir("bench-hf-")

    def run(limit, **kw):
        return RunConfig(tasks=tasks, limit=limit, output_dir=out, use_cache=False, progress=False,
                         task_metadata=args.metadata, **kw)

    def server_side(base_url: str):
        client = ClientConfig(base_url=[base_url])
        # Warm-up: vLLM's CPU build compiles kernels for new batch shapes on first use; that is
        # start-up cost, like the server start, so it is excluded and reported.
        warm_t = timed(run_eval, EvalConfig(tokenizer=model, client=client, run=run(args.warmup)))[1] if args.warmup else 0.0
        server_dir, server_t = timed(run_eval, EvalConfig(tokenizer=model, client=client, max_model_len=args.window,
                                                          run=run(args.limit, run_id="server")))
        return server_dir, server_t, warm_t

    if args.base_url:
        (server_dir, server_t, warm_t), startup = server_side(args.base_url), 0.0
    else:
        with VLLMServer(ServerConfig(model=model, max_model_len=args.window), log_path=Path(out) / "server.log") as srv:
            server_dir, server_t, warm_t = server_side(srv.base_url)
            startup = srv.startup_s
    hf_dir, hf_t = timed(run_eval, EvalConfig(model=model, backend="hf", max_model_len=args.window,
                                              run=run(args.limit, run_id="hf")))
    assert load_run(hf_dir).status == "complete" and load_run(server_dir).status == "complete"
    n = load_run(server_dir).requests["total"]
    tokens = sum(t.prompt_tokens for t in load_run(server_dir).tasks.values()) / max(n, 1)
    print(f"{n} requests, mean prompt {tokens:.0f} tokens; runs in {out}")
    print(f"server start (excluded): {startup:.1f} s; warm-up pass (excluded): {warm_t:.1f} s")
    print(f"server path: {server_t:.2f} s   hf backend: {hf_t:.2f} s")
    print(f"speed-up server/hf = {hf_t / server_t:.2f}x  (goal >= 3x)")
    if args.model is None:  # the figure is the tiny default's; a real model's time is printed only
        record_figure("server_vs_hf.speedup", round(hf_t / server_t, 2), "x", f"{n} requests, tasks {args.tasks}")

    agree = agreement(server_dir, hf_dir)
    print("\ngreedy answers, vLLM server vs hf backend (same items):")
    for task, t in agree["tasks"].items():
        print(f"  {task:28} {t['n']:4} items   raw equal {100 * t['raw'] / t['n']:5.1f}%   scored equal {100 * t['filtered'] / t['n']:5.1f}%")
    tot = agree["total"]
    print(f"  {'all':28} {tot['n']:4} items   raw equal {100 * tot['raw'] / max(tot['n'], 1):5.1f}%"
          f"   scored equal {100 * tot['filtered'] / max(tot['n'], 1):5.1f}%   (goal >= 95%)")
    for line in agree["differ"]:
        print("   ", line)
    if agree["missing"]:
        print(f"  {agree['missing']} items answered on one side only")
    (Path(out) / "agreement.json").write_text(json.dumps(agree, indent=1))
    record_figure("server_vs_hf.agreement", round(100 * tot["raw"] / max(tot["n"], 1), 1), "%",
                  f"{tot['n']} items, tasks {args.tasks}, model {model}, raw greedy answers equal")


if __name__ == "__main__":
    main()
