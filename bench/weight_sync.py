"""Extra peak memory of one weight sync to the rollout engine under FSDP2: the full gather of
9d79273 next to the streamed sync (`VLLMRollout.sync`, buckets of `--bucket-mb`).

    python bench/weight_sync.py [--bucket-mb 32] [--layers 8] [--hidden 1024] [--dtype bfloat16]

Two gloo processes on CPU, as `torchrun --nproc_per_node 2 ... parallel=fsdp` runs: each holds a
randomly initialised Qwen3 (`--layers` x `--hidden`, intermediate 4 x hidden, the tiny model's
512-token vocabulary; ~0.5 GB of float32 weights at the defaults, nothing downloaded) sharded with
FSDP2 `fully_shard` and its own in-process vLLM engine (CPU build, `--dtype`, eager). The policy
is moved by adding noise to each rank's shards (as an optimizer step would), then synced:
- `old`: the sync before streaming, reproduced below: every weight gathered as a full float32
  tensor into one list, then one `reload_weights` call;
- `new`: `VLLMRollout.sync`: each shard cast to the engine's dtype, gathered, handed to the engine
  in buckets of at most `--bucket-mb` (vLLM's layerwise reload across the buckets).
Extra peak = the process's RSS high-water mark (VmHWM, reset through /proc/self/clear_refs just
before the sync) - RSS before it, per rank; engine memory allocated at start-up does not count.
Allocations over 64 KiB are mmapped (MALLOC_MMAP_THRESHOLD_), so freed tensors do not leave
resident heap that a later allocation would reuse unseen.
Order: old (policy W1), new (back to W0), new (W1); the engine's sampled tokens and log-probs
after the old and the new sync of W1 are compared exactly (same seeds). Goal: new <= one bucket
+ small overhead on every rank. The overhead is vLLM's layerwise reload: the layer being
processed is materialised whole before it is copied into the engine's storage, and the parts of a
fused layer (gate_proj and up_proj -> gate_up_proj) that arrive in one bucket are held until the
rest arrive in the next: at most two of the engine's largest fused layers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import tiny_model  # noqa: E402
from bench.figures import record_figure  # noqa: E402

MiB = 2**20
PROMPTS = ["What is the passkey in the document?", "Read the following text and answer the question."]


def build_probe(out: Path, layers: int, hidden: int) -> int:
    """A random Qwen3 checkpoint with the tiny model's tokenizer; returns its float32 bytes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config

    tok_dir = tiny_model(str(ROOT / "models" / "tiny-qwen3"))
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                      num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128, head_dim=64,
                      tie_word_embeddings=False, max_position_embeddings=4096, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return sum(p.numel() for p in model.parameters()) * 4


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def old_sync(ro, model) -> None:
    """VLLMRollout.sync at 9d79273: the whole state dict gathered in float32, one reload call."""
    from training.parallel import full_tensor

    weights = [(name, full_tensor(t.detach())) for name, t in model.state_dict().items()]
    ro.llm.collective_rpc(lambda worker: worker.reload_weights(weights_iterator=weights, is_checkpoint_format=True))
    if not ro.llm.reset_prefix_cache():
        raise RuntimeError("vLLM refused to reset its prefix cache")


def _set_local(model, tensors) -> None:
    import torch

    with torch.no_grad():
        for p, t in zip(model.parameters(), tensors):
            (p.to_local() if hasattr(p, "to_local") else p).copy_(t)


