"""The first GPU run: what only a GPU can show, on one GPU, in under 10 minutes.

    python bench/gpu_check.py                    # every check (CUDA); ~5-8 min on one H100/H200
    python bench/gpu_check.py --only fsdp        # one check: fsdp | autocast | flash | rollout | vllm
    python bench/gpu_check.py --tiny --device cpu --only fsdp,autocast   # seconds: the same code on CPU

Everything the CPU could reach is already tested without a GPU (docs/gpu.md lists what and how:
the presets' memory by simulation, `--plan`; flash-attention's varlen contract; vLLM's argument
parser). What is left needs CUDA, and each check here proves one piece of it:

- `fsdp`: FSDP2 over NCCL (one rank) with bf16 `MixedPrecisionPolicy`, activation checkpointing,
  packed rows and chunked log-probs, on a Qwen3-1.7B-shaped model at 32,768 + 4,096 tokens: the
  trainer's `update` (one warm-up, then timed), its peak allocated memory next to what
  `training.plan.simulate` predicts for the same model, world size and micro-batch (the ratio
  says how far to trust the 8-GPU plans), tokens/s and MFU.
- `autocast`: the same update under `parallel: none` with bf16 autocast (the single-GPU path).
- `rollout`: `HFRollout` on the device (the tiny model): a group's samples do not depend on the
  batch it is generated in, and neither the CPU nor the CUDA global RNG moves (`fork_rng` over the
  CUDA device), with `parallel.init` picking and setting the CUDA device; the harness's GPU
  listing (`nvidia-smi -L`) sees the GPU.
- `flash`: when flash-attn is installed, the packed forward with `flash_attention_2` against
  SDPA_VARLEN on the same bf16 weights and rows (log-probs must agree to bf16 rounding).
- `vllm`: when vLLM's CUDA build is installed, the trainer's rollout tests on the GPU
  (tests/test_training_vllm_rollout.py: the colocated engine's sampling log-probs match the
  policy's, and the streamed weight sync moves the engine's weights) and the trainer's CUDA
  precision test (tests/test_training_update.py, `gpu` marker).

The model is random-initialised from a config (nothing is downloaded): Qwen3-1.7B's shape (28
layers, hidden 2048, 16 query / 8 KV heads of 128, MLP 6144, vocabulary 151,936, tied embeddings).
MFU = model FLOPs / (time x peak): 6 x decoder parameters x tokens + causal attention
6 x T^2 x (heads x head_dim) x layers + the output layer 6 x V x hidden x completion tokens (no
recompute counted). Peak: --peak-tflops, default 989 (H100/H200 SXM dense bf16).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QWEN3_1_7B = dict(vocab_size=151_936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                  max_position_embeddings=40_960, model_type="qwen3")
TINY = dict(QWEN3_1_7B, vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16)
CHECKS = ("fsdp", "autocast", "flash", "rollout", "vllm")


def model_flops(c: dict, tokens: int, completion: int) -> float:
    h, L, d_q = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"] * c["head_dim"]
    d_kv = c["num_key_value_heads"] * c["head_dim"]
    per_layer = h * (d_q + 2 * d_kv) + d_q * h + 3 * h * c["intermediate_size"]  # q,k,v,o + gate,up,down
    return 6 * per_layer * L * tokens + 6 * tokens**2 * d_q * L + 6 * c["vocab_size"] * h * completion


def _config(args, *overrides: str):
    from training.config import load_config

    return load_config(None, ["model=random-qwen3", "bf16=true", "gradient_checkpointing=true", f"device={args.device}",
                              f"max_tokens_per_micro_batch={args.prompt + args.completion}",
                              f"sampling.max_new_tokens={args.completion}", *overrides])


def _model(shape: dict, dev):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    with dev:  # initialise on the device: a 1.7B random init on CPU alone takes minutes
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(**shape), dtype=torch.float32)


def _timed_updates(args, shape, parallel_mode: str) -> dict:
    """The trainer's update on one row of prompt + completion tokens: one warm-up, then timed."""
    import torch
    import torch.distributed as dist

    from training import parallel
    from training.logprobs import no_logits, prepare
    from training.mask import LongActMask
    from training.update import Row, make_learner, optimizer, update

    dev = parallel.init("none", args.device).device  # cuda:LOCAL_RANK, set as the current device
    cuda = dev.type == "cuda"
    cfg = _config(args, f"parallel={parallel_mode}")
    model = _model(shape, dev)
    prepare(model, cfg.gradient_checkpointing)
    n = args.prompt + args.completion
    ids = torch.randint(3, shape["vocab_size"], (n,))
    with no_logits(model):  # calibrated on full weights, before sharding, as `setup` does
        mask = LongActMask.calibrate(model, [{"input_ids": ids[None, :args.prompt].to(dev),
                                              "attention_mask": torch.ones(1, args.prompt, dtype=torch.long, device=dev)}],
                                     cfg.mask)
    d = parallel.Dist(device=dev)
    if parallel_mode == "fsdp":  # one rank over NCCL (gloo on CPU): FSDP2's CUDA path without 8 GPUs
        dist.init_process_group("nccl" if cuda else "gloo", store=dist.HashStore(), rank=0, world_size=1)
        d = parallel.Dist("fsdp", 0, 1, dev)
    try:
        net = parallel.wrap(model, d, cfg.bf16)
        opt = optimizer(cfg, model)
        mask.attach(model, opt)
        learner = make_learner(cfg, d, net, model, opt, mask)
        row = Row(ids, torch.ones(n, dtype=torch.long), torch.ones(args.completion), args.prompt, torch.tensor(1.0))

        def one_update() -> float:
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            stats = update(learner, [row])
            if cuda:
                torch.cuda.synchronize()
            assert stats.applied and stats.grad_norm > 0, stats
            return time.perf_counter() - t

        warm = one_update()  # AdamW's moments exist from here on
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sec = min(one_update() for _ in range(args.updates))
        flops = model_flops(shape, n, args.completion)
        out = {"update_s": round(sec, 3), "warmup_update_s": round(warm, 2), "tokens_per_s": round(n / sec),
               "mfu": round(flops / sec / (args.peak_tflops * 1e12), 4), "masked_rows_changed": mask.masked_rows_changed()}
        assert out["masked_rows_changed"] == 0
        if cuda:
            out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
            out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(dev) / 2**30, 2)
        return out
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def check_fsdp(args, shape) -> dict:
    """Simulated peak (fake tensors, CPU) first, then the real one on the device."""
    from training.plan import simulate

    t0 = time.perf_counter()
    memory, *_ = simulate(_config(args, "parallel=fsdp"), shape, 1, args.prompt + args.completion, args.completion,
                          count_flops=False)
    out = {"simulated_gib": round(sum(memory.values()), 2), "simulation_s": round(time.perf_counter() - t0, 1)}
    out.update(_timed_updates(args, shape, "fsdp"))
    if "peak_allocated_gib" in out:
        out["real_over_simulated"] = round(out["peak_allocated_gib"] / out["simulated_gib"], 3)
    return out


