"""One update's forward and backward with each GRPO group's prompt packed once vs row by row.

    python bench/shared_prompts.py [--prompt-tokens 1300] [--groups 8] [--group-size 4] [--repeats 5]

The demo's shape by default (training/configs/tiny-study.yaml: 8 prompts x 4 samples, prompts of
~1.3k tokens, 8 new tokens, micro-batches of 8 rows) on the skilled tiny model, in one process:
the same rows through `token_logps` and backward, shared-prompt layout and row-by-row layout
interleaved, after one warm-up each. Prints the median of each side, their ratio and the largest
log-prob difference between the two layouts. Goal: speedup close to the group size at long
prompts, log-probs equal within float rounding (<= 1e-4).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import record_figure  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "assets" / "tiny-qwen3-skilled"))
    ap.add_argument("--prompt-tokens", type=int, default=1300)
    ap.add_argument("--completion-tokens", type=int, default=8)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from training.logprobs import pack, prepare, token_logps

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    prepare(model)
    g = torch.Generator().manual_seed(0)
    V = model.config.vocab_size
    seqs = []
    for _ in range(args.groups):
        prompt = torch.randint(3, V, (args.prompt_tokens,), generator=g)
        seqs += [(torch.cat([prompt, torch.randint(3, V, (args.completion_tokens,), generator=g)]), args.prompt_tokens)
                 for _ in range(args.group_size)]
    mbs = [pack(seqs[i:i + args.micro_batch], args.completion_tokens, "cpu") for i in range(0, len(seqs), args.micro_batch)]
    layouts = {"shared": mbs, "row by row": [dataclasses.replace(p, shared=None) for p in mbs]}
    tokens = {k: sum((p.shared or p).tokens for p in v) for k, v in layouts.items()}

    def one_update(packs) -> tuple[float, list]:
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        lps = []
        for p in packs:
            lp, _ = token_logps(model, p)
            lp.sum().backward()
            lps.append(lp.detach())
        return time.perf_counter() - t0, lps

    times = {k: [] for k in layouts}
    lps = {k: one_update(v)[1] for k, v in layouts.items()}  # warm-up, and the log-probs compared
    for _ in range(args.repeats):
        for k, v in layouts.items():
            times[k].append(one_update(v)[0])
    diff = max(float((a - b).abs().max()) for a, b in zip(lps["shared"], lps["row by row"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["row by row"] / med["shared"]
    shape = (f"{args.groups} groups x {args.group_size}, prompts {args.prompt_tokens} tokens, "
             f"{args.completion_tokens} new, micro-batch {args.micro_batch}")
    for k in layouts:
        print(f"{k:>10}: {tokens[k]:6d} tokens, median {med[k]:.3f} s over {args.repeats} "
              f"({min(times[k]):.3f}-{max(times[k]):.3f})")
    print(f"speedup {speedup:.2f}x; largest log-prob difference {diff:.2e} ({shape})")
    record_figure("shared_prompts.speedup", round(speedup, 2), "x", f"median of {args.repeats}; {shape}")
    record_figure("shared_prompts.max_logp_diff", float(f"{diff:.2e}"), "", shape)


if __name__ == "__main__":
    main()
