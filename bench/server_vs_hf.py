"""Tiny suite through the vLLM server vs lm-eval's in-process `hf` backend, same model and tasks.

    python bench/server_vs_hf.py [--model models/tiny-qwen3] [--tasks tiny_niah]

Server start-up and a 16-request warm-up pass are excluded from the server side and reported
separately. Default tasks: the
needle task, whose prompts are 256-1024 tokens. Goal: server path >= 3x faster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import record_figure, scratch_dir, timed, tiny_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--tasks", default="tiny_niah")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()

    from harness.backends.serve import ServerConfig, VLLMServer
    from harness.records.io import load_run
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    model = tiny_model(args.model)
    tasks = args.tasks.split(",")
    out = scratch_dir("bench-hf-")
    with VLLMServer(ServerConfig(model=model, max_model_len=args.window), log_path=Path(out) / "server.log") as srv:
        # Warm-up: vLLM's CPU build compiles kernels for new batch shapes on first use; that is
        # start-up cost, like the server start, so it is excluded and reported.
        _, warm_t = timed(run_eval, EvalConfig(tokenizer=model, client=ClientConfig(base_url=srv.base_url), run=RunConfig(tasks=tasks, limit=16, output_dir=out, use_cache=False, progress=False)))
        server_dir, server_t = timed(run_eval, EvalConfig(tokenizer=model, client=ClientConfig(base_url=srv.base_url), run=RunConfig(tasks=tasks, limit=args.limit, output_dir=out, use_cache=False, progress=False)))
        startup = srv.startup_s
    hf_dir, hf_t = timed(run_eval, EvalConfig(model=model, backend="hf", max_model_len=args.window, run=RunConfig(tasks=tasks, limit=args.limit, output_dir=out, use_cache=False, progress=False)))
    n = load_run(server_dir).requests["total"]
    tokens = sum(t.prompt_tokens for t in load_run(server_dir).tasks.values()) / max(n, 1)
    print(f"{n} requests, mean prompt {tokens:.0f} tokens")
    print(f"server start (excluded): {startup:.1f} s; warm-up pass (excluded): {warm_t:.1f} s")
    print(f"server path: {server_t:.2f} s   hf backend: {hf_t:.2f} s")
    print(f"speed-up server/hf = {hf_t / server_t:.2f}x  (goal >= 3x)")
    assert load_run(hf_dir).status == "complete"
    record_figure("server_vs_hf.speedup", round(hf_t / server_t, 2), "x", f"{n} requests, tasks {args.tasks}")


if __name__ == "__main__":
    main()
