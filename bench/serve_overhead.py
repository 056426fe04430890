"""Harness overhead: `longact eval` wall time / a raw HTTP client sending the same prompts.

    python bench/serve_overhead.py [--model models/tiny-qwen3] [--tasks tiny] [--repeats 2]

One vLLM server serves both sides. The raw client sends exactly the prompts the harness sends
(fitted by the same code, same endpoints, same sampling parameters, same concurrency) and does
nothing else; the harness side includes task loading, prompt fitting, scoring and writing results.
The request cache is off so both sides hit the server for every prompt. Goal: ratio <= 1.15.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import record_figure, scratch_dir, timed, tiny_model  # noqa: E402


def collect_requests(model: str, tasks: list[str], window: int):
    """(endpoint, payload) for every request the harness would send, fitted the same way."""
    from harness.backends.fitting import PromptFitter
    from harness.backends.lm import split_gen_kwargs
    from harness.run.tasks import task_manager
    from tasks.tokens import load_tokenizer

    fitter = PromptFitter(load_tokenizer(model), window)
    loaded = task_manager().load(tasks)
    out = []
    for task in loaded["tasks"].values():
        endpoint = task.config.metadata.get("endpoint", "completion")
        max_gen, params = split_gen_kwargs(dict(task.config.generation_kwargs))
        for doc in task.eval_docs:
            fit = fitter.fit(task.doc_to_text(doc), max_gen, chat=endpoint == "chat")
            out.append((endpoint, fit.text, params))
    return out


def raw_client(base_url: str, model: str, reqs, concurrency: int) -> None:
    import requests

    session = requests.Session()

    def send(item):
        endpoint, text, params = item
        if endpoint == "chat":
            r = session.post(f"{base_url}/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}], **params})
        else:
            r = session.post(f"{base_url}/v1/completions", json={"model": model, "prompt": text, **params})
        r.raise_for_status()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, reqs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--tasks", default="tiny")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from harness.backends.serve import ServerConfig, VLLMServer
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    model = tiny_model(args.model)
    tasks = args.tasks.split(",")
    reqs = collect_requests(model, tasks, args.window)
    out = scratch_dir("bench-overhead-")
    with VLLMServer(ServerConfig(model=model, max_model_len=args.window), log_path=Path(out) / "server.log") as srv:
        print(f"server start: {srv.startup_s:.1f} s; {len(reqs)} requests per pass")
        raw_client(srv.base_url, srv.info["model"], reqs[:16], args.concurrency)  # warm-up
        raw_t, harness_t = [], []
        for _ in range(args.repeats):
            raw_t.append(timed(raw_client, srv.base_url, srv.info["model"], reqs, args.concurrency)[1])
            cfg = EvalConfig(tokenizer=model, client=ClientConfig(base_url=srv.base_url, concurrency=args.concurrency), run=RunConfig(tasks=tasks, output_dir=out, use_cache=False, progress=False))
            harness_t.append(timed(run_eval, cfg)[1])
    raw, harness = statistics.median(raw_t), statistics.median(harness_t)
    print(f"raw client:  {raw:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in raw_t)})")
    print(f"harness:     {harness:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in harness_t)})")
    print(f"ratio harness/raw = {harness / raw:.3f}  (goal <= 1.15)")
    record_figure("serve_overhead.ratio", round(harness / raw, 3), "", f"median of {args.repeats}, tasks {args.tasks}")
    record_figure("serve_overhead.server_start_s", round(srv.startup_s, 1), "s")


if __name__ == "__main__":
    main()
