"""Soak: 2,000 tiny-suite requests at concurrency 32 against the CPU vLLM server; nothing lost.

    python bench/soak.py [--model models/tiny-qwen3] [--requests 2000] [--concurrency 32]

The tiny suite's prompts (fitted like a real run) are cycled until --requests are sent through
the harness's own ServerLM (retries, fail-fast, per-request records). Reported: answered, failed,
lost (requests with neither an answer nor an error), p50/p99 latency, throughput.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import tiny_model  # noqa: E402
from bench.figures import record_figure  # noqa: E402


class Req:
    """The parts of an lm-eval Instance that ServerLM reads."""

    def __init__(self, task_name, doc_id, context, gen_kwargs):
        self.task_name, self.doc_id, self.args, self.doc = task_name, doc_id, (context, gen_kwargs), {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    import logging

    from transformers import AutoTokenizer

    from harness.backends.lm import ServerLM, TaskSpec
    from harness.backends.serve import ServerConfig, VLLMServer
    from harness.run.tasks import task_manager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    model = tiny_model(args.model)
    tok = AutoTokenizer.from_pretrained(model)
    window = 2048
    loaded = task_manager({"tokenizer": model, "max_model_len": window}).load(["tiny"])
    pool, specs = [], {}
    for name, task in loaded["tasks"].items():
        specs[name] = TaskSpec.from_task(task)
        gen = dict(task.config.generation_kwargs)
        pool += [(name, i, task.doc_to_text(doc), gen) for i, doc in enumerate(task.eval_docs)]
    reqs = [Req(name, k, text, gen) for k, (name, _, text, gen) in
            ((k, pool[k % len(pool)]) for k in range(args.requests))]

    log = Path("results") / "soak-server.log"
    with VLLMServer(ServerConfig(model=model, max_model_len=window), log_path=log) as server:
        lm = ServerLM(server.base_url, model, tok, window, task_specs=specs, concurrency=args.concurrency,
                      progress=True)
        t0 = time.perf_counter()
        answers = lm.generate_until(reqs)
        wall = time.perf_counter() - t0
    failed = [r for r in lm.records if r.error]
    lost = args.requests - len(lm.records)
    lat = sorted(r.latency_s for r in lm.records if r.error is None and r.latency_s is not None)
    print(f"\nrequests {args.requests} at concurrency {args.concurrency}: answered {len(answers) - len(failed)}, "
          f"failed {len(failed)}, lost {lost}")
    note = f"{args.requests} requests at concurrency {args.concurrency}"
    record_figure("soak.answered", len(answers) - len(failed), "requests", note)
    record_figure("soak.failed", len(failed), "requests", note)
    record_figure("soak.lost", lost, "requests", note)
    if lat:
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        print(f"latency p50 {statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
              f"throughput {args.requests / wall:.1f} req/s over {wall:.1f} s")
        record_figure("soak.p50_ms", round(statistics.median(lat) * 1000), "ms", note)
        record_figure("soak.p99_ms", round(p99 * 1000), "ms", note)
        record_figure("soak.throughput", round(args.requests / wall, 1), "requests/s", note)
    if failed:
        print(f"first error: {failed[0].error}")


if __name__ == "__main__":
    main()
