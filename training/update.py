"""One optimizer update of the LongAct trainer: 4. loss -> 5. mask -> 6. clip -> 7. step.

    learner = make_learner(cfg, dist, net, model, optimizer(cfg, model), mask)
    stats = update(learner, rows)          # UpdateStats; stats.applied: the optimizer stepped

`Row`s (one completion each, training/train.py `build_rows`) go through the update in
micro-batches (`MicroBatch`: rows packed without padding, training/logprobs.py), with the
normalisers of the whole mini-batch summed over every rank, so accumulation is exact.
training/plan.py runs this same update on fake tensors to size a GPU run.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch

from training import losses as L
from training import parallel
from training.config import TrainConfig
from training.logprobs import Packed, pack, token_logps, unpadded
from training.mask import LongActMask


@dataclass
class Row:
    """One completion, ready for the loss."""
    ids: torch.Tensor  # [P + C] prompt (left-padded) then completion
    attention: torch.Tensor  # [P + C]
    completion: torch.Tensor  # [C], 1 = counts in the loss
    prompt_len: int  # P
    advantage: torch.Tensor  # scalar
    old_logp: torch.Tensor | None = None  # [C]; recomputed once per step when mu > 1
    rollout_logp: torch.Tensor | None = None  # [C]; the engine's sampling log-probs (vLLM), for the mismatch metric


def micro_batches(rows: list[Row], cfg: TrainConfig, d: parallel.Dist) -> list[list[Row]]:
    """Consecutive rows, at most `micro_batch` rows and, if `max_tokens_per_micro_batch` is set, at
    most that many real tokens (prompt + completion, no padding) per micro-batch; a row longer than
    the budget goes alone. Every rank runs as many as the busiest one (DDP and FSDP2 need one
    collective per forward/backward on every rank), the extra ones empty (zero-weight)."""
    budget = cfg.max_tokens_per_micro_batch or math.inf
    mbs, tokens = [], 0
    for r in rows:
        n = int(r.attention.sum())
        if not mbs or len(mbs[-1]) == cfg.micro_batch or tokens + n > budget:
            mbs.append([])
            tokens = 0
        mbs[-1].append(r)
        tokens += n
    return mbs + [[] for _ in range(d.all_max(len(mbs)) - len(mbs))]


@dataclass
class MicroBatch:
    """A micro-batch on the device: its rows packed back to back without padding
    (training/logprobs.py) and their per-token fields right-padded with zeros to the [b, C]
    layout of the loss."""
    packed: Packed
    completion: torch.Tensor  # [b, C], 1 = counts in the loss
    advantage: torch.Tensor  # [b]
    old_logp: torch.Tensor | None = None  # [b, C]; set when mu > 1
    rollout_logp: torch.Tensor | None = None  # [b, C]; the rollout engine's sampling log-probs (vLLM)

    @classmethod
    def of(cls, mb: list[Row], device) -> MicroBatch:
        """An empty micro-batch becomes one dummy row whose tokens all have weight 0."""
        if not mb:
            return cls(pack([(torch.zeros(2, dtype=torch.long), 1)], 1, device), torch.zeros(1, 1, device=device),
                       torch.zeros(1, device=device))
        C = max(r.completion.shape[0] for r in mb)
        packed = pack([unpadded(r.ids, r.attention, r.prompt_len) for r in mb], C, device)

        def per_token(field: str):  # a [C] row field right-padded with zeros to [b, C]; None if unset
            if getattr(mb[0], field) is None:
                return None
            out = torch.zeros(len(mb), C)
            for i, r in enumerate(mb):
                c = r.completion.shape[0]
                out[i, :c] = getattr(r, field)[:c]
            return out.to(device)

        adv = torch.stack([r.advantage for r in mb]).float()
        return cls(packed, per_token("completion"), adv.to(device), per_token("old_logp"), per_token("rollout_logp"))


@dataclass(frozen=True)
class Learner:
    """What an update acts on. `net` runs the forwards (`model` itself, or its DDP/FSDP2 wrapper);
    `model` owns the parameters the optimizer, the mask and the checkpoints see; `ref` is the
    frozen starting model of the KL term (None: kl_coef = 0). The losses are the configured
    registry entries (training/losses.py) with their config bound."""
    cfg: TrainConfig
    d: parallel.Dist
    net: torch.nn.Module
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    mask: LongActMask
    policy_loss: Callable
    aggregate: Callable
    ref: torch.nn.Module | None = None


def precision(cfg: TrainConfig, d: parallel.Dist):
    """The compute precision of every trainer forward: the update's, the old log-probs' and the
    reference's, so the first update's ratio is exactly 1. bf16 = autocast on the device, except
    under FSDP2, whose MixedPrecisionPolicy already casts every forward."""
    if cfg.bf16 and d.mode != "fsdp":
        return torch.autocast(d.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def recompute_old_logps(model, rows: list[Row], cfg: TrainConfig, d: parallel.Dist) -> None:
    """Log-probs of the policy that sampled the rows, for the PPO ratio when mu > 1."""
    for mb in micro_batches(rows, cfg, d):
        with precision(cfg, d):
            lp, _ = token_logps(model, MicroBatch.of(mb, d.device).packed, cfg.sampling.temperature)
        for r, row_lp in zip(mb, lp.float().cpu()):
            r.old_logp = row_lp[: r.completion.shape[0]].clone()


def batch_picks(net, mbs: list[list[Row]], cfg: TrainConfig, d: parallel.Dist, fresh: bool) -> list:
    """Clip-Cov / KL-Cov: the tokens each micro-batch's loss cuts or penalises, chosen over the whole
    mini-batch on every rank, as Cui et al. define the covariance (its means and the chosen share
    are over the batch). One forward pass without grad gives the current log-probs, except at a
    step's first update (`fresh`) where the recomputed old log-probs are the current ones. Every
    rank gathers all tokens' features in rank order and chooses from one seed they agree on."""
    features, pick = L.BATCH_PICKS[cfg.algo.policy_loss]
    kw = {"eps_low": cfg.algo.eps_low, "eps_high": cfg.algo.eps_high, **cfg.algo.loss_kwargs}
    valid, local = [], []
    for mb in mbs:
        b = MicroBatch.of(mb, d.device)
        if fresh and b.old_logp is not None:
            lp = b.old_logp
        else:
            with torch.no_grad(), precision(cfg, d):
                lp, _ = token_logps(net, b.packed, cfg.sampling.temperature)
        old = b.old_logp if b.old_logp is not None else lp.float()
        valid.append(b.completion > 0)
        local.append(features(lp.float(), old, b.advantage, b.completion, **kw)[b.completion > 0].cpu())
    every = d.gather(torch.cat(local))  # [n_r, F] per rank, in rank order
    # one draw from each rank's own (checkpointed) RNG, summed: the same seed on every rank
    seed = int(d.all_sum([float(torch.randint(2**40, ()).item())])[0])
    chosen = pick(torch.cat(every), torch.Generator().manual_seed(seed), **kw)
    at = sum(e.shape[0] for e in every[:d.rank])
    out = []
    for v in valid:  # this rank's share, back into each micro-batch's [b, C] layout
        v = v.cpu()
        p = torch.zeros(v.shape, dtype=torch.bool)
        p[v] = chosen[at:at + int(v.sum())]
        at += int(v.sum())
        out.append(p.to(d.device))
    return out


