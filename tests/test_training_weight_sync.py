"""Streamed weight sync: `parallel.weight_buckets` yields the model's weights in the engine's dtype,
in buckets of bounded size, the same tensors in one process as under FSDP2 (2 gloo processes).
The engine side (vLLM applying every bucket) is tested in test_training_vllm_rollout.py."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.parallel import weight_buckets


def _model(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_buckets_hold_every_weight_in_order_within_the_limit(tiny_model_dir, dtype):
    model = _model(tiny_model_dir)
    state = model.state_dict()
    limit = 100 * 2**10  # under the embedding (512 x 128 x 4 bytes), over the layer norms
    buckets = list(weight_buckets(model, dtype, limit))
    flat = [item for b in buckets for item in b]
    assert [n for n, _ in flat] == list(state)
    for name, t in flat:
        assert t.dtype == dtype and torch.equal(t, state[name].to(dtype))
    for b in buckets:  # within the limit, or one tensor that alone exceeds it
        size = sum(t.nbytes for _, t in b)
        assert size <= limit or len(b) == 1
    for a, b in zip(buckets, buckets[1:]):  # greedy: a bucket closes only when the next tensor would not fit
        assert sum(t.nbytes for _, t in a) + b[0][1].nbytes > limit
    assert any(len(b) > 1 for b in buckets) and any(sum(t.nbytes for _, t in b) > limit for b in buckets)
    assert len(list(weight_buckets(model, dtype, 2**40))) == 1


def _worker(rank, model_dir, out, port):
    from torch.distributed.fsdp import fully_shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    model = _model(model_dir)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    assert any(hasattr(p, "full_tensor") for p in model.parameters())  # really sharded
    buckets = [[(n, t.clone()) for n, t in b] for b in weight_buckets(model, torch.bfloat16, 100 * 2**10)]
    torch.save(buckets, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp2_buckets_equal_the_unsharded_ones(tiny_model_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(str(tiny_model_dir), str(tmp_path), port), nprocs=2, join=True)
    single = list(weight_buckets(_model(tiny_model_dir), torch.bfloat16, 100 * 2**10))
    for rank in range(2):
        sharded = torch.load(tmp_path / f"rank{rank}.pt")
        assert [[n for n, _ in b] for b in sharded] == [[n for n, _ in b] for b in single]
        for b, c in zip(sharded, single):
            for (_, t), (_, u) in zip(b, c):
                assert t.dtype == torch.bfloat16 and torch.equal(t, u)  # cast then gathered = cast of the whole


def test_bucket_size_is_a_config_field():
    from training.config import load_config

    assert load_config(None, ["model=m"]).weight_sync_bucket_mb == 512
    assert load_config(None, ["model=m", "weight_sync_bucket_mb=0.5"]).weight_sync_bucket_mb == 0.5
    with pytest.raises(ValueError, match="override 'weight_sync_bucket_mb=0': weight_sync_bucket_mb must be > 0"):
        load_config(None, ["model=m", "weight_sync_bucket_mb=0"])
