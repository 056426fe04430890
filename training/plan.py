"""Pre-flight for a GPU preset: its real update, simulated on this CPU, says whether it fits.

    longact train --config training/configs/qwen3-8b-grpo.yaml --plan [--gpu h200|h100|GIB] [--world 8]

What runs is the trainer's own `training.update.update` (packing, activation checkpointing,
chunked log-probs, the LongAct mask, the policy loss, clipping, AdamW; the reference model's
forward when `algo.kl_coef > 0`) on the preset's model, sharded by the trainer's own
`parallel.wrap` (FSDP2, bf16 `MixedPrecisionPolicy`), at the preset's world size and its largest
micro-batch: one row of `max_tokens_per_micro_batch` tokens whose last `sampling.max_new_tokens`
are the completion. Nothing is computed: the process group is torch's "fake" backend (every
collective returns at once), the mesh is a CPU mesh, and every device tensor is a `FakeTensor`
(shape, dtype and device, no storage). torch's `FSDPMemTracker` follows every tensor the update
makes and reports this rank's peak by category; `FlopCounterMode` counts the FLOPs of the same
update (the recompute of checkpointed layers included, so time at a given utilisation here is
hardware utilisation, HFU).

Three things the simulation alone would get wrong, handled here:
- AdamW creates its moments inside the first `step()`, after the first backward, where the peak
  is; a real run's later updates carry them. One short warm-up update creates them before the
  tracked one, and the tracker is given the optimizer, so they count as `OptState` (tracking a
  run's first update reads 0.0 GiB there; a test checks the figure against 8 bytes per parameter).
- Tensors made before the tracker starts and held by nobody it knows (the reference model's
  shards, the mask's snapshot of the masked rows) are added from their sizes.
- A value read back to the host from a device tensor (the loss, the grad norm) has no value; it
  reads as 1.0 (finite, so the optimizer steps as in a real run). Host tensors (the rows, their
  packing, the row bounds) stay real, so the update takes the same branches as on a GPU.

The colocated vLLM engine is arithmetic from the config: it owns `gpu_memory_utilization` of the
GPU, of which its bf16 weights and a fixed allowance for its own activations come first; the rest
is KV cache (2 x layers x KV heads x head_dim x 2 bytes per token).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass

import torch

from tasks.errors import UserError
from tasks.model_config import ENGINE_ACTIVATION_GIB, PEAK_BF16_TFLOPS, GiB, gpu_memory, kv_bytes_per_token, load_model_config
from training.config import TrainConfig

CONTEXT_GIB = 2.0  # per process, outside torch's allocator: CUDA context, NCCL buffers
ALLOCATOR_SLACK = 0.10  # the caching allocator reserves more than the peak it hands out (fragmentation)
WARMUP_TOKENS = 64


@dataclass
class EngineShare:
    """The colocated vLLM engine on one GPU."""
    budget_gib: float  # gpu_memory_utilization x the GPU
    weights_gib: float  # bf16, one full copy per GPU
    kv_bytes_per_token: int
    window: int  # tokens one rollout sequence can reach: max_prompt_tokens + max_new_tokens
    kv_gib: float  # what remains for the KV cache

    @property
    def kv_per_sequence_gib(self) -> float:
        return self.kv_bytes_per_token * self.window / GiB

    @property
    def sequences(self) -> float:
        return self.kv_gib / self.kv_per_sequence_gib


@dataclass
class TrainPlan:
    preset: str
    model: str
    parameters: int
    world: int
    tokens: int  # the simulated micro-batch: one row of this many tokens
    completion: int  # of which completion tokens
    memory: dict[str, float]  # GiB per category at this rank's peak
    update_flops: float  # one micro-batch's update on one rank
    forward_flops: float  # one micro-batch's forward without grad (old log-probs, mu > 1)
    micro_batches_per_step: int  # per rank, when every row is a full micro-batch
    simulated_s: float
    gpu: str
    gpu_gib: float
    mfu: float
    engine: EngineShare | None

    @property
    def trainer_gib(self) -> float:
        return sum(self.memory.values())

    @property
    def needed_gib(self) -> float:
        engine = self.engine.budget_gib if self.engine else 0.0
        return self.trainer_gib * (1 + ALLOCATOR_SLACK) + CONTEXT_GIB + engine

    @property
    def engine_holds_a_sequence(self) -> bool:
        return self.engine is None or self.engine.kv_gib >= self.engine.kv_per_sequence_gib

    @property
    def fits(self) -> bool:
        return self.needed_gib <= self.gpu_gib and self.engine_holds_a_sequence

    @property
    def step_flops(self) -> float:
        return self.micro_batches_per_step * (self.update_flops + self.forward_flops)

    @property
    def update_seconds(self) -> float:
        return self.step_flops / (self.mfu * PEAK_BF16_TFLOPS * 1e12)


def engine_share(cfg: TrainConfig, config: dict, parameters: int, gpu_gib: float) -> EngineShare | None:
    if cfg.backend != "vllm":
        return None
    budget = float(cfg.vllm.get("gpu_memory_utilization", 0.9)) * gpu_gib  # vLLM's default is 0.9
    weights = 2 * parameters / GiB
    return EngineShare(budget, weights, kv_bytes_per_token(config), cfg.max_prompt_tokens + cfg.sampling.max_new_tokens,
                       budget - weights - ENGINE_ACTIVATION_GIB)


def for_gpu(p: TrainPlan, cfg: TrainConfig, gpu: str) -> TrainPlan:
    """The same simulated update on another GPU (only the engine's share depends on it)."""
    label, gib = gpu_memory(gpu)
    return dataclasses.replace(p, gpu=label, gpu_gib=gib, engine=engine_share(cfg, load_model_config(cfg.model), p.parameters, gib))


def check_world(cfg: TrainConfig, world: int) -> None:
    if world < 1:
        raise UserError(f"--world: need at least 1 process, got {world}")
    if cfg.prompts_per_step % world:
        raise UserError(f"prompts_per_step={cfg.prompts_per_step} cannot be split over {world} processes "
                        f"(each rank rolls out an equal share); use a world size that divides it")


def plan(cfg: TrainConfig, preset: str = "", world: int = 8, gpu: str = "h200", mfu: float = 0.4,
         tokens: int | None = None, flops: bool = True) -> TrainPlan:
    """Simulate the preset's largest micro-batch update (`tokens` overrides its length, for tests;
    `flops=False` skips the two extra passes that count FLOPs, which then read 0)."""
    check_world(cfg, world)
    label, gpu_gib = gpu_memory(gpu)
    config = load_model_config(cfg.model)
    tokens = tokens or cfg.max_tokens_per_micro_batch or cfg.max_prompt_tokens + cfg.sampling.max_new_tokens
    completion = min(cfg.sampling.max_new_tokens, tokens // 2)
    t0 = time.perf_counter()
    memory, parameters, update_flops, forward_flops = simulate(cfg, config, world, tokens, completion, flops)
    rows_per_rank = cfg.prompts_per_step * cfg.group_size // world
    mu = cfg.ppo_epochs * cfg.mini_batches
    return TrainPlan(preset, cfg.model, parameters, world, tokens, completion, memory, update_flops * cfg.ppo_epochs,
                     forward_flops if mu > 1 else 0.0, rows_per_rank, time.perf_counter() - t0, label, gpu_gib, mfu,
                     engine_share(cfg, config, parameters, gpu_gib))


# ---- the simulation ---------------------------------------------------------------------------

def _host_values():
    """A dispatch mode (inside FakeTensorMode): ops whose tensors are all plain host tensors run
    for real, so packing and row bounds keep their values; a device value read on the host
    (`.item()`, `float(t)` of a FakeTensor) reads as 1; ops on DTensors go to DTensor first."""
    from torch._subclasses.fake_tensor import FakeTensor
    from torch.distributed.tensor import DTensor
    from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
    from torch.utils._pytree import tree_leaves

    class HostValues(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if any(issubclass(t, DTensor) for t in types):
                return NotImplemented
            tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            if tensors and all(type(t) is torch.Tensor for t in tensors):
                with _disable_current_modes():
                    return func(*args, **kwargs)
            if func is torch.ops.aten._local_scalar_dense.default and isinstance(args[0], FakeTensor):
                return True if args[0].dtype == torch.bool else 1 if not args[0].is_floating_point() else 1.0
            return func(*args, **kwargs)

    return HostValues()


def _process_group(world: int):
    """A fake process group of `world` ranks (this process is rank 0) and a CPU mesh over it."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        if dist.get_backend() != "fake":
            raise UserError("--plan runs in a plain process, not under torchrun")
        dist.destroy_process_group()
    dist.init_process_group("fake", rank=0, world_size=world, store=FakeStore())
    return init_device_mesh("cpu", (world,))


def _meta_model(config: dict, cfg: TrainConfig):
    from transformers import AutoConfig, AutoModelForCausalLM

    from training.logprobs import prepare

    hf_config = AutoConfig.for_model(**config)
    attn = {"attn_implementation": "sdpa"}  # flash-attention needs CUDA; the memory of the two is alike (no T x T)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32, **attn)
    prepare(model, cfg.gradient_checkpointing)
    return model


def _row(tokens: int, completion: int, vocab: int):
    from training.update import Row

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (tokens,), generator=g)
    return Row(ids, torch.ones(tokens, dtype=torch.long), torch.ones(completion), tokens - completion, torch.tensor(1.0))


def _bytes(tensors) -> int:
    from training.mask import _local

    return sum(_local(t).numel() * _local(t).element_size() for t in tensors)


def simulate(cfg: TrainConfig, config: dict, world: int, tokens: int, completion: int, count_flops: bool = True):
    """(GiB per category at rank 0's peak, parameters, update FLOPs, no-grad forward FLOPs)."""
    import torch.distributed as dist
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker
    from torch.utils.flop_counter import FlopCounterMode

    from training import parallel
    from training.mask import LongActMask, qk_modules, select
    from training.update import make_learner, optimizer, recompute_old_logps, update

    if cfg.parallel != "fsdp":
        raise UserError(f"--plan simulates FSDP2 presets (parallel: fsdp); this config has parallel: {cfg.parallel}")
    mesh = _process_group(world)
    try:
        d = parallel.Dist("fsdp", 0, world, torch.device("cpu"))
        model = _meta_model(config, cfg)
        parameters = sum(p.numel() for p in model.parameters())
        head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        # the mask's rows need saliency; random scores spread the frozen rows over the shards as a real
        # mask does (equal scores would keep the first rows: rank 0 would hold no frozen row)
        g = torch.Generator().manual_seed(0)
        scores = {n: torch.rand(m.out_features, generator=g) for n, m in qk_modules(model).items()}
        mask = LongActMask(select(scores, cfg.mask, head_dim), scores, cfg.mask)
        ref = _meta_model(config, cfg).eval().requires_grad_(False) if cfg.algo.kl_coef > 0 else None
        # host tensors, made outside fake mode: the rollout's rows as the update receives them
        warmup, row = (_row(n, c, config["vocab_size"]) for n, c in ((WARMUP_TOKENS, WARMUP_TOKENS // 2), (tokens, completion)))
        with FakeTensorMode(allow_non_fake_inputs=True), _host_values(), warnings.catch_warnings():
            # FSDP2 warns that the root returns a view; nothing writes into it in place (token_logps scatters out of place)
            warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
            for m in (model, ref):
                if m is not None:
                    parallel.wrap(m, d, cfg.bf16, mesh=mesh)
                    m.to_empty(device="cpu")
            opt = optimizer(cfg, model)
            mask.attach(model, opt)
            learner = make_learner(cfg, d, model, model, opt, mask, ref)
            # a short update first: AdamW's moments exist from here on, as in every update after a run's
            # first, and FSDP2's lazy initialisation (first forward) is behind us
            update(learner, [warmup])
            tracker = FSDPMemTracker(model, opt)
            with tracker:
                update(learner, [row])
            flops, forward = FlopCounterMode(display=False), FlopCounterMode(display=False)
            if count_flops:
                with flops:  # apart: the counter keeps tensors alive, which the tracker would count
                    update(learner, [row])
                with forward:
                    recompute_old_logps(model, [row], cfg, d)
        peak = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]
        memory = {getattr(k, "value", str(k)): v / GiB for k, v in peak.items() if k != "Total" and v}
        if ref is not None:
            # its shards, and its root (embedding, output layer) left gathered in bf16 after its forward
            memory["Reference model"] = _bytes(ref.parameters()) / GiB
        memory["Mask snapshot"] = _bytes(values for _, _, values in mask._frozen) / GiB
        return memory, parameters, float(flops.get_total_flops()), float(forward.get_total_flops())
    finally:
        dist.destroy_process_group()


# ---- the report -------------------------------------------------------------------------------

def render(p: TrainPlan) -> str:
    lines = [f"{p.preset or p.model}: {p.model}, {p.parameters / 1e9:.2f}B parameters, FSDP2 over {p.world} ranks, "
             f"largest micro-batch {p.tokens:,} tokens ({p.tokens - p.completion:,} prompt + {p.completion:,} completion)",
             "", "per-rank peak during the update (simulated):"]
    lines += [f"  {k:<28} {v:8.2f} GiB" for k, v in sorted(p.memory.items(), key=lambda kv: -kv[1])]
    lines += [f"  {'trainer total':<28} {p.trainer_gib:8.2f} GiB"]
    if p.engine:
        e = p.engine
        lines += ["", f"colocated vLLM engine: {e.budget_gib:.1f} GiB (gpu_memory_utilization x {p.gpu_gib:.1f} GiB): "
                      f"bf16 weights {e.weights_gib:.1f}, activations ~{ENGINE_ACTIVATION_GIB:.0f}, KV cache {e.kv_gib:.1f} GiB",
                  f"  KV cache {e.kv_bytes_per_token / 1024:.0f} KiB per token, {e.kv_per_sequence_gib:.2f} GiB per "
                  f"{e.window:,}-token sequence: {e.sequences:.1f} full-length sequences at once"]
    lines += ["", f"GPU {p.gpu} ({p.gpu_gib:.1f} GiB): trainer x {1 + ALLOCATOR_SLACK:.2f} (allocator slack) "
                  f"+ {CONTEXT_GIB:.0f} GiB CUDA context/NCCL" + (" + engine" if p.engine else "")
              + f" = {p.needed_gib:.1f} GiB: " + ("fits" if p.fits else "DOES NOT FIT")
              + f", {p.gpu_gib - p.needed_gib:+.1f} GiB headroom",
              "", f"compute per rank: {p.update_flops / 1e12:,.0f} TFLOPs per micro-batch update"
              + (f" + {p.forward_flops / 1e12:,.0f} for its old log-probs (mu > 1)" if p.forward_flops else "")
              + f"; {p.micro_batches_per_step} micro-batches per step when every row is full length: "
              f"{p.step_flops / 1e15:,.1f} PFLOPs, {p.update_seconds:,.0f} s of updates per step at "
              f"{p.mfu:.0%} of {PEAK_BF16_TFLOPS:.0f} TFLOPs (rollouts not included)",
              f"simulated in {p.simulated_s:.1f} s"]
    return "\n".join(lines)


def refuse_unless_fits(p: TrainPlan) -> None:
    """One line, naming the knob, when the preset does not fit its GPU."""
    if p.fits:
        return
    if not p.engine_holds_a_sequence:
        e = p.engine
        util = (e.weights_gib + ENGINE_ACTIVATION_GIB + e.kv_per_sequence_gib) / p.gpu_gib
        raise UserError(f"{p.preset or p.model}: the vLLM engine's {e.budget_gib:.1f} GiB of one GPU of {p.gpu_gib:.1f} GiB ({p.gpu}) "
                        f"leave {e.kv_gib:.1f} GiB of KV cache, less than one {e.window:,}-token sequence "
                        f"({e.kv_per_sequence_gib:.2f} GiB); vllm.gpu_memory_utilization >= {util:.2f} or a shorter "
                        "max_prompt_tokens / sampling.max_new_tokens would fit one")
    over = p.needed_gib - p.gpu_gib
    scaling = sum(v for k, v in p.memory.items() if k in ("Activation", "Temp"))  # grows with the micro-batch's tokens
    knobs = []
    if scaling * (1 + ALLOCATOR_SLACK) > over:
        tokens = int(p.tokens * (1 - over / ((1 + ALLOCATOR_SLACK) * scaling)))
        knobs.append(f"max_tokens_per_micro_batch={tokens // 1024 * 1024} (now {p.tokens})")
    if p.engine:
        util = (p.engine.budget_gib - over) / p.gpu_gib
        floor = (p.engine.weights_gib + ENGINE_ACTIVATION_GIB + p.engine.kv_per_sequence_gib) / p.gpu_gib
        if util >= floor:
            knobs.append(f"vllm.gpu_memory_utilization={util:.2f} (now {p.engine.budget_gib / p.gpu_gib:.2f})")
    raise UserError(f"{p.preset or p.model} does not fit one GPU of {p.gpu_gib:.1f} GiB ({p.gpu}): needs {p.needed_gib:.1f} GiB, "
                    f"{over:.1f} GiB over; " + (" or ".join(knobs) if knobs else "use a GPU with more memory") + " would fit")


def as_dict(p: TrainPlan) -> dict:
    return {**dataclasses.asdict(p), "trainer_gib": p.trainer_gib, "needed_gib": p.needed_gib, "fits": p.fits,
            "update_seconds": p.update_seconds}

