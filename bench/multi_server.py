"""Dispatch efficiency over several servers: stub OpenAI servers that answer after a fixed latency
(a sleep, no CPU), fed by the harness's client (`ServerLM`, harness/backends/pool.py).

    python bench/multi_server.py [--latency 0.2] [--per-server 4] [--requests-per-server 60]

For N = 1, 2, 4, 8 servers it prints the throughput (answers per second) and the efficiency,
throughput / (N x the one-server throughput): 1.0 means N servers do N times the work. Then the
same at the largest N with one server killed at half-time: the survivors' ideal is (N - 1)
servers' throughput after the kill, so efficiency = answers / (one-server throughput x
(N x t_kill + (N - 1) x (t_end - t_kill))). Goals: >= 0.95 without a kill, >= 0.9 with one.
The machine's load changes the client's own cost per request; say what else was running.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import tiny_model  # noqa: E402
from bench.figures import record_figure  # noqa: E402


def requests_for(n: int):
    from lm_eval.api.instance import Instance

    return [Instance(request_type="generate_until", doc={}, arguments=(f"prompt {i:05d}", {"max_gen_toks": 4}), idx=0,
                     metadata=("t", i, 1)) for i in range(n)]


def host_stubs(n: int, latency: float, conn) -> None:
    """In a process of its own (the servers' HTTP work must not share the client's GIL): n stub
    servers; sends their URLs, then obeys "kill I" and "close"."""
    from tests.stub_openai import StubServer, ok_answer

    def respond(path, body):
        time.sleep(latency)
        return ok_answer(body, "ok")

    stubs = [StubServer(respond=respond) for _ in range(n)]
    conn.send([s.url for s in stubs])
    while True:
        cmd = conn.recv()
        if cmd == "close":
            break
        stubs[int(cmd.split()[1])].kill()
        conn.send("killed")
    for s in stubs:
        s.close()


def run(n_servers: int, per_server: int, latency: float, n_requests: int, tokenizer, kill_at: float | None = None):
    """(answers, seconds, seconds at the kill or None)."""
    import multiprocessing as mp

    from harness.backends.lm import ServerLM, TaskSpec

    here, there = mp.Pipe()
    host = mp.get_context("spawn").Process(target=host_stubs, args=(n_servers, latency, there), daemon=True)
    host.start()
    urls = here.recv()
    try:
        lm = ServerLM(urls, "stub-model", tokenizer, 256, task_specs={"t": TaskSpec()},
                      concurrency=per_server, max_retries=2, backoff_s=0.05, progress=False)
        killed = []
        if kill_at is not None:
            def killer():
                time.sleep(kill_at)
                killed.append(time.perf_counter())
                here.send("kill 0")
            threading.Thread(target=killer, daemon=True).start()
        t0 = time.perf_counter()
        texts = lm.generate_until(requests_for(n_requests))
        seconds = time.perf_counter() - t0
        return sum(1 for t in texts if t), seconds, (killed[0] - t0 if killed else None)
    finally:
        here.send("close")
        host.join(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per answer (default: %(default)s)")
    ap.add_argument("--per-server", type=int, default=4, help="requests in flight per server (default: %(default)s)")
    ap.add_argument("--requests-per-server", type=int, default=60, help="(default: %(default)s)")
    ap.add_argument("--servers", default="1,2,4,8", help="(default: %(default)s)")
    args = ap.parse_args()

    from tasks.tokens import load_tokenizer

    tok = load_tokenizer(tiny_model(None))
    counts = [int(x) for x in args.servers.split(",")]
    one = None
    print(f"stub servers in a process of their own; latency {args.latency} s, {args.per_server} in flight per server, "
          f"{args.requests_per_server} requests per server")
    for n in counts:
        answers, seconds, _ = run(n, args.per_server, args.latency, n * args.requests_per_server, tok)
        rate = answers / seconds
        one = one or rate
        print(f"servers {n}: {answers} answers in {seconds:.2f} s = {rate:.1f}/s, efficiency {rate / (n * one):.3f}")
    record_figure("multi_server.efficiency", round(rate / (n * one), 3), "", f"{n} servers, latency {args.latency} s")
    n = counts[-1]
    total = n * args.requests_per_server
    ideal_s = total / (n * one)
    answers, seconds, t_kill = run(n, args.per_server, args.latency, total, tok, kill_at=ideal_s / 2)
    capacity = one * (n * t_kill + (n - 1) * (seconds - t_kill))
    print(f"servers {n}, one killed at {t_kill:.2f} s: {answers} of {total} answers in {seconds:.2f} s, "
          f"efficiency for the survivors {answers / capacity:.3f}")
    record_figure("multi_server.efficiency_after_kill", round(answers / capacity, 3), "", f"{n} servers, one killed")


if __name__ == "__main__":
    main()
