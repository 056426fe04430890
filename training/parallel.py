"""Data parallelism for the trainer: one process per device, launched by torchrun.

    torchrun --nproc_per_node 8 --no-python longact train --config training/configs/qwen3-8b-dapo.yaml
    torchrun --nproc_per_node 2 --no-python longact train --config training/configs/tiny-cpu.yaml \\
        model=models/tiny-qwen3 parallel=ddp                      # CPU, gloo

Config `parallel`:
- `none`: one process (the default; an error under torchrun with more than one process);
- `ddp`: replicated weights, gradients averaged by DistributedDataParallel;
- `fsdp`: FSDP2 (`fully_shard` on every decoder layer and the root): weights, gradients and
  optimizer state sharded along dim 0, i.e. by rows, which is how the LongAct mask addresses them.
Process group backend: nccl on CUDA, gloo on CPU. Each rank rolls out its share of the step's
prompts; the loss normalisers (token and sequence totals) are summed over ranks first, so the
update equals the one-process update on the whole batch up to all-reduce rounding.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tasks.errors import ConfigError

MODES = ("none", "ddp", "fsdp")


@dataclass
class Dist:
    mode: str = "none"
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        """Sum a few numbers over ranks (identity in one process)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return t.tolist()

    def all_max(self, value: int) -> int:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.long, device=self._comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    @property
    def _comm_device(self):
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def init(mode: str, device: str = "auto") -> Dist:
    """Read torchrun's environment, start the process group, pick this rank's device."""
    if mode not in MODES:
        raise ConfigError(f"parallel: got {mode!r}, expected one of {', '.join(MODES)}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and mode == "none":
        raise ConfigError(f"running under torchrun with WORLD_SIZE={world} but parallel=none; "
                         "set parallel=ddp or parallel=fsdp")
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA device; use device=cpu or auto")
    dev = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(mode if world > 1 else "none", rank, world, dev)


def decoder_layers(model: torch.nn.Module):
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise ConfigError(f"parallel=fsdp: {type(model).__name__} has no .model.layers to shard; "
                         "use parallel=ddp")
    return layers


def wrap(model: torch.nn.Module, d: Dist, bf16: bool = False, mesh=None) -> torch.nn.Module:
    """The module the loss is computed through: the model itself (none, fsdp: sharded in place) or a
    DDP wrapper. Calibrate the mask before this and attach it after (FSDP2 swaps the parameters).
    `mesh`: FSDP2's device mesh (None: one over the default process group; the pre-flight
    simulation passes a CPU mesh it made outside fake mode)."""
    if d.mode == "ddp":
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    if d.mode == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
        for layer in decoder_layers(model):
            fully_shard(layer, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def grad_sync(net: torch.nn.Module, d: Dist, enabled: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an optimizer step."""
    if d.mode == "ddp" and not enabled:
        return net.no_sync()
    if d.mode == "fsdp":
        net.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on every rank (a collective for FSDP2 shards; identity otherwise)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def weight_buckets(model: torch.nn.Module, dtype: torch.dtype, bucket_bytes: int):
    """The model's weights (state-dict names and order) as full tensors in `dtype`, in lists of at
    most `bucket_bytes` (a tensor larger than that travels alone), for streaming to a rollout engine.

    A collective under FSDP2: every rank must iterate the whole generator, in step. Each shard is
    cast before it is gathered (the gathered tensor is already in `dtype`; the cast is elementwise,
    so the values equal those of cast-after-gather), and a bucket is yielded before the tensor that
    would overflow it is gathered: beyond what the caller keeps, a rank holds at most one bucket.
    Without sharding, tensors already in `dtype` are the live parameters themselves (no copy)."""
    bucket, size = [], 0
    for name, t in model.state_dict().items():
        nbytes = t.numel() * dtype.itemsize  # a DTensor's numel is the full tensor's
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, full_tensor(t.detach().to(dtype))))
        size += nbytes
    if bucket:
        yield bucket


def model_state(model: torch.nn.Module, d: Dist) -> dict:
    """Full CPU state dict for saving (collective under fsdp; rank 0 gets the tensors)."""
    if d.mode != "fsdp":
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def optimizer_state(model, opt, d: Dist) -> dict:
    if d.mode != "fsdp":
        return opt.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model, opt, state: dict, d: Dist) -> None:
    if d.mode != "fsdp":
        opt.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, opt, optim_state_dict=state, options=StateDictOptions(full_state_dict=True))


def is_main_process() -> bool:
    """Rank 0 under torchrun, or a plain process: the one that prints, logs and writes manifests."""
    return int(os.environ.get("RANK", "0")) == 0


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