def check_autocast(args, shape) -> dict:
    return _timed_updates(args, shape, "none")


def check_flash(args, shape) -> dict:
    """flash_attention_2's varlen kernel against SDPA_VARLEN: same weights, same packed rows."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.logprobs import pack, prepare, token_logps

    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return {"skipped": "flash-attn is not installed (pip install flash-attn --no-build-isolation)"}
    dev = torch.device(args.device)
    sdpa = _model(shape, dev).to(torch.bfloat16)
    prepare(sdpa)
    flash = AutoModelForCausalLM.from_config(sdpa.config, dtype=torch.bfloat16, attn_implementation="flash_attention_2").to(dev)
    flash.load_state_dict(sdpa.state_dict())
    prepare(flash)
    g = torch.Generator().manual_seed(0)
    rows = [(torch.randint(3, shape["vocab_size"], (p + c,), generator=g), p) for p, c in ((4096, 512), (1000, 64), (7000, 900))]
    packed = pack(rows, 900, dev)
    with torch.no_grad():
        want, _ = token_logps(sdpa, packed)
        got, _ = token_logps(flash, packed)
    diff = float((got - want).abs().max())
    assert diff < 0.1, diff  # bf16 attention in two kernels; a cross-row leak would be O(1)
    return {"max_abs_logp_diff": round(diff, 4), "rows": 3, "tokens": packed.tokens}


def check_rollout(args, shape) -> dict:
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.backends.serve import visible_gpus
    from longact.tiny.model import build_tiny_model
    from training import parallel
    from training.rollout import HFRollout, SamplingConfig

    dev = parallel.init("none", args.device).device  # cuda:LOCAL_RANK, set as the current device
    assert dev.type == args.device, dev
    if dev.type == "cuda":  # what the harness places vLLM servers on (nvidia-smi -L)
        assert visible_gpus(), "nvidia-smi -L lists no GPU"
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "tiny")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(dev)
        ro = HFRollout(model, AutoTokenizer.from_pretrained(path), SamplingConfig(max_new_tokens=8), max_prompt_tokens=64)
        prompts = ["What is the passkey in the document?", "Read the following text and answer the question."]
        states = (torch.get_rng_state(), torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None)
        alone = ro.generate(prompts[:1], 3, seeds=[7])
        together = ro.generate([prompts[1], prompts[0]], 3, seeds=[3, 7])
        assert torch.equal(torch.get_rng_state(), states[0])
        if dev.type == "cuda":
            assert torch.equal(torch.cuda.get_rng_state(dev), states[1]), "the CUDA RNG moved"
        assert alone.texts == together.texts[3:], (alone.texts, together.texts)
    return {"device": str(dev), "samples": len(together.texts)}


def check_vllm(args, shape) -> dict:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return {"skipped": "vLLM is not installed (the CUDA build: pip install vllm)"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "tests/test_training_vllm_rollout.py",
           "tests/test_training_update.py::test_old_and_new_logps_share_one_precision"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return {"pytest": tail[0] if tail else "", "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt", type=int, default=32_768)
    ap.add_argument("--completion", type=int, default=4_096)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--only", default=",".join(CHECKS), help=f"comma list of {', '.join(CHECKS)}")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model, 512 + 64 tokens: a smoke test of the path")
    ap.add_argument("--updates", type=int, default=2, help="timed updates after one warm-up")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()
    if args.tiny:
        args.prompt, args.completion = 512, 64
    chosen = [c for c in args.only.split(",") if c]
    unknown = sorted(set(chosen) - set(CHECKS))
    if unknown:
        ap.error(f"--only: unknown check(s) {', '.join(unknown)}; expected {', '.join(CHECKS)}")

    import torch
    import transformers

    shape = TINY if args.tiny else QWEN3_1_7B
    cuda = args.device == "cuda"
    header = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
              "transformers": transformers.__version__, "model": "tiny" if args.tiny else "Qwen3-1.7B shape",
              "tokens": f"{args.prompt} + {args.completion}"}
    print(json.dumps(header))
    results, failed = {}, []
    for name in chosen:
        t0 = time.perf_counter()
        try:
            results[name] = globals()[f"check_{name}"](args, shape)
        except Exception as e:  # noqa: BLE001 - every check runs and reports; the exit code says if one failed
            results[name] = {"failed": f"{type(e).__name__}: {str(e)[:2000]}"}
            failed.append(name)
        results[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    print(json.dumps({**header, **results}))
    if cuda and not args.tiny and "fsdp" in results and "update_s" in results["fsdp"]:
        from bench.figures import record_figure

        for key, unit in (("update_s", "s"), ("tokens_per_s", "tokens/s"), ("mfu", ""), ("peak_allocated_gib", "GiB"),
                          ("real_over_simulated", "")):
            record_figure(f"gpu_check.fsdp_{key}", results["fsdp"][key], unit, header["device"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
