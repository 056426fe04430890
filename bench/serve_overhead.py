"""Harness overhead: `longact eval` wall time / a raw HTTP client sending the same prompts.

    python bench/serve_overhead.py [--model models/tiny-qwen3] [--tasks tiny] [--repeats 5] [--profile 25]

One vLLM server serves both sides. The raw client sends exactly the prompts the harness sends
(fitted by the same code, same endpoints, same sampling parameters, same concurrency) and does
nothing else; the harness side includes task loading, prompt fitting, scoring and writing results.
The request cache is off so both sides hit the server for every prompt. One untimed pass of each
side warms the server and the process first; then the timed passes alternate (harness, raw,
harness, raw, ...) so load that drifts during the run falls on both. Prints the median and range
of each side and of the per-pair ratio; the headline is the median per-pair ratio. Goal: <= 1.05.

With two or more cores the server gets the first half and the client (either side) the rest
(`--no-pin`: all share every core). A vLLM CPU server's processes poll busily for work; sharing
cores with them, a client's own CPU work and even its threads' start wait for the scheduler, and
one pass of the same requests varied 2.7-11.7 s. Pinned, the ratio measures the client, as on a
GPU machine, where the client never shares the server's compute.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_dir, timed, tiny_model  # noqa: E402
from bench.figures import record_figure  # noqa: E402


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


def spread(xs: list[float]) -> str:
    """median, interquartile range and range of `xs`, for printing (a load spike moves the range, the IQR less)."""
    q1, _, q3 = statistics.quantiles(xs, n=4)
    return f"median {statistics.median(xs):.3f}, IQR {q1:.3f}-{q3:.3f}, range {min(xs):.3f}-{max(xs):.3f}"


def profile_harness(run, top: int) -> None:
    """One harness pass under cProfile: the functions with the most cumulative time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(run)
    print(f"\nprofile of one harness pass (top {top} by cumulative time):")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--tasks", default="tiny")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5, help="timed pairs (harness, raw), after one untimed pass of each")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after the pairs, profile one more harness pass and print its top N functions")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="server and client share every core (default: half the cores each)")
    args = ap.parse_args()
    if args.repeats < 2:
        ap.error("--repeats must be at least 2 (the spread needs two pairs; the goal is judged on 5 or more)")

    from harness.backends.serve import ServerConfig, VLLMServer
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    model = tiny_model(args.model)
    tasks = args.tasks.split(",")
    reqs = collect_requests(model, tasks, args.window)
    out = scratch_dir("bench-overhead-")
    cores = sorted(os.sched_getaffinity(0))
    pin = args.pin and len(cores) >= 2
    server_cores, client_cores = cores[:len(cores) // 2], cores[len(cores) // 2:]
    if pin:  # the server's processes inherit this affinity; the client takes the other half below
        os.sched_setaffinity(0, server_cores)
    server_cfg = ServerConfig(model=model, max_model_len=args.window, cpus=",".join(map(str, server_cores)) if pin else None)
    with VLLMServer(server_cfg, log_path=Path(out) / "server.log") as srv:
        if pin:
            os.sched_setaffinity(0, client_cores)
        print(f"server start: {srv.startup_s:.1f} s; {len(reqs)} requests per pass; "
              + (f"server on cores {server_cores}, client on {client_cores}" if pin else "all cores shared"))
        cfg = EvalConfig(tokenizer=model, client=ClientConfig(base_url=srv.base_url, concurrency=args.concurrency),
                         run=RunConfig(tasks=tasks, output_dir=out, use_cache=False, progress=False))

        def harness() -> None:
            run_eval(cfg)

        def raw() -> None:
            raw_client(srv.base_url, srv.info["model"], reqs, args.concurrency)

        # Warm-up, untimed: the server's first requests (compilation, allocator) and the harness's first
        # run (imports, task catalog, tokenizer load) are paid once, by neither side's timings.
        warm_h, warm_r = timed(harness)[1], timed(raw)[1]
        print(f"warm-up (untimed): harness {warm_h:.2f} s, raw {warm_r:.2f} s")
        harness_t, raw_t = [], []
        for _ in range(args.repeats):  # interleaved, so drifting load hits both sides alike
            harness_t.append(timed(harness)[1])
            raw_t.append(timed(raw)[1])
        if args.profile:
            profile_harness(harness, args.profile)
    ratios = [h / r for h, r in zip(harness_t, raw_t)]
    ratio = statistics.median(ratios)
    print(f"raw client: {spread(raw_t)} s  (runs: {', '.join(f'{t:.2f}' for t in raw_t)})")
    print(f"harness:    {spread(harness_t)} s  (runs: {', '.join(f'{t:.2f}' for t in harness_t)})")
    print(f"ratio harness/raw per pair: {spread(ratios)}  (goal <= 1.05)")
    note = (f"median of {args.repeats} interleaved pairs after a warm-up, tasks {args.tasks}, "
            + ("server and client on their own cores" if pin else "cores shared"))
    record_figure("serve_overhead.ratio", round(ratio, 3), "", f"{note}; pairs: {spread(ratios)}")
    record_figure("serve_overhead.harness_s", round(statistics.median(harness_t), 2), "s",
                  f"{note}; {min(harness_t):.2f}-{max(harness_t):.2f}")
    record_figure("serve_overhead.raw_s", round(statistics.median(raw_t), 2), "s",
                  f"{note}; {min(raw_t):.2f}-{max(raw_t):.2f}")
    record_figure("serve_overhead.server_start_s", round(srv.startup_s, 1), "s")


if __name__ == "__main__":
    main()
