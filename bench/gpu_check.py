"""One LongAct update of a Qwen3-1.7B-shaped model at 32k prompt + 4k completion on one GPU.

    python bench/gpu_check.py                        # CUDA: ~1 min; prints peak memory, tokens/s, MFU
    python bench/gpu_check.py --tiny --device cpu    # seconds: the same code path on a tiny model

Needs only torch and transformers (it imports training/, whose module-level imports are the
standard library, torch and tasks/; it checks that vLLM and lm-eval were not imported). The model
is random-initialised from a config (nothing is downloaded): Qwen3-1.7B's shape (28 layers, hidden
2048, 16 query / 8 KV heads of 128, MLP 6144, vocabulary 151,936, tied embeddings).

What runs is the trainer's own code: mask calibration on the 32k prompt (forward without logits),
`training.train.update` with float32 master weights and bf16 autocast (`bf16: true`, parallel
none), `gradient_checkpointing: true`, the packed row, chunked log-probs at completion positions,
clipping and the AdamW step. One warm-up update, then `--updates` timed ones.

MFU = model FLOPs / (time x peak). Model FLOPs per update (no recompute counted, as usual):
6 x decoder parameters x tokens + causal attention 6 x T^2 x (heads x head_dim) x layers
+ the output layer 6 x V x hidden x completion tokens (it runs on completion positions only).
Peak: --peak-tflops, default 989 (H100/H200 SXM dense bf16).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QWEN3_1_7B = dict(vocab_size=151_936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                  max_position_embeddings=40_960)
TINY = dict(QWEN3_1_7B, vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16)


def model_flops(c: dict, tokens: int, completion: int) -> float:
    h, L, d_q = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"] * c["head_dim"]
    d_kv = c["num_key_value_heads"] * c["head_dim"]
    per_layer = h * (d_q + 2 * d_kv) + d_q * h + 3 * h * c["intermediate_size"]  # q,k,v,o + gate,up,down
    return 6 * per_layer * L * tokens + 6 * tokens**2 * d_q * L + 6 * c["vocab_size"] * h * completion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt", type=int, default=32_768)
    ap.add_argument("--completion", type=int, default=4_096)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model, 512 + 64 tokens: a smoke test of the path")
    ap.add_argument("--updates", type=int, default=2, help="timed updates after one warm-up")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()
    if args.tiny:
        args.prompt, args.completion = 512, 64

    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from training import losses as L
    from training import parallel
    from training.config import load_config
    from training.logprobs import no_logits, prepare
    from training.mask import LongActMask, MaskConfig
    from training.train import Learner, Row, update

    banned = [m for m in ("vllm", "lm_eval") if m in sys.modules]
    assert not banned, f"training imported {banned}: the GPU check must run with torch + transformers only"

    shape = TINY if args.tiny else QWEN3_1_7B
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with dev:  # initialise on the device: a 1.7B random init on CPU alone takes minutes
        model = AutoModelForCausalLM.from_config(Qwen3Config(**shape), dtype=torch.float32)
    cfg = load_config(None, ["model=random-qwen3", "bf16=true", "gradient_checkpointing=true", f"device={args.device}",
                             "sampling.temperature=1.0"])
    prepare(model, cfg.gradient_checkpointing)
    n = args.prompt + args.completion
    ids = torch.randint(3, shape["vocab_size"], (n,))
    with no_logits(model):
        mask = LongActMask.calibrate(model, [{"input_ids": ids[None, :args.prompt].to(dev),
                                              "attention_mask": torch.ones(1, args.prompt, dtype=torch.long, device=dev)}],
                                     MaskConfig(keep_ratio=0.3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.1)
    mask.attach(model, opt)
    setup_s = time.perf_counter() - t0
    row = Row(ids, torch.ones(n, dtype=torch.long), torch.ones(args.completion), args.prompt, torch.tensor(1.0))
    d = parallel.Dist(device=dev)
    learner = Learner(cfg, d, model, model, opt, mask, L.POLICY_LOSSES["ppo_clip"], L.AGGREGATIONS["token_mean"])

    def one_update() -> float:
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        stats = update(learner, [row])
        if cuda:
            torch.cuda.synchronize()
        assert stats["finite"] and stats["grad_norm"] > 0, stats
        return time.perf_counter() - t

    warm = one_update()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = [one_update() for _ in range(args.updates)]
    sec = min(times)
    flops = model_flops(shape, n, args.completion)
    out = {"model": "tiny" if args.tiny else "Qwen3-1.7B shape", "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
           "tokens": n, "prompt": args.prompt, "completion": args.completion, "setup_s": round(setup_s, 1),
           "warmup_update_s": round(warm, 2), "update_s": round(sec, 3), "tokens_per_s": round(n / sec),
           "model_tflops_per_update": round(flops / 1e12, 1), "mfu": round(flops / sec / (args.peak_tflops * 1e12), 4),
           "masked_rows_changed": mask.masked_rows_changed(), "torch": torch.__version__}
    if cuda:
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(dev) / 2**30, 2)
    import transformers

    out["transformers"] = transformers.__version__
    for k, v in out.items():
        print(f"{k:>24}: {v}")
    print(json.dumps(out))
    if cuda and not args.tiny:
        from bench.figures import record_figure

        for key, unit in (("update_s", "s"), ("tokens_per_s", "tokens/s"), ("mfu", ""), ("peak_allocated_gib", "GiB")):
            record_figure(f"gpu_check.{key}", out[key], unit, out["device"])


if __name__ == "__main__":
    main()
