"""The LongAct mask: update only the Q/K rows tied to the most salient query/key channels.

Usable in any torch loop:

    mask = LongActMask.calibrate(model, batches, MaskConfig(strategy="longact", keep_ratio=0.3))
    mask.attach(model, optimizer)           # grad hooks + moment reset
    ...loss.backward(); mask.zero_grads(); clip_grad_norm_(...); optimizer.step()
    mask.after_step()                        # puts masked rows back (undoes weight decay)

Plain, DDP-wrapped and FSDP2-sharded models (`fully_shard`, weights sharded along dim 0 = rows)
are handled alike: under FSDP2 each rank enforces the rows of its own shard. FSDP2 writes the
reduce-scattered gradients straight into the sharded parameters, so tensor hooks never see them;
`zero_grads()` (call it between backward and clipping) covers that case and is a no-op elsewhere.

Mask convention (stated once): `keep[name]` is a bool vector over the OUTPUT rows of a
`q_proj`/`k_proj` weight; True = the row is updated, False = the row stays bit-identical.
Row count: of the n rows a projection (scope `layer`) or a head (scope `head`) has,
floor(f * n) are updated, f = the updated fraction (`keep_ratio`, or 1 - keep_ratio with
ratio_means "masked"), but at least 1: the updated share never exceeds f unless f * n < 1
(0.3 of 256 rows: 76 updated, 29.7%).

Why each piece (training/README.md, "Decisions the paper leaves open", says which choices are ours):
- gradients are zeroed by tensor hooks during backward, so masked entries are 0 before any
  clipping and do not count in the global grad norm (a trainer callback after clipping would);
- AdamW decays every weight it holds even with grad 0; restoring masked rows after each step keeps
  decay on the kept rows (same experiment as the baseline there) and none on the masked rows;
- optimizer moments of q/k are cleared when a mask is (re)computed, so moments accumulated under
  an older mask cannot move rows the new mask freezes.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch

from tasks.errors import ConfigError

STRATEGIES = ("none", "longact", "random", "bottom", "q_only", "k_only")
SITES = ("pre_rope", "proj_out")
STATISTICS = ("mean_abs", "l2", "max")
SCOPES = ("layer", "head")
RATIO_MEANS = ("kept", "masked")


@dataclass
class MaskConfig:
    strategy: str = "longact"
    keep_ratio: float = 0.3
    # The paper's "30%" is ambiguous: "kept" = 30% of Q/K rows are updated (default);
    # "masked" = 30% of rows are frozen, 70% updated.
    ratio_means: str = "kept"
    scope: str = "layer"  # rank channels across the whole layer, or within each head
    site: str = "pre_rope"  # after q_norm/k_norm, before RoPE; or the raw q_proj/k_proj output
    statistic: str = "mean_abs"
    refresh_every: int = 0  # 0 = static mask computed once before RL
    # the random control's draw; None: the trainer uses the run seed (0 when used outside it)
    seed: int | None = None

    def __post_init__(self) -> None:
        for field, value, allowed in (
            ("strategy", self.strategy, STRATEGIES),
            ("site", self.site, SITES),
            ("statistic", self.statistic, STATISTICS),
            ("scope", self.scope, SCOPES),
            ("ratio_means", self.ratio_means, RATIO_MEANS),
        ):
            if value not in allowed:
                raise ValueError(f"mask.{field}: got {value!r}, expected one of {', '.join(allowed)}")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"mask.keep_ratio: got {self.keep_ratio}, expected a fraction in (0, 1]")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"mask.seed: got {self.seed!r}, expected an integer or null (= the run seed)")

    @property
    def update_fraction(self) -> float:
        return self.keep_ratio if self.ratio_means == "kept" else 1.0 - self.keep_ratio


def qk_modules(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """All q_proj/k_proj linears by module name (any HF decoder that names them so)."""
    found = {n: m for n, m in model.named_modules() if n.endswith(("q_proj", "k_proj"))}
    if not found:
        raise ConfigError("model has no modules named *q_proj / *k_proj; LongAct needs them")
    return found


@torch.no_grad()
def saliency(model: torch.nn.Module, batches: Iterable[dict], cfg: MaskConfig) -> dict[str, torch.Tensor]:
    """Per-channel activation statistic of every q_proj/k_proj output over non-pad tokens.

    `batches` yields dicts with input_ids and attention_mask. Site `pre_rope` hooks q_norm/k_norm
    (Qwen3) where the model has them, i.e. the vectors that enter RoPE; RoPE keeps each rotated
    pair's norm, so the statistic is well defined before it.
    """
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), dtype=torch.float64)
    current_mask: list[torch.Tensor] = []
    handles = []
    modules = dict(model.named_modules())

    def hook_for(name: str):
        def hook(_mod, _inp, out):
            x = out.reshape(*out.shape[:2], -1).double()  # [B, T, channels]
            keep = current_mask[0].to(x.device).bool()  # [B, T]
            v = x[keep]  # [tokens, channels]
            stat = v.abs().amax(0) if cfg.statistic == "max" else (v.pow(2) if cfg.statistic == "l2" else v.abs()).sum(0)
            if cfg.statistic == "max":
                sums[name] = torch.maximum(sums[name], stat) if name in sums else stat
            else:
                sums[name] = sums[name] + stat if name in sums else stat
        return hook

    for name in qk_modules(model):
        site = name
        if cfg.site == "pre_rope":
            norm_name = name[: -len("q_proj")] + ("q_norm" if name.endswith("q_proj") else "k_norm")
            site = norm_name if norm_name in modules else name
        handles.append(modules[site].register_forward_hook(hook_for(name)))
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            current_mask[:] = [batch["attention_mask"]]
            count += batch["attention_mask"].sum()
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if count == 0:
        raise ValueError("mask calibration saw no non-pad tokens")
    if cfg.statistic == "mean_abs":
        return {n: (s / count).float() for n, s in sums.items()}
    if cfg.statistic == "l2":
        return {n: (s / count).sqrt().float() for n, s in sums.items()}
    return {n: s.float() for n, s in sums.items()}


def kept_rows(fraction: float, width: int) -> int:
    """Rows updated out of `width`: floor(fraction * width), at least 1. The 1e-9 absorbs binary
    rounding (0.29 * 100 = 28.999999999999996 is 29 rows, not 28)."""
    return max(1, math.floor(fraction * width + 1e-9))


def select(
    scores: dict[str, torch.Tensor], cfg: MaskConfig, head_dim: int
) -> dict[str, torch.Tensor]:
    """Bool keep-vector per q/k module from saliency scores under the strategy and scope:
    floor(update_fraction * width) rows per group (at least 1), the highest-scoring ones."""
    gen = torch.Generator().manual_seed(cfg.seed if cfg.seed is not None else 0)
    keep: dict[str, torch.Tensor] = {}
    for name in sorted(scores):
        s = scores[name]
        is_q = name.endswith("q_proj")
        if cfg.strategy == "none" or (cfg.strategy == "q_only" and not is_q) or (cfg.strategy == "k_only" and is_q):
            # q_only / k_only: the other projection trains fully, isolating which one matters.
            keep[name] = torch.ones_like(s, dtype=torch.bool)
            continue
        if cfg.strategy == "random":
            s = torch.rand(s.shape, generator=gen)
        elif cfg.strategy == "bottom":
            s = -s
        groups = s.view(-1, head_dim) if cfg.scope == "head" else s.view(1, -1)  # [groups, width]
        k = kept_rows(cfg.update_fraction, groups.shape[1])
        # stable sort so ties resolve by channel index, identically on every rank
        idx = torch.sort(groups, dim=1, descending=True, stable=True).indices[:, :k]
        m = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, idx, True)
        keep[name] = m.reshape(-1)
    return keep


def _is_sharded(p: torch.Tensor) -> bool:
    return hasattr(p, "to_local") and hasattr(p, "placements")  # a DTensor (FSDP2)


def _local(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank holds: the local shard of a DTensor (a view: in-place edits stick)."""
    return t.to_local() if _is_sharded(t) else t