@dataclass(frozen=True)
class UpdateStats:
    """One optimizer update's scalars, over every rank's rows."""

    loss: float
    kl: float
    """Mean k3 KL to the reference per completion token (0 without a reference)."""
    entropy: float
    clip_frac: float
    """Share of the completion tokens the policy loss clipped (or Clip-Cov/KL-Cov picked)."""
    rollout_logp_diff: float
    """Mean |rollout engine - trainer| raw log-prob per completion token (0 without engine log-probs)."""
    grad_norm: float
    """The gradient norm before clipping."""

    @property
    def applied(self) -> bool:
        """The optimizer stepped: loss and gradient were finite (otherwise nothing moved)."""
        return math.isfinite(self.loss) and math.isfinite(self.grad_norm)


def update(learner: Learner, rows: list[Row], fresh: bool = False) -> UpdateStats:
    """4. loss over micro-batches with normalisers summed over the whole mini-batch on every rank
    (exact accumulation) -> 5. mask -> 6. clip -> 7. step. A non-finite loss or gradient skips
    the update: nothing moves, the update is counted and logged. `fresh`: the policy is still the
    one that sampled the rows (a step's first update)."""
    cfg, d, net = learner.cfg, learner.d, learner.net
    n_tok, n_seq = d.all_sum([sum(float(r.completion.sum()) for r in rows), float(len(rows))])
    n_tok, n_seq = max(n_tok, 1.0), max(n_seq, 1.0)
    stats = {"loss": 0.0, "kl": 0.0, "entropy": 0.0, "clip_frac": 0.0, "rollout_logp_diff": 0.0}
    mbs = micro_batches(rows, cfg, d)
    picks = batch_picks(net, mbs, cfg, d, fresh) if cfg.algo.policy_loss in L.BATCH_PICKS else [None] * len(mbs)
    T = cfg.sampling.temperature
    for k, mb in enumerate(mbs):
        b = MicroBatch.of(mb, d.device)
        cm = b.completion
        with parallel.grad_sync(net, d, k == len(mbs) - 1), precision(cfg, d):
            lp, ent, *raw_logp = token_logps(net, b.packed, T, raw=b.rollout_logp is not None)
            old = b.old_logp if b.old_logp is not None else lp.detach()
            per_token, s = learner.policy_loss(lp, old, b.advantage, cm, eps_low=cfg.algo.eps_low,
                                               eps_high=cfg.algo.eps_high, **cfg.algo.loss_kwargs,
                                               **({"pick": picks[k]} if picks[k] is not None else {}))
            if learner.ref is not None:
                with torch.no_grad():
                    ref_lp, _ = token_logps(learner.ref, b.packed, T)
                kl = L.k3_kl(lp, ref_lp, clamp=cfg.algo.kl_clamp, log_ratio_clamp=cfg.algo.log_ratio_clamp)
                per_token = per_token + cfg.algo.kl_coef * kl
                stats["kl"] += float((kl.detach() * cm).sum()) / n_tok
            loss = learner.aggregate(per_token, cm, num_tokens=n_tok, num_seqs=n_seq)
            (loss * d.world).backward()  # DDP/FSDP2 average over ranks; the normalisers are already global
        stats["loss"] += float(loss.detach())
        stats["entropy"] += float((ent.detach() * cm).sum()) / n_tok
        stats["clip_frac"] += float(s["clip_frac"]) * float(cm.sum()) / n_tok
        if b.rollout_logp is not None:  # training-inference mismatch: the rollout's vs the trainer's raw log-probs (before temperature)
            stats["rollout_logp_diff"] += float(((raw_logp[0] - b.rollout_logp).abs() * cm).sum()) / n_tok
    learner.mask.zero_grads()  # 5. masked Q/K rows: zero before clipping (hooks did it already unless FSDP2)
    clipped = torch.nn.utils.clip_grad_norm_(learner.model.parameters(), cfg.max_grad_norm)
    out = UpdateStats(**dict(zip(stats, d.all_sum(list(stats.values())))), grad_norm=float(parallel.full_tensor(clipped)))
    if out.applied:
        learner.opt.step()
        learner.mask.after_step()  # AdamW decayed the masked rows too: put them back
    learner.opt.zero_grad(set_to_none=True)
    return out


def make_learner(cfg: TrainConfig, d: parallel.Dist, net, model, opt, mask: LongActMask, ref=None) -> Learner:
    """A `Learner` with the configured policy loss and aggregation bound to their settings."""
    return Learner(cfg, d, net, model, opt, mask,
                   functools.partial(L.POLICY_LOSSES[cfg.algo.policy_loss], dual_clip_c=cfg.algo.dual_clip_c,
                                     log_ratio_clamp=cfg.algo.log_ratio_clamp),
                   # dr_grpo / seq_mean_token_sum_norm divide by a constant: the generation budget
                   functools.partial(L.AGGREGATIONS[cfg.algo.aggregation], max_len=cfg.sampling.max_new_tokens),
                   ref)


def optimizer(cfg: TrainConfig, model) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