def worker(rank: int, port: int, ckpt: str, args, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    import time

    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.rollout import SamplingConfig, VLLMRollout

    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    ro = VLLMRollout(ckpt, AutoTokenizer.from_pretrained(ckpt), SamplingConfig(max_new_tokens=8), 64,
                     weight_sync_bucket_mb=args.bucket_mb, dtype=args.dtype, enforce_eager=True, block_size=32)
    local = [p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()]
    w0 = [t.detach().clone() for t in local]
    g = torch.Generator().manual_seed(1 + rank)
    w1 = [t + 0.05 * torch.randn(t.shape, generator=g) for t in w0]  # an "optimizer step" on this rank's shards

    def measured(name, sync):
        dist.barrier()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
        before = _rss("VmRSS")
        t0 = time.perf_counter()
        sync(ro, model)
        seconds = time.perf_counter() - t0
        r = {"sync": name, "extra_peak": _rss("VmHWM") - before, "seconds": seconds}
        gen = ro.generate(PROMPTS, 2, seeds=[5, 6])
        r["tokens"], r["logprobs"] = gen.input_ids.tolist(), gen.logprobs.tolist()
        return r

    start = ro.generate(PROMPTS, 2, seeds=[5, 6])
    _set_local(model, w1)
    runs = [measured("old", old_sync)]
    _set_local(model, w0)
    runs.append(measured("new", VLLMRollout.sync))
    _set_local(model, w1)
    runs.append(measured("new", VLLMRollout.sync))
    runs[1]["back_to_start"] = runs[1]["tokens"] == start.input_ids.tolist()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"rank": rank, "runs": runs}))
    dist.barrier()
    os._exit(0)  # skip vLLM's exit-time cleanup, which tears down process groups it shares with us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bucket-mb", type=float, default=32)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"), help="the engine's dtype")
    args = ap.parse_args()
    import torch.multiprocessing as mp

    # Every allocation over 64 KiB its own mmap, returned at free: RSS then counts each live tensor,
    # where glibc's heap would reuse pages freed earlier and hide part of a peak.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(64 * 2**10))
    with tempfile.TemporaryDirectory(prefix="weight-sync-") as tmp:
        ckpt = Path(tmp) / "probe"
        fp32 = build_probe(ckpt, args.layers, args.hidden)
        print(f"probe Qwen3: {args.layers} layers, hidden {args.hidden}, {fp32 / MiB:.0f} MiB of float32 weights; "
              f"engine dtype {args.dtype}; bucket {args.bucket_mb:g} MiB; 2 gloo processes, FSDP2", flush=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(worker, args=(port, str(ckpt), args, tmp), nprocs=2, join=True)
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(2)]
    print(f"\n{'rank':>4} | {'old extra peak MiB':>18} {'old s':>6} | {'new extra peak MiB':>18} {'new s':>6} | "
          f"{'old/new':>7} | {'new - bucket MiB':>16}")
    worst = 0.0
    for r in ranks:
        old, new = r["runs"][0], max(r["runs"][1:], key=lambda x: x["extra_peak"])
        worst = max(worst, new["extra_peak"] / MiB - args.bucket_mb)
        print(f"{r['rank']:>4} | {old['extra_peak'] / MiB:18.1f} {old['seconds']:6.2f} | {new['extra_peak'] / MiB:18.1f} "
              f"{new['seconds']:6.2f} | {old['extra_peak'] / new['extra_peak']:7.1f} | "
              f"{new['extra_peak'] / MiB - args.bucket_mb:16.1f}")
    same = all(r["runs"][0]["tokens"] == r["runs"][2]["tokens"] and r["runs"][0]["logprobs"] == r["runs"][2]["logprobs"]
               for r in ranks)
    back = all(r["runs"][1]["back_to_start"] for r in ranks)
    print(f"engine tokens and log-probs after old and new sync of the same weights identical: {same}; "
          f"after the new sync back to the start weights, the start's tokens: {back}")
    fused = 2 * 4 * args.hidden * args.hidden * (2 if args.dtype == "bfloat16" else 4) / MiB
    print(f"largest new extra peak over one bucket: {worst:.1f} MiB; the engine's largest fused layer "
          f"(gate_up_proj) is {fused:.1f} MiB; new <= bucket + 2 x that: {worst <= 2 * fused}")
    old_peak = max(r["runs"][0]["extra_peak"] for r in ranks) / MiB
    new_peak = max(max(x["extra_peak"] for x in r["runs"][1:]) for r in ranks) / MiB
    note = f"{fp32 / MiB:.0f} MiB float32 probe, {args.bucket_mb:g} MiB buckets, 2 gloo ranks, worst rank"
    record_figure("weight_sync.old_extra_peak_mib", round(old_peak, 1), "MiB", note)
    record_figure("weight_sync.new_extra_peak_mib", round(new_peak, 1), "MiB", note)
    record_figure("weight_sync.identical", same, "", "engine tokens and log-probs after the full and the streamed sync")


if __name__ == "__main__":
    main()