def _shard_rows(keep: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The slice of a row mask that covers this rank's shard of `p`.

    FSDP2 shards dim 0 like torch.chunk: rank r holds rows [r*c, min((r+1)*c, n)), c = ceil(n/world)."""
    if not _is_sharded(p):
        return keep
    from torch.distributed.tensor import Shard

    (placement,) = p.placements
    if placement != Shard(0):
        raise ValueError(f"LongAct mask: expected a weight sharded along rows (Shard(0)), got {placement}")
    world, rank = p.device_mesh.size(), p.device_mesh.get_local_rank()
    chunk = -(-keep.numel() // world)
    start = min(rank * chunk, keep.numel())
    local = keep[start:start + chunk]
    if local.numel() != p.to_local().shape[0]:
        raise ValueError(f"LongAct mask: shard of {local.numel()} rows expected, this rank holds {p.to_local().shape[0]}")
    return local


class LongActMask:
    """A computed mask plus the machinery to enforce it on a model and optimizer."""

    def __init__(self, keep: dict[str, torch.Tensor], scores: dict[str, torch.Tensor], cfg: MaskConfig):
        self.keep, self.scores, self.cfg = keep, scores, cfg
        self._hooks: list = []
        self._frozen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (param, rows, values)

    @classmethod
    def calibrate(cls, model: torch.nn.Module, batches: Iterable[dict], cfg: MaskConfig) -> "LongActMask":
        head_dim = getattr(model.config, "head_dim", None) or model.config.hidden_size // model.config.num_attention_heads
        scores = saliency(model, batches, cfg) if cfg.strategy != "none" else {
            n: torch.zeros(m.out_features) for n, m in qk_modules(model).items()
        }
        return cls(select(scores, cfg, head_dim), scores, cfg)

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.keep):
            h.update(name.encode())
            h.update(self.keep[name].to(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    def rows_updated(self) -> int:
        return int(sum(int(k.sum()) for k in self.keep.values()))

    def attach(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Register grad hooks, snapshot masked rows and clear q/k optimizer moments."""
        self.detach()
        for name, mod in qk_modules(model).items():
            if bool(self.keep[name].all()):
                continue
            for p in (mod.weight, mod.bias):
                if p is None:
                    continue
                local = _local(p)
                rows_keep = _shard_rows(self.keep[name], p).to(local.device)
                if not _is_sharded(p):  # FSDP2 params get their grads outside autograd: zero_grads()
                    shape = (-1,) + (1,) * (p.dim() - 1)  # broadcast the row mask over columns
                    factor = rows_keep.view(shape).to(p.dtype)
                    self._hooks.append(p.register_hook(lambda g, f=factor: g * f))
                frozen_rows = (~rows_keep).nonzero().squeeze(1)
                self._frozen.append((p, frozen_rows, local.detach()[frozen_rows].clone()))
                if optimizer is not None:
                    optimizer.state.pop(p, None)  # fresh moments under the new mask

    @torch.no_grad()
    def zero_grads(self) -> None:
        """Zero masked rows' gradients; call between backward and clipping (needed under FSDP2)."""
        for p, rows, _ in self._frozen:
            if p.grad is not None:
                _local(p.grad).index_fill_(0, rows, 0.0)

    @torch.no_grad()
    def after_step(self) -> None:
        """Restore masked rows exactly (undoes decoupled weight decay on them)."""
        for p, rows, values in self._frozen:
            _local(p).index_copy_(0, rows, values)

    @torch.no_grad()
    def masked_rows_changed(self) -> int:
        """Rows that differ from their snapshot (this rank's shard under FSDP2); must stay 0."""
        return int(sum(int((_local(p)[rows] != values).flatten(1).any(1).sum()) for p, rows, values in self._frozen))

    def detach(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks, self._frozen = [], []

    def save(self, out_dir: str | Path) -> None:
        """mask.safetensors (keep vectors + saliency) and mask.json (config, hash, counts)."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {f"keep.{n}": k.to(torch.uint8).contiguous() for n, k in self.keep.items()}
        tensors.update({f"saliency.{n}": s.contiguous() for n, s in self.scores.items()})
        save_file(tensors, str(out / "mask.safetensors"))
        meta = {"config": asdict(self.cfg), "hash": self.digest(), "rows_updated": self.rows_updated(),
                "rows_total": int(sum(k.numel() for k in self.keep.values()))}
        (out / "mask.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, out_dir: str | Path) -> "LongActMask":
        from safetensors.torch import load_file

        out = Path(out_dir)
        meta = json.loads((out / "mask.json").read_text())
        t = load_file(str(out / "mask.safetensors"))
        keep = {k[len("keep."):]: v.bool() for k, v in t.items() if k.startswith("keep.")}
        scores = {k[len("saliency."):]: v for k, v in t.items() if k.startswith("saliency.")}
        return cls(keep, scores, MaskConfig(**meta["config"]))
