"""Serving dtype on the CPU: vLLM prompt (prefill) and decode throughput of one model, bf16 vs fp32.

    python bench/real_model_dtype.py [--model models/smollm2-135m] [--prompt-tokens 2000]

For each dtype one vLLM server is started on the same directory (`--dtype`, prefix caching off so
no request reuses another's prefill); a warm-up request with a different prompt goes first, then one
prompt of about --prompt-tokens tokens with max_tokens=1 (prefill), then a short prompt with 64
greedy new tokens (decode), each --repeats times (new prompts each time; the median is kept).
Prints tokens/s per dtype and the fp32/bf16 ratios. The model comes from
`longact model fetch smollm2-135m` (make real-model).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_dir  # noqa: E402


def long_prompt(seed: int, n_tokens: int, tokenizer) -> str:
    """Plain sentences (different for each seed) until the tokenizer counts `n_tokens`."""
    words = "river mill village harbour orchard lantern market bridge meadow tower".split()
    parts, i = [], 0
    while True:
        parts.append(f"Entry {seed}-{i}: the {words[(i * 7 + seed) % 10]} by the {words[(i * 3 + 1) % 10]} "
                     f"was counted {i * 13 + seed} times.")
        i += 1
        if i % 20 == 0 and len(tokenizer(" ".join(parts))["input_ids"]) >= n_tokens:
            return " ".join(parts)


def request(base_url: str, model: str, prompt: str, max_tokens: int) -> tuple[dict, float]:
    import requests

    t = time.perf_counter()
    r = requests.post(f"{base_url}/v1/completions", timeout=600,
                      json={"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0,
                            "ignore_eos": True})
    r.raise_for_status()
    return r.json()["usage"], time.perf_counter() - t


def measure(model: str, dtype: str, prompts: list[str], window: int) -> dict:
    """prompts[0] warms the server up; each later one is measured once (prefill, then a decode)."""
    import statistics

    from harness.backends.serve import ServerConfig, VLLMServer

    cfg = ServerConfig(model=model, dtype=dtype, max_model_len=window, extra_args=["--no-enable-prefix-caching"])
    prefill, decode = [], []
    with VLLMServer(cfg, Path(scratch_dir("real-dtype-")) / "server.log") as server:
        request(server.base_url, model, prompts[0], 1)
        for i, prompt in enumerate(prompts[1:]):
            usage, seconds = request(server.base_url, model, prompt, 1)
            prefill.append(usage["prompt_tokens"] / seconds)
            n_prompt = usage["prompt_tokens"]
            usage, seconds = request(server.base_url, model, f"Write a short story about lighthouse {i}.", 64)
            decode.append(usage["completion_tokens"] / seconds)
    return {"dtype": dtype, "startup_s": round(server.startup_s or 0, 1), "prompt_tokens": n_prompt,
            "prefill_tok_s": round(statistics.median(prefill), 1), "prefill_each": [round(x, 1) for x in prefill],
            "decode_tok_s": round(statistics.median(decode), 1), "decode_each": [round(x, 1) for x in decode]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/smollm2-135m", help="HF model directory (default: %(default)s)")
    ap.add_argument("--prompt-tokens", type=int, default=2000, help="length of the measured prompt (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=2, help="measured prompts per dtype (default: %(default)s)")
    ap.add_argument("--dtypes", default="bfloat16,float32", help="comma list of --dtype values (default: %(default)s)")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    prompts = [long_prompt(seed, args.prompt_tokens, tok) for seed in range(args.repeats + 1)]
    rows = [measure(args.model, d, prompts, window=args.prompt_tokens + 512) for d in args.dtypes.split(",")]
    for row in rows:
        print(row, flush=True)
        from bench.figures import record_figure

        for kind in ("prefill", "decode"):
            record_figure(f"real_model_dtype.{kind}_{row['dtype']}", row[f"{kind}_tok_s"], "tokens/s",
                          f"{row['prompt_tokens']}-token prompt" if kind == "prefill" else "64 new tokens")
    if len(rows) == 2:
        a, b = rows
        print(f"prefill {b['dtype']}/{a['dtype']}: {b['prefill_tok_s'] / a['prefill_tok_s']:.2f}x; "
              f"decode {b['dtype']}/{a['dtype']}: {b['decode_tok_s'] / a['decode_tok_s']:.2f}x")


if __name__ == "__main__":
    main()
