"""The mask under DDP and FSDP2 (2 gloo processes on CPU) behaves as in one process: same keep
vectors, masked rows bit-identical on every rank, kept rows equal to the single-process run up to
all-reduce rounding."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.mask import LongActMask, MaskConfig, qk_modules


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    calib = [{"input_ids": torch.randint(10, 500, (1, 40), generator=g), "attention_mask": torch.ones(1, 40, dtype=torch.long)}]
    steps = [torch.randint(10, 500, (2, 24), generator=g) for _ in range(3)]  # global batch 2 per step
    return calib, steps


def _run(model_dir, rank=0, world=1, parallel="ddp"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    calib, steps = _data()
    mask = LongActMask.calibrate(model, calib, MaskConfig(keep_ratio=0.3))  # full model, every rank
    net = model
    if world > 1 and parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        net = fully_shard(model)  # in place: q/k weights become row-sharded DTensors
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    mask.attach(model, opt)  # after sharding (FSDP2 replaces the parameters), before the DDP wrapper
    if world > 1 and parallel == "ddp":
        net = torch.nn.parallel.DistributedDataParallel(model)
    for ids in steps:
        mine = ids[rank::world]  # each rank its share; DDP and FSDP2 average gradients
        net(input_ids=mine, labels=mine).loss.backward()
        mask.zero_grads()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        opt.step()
        mask.after_step()
        opt.zero_grad()
    full = lambda w: w.full_tensor() if hasattr(w, "full_tensor") else w  # noqa: E731
    return mask, {n: full(m.weight.detach()).clone() for n, m in qk_modules(model).items()}


def _worker(rank, model_dir, out, parallel):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["_DDP_PORT"])
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    mask, weights = _run(model_dir, rank, 2, parallel)
    torch.save({"keep": mask.keep, "weights": weights, "changed": mask.masked_rows_changed()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_mask_under_data_parallel_matches_single_process(tiny_model_dir, tmp_path, parallel):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["_DDP_PORT"] = str(s.getsockname()[1])
    mp.spawn(_worker, args=(str(tiny_model_dir), str(tmp_path), parallel), nprocs=2, join=True)
    single_mask, single_w = _run(str(tiny_model_dir))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for r in ranks:
        assert r["changed"] == 0
        for n, keep in single_mask.keep.items():
            assert torch.equal(r["keep"][n], keep)
            assert torch.equal(r["weights"][n][~keep], single_w[n][~keep])  # bit-identical frozen rows
            torch.testing.assert_close(r["weights"][n][keep], single_w[n][keep], rtol=1e-4, atol=1e-5)
    for n in single_w:
        assert torch.equal(ranks[0]["weights"][n], ranks[1]["weights"][n])
